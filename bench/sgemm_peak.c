/* sgemm_peak: the sgemm rate farol's BLAS reaches on this machine, the
 * practical ceiling for farol's GFLOP/s (scripts/bench reports farol's rate
 * as a share of it).  Linked with libfarol, so it runs the kernel farol
 * chooses.  Square row-major NN sgemm, n = 2048, 1 and 2 threads; each
 * figure is the median (and best) of W windows of >= 0.3 s.
 *   build/sgemm_peak [--windows W]
 * prints:  sgemm threads=T n=2048 gflops=<median> best=<best> core=<kernel> */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "farol.h"
#include "timing.h"


int main(int argc, char **argv) {
    int windows = 5;
    if (argc == 3 && strcmp(argv[1], "--windows") == 0) windows = atoi(argv[2]);
    else if (argc != 1) { fprintf(stderr, "usage: sgemm_peak [--windows W]\n"); return 2; }
    if (windows < 1 || windows > 100) windows = 5;
    const int n = 2048;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c) return 1;
    for (long i = 0; i < (long)n * n; i++) a[i] = (float)(i % 997) / 997 - 0.5f, b[i] = (float)(i % 991) / 991 - 0.5f;
    farol_config_info cfg;
    farol_get_config(&cfg);
    double r[100];
    for (int t = 1; t <= 2; t++) {
        farol_set_num_threads(t);
        for (int w = 0; w < windows + 1; w++) {  /* window 0 warms up */
            long reps = 0;
            double t0 = bench_now(), dt;
            do {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
                reps++;
            } while ((dt = bench_now() - t0) < 0.3);
            if (w) r[w - 1] = 2.0 * n * n * (double)n * reps / dt / 1e9;
        }
        qsort(r, windows, sizeof *r, bench_cmp);
        printf("sgemm threads=%d n=%d gflops=%.1f best=%.1f core=%s\n", t, n, r[windows / 2],
               r[windows - 1], cfg.blas_core);
    }
    free(a), free(b), free(c);
    return 0;
}
