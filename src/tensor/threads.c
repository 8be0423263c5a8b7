/* One thread count for OpenBLAS and OpenMP together: two pools sized to all
 * cores each would fight over them.
 *
 * The count is one for the whole process: OpenBLAS keeps one (and its
 * OpenMP build reallocates its per-thread buffers when a call comes with
 * another count than the last, under the feet of a call running in another
 * thread).  OpenMP's count, though, is per OS thread, so each thread that
 * runs farol applies the process's count to itself before it works
 * (farol_sync_num_threads): every thread then asks OpenBLAS for the same. */
#include "internal.h"

#include <cblas.h>
#include <omp.h>
#include <stdatomic.h>

static atomic_int num_threads;        /* 0 until set: all cores */
static _Thread_local int applied;     /* the count this OS thread's OpenMP was given */

void farol_set_num_threads(int n) {
    if (n < 1) n = 1;
    atomic_store(&num_threads, n);
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
    applied = n;
}

void farol_sync_num_threads(void) {
    int n = atomic_load_explicit(&num_threads, memory_order_relaxed);
    if (n > 0 && n != applied) {
        omp_set_num_threads(n);
        applied = n;
    }
}

int farol_get_num_threads(void) {
    int n = atomic_load(&num_threads);
    return n > 0 ? n : omp_get_num_procs();
}
