/* gemm_shapes: GFLOP/s of the MLP benchmark's GEMMs (row-major, as farol's
 * linear calls them) under several strategies, 1 and 2 threads:
 *   blas   cblas_sgemm, OpenBLAS threading itself
 *   dnnl   dnnl_sgemm (oneDNN)
 *   split  farol splits C into fixed column blocks, one single-threaded
 *          cblas_sgemm per block, blocks shared over OpenMP threads
 *   build/gemm_shapes [--ms MS] [--threads T]   (MS: time per figure, default 200;
 *                                               T: only that thread count)
 * prints one line per shape and strategy: median GFLOP/s of 5 windows. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef FAROL_HAVE_DNNL
#include <dnnl.h>
#endif

#include "farol.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const char *name;
    char ta, tb;
    int M, N, K;
    float beta;
} shape;

enum { BLAS, DNNL, SPLIT, SPLITD, NSTRAT };
static const char *strat_name[] = {"blas", "dnnl", "split", "splitd"};

static void run(int strat, const shape *s, const float *a, const float *b, float *c, int nblk) {
    int lda = s->ta == 'N' ? s->K : s->M, ldb = s->tb == 'N' ? s->N : s->K, ldc = s->N;
    CBLAS_TRANSPOSE ta = s->ta == 'N' ? CblasNoTrans : CblasTrans,
                    tb = s->tb == 'N' ? CblasNoTrans : CblasTrans;
    switch (strat) {
    case BLAS:
        cblas_sgemm(CblasRowMajor, ta, tb, s->M, s->N, s->K, 1.0f, a, lda, b, ldb, s->beta, c, ldc);
        break;
    case DNNL:
#ifdef FAROL_HAVE_DNNL
        dnnl_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, a, lda, b, ldb, s->beta, c, ldc);
#endif
        break;
    case SPLIT: {
        int bw = (s->N + nblk - 1) / nblk;
        #pragma omp parallel for schedule(static)
        for (int j = 0; j < nblk; j++) {
            int n0 = j * bw, n = s->N - n0 < bw ? s->N - n0 : bw;
            if (n <= 0) continue;
            const float *bj = s->tb == 'N' ? b + n0 : b + (size_t)n0 * ldb;
            cblas_sgemm(CblasColMajor, tb, ta, n, s->M, s->K, 1.0f, bj, ldb, a, lda, s->beta,
                        c + n0, ldc);
        }
        break;
    }
    case SPLITD: {
        int bw = (s->N + nblk - 1) / nblk;
        #pragma omp parallel for schedule(static)
        for (int j = 0; j < nblk; j++) {
            int n0 = j * bw, n = s->N - n0 < bw ? s->N - n0 : bw;
            if (n <= 0) continue;
            const float *bj = s->tb == 'N' ? b + n0 : b + (size_t)n0 * ldb;
#ifdef FAROL_HAVE_DNNL
            dnnl_sgemm(s->ta, s->tb, s->M, n, s->K, 1.0f, a, lda, bj, ldb, s->beta, c + n0, ldc);
#endif
        }
        break;
    }
    }
}

int main(int argc, char **argv) {
    double ms = 200;
    int t1 = 1, t2 = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ms") == 0) ms = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0) t1 = t2 = atoi(argv[i + 1]);
    }
    /* the MLP's saliency: forward x @ W^T (+ b preset, beta 1), backward G @ W */
    static const shape shapes[] = {
        {"fwd1 NT 128x1024x784", 'N', 'T', 128, 1024, 784, 1},
        {"fwd2 NT 128x1024x1024", 'N', 'T', 128, 1024, 1024, 1},
        {"fwd3 NT 128x10x1024", 'N', 'T', 128, 10, 1024, 1},
        {"bwd3 NN 128x1024x10", 'N', 'N', 128, 1024, 10, 0},
        {"bwd2 NN 128x1024x1024", 'N', 'N', 128, 1024, 1024, 0},
        {"bwd1 NN 128x784x1024", 'N', 'N', 128, 784, 1024, 0},
    };
    size_t big = 1024 * 1024 + 4096;
    float *a = malloc(big * 4), *b = malloc(big * 4), *c = malloc(big * 4);
    if (!a || !b || !c) return 1;
    for (size_t i = 0; i < big; i++)
        a[i] = (float)(i % 997) / 997 - 0.5f, b[i] = (float)(i % 991) / 991 - 0.5f, c[i] = 0;
    farol_config_info cfg;
    farol_get_config(&cfg);
    printf("# core=%s\n", cfg.blas_core);
    for (int t = t1; t <= t2; t++) {
        farol_set_num_threads(t);
        for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
            const shape *s = &shapes[k];
            double flop = 2.0 * s->M * s->N * s->K;
            static const int cfgs[][2] = {{BLAS, 1}, {DNNL, 1}, {SPLIT, 2}, {SPLIT, 4},
                                          {SPLIT, 8}, {SPLITD, 2}, {SPLITD, 4}, {SPLITD, 8}};
            for (size_t ci = 0; ci < sizeof cfgs / sizeof *cfgs; ci++) {
                int st = cfgs[ci][0], nblk = cfgs[ci][1];
#ifndef FAROL_HAVE_DNNL
                if (st == DNNL || st == SPLITD) continue;
#endif
                double r[6];
                for (int w = 0; w < 6; w++) {
                    long reps = 0;
                    double t0 = now(), dt;
                    do {
                        run(st, s, a, b, c, nblk);
                        reps++;
                    } while ((dt = now() - t0) < ms / 6e3);
                    r[w] = flop * reps / dt / 1e9;
                }
                qsort(r + 1, 5, sizeof *r, cmp);
                printf("threads=%d %-24s %-6s blocks=%d gflops=%.1f\n", t, s->name, strat_name[st], nblk, r[3]);
            }
        }
    }
    free(a), free(b), free(c);
    return 0;
}
