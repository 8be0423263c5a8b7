/* Pointwise functions: every farol_unary op, leaky_relu, elu, clamp.
 * PyTorch fixtures, float64 gradient checks off the kinks, PyTorch's values
 * at the kinks, float32 against a naive float64 reference (big enough for
 * the parallel path), strided = contiguous, errors, allocation failures. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERR_HAS(s) assert_non_null(strstr(farol_last_error(), (s)))

/* ops after the unary ones */
enum { LEAKY = FAROL_UNARY_COUNT, ELU, CLAMP, N_OPS };

typedef struct {
    int op;
    double p0, p1;   /* slope, alpha, or lo and hi */
    bool transpose;  /* swap the last two dims first (a strided view) */
} pw_ctx;

static farol_tensor *pw_apply(const pw_ctx *c, farol_tensor *x)
{
    switch (c->op) {
    case LEAKY: return farol_leaky_relu(x, c->p0);
    case ELU: return farol_elu(x, c->p0);
    case CLAMP: return farol_clamp(x, c->p0, c->p1);
    default: return farol_unary(x, (farol_unary_op)c->op);
    }
}

static farol_tensor *pw_fn(void *vctx, farol_tensor **xs)
{
    pw_ctx *c = vctx;
    farol_tensor *x = c->transpose ? farol_transpose(xs[0], -1, -2) : farol_retain(xs[0]);
    farol_tensor *out = x ? pw_apply(c, x) : NULL;
    farol_release(x);
    return out;
}

static const char *const X[] = {"x"};

/* every variant of ops/<file>.safetensors with the same op */
static void check_file(const char *file, const pw_ctx *ctxs, int nvar)
{
    char path[96], name[16];
    snprintf(path, sizeof path, "ops/%s.safetensors", file);
    farol_tensor_dict d = tu_fixture(path);
    const char *variants = farol_dict_meta(&d, "variants");
    assert_non_null(variants);
    int count = 1;
    for (const char *s = variants; *s; s++)
        count += *s == ',';
    assert_int_equal(count, nvar); /* every variant of the file is checked */
    for (int v = 0; v < nvar; v++) {
        snprintf(name, sizeof name, "v%d", v + 1);
        tu_check_fixture(&d, name, pw_fn, (void *)&ctxs[v], 1, X);
    }
    farol_dict_free(&d);
}

static void test_unary_fixtures(void **state)
{
    (void)state;
    static const struct { const char *file; farol_unary_op op; int nvar; } files[] = {
        {"abs", FAROL_ABS, 3},         {"exp", FAROL_EXP, 2},   {"log", FAROL_LOG, 2},
        {"sqrt", FAROL_SQRT, 2},       {"rsqrt", FAROL_RSQRT, 2}, {"sin", FAROL_SIN, 2},
        {"cos", FAROL_COS, 2},         {"tanh", FAROL_TANH, 2}, {"sigmoid", FAROL_SIGMOID, 3},
        {"relu", FAROL_RELU, 3},       {"gelu", FAROL_GELU, 2}, {"silu", FAROL_SILU, 2},
        {"softplus", FAROL_SOFTPLUS, 3}, {"sign", FAROL_SIGN, 3},
    };
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        pw_ctx c[3] = {{.op = files[k].op}, {.op = files[k].op}, {.op = files[k].op}};
        check_file(files[k].file, c, files[k].nvar);
    }
}

static void test_param_fixtures(void **state)
{
    (void)state;
    pw_ctx leaky[] = {{.op = LEAKY, .p0 = 0.2}, {.op = LEAKY, .p0 = 0.01},
                      {.op = LEAKY, .p0 = 0.2}};
    check_file("leaky_relu", leaky, 3);
    pw_ctx elu[] = {{.op = ELU, .p0 = 1}, {.op = ELU, .p0 = 1}};
    check_file("elu", elu, 2);
    pw_ctx clamp[] = {{.op = CLAMP, .p0 = -0.5, .p1 = 0.8},
                      {.op = CLAMP, .p0 = -1, .p1 = 1},
                      {.op = CLAMP, .p0 = -0.5, .p1 = 0.5}};
    check_file("clamp", clamp, 3);
}

/* ---- gradient checks ---- */

/* moves values off the op's kinks and out of its domain's edge */
static void prepare(int op, farol_tensor *t)
{
    double *p = farol_data(t);
    for (int64_t i = 0; i < farol_numel(t); i++) {
        double v = p[i];
        switch (op) {
        case FAROL_LOG: case FAROL_SQRT: case FAROL_RSQRT:
            p[i] = fabs(v) + 0.3;
            break;
        case FAROL_ABS: case FAROL_RELU: case FAROL_SIGN: case LEAKY: case ELU:
            p[i] = copysign(fabs(v) + 0.05, v);
            break;
        case CLAMP: /* bounds -0.5, 0.8: keep 0.05 away from both */
            if (fabs(v + 0.5) < 0.05 || fabs(v - 0.8) < 0.05)
                p[i] = v + 0.1;
            break;
        case FAROL_SOFTPLUS: /* both sides of the threshold 20 */
            if (i % 3 == 0)
                p[i] = 21 + v * v;
            break;
        default:
            break;
        }
    }
}

static void test_gradcheck_all(void **state)
{
    (void)state;
    int64_t s34[] = {3, 4}, s253[] = {2, 5, 3};
    char what[96];
    for (int op = 0; op < N_OPS; op++) {
        pw_ctx c = {.op = op, .p0 = 0.2}, ct = {.op = op, .p0 = 0.2, .transpose = true};
        if (op == ELU)
            c.p0 = ct.p0 = 1.3;
        if (op == CLAMP)
            c.p0 = ct.p0 = -0.5, c.p1 = ct.p1 = 0.8;
        farol_tensor *x = tu_randn64(2, s34, 100 + op), *y = tu_randn64(3, s253, 200 + op);
        prepare(op, x);
        prepare(op, y);
        farol_tensor *xs[] = {x}, *ys[] = {y};
        const char *name = op < FAROL_UNARY_COUNT ? farol_unary_name(op)
                           : op == LEAKY          ? "leaky_relu"
                           : op == ELU            ? "elu"
                                                  : "clamp";
        snprintf(what, sizeof what, "%s (3, 4)", name);
        tu_gradcheck(what, pw_fn, &c, 1, xs);
        snprintf(what, sizeof what, "%s transposed (2, 5, 3)", name);
        tu_gradcheck(what, pw_fn, &ct, 1, ys);
        farol_release(x);
        farol_release(y);
    }
}

/* ---- PyTorch's conventions at the kinks ---- */

/* f(x) and d f/dx (grad_out 1) at the given points, against expectations */
static void check_points(const pw_ctx *c, int n, const double *x, const double *val,
                         const double *grad, const char *what)
{
    int64_t s = n;
    farol_tensor *t = tu_tensor(1, &s, x);
    assert_int_equal(farol_set_requires_grad(t, true), 0);
    farol_tensor *out = pw_apply(c, t), *g = NULL;
    assert_non_null(out);
    farol_tensor *ones = farol_full(1, &s, 1, FAROL_F64);
    assert_int_equal(farol_grad(1, &out, &ones, 1, &t, &g), 0);
    farol_tensor *ev = tu_tensor(1, &s, val), *eg = tu_tensor(1, &s, grad);
    char w[96];
    snprintf(w, sizeof w, "%s value", what);
    tu_assert_close(w, out, ev, 1e-15, 0);
    snprintf(w, sizeof w, "%s gradient", what);
    tu_assert_close(w, g, eg, 1e-15, 0);
    farol_tensor *all[] = {t, out, g, ones, ev, eg};
    for (int k = 0; k < 6; k++)
        farol_release(all[k]);
}

static void test_kinks(void **state)
{
    (void)state;
    const double x[] = {-1, 0, 2};
    pw_ctx relu = {.op = FAROL_RELU}, abs_ = {.op = FAROL_ABS}, sign = {.op = FAROL_SIGN};
    check_points(&relu, 3, x, (double[]){0, 0, 2}, (double[]){0, 0, 1}, "relu'(0) = 0");
    check_points(&abs_, 3, x, (double[]){1, 0, 2}, (double[]){-1, 0, 1}, "abs'(0) = 0");
    check_points(&sign, 3, x, (double[]){-1, 0, 1}, (double[]){0, 0, 0}, "sign");
    pw_ctx leaky = {.op = LEAKY, .p0 = 0.2};
    check_points(&leaky, 3, x, (double[]){-0.2, 0, 2}, (double[]){0.2, 0.2, 1},
                 "leaky_relu at 0 uses the slope");
    const double cx[] = {-0.7, -0.5, 0.1, 0.5, 0.9};
    pw_ctx clamp = {.op = CLAMP, .p0 = -0.5, .p1 = 0.5};
    check_points(&clamp, 5, cx, (double[]){-0.5, -0.5, 0.1, 0.5, 0.5},
                 (double[]){0, 1, 1, 1, 0}, "clamp inclusive bounds");
    pw_ctx lower = {.op = CLAMP, .p0 = -0.5, .p1 = INFINITY};
    pw_ctx upper = {.op = CLAMP, .p0 = -INFINITY, .p1 = 0.5};
    check_points(&lower, 5, cx, (double[]){-0.5, -0.5, 0.1, 0.5, 0.9},
                 (double[]){0, 1, 1, 1, 1}, "clamp lower bound only");
    check_points(&upper, 5, cx, (double[]){-0.7, -0.5, 0.1, 0.5, 0.5},
                 (double[]){1, 1, 1, 1, 0}, "clamp upper bound only");
    /* softplus above the threshold 20: x itself and gradient exactly 1 */
    const double sx[] = {20.5, 30, 1000};
    pw_ctx softplus = {.op = FAROL_SOFTPLUS};
    check_points(&softplus, 3, sx, sx, (double[]){1, 1, 1}, "softplus threshold");
    /* sigmoid and silu at large |x|: no overflow, no NaN */
    const double big[] = {-1000, -50, 50, 1000};
    /* the gradient comes from the output as PyTorch's s (1 - s): 0 once s
     * rounds to 1 (x = 50), tiny but exact on the negative side */
    pw_ctx sigmoid = {.op = FAROL_SIGMOID};
    const double sm = exp(-50) / (1 + exp(-50));
    check_points(&sigmoid, 4, big, (double[]){0, sm, 1 / (1 + exp(-50)), 1},
                 (double[]){0, (1 - sm) * sm, 0, 0}, "sigmoid large |x|");
    pw_ctx silu = {.op = FAROL_SILU};
    int64_t s4 = 4;
    farol_tensor *t = tu_tensor(1, &s4, big), *o = pw_apply(&silu, t);
    for (int i = 0; i < 4; i++)
        assert_false(isnan(farol_get_flat(o, i)));
    farol_release(o);
    /* float32 too */
    farol_tensor *t32 = farol_to_dtype(t, FAROL_F32);
    o = pw_apply(&sigmoid, t32);
    assert_float_equal(farol_get_flat(o, 0), 0, 0);
    assert_float_equal(farol_get_flat(o, 3), 1, 0);
    farol_release(o);
    /* NaN passes through relu and clamp (as PyTorch); sign(NaN) = 0 */
    const double nx[] = {NAN};
    int64_t s1 = 1;
    farol_tensor *tn = tu_tensor(1, &s1, nx);
    pw_ctx ops[] = {relu, clamp, sign};
    for (int k = 0; k < 3; k++) {
        o = pw_apply(&ops[k], tn);
        assert_true(k == 2 ? farol_get_flat(o, 0) == 0 : isnan(farol_get_flat(o, 0)));
        farol_release(o);
    }
    farol_release(t);
    farol_release(t32);
    farol_release(tn);
}

/* ---- float32 against float64, strided against contiguous ---- */

/* float32 forward and backward agree with the float64 ones; the size
 * (66000 elements) takes the parallel path */
static void test_f32_matches_f64(void **state)
{
    (void)state;
    int64_t s[] = {220, 300};
    for (int op = 0; op < N_OPS; op++) {
        farol_manual_seed(40 + op);
        farol_tensor *x64 = farol_randn(2, s, FAROL_F64);
        prepare(op, x64);
        farol_tensor *x32 = farol_to_dtype(x64, FAROL_F32);
        /* compare on exactly the float32 inputs */
        farol_tensor *xr = farol_to_dtype(x32, FAROL_F64);
        assert_int_equal(farol_set_requires_grad(x32, true), 0);
        assert_int_equal(farol_set_requires_grad(xr, true), 0);
        pw_ctx c = {.op = op, .p0 = op == ELU ? 1.0 : 0.1};
        if (op == CLAMP)
            c.p0 = -0.5, c.p1 = 0.8;
        farol_tensor *o32 = pw_apply(&c, x32), *o64 = pw_apply(&c, xr);
        assert_non_null(o32);
        assert_int_equal(o32->dtype, FAROL_F32);
        farol_manual_seed(9);
        farol_tensor *g64 = farol_randn(2, s, FAROL_F64), *g32 = farol_to_dtype(g64, FAROL_F32);
        farol_tensor *gx32 = NULL, *gx64 = NULL;
        assert_int_equal(farol_grad(1, &o32, &g32, 1, &x32, &gx32), 0);
        assert_int_equal(farol_grad(1, &o64, &g64, 1, &xr, &gx64), 0);
        assert_int_equal(gx32->dtype, FAROL_F32);
        char what[64];
        snprintf(what, sizeof what, "op %d float32 value", op);
        tu_assert_close(what, o32, o64, 2e-6, 1e-6);
        snprintf(what, sizeof what, "op %d float32 gradient", op);
        tu_assert_close(what, gx32, gx64, 1e-5, 1e-6);
        farol_tensor *all[] = {x64, x32, xr, o32, o64, g64, g32, gx32, gx64};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
            farol_release(all[k]);
    }
}

/* relu on a big float32 activation against a naive loop, exactly */
static void test_relu_naive_f32(void **state)
{
    (void)state;
    int64_t s[] = {64, 1031}; /* odd row length: vector loop tails */
    farol_manual_seed(3);
    farol_tensor *x = farol_randn(2, s, FAROL_F32), *g = farol_randn(2, s, FAROL_F32);
    assert_int_equal(farol_set_requires_grad(x, true), 0);
    float *px = farol_data(x);
    px[5] = 0.0f; /* the kink */
    farol_tensor *y = farol_unary(x, FAROL_RELU), *gx = NULL;
    assert_int_equal(farol_grad(1, &y, &g, 1, &x, &gx), 0);
    const float *py = farol_data(y), *pg = farol_data(g), *pgx = farol_data(gx);
    for (int64_t i = 0; i < farol_numel(x); i++) {
        float ref = px[i] > 0 ? px[i] : 0.0f, gref = px[i] > 0 ? pg[i] : 0.0f;
        assert_true(py[i] == ref);
        assert_true(pgx[i] == gref);
    }
    farol_release(x);
    farol_release(g);
    farol_release(y);
    farol_release(gx);
}

static void test_strided_matches_contiguous(void **state)
{
    (void)state;
    int64_t s[] = {3, 5, 7};
    for (int op = 0; op < N_OPS; op++) {
        farol_tensor *x = tu_randn64(3, s, 300 + op);
        prepare(op, x);
        farol_tensor *xt = farol_transpose(x, 0, 2), *xc = farol_contiguous(xt);
        pw_ctx c = {.op = op, .p0 = 0.3};
        if (op == CLAMP)
            c.p0 = -0.5, c.p1 = 0.8;
        farol_tensor *o1 = pw_apply(&c, xt), *o2 = pw_apply(&c, xc);
        assert_non_null(o1);
        assert_non_null(o2);
        tu_assert_close("strided value", o1, o2, 0, 0);
        /* and the gradients reach x identically through either */
        farol_tensor *g = farol_full(o1->ndim, o1->shape, 0.5, FAROL_F64), *g1 = NULL, *g2 = NULL;
        assert_int_equal(farol_grad(1, &o1, &g, 1, &x, &g1), 0);
        assert_int_equal(farol_grad(1, &o2, &g, 1, &x, &g2), 0);
        tu_assert_close("strided gradient", g1, g2, 0, 0);
        farol_tensor *all[] = {x, xt, xc, o1, o2, g, g1, g2};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
            farol_release(all[k]);
    }
}

/* saving the output (exp) or input (log) both survive the caller dropping x */
static void test_saved_lifetimes(void **state)
{
    (void)state;
    int64_t s[] = {4};
    farol_tensor *x = tu_randn64(1, s, 1);
    farol_tensor *e = farol_unary(x, FAROL_EXP), *t = farol_unary(e, FAROL_LOG), *g = NULL;
    farol_tensor *ones = farol_full(1, s, 1, FAROL_F64);
    farol_release(e); /* the tape keeps what it needs */
    assert_int_equal(farol_grad(1, &t, &ones, 1, &x, &g), 0);
    for (int i = 0; i < 4; i++)
        assert_float_equal(farol_get_flat(g, i), 1, 1e-12); /* d log(exp x)/dx = 1 */
    farol_release(x);
    farol_release(t);
    farol_release(g);
    farol_release(ones);
}

/* ---- errors, names, allocation ---- */

static void test_errors_and_names(void **state)
{
    (void)state;
    int64_t s[] = {3};
    farol_tensor *i = farol_zeros(1, s, FAROL_I64), *f = farol_zeros(1, s, FAROL_F32);
    assert_null(farol_unary(i, FAROL_EXP));
    ERR_HAS("farol: exp: x must be a floating tensor");
    assert_null(farol_unary(i, FAROL_RELU));
    ERR_HAS("farol: relu: x must be a floating tensor");
    assert_null(farol_leaky_relu(i, 0.1));
    ERR_HAS("farol: leaky_relu:");
    assert_null(farol_elu(i, 1));
    ERR_HAS("farol: elu:");
    assert_null(farol_clamp(i, 0, 1));
    ERR_HAS("farol: clamp:");
    assert_null(farol_clamp(f, NAN, 1));
    ERR_HAS("farol: clamp: bounds must not be NaN");
    assert_null(farol_unary(f, FAROL_UNARY_COUNT));
    ERR_HAS("farol: unary: unknown op");
    assert_null(farol_unary(NULL, FAROL_TANH));
    ERR_HAS("farol: tanh: argument x is NULL");
    assert_string_equal(farol_unary_name(FAROL_GELU), "gelu");
    assert_string_equal(farol_unary_name(FAROL_SOFTPLUS), "softplus");
    assert_string_equal(farol_unary_name(FAROL_UNARY_COUNT), "unknown");
    for (int op = 0; op < FAROL_UNARY_COUNT; op++)
        assert_non_null(farol_unary_name(op));
    farol_release(i);
    farol_release(f);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    int64_t s[] = {3, 4};
    farol_tensor *x = tu_randn64(2, s, 1);
    prepare(FAROL_LOG, x);
    farol_manual_seed(2);
    farol_tensor *g = farol_randn(2, s, FAROL_F64);
    for (int op = 0; op < N_OPS; op++) {
        pw_ctx c = {.op = op, .p0 = 0.2, .transpose = true}; /* strided: the copy path too */
        if (op == CLAMP)
            c.p1 = 0.8;
        bool done = false;
        for (int64_t n = 1; !done && n < 200; n++) {
            farol_alloc_fail_at(n);
            farol_tensor *out = pw_fn(&c, &x), *r = NULL;
            int rc = -1;
            farol_tensor *gt = out ? farol_transpose(g, 0, 1) : NULL;
            if (gt)
                rc = farol_grad(1, &out, &gt, 1, &x, &r);
            done = farol_alloc_count() < n;
            if (done)
                assert_int_equal(rc, 0);
            else
                assert_true(!out || rc < 0);
            farol_release(r);
            farol_release(gt);
            farol_release(out);
        }
        farol_alloc_fail_at(0);
        assert_true(done);
    }
    farol_release(x);
    farol_release(g);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_fixtures),
        cmocka_unit_test(test_param_fixtures),
        cmocka_unit_test(test_gradcheck_all),
        cmocka_unit_test(test_kinks),
        cmocka_unit_test(test_f32_matches_f64),
        cmocka_unit_test(test_relu_naive_f32),
        cmocka_unit_test(test_strided_matches_contiguous),
        cmocka_unit_test(test_saved_lifetimes),
        cmocka_unit_test(test_errors_and_names),
        cmocka_unit_test(test_alloc_failures),
    };
    return tu_run(tests, argc, argv);
}
