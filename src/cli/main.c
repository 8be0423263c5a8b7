/* build/farol: runs a script (`farol script.lua args...`), a chunk
 * (`farol -e 'code'`), or an interactive REPL that prints every value it is
 * given, with farol built in (require("farol") needs no path set-up).
 * The REPL: Ctrl-C interrupts a running statement (lua.c's hook technique)
 * or drops the line being typed; an error is one line, traceback() shows
 * where it came from; help(x) (docs/API.md); Tab completion (complete.c). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>
#ifdef FAROL_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#include "cli/cli.h"
#include "farol.h"

/* ---- errors: the message handler keeps the traceback (registry, TB_KEY);
 * scripts and -e print it as lua5.4 does, the REPL prints the message only
 * unless `.traceback on`, and traceback() prints the last one */
#define TB_KEY "farol.cli.traceback"
static bool print_traceback = true;
static const char *progname = "farol";  /* NULL in the REPL: no prefix */

/* How OpenMP's idle threads wait.  libgomp's default spins for a long
 * while: when another process holds one of the cores, a 2-thread run then
 * takes several times as long as a 1-thread one (measured up to 14x on a
 * shared 2-core machine).  A passive wait (sleep at once) fixes that but
 * wakes a sleeping thread at every parallel region: 10-17 % of an idle
 * machine's time on ResNet-18 and the CNN.  So the runner spins briefly
 * (GOMP_SPINCOUNT=1000, microseconds: the gap between two ops) and then
 * sleeps, and adaptive threads (main) drop to the cores other processes
 * leave idle; measured with a busy loop on the other core, 2 threads then
 * cost no more than 1.  libgomp reads its settings once, in its
 * constructor, before any code of farol's runs (and libc resets the
 * environment after an executable's pre-initialisation), so when the user
 * set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT the runner starts itself
 * again with GOMP_SPINCOUNT set (about a millisecond), then removes it so
 * that scripts and the programs they start see the environment as it was.
 * If that exec fails, farol runs on with libgomp's default. */
static void set_wait(char **argv) {
    if (getenv("FAROL_WAIT_SET")) {
        unsetenv("FAROL_WAIT_SET");
        unsetenv("GOMP_SPINCOUNT");
        return;
    }
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", "1000", 1) == 0 && setenv("FAROL_WAIT_SET", "1", 1) == 0)
        execv("/proc/self/exe", argv);
    unsetenv("FAROL_WAIT_SET");
    unsetenv("GOMP_SPINCOUNT");
}

static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, TB_KEY);
    lua_pushstring(L, msg);
    return 1;
}

static int report(lua_State *L, int status) {
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!msg) msg = "(error object is not a string)";
        /* the traceback of this error; a syntax error has none, its
         * message stands for it */
        if (lua_getfield(L, LUA_REGISTRYINDEX, TB_KEY) != LUA_TSTRING ||
            strncmp(lua_tostring(L, -1), msg, strlen(msg)) != 0) {
            lua_pop(L, 1);
            lua_pushstring(L, msg);
            lua_pushvalue(L, -1);
            lua_setfield(L, LUA_REGISTRYINDEX, TB_KEY);
        }
        if (print_traceback) msg = lua_tostring(L, -1);
        /* farol's own messages already say "farol: ..." */
        if (progname && strncmp(msg, "farol:", 6) != 0) fprintf(stderr, "%s: ", progname);
        fprintf(stderr, "%s\n", msg);
        fflush(stderr);
        lua_pop(L, 2);
    }
    return status;
}

/* traceback(): where the last error came from */
static int l_traceback(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, TB_KEY) != LUA_TSTRING) {
        puts("no error yet");
        return 0;
    }
    puts(lua_tostring(L, -1));
    return 0;
}

/* ---- Ctrl-C: while a statement runs, a hook raises "interrupted" at the
 * next Lua call, return or instruction (lua.c's technique: lua_sethook is
 * safe in a signal handler); at the prompt, the line is dropped */
static lua_State *running;                 /* set while the REPL runs code */
static volatile sig_atomic_t at_prompt_interrupt;

static void stop_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted");
}

static void on_sigint(int sig) {
    (void)sig;
    lua_State *L = running;
    if (L) lua_sethook(L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
    else at_prompt_interrupt = 1;
}

static void catch_sigint(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;   /* no SA_RESTART: a read at the prompt returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

static int docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    running = L;
    int status = lua_pcall(L, narg, nres, base);
    running = NULL;
    lua_sethook(L, NULL, 0, 0);  /* a Ctrl-C that came too late */
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

#ifdef FAROL_READLINE
/* readline's input: a Ctrl-C at the prompt ends the line (it is then
 * dropped, see read_line).  SIGINT stays blocked except inside pselect, so
 * one that comes while readline is busy is seen before the next wait. */
static int getc_interruptible(FILE *f) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    int c = EOF, in = fileno(f);
    for (;;) {
        if (at_prompt_interrupt) {
            c = '\n';
            break;
        }
        fd_set r;
        FD_ZERO(&r);
        FD_SET(in, &r);
        int n = pselect(in + 1, &r, NULL, NULL, NULL, &old);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        unsigned char ch;
        ssize_t got = read(in, &ch, 1);
        if (got < 0 && errno == EINTR) continue;
        if (got == 1) c = ch;
        break;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return c;
}
#endif

enum { LINE_EOF, LINE_OK, LINE_INTERRUPTED };

/* one line of input, of any length, pushed with its newline, prompting on
 * a terminal.  With readline: editing, history, completion. */
static int read_line(lua_State *L, bool tty, const char *prompt) {
    at_prompt_interrupt = 0;
#ifdef FAROL_READLINE
    if (tty) {
        char *line = readline(prompt);
        if (at_prompt_interrupt) {
            free(line);
            return LINE_INTERRUPTED;
        }
        if (!line) return LINE_EOF;
        if (line[0]) add_history(line);
        lua_pushfstring(L, "%s\n", line);
        free(line);
        return LINE_OK;
    }
#endif
    if (tty) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    char *line = NULL;
    size_t cap = 0;
    errno = 0;
    ssize_t len = getline(&line, &cap, stdin);
    if (len >= 0) lua_pushlstring(L, line, (size_t)len);
    free(line);
    if (len < 0 && at_prompt_interrupt) {
        clearerr(stdin);
        if (tty) fputc('\n', stdout);
        return LINE_INTERRUPTED;
    }
    return len >= 0 ? LINE_OK : LINE_EOF;
}

/* `.traceback on|off`, `.help`: REPL commands (a line starting with '.' is
 * never Lua); true when the line was one */
static bool command(const char *line) {
    if (line[0] != '.') return false;
    char word[32] = "", arg[32] = "";
    sscanf(line, ".%31s %31s", word, arg);
    if (strcmp(word, "traceback") == 0 && (strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0)) {
        print_traceback = strcmp(arg, "on") == 0;
        printf("tracebacks %s\n", print_traceback ? "on: every error prints its traceback"
                                                   : "off: traceback() shows the last one");
    } else if (strcmp(word, "help") == 0) {
        puts("help(x)          what docs/API.md says about x (a function, class, method, module or name)\n"
             "traceback()      where the last error came from\n"
             ".traceback on    print every error's traceback (.traceback off: one line, the default)\n"
             "Tab              complete names, fields, and methods after '.' and ':'\n"
             "Ctrl-C           interrupt the running statement, or drop the line being typed\n"
             "Ctrl-D           quit");
    } else {
        fprintf(stderr, "unknown command '%.*s' (commands: .help, .traceback on|off)\n",
                (int)strcspn(line, "\n"), line);
    }
    return true;
}

static void repl(lua_State *L) {
    bool tty = isatty(0);
    progname = NULL;
    print_traceback = false;
    catch_sigint();
#ifdef FAROL_READLINE
    rl_catch_signals = 0;
    rl_getc_function = getc_interruptible;
    farol_cli_completion(L);
#endif
    if (tty) printf("farol %s (Lua 5.4) -- help() for help, Tab completes, Ctrl-D quits\n",
                    (lua_getfield(L, -1, "version"), lua_tostring(L, -1)));
    lua_settop(L, 0);
    for (;;) {
        int got = read_line(L, tty, "> ");  /* the code so far */
        if (got == LINE_EOF) break;
        if (got == LINE_INTERRUPTED) continue;
        if (command(lua_tostring(L, -1))) {
            lua_settop(L, 0);
            continue;
        }
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
            got = read_line(L, tty, ">> ");
            if (got != LINE_OK) break;
            lua_concat(L, 2);
        }
        if (got == LINE_EOF) break;
        if (got == LINE_INTERRUPTED) {
            lua_settop(L, 0);
            continue;
        }
        lua_remove(L, -2);  /* the code */
        if (status == LUA_OK) {
            int top = lua_gettop(L) - 1;
            status = docall(L, 0, LUA_MULTRET);
            if (status == LUA_OK && lua_gettop(L) > top) status = print_results(L, lua_gettop(L) - top);
        }
        report(L, status);
        lua_settop(L, 0);
    }
    if (tty) printf("\n");
}

/* the globals of `farol -e` and the REPL: farol, help, traceback */
static int open_globals(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "farol");
    int status = docall(L, 1, 1);
    if (status != LUA_OK) return status;
    lua_getfield(L, -1, "help");
    lua_setglobal(L, "help");
    lua_setglobal(L, "farol");
    lua_pushcfunction(L, l_traceback);
    lua_setglobal(L, "traceback");
    return LUA_OK;
}

static void usage(FILE *f, const char *prog) {
    fprintf(f,
            "usage: %s [script.lua [args...]]   run a script (arg as lua5.4 sets it)\n"
            "       %s -e 'code'                run a chunk\n"
            "       %s                          interactive REPL\n"
            "       %s --version | --help\n"
            "In -e and the REPL, farol, help and traceback are globals: help(x) shows what\n"
            "docs/API.md says about x (help() alone: an overview).  The REPL prints each\n"
            "value, completes names, fields and methods with Tab, and Ctrl-C interrupts\n"
            "the running statement; an error prints one line (traceback() for where it\n"
            "came from, .traceback on to print it every time; .help lists commands).\n",
            prog, prog, prog, prog);
}

/* --version: farol's and Lua's, then farol.config() when there is one */
static int version(lua_State *L) {
    int status = report(L, open_globals(L));
    if (status != LUA_OK) return status;
    lua_getglobal(L, "farol");
    lua_getfield(L, -1, "version");
    printf("farol %s (%s)\n", lua_tostring(L, -1), LUA_RELEASE);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "config") != LUA_TFUNCTION) return LUA_OK;
    status = report(L, docall(L, 0, 1));
    if (status != LUA_OK || !lua_istable(L, -1)) return status;
    /* key = value, sorted by key */
    static const char *sorter =
        "local c = ...; local k = {}; for n in pairs(c) do k[#k + 1] = tostring(n) end; table.sort(k)\n"
        "for _, n in ipairs(k) do print(string.format('  %-22s %s', n, tostring(c[n]))) end";
    if (luaL_loadstring(L, sorter) != LUA_OK) return report(L, LUA_ERRSYNTAX);
    lua_insert(L, -2);
    return report(L, docall(L, 1, 0));
}

int main(int argc, char **argv) {
    set_wait(argv);
    /* The runner is one OS thread running farol, so it may change the
     * thread count under load without the hazards of several OS threads
     * sharing OpenBLAS (docs/THREADS.md); and results no longer depend on the
     * count (the GEMMs, convolutions and attention are cut by shape), so
     * fewer threads under foreign load cost no bit of the answer.  A script
     * can still turn it off: farol.config{adaptive_threads = false}. */
    farol_set_adaptive_threads(true);
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
    const char *a1 = argc > 1 ? argv[1] : NULL;
    if (a1 && (strcmp(a1, "-h") == 0 || strcmp(a1, "--help") == 0)) {
        usage(stdout, argv[0]);
    } else if (a1 && (strcmp(a1, "-v") == 0 || strcmp(a1, "--version") == 0)) {
        status = version(L);
    } else if (a1 && strcmp(a1, "-e") == 0) {
        if (argc < 3) {
            usage(stderr, argv[0]);
            status = LUA_ERRRUN;
        } else {
            create_arg_table(L, argv, argc, 0);
            status = open_globals(L);
            if (status == LUA_OK) status = luaL_loadbuffer(L, argv[2], strlen(argv[2]), "=(command line)");
            if (status == LUA_OK) status = docall(L, 0, 0);
            report(L, status);
        }
    } else if (a1 && a1[0] == '-' && a1[1] != '\0') {
        fprintf(stderr, "farol: unknown option '%s'\n", a1);
        usage(stderr, argv[0]);
        status = LUA_ERRRUN;
    } else if (a1) {
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
