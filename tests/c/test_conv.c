/* conv1d and conv2d: PyTorch fixtures, float64 gradient checks, the fast
 * GEMM / depthwise paths against the seven-loop reference kernels on odd
 * shapes in float32 and float64, input-only backward, errors and
 * allocation failures. */
#include "testutil.h"
#include "ops/conv_ref.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERR_HAS(s) assert_non_null(strstr(farol_last_error(), (s)))

typedef struct {
    farol_conv_opts o;
    bool bias;
    bool conv1d;
    bool transpose;  /* x arrives with H and W swapped: transpose it first (a strided view) */
} conv_ctx;

/* xs: x, w [, b] */
static farol_tensor *conv_fn(void *vctx, farol_tensor **xs) {
    conv_ctx *c = vctx;
    farol_tensor *x = c->transpose ? farol_transpose(xs[0], 2, 3) : farol_retain(xs[0]);
    if (!x) return NULL;
    farol_tensor *b = c->bias ? xs[2] : NULL;
    farol_tensor *out = c->conv1d ? farol_conv1d(x, xs[1], b, &c->o) : farol_conv2d(x, xs[1], b, &c->o);
    farol_release(x);
    return out;
}

static farol_conv_opts opts(int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
    return (farol_conv_opts){{sh, sw}, {ph, pw}, {dh, dw}, groups};
}

static void test_conv_defaults(void **state) {
    (void)state;
    farol_conv_opts o = farol_conv_defaults();
    assert_int_equal(o.stride[0], 1);
    assert_int_equal(o.stride[1], 1);
    assert_int_equal(o.padding[0], 0);
    assert_int_equal(o.padding[1], 0);
    assert_int_equal(o.dilation[0], 1);
    assert_int_equal(o.dilation[1], 1);
    assert_int_equal(o.groups, 1);
}

static void test_conv2d_fixture(void **state) {
    (void)state;
    farol_tensor_dict d = tu_fixture("ops/conv2d.safetensors");
    const char *names[] = {"x", "w", "b"};
    struct { const char *v; conv_ctx c; } cases[] = {
        {"v1", {.o = opts(1, 1, 0, 0, 1, 1, 1), .bias = true}},
        {"v2", {.o = opts(2, 2, 0, 0, 1, 1, 1), .bias = true}},
        {"v3", {.o = opts(1, 1, 1, 1, 1, 1, 1), .bias = true}},
        {"v4", {.o = opts(1, 1, 0, 0, 2, 2, 1), .bias = true}},
        {"v5", {.o = opts(1, 1, 0, 0, 1, 1, 2), .bias = true}},
        {"v6", {.o = opts(2, 2, 2, 2, 2, 2, 2), .bias = true}},
        {"v7", {.o = opts(2, 1, 1, 0, 1, 1, 1), .bias = false}},
        {"v8", {.o = opts(1, 1, 1, 1, 1, 1, 3), .bias = true}},
        {"v9", {.o = opts(3, 3, 0, 0, 1, 1, 1), .bias = true}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        tu_check_fixture(&d, cases[i].v, conv_fn, &cases[i].c, cases[i].c.bias ? 3 : 2, names);
    farol_dict_free(&d);
}

static void test_conv1d_fixture(void **state) {
    (void)state;
    farol_tensor_dict d = tu_fixture("ops/conv1d.safetensors");
    const char *names[] = {"x", "w", "b"};
    /* conv1d reads index 0 of each option */
    struct { const char *v; conv_ctx c; } cases[] = {
        {"v1", {.o = opts(1, 0, 0, 0, 1, 0, 1), .bias = true, .conv1d = true}},
        {"v2", {.o = opts(2, 0, 1, 0, 1, 0, 1), .bias = true, .conv1d = true}},
        {"v3", {.o = opts(1, 0, 2, 0, 2, 0, 1), .bias = false, .conv1d = true}},
        {"v4", {.o = opts(1, 0, 0, 0, 1, 0, 2), .bias = true, .conv1d = true}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        tu_check_fixture(&d, cases[i].v, conv_fn, &cases[i].c, cases[i].c.bias ? 3 : 2, names);
    farol_dict_free(&d);
}

static void gradcheck_case(const char *what, conv_ctx *c, const int64_t *xs, const int64_t *ws,
                           uint64_t seed) {
    int nd = c->conv1d ? 3 : 4;
    farol_tensor *t[3] = {tu_randn64(nd, xs, seed), tu_randn64(nd, ws, seed + 1), NULL};
    if (c->bias) t[2] = tu_randn64(1, ws, seed + 2);
    tu_gradcheck(what, conv_fn, c, c->bias ? 3 : 2, t);
    for (int i = 0; i < 3; i++) farol_release(t[i]);
}

static void test_conv2d_gradcheck(void **state) {
    (void)state;
    /* groups, per-axis stride, padding and dilation, one image batch of 3 */
    conv_ctx c1 = {.o = opts(2, 1, 1, 2, 1, 2, 2), .bias = true};
    gradcheck_case("groups/stride/dilation", &c1, (int64_t[]){3, 4, 5, 6}, (int64_t[]){4, 2, 2, 3}, 10);
    /* a strided (transposed) input, padding 3 > kernel reach, no bias */
    conv_ctx c2 = {.o = opts(1, 2, 3, 1, 1, 1, 1), .bias = false, .conv1d = false, .transpose = true};
    gradcheck_case("transposed x", &c2, (int64_t[]){2, 2, 4, 5}, (int64_t[]){3, 2, 3, 2}, 20);
    /* depthwise, stride 2 and dilation 2 */
    conv_ctx c3 = {.o = opts(2, 2, 2, 1, 2, 1, 3), .bias = true};
    gradcheck_case("depthwise", &c3, (int64_t[]){2, 3, 6, 5}, (int64_t[]){3, 1, 3, 3}, 30);
    /* 1x1 stride 1: the direct GEMM; and 1x1 stride 2 */
    conv_ctx c4 = {.o = opts(1, 1, 0, 0, 1, 1, 1), .bias = true};
    gradcheck_case("1x1", &c4, (int64_t[]){1, 3, 4, 3}, (int64_t[]){5, 3, 1, 1}, 40);
    conv_ctx c5 = {.o = opts(2, 2, 0, 0, 1, 1, 1), .bias = false};
    gradcheck_case("1x1 stride 2", &c5, (int64_t[]){2, 3, 5, 4}, (int64_t[]){2, 3, 1, 1}, 50);
    /* conv1d with groups and dilation */
    conv_ctx c6 = {.o = opts(2, 0, 2, 0, 2, 0, 2), .bias = true, .conv1d = true};
    gradcheck_case("conv1d", &c6, (int64_t[]){2, 4, 9}, (int64_t[]){4, 2, 3}, 60);
}

/* ---- fast against the reference kernels ---- */

typedef struct {
    int64_t N, C, H, W, K, kh, kw;
    farol_conv_opts o;
} shape_case;

static farol_tensor *randn(int nd, const int64_t *shape, farol_dtype dt, uint64_t seed) {
    farol_manual_seed(seed);
    farol_tensor *t = farol_randn(nd, shape, dt);
    assert_non_null(t);
    return t;
}

/* float64 copy of t's values */
static double *values(const farol_tensor *t) {
    int64_t n = farol_numel(t);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    assert_non_null(v);
    farol_copy_to_buffer(t, v, FAROL_F64);
    return v;
}

static void assert_values_close(const char *what, const farol_tensor *got, const double *exp,
                                double tol) {
    int64_t n = farol_numel(got);
    double scale = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(exp[i]));
    for (int64_t i = 0; i < n; i++) {
        double g = farol_get_flat(got, i);
        if (!(fabs(g - exp[i]) <= tol * (1 + scale)))
            fail_msg("%s: element %lld is %.10g, expected %.10g", what, (long long)i, g, exp[i]);
    }
}

static void compare_with_naive(const shape_case *s, farol_dtype dt, bool bias) {
    char what[160];
    snprintf(what, sizeof what, "N%lld C%lld %lldx%lld K%lld k%lldx%lld s%d,%d p%d,%d d%d,%d g%d %s",
             (long long)s->N, (long long)s->C, (long long)s->H, (long long)s->W, (long long)s->K,
             (long long)s->kh, (long long)s->kw, s->o.stride[0], s->o.stride[1], s->o.padding[0],
             s->o.padding[1], s->o.dilation[0], s->o.dilation[1], s->o.groups, farol_dtype_name(dt));
    int64_t xs[4] = {s->N, s->C, s->H, s->W}, ws[4] = {s->K, s->C / s->o.groups, s->kh, s->kw};
    farol_conv_geom g;
    assert_int_equal(farol_conv_geom_init(&g, "conv2d", xs, ws, &s->o), 0);
    farol_tensor *x = randn(4, xs, dt, 1), *w = randn(4, ws, dt, 2);
    farol_tensor *b = bias ? randn(1, ws, dt, 3) : NULL;
    assert_int_equal(farol_set_requires_grad(x, true), 0);
    assert_int_equal(farol_set_requires_grad(w, true), 0);
    int64_t os[4] = {g.N, g.K, g.OH, g.OW};
    farol_tensor *gout = randn(4, os, dt, 4);

    farol_tensor *out = farol_conv2d(x, w, b, &s->o);
    if (!out) fail_msg("%s: %s", what, farol_last_error());
    double *xv = values(x), *wv = values(w), *bv = bias ? values(b) : NULL, *gv = values(gout);
    double *ref = malloc(sizeof(double) * (size_t)(farol_numel(out) + farol_numel(x) + farol_numel(w)));
    assert_non_null(ref);
    double tol = dt == FAROL_F32 ? 1e-5 : 1e-12;

    farol_conv2d_forward_naive(ref, xv, wv, bv, &g);
    assert_values_close(what, out, ref, tol);

    farol_tensor *wrt[2] = {x, w}, *grads[2] = {0};
    assert_int_equal(farol_grad(1, &out, &gout, 2, wrt, grads), 0);
    farol_conv2d_backward_input_naive(ref, gv, wv, &g);
    assert_values_close(what, grads[0], ref, tol);
    farol_conv2d_backward_weight_naive(ref, gv, xv, &g);
    assert_values_close(what, grads[1], ref, tol);

    free(xv), free(wv), free(bv), free(gv), free(ref);
    farol_tensor *all[] = {x, w, b, gout, out, grads[0], grads[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) farol_release(all[i]);
}

static void test_conv2d_fast_vs_naive(void **state) {
    (void)state;
    shape_case cases[] = {
        {3, 3, 7, 9, 4, 3, 3, opts(1, 1, 1, 1, 1, 1, 1)},
        {3, 4, 9, 8, 6, 3, 2, opts(2, 1, 3, 0, 1, 2, 2)},   /* stride 2, dilation 2, groups 2, padding 3 */
        {2, 6, 11, 10, 4, 3, 3, opts(2, 3, 2, 1, 2, 2, 2)},
        {3, 5, 6, 7, 5, 1, 1, opts(1, 1, 0, 0, 1, 1, 1)},   /* 1x1: direct GEMM */
        {3, 4, 7, 6, 8, 1, 1, opts(2, 2, 0, 0, 1, 1, 1)},   /* 1x1 stride 2 */
        {1, 4, 5, 6, 6, 1, 1, opts(1, 1, 0, 0, 1, 1, 2)},   /* 1x1 grouped */
        {3, 4, 8, 7, 4, 3, 3, opts(2, 1, 1, 2, 1, 2, 4)},   /* depthwise */
        {2, 3, 7, 7, 3, 7, 7, opts(2, 2, 3, 3, 1, 1, 1)},   /* ResNet stem shape, small */
        {5, 8, 20, 24, 16, 3, 3, opts(1, 1, 1, 1, 1, 1, 1)}, /* threaded over images */
        {6, 64, 7, 7, 32, 3, 3, opts(1, 1, 1, 1, 1, 1, 1)},  /* small planes: images batched per GEMM */
        {5, 32, 7, 7, 64, 3, 3, opts(1, 1, 1, 1, 1, 1, 2)},  /* batched 2+2+1, threaded, groups */
        {7, 16, 5, 5, 12, 3, 3, opts(1, 1, 1, 1, 1, 1, 2)},  /* batched in one GEMM, groups */
        /* one image over several threads: tiles of rows forward, blocks of channels backward */
        {1, 16, 40, 40, 16, 3, 3, opts(1, 1, 1, 1, 1, 1, 1)},
        {1, 64, 30, 30, 64, 1, 1, opts(1, 1, 0, 0, 1, 1, 1)},
        {1, 32, 33, 31, 32, 3, 3, opts(2, 2, 1, 1, 1, 1, 1)},
        {1, 1, 64, 64, 64, 5, 5, opts(1, 1, 2, 2, 1, 1, 1)},  /* one channel: no channel split */
        {4, 32, 30, 30, 32, 3, 3, opts(1, 1, 1, 1, 1, 1, 32)}, /* depthwise, threaded */
        {2, 3, 2, 2, 2, 3, 3, opts(1, 1, 1, 1, 1, 1, 1)},    /* padding wider than the input's rest */
        {2, 2, 3, 1, 3, 3, 3, opts(1, 1, 1, 1, 1, 1, 1)},    /* edge taps that see only padding */
        {2, 3, 6, 5, 4, 5, 3, opts(1, 1, 4, 2, 2, 2, 1)},    /* same width with dilation 2 */
        /* wide rows: the columns are built a few output rows at a time */
        {2, 32, 13, 301, 4, 3, 3, opts(2, 1, 2, 1, 2, 1, 1)},
        {1, 32, 12, 200, 6, 3, 3, opts(1, 1, 1, 1, 1, 1, 2)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        compare_with_naive(&cases[i], FAROL_F64, i % 2 == 0);
        compare_with_naive(&cases[i], FAROL_F32, i % 2 == 1);
    }
}

/* CNN benchmark shapes in float32: the configuration the benchmark runs */
static void test_conv2d_benchmark_shapes(void **state) {
    (void)state;
    shape_case cases[] = {
        {4, 3, 32, 32, 32, 3, 3, opts(1, 1, 1, 1, 1, 1, 1)},
        {4, 32, 16, 16, 64, 3, 3, opts(1, 1, 1, 1, 1, 1, 1)},
        {2, 64, 7, 7, 64, 3, 3, opts(1, 1, 1, 1, 1, 1, 1)},
        {2, 16, 14, 14, 32, 1, 1, opts(2, 2, 0, 0, 1, 1, 1)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) compare_with_naive(&cases[i], FAROL_F32, true);
}

/* ---- saliency asks only for dx ---- */

static void test_conv2d_input_grad_only(void **state) {
    (void)state;
    int64_t xs[4] = {2, 3, 6, 6}, ws[4] = {4, 3, 3, 3}, bs[1] = {4};
    farol_tensor *x = tu_randn64(4, xs, 1), *w = tu_randn64(4, ws, 2), *b = tu_randn64(1, bs, 3);
    farol_conv_opts o = opts(1, 1, 1, 1, 1, 1, 1);
    farol_tensor *out = farol_conv2d(x, w, b, &o);
    assert_non_null(out);
    farol_tensor *gout = randn(out->ndim, out->shape, FAROL_F64, 4), *gx = NULL;

    farol_reset_tape_stats();
    assert_int_equal(farol_grad(1, &out, &gout, 1, &x, &gx), 0);
    farol_tape_stats st = farol_get_tape_stats();
    assert_int_equal(st.nodes_run, 1);
    assert_int_equal(st.input_grads_computed, 1);
    farol_release(gx);

    /* the backward itself leaves dw and db alone when only dx is needed */
    farol_node *n = out->node;
    assert_non_null(n);
    n->inputs[0].need = true;
    n->inputs[1].need = false;
    n->inputs[2].need = false;
    farol_tensor *gin[3] = {0};
    assert_int_equal(farol_conv2d_backward(n, gout, gin), 0);
    assert_non_null(gin[0]);
    assert_null(gin[1]);
    assert_null(gin[2]);
    farol_release(gin[0]);
    farol_release(out);

    /* with weights that need no gradient, x is not even saved */
    assert_int_equal(farol_set_requires_grad(w, false), 0);
    assert_int_equal(farol_set_requires_grad(b, false), 0);
    out = farol_conv2d(x, w, b, &o);
    assert_non_null(out);
    assert_null(out->node->saved[0]);
    assert_non_null(out->node->saved[1]);
    farol_release(out);
    farol_tensor *all[] = {x, w, b, gout};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) farol_release(all[i]);
}

/* the gradient of only the weights and bias: dx is not computed */
static void test_conv2d_weight_grad_only(void **state) {
    (void)state;
    int64_t xs[4] = {2, 2, 5, 5}, ws[4] = {3, 2, 3, 3}, bs[1] = {3};
    farol_tensor *x = tu_randn64(4, xs, 1), *w = tu_randn64(4, ws, 2), *b = tu_randn64(1, bs, 3);
    assert_int_equal(farol_set_requires_grad(x, false), 0);
    conv_ctx c = {.o = opts(1, 1, 1, 1, 1, 1, 1), .bias = true};
    farol_tensor *t[3] = {x, w, b};
    tu_gradcheck("weights only", conv_fn, &c, 3, t);
    farol_tensor *out = farol_conv2d(x, w, b, &c.o);
    assert_non_null(out);
    assert_non_null(out->node->saved[0]);
    assert_null(out->node->saved[1]);
    farol_release(out);
    for (int i = 0; i < 3; i++) farol_release(t[i]);
}

/* ---- errors ---- */

static void test_conv_errors(void **state) {
    (void)state;
    farol_conv_opts o = farol_conv_defaults();
    farol_tensor *x = randn(4, (int64_t[]){1, 3, 5, 5}, FAROL_F32, 1);
    farol_tensor *w1 = randn(4, (int64_t[]){2, 1, 3, 3}, FAROL_F32, 2);
    farol_tensor *w3 = randn(4, (int64_t[]){4, 3, 3, 3}, FAROL_F32, 3);
    farol_tensor *w64 = randn(4, (int64_t[]){4, 3, 3, 3}, FAROL_F64, 4);
    farol_tensor *big = randn(4, (int64_t[]){4, 3, 7, 7}, FAROL_F32, 5);
    farol_tensor *b3 = randn(1, (int64_t[]){3}, FAROL_F32, 6);
    farol_tensor *x3 = randn(3, (int64_t[]){1, 3, 5}, FAROL_F32, 7);
    farol_tensor *i64 = farol_zeros(4, (int64_t[]){1, 3, 5, 5}, FAROL_I64);

    assert_null(farol_conv2d(x, w1, NULL, &o));
    assert_string_equal(farol_last_error(), "farol: conv2d: input has 3 channels, weight expects 1 (groups 1)");
    assert_null(farol_conv2d(x3, w3, NULL, &o));
    ERR_HAS("conv2d: x must be 4-D (N, C, H, W), got shape [1, 3, 5]");
    assert_null(farol_conv2d(x, x3, NULL, &o));
    ERR_HAS("conv2d: w must be 4-D");
    assert_null(farol_conv2d(x, big, NULL, &o));
    ERR_HAS("conv2d: output size is not positive");
    farol_conv_opts og = opts(1, 1, 0, 0, 1, 1, 2);
    assert_null(farol_conv2d(x, w3, NULL, &og));
    ERR_HAS("conv2d: groups 2 must divide both the 3 input channels and the 4 output channels");
    farol_conv_opts o0 = opts(0, 1, 0, 0, 1, 1, 1);
    assert_null(farol_conv2d(x, w3, NULL, &o0));
    ERR_HAS("stride and dilation must be >= 1");
    farol_conv_opts gz = opts(1, 1, 0, 0, 1, 1, 0);
    assert_null(farol_conv2d(x, w3, NULL, &gz));
    ERR_HAS("groups must be >= 1");
    assert_null(farol_conv2d(x, w64, NULL, &o));
    ERR_HAS("conv2d: x, w and b must share a dtype, got x float32, w float64");
    assert_null(farol_conv2d(x, w3, b3, &o));
    ERR_HAS("conv2d: b must have shape [4]");
    assert_null(farol_conv2d(i64, w3, NULL, &o));
    ERR_HAS("conv2d");
    assert_null(farol_conv2d(NULL, w3, NULL, &o));
    ERR_HAS("required");

    /* conv1d names itself and checks its own layout */
    farol_tensor *wl = randn(3, (int64_t[]){2, 1, 3}, FAROL_F32, 8);
    assert_null(farol_conv1d(x3, wl, NULL, &o));
    assert_string_equal(farol_last_error(), "farol: conv1d: input has 3 channels, weight expects 1 (groups 1)");
    assert_null(farol_conv1d(x, wl, NULL, &o));
    ERR_HAS("conv1d: x must be 3-D (N, C, L)");
    farol_tensor *wlong = randn(3, (int64_t[]){2, 3, 9}, FAROL_F32, 9);
    assert_null(farol_conv1d(x3, wlong, NULL, &o));
    ERR_HAS("conv1d: output size is not positive");

    /* a NULL opts means the defaults */
    farol_tensor *y = farol_conv2d(x, w3, NULL, NULL);
    assert_non_null(y);
    assert_int_equal(y->shape[2], 3);
    farol_release(y);
    farol_tensor *all[] = {x, w1, w3, w64, big, b3, x3, i64, wl, wlong};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) farol_release(all[i]);
}

static void test_conv_alloc_failures(void **state) {
    (void)state;
    size_t live = farol_live_bytes();
    farol_tensor *x = tu_randn64(4, (int64_t[]){3, 4, 6, 5}, 1), *w = tu_randn64(4, (int64_t[]){4, 2, 3, 3}, 2);
    farol_tensor *b = tu_randn64(1, (int64_t[]){4}, 3);
    farol_tensor *xt = farol_transpose(x, 2, 3);
    farol_tensor *x1 = tu_randn64(3, (int64_t[]){2, 4, 7}, 4), *w1 = tu_randn64(3, (int64_t[]){4, 4, 3}, 5);
    farol_conv_opts o = opts(1, 2, 1, 1, 1, 1, 2), dw = opts(1, 1, 1, 1, 1, 1, 4);
    farol_tensor *wd = tu_randn64(4, (int64_t[]){4, 1, 3, 3}, 6);
    farol_conv_opts def = farol_conv_defaults();
    for (int op = 0; op < 3; op++) {
        bool done = false;
        for (int64_t n = 1; !done && n < 300; n++) {
            farol_alloc_fail_at(n);
            farol_tensor *out, *in[3] = {xt, w, b}, *r[3] = {0};
            if (op == 0) out = farol_conv2d(xt, w, b, &o);
            else if (op == 1) out = farol_conv2d(xt, wd, NULL, &dw), in[1] = wd;
            else out = farol_conv1d(x1, w1, b, &def), in[0] = x1, in[1] = w1;
            int rc = -1;
            if (out) {
                farol_tensor *g = farol_full(out->ndim, out->shape, 1.0, FAROL_F64);
                rc = g ? farol_grad(1, &out, &g, op == 1 ? 2 : 3, in, r) : -1;
                farol_release(g);
            }
            done = farol_alloc_count() < n;
            if (done) assert_int_equal(rc, 0);
            else assert_true(!out || rc < 0);
            for (int k = 0; k < 3; k++) farol_release(r[k]);
            farol_release(out);
        }
        farol_alloc_fail_at(0);
        assert_true(done);
    }
    farol_tensor *all[] = {x, w, b, xt, x1, w1, wd};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) farol_release(all[i]);
    assert_int_equal(farol_live_bytes(), live);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_defaults),
        cmocka_unit_test(test_conv2d_fixture),
        cmocka_unit_test(test_conv1d_fixture),
        cmocka_unit_test(test_conv2d_gradcheck),
        cmocka_unit_test(test_conv2d_fast_vs_naive),
        cmocka_unit_test(test_conv2d_benchmark_shapes),
        cmocka_unit_test(test_conv2d_input_grad_only),
        cmocka_unit_test(test_conv2d_weight_grad_only),
        cmocka_unit_test(test_conv_errors),
        cmocka_unit_test(test_conv_alloc_failures),
    };
    return tu_run(tests, argc, argv);
}
