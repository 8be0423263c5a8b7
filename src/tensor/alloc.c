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
 * several times the cost of the copy itself for big activations, and a
 * fault is ~5 us per 4 KiB page on a virtual machine).
 *
 * Large blocks are mapped directly (mmap), so that a block the cache lets
 * go returns to the kernel at once (glibc's malloc raises its mmap
 * threshold after freeing big blocks and keeps blocks up to 32 MiB in its
 * heap).  A request takes the smallest cached block that holds it, even a
 * much larger one: activations shrink layer after layer, so the blocks a
 * backward frees serve the next forward's smaller tensors.
 *
 * The cap follows the working set: the mapped bytes of blocks in use plus
 * those cached stay within 1.5x the peak of blocks in use (and the cache
 * within CACHE_MAX_BYTES).  Over the cap the oldest cached blocks go first:
 * leftovers of building a model (random init temporaries) go as soon as an
 * attribution needs the room.  Replaying a ResNet-18 attribution's
 * allocations, 1.5x is the smallest factor that leaves no fresh block in a
 * repeated call.  Disabled in sanitizer builds so that use-after-free is
 * still caught. */
#define CACHE_MIN_BYTES ((size_t)1 << 20)
#define CACHE_SLOTS 64
#define CACHE_MAX_BYTES ((size_t)1 << 30)

#if defined(FAROL_NO_BUFFER_CACHE) || defined(__SANITIZE_ADDRESS__)
#define USE_CACHE 0
#else
#define USE_CACHE 1
#include <sys/mman.h>
#endif

/* a block's 64-byte header: the size asked for (live bytes count it) and,
 * for a mapped block, its usable bytes after the header */
typedef struct {
    size_t n, cap;
} block_head;

static block_head *head(char *raw) { return (block_head *)raw; }

static struct {
    pthread_mutex_t lock;
    char *block[CACHE_SLOTS]; /* oldest first */
    size_t total;             /* their cap bytes */
    size_t held, peak_held;   /* cap bytes of mapped blocks in use, and their peak */
    int n;
} cache = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0, 0, 0};

bool farol_buffer_cache_enabled(void) { return USE_CACHE; }

size_t farol_cached_bytes(void) {
    pthread_mutex_lock(&cache.lock);
    size_t t = cache.total;
    pthread_mutex_unlock(&cache.lock);
    return t;
}

#if USE_CACHE
/* Mapped sizes come in classes, eight per power of two (at most 12.5 % over
 * the size asked for), so that a block serves later requests of slightly
 * different sizes (oneDNN's reorder buffers, a layer's output after
 * another's). */
static size_t map_bytes(size_t n) {
    size_t step = (size_t)1 << (63 - __builtin_clzll((unsigned long long)n) - 3);
    return ((n + step - 1) / step * step + 64 + 4095) & ~(size_t)4095;
}

static void unmap(char *raw) { munmap(raw, head(raw)->cap + 64); }

/* under cache.lock: moves the oldest blocks to out until the cache holds at
 * most `keep` bytes; returns how many (unmapped outside the lock) */
static int evict_locked(size_t keep, char **out) {
    int k = 0;
    while (k < cache.n && cache.total > keep) {
        cache.total -= head(cache.block[k])->cap;
        out[k] = cache.block[k];
        k++;
    }
    memmove(cache.block, cache.block + k, (size_t)(cache.n - k) * sizeof *cache.block);
    cache.n -= k;
    return k;
}

/* under cache.lock: the bytes the cache may hold now */
static size_t room_locked(void) {
    size_t limit = cache.peak_held / 2 * 3, room = limit > cache.held ? limit - cache.held : 0;
    return room < CACHE_MAX_BYTES ? room : CACHE_MAX_BYTES;
}

static void unmap_all(char **blocks, int n) {
    for (int i = 0; i < n; i++) unmap(blocks[i]);
}

/* a cached block for n bytes, or a new mapping; NULL when out of memory */
static char *big_alloc(size_t n) {
    char *found = NULL, *evicted[CACHE_SLOTS];
    int k = 0;
    pthread_mutex_lock(&cache.lock);
    int best = -1;
    /* the newest of the smallest that fit, at most 32x too big */
    for (int i = cache.n - 1; i >= 0; i--) {
        size_t c = head(cache.block[i])->cap;
        if (c >= n && c / 32 <= n && (best < 0 || c < head(cache.block[best])->cap)) best = i;
    }
    if (best >= 0) {
        found = cache.block[best];
        cache.total -= head(found)->cap;
        memmove(cache.block + best, cache.block + best + 1,
                (size_t)(cache.n - 1 - best) * sizeof *cache.block);
        cache.n--;
    } else {
        /* the new block counts as held: make room for it first */
        size_t cap = map_bytes(n) - 64;
        cache.held += cap;
        if (cache.held > cache.peak_held) cache.peak_held = cache.held;
        k = evict_locked(room_locked(), evicted);
        cache.held -= cap;
    }
    if (found) {
        cache.held += head(found)->cap;
        if (cache.held > cache.peak_held) cache.peak_held = cache.held;
    }
    pthread_mutex_unlock(&cache.lock);
    unmap_all(evicted, k);
    if (!found) {
        size_t len = map_bytes(n);
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
        found = p;
        head(found)->cap = len - 64;
        pthread_mutex_lock(&cache.lock);
        cache.held += len - 64;
        pthread_mutex_unlock(&cache.lock);
    }
    head(found)->n = n;
    return found;
}

/* keeps raw for reuse (the oldest blocks go to make room), or unmaps it */
static void big_free(char *raw) {
    size_t cap = head(raw)->cap;
    char *evicted[CACHE_SLOTS + 1];
    pthread_mutex_lock(&cache.lock);
    cache.held -= cap;
    size_t room = room_locked();
    int k = 0;
    if (cap <= room) {
        k = evict_locked(room - cap, evicted);
        if (cache.n == CACHE_SLOTS) k += evict_locked(cache.total - head(cache.block[0])->cap, evicted + k);
        cache.block[cache.n++] = raw;
        cache.total += cap;
    } else {
        evicted[k++] = raw;
    }
    pthread_mutex_unlock(&cache.lock);
    unmap_all(evicted, k);
}
#endif

void farol_release_cached_memory(void) {
#if USE_CACHE
    char *evicted[CACHE_SLOTS];
    pthread_mutex_lock(&cache.lock);
    int k = evict_locked(0, evicted);
    cache.peak_held = cache.held; /* the working set is measured again from here */
    pthread_mutex_unlock(&cache.lock);
    unmap_all(evicted, k);
#endif
}

/* 64-byte aligned, with the size kept in front so live bytes can be counted */
void *farol_aligned_alloc(size_t n) {
    if (should_fail()) return NULL;
    if (n > ((size_t)1 << 46)) return NULL;  /* 64 TiB: refuse before rounding overflows */
    char *raw;
#if USE_CACHE
    if (n >= CACHE_MIN_BYTES) raw = big_alloc(n);
    else
#endif
    {
        raw = aligned_alloc(64, (n + 64 + 63) & ~(size_t)63);
        if (raw) head(raw)->cap = 0;
    }
    if (!raw) return NULL;
    head(raw)->n = n;
    atomic_fetch_add(&live_bytes, n);
    return raw + 64;
}

void farol_aligned_free(void *p) {
    if (!p) return;
    char *raw = (char *)p - 64;
    atomic_fetch_sub(&live_bytes, head(raw)->n);
#if USE_CACHE
    if (head(raw)->cap) {
        big_free(raw);
        return;
    }
#endif
    free(raw);
}
