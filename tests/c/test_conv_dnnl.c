/* The oneDNN convolution path (float32 forward and input gradient) against
 * the seven-loop double reference and the im2col path, on odd shapes with
 * stride, padding, dilation and groups, direct and Winograd (and that they
 * did run on oneDNN, or fell back where it has no JIT kernel); results
 * bitwise equal across runs and 1 vs 2 threads; the switch that turns it
 * off; allocation failures.  Skipped when farol was built without oneDNN. */
#include "testutil.h"
#include "ops/conv_ref.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    int64_t N, C, H, W, K, kh, kw;
    farol_conv_opts o;
    int dnnl;   /* how many of forward and input gradient oneDNN takes (direct_cases) */
} shape_case;

static farol_conv_opts opts(int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
    return (farol_conv_opts){{sh, sw}, {ph, pw}, {dh, dw}, groups};
}

static int setup(void **state) {
    if (!farol_fast_conv_available()) return 0;
    farol_set_fast_conv(true);
    farol_set_conv_winograd(true);
    return tu_reset(state);
}

static farol_tensor *randn32(int nd, const int64_t *shape, uint64_t seed) {
    farol_manual_seed(seed);
    farol_tensor *t = farol_randn(nd, shape, FAROL_F32);
    assert_non_null(t);
    return t;
}

static double *values(const farol_tensor *t, bool absolute) {
    int64_t n = farol_numel(t);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    assert_non_null(v);
    farol_copy_to_buffer(t, v, FAROL_F64);
    if (absolute)
        for (int64_t i = 0; i < n; i++) v[i] = fabs(v[i]);
    return v;
}

/* |got - ref| <= c * (taps + 2) * eps32 * mag elementwise, where mag is the
 * same sum over |terms| (seen here: direct up to 4, Winograd up to 60 eps32 *
 * mag, against bounds of 50-580 and 290-1200); returns the largest error in
 * units of eps32 * mag */
static double check_bound(const char *what, const farol_tensor *got, const double *ref, const double *mag,
                          double taps, double c) {
    int64_t n = farol_numel(got);
    const double eps = 5.96e-8;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs(farol_get_flat(got, i) - ref[i]);
        if (!(err <= c * (taps + 2) * eps * mag[i] + 1e-30))
            fail_msg("%s: element %lld is %.9g, reference %.9g (bound %.3g)", what, (long long)i,
                     farol_get_flat(got, i), ref[i], c * (taps + 2) * eps * mag[i]);
        if (mag[i] > 0 && err / (eps * mag[i]) > worst) worst = err / (eps * mag[i]);
    }
    return worst;
}

/* forward and input gradient of one shape through farol_conv2d; asserts
 * they ran on oneDNN when `expect` says so; c scales the error bound */
static void check_case(const shape_case *s, bool bias, int expect, double c) {
    char what[160];
    snprintf(what, sizeof what, "N%lld C%lld %lldx%lld K%lld k%lldx%lld s%d,%d p%d,%d d%d,%d g%d",
             (long long)s->N, (long long)s->C, (long long)s->H, (long long)s->W, (long long)s->K,
             (long long)s->kh, (long long)s->kw, s->o.stride[0], s->o.stride[1], s->o.padding[0],
             s->o.padding[1], s->o.dilation[0], s->o.dilation[1], s->o.groups);
    int64_t xs[4] = {s->N, s->C, s->H, s->W}, ws[4] = {s->K, s->C / s->o.groups, s->kh, s->kw};
    farol_conv_geom g;
    assert_int_equal(farol_conv_geom_init(&g, "conv2d", xs, ws, &s->o), 0);
    farol_tensor *x = randn32(4, xs, 11), *w = randn32(4, ws, 12), *b = bias ? randn32(1, ws, 13) : NULL;
    int64_t os[4] = {g.N, g.K, g.OH, g.OW};
    farol_tensor *gout = randn32(4, os, 14);
    assert_int_equal(farol_set_requires_grad(x, true), 0);

    int64_t runs0 = farol_dnnl_conv_runs();
    farol_tensor *out = farol_conv2d(x, w, b, &s->o), *dx = NULL;
    if (!out) fail_msg("%s: %s", what, farol_last_error());
    if (farol_grad(1, &out, &gout, 1, &x, &dx) < 0) fail_msg("%s: %s", what, farol_last_error());
    int64_t ran = farol_dnnl_conv_runs() - runs0;
    /* which shapes have JIT kernels is known for AVX-512; with oneDNN held
     * to less (DNNL_MAX_CPU_ISA), some fall back to im2col */
    farol_config_info cfg;
    farol_get_config(&cfg);
    bool avx512 = cfg.dnnl_isa && strncmp(cfg.dnnl_isa, "avx512", 6) == 0;
    if (avx512 ? ran != expect : ran > expect)
        fail_msg("%s: %lld of forward and input gradient ran on oneDNN, expected %d", what, (long long)ran, expect);

    double *xv = values(x, false), *wv = values(w, false), *bv = bias ? values(b, false) : NULL;
    double *gv = values(gout, false), *xa = values(x, true), *wa = values(w, true), *ga = values(gout, true);
    size_t big = (size_t)(farol_numel(out) > farol_numel(x) ? farol_numel(out) : farol_numel(x));
    double *ref = malloc(big * sizeof *ref), *mag = malloc(big * sizeof *mag);
    assert_non_null(ref);
    assert_non_null(mag);
    double taps = (double)(g.C / g.groups * g.kh * g.kw);

    farol_conv2d_forward_naive(ref, xv, wv, bv, &g);
    farol_conv2d_forward_naive(mag, xa, wa, NULL, &g);
    if (bv)
        for (int64_t i = 0; i < farol_numel(out); i++) mag[i] += fabs(bv[i / (g.OH * g.OW) % g.K]);
    check_bound(what, out, ref, mag, taps, c);
    farol_conv2d_backward_input_naive(ref, gv, wv, &g);
    farol_conv2d_backward_input_naive(mag, ga, wa, &g);
    check_bound(what, dx, ref, mag, (double)(g.K / g.groups * g.kh * g.kw), c);

    free(xv), free(wv), free(bv), free(gv), free(xa), free(wa), free(ga), free(ref), free(mag);
    farol_tensor *all[] = {x, w, b, gout, out, dx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) farol_release(all[i]);
}

/* oneDNN's JIT kernels want channel counts in blocks of 16 (or 4 and 8 for
 * groups); elsewhere it would run its GEMM kernel, and farol im2col */
static const shape_case direct_cases[] = {
    {2, 16, 9, 11, 8, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, 2},
    {3, 16, 13, 9, 32, 3, 2, {{2, 1}, {2, 1}, {1, 2}, 1}, 2},  /* stride, dilation, odd padding */
    {3, 8, 13, 9, 12, 3, 2, {{2, 1}, {3, 0}, {1, 2}, 1}, 0},   /* channels (and padding) oneDNN has no JIT kernel for */
    {2, 12, 11, 10, 8, 3, 3, {{2, 3}, {2, 1}, {2, 2}, 2}, 0},  /* groups 2 of 6 */
    {3, 16, 6, 7, 24, 1, 1, {{1, 1}, {0, 0}, {1, 1}, 1}, 2},   /* 1x1 */
    {3, 16, 7, 6, 32, 1, 1, {{2, 2}, {0, 0}, {1, 1}, 1}, 2},   /* 1x1 stride 2 (ResNet downsample) */
    {2, 32, 15, 15, 16, 5, 5, {{1, 1}, {2, 2}, {1, 1}, 4}, 2}, /* groups 4 */
    {2, 3, 29, 31, 16, 7, 7, {{2, 2}, {3, 3}, {1, 1}, 1}, 1},  /* ResNet stem: dx on im2col */
    {2, 64, 7, 7, 64, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, 2},   /* 7x7 planes: direct */
    {3, 16, 10, 9, 16, 3, 3, {{1, 1}, {0, 0}, {3, 2}, 1}, 2},  /* dilation 3 x 2 */
};

static void test_direct_vs_reference(void **state) {
    if (!farol_fast_conv_available()) skip();
    farol_set_conv_winograd(false);
    for (size_t i = 0; i < sizeof direct_cases / sizeof *direct_cases; i++)
        check_case(&direct_cases[i], i % 2 == 0, direct_cases[i].dnnl, 1);
    farol_set_conv_winograd(true);
}

static void test_winograd_vs_reference(void **state) {
    if (!farol_fast_conv_available()) skip();
    const shape_case cases[] = {
        {2, 16, 14, 14, 16, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, 2},
        {2, 32, 17, 15, 48, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, 2},   /* tiles that do not divide */
        {1, 64, 28, 28, 32, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, 2},
        {3, 16, 18, 16, 16, 3, 3, {{1, 1}, {0, 0}, {1, 1}, 1}, 2},   /* no padding */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(&cases[i], i % 2 == 1, 2, 2);
}

/* the same call gives the same bits every time and with 1 or 2 threads */
static void test_deterministic(void **state) {
    if (!farol_fast_conv_available()) skip();
    const shape_case cases[] = {
        {4, 32, 20, 20, 32, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, 2},   /* Winograd */
        {4, 32, 20, 20, 64, 3, 3, {{2, 2}, {1, 1}, {1, 1}, 1}, 2},   /* direct */
        {3, 64, 7, 7, 64, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, 2},
    };
    int threads = farol_get_num_threads();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const shape_case *s = &cases[i];
        int64_t xs[4] = {s->N, s->C, s->H, s->W}, ws[4] = {s->K, s->C, s->kh, s->kw};
        farol_tensor *x = randn32(4, xs, 1), *w = randn32(4, ws, 2), *first[2] = {0};
        assert_int_equal(farol_set_requires_grad(x, true), 0);
        for (int run = 0; run < 4; run++) {
            farol_set_num_threads(run % 2 ? 1 : 2);
            farol_tensor *out = farol_conv2d(x, w, NULL, &s->o), *dx = NULL;
            assert_non_null(out);
            farol_tensor *gout = randn32(out->ndim, out->shape, 3);
            assert_int_equal(farol_grad(1, &out, &gout, 1, &x, &dx), 0);
            if (run == 0) {
                first[0] = out, first[1] = dx;
            } else {
                assert_memory_equal(farol_data(out), farol_data(first[0]), farol_numel(out) * 4);
                assert_memory_equal(farol_data(dx), farol_data(first[1]), farol_numel(dx) * 4);
                farol_release(out);
                farol_release(dx);
            }
            farol_release(gout);
        }
        farol_release(first[0]), farol_release(first[1]), farol_release(x), farol_release(w);
    }
    farol_set_num_threads(threads);
}

/* switched off: nothing runs on oneDNN, and the results are im2col's */
static void test_switch_off(void **state) {
    if (!farol_fast_conv_available()) skip();
    int64_t xs[4] = {2, 16, 12, 12}, ws[4] = {16, 16, 3, 3};
    farol_tensor *x = randn32(4, xs, 1), *w = randn32(4, ws, 2);
    farol_conv_opts o = opts(1, 1, 1, 1, 1, 1, 1);
    farol_set_fast_conv(false);
    assert_false(farol_fast_conv_enabled());
    int64_t before = farol_dnnl_conv_runs();
    farol_tensor *ref = farol_conv2d(x, w, NULL, &o);
    assert_int_equal(farol_dnnl_conv_runs(), before);
    farol_set_fast_conv(true);
    farol_tensor *fast = farol_conv2d(x, w, NULL, &o);
    assert_int_equal(farol_dnnl_conv_runs(), before + 1);
    tu_assert_close("oneDNN vs im2col", fast, ref, 1e-4, 1e-4);
    farol_release(x), farol_release(w), farol_release(ref), farol_release(fast);
}

static void test_alloc_failures(void **state) {
    if (!farol_fast_conv_available()) skip();
    size_t live = farol_live_bytes();
    int64_t xs[4] = {2, 16, 9, 9}, ws[4] = {16, 16, 3, 3};
    farol_tensor *x = randn32(4, xs, 1), *w = randn32(4, ws, 2);
    assert_int_equal(farol_set_requires_grad(x, true), 0);
    farol_conv_opts o = opts(1, 1, 1, 1, 1, 1, 1);
    bool done = false;
    for (int64_t n = 1; !done && n < 100; n++) {
        farol_alloc_fail_at(n);
        farol_tensor *out = farol_conv2d(x, w, NULL, &o), *dx = NULL;
        int rc = -1;
        if (out) {
            farol_tensor *g = farol_full(4, out->shape, 1.0, FAROL_F32);
            rc = g ? farol_grad(1, &out, &g, 1, &x, &dx) : -1;
            farol_release(g);
        }
        done = farol_alloc_count() < n;
        if (done) assert_int_equal(rc, 0);
        else assert_true(!out || rc < 0);
        farol_release(out);
        farol_release(dx);
    }
    farol_alloc_fail_at(0);
    assert_true(done);
    farol_release(x), farol_release(w);
    assert_int_equal(farol_live_bytes(), live);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_direct_vs_reference, setup),
        cmocka_unit_test_setup(test_winograd_vs_reference, setup),
        cmocka_unit_test_setup(test_deterministic, setup),
        cmocka_unit_test_setup(test_switch_off, setup),
        cmocka_unit_test_setup(test_alloc_failures, setup),
    };
    return tu_run(tests, argc, argv);
}
