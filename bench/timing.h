/* The clock and the sort order the C benchmarks (sgemm_peak, gemm_shapes)
 * share for their medians. */
#ifndef FAROL_BENCH_TIMING_H
#define FAROL_BENCH_TIMING_H

#include <time.h>

/* seconds on a monotonic clock */
static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* qsort order of doubles */
static inline int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
