/* farol_gemm: every matrix product farol computes (matmul, linear, the
 * attention heads) goes through here.
 *
 * Results do not depend on the thread count.  OpenBLAS's own threading
 * does not keep that: its threaded driver cuts K into other blocks than its
 * single-threaded one (so C sums in another order), and its row-major
 * "direct" sgemm runs for small NN products only when one thread is
 * available.  So farol cuts C itself into blocks that depend on the shape
 * and on the machine's core count only, never on the thread count; each
 * block is one single-threaded GEMM (OpenMP threads share the blocks), the
 * same call whether 1 or 2 threads run.  This is also faster for the
 * benchmark's shapes (few rows, large weights; bench/gemm_shapes.c): no
 * K-split bookkeeping, one OpenMP fork instead of OpenBLAS's per-block
 * synchronisation, and small products run on one thread (a fork costs more
 * than they do).
 *
 * float32 runs on oneDNN's sgemm when farol has it (faster than OpenBLAS's
 * per block on the benchmark models' shapes, measured in
 * bench/gemm_shapes.c, but for NN products with a short K), else, and for
 * float64, on OpenBLAS through its column-major interface (never the
 * row-major direct path).
 * farol_set_fast_gemm(false) or FAROL_NO_DNNL=1 keep every product on
 * OpenBLAS (the reference the tests compare with). */
#define _GNU_SOURCE
#include "internal.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#ifdef FAROL_HAVE_DNNL
#include <dnnl.h>
#endif

/* below this many multiply-adds a product runs on one thread */
#define GEMM_PAR_MIN ((int64_t)1 << 21)
/* a block is at least this wide along the dim that is cut */
#define GEMM_BLOCK_MIN 64

static int fast_gemm = -1; /* -1: not decided yet (environment) */
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void read_env(void) {
    const char *e = getenv("FAROL_NO_DNNL");
    int want = !(e && *e && strcmp(e, "0") != 0);
    int unset = -1;
    __atomic_compare_exchange_n(&fast_gemm, &unset, want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

bool farol_fast_gemm_available(void) {
#ifdef FAROL_HAVE_DNNL
    return true;
#else
    return false;
#endif
}

bool farol_fast_gemm_enabled(void) {
    pthread_once(&env_once, read_env);
    return farol_fast_gemm_available() && __atomic_load_n(&fast_gemm, __ATOMIC_RELAXED) == 1;
}

void farol_set_fast_gemm(bool on) {
    pthread_once(&env_once, read_env);
    __atomic_store_n(&fast_gemm, on ? 1 : 0, __ATOMIC_RELAXED);
}

typedef struct {
    farol_dtype dt;
    bool ta, tb, fast;
    int64_t M, N, K, lda, ldb, ldc;
    double alpha, beta;
    const char *a, *b, *bias; /* bias: N values preset in every row of C */
    char *c;
} gemm_args;

/* rows [m0, m0 + m) and columns [n0, n0 + n) of C, on the calling thread */
static void gemm_block(const gemm_args *g, int64_t m0, int64_t m, int64_t n0, int64_t n) {
    size_t es = farol_dtype_size(g->dt);
    /* row i of op(A) starts at a + i*lda (NoTrans) or a + i (Trans); column j
     * of op(B) at b + j (NoTrans) or b + j*ldb (Trans) */
    const char *a = g->a + (size_t)(g->ta ? m0 : m0 * g->lda) * es;
    const char *b = g->b + (size_t)(g->tb ? n0 * g->ldb : n0) * es;
    char *c = g->c + (size_t)(m0 * g->ldc + n0) * es;
    /* the bias written by the thread that then adds the product to it, into
     * its own block: in cache, and no separate parallel pass */
    for (int64_t i = 0; g->bias && i < m; i++)
        memcpy(c + (size_t)(i * g->ldc) * es, g->bias + (size_t)n0 * es, (size_t)n * es);
    if (g->K <= 0) { /* C = beta C (oneDNN's reference sgemm leaves C as is) */
        for (int64_t i = 0; !g->bias && i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                if (g->dt == FAROL_F32) {
                    float *x = (float *)c + i * g->ldc + j;
                    *x = g->beta == 0 ? 0.0f : (float)g->beta * *x;
                } else {
                    double *x = (double *)c + i * g->ldc + j;
                    *x = g->beta == 0 ? 0.0 : g->beta * *x;
                }
            }
        return;
    }
#ifdef FAROL_HAVE_DNNL
    if (g->fast) {
        dnnl_sgemm(g->ta ? 'T' : 'N', g->tb ? 'T' : 'N', m, n, g->K, (float)g->alpha,
                   (const float *)a, g->lda, (const float *)b, g->ldb, (float)g->beta, (float *)c,
                   g->ldc);
        return;
    }
#endif
    /* row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T */
    CBLAS_TRANSPOSE tb = g->tb ? CblasTrans : CblasNoTrans, ta = g->ta ? CblasTrans : CblasNoTrans;
    if (g->dt == FAROL_F32)
        cblas_sgemm(CblasColMajor, tb, ta, (int)n, (int)m, (int)g->K, (float)g->alpha,
                    (const float *)b, (int)g->ldb, (const float *)a, (int)g->lda, (float)g->beta,
                    (float *)c, (int)g->ldc);
    else
        cblas_dgemm(CblasColMajor, tb, ta, (int)n, (int)m, (int)g->K, g->alpha,
                    (const double *)b, (int)g->ldb, (const double *)a, (int)g->lda, g->beta,
                    (double *)c, (int)g->ldc);
}

int farol_gemm_blocks(int64_t M, int64_t N, int64_t K, int cores) {
    if (M * N * K < GEMM_PAR_MIN || cores < 2) return 1;
    int64_t dim = M <= N ? N : M, most = dim / GEMM_BLOCK_MIN;
    return (int)(most < 1 ? 1 : most < cores ? most : cores);
}

/* OpenBLAS's pthreads build (farol's build prefers the OpenMP one) does not
 * see OpenMP's count: hold it to one thread, process-wide, for the call
 * (returns the count to restore, 0 if none) */
static int hold_pthreads_blas(void) {
    if (omp_in_parallel() || openblas_get_parallel() != 1) return 0;
    int n = openblas_get_num_threads();
    if (n > 1) openblas_set_num_threads(1);
    return n > 1 ? n : 0;
}

static void gemm_blocks_run(const gemm_args *g);

/* oneDNN's sgemm for a float32 product, unless it is NN with a short K
 * (<= 32), where OpenBLAS's is 10-40 % faster (bench/gemm_shapes: the MLP's
 * and the CNN's last-layer input gradients, K = 10) */
static bool use_dnnl(farol_dtype dt, bool ta, bool tb, int64_t K) {
    return dt == FAROL_F32 && farol_fast_gemm_enabled() && (ta || tb || K > 32);
}

/* the product g describes, threaded over blocks of C */
static void gemm_run(const gemm_args *g) {
    if (g->M <= 0 || g->N <= 0) return;
    farol_blas_ready();
    int blas_nt = hold_pthreads_blas();
    gemm_blocks_run(g);
    if (blas_nt) openblas_set_num_threads(blas_nt);
}

static void gemm_blocks_run(const gemm_args *g) {
    int64_t M = g->M, N = g->N;
    static int cores;
    if (!__atomic_load_n(&cores, __ATOMIC_RELAXED)) __atomic_store_n(&cores, omp_get_num_procs(), __ATOMIC_RELAXED);
    /* C cut along its longer side: each block then re-reads only the smaller
     * operand (A's M x K when cutting N), widths a multiple of 16 */
    int nblk = farol_gemm_blocks(M, N, g->K, __atomic_load_n(&cores, __ATOMIC_RELAXED));
    bool cut_n = M <= N;
    int64_t dim = cut_n ? N : M, bw = ((dim + nblk - 1) / nblk + 15) / 16 * 16;
    nblk = (int)((dim + bw - 1) / bw);
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt > nblk) nt = nblk;
    if (nt > 1) {
        /* inside this region BLAS and oneDNN run single-threaded */
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (int j = 0; j < nblk; j++) {
            int64_t s = j * bw, w = dim - s < bw ? dim - s : bw;
            if (cut_n) gemm_block(g, 0, M, s, w);
            else gemm_block(g, s, w, 0, N);
        }
        return;
    }
    /* one thread: the same blocks in turn, with BLAS and oneDNN held to one
     * thread (OpenMP's per-thread count, which both read) */
    int saved = omp_in_parallel() ? 0 : omp_get_max_threads();
    if (saved > 1) omp_set_num_threads(1);
    for (int j = 0; j < nblk; j++) {
        int64_t s = j * bw, w = dim - s < bw ? dim - s : bw;
        if (cut_n) gemm_block(g, 0, M, s, w);
        else gemm_block(g, s, w, 0, N);
    }
    if (saved > 1) omp_set_num_threads(saved);
}

void farol_gemm(farol_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
                int64_t ldc) {
    gemm_args g = {.dt = dt, .ta = ta, .tb = tb, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb,
                   .ldc = ldc, .alpha = alpha, .beta = beta, .a = A, .b = B, .c = C,
                   .fast = use_dnnl(dt, ta, tb, K)};
    gemm_run(&g);
}

void farol_gemm_bias(farol_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                     const void *A, int64_t lda, const void *B, int64_t ldb, const void *bias,
                     void *C, int64_t ldc) {
    gemm_args g = {.dt = dt, .ta = ta, .tb = tb, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb,
                   .ldc = ldc, .alpha = 1, .beta = bias ? 1 : 0, .a = A, .b = B, .c = C,
                   .bias = bias, .fast = use_dnnl(dt, ta, tb, K)};
    gemm_run(&g);
}

void farol_gemm_1t(farol_dtype dt, bool dnnl, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                   double alpha, const void *A, int64_t lda, const void *B, int64_t ldb,
                   double beta, void *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    gemm_args g = {.dt = dt, .ta = ta, .tb = tb, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb,
                   .ldc = ldc, .alpha = alpha, .beta = beta, .a = A, .b = B, .c = C,
                   .fast = dnnl && dt == FAROL_F32 && farol_fast_gemm_enabled()};
    /* outside a parallel region BLAS and oneDNN would thread: hold them to one */
    int saved = omp_in_parallel() ? 0 : omp_get_max_threads(), blas_nt = hold_pthreads_blas();
    if (saved > 1) omp_set_num_threads(1);
    gemm_block(&g, 0, M, 0, N);
    if (saved > 1) omp_set_num_threads(saved);
    if (blas_nt) openblas_set_num_threads(blas_nt);
}
