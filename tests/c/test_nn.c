/* embedding, dropout, cross_entropy, mse_loss and pad: PyTorch fixtures,
 * float64 gradient checks, dropout's random mask, errors and allocation
 * failures. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* the C API's messages (0-based) */
#define ERR_HAS(s) assert_non_null(strstr(farol_last_error(), (s)))
/* the same messages as the Lua binding shows them (1-based) */
#define ERR_HAS1(s) assert_non_null(strstr(farol_last_error_1based(), (s)))

static void release_all(size_t n, farol_tensor **ts) {
    for (size_t i = 0; i < n; i++) farol_release(ts[i]);
}
#define RELEASE_ALL(...)                                                                  \
    do {                                                                                  \
        farol_tensor *all_[] = {__VA_ARGS__};                                             \
        release_all(sizeof all_ / sizeof all_[0], all_);                                  \
    } while (0)

/* the fixtures' 1-based index tensors as the C API's 0-based ones */
static farol_tensor *minus_one(const farol_tensor *idx) {
    farol_tensor *t = farol_empty(idx->ndim, idx->shape, FAROL_I64);
    assert_non_null(t);
    int64_t *p = farol_data(t);
    for (int64_t i = 0; i < farol_numel(idx); i++) p[i] = (int64_t)farol_get_flat(idx, i) - 1;
    return t;
}

static farol_tensor *i64_tensor(int ndim, const int64_t *shape, const int64_t *vals) {
    farol_tensor *t = farol_from_data(ndim, shape, FAROL_I64, vals);
    assert_non_null(t);
    return t;
}

/* ---- embedding ---- */

/* xs: idx (1-based when ctx says so), w */
static farol_tensor *emb_fn(void *ctx, farol_tensor **xs) {
    bool one_based = ctx != NULL;
    farol_tensor *idx = one_based ? minus_one(xs[0]) : farol_retain(xs[0]);
    farol_tensor *out = farol_embedding(idx, xs[1]);
    farol_release(idx);
    return out;
}

static void test_embedding_fixture(void **state) {
    (void)state;
    farol_tensor_dict d = tu_fixture("ops/embedding.safetensors");
    const char *names[] = {"idx", "w"};
    int one_based = 1;
    tu_check_fixture(&d, "v1", emb_fn, &one_based, 2, names);
    tu_check_fixture(&d, "v2", emb_fn, &one_based, 2, names);
    farol_dict_free(&d);
}

/* xs: idx (0-based), w given as (D, V): transposed to a non-contiguous (V, D) */
static farol_tensor *emb_t_fn(void *ctx, farol_tensor **xs) {
    (void)ctx;
    farol_tensor *w = farol_transpose(xs[1], 0, 1);
    farol_tensor *out = w ? farol_embedding(xs[0], w) : NULL;
    farol_release(w);
    return out;
}

static void test_embedding_gradcheck(void **state) {
    (void)state;
    /* repeated rows accumulate; row 4 is never used and gets 0 */
    int64_t is[] = {2, 3}, iv[] = {1, 0, 1, 3, 1, 2}, ws[] = {5, 4};
    farol_tensor *idx = i64_tensor(2, is, iv), *w = tu_randn64(2, ws, 1);
    farol_tensor *xs[] = {idx, w};
    tu_gradcheck("embedding (2, 3) from (5, 4)", emb_fn, NULL, 2, xs);

    int64_t i1 = 4, iv1[] = {2, 2, 0, 2}, wts[] = {3, 3};
    farol_tensor *idx1 = i64_tensor(1, &i1, iv1), *wt = tu_randn64(2, wts, 2);
    farol_tensor *xs1[] = {idx1, wt};
    tu_gradcheck("embedding, transposed w", emb_t_fn, NULL, 2, xs1);

    /* a 0-d index picks one row: out (D) */
    farol_tensor *i0 = farol_scalar(3, FAROL_I64);
    farol_tensor *o0 = farol_embedding(i0, w);
    assert_non_null(o0);
    assert_int_equal(o0->ndim, 1);
    assert_int_equal(o0->shape[0], 4);
    for (int64_t j = 0; j < 4; j++)
        assert_true(farol_get_flat(o0, j) == farol_get_flat(w, 3 * 4 + j));

    RELEASE_ALL(idx, w, idx1, wt, i0, o0);
}

static void test_embedding_errors(void **state) {
    (void)state;
    int64_t is = 3, iv[] = {0, 10, 2}, neg[] = {0, -1, 2}, ws[] = {10, 4};
    farol_tensor *idx = i64_tensor(1, &is, iv), *idxn = i64_tensor(1, &is, neg);
    farol_tensor *w = farol_zeros(2, ws, FAROL_F64), *w1 = farol_zeros(1, ws, FAROL_F64);
    farol_tensor *fidx = farol_zeros(1, &is, FAROL_F64), *wi = farol_zeros(2, ws, FAROL_I64);

    assert_null(farol_embedding(idx, w));
    ERR_HAS("embedding: index 10 (element 1 of idx [3]) is out of range for w [10, 4] "
            "(valid 0..9)");
    assert_null(farol_embedding(idxn, w));
    ERR_HAS("embedding: index -1 (element 1 of idx [3]) is out of range");
    assert_null(farol_embedding(fidx, w));
    ERR_HAS("embedding: idx must be an int64 tensor, got float64");
    assert_null(farol_embedding(idxn, w1));
    ERR_HAS("embedding: w must be 2-D (rows, dim), got [10]");
    assert_null(farol_embedding(idxn, wi));
    ERR_HAS("embedding: w must be a floating tensor");
    RELEASE_ALL(idx, idxn, w, w1, fidx, wi);
}

/* ---- dropout ---- */

typedef struct { double p; bool training; } drop_ctx;

static farol_tensor *drop_fn(void *vctx, farol_tensor **xs) {
    drop_ctx *c = vctx;
    return farol_dropout(xs[0], c->p, c->training);
}

static void test_dropout_fixture(void **state) {
    (void)state;
    farol_tensor_dict d = tu_fixture("ops/dropout.safetensors");
    const char *names[] = {"x"};
    drop_ctx c1 = {0.5, false}, c2 = {0.0, true};
    tu_check_fixture(&d, "v1", drop_fn, &c1, 1, names);
    tu_check_fixture(&d, "v2", drop_fn, &c2, 1, names);
    farol_dict_free(&d);
}

/* Training: a seed fixes the mask; about 1 - p of the elements survive,
 * scaled by 1/(1 - p); the gradient is the mask itself. */
static void test_dropout_training(void **state) {
    (void)state;
    const double p = 0.3;
    int64_t s[] = {200, 500};
    for (int dt = 0; dt < 2; dt++) {
        farol_dtype dtype = dt ? FAROL_F64 : FAROL_F32;
        farol_tensor *x = farol_full(2, s, 2.0, dtype);
        assert_int_equal(farol_set_requires_grad(x, true), 0);
        farol_manual_seed(42);
        farol_tensor *a = farol_dropout(x, p, true);
        farol_manual_seed(42);
        farol_tensor *b = farol_dropout(x, p, true);
        farol_tensor *c = farol_dropout(x, p, true); /* the generator moved on */
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(c);
        assert_int_equal(a->dtype, dtype);
        int64_t n = farol_numel(x), kept = 0, same_c = 0;
        double scaled = 2.0 / (1.0 - p);
        for (int64_t i = 0; i < n; i++) {
            double va = farol_get_flat(a, i);
            assert_true(va == farol_get_flat(b, i));
            same_c += va == farol_get_flat(c, i);
            if (va != 0) {
                kept++;
                assert_true(fabs(va - scaled) < 1e-6 * scaled);
            }
        }
        /* the kept fraction has standard deviation sqrt(p(1-p)/n) ~ 0.0015 */
        assert_true(fabs((double)kept / n - (1.0 - p)) < 0.01);
        assert_true(same_c < n);

        /* gradient: the scaled mask, i.e. out / x */
        farol_tensor *g = NULL, *ones = farol_full(2, s, 1.0, dtype);
        assert_int_equal(farol_grad(1, &a, &ones, 1, &x, &g), 0);
        assert_int_equal(g->dtype, dtype);
        for (int64_t i = 0; i < n; i++)
            assert_true(farol_get_flat(g, i) == farol_get_flat(a, i) / 2.0);
        RELEASE_ALL(x, a, b, c, g, ones);
    }
}

/* a float64 gradcheck of the training path under a fixed seed: each
 * evaluation reseeds, so the mask is the same for every perturbation */
static farol_tensor *drop_seeded_fn(void *vctx, farol_tensor **xs) {
    drop_ctx *c = vctx;
    farol_manual_seed(7);
    farol_tensor *xt = farol_transpose(xs[0], 0, 1);
    farol_tensor *out = xt ? farol_dropout(xt, c->p, c->training) : NULL;
    farol_release(xt);
    return out;
}

static void test_dropout_gradcheck(void **state) {
    (void)state;
    int64_t s[] = {4, 6};
    farol_tensor *x = tu_randn64(2, s, 1);
    drop_ctx c = {0.4, true}, e = {0.4, false};
    tu_gradcheck("dropout training, transposed", drop_seeded_fn, &c, 1, &x);
    tu_gradcheck("dropout eval", drop_fn, &e, 1, &x);
    /* eval and p == 0 return the input itself */
    farol_tensor *same = farol_dropout(x, 0.4, false);
    assert_ptr_equal(same, x);
    farol_release(same);
    farol_release(x);
}

static void test_dropout_errors(void **state) {
    (void)state;
    int64_t s = 4;
    farol_tensor *x = farol_zeros(1, &s, FAROL_F64), *xi = farol_zeros(1, &s, FAROL_I64);
    assert_null(farol_dropout(x, 1.0, true));
    ERR_HAS("dropout: p must be in [0, 1), got 1");
    assert_null(farol_dropout(x, -0.1, false));
    ERR_HAS("dropout: p must be in [0, 1), got -0.1");
    assert_null(farol_dropout(x, NAN, true));
    ERR_HAS("dropout: p must be in [0, 1)");
    assert_null(farol_dropout(xi, 0.5, true));
    ERR_HAS("dropout: x must be a floating tensor");
    RELEASE_ALL(x, xi);
}

/* ---- cross_entropy ---- */

/* xs: logits, labels (1-based when ctx says so); transposed logits on request */
typedef struct { bool one_based, transpose; } ce_ctx;

static farol_tensor *ce_fn(void *vctx, farol_tensor **xs) {
    ce_ctx *c = vctx;
    farol_tensor *lab = c->one_based ? minus_one(xs[1]) : farol_retain(xs[1]);
    farol_tensor *lg = c->transpose ? farol_transpose(xs[0], 0, 1) : farol_retain(xs[0]);
    farol_tensor *out = lg ? farol_cross_entropy(lg, lab) : NULL;
    farol_release(lab);
    farol_release(lg);
    return out;
}

static void test_cross_entropy_fixture(void **state) {
    (void)state;
    farol_tensor_dict d = tu_fixture("ops/cross_entropy.safetensors");
    const char *names[] = {"logits", "labels"};
    ce_ctx c = {true, false};
    tu_check_fixture(&d, "v1", ce_fn, &c, 2, names);
    tu_check_fixture(&d, "v2", ce_fn, &c, 2, names);
    tu_check_fixture(&d, "v3", ce_fn, &c, 2, names);
    farol_dict_free(&d);
}

static void test_cross_entropy_gradcheck(void **state) {
    (void)state;
    int64_t s[] = {4, 5}, n = 4, lv[] = {0, 4, 2, 4};
    farol_tensor *x = tu_randn64(2, s, 1), *lab = i64_tensor(1, &n, lv);
    farol_tensor *xs[] = {x, lab};
    ce_ctx c = {false, false}, ct = {false, true};
    tu_gradcheck("cross_entropy (4, 5)", ce_fn, &c, 2, xs);
    /* logits arrive (5, 4) and are transposed to a non-contiguous (4, 5) */
    int64_t st[] = {5, 4};
    farol_tensor *xt = tu_randn64(2, st, 2);
    farol_tensor *xst[] = {xt, lab};
    tu_gradcheck("cross_entropy transposed", ce_fn, &ct, 2, xst);
    RELEASE_ALL(x, lab, xt);
}

/* huge logits stay finite, in float32 too; a shift of every logit by a
 * constant does not change the loss */
static void test_cross_entropy_large_logits(void **state) {
    (void)state;
    int64_t s[] = {2, 3}, n = 2, lv[] = {1, 2};
    double v[] = {1000, 1001, 999, -500, 2000, 2000.5}, base[] = {0, 1, -1, -2500, 0, 0.5};
    farol_tensor *lab = i64_tensor(1, &n, lv), *x = tu_tensor(2, s, v), *xb = tu_tensor(2, s, base);
    farol_tensor *x32 = farol_to_dtype(x, FAROL_F32);
    farol_tensor *l = farol_cross_entropy(x, lab), *lb = farol_cross_entropy(xb, lab);
    farol_tensor *l32 = farol_cross_entropy(x32, lab);
    assert_non_null(l);
    assert_non_null(lb);
    assert_non_null(l32);
    assert_int_equal(l->ndim, 0);
    assert_int_equal(l32->dtype, FAROL_F32);
    /* row 1: lse(0, 1, -1) - 1; row 2: 0.5 - lse(-2500, 0, 0.5) = -log1p(exp(-0.5)) */
    double r1 = log(exp(0.0) + exp(1.0) + exp(-1.0)) - 1.0, r2 = log1p(exp(-0.5));
    assert_true(fabs(farol_item(l) - (r1 + r2) / 2) < 1e-12);
    assert_true(fabs(farol_item(lb) - farol_item(l)) < 1e-12);
    assert_true(fabs(farol_item(l32) - farol_item(l)) < 1e-5);
    RELEASE_ALL(lab, x, xb, x32, l, lb, l32);
}

static void test_cross_entropy_errors(void **state) {
    (void)state;
    int64_t s[] = {3, 4}, n = 3, n2 = 2, bad[] = {0, 4, 1}, neg[] = {0, 1, -1}, ok[] = {0, 1, 2};
    farol_tensor *x = farol_zeros(2, s, FAROL_F64), *x1 = farol_zeros(1, s, FAROL_F64);
    farol_tensor *lbad = i64_tensor(1, &n, bad), *lneg = i64_tensor(1, &n, neg);
    farol_tensor *lok = i64_tensor(1, &n, ok), *l2 = i64_tensor(1, &n2, ok);
    farol_tensor *lf = farol_zeros(1, &n, FAROL_F64), *xi = farol_zeros(2, s, FAROL_I64);

    assert_null(farol_cross_entropy(x, lbad));
    ERR_HAS("cross_entropy: label 4 (element 1 of labels) is out of range for 4 classes "
            "(valid 0..3)");
    assert_null(farol_cross_entropy(x, lneg));
    ERR_HAS("cross_entropy: label -1 (element 2 of labels) is out of range");
    assert_null(farol_cross_entropy(x, l2));
    ERR_HAS("cross_entropy: labels must have shape [3] to match logits [3, 4], got [2]");
    assert_null(farol_cross_entropy(x, lf));
    ERR_HAS("cross_entropy: labels must be an int64 tensor, got float64");
    assert_null(farol_cross_entropy(x1, lok));
    ERR_HAS("cross_entropy: logits must be 2-D (N, C), got [3]");
    assert_null(farol_cross_entropy(xi, lok));
    ERR_HAS("cross_entropy: logits must be a floating tensor");
    RELEASE_ALL(x, x1, lbad, lneg, lok, l2, lf, xi);
}

/* ---- mse_loss ---- */

/* xs: a, b; b transposed first when ctx is set */
static farol_tensor *mse_fn(void *ctx, farol_tensor **xs) {
    farol_tensor *b = ctx ? farol_transpose(xs[1], 0, 1) : farol_retain(xs[1]);
    farol_tensor *out = b ? farol_mse_loss(xs[0], b) : NULL;
    farol_release(b);
    return out;
}

static void test_mse_loss_fixture(void **state) {
    (void)state;
    farol_tensor_dict d = tu_fixture("ops/mse_loss.safetensors");
    const char *names[] = {"a", "b"};
    tu_check_fixture(&d, "v1", mse_fn, NULL, 2, names);
    tu_check_fixture(&d, "v2", mse_fn, NULL, 2, names);
    farol_dict_free(&d);
}

static void test_mse_loss_gradcheck(void **state) {
    (void)state;
    int64_t s[] = {3, 4}, st[] = {4, 3}, s3[] = {2, 3, 2};
    farol_tensor *a = tu_randn64(2, s, 1), *bt = tu_randn64(2, st, 2);
    farol_tensor *xs[] = {a, bt};
    int transpose = 1;
    tu_gradcheck("mse_loss, transposed b", mse_fn, &transpose, 2, xs);
    farol_tensor *a3 = tu_randn64(3, s3, 3), *b3 = tu_randn64(3, s3, 4);
    farol_tensor *xs3[] = {a3, b3};
    tu_gradcheck("mse_loss (2, 3, 2)", mse_fn, NULL, 2, xs3);
    RELEASE_ALL(a, bt, a3, b3);
}

/* float32 against float64, and mixed dtypes computed in float64 with each
 * gradient in its input's dtype */
static void test_mse_loss_dtypes(void **state) {
    (void)state;
    int64_t s[] = {300, 400};
    farol_manual_seed(8);
    farol_tensor *a = farol_randn(2, s, FAROL_F64), *b = farol_randn(2, s, FAROL_F64);
    farol_tensor *a32 = farol_to_dtype(a, FAROL_F32), *b32 = farol_to_dtype(b, FAROL_F32);
    assert_int_equal(farol_set_requires_grad(a32, true), 0);
    assert_int_equal(farol_set_requires_grad(b, true), 0);
    farol_tensor *l = farol_mse_loss(a, b), *l32 = farol_mse_loss(a32, b32);
    farol_tensor *lm = farol_mse_loss(a32, b);
    assert_non_null(l);
    assert_non_null(l32);
    assert_non_null(lm);
    assert_int_equal(l32->dtype, FAROL_F32);
    assert_int_equal(lm->dtype, FAROL_F64);
    assert_true(fabs(farol_item(l32) - farol_item(l)) < 1e-5 * farol_item(l));
    assert_true(fabs(farol_item(lm) - farol_item(l)) < 1e-6 * farol_item(l));
    farol_tensor *in[] = {a32, b}, *g[2] = {0};
    assert_int_equal(farol_grad(1, &lm, NULL, 2, in, g), 0);
    assert_int_equal(g[0]->dtype, FAROL_F32);
    assert_int_equal(g[1]->dtype, FAROL_F64);
    int64_t n = farol_numel(a);
    for (int64_t i = 0; i < n; i += 997) {
        double d = 2.0 * (farol_get_flat(a32, i) - farol_get_flat(b, i)) / n;
        assert_true(fabs(farol_get_flat(g[0], i) - d) < 1e-6 * fabs(d) + 1e-12);
        assert_true(fabs(farol_get_flat(g[1], i) + d) < 1e-12);
    }
    RELEASE_ALL(a, b, a32, b32, l, l32, lm, g[0], g[1]);
}

static void test_mse_loss_errors(void **state) {
    (void)state;
    int64_t s[] = {3, 4}, st[] = {4, 3};
    farol_tensor *a = farol_zeros(2, s, FAROL_F64), *b = farol_zeros(2, st, FAROL_F64);
    farol_tensor *ai = farol_zeros(2, s, FAROL_I64);
    assert_null(farol_mse_loss(a, b));
    ERR_HAS("mse_loss: a [3, 4] and b [4, 3] must have the same shape");
    assert_null(farol_mse_loss(a, ai));
    ERR_HAS("mse_loss: b must be a floating tensor");
    assert_null(farol_mse_loss(NULL, a));
    ERR_HAS("mse_loss: a and b are required");
    RELEASE_ALL(a, b, ai);
}

/* ---- pad ---- */

typedef struct {
    int npads;
    int64_t pads[8];
    double value;
    bool transpose;
} pad_ctx;

static farol_tensor *pad_fn(void *vctx, farol_tensor **xs) {
    pad_ctx *c = vctx;
    farol_tensor *x = c->transpose ? farol_transpose(xs[0], 0, -1) : farol_retain(xs[0]);
    farol_tensor *out = x ? farol_pad(x, c->npads, c->pads, c->value) : NULL;
    farol_release(x);
    return out;
}

static void test_pad_fixture(void **state) {
    (void)state;
    farol_tensor_dict d = tu_fixture("ops/pad.safetensors");
    const char *names[] = {"x"};
    pad_ctx c1 = {2, {1, 2}, 0, false}, c2 = {4, {1, 1, 2, 0}, 0, false},
            c3 = {6, {0, 0, 0, 0, 1, 1}, 0, false}, c4 = {2, {2, 1}, 0, false};
    tu_check_fixture(&d, "v1", pad_fn, &c1, 1, names);
    tu_check_fixture(&d, "v2", pad_fn, &c2, 1, names);
    tu_check_fixture(&d, "v3", pad_fn, &c3, 1, names);
    tu_check_fixture(&d, "v4", pad_fn, &c4, 1, names);
    farol_dict_free(&d);
}

static void test_pad_gradcheck(void **state) {
    (void)state;
    int64_t s[] = {2, 3, 4};
    farol_tensor *x = tu_randn64(3, s, 1);
    pad_ctx c = {6, {1, 0, 0, 2, 1, 1}, 1.5, false}, ct = {4, {2, 1, 0, 3}, -2, true};
    tu_gradcheck("pad every dim", pad_fn, &c, 1, &x);
    tu_gradcheck("pad transposed", pad_fn, &ct, 1, &x);
    pad_ctx none = {0, {0}, 0, false};
    tu_gradcheck("pad nothing", pad_fn, &none, 1, &x);
    farol_release(x);
}

/* values: the border holds value, the interior x; int64 pads too */
static void test_pad_values(void **state) {
    (void)state;
    int64_t s[] = {2, 2}, v[] = {1, 2, 3, 4}, pads[] = {1, 0, 0, 1};
    farol_tensor *x = i64_tensor(2, s, v);
    farol_tensor *y = farol_pad(x, 4, pads, 7);
    assert_non_null(y);
    assert_int_equal(y->dtype, FAROL_I64);
    assert_int_equal(y->shape[0], 3);
    assert_int_equal(y->shape[1], 3);
    double want[] = {7, 1, 2, 7, 3, 4, 7, 7, 7};
    for (int i = 0; i < 9; i++) assert_true(farol_get_flat(y, i) == want[i]);
    RELEASE_ALL(x, y);
}

static void test_pad_errors(void **state) {
    (void)state;
    int64_t s[] = {2, 3}, p3[] = {1, 1, 1}, p6[] = {1, 1, 1, 1, 1, 1}, pn[] = {0, 1, -1, 0};
    farol_tensor *x = farol_zeros(2, s, FAROL_F64);
    assert_null(farol_pad(x, 3, p3, 0));
    ERR_HAS("pad: pads must hold (before, after) pairs, at most 2 per dim of x [2, 3] "
            "(4 values), got 3 values");
    assert_null(farol_pad(x, 6, p6, 0));
    ERR_HAS("got 6 values");
    assert_null(farol_pad(x, 4, pn, 0));
    ERR_HAS1("pad: negative padding (-1, 0) for dim 1 is not supported (use narrow to crop)");
    farol_release(x);
}

/* ---- allocation failures ---- */

typedef farol_tensor *(*op_fn)(farol_tensor **xs);
static farol_tensor *op_emb(farol_tensor **xs) { return farol_embedding(xs[2], xs[0]); }
static farol_tensor *op_drop(farol_tensor **xs) {
    farol_manual_seed(1);
    return farol_dropout(xs[0], 0.5, true);
}
static farol_tensor *op_ce(farol_tensor **xs) { return farol_cross_entropy(xs[0], xs[2]); }
static farol_tensor *op_mse(farol_tensor **xs) { return farol_mse_loss(xs[0], xs[1]); }
static farol_tensor *op_pad(farol_tensor **xs) {
    int64_t pads[] = {1, 2, 0, 1};
    return farol_pad(xs[0], 4, pads, 0.5);
}

/* Failing each allocation in turn yields an error, never a crash or a leak
 * (LSan checks the latter); a run without a failure succeeds. */
static void test_nn_alloc_failures(void **state) {
    (void)state;
    int64_t s[] = {3, 4}, n = 3, lv[] = {0, 2, 2};
    farol_tensor *a = tu_randn64(2, s, 1), *b = tu_randn64(2, s, 2), *lab = i64_tensor(1, &n, lv);
    farol_tensor *xs[] = {a, b, lab};
    op_fn ops[] = {op_emb, op_drop, op_ce, op_mse, op_pad};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        bool done = false;
        for (int64_t i = 1; !done && i < 200; i++) {
            farol_alloc_fail_at(i);
            farol_tensor *out = ops[k](xs), *g[2] = {0};
            int rc = -1;
            if (out) {
                farol_tensor *go = farol_full(out->ndim, out->shape, 1.0, FAROL_F64);
                rc = go ? farol_grad(1, &out, &go, 2, xs, g) : -1;
                farol_release(go);
            }
            done = farol_alloc_count() < i;
            if (done && rc != 0) fail_msg("op %zu: %s", k, farol_last_error_1based());
            if (!done && out && rc == 0)
                fail_msg("op %zu: allocation %lld failed unreported", k, (long long)i);
            RELEASE_ALL(out, g[0], g[1]);
        }
        farol_alloc_fail_at(0);
        assert_true(done);
    }
    RELEASE_ALL(a, b, lab);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_embedding_fixture, tu_reset),
        cmocka_unit_test_setup(test_embedding_gradcheck, tu_reset),
        cmocka_unit_test_setup(test_embedding_errors, tu_reset),
        cmocka_unit_test_setup(test_dropout_fixture, tu_reset),
        cmocka_unit_test_setup(test_dropout_training, tu_reset),
        cmocka_unit_test_setup(test_dropout_gradcheck, tu_reset),
        cmocka_unit_test_setup(test_dropout_errors, tu_reset),
        cmocka_unit_test_setup(test_cross_entropy_fixture, tu_reset),
        cmocka_unit_test_setup(test_cross_entropy_gradcheck, tu_reset),
        cmocka_unit_test_setup(test_cross_entropy_large_logits, tu_reset),
        cmocka_unit_test_setup(test_cross_entropy_errors, tu_reset),
        cmocka_unit_test_setup(test_mse_loss_fixture, tu_reset),
        cmocka_unit_test_setup(test_mse_loss_gradcheck, tu_reset),
        cmocka_unit_test_setup(test_mse_loss_dtypes, tu_reset),
        cmocka_unit_test_setup(test_mse_loss_errors, tu_reset),
        cmocka_unit_test_setup(test_pad_fixture, tu_reset),
        cmocka_unit_test_setup(test_pad_gradcheck, tu_reset),
        cmocka_unit_test_setup(test_pad_values, tu_reset),
        cmocka_unit_test_setup(test_pad_errors, tu_reset),
        cmocka_unit_test_setup(test_nn_alloc_failures, tu_reset),
    };
    return tu_run(tests, argc, argv);
}
