/* Several OS threads, each with its own lua_State using farol at the same
 * time, give the results a single thread gives.
 *
 *   threads_lua [threads (2-4, default 4)] [iterations (default 50)] [mixed]
 *
 * mixed: the states ask for different thread counts (1, 2, 1, 2): the count
 * is one for the process, so the first to set it wins and the others get a
 * clear error and run with it; every result must still be right (compared
 * within 1e-5 of the largest value: with two threads a sum's order may vary).
 * Without "mixed" every state asks for 1 thread and results must match bit for bit.
 *
 * First, on the main thread, one state per seed computes the reference
 * results (tests/threads/worker.lua: Saliency of a small CNN, seeded
 * normals, an error message).  Then each thread opens its own state with its
 * seed and repeats, `iterations` times: an error, the seeded normals, a
 * forward under no_grad, the Saliency; every result must equal the
 * reference bit for bit (so no thread's seed, grad mode or tape reached
 * another's), farol_last_error() must still be this thread's error, and
 * grad mode must be on again.  Each state calls
 * farol.set_num_threads(1), so no OpenMP team is spawned and sums run in one
 * fixed order.  Prints one line per check and "N passed, M failed"; exits
 * non-zero on a failure.  scripts/test runs it in the release, ASan and
 * ThreadSanitizer builds. */
#define _POSIX_C_SOURCE 200809L

#include "lua/binding.h"

#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 4
#define ATTR_NUMEL (4 * 3 * 32 * 32)
#define RANDOM_NUMEL 64

/* what one seed gives */
typedef struct {
    float attr[ATTR_NUMEL];
    float random[RANDOM_NUMEL];
    char error[256];
} results;

typedef struct {
    int seed, iterations;
    const results *ref;
    /* failures seen by the thread, per check (written by it, read after join) */
    int bad_attr, bad_random, bad_error, bad_last_error, bad_grad_mode, bad_lua;
    int threads;          /* the count its state runs with */
    char set_error[256];  /* set_num_threads' error, if it refused */
    char first_problem[512];
} worker;

static int passed, failed;
static bool mixed;
static int threads_of(int k) { return mixed ? 1 + k % 2 : 1; }
/* the largest |a - b| over n values, relative to the largest |b| */
static double rel_diff(const float *a, const float *b, int n) {
    double d = 0, m = 1e-30;
    for (int i = 0; i < n; i++) {
        double e = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
        if (e > d) d = e;
        if ((b[i] < 0 ? -b[i] : b[i]) > m) m = b[i] < 0 ? -b[i] : b[i];
    }
    return d / m;
}

static void check(bool ok, const char *what) {
    printf("%-6s %s\n", ok ? "ok" : "FAILED", what);
    if (ok) passed++;
    else failed++;
}

/* ---- one state ---- */

static lua_State *open_state(int seed, int threads, char *problem, size_t cap) {
    lua_State *L = luaL_newstate();
    if (!L) {
        snprintf(problem, cap, "cannot create a lua_State");
        return NULL;
    }
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, farol_lua_open);
    lua_setfield(L, -2, "farol");
    lua_pop(L, 1);
    if (luaL_loadfile(L, FAROL_THREADS_DIR "/worker.lua") != LUA_OK ||
        (lua_pushinteger(L, seed), lua_pushinteger(L, threads), lua_pcall(L, 2, 1, 0)) != LUA_OK) {
        snprintf(problem, cap, "worker.lua: %s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    return L;  /* the worker table at the top */
}

/* calls worker function name; leaves its result; false (and the message in
 * problem) on a Lua error */
static bool call(lua_State *L, const char *name, char *problem, size_t cap) {
    lua_getfield(L, 1, name);
    if (lua_pcall(L, 0, 1, 0) == LUA_OK) return true;
    snprintf(problem, cap, "%s: %s", name, lua_tostring(L, -1));
    lua_pop(L, 1);
    return false;
}

/* copies the float32 tensor at the top (n elements) and pops it */
static bool take_floats(lua_State *L, float *dst, int64_t n) {
    tensor_box *b = farol_lua_test_box(L, -1);
    bool ok = b && b->t && b->t->dtype == FAROL_F32 && farol_numel(b->t) == n;
    if (ok) farol_copy_to_buffer(b->t, dst, FAROL_F32);
    lua_pop(L, 1);
    return ok;
}

/* runs the calls of one iteration into r; false on any Lua error */
static bool run_once(lua_State *L, results *r, char *problem, size_t cap) {
    /* the error first: farol_last_error() must still hold it at the end */
    if (!call(L, "error", problem, cap)) return false;
    snprintf(r->error, sizeof r->error, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    if (!call(L, "random", problem, cap)) return false;
    if (!take_floats(L, r->random, RANDOM_NUMEL)) {
        snprintf(problem, cap, "random: not %d float32 values", RANDOM_NUMEL);
        return false;
    }
    if (!call(L, "forward_no_grad", problem, cap)) return false;
    lua_pop(L, 1);
    if (!call(L, "attribute", problem, cap)) return false;
    if (!take_floats(L, r->attr, ATTR_NUMEL)) {
        snprintf(problem, cap, "attribute: not a float32 tensor of %d elements", ATTR_NUMEL);
        return false;
    }
    return true;
}

/* ---- the threads ---- */

static void note(worker *w, int *counter, const char *fmt, int it) {
    if ((*counter)++ == 0 && !w->first_problem[0])
        snprintf(w->first_problem, sizeof w->first_problem, fmt, it);
}

/* The threads open their states together, before any other state exists
 * (the first farol_lua_open of the process runs in all of them at once),
 * wait while the main thread computes the references, then run. */
static pthread_barrier_t opened, go;
static bool references_ok;

static void *work(void *arg) {
    worker *w = arg;
    results *r = malloc(sizeof *r);
    lua_State *L = r ? open_state(w->seed, w->threads, w->first_problem, sizeof w->first_problem) : NULL;
    if (L) {
        lua_getfield(L, 1, "set_error");
        snprintf(w->set_error, sizeof w->set_error, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
        lua_pop(L, 1);
    }
    pthread_barrier_wait(&opened);
    pthread_barrier_wait(&go);
    if (!L || !references_ok) {
        w->bad_lua += !L;
        if (L) lua_close(L);
        free(r);
        return NULL;
    }
    for (int it = 0; it < w->iterations; it++) {
        char problem[512] = "";
        if (!run_once(L, r, problem, sizeof problem)) {
            if (w->bad_lua++ == 0) snprintf(w->first_problem, sizeof w->first_problem, "%s", problem);
            continue;
        }
        if (mixed ? rel_diff(r->attr, w->ref->attr, ATTR_NUMEL) > 1e-5
                  : memcmp(r->attr, w->ref->attr, sizeof r->attr) != 0)
            note(w, &w->bad_attr, "iteration %d: attribution differs from the single-thread one", it);
        if (memcmp(r->random, w->ref->random, sizeof r->random) != 0)
            note(w, &w->bad_random, "iteration %d: seeded normals differ", it);
        if (strcmp(r->error, w->ref->error) != 0)
            note(w, &w->bad_error, "iteration %d: error message differs", it);
        /* the C-level error is still the one this thread raised first,
         * whatever the others raised meanwhile */
        if (strcmp(r->error, farol_last_error()) != 0)
            note(w, &w->bad_last_error, "iteration %d: farol_last_error() is not this thread's", it);
        if (!farol_grad_enabled()) note(w, &w->bad_grad_mode, "iteration %d: grad mode left off", it);
    }
    lua_close(L);
    free(r);
    return NULL;
}

/* the references, one state per seed on this thread; run twice so that a
 * state that is not reproducible by itself is not blamed on threads */
static void compute_references(int n, results *ref) {
    static results again;
    bool repeatable = true;
    references_ok = true;
    for (int k = 0; k < n && references_ok; k++) {
        char problem[512] = "";
        /* in the mixed run: the count that won, as the thread states run */
        lua_State *L = open_state(11 * (k + 1), mixed ? farol_get_num_threads() : 1, problem, sizeof problem);
        references_ok = L && run_once(L, &ref[k], problem, sizeof problem) &&
                        run_once(L, &again, problem, sizeof problem);
        if (!references_ok) printf("reference for seed %d: %s\n", 11 * (k + 1), problem);
        else repeatable &= (mixed ? rel_diff(again.attr, ref[k].attr, ATTR_NUMEL) <= 1e-5 &&
                                    memcmp(again.random, ref[k].random, sizeof again.random) == 0
                                  : memcmp(&again, &ref[k], sizeof again) == 0) &&
                           strcmp(again.error, farol_last_error()) == 0;
        if (L) lua_close(L);
    }
    check(references_ok, "single-thread references computed");
    if (references_ok)
        check(repeatable, "single-thread results repeat bit for bit; the error survives the calls after it");
}

int main(int argc, char **argv) {
    int n_threads = argc > 1 ? atoi(argv[1]) : MAX_THREADS;
    int iterations = argc > 2 ? atoi(argv[2]) : 50;
    mixed = argc > 3 && strcmp(argv[3], "mixed") == 0;
    if (n_threads < 2 || n_threads > MAX_THREADS || iterations < 1) {
        fprintf(stderr, "usage: %s [threads 2-%d] [iterations >= 1]\n", argv[0], MAX_THREADS);
        return 2;
    }
    size_t live_before = farol_live_bytes();
    static results ref[MAX_THREADS];
    static worker w[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    pthread_barrier_init(&opened, NULL, (unsigned)n_threads + 1);
    pthread_barrier_init(&go, NULL, (unsigned)n_threads + 1);
    for (int k = 0; k < n_threads; k++) {
        w[k] = (worker){.seed = 11 * (k + 1), .iterations = iterations, .ref = &ref[k],
                        .threads = threads_of(k)};
        if (pthread_create(&tid[k], NULL, work, &w[k]) != 0) {
            /* the barriers would wait for it forever */
            fprintf(stderr, "threads_lua: cannot start thread %d\n", k + 1);
            return 1;
        }
    }
    pthread_barrier_wait(&opened);
    compute_references(n_threads, ref);
    pthread_barrier_wait(&go);
    for (int k = 0; k < n_threads; k++) pthread_join(tid[k], NULL);
    pthread_barrier_destroy(&opened);
    pthread_barrier_destroy(&go);

    char what[160];
    if (mixed && references_ok) {
        /* the count in force is one a state asked for; a state that asked
         * for another was told, by name */
        int in_force = farol_get_num_threads(), refused = 0, wrong = 0;
        for (int k = 0; k < n_threads; k++) {
            if (w[k].threads == in_force) wrong += w[k].set_error[0] != 0;
            else refused += strstr(w[k].set_error, "farol: set_num_threads:") != NULL;
            if (w[k].threads != in_force && !w[k].set_error[0]) wrong++;
            if (w[k].set_error[0]) printf("thread %d asked for %d threads: %s\n", k + 1, w[k].threads, w[k].set_error);
        }
        snprintf(what, sizeof what, "the thread count in force (%d) is one a state asked for; the %d "
                 "other requests were refused with a farol error", in_force, refused);
        check((in_force == 1 || in_force == 2) && wrong == 0, what);
    }
    for (int k = 0; k < n_threads && references_ok; k++) {
        const worker *x = &w[k];
        if (x->first_problem[0]) printf("thread %d (seed %d): %s\n", k + 1, x->seed, x->first_problem);
#define CHECK_THREAD(count, text)                                                            \
    snprintf(what, sizeof what, "thread %d: %s (%d iterations)", k + 1, text, iterations); \
    check(x->count == 0, what)
        CHECK_THREAD(bad_lua, "opened farol and every call succeeded");
        CHECK_THREAD(bad_attr, "Saliency bitwise equal to the single-thread result");
        CHECK_THREAD(bad_random, "manual_seed + randn give this thread's own normals");
        CHECK_THREAD(bad_error, "error messages are this thread's own");
        CHECK_THREAD(bad_last_error, "farol_last_error() is this thread's own");
        CHECK_THREAD(bad_grad_mode, "grad mode is on again after no_grad");
#undef CHECK_THREAD
    }
    /* every state is closed: no tensor of any thread may be left alive */
    check(farol_live_bytes() == live_before, "no engine bytes alive after every lua_close");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
