/* The freed-buffer cache of src/tensor/alloc.c: a freed large block serves
 * the next request it can hold, the cache stays within 1.5x the peak of
 * blocks in use, the oldest blocks (a model's construction leftovers) go
 * first, and a repeated working set is served with no new block.  The
 * cache is off in sanitizer builds: the tests then only check that. */
#include "testutil.h"

#define MiB ((size_t)1 << 20)

static bool cache_on(void) {
    farol_release_cached_memory();
    if (farol_buffer_cache_enabled()) return true;
    void *p = farol_aligned_alloc(2 * MiB);
    farol_aligned_free(p);
    assert_int_equal(farol_cached_bytes(), 0);
    return false;
}

/* a freed block serves the next request of its size, or a smaller one;
 * small blocks are never cached */
static void test_cache_reuses_blocks(void **state) {
    (void)state;
    if (!cache_on()) return;
    char *a = farol_aligned_alloc(4 * MiB);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % 64, 0);
    a[0] = 1, a[4 * MiB - 1] = 2;
    farol_aligned_free(a);
    assert_true(farol_cached_bytes() >= 4 * MiB);
    char *b = farol_aligned_alloc(4 * MiB);
    assert_ptr_equal(a, b);
    assert_int_equal(farol_cached_bytes(), 0);
    farol_aligned_free(b);
    char *c = farol_aligned_alloc(3 * MiB); /* smaller: the same block */
    assert_ptr_equal(a, c);
    assert_int_equal(farol_live_bytes(), 3 * MiB);
    farol_aligned_free(c);
    char *d = farol_aligned_alloc(5 * MiB); /* larger: a new one */
    assert_ptr_not_equal(a, d);
    farol_aligned_free(d);
    void *s = farol_aligned_alloc(1000);
    size_t cached = farol_cached_bytes();
    farol_aligned_free(s);
    assert_int_equal(farol_cached_bytes(), cached);
    farol_release_cached_memory();
    assert_int_equal(farol_cached_bytes(), 0);
}

/* Construction leftovers go as soon as a working set needs the room, the
 * cache never holds more than 1.5x the peak in use minus what is in use,
 * and a repeated working set reuses its blocks. */
static void test_cache_cap_follows_working_set(void **state) {
    (void)state;
    if (!cache_on()) return;
    /* "construction": ten 2 MiB temporaries alive together, then freed */
    void *tmp[10];
    for (int i = 0; i < 10; i++) assert_non_null(tmp[i] = farol_aligned_alloc(2 * MiB));
    for (int i = 0; i < 10; i++) farol_aligned_free(tmp[i]);
    size_t leftovers = farol_cached_bytes();
    assert_true(leftovers >= 20 * MiB && leftovers < 21 * MiB);
    /* the working set: four 6 MiB blocks together, which no 2 MiB block
     * holds; 1.5x its peak leaves room for about 12 MiB of leftovers */
    void *w[4], *again[4];
    for (int i = 0; i < 4; i++) {
        assert_non_null(w[i] = farol_aligned_alloc(6 * MiB));
        double held = (double)(i + 1) * 6.01 * MiB, peak = held > 21.0 * MiB ? held : 21.0 * MiB;
        assert_true((double)farol_cached_bytes() + held <= 1.5 * peak);
    }
    size_t kept = farol_cached_bytes();
    assert_true(kept <= 13 * MiB && kept >= 10 * MiB);
    for (int i = 0; i < 4; i++) farol_aligned_free(w[i]);
    /* all four kept beside what was left of the leftovers */
    assert_true(farol_cached_bytes() >= kept + 24 * MiB);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 4; i++) assert_non_null(again[i] = farol_aligned_alloc(6 * MiB));
        for (int i = 0; i < 4; i++) {
            bool reused = false;
            for (int j = 0; j < 4; j++) reused |= again[i] == w[j];
            assert_true(reused);
        }
        for (int i = 0; i < 4; i++) farol_aligned_free(again[i]);
    }
    farol_release_cached_memory();
    assert_int_equal(farol_cached_bytes(), 0);
    /* released, the peak starts again from what is alive (nothing): one
     * 8 MiB block makes the peak, room for itself but not for two more */
    void *one = farol_aligned_alloc(8 * MiB);
    farol_aligned_free(one);
    assert_true(farol_cached_bytes() >= 8 * MiB);
    void *two[2] = {farol_aligned_alloc(3 * MiB), farol_aligned_alloc(3 * MiB)};
    assert_ptr_equal(two[0], one);
    farol_aligned_free(two[1]);
    farol_aligned_free(two[0]);
    assert_true(farol_cached_bytes() <= 12 * MiB + MiB / 8);
    farol_release_cached_memory();
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cache_reuses_blocks, tu_reset),
        cmocka_unit_test_setup(test_cache_cap_follows_working_set, tu_reset),
    };
    return tu_run(tests, argc, argv);
}
