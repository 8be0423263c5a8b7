/* One thread count for OpenBLAS and OpenMP together: two pools sized to all
 * cores each would fight over them. */
#include "internal.h"

#include <cblas.h>
#include <omp.h>
#include <stdatomic.h>

static atomic_int num_threads;  /* 0 until set: all cores */

void farol_set_num_threads(int n) {
    if (n < 1) n = 1;
    atomic_store(&num_threads, n);
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

int farol_get_num_threads(void) {
    int n = atomic_load(&num_threads);
    return n > 0 ? n : omp_get_num_procs();
}
