/* Options tables: one check shared by every function and module that takes
 * one, so a misspelt key is an error that names it instead of a silently
 * ignored default.  C bindings call farol_lua_check_options; the Lua parts
 * (nn modules, models) call farol.check_options, the same code. */
#include "binding.h"

/* "stride, padding, dilation" from a NULL-terminated list, on the stack */
static void push_valid(lua_State *L, const char *const valid[]) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; valid[i]; i++) {
        if (i > 0) luaL_addstring(&b, ", ");
        luaL_addstring(&b, valid[i]);
    }
    if (!valid[0]) luaL_addstring(&b, "none");
    luaL_pushresult(&b);
}

static int is_valid(const char *k, const char *const valid[]) {
    for (int i = 0; valid[i]; i++)
        if (strcmp(k, valid[i]) == 0) return 1;
    return 0;
}

int farol_lua_check_options(lua_State *L, int idx, const char *fn, const char *const valid[]) {
    if (lua_isnoneornil(L, idx)) return 0;
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx))
        return farol_error(L, "farol: %s: options must be a table, got %s", fn, luaL_typename(L, idx));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);  /* the value */
        if (lua_type(L, -1) == LUA_TSTRING && is_valid(lua_tostring(L, -1), valid)) continue;
        /* the key as the user wrote it: 'name' for strings, plain otherwise */
        const char *key = lua_type(L, -1) == LUA_TSTRING
                              ? lua_pushfstring(L, "'%s'", lua_tostring(L, -1))
                              : luaL_tolstring(L, -1, NULL);
        push_valid(L, valid);
        return farol_error(L, "farol: %s: unknown option %s (valid: %s)", fn, key, lua_tostring(L, -1));
    }
    return idx;
}

/* farol.check_options(opts, fname, valid) -> opts, or a new empty table when
 * opts is nil; valid is an array of the option names */
static int l_check_options(lua_State *L) {
    const char *fn = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 3);
    if (n < 0 || n > 256) return farol_error(L, "farol: check_options: valid must be an array of at most 256 names");
    const char **valid = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *valid, 0);  /* freed by the GC */
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_geti(L, 3, i) != LUA_TSTRING)
            return farol_error(L, "farol: check_options: valid[%lld] must be a string, got %s", i,
                               luaL_typename(L, -1));
        valid[i - 1] = lua_tostring(L, -1);  /* kept alive by the table at 3 */
        lua_pop(L, 1);
    }
    valid[n] = NULL;
    if (farol_lua_check_options(L, 1, fn, valid) == 0) {
        lua_newtable(L);
        return 1;
    }
    lua_pushvalue(L, 1);
    return 1;
}

void farol_lua_options(lua_State *L) {
    lua_pushcfunction(L, l_check_options);
    lua_setfield(L, -3, "check_options");
}
