/* The entry point of farol.so for require("farol"). */
#include "binding.h"

LUAMOD_API int luaopen_farol(lua_State *L) { return farol_lua_open(L); }
