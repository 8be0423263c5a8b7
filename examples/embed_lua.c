/* A C program that hosts Lua and gives its scripts farol, the way a game,
 * an editor or a server would.  Built as build/embed_lua:
 *
 *   build/embed_lua            runs the script below
 *
 * Two lines make farol available to a lua_State you own: preload the module
 * and let scripts require it. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>

#include <farol/lua.h>  /* luaopen_farol, from libfarol */

static const char *script =
    "local farol = require('farol')\n"
    "local model = farol.nn.Sequential(farol.nn.Linear(4, 8), farol.nn.Tanh(), farol.nn.Linear(8, 3))\n"
    "local x = farol.randn(2, 4)\n"
    "local attribution = farol.Saliency(model):attribute(x, 2)\n"
    "return attribution\n";

int main(void) {
    lua_State *L = luaL_newstate();
    if (!L) return 1;
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_farol);
    lua_setfield(L, -2, "farol");
    lua_pop(L, 1);

    int status = luaL_dostring(L, script);
    if (status != LUA_OK) {
        /* farol's errors are ordinary Lua errors: the host stays up */
        fprintf(stderr, "script failed: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    /* the result is a tensor userdata: print it through Lua's tostring */
    printf("attribution from the hosted script:\n%s\n", luaL_tolstring(L, -1, NULL));
    lua_close(L);  /* frees every tensor the script made */
    return 0;
}
