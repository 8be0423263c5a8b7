/* The op table walked row by row: every op of the list (src/autograd/
 * oplist.h) has a unique name, a backward exactly when it is marked
 * differentiable, and here a float64 finite-difference check whose forward
 * really records that op.  A new op line without a case below fails
 * test_every_op_has_a_check. */
#include "testutil.h"
#include "attr/core.h"

#include <math.h>
#include <string.h>

/* ---- constant (non-differentiable) inputs, made afresh on each call ---- */

static farol_tensor *ints(int n, const int64_t *v) {
    int64_t shape[1] = {n};
    farol_tensor *t = farol_empty(1, shape, FAROL_I64);
    assert_non_null(t);
    memcpy(farol_data(t), v, n * sizeof *v);
    return t;
}

static farol_tensor *consts(int ndim, const int64_t *shape, const double *v) {
    return tu_tensor(ndim, shape, v);
}

/* ---- forwards: f(ctx, xs) -> one tensor ---- */

#define BIN(fn) \
    static farol_tensor *f_##fn(void *c, farol_tensor **x) { return farol_##fn(x[0], x[1]); }
BIN(add)
BIN(sub)
BIN(mul)
BIN(div)
BIN(pow)
BIN(matmul)
BIN(mse_loss)

static farol_tensor *f_pow_scalar(void *c, farol_tensor **x) { return farol_pow_scalar(x[0], 2.5); }
static farol_tensor *f_neg(void *c, farol_tensor **x) { return farol_neg(x[0]); }

static farol_tensor *f_where(void *c, farol_tensor **x) {
    static const double v[6] = {1, 0, 0, 1, 1, 0};
    farol_tensor *cond = consts(2, (int64_t[]){2, 3}, v);
    farol_tensor *y = farol_where(cond, x[0], x[1]);
    farol_release(cond);
    return y;
}

static farol_tensor *f_masked_fill(void *c, farol_tensor **x) {
    static const double v[6] = {0, 1, 0, 0, 1, 0};
    farol_tensor *mask = consts(2, (int64_t[]){2, 3}, v);
    farol_tensor *y = farol_masked_fill(x[0], mask, 0.5);
    farol_release(mask);
    return y;
}

static farol_tensor *f_unary(void *c, farol_tensor **x) {
    return farol_unary(x[0], *(const farol_unary_op *)c);
}
static farol_tensor *f_leaky_relu(void *c, farol_tensor **x) { return farol_leaky_relu(x[0], 0.1); }
static farol_tensor *f_elu(void *c, farol_tensor **x) { return farol_elu(x[0], 1.3); }
static farol_tensor *f_clamp(void *c, farol_tensor **x) { return farol_clamp(x[0], -0.5, 0.5); }

#define RED(fn) \
    static farol_tensor *f_##fn(void *c, farol_tensor **x) { return farol_##fn(x[0], 1, false); }
RED(sum)
RED(mean)
RED(var)
RED(std)
RED(amax)
RED(amin)
RED(logsumexp)
RED(norm)

static farol_tensor *f_max_dim(void *c, farol_tensor **x) {
    farol_tensor *idx = NULL;
    farol_tensor *y = farol_max_dim(x[0], 1, true, &idx);
    farol_release(idx);
    return y;
}
static farol_tensor *f_min_dim(void *c, farol_tensor **x) {
    farol_tensor *idx = NULL;
    farol_tensor *y = farol_min_dim(x[0], 0, false, &idx);
    farol_release(idx);
    return y;
}

static farol_tensor *f_softmax(void *c, farol_tensor **x) { return farol_softmax(x[0], 1); }
static farol_tensor *f_log_softmax(void *c, farol_tensor **x) { return farol_log_softmax(x[0], 0); }
static farol_tensor *f_attention(void *c, farol_tensor **x) { return farol_attention(x[0], x[1], x[2], NULL); }
static farol_tensor *f_self_attention(void *c, farol_tensor **x) {
    /* a padding mask that forbids the last key of the second example */
    static const int64_t pad[6] = {0, 0, 0, 0, 0, 1};
    farol_tensor *m = farol_from_data(2, (int64_t[]){2, 3}, FAROL_I64, pad);
    farol_attention_opts o = farol_attention_defaults();
    o.key_padding_mask = m;
    farol_tensor *y = farol_self_attention(x[0], 2, &o);
    farol_release(m);
    return y;
}
static farol_tensor *f_linear(void *c, farol_tensor **x) { return farol_linear(x[0], x[1], x[2]); }

static farol_tensor *f_view(void *c, farol_tensor **x) {
    return farol_view(x[0], 2, (int64_t[]){3, 2});
}
static farol_tensor *f_permute(void *c, farol_tensor **x) {
    return farol_permute(x[0], 3, (int[]){2, 0, 1});
}
static farol_tensor *f_expand(void *c, farol_tensor **x) {
    return farol_expand(x[0], 3, (int64_t[]){2, 3, 4});
}
static farol_tensor *f_select(void *c, farol_tensor **x) { return farol_select(x[0], 1, -1); }
static farol_tensor *f_narrow(void *c, farol_tensor **x) { return farol_narrow(x[0], 1, 1, 2); }

static farol_tensor *f_index_select(void *c, farol_tensor **x) {
    farol_tensor *idx = ints(4, (int64_t[]){2, 0, 2, 1});
    farol_tensor *y = farol_index_select(x[0], 1, idx);
    farol_release(idx);
    return y;
}

static farol_tensor *f_cat(void *c, farol_tensor **x) { return farol_cat(3, x, 1); }
static farol_tensor *f_stack(void *c, farol_tensor **x) { return farol_stack(2, x, 1); }
static farol_tensor *f_copy(void *c, farol_tensor **x) { return farol_clone(x[0]); }

/* float32 in the middle: a float64 step of 1e-6 would be rounded away, so
 * the values are compared against the exact cast, not differences */
static farol_tensor *f_to_dtype(void *c, farol_tensor **x) { return farol_to_dtype(x[0], FAROL_F32); }

static farol_tensor *f_conv2d(void *c, farol_tensor **x) {
    farol_conv_opts o = farol_conv_defaults();
    o.padding[0] = o.padding[1] = 1;
    o.stride[1] = 2;
    return farol_conv2d(x[0], x[1], x[2], &o);
}

static farol_tensor *f_max_pool2d(void *c, farol_tensor **x) {
    farol_pool_opts o = {.kernel = {2, 2}, .stride = {2, 2}};
    return farol_max_pool2d(x[0], &o);
}
static farol_tensor *f_avg_pool2d(void *c, farol_tensor **x) {
    farol_pool_opts o = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}};
    return farol_avg_pool2d(x[0], &o);
}
static farol_tensor *f_adaptive_avg_pool2d(void *c, farol_tensor **x) {
    return farol_adaptive_avg_pool2d(x[0], 3, 2);
}

static farol_tensor *f_batch_norm(void *c, farol_tensor **x) {
    farol_tensor *mean = consts(1, (int64_t[]){3}, (double[]){0.1, -0.2, 0.3});
    farol_tensor *var = consts(1, (int64_t[]){3}, (double[]){0.5, 1.5, 2.0});
    farol_tensor *y = farol_batch_norm(x[0], mean, var, x[1], x[2], 1e-5);
    farol_release(mean);
    farol_release(var);
    return y;
}
static farol_tensor *f_layer_norm(void *c, farol_tensor **x) {
    return farol_layer_norm(x[0], 1, (int64_t[]){4}, x[1], x[2], 1e-5);
}

static farol_tensor *f_embedding(void *c, farol_tensor **x) {
    farol_tensor *idx = ints(4, (int64_t[]){4, 0, 4, 2});
    farol_tensor *y = farol_embedding(idx, x[0]);
    farol_release(idx);
    return y;
}
static farol_tensor *f_dropout(void *c, farol_tensor **x) {
    farol_manual_seed(5); /* the same mask on every call */
    return farol_dropout(x[0], 0.3, true);
}
static farol_tensor *f_cross_entropy(void *c, farol_tensor **x) {
    farol_tensor *labels = ints(3, (int64_t[]){1, 3, 0});
    farol_tensor *y = farol_cross_entropy(x[0], labels);
    farol_release(labels);
    return y;
}
static farol_tensor *f_pad(void *c, farol_tensor **x) {
    return farol_pad(x[0], 4, (int64_t[]){1, 2, 0, 1}, 0.25);
}

/* GuidedBackprop's and Deconvolution's relu: its backward is Captum's rule,
 * not relu's gradient, so run_case checks it against the rule itself */
static const bool relu_deconv[2] = {false, true};
static farol_tensor *f_modified_relu(void *c, farol_tensor **x) {
    return farol_modified_relu(x[0], *(const bool *)c);
}

/* ---- the cases ---- */

enum { ANY, POSITIVE }; /* input values: standard normal, or |normal| + 0.5 */

typedef struct {
    farol_op op;
    const char *what;
    tu_fn f;
    void *ctx;
    int n, values;
    int nd[3];
    int64_t sh[3][4];
} opcase;

#define S1(a) {a}
#define S2(a, b) {a, b}
#define S3(a, b, c) {a, b, c}
#define S4(a, b, c, d) {a, b, c, d}

static const farol_unary_op unary_kinds[FAROL_UNARY_COUNT] = {
#define X_KIND(ID, name) FAROL_##ID,
    FAROL_UNARY_LIST(X_KIND)
#undef X_KIND
};

static const opcase cases[] = {
    {FAROL_OP_ADD, "add", f_add, 0, 2, ANY, {2, 1}, {S2(2, 3), S1(3)}},
    {FAROL_OP_SUB, "sub", f_sub, 0, 2, ANY, {1, 2}, {S1(3), S2(2, 3)}},
    {FAROL_OP_MUL, "mul", f_mul, 0, 2, ANY, {2, 2}, {S2(2, 3), S2(2, 1)}},
    {FAROL_OP_DIV, "div", f_div, 0, 2, POSITIVE, {2, 1}, {S2(2, 3), S1(3)}},
    {FAROL_OP_POW, "pow", f_pow, 0, 2, POSITIVE, {2, 2}, {S2(2, 3), S2(2, 3)}},
    {FAROL_OP_POW_SCALAR, "pow_scalar", f_pow_scalar, 0, 1, POSITIVE, {2}, {S2(2, 3)}},
    {FAROL_OP_NEG, "neg", f_neg, 0, 1, ANY, {2}, {S2(2, 3)}},
    {FAROL_OP_WHERE, "where", f_where, 0, 2, ANY, {2, 1}, {S2(2, 3), S1(3)}},
    {FAROL_OP_MASKED_FILL, "masked_fill", f_masked_fill, 0, 1, ANY, {2}, {S2(2, 3)}},
    {FAROL_OP_LEAKY_RELU, "leaky_relu", f_leaky_relu, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_ELU, "elu", f_elu, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_CLAMP, "clamp", f_clamp, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_SUM, "sum", f_sum, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_MEAN, "mean", f_mean, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_VAR, "var", f_var, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_STD, "std", f_std, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_AMAX, "amax", f_amax, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_AMIN, "amin", f_amin, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_LOGSUMEXP, "logsumexp", f_logsumexp, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_NORM, "norm", f_norm, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_MAX_DIM, "max_dim", f_max_dim, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_MAX_DIM, "min_dim", f_min_dim, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_SOFTMAX, "softmax", f_softmax, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_LOG_SOFTMAX, "log_softmax", f_log_softmax, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_ATTENTION, "attention", f_attention, 0, 3, ANY, {3, 3, 3},
     {S3(2, 3, 4), S3(2, 5, 4), S3(2, 5, 3)}},
    {FAROL_OP_SELF_ATTENTION, "self_attention", f_self_attention, 0, 1, ANY, {3}, {S3(2, 3, 12)}},
    {FAROL_OP_MATMUL, "matmul", f_matmul, 0, 2, ANY, {3, 2}, {S3(2, 3, 4), S2(4, 2)}},
    {FAROL_OP_LINEAR, "linear", f_linear, 0, 3, ANY, {2, 2, 1}, {S2(2, 3), S2(4, 3), S1(4)}},
    {FAROL_OP_VIEW, "view", f_view, 0, 1, ANY, {2}, {S2(2, 3)}},
    {FAROL_OP_PERMUTE, "permute", f_permute, 0, 1, ANY, {3}, {S3(2, 3, 4)}},
    {FAROL_OP_EXPAND, "expand", f_expand, 0, 1, ANY, {2}, {S2(3, 1)}},
    {FAROL_OP_SELECT, "select", f_select, 0, 1, ANY, {2}, {S2(2, 3)}},
    {FAROL_OP_NARROW, "narrow", f_narrow, 0, 1, ANY, {2}, {S2(2, 4)}},
    {FAROL_OP_INDEX_SELECT, "index_select", f_index_select, 0, 1, ANY, {2}, {S2(2, 3)}},
    {FAROL_OP_CAT, "cat", f_cat, 0, 3, ANY, {2, 2, 2}, {S2(2, 1), S2(2, 3), S2(2, 2)}},
    {FAROL_OP_STACK, "stack", f_stack, 0, 2, ANY, {2, 2}, {S2(2, 3), S2(2, 3)}},
    {FAROL_OP_COPY, "copy", f_copy, 0, 1, ANY, {2}, {S2(2, 3)}},
    {FAROL_OP_TO_DTYPE, "to_dtype", f_to_dtype, 0, 1, ANY, {2}, {S2(2, 3)}},
    {FAROL_OP_CONV2D, "conv2d", f_conv2d, 0, 3, ANY, {4, 4, 1},
     {S4(1, 2, 5, 5), S4(3, 2, 3, 3), S1(3)}},
    {FAROL_OP_MAX_POOL2D, "max_pool2d", f_max_pool2d, 0, 1, ANY, {4}, {S4(1, 2, 4, 4)}},
    {FAROL_OP_AVG_POOL2D, "avg_pool2d", f_avg_pool2d, 0, 1, ANY, {4}, {S4(1, 2, 5, 5)}},
    {FAROL_OP_ADAPTIVE_AVG_POOL2D, "adaptive_avg_pool2d", f_adaptive_avg_pool2d, 0, 1, ANY, {3},
     {S3(2, 5, 4)}},
    {FAROL_OP_BATCH_NORM, "batch_norm", f_batch_norm, 0, 3, ANY, {4, 1, 1},
     {S4(2, 3, 2, 2), S1(3), S1(3)}},
    {FAROL_OP_LAYER_NORM, "layer_norm", f_layer_norm, 0, 3, ANY, {3, 1, 1},
     {S3(2, 3, 4), S1(4), S1(4)}},
    {FAROL_OP_EMBEDDING, "embedding", f_embedding, 0, 1, ANY, {2}, {S2(5, 3)}},
    {FAROL_OP_DROPOUT, "dropout", f_dropout, 0, 1, ANY, {2}, {S2(4, 5)}},
    {FAROL_OP_CROSS_ENTROPY, "cross_entropy", f_cross_entropy, 0, 1, ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_MSE_LOSS, "mse_loss", f_mse_loss, 0, 2, ANY, {2, 2}, {S2(2, 3), S2(2, 3)}},
    {FAROL_OP_PAD, "pad", f_pad, 0, 1, ANY, {2}, {S2(2, 3)}},
    {FAROL_OP_MODIFIED_RELU, "modified_relu (guided)", f_modified_relu, (void *)&relu_deconv[0], 1,
     ANY, {2}, {S2(3, 4)}},
    {FAROL_OP_MODIFIED_RELU, "modified_relu (deconvolution)", f_modified_relu,
     (void *)&relu_deconv[1], 1, ANY, {2}, {S2(3, 4)}},
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

/* UNARY: one case per farol_unary_op, made from the unary list */
static opcase unary_case(int k) {
    farol_unary_op op = unary_kinds[k];
    bool domain = op == FAROL_LOG || op == FAROL_SQRT || op == FAROL_RSQRT;
    return (opcase){FAROL_OP_UNARY, farol_unary_name(op), f_unary, (void *)&unary_kinds[k], 1,
                    domain ? POSITIVE : ANY, {2}, {S2(3, 4)}};
}

/* runs one case: the forward must record c->op, then the gradient check */
static void run_case(const opcase *c, uint64_t seed) {
    farol_tensor *xs[3];
    for (int i = 0; i < c->n; i++) {
        xs[i] = tu_randn64(c->nd[i], c->sh[i], seed + (uint64_t)i);
        if (c->values == POSITIVE) {
            double *p = farol_data(xs[i]);
            for (int64_t e = 0; e < farol_numel(xs[i]); e++) p[e] = fabs(p[e]) + 0.5;
        }
    }
    farol_tensor *y = c->f(c->ctx, xs);
    if (!y) fail_msg("%s: forward failed: %s", c->what, farol_last_error());
    if (!y->node || y->node->op != c->op)
        fail_msg("%s: the forward recorded %s, expected %s", c->what,
                 y->node ? farol_ops[y->node->op].name : "nothing", farol_ops[c->op].name);
    if (c->op == FAROL_OP_MODIFIED_RELU) {
        /* gradient = relu(w) where x > 0 (guided), relu(w) everywhere (deconvolution) */
        bool deconv = *(const bool *)c->ctx;
        farol_manual_seed(5);
        farol_tensor *w = farol_randn(y->ndim, y->shape, FAROL_F64), *g = NULL;
        assert_non_null(w);
        assert_int_equal(farol_grad(1, &y, &w, 1, xs, &g), 0);
        const double *pw = farol_data(w), *px = farol_data(xs[0]), *pg = farol_data(g);
        for (int64_t e = 0; e < farol_numel(w); e++) {
            double want = pw[e] > 0 && (deconv || px[e] > 0) ? pw[e] : 0;
            if (pg[e] != want) fail_msg("%s: element %lld is %g, expected %g", c->what, (long long)e, pg[e], want);
        }
        farol_release(g);
        farol_release(w);
    } else if (c->op == FAROL_OP_TO_DTYPE) {
        /* d sum(y * w) / dx = w, exactly (w cast back to float64) */
        farol_manual_seed(3);
        farol_tensor *w = farol_randn(y->ndim, y->shape, FAROL_F32), *g = NULL;
        assert_non_null(w);
        assert_int_equal(farol_grad(1, &y, &w, 1, xs, &g), 0);
        farol_tensor *w64 = farol_to_dtype(w, FAROL_F64);
        tu_assert_close(c->what, g, w64, 0, 0);
        farol_release(w64);
        farol_release(g);
        farol_release(w);
    } else {
        tu_gradcheck(c->what, c->f, c->ctx, c->n, xs);
    }
    farol_release(y);
    for (int i = 0; i < c->n; i++) farol_release(xs[i]);
}

static void test_table_rows(void **state) {
    int differentiable = 0;
    for (int op = 0; op < FAROL_OP_COUNT; op++) {
        const farol_op_desc *d = &farol_ops[op];
        assert_non_null(d->name);
        assert_true(d->name[0] != '\0');
        for (int o = 0; o < op; o++)
            if (strcmp(farol_ops[o].name, d->name) == 0)
                fail_msg("ops %d and %d are both named %s", o, op, d->name);
        if (d->differentiable != (d->backward != NULL))
            fail_msg("%s: marked %s but its backward is %s", d->name,
                     d->differentiable ? "differentiable" : "not differentiable",
                     d->backward ? "set" : "NULL");
        assert_true(d->arity == FAROL_VARIADIC || (d->arity >= 0 && d->arity <= 8));
        differentiable += d->differentiable;
    }
    assert_false(farol_ops[FAROL_OP_LEAF].differentiable);
    assert_true(differentiable == FAROL_OP_COUNT - 1);
}

/* every differentiable op has a case above, and each case stays within the
 * op's declared arity */
static void test_every_op_has_a_check(void **state) {
    for (int op = 0; op < FAROL_OP_COUNT; op++) {
        if (!farol_ops[op].differentiable) continue;
        int found = op == FAROL_OP_UNARY && FAROL_UNARY_COUNT > 0;
        for (int k = 0; k < N_CASES; k++)
            if (cases[k].op == (farol_op)op) {
                found++;
                int arity = farol_ops[op].arity;
                assert_true(arity == FAROL_VARIADIC || cases[k].n <= arity);
            }
        if (!found) fail_msg("op %s has no finite-difference case in test_optable.c", farol_ops[op].name);
    }
}

static void test_gradcheck_every_op(void **state) {
    for (int k = 0; k < N_CASES; k++) run_case(&cases[k], 100 + (uint64_t)k * 7);
}

static void test_gradcheck_every_unary(void **state) {
    for (int k = 0; k < FAROL_UNARY_COUNT; k++) {
        opcase c = unary_case(k);
        run_case(&c, 500 + (uint64_t)k);
    }
}

/* the recording helper refuses more inputs than the list declares */
static void test_record_checks_arity(void **state) {
    farol_tensor *a = tu_randn64(1, (int64_t[]){3}, 1), *b = tu_randn64(1, (int64_t[]){3}, 2);
    farol_tensor *out = farol_zeros(1, (int64_t[]){3}, FAROL_F64);
    assert_non_null(out);
    farol_tensor *ins[2] = {a, b};
    assert_null(farol_record(FAROL_OP_NEG, out, 2, ins, FAROL_NO_SAVE, NULL)); /* releases out */
    assert_non_null(strstr(farol_last_error(), "neg: recorded with 2 inputs"));
    farol_release(a);
    farol_release(b);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_table_rows, tu_reset),
        cmocka_unit_test_setup(test_every_op_has_a_check, tu_reset),
        cmocka_unit_test_setup(test_gradcheck_every_op, tu_reset),
        cmocka_unit_test_setup(test_gradcheck_every_unary, tu_reset),
        cmocka_unit_test_setup(test_record_checks_arity, tu_reset),
    };
    return tu_run(tests, argc, argv);
}
