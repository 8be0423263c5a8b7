/* The tape: pruning, accumulation, graphs shared by several outputs, leaf
 * gradients, in-place modification checks, and lifetime. */
#include "testutil.h"

#include <math.h>

static farol_tensor *leaf(int ndim, const int64_t *shape, uint64_t seed, bool grad) {
    farol_manual_seed(seed);
    farol_tensor *t = farol_randn(ndim, shape, FAROL_F64);
    assert_non_null(t);
    if (grad) assert_int_equal(farol_set_requires_grad(t, true), 0);
    return t;
}

/* A saliency through a Linear asks for the input gradient only: the weight
 * and bias gradients are never computed. */
static void test_prunes_weight_gradients(void **state) {
    int64_t xs[2] = {4, 5}, ws[2] = {3, 5}, bs[1] = {3};
    farol_tensor *x = leaf(2, xs, 1, true), *w = leaf(2, ws, 2, true), *b = leaf(1, bs, 3, true);
    farol_tensor *y = farol_linear(x, w, b), *r = farol_unary(y, FAROL_TANH), *s = farol_sum(r, FAROL_DIM_ALL, false);
    assert_non_null(s);
    farol_reset_tape_stats();
    farol_tensor *g = NULL;
    assert_int_equal(farol_grad(1, &s, NULL, 1, &x, &g), 0);
    farol_tape_stats st = farol_get_tape_stats();
    /* sum, tanh, linear ran; linear was asked for one gradient (x), not three */
    assert_int_equal(st.nodes_run, 3);
    assert_int_equal(st.input_grads_computed, 3);
    assert_null(w->grad);
    assert_null(b->grad);
    /* and the gradient is right: dx = (1 - tanh^2) @ w */
    farol_set_grad_enabled(false);
    farol_tensor *one = farol_scalar(1, FAROL_F64), *t2 = farol_mul(r, r), *d = farol_sub(one, t2);
    farol_tensor *exp = farol_matmul(d, w);
    tu_assert_close("dx", g, exp, 1e-12, 1e-12);
    farol_release(exp); farol_release(d); farol_release(t2); farol_release(one);
    farol_release(g); farol_release(s); farol_release(r); farol_release(y);
    farol_release(x); farol_release(w); farol_release(b);
}

/* Nodes that lead only to inputs nobody asked about do not run. */
static void test_prunes_unrelated_branches(void **state) {
    int64_t sh[1] = {6};
    farol_tensor *x = leaf(1, sh, 1, true), *z = leaf(1, sh, 2, true);
    farol_tensor *ex = farol_unary(x, FAROL_EXP), *ez = farol_unary(z, FAROL_SIN);
    farol_tensor *sz = farol_unary(ez, FAROL_COS);  /* only on z's path */
    farol_tensor *sum = farol_add(ex, sz), *s = farol_sum(sum, FAROL_DIM_ALL, false);
    farol_reset_tape_stats();
    farol_tensor *g = NULL;
    assert_int_equal(farol_grad(1, &s, NULL, 1, &x, &g), 0);
    /* sum, add, exp: the sin/cos branch towards z is pruned */
    assert_int_equal(farol_get_tape_stats().nodes_run, 3);
    tu_assert_close("d exp", g, ex, 1e-12, 0);
    farol_release(g); farol_release(s); farol_release(sum); farol_release(sz);
    farol_release(ez); farol_release(ex); farol_release(x); farol_release(z);
}

/* A tensor used twice gets the sum of both paths' gradients. */
static void test_accumulates_over_paths(void **state) {
    int64_t sh[2] = {3, 4};
    farol_tensor *x = leaf(2, sh, 5, true);
    farol_tensor *a = farol_unary(x, FAROL_SIN), *b = farol_mul(x, x), *c = farol_add(a, b);
    farol_tensor *s = farol_sum(c, FAROL_DIM_ALL, false), *g = NULL;
    assert_int_equal(farol_grad(1, &s, NULL, 1, &x, &g), 0);
    for (int64_t i = 0; i < 12; i++) {
        double v = farol_get_flat(x, i);
        assert_true(fabs(farol_get_flat(g, i) - (cos(v) + 2 * v)) < 1e-12);
    }
    farol_release(g); farol_release(s); farol_release(c); farol_release(b);
    farol_release(a); farol_release(x);
}

/* One graph, two outputs: each backward works, the graph survives the
 * first, and farol_grad over both outputs sums them. */
static void test_graph_reused_by_two_outputs(void **state) {
    int64_t sh[1] = {5};
    farol_tensor *x = leaf(1, sh, 7, true);
    farol_tensor *h = farol_unary(x, FAROL_TANH);
    farol_tensor *y1 = farol_sum(h, FAROL_DIM_ALL, false);
    farol_tensor *sq = farol_mul(h, h), *y2 = farol_sum(sq, FAROL_DIM_ALL, false);
    farol_tensor *g1 = NULL, *g2 = NULL, *g12 = NULL;
    assert_int_equal(farol_grad(1, &y1, NULL, 1, &x, &g1), 0);
    assert_int_equal(farol_grad(1, &y2, NULL, 1, &x, &g2), 0);
    farol_tensor *both[2] = {y1, y2};
    assert_int_equal(farol_grad(2, both, NULL, 1, &x, &g12), 0);
    for (int64_t i = 0; i < 5; i++) {
        double t = tanh(farol_get_flat(x, i)), d = 1 - t * t;
        assert_true(fabs(farol_get_flat(g1, i) - d) < 1e-12);
        assert_true(fabs(farol_get_flat(g2, i) - 2 * t * d) < 1e-12);
        assert_true(fabs(farol_get_flat(g12, i) - (d + 2 * t * d)) < 1e-12);
    }
    /* backward twice accumulates into .grad */
    assert_int_equal(farol_backward(y1, NULL), 0);
    assert_int_equal(farol_backward(y1, NULL), 0);
    for (int64_t i = 0; i < 5; i++) assert_true(fabs(farol_get_flat(x->grad, i) - 2 * farol_get_flat(g1, i)) < 1e-12);
    farol_zero_grad(x);
    assert_null(x->grad);
    farol_release(g1); farol_release(g2); farol_release(g12); farol_release(y1); farol_release(y2);
    farol_release(sq); farol_release(h); farol_release(x);
}

/* farol_grad touches no .grad; inputs the output ignores get zeros */
static void test_grad_leaves_dot_grad_alone(void **state) {
    int64_t sh[1] = {3};
    farol_tensor *x = leaf(1, sh, 1, true), *unused = leaf(1, sh, 2, true);
    farol_tensor *y = farol_unary(x, FAROL_EXP), *s = farol_sum(y, FAROL_DIM_ALL, false);
    farol_tensor *in[2] = {x, unused}, *g[2] = {0};
    assert_int_equal(farol_grad(1, &s, NULL, 2, in, g), 0);
    assert_null(x->grad);
    tu_assert_close("dx", g[0], y, 1e-12, 0);
    for (int i = 0; i < 3; i++) assert_true(farol_get_flat(g[1], i) == 0);
    farol_release(g[0]); farol_release(g[1]); farol_release(s); farol_release(y);
    farol_release(x); farol_release(unused);
}

/* gradients with respect to an intermediate (non-leaf) tensor */
static void test_grad_wrt_intermediate(void **state) {
    int64_t sh[1] = {4};
    farol_tensor *x = leaf(1, sh, 3, true);
    farol_tensor *h = farol_unary(x, FAROL_SIN), *y = farol_mul(h, h), *s = farol_sum(y, FAROL_DIM_ALL, false);
    farol_tensor *in[2] = {h, x}, *g[2] = {0};
    assert_int_equal(farol_grad(1, &s, NULL, 2, in, g), 0);
    for (int64_t i = 0; i < 4; i++) {
        double v = farol_get_flat(x, i);
        assert_true(fabs(farol_get_flat(g[0], i) - 2 * sin(v)) < 1e-12);
        assert_true(fabs(farol_get_flat(g[1], i) - 2 * sin(v) * cos(v)) < 1e-12);
    }
    farol_release(g[0]); farol_release(g[1]); farol_release(s); farol_release(y);
    farol_release(h); farol_release(x);
}

static void test_errors(void **state) {
    int64_t sh[1] = {3};
    farol_tensor *x = leaf(1, sh, 1, false), *w = leaf(1, sh, 2, true), *g = NULL;
    farol_tensor *y = farol_mul(x, w);
    /* a non-scalar output needs a gradient */
    assert_int_equal(farol_grad(1, &y, NULL, 1, &w, &g), -1);
    assert_non_null(strstr(farol_last_error_1based(), "a gradient for it is needed"));
    /* an input that does not require a gradient */
    farol_tensor *s = farol_sum(y, FAROL_DIM_ALL, false);
    assert_int_equal(farol_grad(1, &s, NULL, 1, &x, &g), -1);
    assert_non_null(strstr(farol_last_error_1based(), "input 1 does not require a gradient"));
    /* an output that does not depend on anything requiring a gradient */
    assert_int_equal(farol_grad(1, &x, NULL, 1, &w, &g), -1);
    assert_non_null(strstr(farol_last_error_1based(), "output 1 does not require a gradient"));
    /* int64 cannot require a gradient */
    farol_tensor *i = farol_zeros(1, sh, FAROL_I64);
    assert_int_equal(farol_set_requires_grad(i, true), -1);
    assert_non_null(strstr(farol_last_error_1based(), "only floating tensors"));
    /* a non-leaf cannot stop requiring a gradient */
    assert_int_equal(farol_set_requires_grad(y, false), -1);
    assert_non_null(strstr(farol_last_error_1based(), "detach"));
    farol_release(i); farol_release(s); farol_release(y); farol_release(x); farol_release(w);
}

/* Writing in place into a tensor the tape saved, then running backward, is
 * an error, never a silently wrong gradient. */
static void test_inplace_after_save_is_caught(void **state) {
    int64_t sh[1] = {3};
    farol_tensor *x = leaf(1, sh, 1, true);
    farol_tensor *h = farol_unary(x, FAROL_EXP);   /* exp saves its output h */
    farol_tensor *y = farol_mul(h, h), *s = farol_sum(y, FAROL_DIM_ALL, false), *g = NULL;
    bool prev = farol_set_grad_enabled(false);
    farol_tensor *hv = farol_detach(h);
    assert_int_equal(farol_fill_(hv, 2.0), 0);   /* bumps the shared version */
    farol_set_grad_enabled(prev);
    assert_int_equal(farol_grad(1, &s, NULL, 1, &x, &g), -1);
    assert_non_null(strstr(farol_last_error_1based(), "modified in place"));
    assert_null(g);
    /* in-place writes into a tensor that requires a gradient are refused */
    assert_int_equal(farol_fill_(x, 1.0), -1);
    assert_non_null(strstr(farol_last_error_1based(), "requires a gradient"));
    farol_release(hv); farol_release(s); farol_release(y); farol_release(h); farol_release(x);
}

/* Graph memory goes when the outputs go; a leaf freed before its graph is
 * not written to; long chains release without recursion. */
static void test_lifetime(void **state) {
    size_t before = farol_live_bytes();
    int64_t sh[1] = {1000};
    farol_tensor *x = leaf(1, sh, 1, true);
    farol_tensor *y = farol_retain(x);
    for (int i = 0; i < 100000; i++) {
        farol_tensor *next = farol_neg(y);
        assert_non_null(next);
        farol_release(y);
        y = next;
    }
    farol_tensor *s = farol_sum(y, FAROL_DIM_ALL, false);
    farol_release(x);            /* the graph keeps the leaf's node, not its memory */
    assert_int_equal(farol_backward(s, NULL), 0);  /* nothing to accumulate into */
    farol_release(s);
    farol_release(y);
    assert_int_equal(farol_live_bytes(), before);
}

static void test_no_grad_records_nothing(void **state) {
    int64_t sh[1] = {3};
    farol_tensor *x = leaf(1, sh, 1, true);
    bool prev = farol_set_grad_enabled(false);
    farol_tensor *y = farol_unary(x, FAROL_EXP);
    assert_true(prev);
    assert_false(farol_grad_enabled());
    assert_null(y->node);
    assert_false(y->requires_grad);
    farol_set_grad_enabled(prev);
    farol_tensor *d = farol_detach(x);
    assert_null(d->node);
    assert_true(d->storage == x->storage);
    farol_release(d); farol_release(y); farol_release(x);
}

/* every allocation of a forward + backward failing in turn: an error each
 * time, nothing leaked (LeakSanitizer), and the next call works */
static void test_allocation_failures(void **state) {
    int64_t xs[2] = {3, 4}, ws[2] = {2, 4};
    farol_tensor *x = leaf(2, xs, 1, true), *w = leaf(2, ws, 2, false);
    int failures = 0;
    for (int64_t n = 1;; n++) {
        farol_alloc_fail_at(n);
        farol_tensor *y = farol_linear(x, w, NULL), *r = y ? farol_unary(y, FAROL_RELU) : NULL;
        farol_tensor *s = r ? farol_sum(r, FAROL_DIM_ALL, false) : NULL, *g = NULL;
        int rc = s ? farol_grad(1, &s, NULL, 1, &x, &g) : -1;
        int64_t used = farol_alloc_count();
        farol_alloc_fail_at(0);
        farol_release(g); farol_release(s); farol_release(r); farol_release(y);
        if (rc == 0) {
            assert_true(used < n);  /* succeeded: the failing allocation was never reached */
            break;
        }
        failures++;
    }
    assert_true(failures > 5);
    farol_release(x); farol_release(w);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_prunes_weight_gradients, tu_reset),
        cmocka_unit_test_setup(test_prunes_unrelated_branches, tu_reset),
        cmocka_unit_test_setup(test_accumulates_over_paths, tu_reset),
        cmocka_unit_test_setup(test_graph_reused_by_two_outputs, tu_reset),
        cmocka_unit_test_setup(test_grad_leaves_dot_grad_alone, tu_reset),
        cmocka_unit_test_setup(test_grad_wrt_intermediate, tu_reset),
        cmocka_unit_test_setup(test_errors, tu_reset),
        cmocka_unit_test_setup(test_inplace_after_save_is_caught, tu_reset),
        cmocka_unit_test_setup(test_lifetime, tu_reset),
        cmocka_unit_test_setup(test_no_grad_records_nothing, tu_reset),
        cmocka_unit_test_setup(test_allocation_failures, tu_reset),
    };
    return tu_run(tests, argc, argv);
}
