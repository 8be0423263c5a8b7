/* Tab completion for the REPL (GNU readline): the word under the cursor is
 * a path of names, `farol.nn.Lin`, `x:resh`, `coll`.  The path before the
 * last '.' or ':' is looked up from the globals without running anything
 * (raw fields, then the tables __index leads to; a userdata's methods from
 * its metatable), and the names that fit are offered; after ':' only
 * functions.  Lua keywords complete at the start of a word. */
#ifdef FAROL_READLINE
#define _POSIX_C_SOURCE 200809L

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <readline/readline.h>

#include "cli/cli.h"

static lua_State *cL;

static const char *const keywords[] = {
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while", NULL};

/* the candidates of one completion, built when it starts */
static char **cands;
static size_t n_cands, cap_cands;

static void add(const char *prefix, size_t plen, const char *name) {
    size_t n = strlen(name);
    char *s = malloc(plen + n + 1);
    if (!s) return;
    memcpy(s, prefix, plen);
    memcpy(s + plen, name, n + 1);
    for (size_t i = 0; i < n_cands; i++)
        if (strcmp(cands[i], s) == 0) {
            free(s);
            return;
        }
    if (n_cands == cap_cands) {
        size_t cap = cap_cands ? 2 * cap_cands : 64;
        char **c = realloc(cands, cap * sizeof *c);
        if (!c) {
            free(s);
            return;
        }
        cands = c;
        cap_cands = cap;
    }
    cands[n_cands++] = s;
}

static int is_name(const char *s) {
    if (!(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return 0;
    for (const char *p = s; *p; p++)
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return 0;
    return 1;
}

/* the table a value's fields come from after its own: __index when it is a
 * table, or the table a C __index keeps as its first upvalue (farol's
 * tensors: their methods).  Pushes it, or returns 0 pushing nothing. */
static int push_index_table(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx)) return 0;
    int t = lua_getfield(L, -1, "__index");
    lua_remove(L, -2);  /* the metatable */
    if (t == LUA_TTABLE) return 1;
    if (t == LUA_TFUNCTION && lua_getupvalue(L, -1, 1)) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_remove(L, -2);  /* the function */
            return 1;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* the names of the value at the top (its fields, then those of the tables
 * its metatables lead to) that start with part */
static void add_fields(lua_State *L, const char *prefix, size_t plen, const char *part, int only_funcs) {
    size_t n = strlen(part);
    for (int depth = 0; depth < 8; depth++) {
        int v = lua_gettop(L);
        if (lua_type(L, v) == LUA_TTABLE) {
            lua_pushnil(L);
            while (lua_next(L, v)) {
                if (lua_type(L, -2) == LUA_TSTRING) {
                    const char *k = lua_tostring(L, -2);
                    if (strncmp(k, part, n) == 0 && is_name(k) &&
                        (!only_funcs || lua_type(L, -1) == LUA_TFUNCTION))
                        add(prefix, plen, k);
                }
                lua_pop(L, 1);
            }
        }
        if (!push_index_table(L, v)) break;
        lua_remove(L, v);
    }
}

/* pushes the value of a path "a.b.c" (len bytes) from the globals, fields
 * read raw or through __index tables; 0 (nothing pushed) when a step fails */
static int push_path(lua_State *L, const char *path, size_t len) {
    lua_pushglobaltable(L);
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && path[j] != '.') j++;
        lua_pushlstring(L, path + i, j - i);
        int found = 0;
        for (int depth = 0; depth < 8 && !found; depth++) {
            if (lua_type(L, -2) == LUA_TTABLE) {
                lua_pushvalue(L, -1);
                if (lua_rawget(L, -3) != LUA_TNIL) {
                    found = 1;
                    break;
                }
                lua_pop(L, 1);
            }
            if (!push_index_table(L, -2)) break;
            lua_replace(L, -3);  /* look again in the __index table */
        }
        if (!found) {
            lua_pop(L, 2);
            return 0;
        }
        lua_replace(L, -3);  /* value over the container */
        lua_pop(L, 1);       /* the key */
        i = j + 1;
    }
    return 1;
}

static void build(const char *text) {
    lua_State *L = cL;
    int top = lua_gettop(L);
    const char *sep = NULL;
    for (const char *p = text; *p; p++)
        if (*p == '.' || *p == ':') sep = p;
    if (!sep) {
        lua_pushglobaltable(L);
        add_fields(L, "", 0, text, 0);
        for (int i = 0; keywords[i]; i++)
            if (strncmp(keywords[i], text, strlen(text)) == 0) add("", 0, keywords[i]);
    } else if (push_path(L, text, (size_t)(sep - text))) {
        add_fields(L, text, (size_t)(sep - text + 1), sep + 1, *sep == ':');
    }
    lua_settop(L, top);
}

static char *generator(const char *text, int state) {
    static size_t next;
    if (state == 0) {
        for (size_t i = 0; i < n_cands; i++) free(cands[i]);
        n_cands = 0;
        next = 0;
        build(text);
    }
    return next < n_cands ? strdup(cands[next++]) : NULL;
}

static char **attempt(const char *text, int start, int end) {
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1;  /* never file names */
    rl_completion_append_character = '\0';
    return rl_completion_matches(text, generator);
}

void farol_cli_completion(lua_State *L) {
    cL = L;
    rl_readline_name = "farol";
    /* '.' and ':' belong to the word: farol.nn.Lin is completed whole */
    rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[]}";
    rl_completer_word_break_characters = rl_basic_word_break_characters;
    rl_attempted_completion_function = attempt;
}
#endif
