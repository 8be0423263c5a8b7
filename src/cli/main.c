/* build/farol: runs a script (`farol script.lua args...`), a chunk
 * (`farol -e 'code'`), or an interactive REPL that prints every value it is
 * given, with farol built in (require("farol") needs no path set-up). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef FAROL_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

int farol_lua_open(lua_State *L);

/* OpenMP threads that wait passively: with the default active wait, a
 * 2-thread run takes several times as long as a 1-thread one whenever
 * another process holds one of the cores (measured up to 14x on a shared
 * 2-core machine).  libgomp reads OMP_WAIT_POLICY once, in its constructor,
 * before any code of farol's runs (and libc resets the environment after an
 * executable's pre-initialisation), so when the user set neither it nor
 * GOMP_SPINCOUNT the runner starts itself again with OMP_WAIT_POLICY=PASSIVE
 * (about a millisecond), then removes it so that scripts and the programs
 * they start see the environment as it was.  If that exec fails, farol runs
 * on with the active wait. */
static void passive_wait(char **argv) {
    if (getenv("FAROL_WAIT_SET")) {
        unsetenv("FAROL_WAIT_SET");
        unsetenv("OMP_WAIT_POLICY");
        return;
    }
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0 && setenv("FAROL_WAIT_SET", "1", 1) == 0)
        execv("/proc/self/exe", argv);
    unsetenv("FAROL_WAIT_SET");
    unsetenv("OMP_WAIT_POLICY");
}

static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int report(lua_State *L, int status) {
    if (status != LUA_OK) {
        fprintf(stderr, "farol: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return status;
}

static int docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    int status = lua_pcall(L, narg, nres, base);
    lua_remove(L, base);
    return status;
}

/* the `arg` table as lua5.4 builds it: script at 0, its arguments from 1 */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
    lua_createtable(L, argc - script, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int run_script(lua_State *L, char **argv, int argc, int script) {
    create_arg_table(L, argv, argc, script);
    int status = luaL_loadfile(L, argv[script]);
    if (status == LUA_OK) {
        int n = argc - script - 1;
        luaL_checkstack(L, n, "too many arguments to script");
        for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
        status = docall(L, n, 0);
    }
    return report(L, status);
}

/* REPL printing: tensors and other values through tostring, flat arrays of
 * numbers (sizes, for instance) as {a, b, c}.  Runs under lua_pcall (see
 * print_results): a __tostring may raise. */
static int print_values(lua_State *L) {
    int n = lua_gettop(L), base = 0;
    for (int i = 1; i <= n; i++) {
        int idx = base + i;
        if (lua_type(L, idx) == LUA_TTABLE && !lua_getmetatable(L, idx)) {
            lua_Integer len = luaL_len(L, idx);
            bool flat = len > 0;
            for (lua_Integer k = 1; k <= len && flat; k++) {
                flat = lua_geti(L, idx, k) == LUA_TNUMBER;
                lua_pop(L, 1);
            }
            if (flat) {
                printf("{");
                for (lua_Integer k = 1; k <= len; k++) {
                    lua_geti(L, idx, k);
                    printf("%s%s", k > 1 ? ", " : "", luaL_tolstring(L, -1, NULL));
                    lua_pop(L, 2);
                }
                printf("}%s", i < n ? "\t" : "\n");
                continue;
            }
        } else if (lua_type(L, idx) == LUA_TTABLE) {
            lua_pop(L, 1);  /* the metatable */
        }
        printf("%s%s", luaL_tolstring(L, idx, NULL), i < n ? "\t" : "\n");
        lua_pop(L, 1);
    }
    return 0;
}

/* prints the n values at the top, removing them; an error from a
 * __tostring is reported like any other */
static int print_results(lua_State *L, int n) {
    lua_pushcfunction(L, print_values);
    lua_insert(L, -n - 1);
    int status = docall(L, n, 0);
    if (status != LUA_OK) fflush(stdout);
    return status;
}

static bool incomplete(lua_State *L, int status) {
    if (status != LUA_ERRSYNTAX) return false;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    return len >= 5 && strcmp(msg + len - 5, "<eof>") == 0;
}

/* one line of input, of any length, pushed with its newline, prompting on
 * a terminal; false at end of input.  With readline: editing and history. */
static bool read_line(lua_State *L, bool tty, const char *prompt) {
#ifdef FAROL_READLINE
    if (tty) {
        char *line = readline(prompt);
        if (!line) return false;
        if (line[0]) add_history(line);
        lua_pushfstring(L, "%s\n", line);
        free(line);
        return true;
    }
#endif
    if (tty) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len = getline(&line, &cap, stdin);
    if (len >= 0) lua_pushlstring(L, line, (size_t)len);
    free(line);
    return len >= 0;
}

static void repl(lua_State *L) {
    bool tty = isatty(0);
    if (tty) printf("farol %s (Lua 5.4) -- tensors and Saliency; Ctrl-D to quit\n",
                    (lua_getfield(L, -1, "version"), lua_tostring(L, -1)));
    lua_pop(L, 1);
    for (;;) {
        if (!read_line(L, tty, "> ")) break;  /* the code so far */
        int status;
        for (;;) {
            /* an expression first, so `x` prints x */
            const char *code = lua_tostring(L, -1);
            lua_pushfstring(L, "return %s;", code);
            status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_rawlen(L, -1), "=stdin");
            lua_remove(L, -2);
            if (status == LUA_OK) break;
            lua_pop(L, 1);
            status = luaL_loadbuffer(L, code, strlen(code), "=stdin");
            if (!incomplete(L, status)) break;
            lua_pop(L, 1);
            if (!read_line(L, tty, ">> ")) break;
            lua_concat(L, 2);
        }
        lua_remove(L, -2);  /* the code */
        if (status == LUA_OK) {
            int top = lua_gettop(L) - 1;
            status = docall(L, 0, LUA_MULTRET);
            if (status == LUA_OK && lua_gettop(L) > top) status = print_results(L, lua_gettop(L) - top);
        }
        report(L, status);
        lua_settop(L, 0);
        lua_getglobal(L, "farol");
    }
    if (tty) printf("\n");
}

/* the globals of `farol -e` and the REPL: farol */
static int open_globals(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "farol");
    int status = docall(L, 1, 1);
    if (status == LUA_OK) lua_setglobal(L, "farol");
    return status;
}

static void usage(const char *prog) {
    fprintf(stderr,
            "usage: %s [script.lua [args...]]\n"
            "       %s -e 'code'\n"
            "With no arguments, an interactive REPL in which `farol` is a global.\n",
            prog, prog);
}

int main(int argc, char **argv) {
    passive_wait(argv);
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "farol: cannot create a Lua state\n");
        return 1;
    }
    luaL_openlibs(L);
    /* require("farol") resolves to the built-in module */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, farol_lua_open);
    lua_setfield(L, -2, "farol");
    lua_pop(L, 1);
    int status = LUA_OK;
    if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(argv[0]);
    } else if (argc > 1 && strcmp(argv[1], "-e") == 0) {
        if (argc < 3) {
            usage(argv[0]);
            status = LUA_ERRRUN;
        } else {
            create_arg_table(L, argv, argc, 0);
            status = report(L, open_globals(L));
            if (status == LUA_OK) status = luaL_loadbuffer(L, argv[2], strlen(argv[2]), "=(command line)");
            if (status == LUA_OK) status = docall(L, 0, 0);
            report(L, status);
        }
    } else if (argc > 1) {
        status = run_script(L, argv, argc, 1);
    } else {
        status = report(L, open_globals(L));
        if (status == LUA_OK) {
            lua_getglobal(L, "farol");
            repl(L);
        }
    }
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}
