/* The entry point of farol.so for require("farol"), and of libfarol for
 * programs that host Lua (include/farol/lua.h): the one Lua symbol exported. */
#include "binding.h"
#include "farol/lua.h"

FAROL_API int luaopen_farol(lua_State *L) { return farol_lua_open(L); }
