/* batch_norm and layer_norm: PyTorch fixtures, float64 gradient checks, the
 * float32 path against float64, mixed dtypes, errors and allocation failures. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERR_HAS(s) assert_non_null(strstr(farol_last_error(), (s)))

/* ---- batch_norm ---- */

typedef struct {
    double eps;
    bool has_w, has_b;
    bool transpose; /* x arrives (N, C, W, H): swap the last two dims first */
} bn_ctx;

/* xs: x, mean, var [, w] [, b] */
static farol_tensor *bn_fn(void *vctx, farol_tensor **xs) {
    bn_ctx *c = vctx;
    farol_tensor *x = c->transpose ? farol_transpose(xs[0], -1, -2) : farol_retain(xs[0]);
    if (!x) return NULL;
    int k = 3;
    farol_tensor *w = c->has_w ? xs[k++] : NULL, *b = c->has_b ? xs[k++] : NULL;
    farol_tensor *out = farol_batch_norm(x, xs[1], xs[2], w, b, c->eps);
    farol_release(x);
    return out;
}

static void test_batch_norm_fixture(void **state) {
    (void)state;
    farol_tensor_dict d = tu_fixture("ops/batch_norm.safetensors");
    const char *full[] = {"x", "mean", "var", "w", "b"};
    bn_ctx c1 = {1e-5, true, true, false}, c2 = {1e-5, false, false, false},
           c3 = {1e-3, true, true, false};
    tu_check_fixture(&d, "v1", bn_fn, &c1, 5, full);
    tu_check_fixture(&d, "v2", bn_fn, &c2, 3, full);
    tu_check_fixture(&d, "v3", bn_fn, &c3, 5, full);
    tu_check_fixture(&d, "v4", bn_fn, &c1, 5, full);
    farol_dict_free(&d);
}

/* running statistics that are not a gradient target: var kept positive */
static void bn_stats(int64_t C, farol_tensor **mean, farol_tensor **var) {
    farol_manual_seed(5);
    *mean = farol_randn(1, &C, FAROL_F64);
    *var = farol_rand(1, &C, FAROL_F64);
    assert_non_null(*mean);
    assert_non_null(*var);
    double *v = farol_data(*var);
    for (int64_t c = 0; c < C; c++) v[c] += 0.5;
}

static void test_batch_norm_gradcheck(void **state) {
    (void)state;
    int64_t C = 3;
    farol_tensor *mean, *var;
    bn_stats(C, &mean, &var);
    farol_tensor *w = tu_randn64(1, &C, 2), *b = tu_randn64(1, &C, 3);

    /* (N, C) with w and b */
    int64_t s2[] = {4, 3};
    farol_tensor *x2 = tu_randn64(2, s2, 1);
    farol_tensor *xs2[] = {x2, mean, var, w, b};
    bn_ctx c = {1e-5, true, true, false};
    tu_gradcheck("batch_norm (N, C)", bn_fn, &c, 5, xs2);

    /* (N, C, H, W) non-contiguous, w only */
    int64_t s4[] = {2, 3, 4, 2};
    farol_tensor *x4 = tu_randn64(4, s4, 4);
    farol_tensor *xs4[] = {x4, mean, var, w};
    bn_ctx ct = {1e-3, true, false, true};
    tu_gradcheck("batch_norm transposed, w only", bn_fn, &ct, 4, xs4);

    /* (N, C, L), b only */
    int64_t s3[] = {2, 3, 5};
    farol_tensor *x3 = tu_randn64(3, s3, 6);
    farol_tensor *xs3[] = {x3, mean, var, b};
    bn_ctx cb = {1e-5, false, true, false};
    tu_gradcheck("batch_norm (N, C, L), b only", bn_fn, &cb, 4, xs3);

    farol_release(x2);
    farol_release(x3);
    farol_release(x4);
    farol_release(w);
    farol_release(b);
    farol_release(mean);
    farol_release(var);
}

/* mean and var get no gradient even when they require one */
static void test_batch_norm_stats_no_grad(void **state) {
    (void)state;
    int64_t C = 2, s[] = {3, 2};
    farol_tensor *x = tu_randn64(2, s, 1), *mean = tu_randn64(1, &C, 2);
    farol_tensor *var = farol_full(1, &C, 2.0, FAROL_F64);
    farol_tensor *out = farol_batch_norm(x, mean, var, NULL, NULL, 1e-5);
    assert_non_null(out);
    farol_tensor *in[] = {x, mean}, *g[2] = {0};
    farol_tensor *ones = farol_full(2, s, 1.0, FAROL_F64);
    assert_int_equal(farol_grad(1, &out, &ones, 2, in, g), 0);
    for (int64_t i = 0; i < 2; i++) assert_true(farol_get_flat(g[1], i) == 0.0);
    for (int64_t i = 0; i < 6; i++)
        assert_true(fabs(farol_get_flat(g[0], i) - 1.0 / sqrt(2.0 + 1e-5)) < 1e-12);
    /* a mean that requires a gradient alone does not put the output on the tape */
    farol_tensor *xd = farol_detach(x);
    farol_tensor *o2 = farol_batch_norm(xd, mean, var, NULL, NULL, 1e-5);
    assert_non_null(o2);
    assert_null(o2->node);
    farol_release(o2);
    farol_release(xd);
    farol_release(g[0]);
    farol_release(g[1]);
    farol_release(ones);
    farol_release(out);
    farol_release(x);
    farol_release(mean);
    farol_release(var);
}

/* the float32 kernel agrees with float64; a float64 w promotes, gradients
 * come back in each input's dtype */
static void test_batch_norm_f32_and_mixed(void **state) {
    (void)state;
    int64_t C = 8, s[] = {4, 8, 6, 6};
    farol_manual_seed(11);
    farol_tensor *x64 = farol_randn(4, s, FAROL_F64), *mean, *var;
    bn_stats(C, &mean, &var);
    farol_tensor *w64 = tu_randn64(1, &C, 12), *b64 = tu_randn64(1, &C, 13);
    farol_tensor *x32 = farol_to_dtype(x64, FAROL_F32), *w32 = farol_to_dtype(w64, FAROL_F32);
    farol_tensor *b32 = farol_to_dtype(b64, FAROL_F32);
    assert_int_equal(farol_set_requires_grad(x32, true), 0);
    assert_int_equal(farol_set_requires_grad(w32, true), 0);
    assert_int_equal(farol_set_requires_grad(b32, true), 0);
    assert_int_equal(farol_set_requires_grad(x64, true), 0);

    farol_tensor *o64 = farol_batch_norm(x64, mean, var, w64, b64, 1e-5);
    farol_tensor *o32 = farol_batch_norm(x32, mean, var, w32, b32, 1e-5);
    farol_tensor *mix = farol_batch_norm(x32, mean, var, w64, b32, 1e-5);
    assert_non_null(o64);
    assert_non_null(o32);
    assert_non_null(mix);
    assert_int_equal(o32->dtype, FAROL_F32);
    assert_int_equal(mix->dtype, FAROL_F64);
    tu_assert_close("batch_norm f32", o32, o64, 1e-5, 1e-5);
    tu_assert_close("batch_norm mixed", mix, o64, 1e-6, 1e-6);

    farol_manual_seed(14);
    farol_tensor *g64 = farol_randn(4, s, FAROL_F64), *g32 = farol_to_dtype(g64, FAROL_F32);
    farol_tensor *in64[] = {x64, w64, b64}, *in32[] = {x32, w32, b32}, *inm[] = {x32, w64, b32};
    farol_tensor *r64[3] = {0}, *r32[3] = {0}, *rm[3] = {0};
    assert_int_equal(farol_grad(1, &o64, &g64, 3, in64, r64), 0);
    assert_int_equal(farol_grad(1, &o32, &g32, 3, in32, r32), 0);
    assert_int_equal(farol_grad(1, &mix, &g64, 3, inm, rm), 0);
    const char *names[] = {"dx", "dw", "db"};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(r32[k]->dtype, FAROL_F32);
        assert_int_equal(rm[k]->dtype, in32[k] == inm[k] ? FAROL_F32 : FAROL_F64);
        tu_assert_close(names[k], r32[k], r64[k], 1e-4, 1e-4);
        tu_assert_close(names[k], rm[k], r64[k], 1e-5, 1e-5);
        farol_release(r64[k]);
        farol_release(r32[k]);
        farol_release(rm[k]);
    }
    farol_tensor *all[] = {x64, x32, w64, w32, b64, b32, o64, o32, mix, g64, g32, mean, var};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) farol_release(all[i]);
}

static void test_batch_norm_errors(void **state) {
    (void)state;
    int64_t C = 4, s[] = {2, 4, 3}, s1[] = {4}, s3 = 3;
    farol_tensor *x = farol_zeros(3, s, FAROL_F64), *mean = farol_zeros(1, &C, FAROL_F64);
    farol_tensor *var = farol_full(1, &C, 1.0, FAROL_F64), *bad = farol_zeros(1, &s3, FAROL_F64);
    farol_tensor *x1 = farol_zeros(1, s1, FAROL_F64), *xi = farol_zeros(3, s, FAROL_I64);

    assert_null(farol_batch_norm(x1, mean, var, NULL, NULL, 1e-5));
    ERR_HAS("batch_norm: x must have at least 2 dims (N, C, ...), got [4]");
    assert_null(farol_batch_norm(x, bad, var, NULL, NULL, 1e-5));
    ERR_HAS("batch_norm: mean must have shape [4] (the channels of x [2, 4, 3]), got [3]");
    assert_null(farol_batch_norm(x, mean, bad, NULL, NULL, 1e-5));
    ERR_HAS("var must have shape [4]");
    assert_null(farol_batch_norm(x, mean, var, bad, NULL, 1e-5));
    ERR_HAS("w must have shape [4]");
    assert_null(farol_batch_norm(x, mean, var, NULL, bad, 1e-5));
    ERR_HAS("b must have shape [4]");
    assert_null(farol_batch_norm(xi, mean, var, NULL, NULL, 1e-5));
    ERR_HAS("batch_norm: x must be a floating tensor");
    assert_null(farol_batch_norm(x, mean, var, NULL, NULL, -1.0));
    ERR_HAS("batch_norm: eps must be >= 0");
    assert_null(farol_batch_norm(x, NULL, var, NULL, NULL, 1e-5));
    ERR_HAS("batch_norm: x, mean and var are required");

    farol_tensor *all[] = {x, mean, var, bad, x1, xi};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) farol_release(all[i]);
}

/* ---- layer_norm ---- */

typedef struct {
    int nshape;
    int64_t shape[4];
    double eps;
    bool has_w, has_b;
    bool transpose; /* swap x's first two dims first */
} ln_ctx;

/* xs: x [, w] [, b] */
static farol_tensor *ln_fn(void *vctx, farol_tensor **xs) {
    ln_ctx *c = vctx;
    farol_tensor *x = c->transpose ? farol_transpose(xs[0], 0, 1) : farol_retain(xs[0]);
    if (!x) return NULL;
    int k = 1;
    farol_tensor *w = c->has_w ? xs[k++] : NULL, *b = c->has_b ? xs[k++] : NULL;
    farol_tensor *out = farol_layer_norm(x, c->nshape, c->shape, w, b, c->eps);
    farol_release(x);
    return out;
}

static void test_layer_norm_fixture(void **state) {
    (void)state;
    farol_tensor_dict d = tu_fixture("ops/layer_norm.safetensors");
    const char *names[] = {"x", "w", "b"};
    ln_ctx c1 = {1, {8}, 1e-5, true, true, false}, c2 = {2, {5, 8}, 1e-5, true, true, false},
           c3 = {1, {8}, 1e-5, false, false, false}, c4 = {1, {6}, 1e-3, true, true, false};
    tu_check_fixture(&d, "v1", ln_fn, &c1, 3, names);
    tu_check_fixture(&d, "v2", ln_fn, &c2, 3, names);
    tu_check_fixture(&d, "v3", ln_fn, &c3, 1, names);
    tu_check_fixture(&d, "v4", ln_fn, &c4, 3, names);
    farol_dict_free(&d);
}

static void test_layer_norm_gradcheck(void **state) {
    (void)state;
    int64_t s2[] = {3, 5}, d5 = 5;
    farol_tensor *x = tu_randn64(2, s2, 1), *w = tu_randn64(1, &d5, 2), *b = tu_randn64(1, &d5, 3);
    farol_tensor *xs[] = {x, w, b};
    ln_ctx c = {1, {5}, 1e-5, true, true, false};
    tu_gradcheck("layer_norm (3, 5)", ln_fn, &c, 3, xs);
    ln_ctx cw = {1, {5}, 1e-5, true, false, false};
    tu_gradcheck("layer_norm w only", ln_fn, &cw, 2, xs);
    ln_ctx cn = {1, {5}, 1e-2, false, false, false};
    tu_gradcheck("layer_norm no affine", ln_fn, &cn, 1, xs);

    /* x arrives (3, 2, 4) and is transposed to a non-contiguous (2, 3, 4);
     * normalised over (3, 4) with a b only */
    int64_t s3[] = {3, 2, 4}, nb[] = {3, 4};
    farol_tensor *x3 = tu_randn64(3, s3, 4), *b2 = tu_randn64(2, nb, 5);
    farol_tensor *xs3[] = {x3, b2};
    ln_ctx ct = {2, {3, 4}, 1e-5, false, true, true};
    tu_gradcheck("layer_norm transposed, b only", ln_fn, &ct, 2, xs3);

    farol_release(x);
    farol_release(w);
    farol_release(b);
    farol_release(x3);
    farol_release(b2);
}

/* The transformer benchmark's shape (16*128 rows of 256) in float32 against
 * float64: the fast path, threads included, computes the same thing. */
static void test_layer_norm_f32_benchmark_shape(void **state) {
    (void)state;
    int64_t s[] = {16, 128, 256}, D = 256;
    farol_manual_seed(21);
    farol_tensor *x64 = farol_randn(3, s, FAROL_F64), *w64 = farol_randn(1, &D, FAROL_F64);
    farol_tensor *b64 = farol_randn(1, &D, FAROL_F64), *g64 = farol_randn(3, s, FAROL_F64);
    farol_tensor *x32 = farol_to_dtype(x64, FAROL_F32), *w32 = farol_to_dtype(w64, FAROL_F32);
    farol_tensor *b32 = farol_to_dtype(b64, FAROL_F32), *g32 = farol_to_dtype(g64, FAROL_F32);
    farol_tensor *p64[] = {x64, w64, b64}, *p32[] = {x32, w32, b32};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(farol_set_requires_grad(p64[k], true), 0);
        assert_int_equal(farol_set_requires_grad(p32[k], true), 0);
    }
    farol_tensor *o64 = farol_layer_norm(x64, 1, &D, w64, b64, 1e-5);
    farol_tensor *o32 = farol_layer_norm(x32, 1, &D, w32, b32, 1e-5);
    assert_non_null(o64);
    assert_non_null(o32);
    assert_int_equal(o32->dtype, FAROL_F32);
    tu_assert_close("layer_norm f32 out", o32, o64, 1e-4, 1e-4);
    farol_tensor *r64[3] = {0}, *r32[3] = {0};
    assert_int_equal(farol_grad(1, &o64, &g64, 3, p64, r64), 0);
    assert_int_equal(farol_grad(1, &o32, &g32, 3, p32, r32), 0);
    /* dw and db sum 2048 rows: relative to their size */
    double tol[] = {1e-4, 1e-3, 1e-3};
    const char *names[] = {"dx", "dw", "db"};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(r32[k]->dtype, FAROL_F32);
        tu_assert_close(names[k], r32[k], r64[k], tol[k], tol[k]);
        farol_release(r64[k]);
        farol_release(r32[k]);
    }
    farol_tensor *all[] = {x64, w64, b64, g64, x32, w32, b32, g32, o64, o32};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) farol_release(all[i]);
}

/* a float64 w promotes a float32 x: float64 result, each gradient in its
 * input's dtype, values as in all-float64 */
static void test_layer_norm_mixed_dtypes(void **state) {
    (void)state;
    int64_t s[] = {3, 6}, D = 6;
    farol_manual_seed(17);
    farol_tensor *x = farol_randn(2, s, FAROL_F32), *w = tu_randn64(1, &D, 18);
    farol_tensor *x64 = farol_to_dtype(x, FAROL_F64), *g = farol_randn(2, s, FAROL_F64);
    assert_int_equal(farol_set_requires_grad(x, true), 0);
    assert_int_equal(farol_set_requires_grad(x64, true), 0);
    farol_tensor *o = farol_layer_norm(x, 1, &D, w, NULL, 1e-5);
    farol_tensor *o64 = farol_layer_norm(x64, 1, &D, w, NULL, 1e-5);
    assert_non_null(o);
    assert_non_null(o64);
    assert_int_equal(o->dtype, FAROL_F64);
    tu_assert_close("layer_norm mixed out", o, o64, 1e-12, 1e-12);
    farol_tensor *in[] = {x, w}, *in64[] = {x64, w}, *r[2] = {0}, *r64[2] = {0};
    assert_int_equal(farol_grad(1, &o, &g, 2, in, r), 0);
    assert_int_equal(farol_grad(1, &o64, &g, 2, in64, r64), 0);
    assert_int_equal(r[0]->dtype, FAROL_F32);
    assert_int_equal(r[1]->dtype, FAROL_F64);
    tu_assert_close("layer_norm mixed dx", r[0], r64[0], 1e-6, 1e-6);
    tu_assert_close("layer_norm mixed dw", r[1], r64[1], 1e-12, 1e-12);
    farol_tensor *all[] = {x, w, x64, g, o, o64, r[0], r[1], r64[0], r64[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) farol_release(all[i]);
}

/* each row has mean 0 and biased variance var/(var + eps) */
static void test_layer_norm_statistics(void **state) {
    (void)state;
    int64_t s[] = {4, 7}, D = 7;
    farol_manual_seed(3);
    farol_tensor *x = farol_randn(2, s, FAROL_F64);
    farol_tensor *y = farol_layer_norm(x, 1, &D, NULL, NULL, 0.0);
    assert_non_null(y);
    for (int64_t r = 0; r < 4; r++) {
        double m = 0, v = 0;
        for (int64_t j = 0; j < D; j++) m += farol_get_flat(y, r * D + j);
        m /= D;
        for (int64_t j = 0; j < D; j++) v += pow(farol_get_flat(y, r * D + j) - m, 2);
        assert_true(fabs(m) < 1e-12);
        assert_true(fabs(v / D - 1.0) < 1e-12);
    }
    farol_release(y);
    farol_release(x);
}

static void test_layer_norm_errors(void **state) {
    (void)state;
    int64_t s[] = {2, 5, 8}, n8 = 8, n9[] = {5, 9}, n58[] = {5, 8}, n7 = 7;
    farol_tensor *x = farol_zeros(3, s, FAROL_F64), *w7 = farol_zeros(1, &n7, FAROL_F64);
    farol_tensor *xi = farol_zeros(3, s, FAROL_I64), *w8 = farol_zeros(1, &n8, FAROL_F64);

    assert_null(farol_layer_norm(x, 2, n9, NULL, NULL, 1e-5));
    ERR_HAS("layer_norm: normalized shape [5, 9] does not match the trailing dims of x [2, 5, 8]");
    assert_null(farol_layer_norm(x, 1, &n7, NULL, NULL, 1e-5));
    ERR_HAS("normalized shape [7] does not match the trailing dims of x [2, 5, 8]");
    assert_null(farol_layer_norm(x, 1, &n8, w7, NULL, 1e-5));
    ERR_HAS("layer_norm: w must have the normalized shape [8], got [7]");
    assert_null(farol_layer_norm(x, 2, n58, w8, NULL, 1e-5));
    ERR_HAS("layer_norm: w must have the normalized shape [5, 8], got [8]");
    assert_null(farol_layer_norm(x, 1, &n8, NULL, w7, 1e-5));
    ERR_HAS("layer_norm: b must have the normalized shape [8], got [7]");
    assert_null(farol_layer_norm(x, 0, &n8, NULL, NULL, 1e-5));
    ERR_HAS("layer_norm: the normalized shape must have 1 to 3 dims");
    assert_null(farol_layer_norm(x, 4, s, NULL, NULL, 1e-5));
    ERR_HAS("layer_norm: the normalized shape must have 1 to 3 dims");
    assert_null(farol_layer_norm(xi, 1, &n8, NULL, NULL, 1e-5));
    ERR_HAS("layer_norm: x must be a floating tensor");
    assert_null(farol_layer_norm(x, 1, &n8, NULL, NULL, NAN));
    ERR_HAS("layer_norm: eps must be >= 0");

    farol_release(x);
    farol_release(w7);
    farol_release(w8);
    farol_release(xi);
}

/* Failing each allocation in turn gives an error (or success), never a
 * crash or a leak (LSan checks the latter). */
static void test_norm_alloc_failures(void **state) {
    (void)state;
    int64_t s[] = {2, 3, 4}, C = 3, D = 4;
    farol_tensor *x = tu_randn64(3, s, 1), *w = tu_randn64(1, &C, 2), *b = tu_randn64(1, &C, 3);
    farol_tensor *lw = tu_randn64(1, &D, 4), *lb = tu_randn64(1, &D, 5), *mean, *var;
    bn_stats(C, &mean, &var);
    farol_manual_seed(6);
    farol_tensor *g = farol_randn(3, s, FAROL_F64);
    for (int op = 0; op < 2; op++) {
        bool done = false;
        for (int64_t n = 1; !done && n < 200; n++) {
            farol_alloc_fail_at(n);
            farol_tensor *out = op == 0 ? farol_batch_norm(x, mean, var, w, b, 1e-5)
                                        : farol_layer_norm(x, 1, &D, lw, lb, 1e-5);
            int rc = -1;
            farol_tensor *in[] = {x, op == 0 ? w : lw, op == 0 ? b : lb}, *r[3] = {0};
            if (out) rc = farol_grad(1, &out, &g, 3, in, r);
            done = farol_alloc_count() < n;
            /* a failed allocation is reported, a run without one succeeds */
            if (done && rc != 0) fail_msg("op %d: %s", op, farol_last_error());
            if (!done && out && rc == 0)
                fail_msg("op %d: allocation %lld failed unreported", op, (long long)n);
            for (int k = 0; k < 3; k++) farol_release(r[k]);
            farol_release(out);
        }
        farol_alloc_fail_at(0);
        assert_true(done);
    }
    farol_tensor *all[] = {x, w, b, lw, lb, mean, var, g};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) farol_release(all[i]);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_batch_norm_fixture, tu_reset),
        cmocka_unit_test_setup(test_batch_norm_gradcheck, tu_reset),
        cmocka_unit_test_setup(test_batch_norm_stats_no_grad, tu_reset),
        cmocka_unit_test_setup(test_batch_norm_f32_and_mixed, tu_reset),
        cmocka_unit_test_setup(test_batch_norm_errors, tu_reset),
        cmocka_unit_test_setup(test_layer_norm_fixture, tu_reset),
        cmocka_unit_test_setup(test_layer_norm_gradcheck, tu_reset),
        cmocka_unit_test_setup(test_layer_norm_f32_benchmark_shape, tu_reset),
        cmocka_unit_test_setup(test_layer_norm_mixed_dtypes, tu_reset),
        cmocka_unit_test_setup(test_layer_norm_statistics, tu_reset),
        cmocka_unit_test_setup(test_layer_norm_errors, tu_reset),
        cmocka_unit_test_setup(test_norm_alloc_failures, tu_reset),
    };
    return tu_run(tests, argc, argv);
}
