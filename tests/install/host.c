/* A program built against an installed farol (tests/install/run.sh builds it
 * once with pkg-config and once with find_package): the C API, then a
 * lua_State of its own that opens farol through include/farol/lua.h. */
#include <farol.h>
#include <farol/lua.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

static const char *script =
    "local farol = require('farol')\n"
    "local before = package.path\n"
    "local model = farol.nn.Sequential(farol.nn.Linear(3, 4), farol.nn.Tanh(), farol.nn.Linear(4, 2))\n"
    "local a = farol.Saliency(model):attribute(farol.ones(2, 3), 1)\n"
    "assert(package.path == before)\n"
    "return table.concat(a:size(), 'x') .. ' ' .. farol.version\n";

int main(void) {
    /* C, no Lua: 2 x 3 of 1.5 sums to 9 */
    int64_t shape[2] = {2, 3};
    farol_tensor *t = farol_full(2, shape, 1.5, FAROL_F32);
    farol_tensor *s = t ? farol_sum(t, FAROL_DIM_ALL, false) : NULL;
    if (!s) {
        fprintf(stderr, "host: %s\n", farol_last_error());
        return 1;
    }
    printf("c: sum %g\n", farol_item(s));
    farol_release(s);
    farol_release(t);

    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_farol);
    lua_setfield(L, -2, "farol");
    lua_pop(L, 1);
    if (luaL_dostring(L, script) != LUA_OK) {
        fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    printf("lua: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 0;
}
