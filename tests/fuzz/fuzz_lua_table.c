/* libFuzzer harness: farol.tensor on whatever Lua value the input evaluates to.
 *
 *   tests/fuzz/run.sh lua_table 60     (builds with clang, fuzzes 60 seconds)
 *
 * Each input gets a fresh lua_State with farol, runs as the text chunk
 * "return <input>" in a small sandbox (farol.tensor, setmetatable, math
 * constants: no files, no load, no pcall to swallow the limits), then
 * farol.tensor(value [, "int64" | "float64"]) and, on success, x:sum(),
 * x:view(-1), tostring(x) and x:totable(), which must give back exactly
 * the numbers an int64 or float64 tensor accepted.  Errors are fine; a
 * crash, a sanitizer report, a leak or a broken invariant (__builtin_trap)
 * is not.
 * An instruction-count hook and a 64 MB cap on Lua's allocator keep every
 * input short.  Replayed over the corpus by tests/fuzz/replay.c. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int farol_lua_open(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__asan_default_options(void);

/* A table whose __len claims 2^40 elements makes farol ask for terabytes,
 * which the release build's allocator refuses (farol then raises "out of
 * memory").  ASan aborts on such a request unless told to return NULL too;
 * run.sh also lifts libFuzzer's own -malloc_limit_mb for this target. */
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

#define MEM_CAP ((size_t)64 << 20)
#define MAX_INSTRUCTIONS 100000

/* ---- limits ---- */

typedef struct {
    size_t used;
} budget;

/* lua_Alloc that refuses to grow past MEM_CAP (Lua then raises a memory error) */
static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    budget *b = ud;
    size_t old = ptr ? osize : 0;  /* without ptr, osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        b->used -= old;
        return NULL;
    }
    if (nsize > old && b->used - old + nsize > MEM_CAP) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) b->used = b->used - old + nsize;
    return p;
}

static void out_of_steps(lua_State *L, lua_Debug *ar) {
    (void)ar;
    luaL_error(L, "fuzz: instruction limit");
}

/* a fresh instruction budget for the next call */
static void arm(lua_State *L) { lua_sethook(L, out_of_steps, LUA_MASKCOUNT, MAX_INSTRUCTIONS); }

/* ---- the state ---- */

/* base, package, string, table, math (farol's Lua parts need them), then
 * require("farol") through package.preload as build/farol does */
static int open_state(lua_State *L) {
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base}, {LUA_LOADLIBNAME, luaopen_package},
        {LUA_STRLIBNAME, luaopen_string}, {LUA_TABLIBNAME, luaopen_table},
        {LUA_MATHLIBNAME, luaopen_math}, {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->name; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, farol_lua_open);
    lua_setfield(L, -2, "farol");
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "farol");
    lua_call(L, 1, 1);
    return 1;
}

/* the chunk's _ENV: what an input may name.  farol is a copy holding only
 * tensor, so that an input cannot ask for a terabyte through farol.zeros. */
static void push_sandbox(lua_State *L, int farol) {
    lua_createtable(L, 0, 4);
    lua_createtable(L, 0, 1);
    lua_getfield(L, farol, "tensor");
    lua_setfield(L, -2, "tensor");
    lua_setfield(L, -2, "farol");
    lua_getglobal(L, "setmetatable");
    lua_setfield(L, -2, "setmetatable");
    lua_createtable(L, 0, 4);
    lua_getglobal(L, "math");
    static const char *const consts[] = {"huge", "pi", "maxinteger", "mininteger"};
    for (size_t k = 0; k < sizeof consts / sizeof *consts; k++) {
        lua_getfield(L, -1, consts[k]);
        lua_setfield(L, -3, consts[k]);
    }
    lua_pop(L, 1);
    lua_setfield(L, -2, "math");
}

/* ---- the calls ---- */

/* calls method name of the tensor at x with extra args; leaves one result */
static void method(lua_State *L, int x, const char *name, int nargs) {
    lua_getfield(L, x, name);
    lua_pushvalue(L, x);
    if (nargs) {
        lua_rotate(L, -nargs - 2, 2);  /* fn, self before the args */
    }
    lua_call(L, nargs + 1, 1);
}

/* 1 when got (from x:totable()) holds exactly the numbers of src, 0 when it
 * does not, -1 when there is nothing exact to compare: src is not a plain
 * nested array of numbers (booleans, strings, metatables), or it holds an
 * integer beyond 2^53 and the dtype is float64 */
static int same_numbers(lua_State *L, int src, int got, bool f64) {
    luaL_checkstack(L, 4, "same_numbers");
    if (lua_type(L, src) == LUA_TNUMBER) {
        if (lua_type(L, got) != LUA_TNUMBER) return 0;
        if (f64 && lua_isinteger(L, src)) {
            lua_Integer i = lua_tointeger(L, src);
            if (i > ((lua_Integer)1 << 53) || i < -((lua_Integer)1 << 53)) return -1;
        }
        double a = lua_tonumber(L, src), b = lua_tonumber(L, got);
        if (a != a) return b != b;
        return lua_compare(L, src, got, LUA_OPEQ);  /* exact, integers and floats alike */
    }
    if (lua_type(L, src) != LUA_TTABLE) return -1;
    if (lua_getmetatable(L, src)) {
        lua_pop(L, 1);
        return -1;
    }
    lua_Unsigned n = lua_rawlen(L, src);
    if (lua_type(L, got) != LUA_TTABLE || lua_rawlen(L, got) != n) return 0;
    int result = 1;
    for (lua_Unsigned k = 1; k <= n && result != 0; k++) {
        lua_rawgeti(L, src, (lua_Integer)k);
        lua_rawgeti(L, got, (lua_Integer)k);
        int r = same_numbers(L, lua_gettop(L) - 1, lua_gettop(L), f64);
        lua_pop(L, 2);
        if (r <= 0) result = r;
    }
    return result;
}

/* (tensor_fn, value, dtype|nil): the conversion, then the ops; raises on any
 * error, traps on a broken invariant */
static int convert(lua_State *L) {
    lua_settop(L, 3);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_call(L, 2, 1);
    int x = lua_gettop(L);
    /* farol.tensor gives a tensor or raises */
    lua_getfield(L, x, "numel");
    if (!lua_isfunction(L, -1)) __builtin_trap();
    lua_pushvalue(L, x);
    lua_call(L, 1, 1);
    lua_Integer numel = lua_tointeger(L, -1);
    if (numel < 0) __builtin_trap();
    if (!lua_isnoneornil(L, 3)) {
        method(L, x, "dtype", 0);
        if (strcmp(lua_tostring(L, -1), lua_tostring(L, 3)) != 0) __builtin_trap();
    }
    lua_settop(L, x);

    method(L, x, "sum", 0);
    lua_settop(L, x);
    lua_pushinteger(L, -1);
    method(L, x, "view", 1);
    /* the flat view has every element */
    method(L, lua_gettop(L), "numel", 0);
    if (lua_tointeger(L, -1) != numel) __builtin_trap();
    lua_settop(L, x);
    luaL_tolstring(L, x, NULL);
    lua_settop(L, x);
    method(L, x, "totable", 0);
    /* int64 and float64 keep every value they accepted: totable gives them back */
    if (!lua_isnoneornil(L, 3) && same_numbers(L, 2, lua_gettop(L), strcmp(lua_tostring(L, 3), "float64") == 0) == 0)
        __builtin_trap();
    return 0;
}

/* runs convert under pcall with a fresh instruction budget */
static void try_convert(lua_State *L, int tensor_fn, int value, const char *dtype) {
    lua_pushcfunction(L, convert);
    lua_pushvalue(L, tensor_fn);
    lua_pushvalue(L, value);
    if (dtype) lua_pushstring(L, dtype);
    else lua_pushnil(L);
    arm(L);
    lua_pcall(L, 3, 0, 0);
    lua_settop(L, value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    budget b = {0};
    lua_State *L = lua_newstate(capped_alloc, &b);
    if (!L) return 0;
    lua_pushcfunction(L, open_state);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) __builtin_trap();  /* farol must load */
    int farol = lua_gettop(L);
    lua_getfield(L, farol, "tensor");
    int tensor_fn = lua_gettop(L);

    luaL_Buffer chunk;
    luaL_buffinit(L, &chunk);
    luaL_addstring(&chunk, "return ");
    luaL_addlstring(&chunk, (const char *)data, size);
    luaL_pushresult(&chunk);
    size_t len;
    const char *code = lua_tolstring(L, -1, &len);
    if (luaL_loadbufferx(L, code, len, "=input", "t") == LUA_OK) {
        push_sandbox(L, farol);
        if (!lua_setupvalue(L, -2, 1)) __builtin_trap();  /* a main chunk's only upvalue is _ENV */
        arm(L);
        if (lua_pcall(L, 0, 1, 0) == LUA_OK) {
            int value = lua_gettop(L);
            try_convert(L, tensor_fn, value, NULL);
            try_convert(L, tensor_fn, value, "int64");
            try_convert(L, tensor_fn, value, "float64");
        }
    }
    arm(L);  /* finalizers an input set up run in lua_close, limited too */
    lua_close(L);
    return 0;
}
