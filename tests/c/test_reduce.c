/* Reductions (sum mean var std amax amin logsumexp norm, max/min along a
 * dim, argmax/argmin), farol_sum_to, softmax and log_softmax.
 * PyTorch fixtures (values, 1-based indices, gradients), float64 gradient
 * checks on contiguous and strided inputs, the fast paths against naive
 * double sums, float32 accuracy, errors and allocation failures. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERR_HAS(s) assert_non_null(strstr(farol_last_error_1based(), (s)))
#define ALL FAROL_DIM_ALL

typedef farol_tensor *(*red_fn)(farol_tensor *, int, bool);

enum { PLAIN, MAX_DIM, MIN_DIM, SOFTMAX, LOG_SOFTMAX };

typedef struct {
    red_fn f;        /* PLAIN: the reduction */
    int kind;
    int dim;
    bool keepdim;
    bool transpose;  /* swap dims 0 and 1 of xs[0] first (a strided view) */
} red_ctx;

static farol_tensor *red_call(void *vctx, farol_tensor **xs) {
    red_ctx *c = vctx;
    farol_tensor *x = c->transpose ? farol_transpose(xs[0], 0, 1) : farol_retain(xs[0]);
    farol_tensor *out = NULL, *idx = NULL;
    if (!x) return NULL;
    switch (c->kind) {
    case PLAIN: out = c->f(x, c->dim, c->keepdim); break;
    case MAX_DIM: out = farol_max_dim(x, c->dim, c->keepdim, &idx); break;
    case MIN_DIM: out = farol_min_dim(x, c->dim, c->keepdim, &idx); break;
    case SOFTMAX: out = farol_softmax(x, c->dim); break;
    default: out = farol_log_softmax(x, c->dim); break;
    }
    farol_release(idx);
    farol_release(x);
    return out;
}

static const char *const X[] = {"x"};

/* the six variants every reduction fixture shares: (dim, keepdim) */
static const int std_dim[6] = {ALL, 1, 1, -1, 0, 1};
static const bool std_keep[6] = {false, false, true, false, true, false};

/* runs variants v1..vN; ctxs[v] describes variant v+1 */
static void check_file(const char *file, int n, red_ctx *ctxs) {
    farol_tensor_dict d = tu_fixture(file);
    for (int v = 0; v < n; v++) {
        char name[16];
        snprintf(name, sizeof name, "v%d", v + 1);
        tu_check_fixture(&d, name, red_call, &ctxs[v], 1, X);
    }
    farol_dict_free(&d);
}

/* the standard six variants plus (for n == 7) a seventh with dim7 */
static void check_reduction(const char *file, red_fn f, int n, int dim7) {
    red_ctx c[7];
    for (int v = 0; v < 6; v++) c[v] = (red_ctx){f, PLAIN, std_dim[v], std_keep[v], false};
    c[6] = (red_ctx){f, PLAIN, dim7, false, false};
    check_file(file, n, c);
}

static void test_sum_mean_fixtures(void **state) {
    (void)state;
    check_reduction("ops/sum.safetensors", farol_sum, 6, 0);
    check_reduction("ops/mean.safetensors", farol_mean, 6, 0);
}

static void test_var_std_fixtures(void **state) {
    (void)state;
    check_reduction("ops/var.safetensors", farol_var, 6, 0);
    check_reduction("ops/std.safetensors", farol_std, 6, 0);
}

static void test_amax_amin_fixtures(void **state) {
    (void)state;
    /* v7: ties inside a row share the gradient */
    check_reduction("ops/amax.safetensors", farol_amax, 7, 1);
    check_reduction("ops/amin.safetensors", farol_amin, 7, 1);
}

static void test_logsumexp_norm_fixtures(void **state) {
    (void)state;
    check_reduction("ops/logsumexp.safetensors", farol_logsumexp, 7, 1); /* v7: large values */
    check_reduction("ops/norm.safetensors", farol_norm, 6, 0);
}

/* max/min: v1 and v7 are full reductions (amax: ties share), v2..v6 go
 * along a dim with 1-based indices in the file */
static void check_max_min(const char *file, bool is_min) {
    red_ctx c[7];
    for (int v = 0; v < 7; v++) {
        bool full = v == 0 || v == 6;
        c[v] = (red_ctx){is_min ? farol_amin : farol_amax,
                         full ? PLAIN : is_min ? MIN_DIM : MAX_DIM,
                         full ? ALL : std_dim[v], full ? false : std_keep[v], false};
    }
    check_file(file, 7, c);
    farol_tensor_dict d = tu_fixture(file);
    for (int v = 1; v < 6; v++) {
        char name[16];
        snprintf(name, sizeof name, "v%d", v + 1);
        farol_tensor *idx = NULL, *x = tu_fx(&d, name, "x"), *want = tu_fx(&d, name, "indices");
        farol_tensor *out = is_min ? farol_min_dim(x, c[v].dim, c[v].keepdim, &idx)
                                   : farol_max_dim(x, c[v].dim, c[v].keepdim, &idx);
        assert_non_null(out);
        assert_int_equal(idx->dtype, FAROL_I64);
        assert_true(farol_same_shape(idx, want));
        for (int64_t i = 0; i < farol_numel(idx); i++)
            assert_int_equal(farol_get_flat(idx, i) + 1, farol_get_flat(want, i));
        farol_release(out);
        farol_release(idx);
    }
    farol_dict_free(&d);
}

static void test_max_min_fixtures(void **state) {
    (void)state;
    check_max_min("ops/max.safetensors", false);
    check_max_min("ops/min.safetensors", true);
}

static void check_arg(const char *file, red_fn f) {
    const int dims[4] = {ALL, 1, -1, 0};
    const bool keep[4] = {false, false, true, false};
    farol_tensor_dict d = tu_fixture(file);
    for (int v = 0; v < 4; v++) {
        char name[16];
        snprintf(name, sizeof name, "v%d", v + 1);
        farol_tensor *x = tu_fx(&d, name, "x"), *want = tu_fx(&d, name, "out");
        farol_tensor *got = f(x, dims[v], keep[v]);
        assert_non_null(got);
        assert_int_equal(got->dtype, FAROL_I64);
        assert_false(got->requires_grad);
        assert_true(farol_same_shape(got, want));
        for (int64_t i = 0; i < farol_numel(got); i++)
            assert_int_equal(farol_get_flat(got, i) + 1, farol_get_flat(want, i));
        farol_release(got);
    }
    farol_dict_free(&d);
}

static void test_argmax_argmin_fixtures(void **state) {
    (void)state;
    check_arg("ops/argmax.safetensors", farol_argmax);
    check_arg("ops/argmin.safetensors", farol_argmin);
}

static void test_softmax_fixtures(void **state) {
    (void)state;
    /* 1-based dims of the file: 2, -1, 1, 3 */
    red_ctx c[4] = {{.kind = SOFTMAX, .dim = 1}, {.kind = SOFTMAX, .dim = -1},
                    {.kind = SOFTMAX, .dim = 0}, {.kind = SOFTMAX, .dim = 2}};
    check_file("ops/softmax.safetensors", 4, c);
    for (int v = 0; v < 4; v++) c[v].kind = LOG_SOFTMAX;
    check_file("ops/log_softmax.safetensors", 4, c);
}

/* gradchecks: (3, 4, 5) along every dim and all, keepdim or not, and the
 * same through a transposed (strided) view */
static void gradcheck_all(const char *what, red_ctx base) {
    int64_t s345[] = {3, 4, 5};
    const int dims[] = {0, 1, -1, ALL};
    for (int t = 0; t < 2; t++) {
        for (int k = 0; k < 4; k++) {
            red_ctx c = base;
            c.dim = dims[k];
            c.keepdim = k % 2 == 1;
            c.transpose = t == 1;
            if ((c.kind == SOFTMAX || c.kind == LOG_SOFTMAX) && c.dim == ALL) c.dim = 1;
            farol_tensor *x = tu_randn64(3, s345, 10 + k);
            char name[96];
            snprintf(name, sizeof name, "%s dim %d%s", what, c.dim, t ? " transposed" : "");
            tu_gradcheck(name, red_call, &c, 1, &x);
            farol_release(x);
        }
    }
}

static void test_gradchecks(void **state) {
    (void)state;
    gradcheck_all("sum", (red_ctx){.f = farol_sum, .kind = PLAIN});
    gradcheck_all("mean", (red_ctx){.f = farol_mean, .kind = PLAIN});
    gradcheck_all("var", (red_ctx){.f = farol_var, .kind = PLAIN});
    gradcheck_all("std", (red_ctx){.f = farol_std, .kind = PLAIN});
    gradcheck_all("amax", (red_ctx){.f = farol_amax, .kind = PLAIN}); /* random inputs: no ties */
    gradcheck_all("amin", (red_ctx){.f = farol_amin, .kind = PLAIN});
    gradcheck_all("logsumexp", (red_ctx){.f = farol_logsumexp, .kind = PLAIN});
    gradcheck_all("norm", (red_ctx){.f = farol_norm, .kind = PLAIN});
    gradcheck_all("max_dim", (red_ctx){.kind = MAX_DIM});
    gradcheck_all("min_dim", (red_ctx){.kind = MIN_DIM});
    gradcheck_all("softmax", (red_ctx){.kind = SOFTMAX});
    gradcheck_all("log_softmax", (red_ctx){.kind = LOG_SOFTMAX});
    /* 1-D and 0-d inputs */
    int64_t s7[] = {7};
    farol_tensor *v = tu_randn64(1, s7, 3), *s = tu_randn64(0, NULL, 4);
    red_ctx c[] = {{.f = farol_var, .dim = 0}, {.kind = SOFTMAX, .dim = -1},
                   {.f = farol_norm, .dim = ALL, .keepdim = true}};
    for (int i = 0; i < 3; i++) tu_gradcheck("1-d", red_call, &c[i], 1, &v);
    red_ctx c0[] = {{.f = farol_sum, .dim = 0}, {.f = farol_amax, .dim = -1, .keepdim = true},
                    {.kind = LOG_SOFTMAX, .dim = 0}};
    for (int i = 0; i < 3; i++) tu_gradcheck("0-d", red_call, &c0[i], 1, &s);
    farol_release(v);
    farol_release(s);
}

/* ---- semantics ---- */

static void test_shapes_and_keepdim(void **state) {
    (void)state;
    int64_t s[] = {2, 3, 4};
    farol_tensor *x = tu_randn64(3, s, 1);
    farol_tensor *a = farol_sum(x, ALL, false), *b = farol_sum(x, ALL, true);
    farol_tensor *c = farol_mean(x, -2, true), *d = farol_var(x, 2, false);
    assert_int_equal(a->ndim, 0);
    assert_int_equal(b->ndim, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(b->shape[i], 1);
    assert_int_equal(c->ndim, 3);
    assert_int_equal(c->shape[1], 1);
    assert_int_equal(d->ndim, 2);
    assert_int_equal(d->shape[1], 3);
    assert_true(a->requires_grad);
    farol_tensor *r[] = {x, a, b, c, d};
    for (int i = 0; i < 5; i++) farol_release(r[i]);
    /* 0-d input: dim 0 and -1 reduce it to itself */
    farol_tensor *z = farol_scalar(2.5, FAROL_F64);
    farol_tensor *z1 = farol_sum(z, 0, false), *z2 = farol_amax(z, -1, true);
    farol_tensor *z3 = farol_softmax(z, 0);
    assert_int_equal(z1->ndim, 0);
    assert_int_equal(z2->ndim, 0);
    assert_true(farol_item(z1) == 2.5 && farol_item(z2) == 2.5 && farol_item(z3) == 1.0);
    farol_release(z);
    farol_release(z1);
    farol_release(z2);
    farol_release(z3);
}

static void test_int64(void **state) {
    (void)state;
    int64_t s[] = {2, 3}, v[] = {1, -7, 3, 4, 5, 4};
    farol_tensor *x = farol_from_data(2, s, FAROL_I64, v);
    farol_tensor *a = farol_sum(x, ALL, false), *b = farol_sum(x, 1, false);
    farol_tensor *m = farol_amax(x, 0, false), *am = farol_argmax(x, 1, false), *ai = NULL;
    farol_tensor *mn = farol_min_dim(x, 1, false, &ai);
    assert_int_equal(a->dtype, FAROL_I64);
    assert_int_equal(farol_item(a), 10);
    assert_int_equal(farol_get_flat(b, 0), -3);
    assert_int_equal(farol_get_flat(b, 1), 13);
    assert_int_equal(farol_get_flat(m, 1), 5);
    assert_int_equal(farol_get_flat(am, 1), 1);
    assert_int_equal(farol_get_flat(mn, 0), -7);
    assert_int_equal(farol_get_flat(ai, 1), 0); /* the first of two 4s */
    assert_null(farol_mean(x, 0, false));
    ERR_HAS("mean: x must be a floating tensor");
    assert_null(farol_softmax(x, 0));
    ERR_HAS("softmax: x must be a floating tensor");
    farol_tensor *r[] = {x, a, b, m, am, ai, mn};
    for (int i = 0; i < 7; i++) farol_release(r[i]);
}

static void test_ties_and_first_index(void **state) {
    (void)state;
    int64_t s[] = {2, 4};
    double v[] = {1, 3, 3, 0, 2, 2, 2, -1};
    farol_tensor *x = tu_tensor(2, s, v), *idx = NULL;
    assert_int_equal(farol_set_requires_grad(x, true), 0);
    farol_tensor *m = farol_max_dim(x, 1, false, &idx), *gx = NULL;
    assert_int_equal(farol_get_flat(idx, 0), 1); /* the first of two 3s */
    assert_int_equal(farol_get_flat(idx, 1), 0);
    farol_tensor *g = farol_full(1, (int64_t[]){2}, 1.0, FAROL_F64);
    assert_int_equal(farol_grad(1, &m, &g, 1, &x, &gx), 0);
    double want[] = {0, 1, 0, 0, 1, 0, 0, 0};
    for (int i = 0; i < 8; i++) assert_true(farol_get_flat(gx, i) == want[i]);
    farol_release(gx);
    /* the full max spreads over ties */
    farol_tensor *a = farol_amax(x, ALL, false);
    assert_int_equal(farol_grad(1, &a, NULL, 1, &x, &gx), 0);
    double want2[] = {0, 0.5, 0.5, 0, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++) assert_true(farol_get_flat(gx, i) == want2[i]);
    farol_tensor *am = farol_argmax(x, ALL, false), *an = farol_argmin(x, ALL, true);
    assert_int_equal(farol_item(am), 1);
    assert_int_equal(farol_item(an), 7);
    assert_int_equal(an->ndim, 2);
    farol_tensor *r[] = {x, idx, m, g, gx, a, am, an};
    for (int i = 0; i < 8; i++) farol_release(r[i]);
}

static void test_nan_propagates(void **state) {
    (void)state;
    int64_t s[] = {4};
    double v[] = {1, NAN, 5, 2};
    farol_tensor *x = tu_tensor(1, s, v);
    farol_tensor *m = farol_amax(x, 0, false), *a = farol_argmax(x, 0, false);
    farol_tensor *s1 = farol_sum(x, 0, false), *l = farol_logsumexp(x, 0, false);
    assert_true(isnan(farol_item(m)) && isnan(farol_item(s1)) && isnan(farol_item(l)));
    assert_int_equal(farol_item(a), 1);
    farol_tensor *r[] = {x, m, a, s1, l};
    for (int i = 0; i < 5; i++) farol_release(r[i]);
}

static void test_special_values(void **state) {
    (void)state;
    int64_t s[] = {2, 3};
    double v[] = {-INFINITY, -INFINITY, -INFINITY, 1000, 1001, -INFINITY};
    farol_tensor *x = tu_tensor(2, s, v);
    farol_tensor *l = farol_logsumexp(x, 1, false), *sm = farol_softmax(x, 1);
    farol_tensor *ls = farol_log_softmax(x, 1);
    assert_true(isinf(farol_get_flat(l, 0)) && farol_get_flat(l, 0) < 0);
    assert_true(fabs(farol_get_flat(l, 1) - (1001 + log1p(exp(-1)))) < 1e-12);
    assert_true(fabs(farol_get_flat(sm, 4) - 1 / (1 + exp(-1))) < 1e-15);
    assert_true(farol_get_flat(sm, 5) == 0);
    assert_true(fabs(farol_get_flat(ls, 3) - (-1 - log1p(exp(-1)))) < 1e-12);
    /* norm of zeros: value 0, gradient 0 (not NaN) */
    farol_tensor *z = farol_zeros(1, (int64_t[]){3}, FAROL_F64), *gz = NULL;
    assert_int_equal(farol_set_requires_grad(z, true), 0);
    farol_tensor *n = farol_norm(z, ALL, false);
    assert_int_equal(farol_grad(1, &n, NULL, 1, &z, &gz), 0);
    for (int i = 0; i < 3; i++) assert_true(farol_get_flat(gz, i) == 0);
    /* var of one element is NaN, as PyTorch */
    farol_tensor *one = farol_var(n, ALL, false);
    assert_true(isnan(farol_item(one)));
    farol_tensor *r[] = {x, l, sm, ls, z, gz, n, one};
    for (int i = 0; i < 8; i++) farol_release(r[i]);
}

static void test_errors(void **state) {
    (void)state;
    int64_t s[] = {2, 0}, s2[] = {2, 3};
    farol_tensor *e = farol_zeros(2, s, FAROL_F32), *x = farol_zeros(2, s2, FAROL_F32);
    farol_tensor *idx = NULL;
    assert_null(farol_sum(x, 2, false));
    ERR_HAS("sum: dim 3 out of range for a 2-d tensor");
    assert_null(farol_mean(x, -3, false));
    ERR_HAS("mean: dim -3 out of range");
    assert_null(farol_amax(e, 1, false));
    ERR_HAS("amax: cannot reduce over dim 2 of size 0 (input [2, 0])");
    assert_null(farol_argmin(e, ALL, false));
    ERR_HAS("argmin: cannot reduce an empty tensor [2, 0]");
    assert_null(farol_max_dim(x, 5, false, &idx));
    ERR_HAS("max: dim 6 out of range");
    assert_null(idx);
    assert_null(farol_max_dim(x, 0, false, NULL));
    ERR_HAS("max: indices is NULL");
    assert_null(farol_softmax(x, 2));
    ERR_HAS("softmax: dim 3 out of range");
    assert_null(farol_log_softmax(NULL, 0));
    ERR_HAS("log_softmax: x is NULL");
    /* sums over empty dims are fine */
    farol_tensor *z = farol_sum(e, 1, false), *m = farol_mean(e, 1, false);
    assert_true(farol_get_flat(z, 1) == 0 && isnan(farol_get_flat(m, 0)));
    farol_release(z);
    farol_release(m);
    farol_release(e);
    farol_release(x);
}

/* ---- fast paths against naive double loops, float32 accuracy ---- */

/* naive (outer, n, inner) sum of x's values in double */
static double naive_sum(const farol_tensor *x, int64_t o, int64_t j, int64_t n, int64_t inner) {
    double acc = 0;
    for (int64_t i = 0; i < n; i++) acc += farol_get_flat(x, (o * n + i) * inner + j);
    return acc;
}

static void test_fast_paths(void **state) {
    (void)state;
    /* shapes hitting: column blocks (inner > 256, parallel), unit-stride
     * lines (parallel), and the chunked full sum (n > 2^17) */
    int64_t shapes[][3] = {{3, 700, 301}, {513, 769, 1}, {1, 300001, 1}, {2, 5, 7}};
    for (int s = 0; s < 4; s++) {
        for (int dt = 0; dt < 2; dt++) {
            farol_manual_seed(7 + s);
            farol_tensor *x = farol_randn(3, shapes[s], dt ? FAROL_F64 : FAROL_F32);
            farol_tensor *sm = farol_sum(x, 1, false), *mn = farol_mean(x, 1, true);
            int64_t o = shapes[s][0], n = shapes[s][1], in = shapes[s][2];
            double tol = dt ? 1e-12 : 1e-6;
            for (int64_t k = 0; k < o * in; k += 1 + o * in / 50) {
                double want = naive_sum(x, k / in, k % in, n, in);
                assert_true(fabs(farol_get_flat(sm, k) - want) <= tol * (1 + fabs(want)));
                assert_true(fabs(farol_get_flat(mn, k) - want / n) <= tol * (1 + fabs(want / n)));
            }
            farol_release(sm);
            farol_release(mn);
            farol_release(x);
        }
    }
    /* float32: a long sum of 0.1 stays accurate (float accumulation drifts by ~1e-3) */
    int64_t big[] = {1000000};
    farol_tensor *t = farol_full(1, big, 0.1, FAROL_F32), *s = farol_sum(t, ALL, false);
    assert_true(fabs(farol_item(s) - 1e6 * (double)0.1f) < 1e-2);
    farol_release(t);
    farol_release(s);
}

/* float32 and float64 agree; strided inputs match their contiguous copies */
static void test_dtypes_and_strides(void **state) {
    (void)state;
    int64_t sh[] = {6, 5, 40};
    red_fn fs[] = {farol_sum, farol_mean, farol_var, farol_std, farol_amax, farol_amin,
                   farol_logsumexp, farol_norm};
    farol_manual_seed(5);
    farol_tensor *x = farol_randn(3, sh, FAROL_F64), *x32 = farol_to_dtype(x, FAROL_F32);
    farol_tensor *xt = farol_transpose(x, 0, 2), *xtc = farol_contiguous(xt);
    assert_false(farol_is_contiguous(xt));
    for (int f = 0; f < 10; f++) {
        for (int d = -1; d < 3; d++) {
            int dim = d < 0 ? ALL : d;
            red_ctx c = {.f = f < 8 ? fs[f] : NULL,
                         .kind = f < 8 ? PLAIN : f == 8 ? SOFTMAX : LOG_SOFTMAX,
                         .dim = dim};
            if (f >= 8 && d < 0) continue;
            farol_tensor *a = red_call(&c, &x), *b = red_call(&c, &x32);
            farol_tensor *p = red_call(&c, &xt), *q = red_call(&c, &xtc);
            assert_non_null(a);
            assert_int_equal(b->dtype, FAROL_F32);
            tu_assert_close("f32 vs f64", b, a, 1e-5, 1e-5);
            tu_assert_close("strided vs contiguous", p, q, 0, 0);
            farol_release(a);
            farol_release(b);
            farol_release(p);
            farol_release(q);
        }
    }
    farol_release(x);
    farol_release(x32);
    farol_release(xt);
    farol_release(xtc);
}

/* float32 softmax (its own vectorised exp) against float64, over a wide
 * range, with -inf (exact zeros), NaN and large values */
static void test_softmax_float32(void **state) {
    (void)state;
    int64_t sh[] = {64, 300};
    farol_manual_seed(8);
    farol_tensor *x = farol_randn(2, sh, FAROL_F64), *big = farol_scalar(30, FAROL_F64);
    farol_tensor *xs = farol_mul(x, big); /* values over about +-100 */
    farol_tensor *x32 = farol_to_dtype(xs, FAROL_F32), *x64 = farol_to_dtype(x32, FAROL_F64);
    for (int lg = 0; lg < 2; lg++) {
        for (int dim = 0; dim < 2; dim++) {
            farol_tensor *a = lg ? farol_log_softmax(x32, dim) : farol_softmax(x32, dim);
            farol_tensor *b = lg ? farol_log_softmax(x64, dim) : farol_softmax(x64, dim);
            farol_tensor *mx = farol_amax(x64, dim, true);
            assert_int_equal(a->dtype, FAROL_F32);
            /* float32 rounds d = x - max by up to |d| * 2^-24: exp turns that
             * into a relative error (softmax) or an absolute one (log) */
            for (int64_t i = 0; i < 64 * 300; i++) {
                double mxv = farol_get_flat(mx, dim ? i / 300 : i % 300);
                double d = fabs(farol_get_flat(x64, i) - mxv);
                double got = farol_get_flat(a, i), want = farol_get_flat(b, i);
                double tol = 1e-6 + 1.2e-7 * d;
                if (!(fabs(got - want) <= (lg ? tol : tol * want + 1.2e-38))) /* FLT_MIN */
                    fail_msg("%s dim %d: element %lld is %.9g, expected %.9g",
                             lg ? "log_softmax" : "softmax", dim, (long long)i, got, want);
            }
            farol_release(a);
            farol_release(b);
            farol_release(mx);
        }
    }
    float v[] = {-INFINITY, 0, 1e4f, -INFINITY, 1e4f, -1e4f, NAN, 1, -INFINITY, 3, -100, 2};
    farol_tensor *m = farol_from_data(2, (int64_t[]){3, 4}, FAROL_F32, v);
    farol_tensor *sm = farol_softmax(m, 1);
    const float *y = farol_data(sm);
    assert_true(y[0] == 0 && y[1] == 0 && y[3] == 0 && y[2] == 1);
    for (int i = 4; i < 8; i++) assert_true(isnan(y[i]));
    assert_true(y[8] == 0 && fabsf(y[9] - 1 / (1 + expf(-1))) < 1e-7f && y[10] < 1e-40f);
    farol_tensor *r[] = {x, big, xs, x32, x64, m, sm};
    for (int i = 0; i < 7; i++) farol_release(r[i]);
}

/* ---- sum_to ---- */

static void test_sum_to(void **state) {
    (void)state;
    int64_t s[] = {2, 3, 4, 5};
    farol_manual_seed(3);
    farol_tensor *g = farol_randn(4, s, FAROL_F64);
    struct { int nd; int64_t shape[4]; } cases[] = {
        {1, {5}}, {2, {4, 1}}, {3, {3, 1, 5}}, {4, {1, 1, 1, 1}}, {4, {2, 1, 4, 1}},
        {0, {0}}, {4, {2, 3, 4, 5}}, {3, {1, 4, 5}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int nd = cases[k].nd;
        farol_tensor *got = farol_sum_to(g, nd, cases[k].shape);
        assert_non_null(got);
        assert_int_equal(got->ndim, nd);
        /* reference: sum one dim at a time with keepdim, then drop leading dims */
        farol_tensor *ref = farol_retain(g);
        for (int i = 0; i < 4; i++) {
            int j = i - (4 - nd);
            if (j < 0 || cases[k].shape[j] == 1) {
                farol_tensor *r = farol_sum(ref, i, true);
                farol_release(ref);
                ref = r;
            }
        }
        farol_tensor *refv = farol_reshape(ref, nd, cases[k].shape);
        tu_assert_close("sum_to", got, refv, 1e-12, 1e-12);
        farol_release(got);
        farol_release(ref);
        farol_release(refv);
    }
    /* a strided gradient and float32 */
    farol_tensor *gt = farol_transpose(g, 1, 3), *g32 = farol_to_dtype(gt, FAROL_F32);
    int64_t t[] = {5, 1, 1};
    farol_tensor *a = farol_sum_to(gt, 3, t), *b = farol_sum_to(g32, 3, t);
    assert_int_equal(b->dtype, FAROL_F32);
    tu_assert_close("sum_to f32", b, a, 1e-5, 1e-5);
    int64_t bad[] = {3};
    assert_null(farol_sum_to(g, 1, bad));
    ERR_HAS("sum_to: cannot sum a gradient of shape [2, 3, 4, 5] to [3]");
    farol_release(gt);
    farol_release(g32);
    farol_release(a);
    farol_release(b);
    farol_release(g);
}

static void test_alloc_failures(void **state) {
    (void)state;
    int64_t s[] = {3, 4, 5};
    farol_tensor *x = tu_randn64(3, s, 1), *xt = farol_transpose(x, 0, 2);
    for (int op = 0; op < 7; op++) {
        bool done = false;
        for (int64_t n = 1; !done && n < 200; n++) {
            farol_alloc_fail_at(n);
            farol_tensor *out = NULL, *idx = NULL, *gx = NULL, *sum = NULL;
            switch (op) {
            case 0: out = farol_sum(xt, 1, false); break;
            case 1: out = farol_var(xt, ALL, true); break;
            case 2: out = farol_amax(x, 2, false); break;
            case 3: out = farol_max_dim(xt, 0, true, &idx); break;
            case 4: out = farol_softmax(xt, 1); break;
            case 5: out = farol_logsumexp(x, -1, false); break;
            default: out = farol_argmin(xt, 1, false); break;
            }
            int rc = -1;
            if (out && op != 6) sum = farol_sum(out, ALL, false);
            if (sum) rc = farol_grad(1, &sum, NULL, 1, &x, &gx);
            if (out && op == 6) rc = 0;
            done = farol_alloc_count() < n;
            if (done) assert_int_equal(rc, 0);
            else assert_true(rc < 0);
            farol_tensor *r[] = {out, idx, gx, sum};
            for (int i = 0; i < 4; i++) farol_release(r[i]);
        }
        farol_alloc_fail_at(0);
        assert_true(done);
    }
    farol_release(xt);
    farol_release(x);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum_mean_fixtures),
        cmocka_unit_test(test_var_std_fixtures),
        cmocka_unit_test(test_amax_amin_fixtures),
        cmocka_unit_test(test_logsumexp_norm_fixtures),
        cmocka_unit_test(test_max_min_fixtures),
        cmocka_unit_test(test_argmax_argmin_fixtures),
        cmocka_unit_test(test_softmax_fixtures),
        cmocka_unit_test(test_gradchecks),
        cmocka_unit_test(test_shapes_and_keepdim),
        cmocka_unit_test(test_int64),
        cmocka_unit_test(test_ties_and_first_index),
        cmocka_unit_test(test_nan_propagates),
        cmocka_unit_test(test_special_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_fast_paths),
        cmocka_unit_test(test_dtypes_and_strides),
        cmocka_unit_test(test_softmax_float32),
        cmocka_unit_test(test_sum_to),
        cmocka_unit_test(test_alloc_failures),
    };
    return tu_run(tests, argc, argv);
}
