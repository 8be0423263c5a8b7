#!/bin/sh
# Builds one libFuzzer target with clang (ASan + UBSan) and fuzzes it.
#
#   tests/fuzz/run.sh safetensors|npy [seconds] [more libFuzzer flags]
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
# shellcheck disable=SC2086
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fopenmp -Wno-pass-failed \
    -I"$root/include" -I"$root/src" $(pkg-config --cflags openblas libcjson) \
    "$root/tests/fuzz/fuzz_$target.c" $srcs \
    $(pkg-config --libs openblas libcjson) -lm -o "$out/fuzz_$target"

cd "$out"
exec "./fuzz_$target" -max_total_time="$secs" -dict="$root/tests/fuzz/$target.dict" \
    -artifact_prefix=artifacts/ -print_final_stats=1 "$@" \
    corpus "$root/tests/fuzz/corpus/$target"
