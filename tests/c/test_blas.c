/* The BLAS kernel choice: a user's OPENBLAS_CORETYPE is respected (checked in
 * a child process, where OpenBLAS chooses at load), a generic fallback pick
 * is replaced on CPUs with AVX2/AVX-512 and the environment is left as it
 * was, and every kernel this CPU can run computes sgemm within float32
 * rounding of a double reference on odd sizes, all transposes, padded
 * leading dimensions and beta != 0.  farol_gemm (the product every op calls:
 * oneDNN or OpenBLAS, cut into blocks) is held to the same reference, with
 * the fast path on and off, and gives bitwise the same C at 1 and 2 threads. */
#define _GNU_SOURCE
#include "testutil.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char *openblas_get_corename(void);

/* runs this test binary as `--print-core` with OPENBLAS_CORETYPE=value (or
 * unset) and returns its output line */
static void child_core(const char *value, char *out, size_t n) {
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        if (value) setenv("OPENBLAS_CORETYPE", value, 1);
        else unsetenv("OPENBLAS_CORETYPE");
        execl("/proc/self/exe", "test_blas", "--print-core", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    out[0] = '\0';
    assert_non_null(fgets(out, (int)n, f));
    fclose(f);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    out[strcspn(out, "\n")] = '\0';
}

static void test_user_core_respected(void **state) {
    char line[256];
    /* a generic core the user asked for stays, even where farol would replace it */
    child_core("Prescott", line, sizeof line);
    assert_string_equal(line, "Prescott|user (OPENBLAS_CORETYPE)|-");
    child_core("Sandybridge", line, sizeof line);
    assert_string_equal(line, "Sandybridge|user (OPENBLAS_CORETYPE)|-");
    /* nothing set: whatever is chosen is not a generic core on an AVX2 CPU */
    child_core(NULL, line, sizeof line);
    if (farol_cpu_features()) assert_null(farol_blas_wanted_core(strtok(line, "|"), farol_cpu_features()));
}

static void test_wanted_core(void **state) {
    const unsigned both = FAROL_CPU_AVX2_FMA | FAROL_CPU_AVX512;
    assert_string_equal(farol_blas_wanted_core("Prescott", both), "SkylakeX");
    assert_string_equal(farol_blas_wanted_core("Prescott", FAROL_CPU_AVX2_FMA), "Haswell");
    assert_string_equal(farol_blas_wanted_core("Nehalem", FAROL_CPU_AVX2_FMA), "Haswell");
    assert_string_equal(farol_blas_wanted_core("Sandybridge", both), "SkylakeX");
    assert_null(farol_blas_wanted_core("Prescott", 0));
    assert_null(farol_blas_wanted_core("Haswell", both));
    assert_null(farol_blas_wanted_core("Zen", both));
    assert_null(farol_blas_wanted_core("Cooperlake", both));
    assert_null(farol_blas_wanted_core("SkylakeX", FAROL_CPU_AVX2_FMA));
}

/* OpenBLAS picked Prescott and nothing is set: farol switches to a modern
 * core and leaves OPENBLAS_CORETYPE unset */
static void test_generic_pick_replaced(void **state) {
    if (!farol_cpu_features()) skip();
    char before[32], *user = getenv("OPENBLAS_CORETYPE");
    user = user ? strdup(user) : NULL;
    snprintf(before, sizeof before, "%s", openblas_get_corename());
    unsetenv("OPENBLAS_CORETYPE");
    assert_int_equal(farol_blas_select_core("Prescott"), 0);
    assert_string_equal(openblas_get_corename(), "Prescott");
    assert_null(getenv("OPENBLAS_CORETYPE"));
    farol_blas_fix_core();
    const char *want = farol_blas_wanted_core("Prescott", farol_cpu_features());
    assert_string_equal(openblas_get_corename(), want);
    assert_null(getenv("OPENBLAS_CORETYPE"));
    farol_config_info c;
    farol_get_config(&c);
    assert_string_equal(c.blas_core, want);
    assert_string_equal(c.blas_core_chosen_by, "farol");
    assert_string_equal(c.blas_core_replaced, "Prescott");
    /* a user value is restored after a switch */
    setenv("OPENBLAS_CORETYPE", "Zen", 1);
    assert_int_equal(farol_blas_select_core(before), 0);
    assert_string_equal(getenv("OPENBLAS_CORETYPE"), "Zen");
    if (user) setenv("OPENBLAS_CORETYPE", user, 1);
    else unsetenv("OPENBLAS_CORETYPE");
    free(user);
    assert_string_equal(openblas_get_corename(), before);
}

static uint64_t rng = 88172645463325252ull;
static double urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2 - 1;
}

/* C = alpha op(A) op(B) + beta C, row-major, against a double loop; the
 * bound is (K + 2) eps times the sum of |terms| */
static void check_sgemm(const char *core, bool ta, bool tb, int M, int N, int K) {
    int lda = (ta ? M : K) + (int)(rng % 5), ldb = (tb ? K : N) + (int)(rng % 3), ldc = N + 1;
    int ar = ta ? K : M, br = tb ? N : K;
    float *A = malloc(sizeof(float) * ar * lda), *B = malloc(sizeof(float) * br * ldb),
          *C = malloc(sizeof(float) * M * ldc);
    double *C0 = malloc(sizeof(double) * M * ldc);
    for (int i = 0; i < ar * lda; i++) A[i] = (float)urand();
    for (int i = 0; i < br * ldb; i++) B[i] = (float)urand();
    for (int i = 0; i < M * ldc; i++) C0[i] = C[i] = (float)urand();
    const float alpha = 0.75f, beta = ta ? 0.5f : 0.0f;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
    const double eps = 5.96e-8;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double t = (double)(ta ? A[k * lda + i] : A[i * lda + k]) *
                           (double)(tb ? B[j * ldb + k] : B[k * ldb + j]);
                s += t;
                mag += fabs(t);
            }
            double ref = alpha * s + beta * C0[i * ldc + j];
            double bound = (K + 2) * eps * (alpha * mag + fabs(beta * C0[i * ldc + j])) + 1e-30;
            double err = fabs(C[i * ldc + j] - ref);
            if (!(err <= bound))
                fail_msg("sgemm on %s %c%c M=%d N=%d K=%d: C[%d,%d] = %.9g, reference %.9g (bound %.3g)",
                         core, ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, i, j, C[i * ldc + j], ref, bound);
        }
    free(A), free(B), free(C), free(C0);
}

static void test_kernels_correct(void **state) {
    char before[32];
    snprintf(before, sizeof before, "%s", openblas_get_corename());
    const char *cores[6] = {before, "Prescott"};
    int nc = 2;
    unsigned f = farol_cpu_features();
    if (f & FAROL_CPU_AVX2_FMA) cores[nc++] = "Haswell";
    if (f & FAROL_CPU_AVX512) cores[nc++] = "SkylakeX", cores[nc++] = "Cooperlake";
    static const int sizes[] = {1, 2, 3, 5, 7, 15, 16, 17, 31, 33, 47, 64, 65, 97};
    const int ns = sizeof sizes / sizeof *sizes;
    int threads = farol_get_num_threads();
    for (int c = 0; c < nc; c++) {
        assert_int_equal(farol_blas_select_core(cores[c]), 0);
        for (int t = 1; t <= 2; t++) {
            farol_set_num_threads(t);
            for (int tr = 0; tr < 4; tr++)
                for (int r = 0; r < 6; r++)
                    check_sgemm(openblas_get_corename(), tr & 1, tr & 2, sizes[rng % ns],
                                sizes[rng % ns], sizes[rng % ns]);
            /* one larger case per transpose pair: beyond the kernels' blocking */
            check_sgemm(openblas_get_corename(), t == 2, false, 131, 257, 300);
            check_sgemm(openblas_get_corename(), false, t == 2, 260, 70, 129);
        }
    }
    farol_set_num_threads(threads);
    assert_int_equal(farol_blas_select_core(before), 0);
    assert_string_equal(openblas_get_corename(), before);
}

/* farol_gemm in dtype dt against a double loop, same bound as check_sgemm
 * (eps of the dtype) */
static void check_gemm_as(farol_dtype dt, bool ta, bool tb, int M, int N, int K, float beta,
                          bool with_bias) {
    int lda = (ta ? M : K) + (int)(rng % 5), ldb = (tb ? K : N) + (int)(rng % 3), ldc = N + 2;
    int ar = ta ? K : M, br = tb ? N : K;
    bool f32 = dt == FAROL_F32;
    size_t es = f32 ? 4 : 8;
    char *A = malloc(es * ar * lda + 1), *B = malloc(es * br * ldb + 1), *C = malloc(es * M * ldc);
    double *C0 = malloc(sizeof(double) * M * ldc);
#define AT(p, i) (f32 ? (double)((float *)(p))[i] : ((double *)(p))[i])
#define SET(p, i, v) (f32 ? (void)(((float *)(p))[i] = (float)(v)) : (void)(((double *)(p))[i] = (v)))
    for (int i = 0; i < ar * lda; i++) SET(A, i, urand());
    for (int i = 0; i < br * ldb; i++) SET(B, i, urand());
    for (int i = 0; i < M * ldc; i++) SET(C, i, urand()), C0[i] = AT(C, i);
    double alpha = 0.75;
    char *bias = malloc(es * N);
    for (int j = 0; j < N; j++) SET(bias, j, urand());
    if (with_bias) { /* C = bias + A B: as alpha 1, beta 1 on a C holding the bias */
        alpha = 1, beta = 1;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C0[i * ldc + j] = AT(bias, j);
        farol_gemm_bias(dt, ta, tb, M, N, K, A, lda, B, ldb, bias, C, ldc);
    } else {
        farol_gemm(dt, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
    const double eps = f32 ? 5.96e-8 : 1.12e-16;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            if (j >= N) { /* the padding is not written */
                if (AT(C, i * ldc + j) != C0[i * ldc + j])
                    fail_msg("farol_gemm wrote C[%d,%d] beyond N=%d", i, j, N);
                continue;
            }
            double s = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double t = AT(A, ta ? k * lda + i : i * lda + k) * AT(B, tb ? j * ldb + k : k * ldb + j);
                s += t;
                mag += fabs(t);
            }
            double ref = alpha * s + beta * C0[i * ldc + j];
            double bound = (K + 2) * eps * (alpha * mag + fabs(beta * C0[i * ldc + j])) + 1e-300;
            double err = fabs(AT(C, i * ldc + j) - ref);
            if (!(err <= bound))
                fail_msg("farol_gemm %s fast=%d threads=%d %c%c M=%d N=%d K=%d beta=%g: C[%d,%d] = "
                         "%.17g, reference %.17g (bound %.3g)",
                         farol_dtype_name(dt), farol_fast_gemm_enabled(), farol_get_num_threads(),
                         ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, beta, i, j, AT(C, i * ldc + j), ref,
                         bound);
        }
#undef AT
#undef SET
    free(A), free(B), free(C), free(C0), free(bias);
}

static void check_gemm(farol_dtype dt, bool ta, bool tb, int M, int N, int K, float beta) {
    check_gemm_as(dt, ta, tb, M, N, K, beta, false);
}

static void test_gemm_correct(void **state) {
    static const int sizes[] = {1, 2, 3, 5, 7, 15, 16, 17, 31, 33, 47, 64, 65, 97};
    const int ns = sizeof sizes / sizeof *sizes;
    int threads = farol_get_num_threads();
    bool fast = farol_fast_gemm_enabled();
    for (int on = 0; on <= (int)farol_fast_gemm_available(); on++) {
        farol_set_fast_gemm(on);
        for (int t = 1; t <= 2; t++) {
            farol_set_num_threads(t);
            for (int tr = 0; tr < 4; tr++) {
                for (int r = 0; r < 6; r++)
                    check_gemm(r & 1 ? FAROL_F64 : FAROL_F32, tr & 1, tr & 2, sizes[rng % ns],
                               sizes[rng % ns], sizes[rng % ns], r & 2 ? 0.5f : 0.0f);
                /* products large enough to be cut into blocks: along N (M <= N)
                 * and along M, widths not multiples of 16 */
                check_gemm(FAROL_F32, tr & 1, tr & 2, 67, 1001, 37, tr & 1 ? 0.5f : 0.0f);
                check_gemm(FAROL_F32, tr & 1, tr & 2, 771, 45, 71, tr & 2 ? 0.5f : 0.0f);
                check_gemm(FAROL_F64, tr & 1, tr & 2, 130, 517, 33, 0.5f);
            }
            /* the bias preset block by block (linear) */
            check_gemm_as(FAROL_F32, false, true, 67, 1001, 37, 0, true);
            check_gemm_as(FAROL_F32, true, false, 771, 45, 71, 0, true);
            check_gemm_as(FAROL_F64, false, true, 7, 33, 5, 0, true);
            check_gemm_as(FAROL_F32, false, true, 5, 7, 0, 0, true); /* K = 0: C = bias */
            /* K = 0: C = beta C */
            check_gemm(FAROL_F32, false, true, 5, 7, 0, 0.5f);
            check_gemm(FAROL_F64, true, false, 5, 7, 0, 0.0f);
        }
    }
    farol_set_fast_gemm(fast);
    farol_set_num_threads(threads);
}

static void test_gemm_blocks(void **state) {
    /* small products stay whole; large ones are cut into as many blocks as
     * cores, each at least 64 wide along the longer side of C */
    assert_int_equal(farol_gemm_blocks(128, 1024, 10, 2), 1);
    assert_int_equal(farol_gemm_blocks(128, 1024, 1024, 1), 1);
    assert_int_equal(farol_gemm_blocks(128, 1024, 1024, 2), 2);
    assert_int_equal(farol_gemm_blocks(128, 1024, 1024, 8), 8);
    assert_int_equal(farol_gemm_blocks(2048, 100, 256, 64), 32);
    assert_int_equal(farol_gemm_blocks(100, 120, 1000, 4), 1);
}

/* the benchmark models' products (MLP forward x W^T + b and backward G W,
 * its 10-class head, a transformer layer's projection), float32 and float64,
 * fast path on and off: bitwise the same C at 1 and 2 threads */
static void test_gemm_threads_bitwise(void **state) {
    static const struct { bool ta, tb; int M, N, K; float beta; } cases[] = {
        {false, true, 128, 1024, 784, 1}, {false, false, 128, 784, 1024, 0},
        {false, true, 128, 10, 1024, 1},  {false, false, 128, 1024, 10, 0},
        {false, true, 2048, 768, 256, 1}, {true, false, 1024, 784, 128, 0},
    };
    int threads = farol_get_num_threads();
    bool fast = farol_fast_gemm_enabled();
    float *A = malloc(sizeof(double) * 2048 * 1024), *B = malloc(sizeof(double) * 1024 * 1024);
    float *C[2] = {malloc(sizeof(double) * 2048 * 1024), malloc(sizeof(double) * 2048 * 1024)};
    for (int i = 0; i < 2 * 2048 * 1024; i++) A[i] = (float)urand();
    for (int i = 0; i < 2 * 1024 * 1024; i++) B[i] = (float)urand();
    for (int on = 0; on <= (int)farol_fast_gemm_available(); on++) {
        farol_set_fast_gemm(on);
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
            for (int d = 0; d < 2; d++) {
                int M = cases[k].M, N = cases[k].N, K = cases[k].K;
                farol_dtype dt = d ? FAROL_F64 : FAROL_F32;
                size_t bytes = (d ? 8 : 4) * (size_t)M * N;
                for (int t = 1; t <= 2; t++) {
                    farol_set_num_threads(t);
                    memcpy(C[t - 1], A, bytes); /* some C to add to (beta 1) */
                    farol_gemm(dt, cases[k].ta, cases[k].tb, M, N, K, 1.0, A,
                               cases[k].ta ? M : K, B, cases[k].tb ? K : N, cases[k].beta,
                               C[t - 1], N);
                }
                if (memcmp(C[0], C[1], bytes) != 0)
                    fail_msg("farol_gemm %s fast=%d %c%c %dx%dx%d: 1 and 2 threads differ",
                             farol_dtype_name(dt), on, cases[k].ta ? 'T' : 'N',
                             cases[k].tb ? 'T' : 'N', M, N, K);
            }
    }
    farol_set_fast_gemm(fast);
    farol_set_num_threads(threads);
    free(A), free(B), free(C[0]), free(C[1]);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--print-core") == 0) {
        farol_config_info c;
        farol_get_config(&c);
        printf("%s|%s|%s\n", c.blas_core, c.blas_core_chosen_by,
               c.blas_core_replaced ? c.blas_core_replaced : "-");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_wanted_core, tu_reset),
        cmocka_unit_test_setup(test_user_core_respected, tu_reset),
        cmocka_unit_test_setup(test_generic_pick_replaced, tu_reset),
        cmocka_unit_test_setup(test_kernels_correct, tu_reset),
        cmocka_unit_test_setup(test_gemm_correct, tu_reset),
        cmocka_unit_test_setup(test_gemm_blocks, tu_reset),
        cmocka_unit_test_setup(test_gemm_threads_bitwise, tu_reset),
    };
    return tu_run(tests, argc, argv);
}
