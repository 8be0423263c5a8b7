/* matmul and linear: PyTorch fixtures, float64 gradient checks (1-D,
 * batched, broadcast, transposed and strided operands), the GEMM paths
 * (transposed views, folded batches, copies) against a naive double loop,
 * errors, pruned weight gradients and allocation failures. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERR_HAS(s) assert_non_null(strstr(farol_last_error(), (s)))

typedef struct {
    bool linear;
    bool bias;       /* linear: xs[2] is the bias */
    bool trans[2];   /* swap the last two dims of xs[k] first (a transposed view) */
} mm_ctx;

static farol_tensor *mm_call(void *vctx, farol_tensor **xs) {
    mm_ctx *c = vctx;
    farol_tensor *v[2] = {NULL, NULL}, *out = NULL;
    for (int k = 0; k < 2; k++) {
        v[k] = c->trans[k] ? farol_transpose(xs[k], -1, -2) : farol_retain(xs[k]);
        if (!v[k]) goto done;
    }
    out = c->linear ? farol_linear(v[0], v[1], c->bias ? xs[2] : NULL) : farol_matmul(v[0], v[1]);
done:
    farol_release(v[0]);
    farol_release(v[1]);
    return out;
}

/* ---- a naive reference: PyTorch's rules, double loops over farol_get ---- */

static farol_tensor *naive_matmul(const farol_tensor *a, const farol_tensor *b) {
    int64_t M = a->ndim == 1 ? 1 : a->shape[a->ndim - 2], K = a->shape[a->ndim - 1];
    int64_t N = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
    int na = a->ndim > 2 ? a->ndim - 2 : 0, nb = b->ndim > 2 ? b->ndim - 2 : 0, n;
    int64_t bs[FAROL_MAX_DIMS], os[FAROL_MAX_DIMS];
    assert_int_equal(farol_broadcast_shapes(na, a->shape, nb, b->shape, &n, bs), 0);
    int ond = n;
    memcpy(os, bs, n * sizeof *bs);
    if (a->ndim > 1) os[ond++] = M;
    if (b->ndim > 1) os[ond++] = N;
    farol_tensor *out = farol_zeros(ond, os, FAROL_F64);
    int64_t count = 1;
    for (int i = 0; i < n; i++) count *= bs[i];
    double *o = farol_data(out);
    for (int64_t t = 0; t < count; t++) {
        int64_t bi[FAROL_MAX_DIMS], ia[FAROL_MAX_DIMS], ib[FAROL_MAX_DIMS], r = t;
        for (int i = n - 1; i >= 0; i--) {
            bi[i] = r % bs[i];
            r /= bs[i];
        }
        for (int i = 0; i < na; i++) ia[i] = a->shape[i] == 1 ? 0 : bi[i + n - na];
        for (int i = 0; i < nb; i++) ib[i] = b->shape[i] == 1 ? 0 : bi[i + n - nb];
        for (int64_t m = 0; m < M; m++) {
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++) {
                    if (a->ndim == 1) ia[0] = k;
                    else ia[na] = m, ia[na + 1] = k;
                    if (b->ndim == 1) ib[0] = k;
                    else ib[nb] = k, ib[nb + 1] = j;
                    acc += farol_get(a, ia) * farol_get(b, ib);
                }
                o[(t * M + m) * N + j] = acc;
            }
        }
    }
    return out;
}

/* ---- fixtures ---- */

static void test_matmul_fixture(void **state) {
    (void)state;
    static const char *const AB[] = {"a", "b"};
    mm_ctx c = {0};
    farol_tensor_dict d = tu_fixture("ops/matmul.safetensors");
    for (int v = 1; v <= 9; v++) {
        char name[16];
        snprintf(name, sizeof name, "v%d", v);
        tu_check_fixture(&d, name, mm_call, &c, 2, AB);
    }
    farol_dict_free(&d);
}

static void test_linear_fixture(void **state) {
    (void)state;
    static const char *const XWB[] = {"x", "w", "b"};
    farol_tensor_dict d = tu_fixture("ops/linear.safetensors");
    for (int v = 1; v <= 4; v++) {
        char name[16];
        snprintf(name, sizeof name, "v%d", v);
        mm_ctx c = {.linear = true, .bias = v != 2};
        tu_check_fixture(&d, name, mm_call, &c, c.bias ? 3 : 2, XWB);
    }
    farol_dict_free(&d);
}

/* ---- gradient checks ---- */

typedef struct {
    int na, nb;
    int64_t a[4], b[4];
    bool ta, tb; /* the stored operand is the transpose; the product uses it transposed back */
} mm_case;

static void test_matmul_gradcheck(void **state) {
    (void)state;
    mm_case cases[] = {
        {1, 1, {4}, {4}, false, false},                /* dot -> 0-d */
        {2, 1, {3, 4}, {4}, false, false},             /* matrix @ vector */
        {1, 2, {4}, {4, 5}, false, false},             /* vector @ matrix */
        {2, 2, {3, 4}, {4, 5}, false, false},
        {3, 3, {2, 3, 4}, {2, 4, 5}, false, false},    /* batched */
        {3, 2, {2, 3, 4}, {4, 5}, false, false},       /* B shared: folded into M, dB into K */
        {2, 3, {3, 4}, {2, 4, 5}, false, false},       /* A shared: dA accumulates over the batch */
        {4, 3, {2, 1, 3, 4}, {5, 4, 2}, false, false}, /* batch dims broadcast to (2, 5) */
        {1, 3, {4}, {2, 4, 5}, false, false},
        {3, 1, {2, 3, 4}, {4}, false, false},
        {2, 2, {4, 3}, {5, 4}, true, true},            /* both transposed views */
        {3, 3, {2, 4, 3}, {1, 4, 5}, true, false},
        {3, 2, {2, 3, 4}, {5, 4}, false, true},
        {2, 2, {1, 4}, {4, 1}, false, false},          /* size-1 rows and columns */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        mm_case *m = &cases[k];
        farol_tensor *xs[2] = {tu_randn64(m->na, m->a, 10 + k), tu_randn64(m->nb, m->b, 50 + k)};
        mm_ctx c = {.trans = {m->ta, m->tb}};
        char what[32];
        snprintf(what, sizeof what, "matmul case %zu", k);
        tu_gradcheck(what, mm_call, &c, 2, xs);
        farol_release(xs[0]);
        farol_release(xs[1]);
    }
}

static void test_linear_gradcheck(void **state) {
    (void)state;
    struct {
        int nx;
        int64_t x[3];
        bool tx, tw, bias;
    } cases[] = {
        {2, {4, 5}, false, false, true},
        {3, {2, 3, 5}, false, false, true},
        {1, {5}, false, false, false},
        {2, {5, 4}, true, false, true},                /* x column-major: Trans, no copy */
        {3, {2, 5, 3}, true, true, true},              /* x strided over its leading dims: copied */
        {2, {4, 5}, false, true, false},               /* w stored (in, out), used transposed */
    };
    int64_t w[] = {3, 5}, wt[] = {5, 3}, b[] = {3};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        farol_tensor *xs[3] = {tu_randn64(cases[k].nx, cases[k].x, 3 + k),
                               tu_randn64(2, cases[k].tw ? wt : w, 30 + k),
                               tu_randn64(1, b, 60 + k)};
        mm_ctx c = {.linear = true, .bias = cases[k].bias, .trans = {cases[k].tx, cases[k].tw}};
        char what[32];
        snprintf(what, sizeof what, "linear case %zu", k);
        tu_gradcheck(what, mm_call, &c, c.bias ? 3 : 2, xs);
        for (int i = 0; i < 3; i++) farol_release(xs[i]);
    }
}

/* ---- the GEMM paths against the naive loop ---- */

/* a (float32 or float64) view of a random tensor: contiguous, transposed
 * (column-major) or a slice that is neither (copied before the GEMM) */
enum { CONTIG, TRANSPOSED, SLICED };

static farol_tensor *operand(int nd, const int64_t *shape, int layout, farol_dtype dt,
                             uint64_t seed) {
    int64_t s[FAROL_MAX_DIMS];
    memcpy(s, shape, nd * sizeof *s);
    farol_manual_seed(seed);
    if (layout == TRANSPOSED && nd >= 2) {
        int64_t t = s[nd - 1];
        s[nd - 1] = s[nd - 2];
        s[nd - 2] = t;
        farol_tensor *base = farol_randn(nd, s, dt), *v = farol_transpose(base, -1, -2);
        farol_release(base);
        return v;
    }
    if (layout == SLICED) { /* the first of 3 planes along a new last dim: strides (3c, 3) */
        s[nd] = 3;
        farol_tensor *base = farol_randn(nd + 1, s, dt), *v = farol_select(base, nd, 0);
        farol_release(base);
        return v;
    }
    return farol_randn(nd, s, dt);
}

static void test_gemm_paths_vs_naive(void **state) {
    (void)state;
    struct {
        int na, nb;
        int64_t a[4], b[4];
    } shapes[] = {
        {2, 2, {37, 129}, {129, 65}},
        {3, 2, {3, 17, 9}, {9, 11}},                   /* B shared: one GEMM with M = 51 */
        {2, 3, {1, 9}, {4, 9, 6}},                     /* A shared (M = 1) */
        {4, 3, {2, 1, 5, 6}, {3, 6, 4}},
        {3, 3, {4, 7, 8}, {4, 8, 3}},
        {1, 2, {33}, {33, 70}},
        {2, 1, {70, 33}, {33}},
        {3, 3, {3, 1, 4}, {3, 4, 1}},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int la = 0; la < 3; la++) {
            for (int lb = 0; lb < 3; lb++) {
                for (int dt = 0; dt < 2; dt++) {
                    farol_dtype t = dt ? FAROL_F64 : FAROL_F32;
                    farol_tensor *a = operand(shapes[s].na, shapes[s].a, la, t, s * 9 + la);
                    farol_tensor *b = operand(shapes[s].nb, shapes[s].b, lb, t, s * 9 + lb + 3);
                    farol_tensor *got = farol_matmul(a, b), *want = naive_matmul(a, b);
                    assert_non_null(got);
                    assert_int_equal(got->dtype, t);
                    char what[64];
                    snprintf(what, sizeof what, "shape %zu layouts %d %d dtype %d", s, la, lb, dt);
                    tu_assert_close(what, got, want, dt ? 1e-12 : 1e-4, dt ? 1e-12 : 1e-4);
                    farol_release(a);
                    farol_release(b);
                    farol_release(got);
                    farol_release(want);
                }
            }
        }
    }
}

/* a transposed matrix gives exactly what its contiguous copy gives, values
 * and gradients */
static void test_transposed_equals_contiguous(void **state) {
    (void)state;
    int64_t sa[] = {6, 5}, sb[] = {6, 4}, sg[] = {5, 4};
    farol_tensor *a = tu_randn64(2, sa, 1), *b = tu_randn64(2, sb, 2);
    farol_tensor *at = farol_transpose(a, 0, 1), *ac = farol_contiguous(at);
    assert_false(farol_is_contiguous(at));
    farol_manual_seed(3);
    farol_tensor *g = farol_randn(2, sg, FAROL_F64);
    farol_tensor *y1 = farol_matmul(at, b), *y2 = farol_matmul(ac, b);
    tu_assert_close("transposed value", y1, y2, 1e-14, 1e-14);
    farol_tensor *g1[2] = {0}, *g2[2] = {0}, *in[2] = {a, b};
    assert_int_equal(farol_grad(1, &y1, &g, 2, in, g1), 0);
    assert_int_equal(farol_grad(1, &y2, &g, 2, in, g2), 0);
    tu_assert_close("transposed grad a", g1[0], g2[0], 1e-14, 1e-14);
    tu_assert_close("transposed grad b", g1[1], g2[1], 1e-14, 1e-14);
    farol_tensor *r[] = {a, b, at, ac, g, y1, y2, g1[0], g1[1], g2[0], g2[1]};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) farol_release(r[i]);
}

static void test_linear_vs_naive(void **state) {
    (void)state;
    int64_t xs[] = {3, 7, 40}, ws[] = {24, 40}, bs[] = {24};
    for (int dt = 0; dt < 2; dt++) {
        farol_dtype t = dt ? FAROL_F64 : FAROL_F32;
        farol_manual_seed(11);
        farol_tensor *x = farol_randn(3, xs, t), *w = farol_randn(2, ws, t);
        farol_tensor *b = farol_randn(1, bs, t);
        farol_tensor *y = farol_linear(x, w, b), *wt = farol_transpose(w, 0, 1);
        farol_tensor *xw = naive_matmul(x, wt);
        assert_int_equal(y->ndim, 3);
        assert_int_equal(y->shape[2], 24);
        for (int64_t i = 0; i < farol_numel(xw); i++) {
            double want = farol_get_flat(xw, i) + farol_get_flat(b, i % 24);
            double tol = (dt ? 1e-12 : 1e-4) * (1 + fabs(want));
            assert_true(fabs(farol_get_flat(y, i) - want) <= tol);
        }
        farol_tensor *r[] = {x, w, b, y, wt, xw};
        for (int i = 0; i < 6; i++) farol_release(r[i]);
    }
}

static void test_empty_and_zero_k(void **state) {
    (void)state;
    int64_t s30[] = {3, 0}, s04[] = {0, 4}, s03[] = {0, 3}, s34[] = {3, 4};
    farol_tensor *a = farol_zeros(2, s30, FAROL_F32), *b = farol_zeros(2, s04, FAROL_F32);
    farol_tensor *c = farol_zeros(2, s03, FAROL_F32), *d = farol_zeros(2, s34, FAROL_F32);
    farol_tensor *y = farol_matmul(a, b), *e = farol_matmul(c, d);
    assert_int_equal(y->shape[0], 3);
    assert_int_equal(y->shape[1], 4);
    for (int i = 0; i < 12; i++) assert_true(farol_get_flat(y, i) == 0);
    assert_int_equal(farol_numel(e), 0);
    farol_tensor *r[] = {a, b, c, d, y, e};
    for (int i = 0; i < 6; i++) farol_release(r[i]);
}

/* ---- errors ---- */

static void test_errors(void **state) {
    (void)state;
    int64_t s34[] = {3, 4}, s52[] = {5, 2}, s234[] = {2, 3, 4}, s345[] = {3, 4, 5};
    int64_t sx[] = {2, 783}, sw[] = {10, 784}, sb[] = {4};
    farol_tensor *a = farol_zeros(2, s34, FAROL_F32), *b = farol_zeros(2, s52, FAROL_F32);
    farol_tensor *a64 = farol_zeros(2, s34, FAROL_F64), *i64 = farol_zeros(2, s34, FAROL_I64);
    farol_tensor *p = farol_zeros(3, s234, FAROL_F32), *q = farol_zeros(3, s345, FAROL_F32);
    farol_tensor *s = farol_scalar(1, FAROL_F32), *x = farol_zeros(2, sx, FAROL_F32);
    farol_tensor *w = farol_zeros(2, sw, FAROL_F32), *bias = farol_zeros(1, sb, FAROL_F32);
    farol_tensor *w1 = farol_zeros(1, sw + 1, FAROL_F32);
    assert_null(farol_matmul(a, b));
    ERR_HAS("matmul: a [3, 4] and b [5, 2] do not match: a has 4 columns, b has 5 rows");
    assert_null(farol_matmul(p, q));
    ERR_HAS("matmul: the batch dims of a [2, 3, 4] and b [3, 4, 5] do not broadcast");
    assert_null(farol_matmul(a, s));
    ERR_HAS("matmul: both arguments need at least 1 dim, got [3, 4] and []");
    assert_null(farol_matmul(a, a64));
    ERR_HAS("matmul: a is float32 but b is float64");
    assert_null(farol_matmul(i64, a));
    ERR_HAS("matmul: a must be a floating tensor (float32 or float64), got int64");
    assert_null(farol_matmul(NULL, a));
    ERR_HAS("matmul: a is NULL");
    assert_null(farol_linear(x, w, NULL));
    ERR_HAS("farol: linear: input has 783 features, weight expects 784");
    assert_null(farol_linear(w, w1, NULL));
    ERR_HAS("linear: weight must be 2-D (out_features, in_features), got [784]");
    assert_null(farol_linear(w, w, bias));
    ERR_HAS("linear: bias has shape [4], expected [10]");
    assert_null(farol_linear(a64, a, NULL));
    ERR_HAS("linear: x is float64 but w is float32");
    assert_null(farol_linear(s, a, NULL));
    ERR_HAS("linear: input must have at least 1 dim");
    assert_null(farol_linear(i64, a, NULL));
    ERR_HAS("linear: x must be a floating tensor");
    farol_tensor *r[] = {a, b, a64, i64, p, q, s, x, w, bias, w1};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) farol_release(r[i]);
}

/* ---- the tape asks linear only for what is needed ---- */

static void test_linear_prunes_weight_grads(void **state) {
    (void)state;
    int64_t sx[] = {4, 5}, sw[] = {3, 5}, sb[] = {3}, sy[] = {4, 3};
    farol_tensor *x = tu_randn64(2, sx, 1);
    farol_manual_seed(2);
    farol_tensor *w = farol_randn(2, sw, FAROL_F64), *b = farol_randn(1, sb, FAROL_F64);
    farol_tensor *g = farol_randn(2, sy, FAROL_F64);
    for (int wgrad = 0; wgrad < 2; wgrad++) {
        /* weights without, then with requires_grad: either way only dx is asked for */
        assert_int_equal(farol_set_requires_grad(w, wgrad), 0);
        assert_int_equal(farol_set_requires_grad(b, wgrad), 0);
        farol_tensor *y = farol_linear(x, w, b), *gx = NULL;
        farol_reset_tape_stats();
        assert_int_equal(farol_grad(1, &y, &g, 1, &x, &gx), 0);
        farol_tape_stats st = farol_get_tape_stats();
        assert_int_equal(st.nodes_run, 1);
        assert_int_equal(st.input_grads_computed, 1);
        farol_release(gx);
        if (wgrad) { /* and dw alone is one gradient too */
            farol_tensor *gw = NULL;
            farol_release(y);
            y = farol_linear(x, w, b);
            farol_reset_tape_stats();
            assert_int_equal(farol_grad(1, &y, &g, 1, &w, &gw), 0);
            assert_int_equal(farol_get_tape_stats().input_grads_computed, 1);
            assert_int_equal(gw->shape[0], 3);
            farol_release(gw);
        }
        farol_release(y);
    }
    farol_tensor *r[] = {x, w, b, g};
    for (int i = 0; i < 4; i++) farol_release(r[i]);
}

static void test_alloc_failures(void **state) {
    (void)state;
    int64_t sa[] = {2, 4, 3}, sb[] = {4, 5}, sw[] = {6, 4}, sbias[] = {6};
    farol_tensor *a0 = tu_randn64(3, sa, 1), *b = tu_randn64(2, sb, 2);
    farol_tensor *w = tu_randn64(2, sw, 3), *bias = tu_randn64(1, sbias, 4);
    farol_tensor *a = farol_transpose(a0, 1, 2); /* (2, 3, 4), column-major matrices */
    farol_tensor *sel = farol_select(a0, 2, 0);    /* (2, 4), strided: copied */
    farol_tensor *in[] = {a0, b, w, bias};
    for (int op = 0; op < 3; op++) {
        bool done = false;
        for (int64_t n = 1; !done && n < 300; n++) {
            farol_alloc_fail_at(n);
            farol_tensor *out = NULL, *sum = NULL, *gr[4] = {0};
            if (op == 0) out = farol_matmul(a, b);
            else if (op == 1) out = farol_linear(a, w, bias);
            else out = farol_matmul(sel, b);
            if (out) sum = farol_sum(out, FAROL_DIM_ALL, false);
            int rc = sum ? farol_grad(1, &sum, NULL, 4, in, gr) : -1;
            done = farol_alloc_count() < n;
            if (done && rc != 0) fail_msg("op %d: %s", op, farol_last_error());
            if (!done) assert_true(rc < 0);
            farol_release(out);
            farol_release(sum);
            for (int i = 0; i < 4; i++) farol_release(gr[i]);
        }
        farol_alloc_fail_at(0);
        assert_true(done);
    }
    farol_tensor *r[] = {a0, b, w, bias, a, sel};
    for (int i = 0; i < 6; i++) farol_release(r[i]);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_fixture),
        cmocka_unit_test(test_linear_fixture),
        cmocka_unit_test(test_matmul_gradcheck),
        cmocka_unit_test(test_linear_gradcheck),
        cmocka_unit_test(test_gemm_paths_vs_naive),
        cmocka_unit_test(test_transposed_equals_contiguous),
        cmocka_unit_test(test_linear_vs_naive),
        cmocka_unit_test(test_empty_and_zero_k),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_linear_prunes_weight_grads),
        cmocka_unit_test(test_alloc_failures),
    };
    return tu_run(tests, argc, argv);
}
