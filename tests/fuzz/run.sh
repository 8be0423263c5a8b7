#!/bin/sh
# Builds one libFuzzer target with clang (ASan + UBSan) and fuzzes it.
#
#   tests/fuzz/run.sh safetensors|npy|lua_table [seconds] [more libFuzzer flags]
#
# New inputs go to build-fuzz/<target>/corpus, crashes to
# build-fuzz/<target>/artifacts, never into the repo: once a crash is fixed,
# copy its input into tests/fuzz/corpus/<target>/ so the replay test keeps it.
set -eu
target=$1
secs=${2:-60}
shift
[ $# -gt 0 ] && shift
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${FAROL_FUZZ_DIR:-$root/build-fuzz}/$target
mkdir -p "$out/corpus" "$out/artifacts"

srcs=""
for f in "$root"/src/tensor/*.c "$root"/src/autograd/*.c "$root"/src/ops/*.c \
         "$root"/src/attr/*.c "$root"/src/io/*.c; do
    [ -f "$f" ] && srcs="$srcs $f"
done
extra_cflags=""
extra_libs=""
if [ "$target" = lua_table ]; then
    # the Lua binding (without module_entry.c, the entry point of farol.so)
    for f in "$root"/src/lua/*.c; do
        [ "$(basename "$f")" = module_entry.c ] || srcs="$srcs $f"
    done
    # and its Lua half, compiled in as the build does
    cmake -DROOT="$root" -DOUT="$out/farol_lua_sources.c" -P "$root/cmake/embed_lua.cmake"
    srcs="$srcs $out/farol_lua_sources.c"
    extra_cflags="$(pkg-config --cflags lua5.4)"
    extra_libs="$(pkg-config --libs lua5.4)"
    # a refused huge allocation is an error path here, not a crash (see
    # __asan_default_options in the harness): only ASan's 1 TB limit applies
    set -- -malloc_limit_mb=1048576 "$@"
fi
# FAROL_FUZZ_CFLAGS: extra compiler flags, e.g. -fno-sanitize=<check> to
# keep fuzzing past a known, reported finding until it is fixed.
# FAROL_NO_BUFFER_CACHE: clang 14 does not define __SANITIZE_ADDRESS__, and
# the cache would hide a use after free of a large buffer from ASan
# shellcheck disable=SC2086
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fopenmp -Wno-pass-failed \
    -DFAROL_NO_BUFFER_CACHE ${FAROL_FUZZ_CFLAGS:-} -I"$root/include" -I"$root/src" $(pkg-config --cflags openblas libcjson) \
    $extra_cflags "$root/tests/fuzz/fuzz_$target.c" $srcs \
    $(pkg-config --libs openblas libcjson) $extra_libs -lm -o "$out/fuzz_$target"

cd "$out"
exec "./fuzz_$target" -max_total_time="$secs" -dict="$root/tests/fuzz/$target.dict" \
    -artifact_prefix=artifacts/ -print_final_stats=1 "$@" \
    corpus "$root/tests/fuzz/corpus/$target"
