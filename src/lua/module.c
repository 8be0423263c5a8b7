/* luaopen: builds the farol table from the C parts, then loads the pure-Lua
 * parts (the files in lua/farol/, compiled in: see embedded.h), which add nn, Saliency and friends to it. */
#include "binding.h"
#include "lua/embedded.h"

#include <pthread.h>
#include <time.h>

/* The thread count is one for the process (src/tensor/threads.c says why).
 * A state may set it while it is the only lua_State with farol open, or
 * when no state has set it yet, or to the value in force; otherwise the
 * call is an error rather than a silent change under the other states'
 * feet. */
static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static int open_states;  /* lua_States with farol open */
static int chosen;       /* the count a state set, 0 until one did */
static const char state_key = 's';

static int state_closed(lua_State *L) {
    pthread_mutex_lock(&threads_lock);
    open_states--;
    pthread_mutex_unlock(&threads_lock);
    return 0;
}

/* counts this state once, whatever the number of times farol is opened in it */
static void count_state(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key) != LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_newuserdatauv(L, 1, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, state_closed);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    pthread_mutex_lock(&threads_lock);
    open_states++;
    pthread_mutex_unlock(&threads_lock);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &state_key);
}

static int l_set_num_threads(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 1 || n > 1024) return farol_error(L, "farol: set_num_threads: n must be 1 to 1024, got %lld", n);
    pthread_mutex_lock(&threads_lock);
    int was = chosen, others = open_states - 1;
    bool refused = was && n != was && others > 0;
    if (!refused) {
        chosen = (int)n;
        farol_set_num_threads((int)n);
    }
    pthread_mutex_unlock(&threads_lock);
    if (refused)
        return farol_error(L, "farol: set_num_threads: the thread count is one for the whole process "
                          "(OpenBLAS keeps one); it is %d and %d other lua_State%s with farol %s open, "
                          "so it cannot change to %lld now (give every state the same count)",
                          was, others, others > 1 ? "s" : "", others > 1 ? "are" : "is", n);
    return 0;
}

static int l_get_num_threads(lua_State *L) {
    lua_pushinteger(L, farol_get_num_threads());
    return 1;
}

/* farol.clock() -> seconds on a monotonic wall clock (os.clock is CPU time,
 * which counts every thread) */
static int l_clock(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + 1e-9 * (lua_Number)ts.tv_nsec);
    return 1;
}

static void set_str(lua_State *L, const char *key, const char *v) {
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, key);
}

/* farol.config([{fast_conv = bool, fast_gemm = bool, winograd = bool, adaptive_threads = bool}])
 * -> {blas, blas_version, blas_core, blas_core_chosen_by, blas_core_replaced?,
 * dnnl_version?, dnnl_isa?, kernel_isa, fast_conv, fast_gemm, winograd, threads,
 * threads_in_use, adaptive_threads} */
static int l_config(lua_State *L) {
    int top = lua_gettop(L);
    if (top > 1) return farol_error(L, "farol: config: takes at most one argument (an options table), got %d", top);
    static const char *const valid[] = {"fast_conv", "fast_gemm", "winograd", "adaptive_threads", NULL};
    /* (check_options returns 0 for nil: farol.config(nil) is farol.config()) */
    if (top == 1 && farol_lua_check_options(L, 1, "config", valid) != 0) {
        /* check every value before changing anything */
        for (int pass = 0; pass < 2; pass++) {
            lua_pushnil(L);
            while (lua_next(L, 1)) {
                const char *k = lua_tostring(L, -2);  /* a valid name: a string */
                bool fast = strcmp(k, "fast_conv") == 0, wino = strcmp(k, "winograd") == 0;
                bool adapt = strcmp(k, "adaptive_threads") == 0, gemm = strcmp(k, "fast_gemm") == 0;
                if (!lua_isboolean(L, -1))
                    return farol_error(L, "farol: config: %s must be a boolean, got %s", k, luaL_typename(L, -1));
                if (pass == 1 && fast) farol_set_fast_conv(lua_toboolean(L, -1));
                if (pass == 1 && wino) farol_set_conv_winograd(lua_toboolean(L, -1));
                if (pass == 1 && adapt) farol_set_adaptive_threads(lua_toboolean(L, -1));
                if (pass == 1 && gemm) farol_set_fast_gemm(lua_toboolean(L, -1));
                lua_pop(L, 1);
            }
        }
    }
    farol_config_info c;
    farol_get_config(&c);
    lua_createtable(L, 0, 9);
    set_str(L, "blas", c.blas);
    set_str(L, "blas_version", c.blas_version);
    set_str(L, "blas_core", c.blas_core);
    set_str(L, "blas_core_chosen_by", c.blas_core_chosen_by);
    set_str(L, "blas_core_replaced", c.blas_core_replaced);
    set_str(L, "dnnl_version", c.dnnl_version);
    set_str(L, "dnnl_isa", c.dnnl_isa);
    set_str(L, "kernel_isa", c.kernel_isa);
    lua_pushboolean(L, farol_fast_conv_enabled());
    lua_setfield(L, -2, "fast_conv");
    lua_pushboolean(L, farol_fast_gemm_enabled());
    lua_setfield(L, -2, "fast_gemm");
    lua_pushboolean(L, farol_conv_winograd_enabled());
    lua_setfield(L, -2, "winograd");
    lua_pushinteger(L, c.threads);
    lua_setfield(L, -2, "threads");
    lua_pushinteger(L, c.threads_in_use);
    lua_setfield(L, -2, "threads_in_use");
    lua_pushboolean(L, farol_adaptive_threads());
    lua_setfield(L, -2, "adaptive_threads");
    return 1;
}

static const luaL_Reg funcs[] = {
    {"set_num_threads", l_set_num_threads}, {"get_num_threads", l_get_num_threads},
    {"clock", l_clock}, {"config", l_config}, {NULL, NULL},
};

/* package.preload[name] for a source compiled in: runs it as require
 * would run the file, with the module name as its argument */
static int load_embedded(lua_State *L) {
    const farol_lua_source *m = &farol_lua_sources[lua_tointeger(L, lua_upvalueindex(1))];
    if (m->text) {
        lua_pushlstring(L, m->src, m->len);
        return 1;
    }
    if (luaL_loadbuffer(L, m->src, m->len, m->chunk) != LUA_OK) return lua_error(L);
    lua_pushstring(L, m->name);
    lua_call(L, 1, 1);
    return 1;
}

/* every lua/farol file becomes a preload entry: found wherever farol.so is,
 * without touching the host's package.path */
static void preload_lua(lua_State *L) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (int i = 0; farol_lua_sources[i].name; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, farol_lua_sources[i].name);
    }
    lua_pop(L, 1);
}

/* one pool size for OpenBLAS and OpenMP from the start, set once even when
 * several threads open farol at the same time */
static pthread_once_t threads_once = PTHREAD_ONCE_INIT;

static void init_threads(void) { farol_set_num_threads(farol_get_num_threads()); }

int farol_lua_open(lua_State *L) {
    pthread_once(&threads_once, init_threads);
    count_state(L);
    lua_newtable(L);            /* farol */
    farol_lua_tensor(L);        /* farol methods */
    farol_lua_ops(L);
    farol_lua_autograd(L);
    farol_lua_attr(L);
    farol_lua_io(L);
    farol_lua_options(L);
    farol_lua_image(L);
    lua_pop(L, 1);              /* farol */
    luaL_setfuncs(L, funcs, 0);
    lua_pushliteral(L, FAROL_VERSION);
    lua_setfield(L, -2, "version");

    /* the Lua parts require("farol") and get this table; when farol is
     * opened again (a script cleared package.loaded.farol), they are loaded
     * again too, so that they fill this table rather than the old one */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "farol");
    for (bool again = true; again;) {  /* restart after each removal: lua_next needs the key */
        again = false;
        for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
            if (lua_type(L, -2) == LUA_TSTRING && strncmp(lua_tostring(L, -2), "farol.", 6) == 0) {
                lua_pop(L, 1);
                lua_pushnil(L);
                lua_rawset(L, -3);
                again = true;
                break;
            }
        }
    }
    lua_pop(L, 1);
    preload_lua(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "farol.prelude");
    lua_call(L, 1, 0);
    return 1;
}
