/* farol for programs that host Lua: luaopen_farol opens the module in a
 * lua_State you own (link libfarol; lua.h comes from your Lua 5.4):
 *
 *   luaL_requiref(L, "farol", luaopen_farol, 0);   or, to let scripts
 *   require it: package.preload.farol = luaopen_farol (see
 *   examples/embed_lua.c).
 *
 * The module is self-contained: its Lua half is compiled in, so nothing is
 * looked up on package.path. */
#ifndef FAROL_LUA_H
#define FAROL_LUA_H

#include "farol/export.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lua_State;

/* pushes the farol table (also stored as package.loaded.farol) */
FAROL_API int luaopen_farol(struct lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
