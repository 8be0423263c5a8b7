/* Adaptive threads (off by default): the count for a given foreign load,
 * a run with busy child processes on all cores but one, where farol must
 * drop to one thread (and stay at the count asked for when adaptation is
 * off), and ops whose thread count changes between two calls. */
#define _GNU_SOURCE
#include "testutil.h"

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void test_threads_for_load(void **state) {
    assert_int_equal(farol_threads_for_load(2, 2, 0.0), 2);
    assert_int_equal(farol_threads_for_load(2, 2, 0.2), 2);   /* noise */
    assert_int_equal(farol_threads_for_load(2, 2, 0.5), 1);   /* a busy loop sharing with us */
    assert_int_equal(farol_threads_for_load(2, 2, 1.0), 1);
    assert_int_equal(farol_threads_for_load(2, 2, 2.0), 1);   /* never below one */
    assert_int_equal(farol_threads_for_load(2, 64, 10.0), 2); /* load on cores we do not need */
    assert_int_equal(farol_threads_for_load(8, 8, 2.0), 6);
    assert_int_equal(farol_threads_for_load(1, 2, 0.0), 1);
}

static void adapt_for(double seconds) {
    struct timespec nap = {0, 50 * 1000 * 1000};
    for (int i = 0; i < (int)(seconds / 0.05); i++) {
        farol_threads_adapt();
        nanosleep(&nap, NULL);
    }
}

static void test_off_by_default(void **state) { assert_false(farol_adaptive_threads()); }

static void test_busy_cores(void **state) {
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    int cores = CPU_COUNT(&set);
    if (cores < 2 || cores > 8) skip();
    int threads = farol_get_num_threads();
    farol_set_num_threads(2);
    farol_set_adaptive_threads(true);
    pid_t kids[8];
    for (int i = 0; i < cores - 1; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0)
            for (volatile unsigned long n = 0;; n++) {}
    }
    adapt_for(0.8);
    int busy_use = farol_threads_in_use();
    farol_set_adaptive_threads(false);
    int off_use = farol_threads_in_use();
    adapt_for(0.3);
    int off_after = farol_threads_in_use();
    for (int i = 0; i < cores - 1; i++) {
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
    }
    farol_set_num_threads(threads);
    assert_int_equal(busy_use, 1);
    assert_int_equal(off_use, 2);
    assert_int_equal(off_after, 2);
}

/* attention, convolution and matmul, forward and input gradients, with the
 * count switching between 1 and 2 at every adaptation point (as adaptive
 * threads may under a changing load): the same bits as at a fixed count,
 * and (under ASan) no per-thread buffer sized for one count and used by
 * another */
static void run_ops(farol_tensor **res) {
    farol_manual_seed(21);
    int64_t qs[3] = {2, 40, 192}, xs[4] = {4, 16, 20, 20}, ws[4] = {16, 16, 3, 3}, as[2] = {96, 300},
            bs[2] = {300, 200};
    farol_tensor *qkv = farol_randn(3, qs, FAROL_F32), *x = farol_randn(4, xs, FAROL_F32);
    farol_tensor *w = farol_randn(4, ws, FAROL_F32), *a = farol_randn(2, as, FAROL_F32);
    farol_tensor *b = farol_randn(2, bs, FAROL_F32);
    farol_tensor *ins[] = {qkv, x, a};
    for (int i = 0; i < 3; i++) assert_int_equal(farol_set_requires_grad(ins[i], true), 0);
    farol_conv_opts co = farol_conv_defaults();
    co.padding[0] = co.padding[1] = 1;
    farol_tensor *y[3] = {farol_self_attention(qkv, 4, NULL), farol_conv2d(x, w, NULL, &co), farol_matmul(a, b)};
    for (int i = 0; i < 3; i++) {
        assert_non_null(y[i]);
        farol_tensor *g = farol_randn(y[i]->ndim, y[i]->shape, FAROL_F32), *gx = NULL;
        assert_int_equal(farol_grad(1, &y[i], &g, 1, &ins[i], &gx), 0);
        res[2 * i] = y[i];
        res[2 * i + 1] = gx;
        farol_release(g);
    }
    farol_tensor *all[] = {qkv, x, w, a, b};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) farol_release(all[i]);
}

static void test_count_changes_between_calls(void **state) {
    int threads = farol_get_num_threads();
    farol_set_num_threads(2);
    farol_tensor *fixed[6], *flipping[6];
    run_ops(fixed);
    farol_threads_flip_for_tests(true);
    run_ops(flipping);
    farol_threads_flip_for_tests(false);
    farol_set_num_threads(threads);
    for (int i = 0; i < 6; i++) {
        int64_t n = farol_numel(fixed[i]);
        assert_int_equal(n, farol_numel(flipping[i]));
        assert_memory_equal(farol_data(fixed[i]), farol_data(flipping[i]), (size_t)n * sizeof(float));
        farol_release(fixed[i]);
        farol_release(flipping[i]);
    }
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_off_by_default, tu_reset),
        cmocka_unit_test_setup(test_threads_for_load, tu_reset),
        cmocka_unit_test_setup(test_busy_cores, tu_reset),
        cmocka_unit_test_setup(test_count_changes_between_calls, tu_reset),
    };
    return tu_run(tests, argc, argv);
}
