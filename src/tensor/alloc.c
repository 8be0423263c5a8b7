/* Memory and errors: the two things every layer needs first.
 *
 * All engine allocations go through farol_malloc & co. so that tests can
 * fail the Nth one (Lua's ltests.c does the same with debug_realloc) and so
 * that live storage bytes can be reported. */
#include "internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

/* The message as set, with indices marked (FAROL_IX), and its text with
 * 0-based indices (the C API's) and with 1-based ones (the Lua binding's). */
static _Thread_local char error_raw[512], error_buf[512], error_buf1[512];

/* raw with each marked index n written as n + base (negatives as they are) */
static void render(char *dst, size_t cap, const char *raw, int base) {
    size_t k = 0;
    for (const char *p = raw; *p && k + 1 < cap;) {
        if (*p != FAROL_IX_OPEN[0]) {
            dst[k++] = *p++;
            continue;
        }
        char *end;
        long long v = strtoll(p + 1, &end, 10);
        if (*end != FAROL_IX_CLOSE[0]) { /* cut short by the buffer: drop the mark */
            p++;
            continue;
        }
        int w = snprintf(dst + k, cap - k, "%lld", v >= 0 ? v + base : v);
        k = w < 0 ? k : k + (size_t)w < cap ? k + (size_t)w : cap - 1;
        p = end + 1;
    }
    dst[k] = '\0';
}

const char *farol_last_error(void) { return error_buf[0] ? error_buf : "farol: unknown error"; }

const char *farol_last_error_1based(void) {
    if (!error_raw[0]) return "farol: unknown error";
    render(error_buf1, sizeof error_buf1, error_raw, 1);
    return error_buf1;
}

void farol_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_raw, sizeof error_raw, fmt, ap);
    va_end(ap);
    render(error_buf, sizeof error_buf, error_raw, 0);
}

/* the counting allocator (per thread, so tests in threads do not interfere) */
static _Thread_local int64_t alloc_count, alloc_fail_at;

void farol_alloc_fail_at(int64_t n) {
    alloc_count = 0;
    alloc_fail_at = n;
}

int64_t farol_alloc_count(void) { return alloc_count; }

static bool should_fail(void) {
    alloc_count++;
    return alloc_fail_at > 0 && alloc_count == alloc_fail_at;
}

/* blocks handed out and not yet freed: the test suites check it is 0 after
 * every test */
static atomic_int_fast64_t live_allocs;

int64_t farol_live_allocs(void) { return (int64_t)atomic_load(&live_allocs); }

void *farol_malloc(size_t n) {
    if (should_fail()) return NULL;
    void *p = malloc(n ? n : 1);
    if (p) atomic_fetch_add_explicit(&live_allocs, 1, memory_order_relaxed);
    return p;
}

void *farol_calloc(size_t n, size_t size) {
    if (should_fail()) return NULL;
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p) atomic_fetch_add_explicit(&live_allocs, 1, memory_order_relaxed);
    return p;
}

void *farol_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    void *q = realloc(p, n ? n : 1);
    if (q && !p) atomic_fetch_add_explicit(&live_allocs, 1, memory_order_relaxed);
    return q;
}

void farol_free(void *p) {
    if (p) atomic_fetch_sub_explicit(&live_allocs, 1, memory_order_relaxed);
    free(p);
}

static atomic_size_t live_bytes;

size_t farol_live_bytes(void) { return atomic_load(&live_bytes); }

/* A cache of freed large buffers.  An attribution loop allocates the same
 * activation sizes on every call; handing them back without returning them
 * to the kernel saves the page faults of touching fresh memory (measured at
 * several times the cost of the copy itself for big activations).  Bounded
 * in count and bytes; disabled in sanitizer builds so that use-after-free is
 * still caught. */
#define CACHE_MIN_BYTES ((size_t)1 << 20)
#define CACHE_SLOTS 64
#define CACHE_MAX_BYTES ((size_t)1 << 30)

#if defined(FAROL_NO_BUFFER_CACHE) || defined(__SANITIZE_ADDRESS__)
#define USE_CACHE 0
#else
#define USE_CACHE 1
#endif

static struct {
    pthread_mutex_t lock;
    char *block[CACHE_SLOTS];
    size_t total;
    int n;
} cache = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};

static size_t block_size(const char *raw) { return *(const size_t *)raw; }

/* Cached buffers come in size classes, eight per power of two (at most
 * 12.5 % over the size asked for), so that a block freed by one op serves
 * the next op's slightly different size (oneDNN's reorder buffers, a
 * layer's output after another's) instead of sitting in the cache beside a
 * new one.  The block's header keeps the size asked for (live bytes count
 * that); the memory behind it is the class size. */
static size_t size_class(size_t n) {
    if (n < CACHE_MIN_BYTES) return n;
    size_t step = (size_t)1 << (63 - __builtin_clzll((unsigned long long)n) - 3);
    return (n + step - 1) / step * step;
}

static char *cache_take(size_t n) {
    char *found = NULL;
    size_t c = size_class(n);
    pthread_mutex_lock(&cache.lock);
    for (int i = 0; i < cache.n; i++)
        if (size_class(block_size(cache.block[i])) == c) {
            found = cache.block[i];
            cache.total -= block_size(found);
            cache.block[i] = cache.block[--cache.n];
            break;
        }
    pthread_mutex_unlock(&cache.lock);
    if (found) *(size_t *)found = n;
    return found;
}

/* keeps raw, evicting the oldest blocks when over budget; false if refused */
static bool cache_put(char *raw) {
    size_t n = block_size(raw);
    if (n > CACHE_MAX_BYTES / 4) return false;
    char *evicted[CACHE_SLOTS];
    int n_evicted = 0;
    pthread_mutex_lock(&cache.lock);
    while (cache.n > 0 && (cache.n == CACHE_SLOTS || cache.total + n > CACHE_MAX_BYTES)) {
        evicted[n_evicted++] = cache.block[0];
        cache.total -= block_size(cache.block[0]);
        memmove(cache.block, cache.block + 1, (size_t)(cache.n - 1) * sizeof *cache.block);
        cache.n--;
    }
    cache.block[cache.n++] = raw;
    cache.total += n;
    pthread_mutex_unlock(&cache.lock);
    for (int i = 0; i < n_evicted; i++) free(evicted[i]);
    return true;
}

void farol_release_cached_memory(void) {
    pthread_mutex_lock(&cache.lock);
    while (cache.n > 0) free(cache.block[--cache.n]);
    cache.total = 0;
    pthread_mutex_unlock(&cache.lock);
}

/* 64-byte aligned, with the size kept in front so live bytes can be counted */
void *farol_aligned_alloc(size_t n) {
    if (should_fail()) return NULL;
    if (n > ((size_t)1 << 46)) return NULL;  /* 64 TiB: refuse before rounding overflows */
    char *raw = USE_CACHE && n >= CACHE_MIN_BYTES ? cache_take(n) : NULL;
    if (!raw) {
        size_t total = ((USE_CACHE ? size_class(n) : n) + 64 + 63) & ~(size_t)63;
        raw = aligned_alloc(64, total);
        if (!raw) return NULL;
        *(size_t *)raw = n;
    }
    atomic_fetch_add(&live_bytes, n);
    return raw + 64;
}

void farol_aligned_free(void *p) {
    if (!p) return;
    char *raw = (char *)p - 64;
    size_t n = block_size(raw);
    atomic_fetch_sub(&live_bytes, n);
    if (USE_CACHE && n >= CACHE_MIN_BYTES && cache_put(raw)) return;
    free(raw);
}
