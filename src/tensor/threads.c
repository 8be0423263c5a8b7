/* One thread count for OpenBLAS and OpenMP together: two pools sized to all
 * cores each would fight over them. */
#include "internal.h"

#include <cblas.h>
#include <omp.h>

static int num_threads;

void farol_set_num_threads(int n) {
    if (n < 1) n = 1;
    num_threads = n;
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

int farol_get_num_threads(void) {
    if (num_threads == 0) num_threads = omp_get_num_procs();
    return num_threads;
}
