/* Adaptive threads (off by default): the count for a given foreign load,
 * and a run with busy child processes on all cores but one, where farol
 * must drop to one thread (and stay at the count asked for when adaptation
 * is off). */
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

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_off_by_default, tu_reset),
        cmocka_unit_test_setup(test_threads_for_load, tu_reset),
        cmocka_unit_test_setup(test_busy_cores, tu_reset),
    };
    return tu_run(tests, argc, argv);
}
