/* Lua running out of memory in the middle of farol calls: a lua_State whose
 * allocator fails its N-th allocation, for every N through each scenario
 * (a Saliency call, farol.grad, tostring, max(dim), joins, index tables...).
 * After each injected failure the call must have returned (a Lua error or
 * success, never a crash), and once the garbage is collected the engine's
 * live bytes must be back where they were before the call: no tensor
 * leaked on the error path.  After lua_close they must be back to zero; the
 * ASan build's LeakSanitizer checks the rest at exit.
 *
 *   lua_alloc_fail [scenario-name]
 *
 * Lua retries an allocation after an emergency collection, so the retry of
 * the failed allocation fails too; later ones succeed, so the code that runs
 * after the error (cleanup, finalizers) is exercised as well.  Prints one
 * line per scenario and "N passed, M failed"; exits non-zero on a failure. */
#include "lua/binding.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long n_allocs, fail_at;  /* fail_at 0: never */
static bool retry_pending;
static size_t retry_size;
static long injected;

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    bool grows = ptr == NULL || nsize > osize;
    if (grows && retry_pending && nsize == retry_size) {
        retry_pending = false;
        return NULL;
    }
    retry_pending = false;
    if (grows && fail_at > 0 && ++n_allocs == fail_at) {
        retry_pending = true;
        retry_size = nsize;
        injected++;
        return NULL;
    }
    if (grows && fail_at <= 0) n_allocs++;
    return realloc(ptr, nsize);
}

/* each scenario: setup (run once, not failed) and the call (a chunk run
 * under pcall with failures injected) */
typedef struct {
    const char *name, *setup, *call;
} scenario;

static const scenario scenarios[] = {
    {"saliency",
     "local nn = farol.nn; farol.manual_seed(3)\n"
     "M = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))\n"
     "X = farol.randn(2, 4); S = farol.Saliency(M)",
     "return S:attribute(X, {1, 3})"},
    {"saliency_multi_input_args",
     "X1, X2 = farol.randn(2, 3), farol.randn(2, 3)\n"
     "S = farol.Saliency(function(a, b, k) return (a * b * k):sum(2) end)",
     "return S:attribute({X1, X2}, nil, false, {2})"},
    {"saliency_forward_raises",
     "X = farol.randn(2, 3)\n"
     "S = farol.Saliency(function(a) local y = a * 2; error('no') end)",
     "return S:attribute(X)"},
    {"grad",
     "X = farol.randn(3, 4):requires_grad(true); W = farol.randn(4, 2):requires_grad(true)",
     "local y = farol.matmul(X, W):tanh():sum(); return farol.grad({y}, {X, W})"},
    {"backward", "X = farol.randn(3, 4)",
     "local x = X:detach():requires_grad(true); (x * x):sum():backward(); return x.grad"},
    {"tostring", "X = farol.randn(4, 5)", "return tostring(X) .. tostring(X:to('int64'))"},
    {"max_dim", "X = farol.randn(4, 5)", "return X:max(2), X:min(1, true)"},
    {"cat_stack", "A, B = farol.randn(2, 3), farol.randn(2, 3)",
     "return farol.cat({A, B}, 2), farol.stack({A, B})"},
    {"index_tables", "X = farol.randn(5, 3); W = farol.randn(6, 2)",
     "return X:index_select(1, {1, 5, 2}), farol.embedding({{1, 2}, {6, 3}}, W), "
     "farol.cross_entropy(X, {1, 2, 3, 1, 2})"},
    {"creation", "",
     "return farol.tensor({{1, 2}, {3, 4}}), farol.zeros(2, 3), farol.arange(10), farol.eye(3)"},
    {"views", "X = farol.randn(2, 3, 4)",
     "return X:view(6, 4), X:permute(3, 1, 2), X:expand(2, 2, 3, 4), X[1], X:narrow(2, 1, 2)"},
    {"conv_pool", "X = farol.randn(1, 2, 6, 6); W = farol.randn(3, 2, 3, 3)",
     "local y = farol.conv2d(X, W, nil, {padding = 1}); return farol.max_pool2d(y, 2)"},
    {"listdir", "", "return farol._listdir('.')"},  /* the DIR must be closed on the error path */
    {NULL, NULL, NULL},
};

static int passed, failed;

static void check(bool ok, const char *fmt, const char *name, long a, long b) {
    printf("%-6s ", ok ? "ok" : "FAILED");
    printf(fmt, name, a, b);
    printf("\n");
    if (ok) passed++;
    else failed++;
}

static lua_State *open_farol(void) {
    lua_State *L = lua_newstate(alloc, NULL);
    luaL_openlibs(L);
    luaL_requiref(L, "farol", farol_lua_open, 1);
    lua_pop(L, 1);
    return L;
}

static void full_gc(lua_State *L) {
    lua_gc(L, LUA_GCCOLLECT);
    lua_gc(L, LUA_GCCOLLECT);
}

/* runs one scenario for every injection point; returns the points */
static long run(const scenario *s) {
    size_t base = farol_live_bytes();
    fail_at = 0;
    lua_State *L = open_farol();
    if (luaL_dostring(L, s->setup) != LUA_OK) {
        printf("FAILED %s: setup: %s\n", s->name, lua_tostring(L, -1));
        failed++;
        lua_close(L);
        return 0;
    }
    if (luaL_loadstring(L, s->call) != LUA_OK) {
        printf("FAILED %s: call: %s\n", s->name, lua_tostring(L, -1));
        failed++;
        lua_close(L);
        return 0;
    }
    int fn = lua_gettop(L);
    full_gc(L);
    size_t before = farol_live_bytes();
    /* a clean run: its allocation count bounds the injection points */
    n_allocs = 0;
    lua_pushvalue(L, fn);
    int rc = lua_pcall(L, 0, LUA_MULTRET, 0);
    long total = n_allocs;
    if (rc != LUA_OK && strcmp(s->name, "saliency_forward_raises") != 0) {
        printf("FAILED %s: the clean run raised: %s\n", s->name, lua_tostring(L, -1));
        failed++;
    }
    lua_settop(L, fn);
    full_gc(L);
    long leaks = 0, errors = 0, first_leak = 0;
    for (long k = 1; k <= total + 2; k++) {
        fail_at = k;
        n_allocs = 0;
        lua_pushvalue(L, fn);
        rc = lua_pcall(L, 0, LUA_MULTRET, 0);
        fail_at = 0;
        retry_pending = false;
        errors += rc != LUA_OK;
        lua_settop(L, fn);
        full_gc(L);
        if (farol_live_bytes() != before && leaks++ == 0) first_leak = k;
    }
    check(leaks == 0, "%s: %ld injection points, engine bytes back after each (first leak at %ld)",
          s->name, total + 2, first_leak);
    check(errors > 0, "%s: %ld injection points raised a Lua error (of %ld)", s->name, errors, total + 2);
    lua_close(L);
    check(farol_live_bytes() == base, "%s: no engine bytes alive after lua_close (%ld vs %ld)", s->name,
          (long)farol_live_bytes(), (long)base);
    return total + 2;
}

int main(int argc, char **argv) {
    long points = 0;
    farol_set_num_threads(1);
    for (const scenario *s = scenarios; s->name; s++)
        if (argc < 2 || strcmp(argv[1], s->name) == 0) points += run(s);
    printf("%ld injection points, %ld failures injected\n", points, injected);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
