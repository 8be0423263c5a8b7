/* The entry point of farol.so for require("farol"), and of libfarol for
 * programs that host Lua (include/farol/lua.h). */
#include "binding.h"
#include "farol/lua.h"

int luaopen_farol(lua_State *L) { return farol_lua_open(L); }
