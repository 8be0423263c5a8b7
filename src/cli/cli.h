/* The farol runner's parts (src/cli/). */
#ifndef FAROL_CLI_H
#define FAROL_CLI_H

#include <lua.h>

int farol_lua_open(lua_State *L);

#ifdef FAROL_READLINE
/* Tab completion in readline: globals, table fields and module methods,
 * tensor methods, after '.' and ':' */
void farol_cli_completion(lua_State *L);
#endif

#endif
