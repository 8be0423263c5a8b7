/* Memory and errors: the two things every layer needs first.
 *
 * All engine allocations go through farol_malloc & co. so that tests can
 * fail the Nth one (Lua's ltests.c does the same with debug_realloc) and so
 * that live storage bytes can be reported. */
#include "internal.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static _Thread_local char error_buf[512];

const char *farol_last_error(void) { return error_buf[0] ? error_buf : "farol: unknown error"; }

void farol_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_buf, sizeof error_buf, fmt, ap);
    va_end(ap);
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

void *farol_malloc(size_t n) {
    if (should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *farol_calloc(size_t n, size_t size) {
    if (should_fail()) return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void farol_free(void *p) { free(p); }

static atomic_size_t live_bytes;

size_t farol_live_bytes(void) { return atomic_load(&live_bytes); }

/* 64-byte aligned, with the size kept in front so live bytes can be counted */
void *farol_aligned_alloc(size_t n) {
    if (should_fail()) return NULL;
    if (n > ((size_t)1 << 46)) return NULL;  /* 64 TiB: refuse before rounding overflows */
    size_t total = (n + 64 + 63) & ~(size_t)63;
    char *raw = aligned_alloc(64, total);
    if (!raw) return NULL;
    *(size_t *)raw = n;
    atomic_fetch_add(&live_bytes, n);
    return raw + 64;
}

void farol_aligned_free(void *p) {
    if (!p) return;
    char *raw = (char *)p - 64;
    atomic_fetch_sub(&live_bytes, *(size_t *)raw);
    free(raw);
}
