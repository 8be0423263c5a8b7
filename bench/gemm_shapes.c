/* gemm_shapes: GFLOP/s of the benchmark models' GEMMs (row-major, as farol's
 * linear calls them: forward x W^T + b, input gradient G W) under four
 * strategies, at 1 and 2 threads:
 *   blas        cblas_sgemm, OpenBLAS threading itself (farol before farol_gemm)
 *   dnnl        dnnl_sgemm, oneDNN threading itself
 *   farol       farol_gemm: fixed blocks of C, one single-threaded oneDNN
 *               sgemm each (OpenBLAS for NN with K <= 32), blocks shared
 *               over OpenMP threads
 *   farol_blas  farol_gemm with the fast path off (OpenBLAS blocks)
 *   build/gemm_shapes [--ms MS] [--threads T] [--model mlp|transformer|cnn|small|all]
 * (MS: time per figure, default 200; T: only that thread count)
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

#include "internal.h"
#include "timing.h"


typedef struct {
    const char *model, *name;
    char ta, tb;
    int M, N, K;
    float beta;
} shape;

enum { BLAS, DNNL, FAROL, FAROL_BLAS, NSTRAT };
static const char *strat_name[] = {"blas", "dnnl", "farol", "farol_blas"};

static void run(int strat, const shape *s, const float *a, const float *b, float *c) {
    int lda = s->ta == 'N' ? s->K : s->M, ldb = s->tb == 'N' ? s->N : s->K, ldc = s->N;
    switch (strat) {
    case BLAS:
        cblas_sgemm(CblasRowMajor, s->ta == 'N' ? CblasNoTrans : CblasTrans,
                    s->tb == 'N' ? CblasNoTrans : CblasTrans, s->M, s->N, s->K, 1.0f, a, lda, b,
                    ldb, s->beta, c, ldc);
        break;
    case DNNL:
#ifdef FAROL_HAVE_DNNL
        dnnl_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, a, lda, b, ldb, s->beta, c, ldc);
#endif
        break;
    default:
        farol_set_fast_gemm(strat == FAROL);
        farol_gemm(FAROL_F32, s->ta == 'T', s->tb == 'T', s->M, s->N, s->K, 1.0, a, lda, b, ldb,
                   s->beta, c, ldc);
    }
}

int main(int argc, char **argv) {
    double ms = 200;
    int t1 = 1, t2 = 2;
    const char *model = "all";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ms") == 0) ms = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0) t1 = t2 = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--model") == 0) model = argv[i + 1];
    }
    static const shape shapes[] = {
        {"mlp", "fwd1 NT 128x1024x784", 'N', 'T', 128, 1024, 784, 1},
        {"mlp", "fwd2 NT 128x1024x1024", 'N', 'T', 128, 1024, 1024, 1},
        {"mlp", "fwd3 NT 128x10x1024", 'N', 'T', 128, 10, 1024, 1},
        {"mlp", "bwd3 NN 128x1024x10", 'N', 'N', 128, 1024, 10, 0},
        {"mlp", "bwd2 NN 128x1024x1024", 'N', 'N', 128, 1024, 1024, 0},
        {"mlp", "bwd1 NN 128x784x1024", 'N', 'N', 128, 784, 1024, 0},
        {"transformer", "qkv NT 2048x768x256", 'N', 'T', 2048, 768, 256, 1},
        {"transformer", "ff1 NT 2048x1024x256", 'N', 'T', 2048, 1024, 256, 1},
        {"transformer", "ff2 NT 2048x256x1024", 'N', 'T', 2048, 256, 1024, 1},
        {"transformer", "ff2' NN 2048x1024x256", 'N', 'N', 2048, 1024, 256, 0},
        {"transformer", "ff1' NN 2048x256x1024", 'N', 'N', 2048, 256, 1024, 0},
        {"cnn", "fc1 NT 64x256x4096", 'N', 'T', 64, 256, 4096, 1},
        {"cnn", "fc1' NN 64x4096x256", 'N', 'N', 64, 4096, 256, 0},
        {"cnn", "fc2' NN 64x256x10", 'N', 'N', 64, 256, 10, 0},
        {"small", "NN 128x1024x16", 'N', 'N', 128, 1024, 16, 0},
        {"small", "NN 128x1024x32", 'N', 'N', 128, 1024, 32, 0},
        {"small", "NN 512x512x8", 'N', 'N', 512, 512, 8, 0},
        {"small", "TN 128x1024x10", 'T', 'N', 128, 1024, 10, 0},
    };
    size_t big = 2048 * 1024 + 4096;
    float *a = malloc(big * 4), *b = malloc(big * 4), *c = malloc(big * 4);
    if (!a || !b || !c) return 1;
    for (size_t i = 0; i < big; i++)
        a[i] = (float)(i % 997) / 997 - 0.5f, b[i] = (float)(i % 991) / 991 - 0.5f, c[i] = 0;
    farol_config_info cfg;
    farol_get_config(&cfg);
    bool fast = farol_fast_gemm_enabled();
    printf("# core=%s\n", cfg.blas_core);
    for (int t = t1; t <= t2; t++) {
        farol_set_num_threads(t);
        for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
            const shape *s = &shapes[k];
            if (strcmp(model, "all") != 0 && strcmp(model, s->model) != 0) continue;
            double flop = 2.0 * s->M * s->N * s->K;
            for (int st = 0; st < NSTRAT; st++) {
#ifndef FAROL_HAVE_DNNL
                if (st == DNNL || st == FAROL) continue;
#endif
                double r[6];
                for (int w = 0; w < 6; w++) { /* window 0 warms up */
                    long reps = 0;
                    double t0 = bench_now(), dt;
                    do {
                        run(st, s, a, b, c);
                        reps++;
                    } while ((dt = bench_now() - t0) < ms / 6e3);
                    r[w] = flop * reps / dt / 1e9;
                }
                qsort(r + 1, 5, sizeof *r, bench_cmp);
                printf("threads=%d %-12s %-24s %-10s gflops=%.1f\n", t, s->model, s->name,
                       strat_name[st], r[3]);
            }
        }
    }
    farol_set_fast_gemm(fast);
    free(a), free(b), free(c);
    return 0;
}
