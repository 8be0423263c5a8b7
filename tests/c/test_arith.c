/* Arithmetic: add sub mul div pow pow_scalar neg where compare masked_fill.
 * PyTorch fixtures, float64 gradient checks (broadcast, strided and 0-d
 * operands), dtype rules, strided = contiguous, errors, allocation failures. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERR_HAS(s) assert_non_null(strstr(farol_last_error_1based(), (s)))

enum { ADD, SUB, MUL, DIV, POW, POWS, NEG, WHERE };

typedef struct {
    int op;
    double s;        /* the number of a scalar variant, or pow_scalar's p */
    int side;        /* 0: two tensors; 1: tensor op s; 2: s op tensor; 3: x op x */
    bool transpose;  /* swap the last two dims of xs[0] first (a strided view) */
} op_ctx;

static farol_tensor *apply(int op, farol_tensor *a, farol_tensor *b)
{
    switch (op) {
    case ADD: return farol_add(a, b);
    case SUB: return farol_sub(a, b);
    case MUL: return farol_mul(a, b);
    case DIV: return farol_div(a, b);
    default: return farol_pow(a, b);
    }
}

/* xs: the op's tensors in order (where: cond, a, b) */
static farol_tensor *op_fn(void *vctx, farol_tensor **xs)
{
    op_ctx *c = vctx;
    farol_tensor *x0 = c->transpose ? farol_transpose(xs[0], -1, -2) : farol_retain(xs[0]);
    farol_tensor *out = NULL;
    if (!x0)
        return NULL;
    if (c->op == NEG) {
        out = farol_neg(x0);
    } else if (c->op == POWS) {
        out = farol_pow_scalar(x0, c->s);
    } else if (c->op == WHERE) {
        out = farol_where(x0, xs[1], xs[2]);
    } else if (c->side == 0) {
        out = apply(c->op, x0, xs[1]);
    } else if (c->side == 3) {
        out = apply(c->op, x0, x0);
    } else {
        farol_tensor *s = farol_scalar(c->s, FAROL_F64);
        out = c->side == 1 ? apply(c->op, x0, s) : apply(c->op, s, x0);
        farol_release(s);
    }
    farol_release(x0);
    return out;
}

static const char *const XY[] = {"x", "y"};

static void check_variants(const char *file, int n, const op_ctx *ctxs, const int *nin)
{
    farol_tensor_dict d = tu_fixture(file);
    for (int v = 0; v < n; v++) {
        char name[16];
        snprintf(name, sizeof name, "v%d", v + 1);
        tu_check_fixture(&d, name, op_fn, (void *)&ctxs[v], nin[v], XY);
    }
    farol_dict_free(&d);
}

static void test_add_fixture(void **state)
{
    (void)state;
    op_ctx c[] = {{.op = ADD}, {.op = ADD}, {.op = ADD}, {.op = ADD, .s = 2.5, .side = 1},
                  {.op = ADD, .s = 2.5, .side = 2}, {.op = ADD}};
    int nin[] = {2, 2, 2, 1, 1, 2};
    check_variants("ops/add.safetensors", 6, c, nin);
}

static void test_sub_fixture(void **state)
{
    (void)state;
    op_ctx c[] = {{.op = SUB}, {.op = SUB}, {.op = SUB, .s = 1.5, .side = 1},
                  {.op = SUB, .s = 1.5, .side = 2}, {.op = SUB}};
    int nin[] = {2, 2, 1, 1, 2};
    check_variants("ops/sub.safetensors", 5, c, nin);
}

static void test_mul_fixture(void **state)
{
    (void)state;
    op_ctx c[] = {{.op = MUL}, {.op = MUL}, {.op = MUL, .s = 3, .side = 1},
                  {.op = MUL, .s = -2, .side = 2}, {.op = MUL}};
    int nin[] = {2, 2, 1, 1, 2};
    check_variants("ops/mul.safetensors", 5, c, nin);
    /* v6: x * x, the same tensor on both sides */
    farol_tensor_dict d = tu_fixture("ops/mul.safetensors");
    op_ctx same = {.op = MUL, .side = 3};
    tu_check_fixture(&d, "v6", op_fn, &same, 1, XY);
    farol_dict_free(&d);
}

static void test_div_fixture(void **state)
{
    (void)state;
    op_ctx c[] = {{.op = DIV}, {.op = DIV}, {.op = DIV, .s = 4, .side = 1},
                  {.op = DIV, .s = 2, .side = 2}, {.op = DIV}};
    int nin[] = {2, 2, 1, 1, 2};
    check_variants("ops/div.safetensors", 5, c, nin);
}

static void test_neg_fixture(void **state)
{
    (void)state;
    op_ctx c[] = {{.op = NEG}, {.op = NEG}};
    int nin[] = {1, 1};
    check_variants("ops/neg.safetensors", 2, c, nin);
}

static void test_pow_fixture(void **state)
{
    (void)state;
    op_ctx c[] = {{.op = POWS, .s = 2},   {.op = POWS, .s = 3},  {.op = POWS, .s = 0.5},
                  {.op = POWS, .s = 2.5}, {.op = POWS, .s = -1}, {.op = POW},
                  {.op = POW},            {.op = POW, .s = 2, .side = 2}};
    int nin[] = {1, 1, 1, 1, 1, 2, 2, 1};
    check_variants("ops/pow.safetensors", 8, c, nin);
}

static void test_where_fixture(void **state)
{
    (void)state;
    farol_tensor_dict d = tu_fixture("ops/where.safetensors");
    const char *const names[] = {"cond", "a", "b"};
    op_ctx c = {.op = WHERE};
    tu_check_fixture(&d, "v1", op_fn, &c, 3, names);
    tu_check_fixture(&d, "v2", op_fn, &c, 3, names);
    farol_dict_free(&d);
}

/* ---- gradient checks ---- */

/* |values| moved to at least lo, keeping signs (away from poles and kinks) */
static void away_from_zero(farol_tensor *t, double lo)
{
    double *p = farol_data(t);
    for (int64_t i = 0; i < farol_numel(t); i++)
        p[i] = copysign(fabs(p[i]) + lo, p[i]);
}

static void positive(farol_tensor *t, double lo)
{
    double *p = farol_data(t);
    for (int64_t i = 0; i < farol_numel(t); i++)
        p[i] = fabs(p[i]) + lo;
}

static void gradcheck_binary(int op, bool pos_a, bool nonzero_b)
{
    static const char *names[] = {"add", "sub", "mul", "div", "pow"};
    char what[96];
    int64_t s34[] = {3, 4}, s4[] = {4}, s43[] = {4, 3}, s31[] = {3, 1}, s234[] = {2, 3, 4};
    struct {
        int na;
        int64_t *a;
        int nb;
        int64_t *b;
        bool transpose;
        const char *desc;
    } cases[] = {
        {2, s34, 2, s34, false, "same shape"},
        {3, s234, 1, s4, false, "broadcast (2, 3, 4) with (4)"},
        {2, s43, 2, s31, true, "transposed (4, 3) with (3, 1)"},
        {2, s34, 0, NULL, false, "0-d operand that requires grad"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        farol_tensor *a = tu_randn64(cases[k].na, cases[k].a, 10 + k);
        farol_tensor *b = tu_randn64(cases[k].nb, cases[k].b, 20 + k);
        if (pos_a)
            positive(a, 0.5);
        if (nonzero_b)
            away_from_zero(b, 0.5);
        farol_tensor *xs[] = {a, b};
        op_ctx c = {.op = op, .transpose = cases[k].transpose};
        snprintf(what, sizeof what, "%s %s", names[op], cases[k].desc);
        tu_gradcheck(what, op_fn, &c, 2, xs);
        /* and with the operands swapped (b op a) where shapes allow */
        if (!cases[k].transpose && !pos_a && !nonzero_b) {
            farol_tensor *ys[] = {b, a};
            op_ctx cs = {.op = op};
            snprintf(what, sizeof what, "%s %s, swapped", names[op], cases[k].desc);
            tu_gradcheck(what, op_fn, &cs, 2, ys);
        }
        farol_release(a);
        farol_release(b);
    }
}

static void test_add_sub_mul_gradcheck(void **state)
{
    (void)state;
    gradcheck_binary(ADD, false, false);
    gradcheck_binary(SUB, false, false);
    gradcheck_binary(MUL, false, false);
}

static void test_div_pow_gradcheck(void **state)
{
    (void)state;
    gradcheck_binary(DIV, false, true);
    gradcheck_binary(POW, true, false);
}

static void test_pow_scalar_neg_gradcheck(void **state)
{
    (void)state;
    int64_t s34[] = {3, 4}, s235[] = {2, 3, 5};
    farol_tensor *x = tu_randn64(2, s34, 1), *y = tu_randn64(3, s235, 2);
    away_from_zero(x, 0.3);
    away_from_zero(y, 0.3);
    farol_tensor *xs[] = {x}, *ys[] = {y};
    /* integer exponents with negative bases, on plain and transposed input */
    const double ints[] = {2, 3, -1, -2, 1, 4};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        op_ctx c = {.op = POWS, .s = ints[k]}, ct = {.op = POWS, .s = ints[k], .transpose = true};
        tu_gradcheck("pow_scalar integer p", op_fn, &c, 1, xs);
        tu_gradcheck("pow_scalar integer p, transposed", op_fn, &ct, 1, ys);
    }
    positive(x, 0.2);
    const double frac[] = {0.5, -0.5, 2.5, 1.7};
    for (size_t k = 0; k < sizeof frac / sizeof frac[0]; k++) {
        op_ctx c = {.op = POWS, .s = frac[k]};
        tu_gradcheck("pow_scalar fractional p", op_fn, &c, 1, xs);
    }
    op_ctx n = {.op = NEG}, nt = {.op = NEG, .transpose = true};
    tu_gradcheck("neg", op_fn, &n, 1, xs);
    tu_gradcheck("neg transposed", op_fn, &nt, 1, ys);
    farol_release(x);
    farol_release(y);
}

static void test_where_gradcheck(void **state)
{
    (void)state;
    int64_t s31[] = {3, 1}, s34[] = {3, 4}, s4[] = {4}, s43[] = {4, 3};
    const double cv[] = {1, 0, 2.5};
    farol_tensor *cond = tu_tensor(2, s31, cv);
    farol_tensor *a = tu_randn64(2, s34, 1), *b = tu_randn64(1, s4, 2);
    farol_tensor *xs[] = {cond, a, b};
    op_ctx c = {.op = WHERE};
    tu_gradcheck("where (3, 1) (3, 4) (4)", op_fn, &c, 3, xs);
    /* a transposed float mask over 0-d b */
    const double mv[] = {1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1};
    farol_tensor *m = tu_tensor(2, s43, mv), *z = tu_randn64(0, NULL, 3);
    farol_tensor *ys[] = {m, a, z};
    op_ctx ct = {.op = WHERE, .transpose = true};
    tu_gradcheck("where transposed mask, 0-d b", op_fn, &ct, 3, ys);
    farol_tensor *all[] = {cond, a, b, m, z};
    for (int k = 0; k < 5; k++)
        farol_release(all[k]);
}

/* ---- masked_fill and compare ---- */

static farol_tensor *masked_fill_fn(void *ctx, farol_tensor **xs)
{
    return farol_masked_fill(xs[0], xs[1], *(double *)ctx);
}

static void test_masked_fill(void **state)
{
    (void)state;
    int64_t s23[] = {2, 3}, s13[] = {1, 3};
    const double xv[] = {1, 2, 3, 4, 5, 6}, mv[] = {0, 1, 0};
    farol_tensor *x = tu_tensor(2, s23, xv), *mask = tu_tensor(2, s13, mv);
    assert_int_equal(farol_set_requires_grad(x, true), 0);
    double v = -INFINITY;
    farol_tensor *out = farol_masked_fill(x, mask, v);
    assert_non_null(out);
    const double ev[] = {1, -INFINITY, 3, 4, -INFINITY, 6};
    farol_tensor *exp = tu_tensor(2, s23, ev);
    tu_assert_close("masked_fill -inf", out, exp, 0, 0);
    /* gradient: G where kept, 0 where filled */
    const double gv[] = {1, 2, 3, 4, 5, 6}, egv[] = {1, 0, 3, 4, 0, 6};
    farol_tensor *g = tu_tensor(2, s23, gv), *eg = tu_tensor(2, s23, egv), *gx = NULL;
    assert_int_equal(farol_grad(1, &out, &g, 1, &x, &gx), 0);
    tu_assert_close("masked_fill grad", gx, eg, 0, 0);
    farol_tensor *xs[] = {x, mask};
    double fill = 0.75;
    tu_gradcheck("masked_fill", masked_fill_fn, &fill, 2, xs);
    /* an int64 mask and an int64 tensor */
    int64_t im[] = {1, 0, 0, 0, 0, 7}, xi[] = {1, 2, 3, 4, 5, 6};
    farol_tensor *mi = farol_from_data(2, s23, FAROL_I64, im);
    farol_tensor *ti = farol_from_data(2, s23, FAROL_I64, xi);
    farol_tensor *oi = farol_masked_fill(ti, mi, -9);
    assert_non_null(oi);
    assert_int_equal(oi->dtype, FAROL_I64);
    const double eiv[] = {-9, 2, 3, 4, 5, -9};
    farol_tensor *ei = tu_tensor(2, s23, eiv);
    tu_assert_close("masked_fill int64", oi, ei, 0, 0);
    /* errors */
    int64_t s2[] = {2};
    farol_tensor *bad = farol_zeros(1, s2, FAROL_F64);
    assert_null(farol_masked_fill(x, bad, 0));
    ERR_HAS("masked_fill:");
    int64_t s223[] = {2, 2, 3};
    farol_tensor *big = farol_zeros(3, s223, FAROL_F64);
    assert_null(farol_masked_fill(x, big, 0));
    ERR_HAS("does not broadcast to x of shape [2, 3]");
    assert_null(farol_masked_fill(ti, mi, -INFINITY));
    ERR_HAS("does not fit an int64 tensor");
    farol_tensor *all[] = {x, mask, out, exp, g, eg, gx, mi, ti, oi, ei, bad, big};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        farol_release(all[k]);
}

static void test_compare(void **state)
{
    (void)state;
    int64_t s23[] = {2, 3}, s3[] = {3};
    const double av[] = {1, 2, 3, 4, NAN, 6}, bv[] = {2, 2, 5};
    farol_tensor *a = tu_tensor(2, s23, av), *b = tu_tensor(1, s3, bv);
    assert_int_equal(farol_set_requires_grad(a, true), 0);
    const double expect[6][6] = {
        {0, 1, 0, 0, 0, 0}, /* EQ */
        {1, 0, 1, 1, 1, 1}, /* NE: NaN != anything */
        {1, 0, 1, 0, 0, 0}, /* LT */
        {1, 1, 1, 0, 0, 0}, /* LE */
        {0, 0, 0, 1, 0, 1}, /* GT */
        {0, 1, 0, 1, 0, 1}, /* GE */
    };
    for (int op = FAROL_EQ; op <= FAROL_GE; op++) {
        farol_tensor *m = farol_compare(a, b, op);
        assert_non_null(m);
        assert_int_equal(m->dtype, FAROL_F64);
        assert_false(m->requires_grad); /* not recorded */
        assert_null(m->node);
        farol_tensor *e = tu_tensor(2, s23, expect[op]);
        tu_assert_close("compare", m, e, 0, 0);
        farol_release(m);
        farol_release(e);
    }
    /* float32 against a float64 number stays float32; int64 pairs give float32 */
    farol_tensor *f = farol_full(2, s23, 1.5, FAROL_F32), *two = farol_scalar(1.5, FAROL_F64);
    farol_tensor *m = farol_compare(f, two, FAROL_GE);
    assert_non_null(m);
    assert_int_equal(m->dtype, FAROL_F32);
    assert_int_equal(farol_get_flat(m, 5), 1);
    int64_t iv[] = {-3, 0, 9223372036854775807LL}, jv[] = {-3, 1, 9223372036854775806LL};
    farol_tensor *i1 = farol_from_data(1, s3, FAROL_I64, iv);
    farol_tensor *i2 = farol_from_data(1, s3, FAROL_I64, jv);
    farol_tensor *mi = farol_compare(i1, i2, FAROL_GT);
    assert_non_null(mi);
    assert_int_equal(mi->dtype, FAROL_F32);
    const double eiv[] = {0, 0, 1}; /* exact int64 comparison, not through float */
    farol_tensor *ei = tu_tensor(1, s3, eiv);
    tu_assert_close("compare int64", mi, ei, 0, 0);
    /* errors */
    int64_t s4[] = {4};
    farol_tensor *bad = farol_zeros(1, s4, FAROL_F64);
    assert_null(farol_compare(a, bad, FAROL_EQ));
    ERR_HAS("farol: compare: shapes [2, 3] and [4] cannot be broadcast together");
    assert_null(farol_compare(a, b, (farol_cmp)17));
    ERR_HAS("unknown comparison");
    farol_tensor *all[] = {a, b, f, two, m, i1, i2, mi, ei, bad};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        farol_release(all[k]);
}

/* ---- dtypes ---- */

static void test_int64_arith(void **state)
{
    (void)state;
    int64_t s3[] = {3};
    int64_t av[] = {7, -7, INT64_MAX}, bv[] = {2, 2, 1};
    farol_tensor *a = farol_from_data(1, s3, FAROL_I64, av);
    farol_tensor *b = farol_from_data(1, s3, FAROL_I64, bv);
    farol_tensor *sum = farol_add(a, b), *dif = farol_sub(a, b), *prod = farol_mul(a, b);
    farol_tensor *quo = farol_div(a, b), *neg = farol_neg(a);
    assert_non_null(sum);
    assert_non_null(dif);
    assert_non_null(prod);
    assert_non_null(quo);
    assert_non_null(neg);
    assert_int_equal(sum->dtype, FAROL_I64);
    const int64_t *ps = farol_data(sum), *pd = farol_data(dif), *pp = farol_data(prod);
    assert_int_equal(ps[0], 9);
    assert_int_equal(ps[2], INT64_MIN); /* wraps as PyTorch, no undefined behaviour */
    assert_int_equal(pd[1], -9);
    assert_int_equal(pp[1], -14);
    assert_int_equal(((const int64_t *)farol_data(neg))[0], -7);
    /* int64 / int64 is true division in float32 */
    assert_int_equal(quo->dtype, FAROL_F32);
    assert_float_equal(farol_get_flat(quo, 1), -3.5, 0);
    /* int64 with a float number promotes; pow of int64 is refused */
    farol_tensor *half = farol_scalar(0.5, FAROL_F32), *mixed = farol_mul(a, half);
    assert_non_null(mixed);
    assert_int_equal(mixed->dtype, FAROL_F32);
    assert_float_equal(farol_get_flat(mixed, 0), 3.5, 0);
    assert_null(farol_pow(a, b));
    ERR_HAS("farol: pow: int64 operands are not supported");
    assert_null(farol_pow_scalar(a, 2));
    ERR_HAS("farol: pow: x must be a floating tensor");
    farol_tensor *all[] = {a, b, sum, dif, prod, quo, neg, half, mixed};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        farol_release(all[k]);
}

static void test_mixed_dtypes(void **state)
{
    (void)state;
    int64_t s23[] = {2, 3};
    farol_manual_seed(3);
    farol_tensor *x32 = farol_randn(2, s23, FAROL_F32), *y64 = farol_randn(2, s23, FAROL_F64);
    farol_tensor *s64 = farol_scalar(2.5, FAROL_F64);
    assert_int_equal(farol_set_requires_grad(x32, true), 0);
    assert_int_equal(farol_set_requires_grad(y64, true), 0);
    assert_int_equal(farol_set_requires_grad(s64, true), 0);
    /* float32 with float64 tensor -> float64; with a float64 number -> float32 */
    farol_tensor *p = farol_mul(x32, y64), *q = farol_mul(x32, s64);
    assert_non_null(p);
    assert_non_null(q);
    assert_int_equal(p->dtype, FAROL_F64);
    assert_int_equal(q->dtype, FAROL_F32);
    for (int64_t i = 0; i < 6; i++) {
        double xv = farol_get_flat(x32, i);
        assert_float_equal(farol_get_flat(p, i), xv * farol_get_flat(y64, i), 1e-12);
        assert_float_equal(farol_get_flat(q, i), (float)(xv * 2.5), 0);
    }
    /* gradients come back in each input's own dtype */
    farol_tensor *in[] = {x32, y64}, *g[2] = {0};
    farol_tensor *w = farol_full(2, s23, 1, FAROL_F64);
    assert_int_equal(farol_grad(1, &p, &w, 2, in, g), 0);
    assert_int_equal(g[0]->dtype, FAROL_F32);
    assert_int_equal(g[1]->dtype, FAROL_F64);
    farol_tensor *w32 = farol_full(2, s23, 1, FAROL_F32), *in2[] = {x32, s64}, *h[2] = {0};
    assert_int_equal(farol_grad(1, &q, &w32, 2, in2, h), 0);
    assert_int_equal(h[1]->dtype, FAROL_F64);
    assert_int_equal(h[1]->ndim, 0);
    double sx = 0;
    for (int64_t i = 0; i < 6; i++)
        sx += farol_get_flat(x32, i);
    assert_float_equal(farol_item(h[1]), sx, 1e-5);
    farol_tensor *all[] = {x32, y64, s64, p, q, g[0], g[1], w, w32, h[0], h[1]};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        farol_release(all[k]);
}

/* ---- strided inputs and the fast paths against a naive reference ---- */

static double naive(int op, double x, double y)
{
    switch (op) {
    case ADD: return x + y;
    case SUB: return x - y;
    case MUL: return x * y;
    case DIV: return x / y;
    default: return pow(x, y);
    }
}

/* op on a transposed (strided) view equals op on its contiguous copy, and
 * both match a naive double loop; big enough for the parallel paths */
static void test_strided_matches_contiguous(void **state)
{
    (void)state;
    const farol_dtype dts[] = {FAROL_F32, FAROL_F64};
    int64_t sa[] = {300, 200}, sb[] = {300, 1};
    for (int d = 0; d < 2; d++) {
        farol_manual_seed(7);
        farol_tensor *base = farol_rand(2, sa, dts[d]); /* (300, 200), values in [0, 1) */
        farol_tensor *b = farol_rand(2, sb, dts[d]);
        farol_tensor *bt = farol_transpose(base, 0, 1);  /* (200, 300) strided */
        farol_tensor *bc = farol_contiguous(bt);         /* same values, contiguous */
        farol_tensor *bb = farol_transpose(b, 0, 1);     /* (1, 300) */
        for (int op = ADD; op <= POW; op++) {
            farol_tensor *o1 = apply(op, bt, bb), *o2 = apply(op, bc, bb);
            assert_non_null(o1);
            assert_non_null(o2);
            tu_assert_close("strided vs contiguous", o1, o2, 0, 0);
            for (int64_t i = 0; i < farol_numel(o1); i += 997) {
                double x = farol_get_flat(bc, i), y = farol_get_flat(bb, i % 300);
                double e = naive(op, x, y);
                assert_true(fabs(farol_get_flat(o1, i) - e) <= 1e-6 * (1 + fabs(e)));
            }
            farol_release(o1);
            farol_release(o2);
        }
        /* a number on either side: the scalar fast path */
        farol_tensor *s = farol_scalar(0.25, FAROL_F64);
        farol_tensor *o1 = farol_sub(s, bt), *o2 = farol_sub(s, bc), *o3 = farol_pow_scalar(bt, 3);
        assert_non_null(o1);
        assert_non_null(o2);
        assert_non_null(o3);
        assert_int_equal(o1->dtype, dts[d]);
        tu_assert_close("number - strided", o1, o2, 0, 0);
        for (int64_t i = 0; i < farol_numel(o1); i += 991) {
            double x = farol_get_flat(bc, i);
            assert_true(fabs(farol_get_flat(o1, i) - (0.25 - x)) <= 1e-6);
            assert_true(fabs(farol_get_flat(o3, i) - x * x * x) <= 1e-6);
        }
        /* where and neg on the strided view */
        farol_tensor *w1 = farol_where(bt, bt, s), *w2 = farol_where(bc, bc, s);
        farol_tensor *n1 = farol_neg(bt), *n2 = farol_neg(bc);
        tu_assert_close("where strided", w1, w2, 0, 0);
        tu_assert_close("neg strided", n1, n2, 0, 0);
        farol_tensor *all[] = {base, b, bt, bc, bb, s, o1, o2, o3, w1, w2, n1, n2};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
            farol_release(all[k]);
    }
}

static void test_empty_and_scalars(void **state)
{
    (void)state;
    int64_t s03[] = {0, 3}, s3[] = {3};
    farol_tensor *e = farol_zeros(2, s03, FAROL_F32), *v = farol_zeros(1, s3, FAROL_F32);
    farol_tensor *o = farol_add(e, v);
    assert_non_null(o);
    assert_int_equal(o->ndim, 2);
    assert_int_equal(o->shape[0], 0);
    farol_tensor *a = farol_scalar(3, FAROL_F64), *b = farol_scalar(4, FAROL_F64);
    farol_tensor *two = farol_scalar(2, FAROL_F64);
    farol_tensor *p = farol_pow(a, two);
    farol_tensor *q = farol_div(a, b);
    assert_int_equal(p->ndim, 0);
    assert_float_equal(farol_item(p), 9, 0);
    assert_float_equal(farol_item(q), 0.75, 0);
    farol_tensor *all[] = {e, v, o, a, b, p, q, two};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        farol_release(all[k]);
}

/* pow's exponent gradient at base 0 and pow_scalar at p = 0 follow PyTorch */
static void test_pow_edges(void **state)
{
    (void)state;
    int64_t s3[] = {3};
    const double xv[] = {0, 0, 2}, yv[] = {2, 0, 3};
    farol_tensor *x = tu_tensor(1, s3, xv), *y = tu_tensor(1, s3, yv);
    assert_int_equal(farol_set_requires_grad(x, true), 0);
    assert_int_equal(farol_set_requires_grad(y, true), 0);
    farol_tensor *o = farol_pow(x, y), *in[] = {x, y}, *g[2] = {0};
    farol_tensor *ones = farol_full(1, s3, 1, FAROL_F64);
    assert_int_equal(farol_grad(1, &o, &ones, 2, in, g), 0);
    const double gx[] = {0, 0, 12}, gy[] = {0, 0, 8 * log(2.0)};
    farol_tensor *ex = tu_tensor(1, s3, gx), *ey = tu_tensor(1, s3, gy);
    tu_assert_close("pow grad base", g[0], ex, 1e-15, 0);
    tu_assert_close("pow grad exponent at base 0", g[1], ey, 1e-15, 0);
    farol_tensor *z = farol_pow_scalar(x, 0), *gz = NULL;
    assert_float_equal(farol_get_flat(z, 0), 1, 0);
    assert_int_equal(farol_grad(1, &z, &ones, 1, &x, &gz), 0);
    for (int i = 0; i < 3; i++)
        assert_float_equal(farol_get_flat(gz, i), 0, 0);
    farol_tensor *all[] = {x, y, o, g[0], g[1], ones, ex, ey, z, gz};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        farol_release(all[k]);
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    int64_t s34[] = {3, 4}, s5[] = {5};
    farol_tensor *a = farol_zeros(2, s34, FAROL_F32), *b = farol_zeros(1, s5, FAROL_F32);
    assert_null(farol_add(a, b));
    ERR_HAS("farol: add: shapes [3, 4] and [5] cannot be broadcast together");
    assert_null(farol_sub(a, b));
    ERR_HAS("farol: sub: shapes");
    assert_null(farol_mul(b, a));
    ERR_HAS("farol: mul: shapes [5] and [3, 4]");
    assert_null(farol_div(a, b));
    ERR_HAS("farol: div:");
    assert_null(farol_pow(a, b));
    ERR_HAS("farol: pow:");
    assert_null(farol_where(a, a, b));
    ERR_HAS("farol: where: shapes [3, 4] and [5]");
    assert_null(farol_add(a, NULL));
    ERR_HAS("farol: add: argument 2 is NULL");
    assert_null(farol_neg(NULL));
    ERR_HAS("farol: neg:");
    /* a tensor saved for backward and then modified in place */
    farol_tensor *x = farol_full(2, s34, 2, FAROL_F32), *w = farol_full(2, s34, 3, FAROL_F32);
    assert_int_equal(farol_set_requires_grad(x, true), 0);
    farol_tensor *y = farol_mul(x, w), *gx = NULL, *g = farol_full(2, s34, 1, FAROL_F32);
    assert_int_equal(farol_fill_(w, 5), 0);
    assert_int_equal(farol_grad(1, &y, &g, 1, &x, &gx), -1);
    ERR_HAS("modified in place");
    farol_tensor *all[] = {a, b, x, w, y, g, gx};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        farol_release(all[k]);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    int64_t s234[] = {2, 3, 4}, s4[] = {4};
    farol_tensor *x = tu_randn64(3, s234, 1), *y = tu_randn64(1, s4, 2);
    positive(x, 0.5);
    farol_tensor *y32 = farol_randn(1, s4, FAROL_F32); /* a mixed-dtype operand to convert */
    farol_manual_seed(6);
    farol_tensor *g = farol_randn(3, s234, FAROL_F64);
    for (int op = 0; op < 9; op++) {
        bool done = false;
        for (int64_t n = 1; !done && n < 200; n++) {
            farol_alloc_fail_at(n);
            farol_tensor *out;
            switch (op) {
            case 0: out = farol_add(x, y32); break;
            case 1: out = farol_sub(y, x); break;
            case 2: out = farol_mul(x, y); break;
            case 3: out = farol_div(x, y); break;
            case 4: out = farol_pow(x, y); break;
            case 5: out = farol_pow_scalar(x, 2.5); break;
            case 6: out = farol_neg(x); break;
            case 7: out = farol_where(y32, x, y); break;
            default: out = farol_masked_fill(x, y32, 1); break;
            }
            int rc = -1;
            farol_tensor *in[] = {x, y}, *r[2] = {0};
            if (out)
                rc = farol_grad(1, &out, &g, 2, in, r);
            done = farol_alloc_count() < n;
            if (done)
                assert_int_equal(rc, 0);
            else
                assert_true(!out || rc < 0);
            farol_release(r[0]);
            farol_release(r[1]);
            farol_release(out);
        }
        farol_alloc_fail_at(0);
        assert_true(done);
    }
    farol_release(x);
    farol_release(y);
    farol_release(y32);
    farol_release(g);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_fixture),
        cmocka_unit_test(test_sub_fixture),
        cmocka_unit_test(test_mul_fixture),
        cmocka_unit_test(test_div_fixture),
        cmocka_unit_test(test_neg_fixture),
        cmocka_unit_test(test_pow_fixture),
        cmocka_unit_test(test_where_fixture),
        cmocka_unit_test(test_add_sub_mul_gradcheck),
        cmocka_unit_test(test_div_pow_gradcheck),
        cmocka_unit_test(test_pow_scalar_neg_gradcheck),
        cmocka_unit_test(test_where_gradcheck),
        cmocka_unit_test(test_masked_fill),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_int64_arith),
        cmocka_unit_test(test_mixed_dtypes),
        cmocka_unit_test(test_strided_matches_contiguous),
        cmocka_unit_test(test_empty_and_scalars),
        cmocka_unit_test(test_pow_edges),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_alloc_failures),
    };
    return tu_run(tests, argc, argv);
}
