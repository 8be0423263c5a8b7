#!/usr/bin/env bash
# Installs farol from a build dir into a temporary prefix, moves the prefix
# elsewhere, and uses it from outside the source tree, as a user would:
#   require("farol") from lua5.4 (LUA_CPATH into the prefix), the farol
#   runner, a C host built with pkg-config and one built with find_package
#   (shared and static).  Also checks that no installed binary names the
#   source or build tree.
#   tests/install/run.sh [build-dir]     (default build)
#   tests/install/run.sh --fresh         clone HEAD, build and install it, then
#                                        delete the clone and its build first
# Prints "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fresh=""
if [ "${1:-}" = --fresh ]; then
  fresh=$tmp/clone
  git clone -q "$root" "$fresh/src" &&
    cmake -S "$fresh/src" -B "$fresh/build" -DCMAKE_BUILD_TYPE=Release -DFAROL_TESTS=OFF >/dev/null &&
    cmake --build "$fresh/build" -j"$(nproc)" >/dev/null || { echo "fresh build failed"; echo "0 passed, 1 failed"; exit 1; }
  build=$fresh/build
else
  build=$(cd "${1:-$root/build}" && pwd)
fi
passed=0
failed=0
check() {  # check NAME COMMAND... : runs it, counts it
  local name=$1; shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; echo "$out" | tail -15 | sed 's/^/     /'
  fi
}

cmake --install "$build" --prefix "$tmp/first" >/dev/null || { echo "install failed"; echo "0 passed, 1 failed"; exit 1; }
# a prefix that moved: nothing may depend on where it was installed
mv "$tmp/first" "$tmp/prefix"
[ -n "$fresh" ] && rm -rf "$fresh"  # the source tree and its build are gone
P=$tmp/prefix
mkdir "$tmp/elsewhere"
cd "$tmp/elsewhere"

expect_files() {
  for f in lib/lua/5.4/farol.so bin/farol lib/libfarol.a lib/libfarol.so include/farol.h include/farol/lua.h \
           lib/pkgconfig/farol.pc lib/cmake/farol/farolConfig.cmake lib/cmake/farol/farolConfigVersion.cmake; do
    [ -e "$P/$f" ] || { echo "missing $f"; return 1; }
  done
}
check "installed files" expect_files

no_tree_paths() {
  for f in "$P/lib/lua/5.4/farol.so" "$P/bin/farol" "$P/lib/libfarol.so"; do
    if grep -q -a -e "$root" -e "$build" -e "${fresh:-$build}" "$f"; then echo "$f names $root or $build"; return 1; fi
  done
}
check "no source or build path in the binaries" no_tree_paths

req() {
  LUA_CPATH="$P/lib/lua/5.4/?.so" LUA_PATH="" lua5.4 -e '
    local farol = require("farol")
    local m = farol.models and farol.nn.Linear(3, 2)
    assert(m and farol.Saliency, "the Lua half is missing")
    local x = farol.ones(1, 3)
    assert(package.path == "", "package.path was changed: " .. package.path)
    print(farol.version, farol.Saliency(m):attribute(x, 1):size(2))'
}
check "lua5.4 require(\"farol\") from the prefix" req

runner() {
  local out
  out=$("$P/bin/farol" -e 'print(farol.nn.ReLU ~= nil, require("farol.nn") == farol.nn)') || return 1
  [ "$out" = "true	true" ] || { echo "got: $out"; return 1; }
}
check "bin/farol -e" runner

pc_host() {
  export PKG_CONFIG_PATH=$P/lib/pkgconfig
  [ -f "$(pkg-config --variable=luacmoddir farol)/farol.so" ] || { echo "luacmoddir has no farol.so"; return 1; }
  # shared: libfarol.so found through the run path given here
  cc -o host_pc "$root/tests/install/host.c" $(pkg-config --cflags farol lua5.4) \
     $(pkg-config --libs farol lua5.4) -Wl,-rpath,"$(pkg-config --variable=libdir farol)" || return 1
  ./host_pc | tee host_pc.txt && grep -qx 'c: sum 9' host_pc.txt && grep -q '^lua: 2x3 ' host_pc.txt || return 1
  # static
  cc -o host_pc_static "$root/tests/install/host.c" $(pkg-config --cflags farol lua5.4) \
     "$P/lib/libfarol.a" $(pkg-config --static --libs farol lua5.4 | sed 's/-lfarol//') || return 1
  ! ldd host_pc_static | grep -q libfarol || { echo "static host links libfarol.so"; return 1; }
  ./host_pc_static | grep -q '^lua: 2x3 '
}
check "host built with pkg-config farol (shared and static)" pc_host

cmake_host() {
  cmake -S "$root/tests/install" -B cmake-host -DCMAKE_PREFIX_PATH="$P" >/dev/null &&
    cmake --build cmake-host >/dev/null || return 1
  cmake-host/host | tee cmake_host.txt && grep -qx 'c: sum 9' cmake_host.txt || return 1
  grep -q '^lua: 2x3 ' cmake_host.txt || return 1
  cmake-host/host_static | grep -q '^lua: 2x3 '
}
check "host built with find_package(farol) (shared and static)" cmake_host

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
