/* max_pool2d, avg_pool2d and adaptive_avg_pool2d: PyTorch fixtures, float64
 * gradient checks, tie routing, 3-D inputs, float32 against float64,
 * errors and allocation failures. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERR_HAS(s) assert_non_null(strstr(farol_last_error(), (s)))

typedef enum { MAX, AVG, ADAPTIVE } pool_kind;

typedef struct {
    pool_kind kind;
    farol_pool_opts o;
    int64_t oh, ow;   /* adaptive */
    bool transpose;   /* swap the last two dims first: a strided input */
} pool_ctx;

static farol_tensor *pool_fn(void *vctx, farol_tensor **xs) {
    pool_ctx *c = vctx;
    farol_tensor *x = c->transpose ? farol_transpose(xs[0], -1, -2) : farol_retain(xs[0]);
    if (!x) return NULL;
    farol_tensor *out = c->kind == MAX   ? farol_max_pool2d(x, &c->o)
                        : c->kind == AVG ? farol_avg_pool2d(x, &c->o)
                                         : farol_adaptive_avg_pool2d(x, c->oh, c->ow);
    farol_release(x);
    return out;
}

static farol_pool_opts popts(int k, int s, int p) { return (farol_pool_opts){.kernel = {k, k}, .stride = {s, s}, .padding = {p, p}}; }

static void run_fixture(const char *file, pool_ctx *cases, int n) {
    farol_tensor_dict d = tu_fixture(file);
    const char *names[] = {"x"};
    char v[16];
    for (int i = 0; i < n; i++) {
        snprintf(v, sizeof v, "v%d", i + 1);
        tu_check_fixture(&d, v, pool_fn, &cases[i], 1, names);
    }
    farol_dict_free(&d);
}

static void test_max_pool2d_fixture(void **state) {
    (void)state;
    pool_ctx c[] = {
        {.kind = MAX, .o = popts(2, 0, 0)}, {.kind = MAX, .o = popts(3, 2, 1)}, {.kind = MAX, .o = popts(2, 1, 0)},
        {.kind = MAX, .o = popts(2, 0, 0)}, {.kind = MAX, .o = popts(2, 0, 0)},
    };
    run_fixture("ops/max_pool2d.safetensors", c, 5);
}

static void test_avg_pool2d_fixture(void **state) {
    (void)state;
    pool_ctx c[] = {{.kind = AVG, .o = popts(2, 0, 0)}, {.kind = AVG, .o = popts(3, 2, 1)}, {.kind = AVG, .o = popts(2, 1, 0)}, {.kind = AVG, .o = popts(2, 0, 0)}};
    run_fixture("ops/avg_pool2d.safetensors", c, 4);
}

static void test_adaptive_avg_pool2d_fixture(void **state) {
    (void)state;
    pool_ctx c[] = {
        {.kind = ADAPTIVE, .oh = 1, .ow = 1}, {.kind = ADAPTIVE, .oh = 2, .ow = 3}, {.kind = ADAPTIVE, .oh = 3, .ow = 3},
        {.kind = ADAPTIVE, .oh = 4, .ow = 4}, {.kind = ADAPTIVE, .oh = 1, .ow = 2},
    };
    run_fixture("ops/adaptive_avg_pool2d.safetensors", c, 5);
}

static void gradcheck(const char *what, pool_ctx *c, int nd, const int64_t *shape, uint64_t seed) {
    farol_tensor *x = tu_randn64(nd, shape, seed);
    tu_gradcheck(what, pool_fn, c, 1, &x);
    farol_release(x);
}

static void test_pool_gradcheck(void **state) {
    (void)state;
    /* random inputs have no ties, so max pooling is smooth there */
    pool_ctx m1 = {.kind = MAX, .o = {{3, 2}, {2, 1}, {1, 1}}};
    gradcheck("max 3x2 stride 2x1 pad 1", &m1, 4, (int64_t[]){2, 3, 7, 6}, 1);
    pool_ctx m2 = {.kind = MAX, .o = popts(2, 1, 0), .transpose = true};
    gradcheck("max overlapping, strided x", &m2, 4, (int64_t[]){1, 2, 5, 4}, 2);
    pool_ctx m3 = {.kind = MAX, .o = popts(2, 0, 1)};
    gradcheck("max 3-D", &m3, 3, (int64_t[]){3, 5, 5}, 3);
    /* large windows, padding and ceil_mode's partial windows */
    pool_ctx m4 = {.kind = MAX, .o = {{17, 16}, {3, 4}, {8, 8}}};
    gradcheck("max 17x16 window", &m4, 4, (int64_t[]){1, 2, 20, 19}, 8);
    pool_ctx m5 = {.kind = MAX, .o = {{16, 16}, {5, 3}, {8, 7}, true}};
    gradcheck("max 16x16 window, ceil_mode", &m5, 4, (int64_t[]){1, 2, 21, 18}, 9);

    pool_ctx a1 = {.kind = AVG, .o = {{3, 2}, {2, 1}, {1, 1}}};
    gradcheck("avg padded", &a1, 4, (int64_t[]){2, 3, 7, 6}, 4);
    pool_ctx a2 = {.kind = AVG, .o = popts(2, 1, 0), .transpose = true};
    gradcheck("avg overlapping, strided x", &a2, 3, (int64_t[]){2, 5, 4}, 5);

    pool_ctx d1 = {.kind = ADAPTIVE, .oh = 3, .ow = 4};
    gradcheck("adaptive overlapping bins", &d1, 4, (int64_t[]){2, 2, 5, 7}, 6);
    pool_ctx d2 = {.kind = ADAPTIVE, .oh = 5, .ow = 3, .transpose = true};
    gradcheck("adaptive upsampling, strided x", &d2, 3, (int64_t[]){2, 4, 3}, 7);
}

/* ceil_mode keeps a last partial window unless it would start in the right
 * padding; count_include_pad off divides by the input cells only */
static void test_pool_ceil_mode(void **state) {
    (void)state;
    int64_t shape[4] = {1, 1, 5, 5};
    double v[25];
    for (int i = 0; i < 25; i++) v[i] = i;
    farol_tensor *x = tu_tensor(4, shape, v);
    /* 2x2 at stride 2 on 5x5: 3x3 with ceil_mode (the 2x2 fast path must
     * not read past the input), the last row/column from 1-wide windows */
    farol_pool_opts o = {.kernel = {2, 2}, .stride = {2, 2}, .ceil_mode = true};
    farol_tensor *y = farol_max_pool2d(x, &o);
    assert_non_null(y);
    assert_int_equal(y->shape[2], 3);
    double want_max[] = {6, 8, 9, 16, 18, 19, 21, 23, 24};
    farol_tensor *w = tu_tensor(4, (int64_t[]){1, 1, 3, 3}, want_max);
    tu_assert_close("max ceil_mode", y, w, 0, 0);
    farol_release(y);
    farol_release(w);
    /* avg, stride 2, padding 1: ceil would add a 4th window starting at
     * input row 5 = in the right padding, so it stays 3 */
    farol_pool_opts a = {.kernel = {2, 2}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true};
    y = farol_avg_pool2d(x, &a);
    assert_non_null(y);
    assert_int_equal(y->shape[2], 3);
    /* window (0, 0) holds only x[0][0]: 0 / 4 with padding counted */
    assert_true(((double *)farol_data(y))[0] == 0.0);
    assert_true(((double *)farol_data(y))[1] == (1.0 + 2.0) / 4);
    farol_release(y);
    a.exclude_pad = true;
    y = farol_avg_pool2d(x, &a);
    assert_true(((double *)farol_data(y))[1] == (1.0 + 2.0) / 2);
    assert_true(((double *)farol_data(y))[8] == (18.0 + 19.0 + 23.0 + 24.0) / 4);
    farol_release(y);
    farol_release(x);

    pool_ctx m = {.kind = MAX, .o = {.kernel = {3, 2}, .stride = {2, 2}, .ceil_mode = true}};
    gradcheck("max ceil_mode", &m, 4, (int64_t[]){2, 2, 6, 7}, 11);
    pool_ctx c = {.kind = AVG, .o = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true}};
    gradcheck("avg ceil_mode, count_include_pad", &c, 4, (int64_t[]){1, 2, 6, 7}, 12);
    c.o.exclude_pad = true;
    gradcheck("avg ceil_mode, without pad", &c, 3, (int64_t[]){2, 6, 7}, 13);
}

/* ties go to the first maximum in row-major window order */
static void test_max_pool2d_ties(void **state) {
    (void)state;
    int64_t shape[4] = {1, 1, 4, 4};
    double v[] = {
        1, 1, 0, 2,
        1, 0, 2, 2,
        0, 0, 5, 3,
        0, 0, 5, 5,
    };
    farol_tensor *x = tu_tensor(4, shape, v);
    assert_int_equal(farol_set_requires_grad(x, true), 0);
    farol_pool_opts o = popts(2, 0, 0);
    farol_tensor *y = farol_max_pool2d(x, &o), *g = farol_full(4, (int64_t[]){1, 1, 2, 2}, 1.0, FAROL_F64);
    farol_tensor *gx = NULL;
    assert_non_null(y);
    assert_int_equal(farol_grad(1, &y, &g, 1, &x, &gx), 0);
    double exp[] = {
        1, 0, 0, 1,
        0, 0, 0, 0,
        1, 0, 1, 0,
        0, 0, 0, 0,
    };
    farol_tensor *e = tu_tensor(4, shape, exp);
    tu_assert_close("ties grad", gx, e, 0, 0);
    /* all-zero windows (a flat background) route to the top-left cell */
    farol_tensor *z = farol_zeros(4, shape, FAROL_F64), *gz = NULL;
    assert_int_equal(farol_set_requires_grad(z, true), 0);
    farol_tensor *yz = farol_max_pool2d(z, &o);
    assert_int_equal(farol_grad(1, &yz, &g, 1, &z, &gz), 0);
    for (int64_t i = 0; i < 16; i++)
        assert_true(farol_get_flat(gz, i) == ((i / 4) % 2 == 0 && i % 2 == 0 ? 1.0 : 0.0));
    farol_tensor *all[] = {x, y, g, gx, e, z, gz, yz};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) farol_release(all[i]);
}

static void test_max_pool2d_nan_and_inf(void **state) {
    (void)state;
    double v[] = {1, NAN, 3, 4, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    farol_tensor *x = tu_tensor(4, (int64_t[]){1, 2, 2, 2}, v);
    farol_pool_opts o = popts(2, 0, 0);
    farol_tensor *y = farol_max_pool2d(x, &o);
    assert_non_null(y);
    assert_true(isnan(farol_get_flat(y, 0)));  /* NaN propagates, as in PyTorch */
    assert_true(farol_get_flat(y, 1) == -INFINITY);
    farol_release(y);
    farol_release(x);
}

/* The vectorised 3x3 and 2x2 stride-2 kernels (ResNet's and the CNNs'
 * pools) against a naive reference of PyTorch's rule (a greater value or a NaN replaces the
 * maximum, in row-major window order): inputs full of ties, -0, NaNs and
 * infinities, both paddings, odd and even widths, ceil_mode, float32 and
 * float64; the outputs bit for bit and the argmaxes through the gradient
 * (each output's gradient a distinct value routed to its argmax). */
static void test_max_pool2d_stride2_reference(void **state) {
    (void)state;
    const double vals[] = {-1, 0, -0.0, 1, 2, 2, NAN, INFINITY, -INFINITY, 1};
    const int64_t sizes[][2] = {{11, 70}, {12, 41}, {9, 40}, {7, 9}, {4, 3}, {6, 16}, {5, 31}, {4, 4}};
    uint64_t seed = 12345;
    for (int64_t k = 2; k <= 3; k++)
    for (int d = 0; d < 2; d++)
        for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++)
            for (int pad = 0; pad < 2; pad++)
                for (int ceil = 0; ceil < 2; ceil++) {
                    farol_dtype dt = d ? FAROL_F64 : FAROL_F32;
                    int64_t H = sizes[z][0], W = sizes[z][1], shape[4] = {2, 3, H, W};
                    int64_t n = 2 * 3 * H * W;
                    double *v = malloc((size_t)n * sizeof *v);
                    for (int64_t i = 0; i < n; i++) {
                        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                        /* NaNs rarer than the rest: mostly ties */
                        unsigned r = (unsigned)(seed >> 33) % 64;
                        v[i] = r < 60 ? vals[r % 6] : vals[6 + r % 4];
                    }
                    farol_tensor *x64 = tu_tensor(4, shape, v), *x = farol_cast_raw(x64, dt);
                    assert_int_equal(farol_set_requires_grad(x, true), 0);
                    farol_pool_opts o = popts((int)k, 2, pad);
                    o.ceil_mode = ceil;
                    farol_tensor *y = farol_max_pool2d(x, &o);
                    assert_non_null(y);
                    int64_t OH = y->shape[2], OW = y->shape[3];
                    farol_tensor *g = farol_arange(1, (double)(2 * 3 * OH * OW) + 1, 1, dt);
                    farol_tensor *gv = farol_reshape(g, 4, y->shape), *gx = NULL;
                    assert_int_equal(farol_grad(1, &y, &gv, 1, &x, &gx), 0);
                    double *want_gx = calloc((size_t)n, sizeof *want_gx);
                    for (int64_t pl = 0; pl < 6; pl++)
                        for (int64_t oh = 0; oh < OH; oh++)
                            for (int64_t ow = 0; ow < OW; ow++) {
                                double best = 0;
                                int64_t bi = -1;
                                for (int64_t ih = oh * 2 - pad; ih < oh * 2 - pad + k; ih++)
                                    for (int64_t iw = ow * 2 - pad; iw < ow * 2 - pad + k; iw++) {
                                        if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
                                        double e = farol_get_flat(x, pl * H * W + ih * W + iw);
                                        if (bi < 0 || e > best || isnan(e)) best = e, bi = ih * W + iw;
                                    }
                                int64_t q = (pl * OH + oh) * OW + ow;
                                double got = farol_get_flat(y, q);
                                assert_true(isnan(best) ? isnan(got) : got == best && signbit(got) == signbit(best));
                                want_gx[pl * H * W + bi] += (double)(q + 1);
                            }
                    for (int64_t i = 0; i < n; i++) assert_true(farol_get_flat(gx, i) == want_gx[i]);
                    free(want_gx);
                    free(v);
                    farol_tensor *all[] = {x64, x, y, g, gv, gx};
                    for (size_t i = 0; i < sizeof all / sizeof *all; i++) farol_release(all[i]);
                }
}

/* float32 against float64 on a larger input, threaded over planes */
static void test_pool_f32_matches_f64(void **state) {
    (void)state;
    int64_t shape[4] = {4, 16, 33, 30};
    farol_manual_seed(3);
    farol_tensor *x64 = farol_randn(4, shape, FAROL_F64);
    farol_tensor *x32 = farol_cast_raw(x64, FAROL_F32);
    pool_ctx cases[] = {
        {.kind = MAX, .o = popts(3, 2, 1)}, {.kind = AVG, .o = popts(3, 2, 1)}, {.kind = ADAPTIVE, .oh = 7, .ow = 5}, {.kind = MAX, .o = popts(2, 0, 0)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        farol_tensor *a = pool_fn(&cases[i], &x64), *b = pool_fn(&cases[i], &x32);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(b->dtype, FAROL_F32);
        tu_assert_close("f32 vs f64", b, a, 1e-5, 1e-6);
        farol_release(a);
        farol_release(b);
    }
    farol_release(x64);
    farol_release(x32);
}

static void test_pool_shapes(void **state) {
    (void)state;
    farol_tensor *x = farol_zeros(3, (int64_t[]){3, 7, 5}, FAROL_F32);
    farol_pool_opts o = popts(2, 0, 0);
    farol_tensor *y = farol_max_pool2d(x, &o);
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[0], 3);
    assert_int_equal(y->shape[1], 3);
    assert_int_equal(y->shape[2], 2);
    farol_release(y);
    farol_pool_opts o2 = {.kernel = {3, 1}, .stride = {2, 0}, .padding = {1, 0}};
    y = farol_avg_pool2d(x, &o2);
    assert_int_equal(y->shape[1], 4);  /* floor((7 + 2 - 3) / 2) + 1 */
    assert_int_equal(y->shape[2], 5);
    farol_release(y);
    y = farol_adaptive_avg_pool2d(x, 9, 2);
    assert_int_equal(y->shape[1], 9);
    assert_int_equal(y->shape[2], 2);
    farol_release(y);
    farol_release(x);
}

/* avg counts padded zeros in the divisor */
static void test_avg_pool2d_counts_padding(void **state) {
    (void)state;
    farol_tensor *x = farol_full(4, (int64_t[]){1, 1, 2, 2}, 9.0, FAROL_F64);
    farol_pool_opts o = popts(3, 1, 1);
    farol_tensor *y = farol_avg_pool2d(x, &o);
    assert_non_null(y);
    for (int64_t i = 0; i < 4; i++) assert_true(fabs(farol_get_flat(y, i) - 4.0) < 1e-12);
    farol_release(y);
    farol_release(x);
}

static void test_pool_errors(void **state) {
    (void)state;
    farol_tensor *x = farol_zeros(4, (int64_t[]){1, 2, 4, 4}, FAROL_F32);
    farol_tensor *x2 = farol_zeros(2, (int64_t[]){4, 4}, FAROL_F32);
    farol_tensor *xi = farol_zeros(4, (int64_t[]){1, 2, 4, 4}, FAROL_I64);
    farol_pool_opts ok = popts(2, 0, 0), k0 = popts(0, 0, 0), pad = popts(3, 1, 2), big = popts(5, 0, 0);
    farol_pool_opts neg = popts(2, -1, 0);
    assert_null(farol_max_pool2d(x2, &ok));
    ERR_HAS("max_pool2d: x must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape [4, 4]");
    assert_null(farol_max_pool2d(x, &k0));
    ERR_HAS("max_pool2d: kernel and stride must be >= 1");
    assert_null(farol_avg_pool2d(x, &neg));
    ERR_HAS("avg_pool2d: kernel and stride must be >= 1");
    assert_null(farol_max_pool2d(x, &pad));
    ERR_HAS("max_pool2d: padding must be >= 0 and at most half the kernel, got padding 2 x 2 for kernel 3 x 3");
    assert_null(farol_avg_pool2d(x, &big));
    ERR_HAS("avg_pool2d: output size is not positive: input 4 x 4 with padding 0 x 0 is smaller than the kernel 5 x 5");
    assert_null(farol_max_pool2d(xi, &ok));
    ERR_HAS("max_pool2d");
    assert_null(farol_max_pool2d(x, NULL));
    ERR_HAS("options");
    assert_null(farol_adaptive_avg_pool2d(x, -1, 2));
    ERR_HAS("adaptive_avg_pool2d: output size must be non-negative, got -1 x 2");
    assert_null(farol_adaptive_avg_pool2d(x2, 1, 1));
    ERR_HAS("adaptive_avg_pool2d: x must be 3-D");
    farol_tensor *empty = farol_zeros(4, (int64_t[]){1, 1, 0, 3}, FAROL_F32);
    assert_null(farol_adaptive_avg_pool2d(empty, 1, 1));
    ERR_HAS("must not be empty");
    farol_release(empty);
    farol_release(x);
    farol_release(x2);
    farol_release(xi);
}

static void test_pool_alloc_failures(void **state) {
    (void)state;
    size_t live = farol_live_bytes();
    farol_tensor *x = tu_randn64(4, (int64_t[]){2, 3, 6, 5}, 1);
    farol_tensor *xt = farol_transpose(x, 2, 3);
    pool_ctx cases[] = {{.kind = MAX, .o = popts(3, 2, 1)}, {.kind = AVG, .o = popts(2, 1, 1)}, {.kind = ADAPTIVE, .oh = 2, .ow = 4}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bool done = false;
        for (int64_t n = 1; !done && n < 200; n++) {
            farol_alloc_fail_at(n);
            farol_tensor *out = pool_fn(&cases[c], &xt), *gx = NULL;
            int rc = -1;
            if (out) {
                farol_tensor *g = farol_full(out->ndim, out->shape, 1.0, FAROL_F64);
                rc = g ? farol_grad(1, &out, &g, 1, &x, &gx) : -1;
                farol_release(g);
            }
            done = farol_alloc_count() < n;
            if (done) assert_int_equal(rc, 0);
            else assert_true(!out || rc < 0);
            farol_release(gx);
            farol_release(out);
        }
        farol_alloc_fail_at(0);
        assert_true(done);
    }
    farol_release(xt);
    farol_release(x);
    assert_int_equal(farol_live_bytes(), live);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_pool2d_fixture),
        cmocka_unit_test(test_avg_pool2d_fixture),
        cmocka_unit_test(test_adaptive_avg_pool2d_fixture),
        cmocka_unit_test(test_pool_gradcheck),
        cmocka_unit_test(test_pool_ceil_mode),
        cmocka_unit_test(test_max_pool2d_ties),
        cmocka_unit_test(test_max_pool2d_nan_and_inf),
        cmocka_unit_test(test_max_pool2d_stride2_reference),
        cmocka_unit_test(test_pool_f32_matches_f64),
        cmocka_unit_test(test_pool_shapes),
        cmocka_unit_test(test_avg_pool2d_counts_padding),
        cmocka_unit_test(test_pool_errors),
        cmocka_unit_test(test_pool_alloc_failures),
    };
    return tu_run(tests, argc, argv);
}
