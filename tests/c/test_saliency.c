/* farol_saliency from C: target forms, abs, inputs untouched, errors, grad
 * mode, and allocation failure through a small CNN. */
#include "testutil.h"

#include <math.h>

/* out = x @ w^T (N x K), w fixed */
typedef struct { farol_tensor *w; int calls; bool fail; } linear_ctx;

static int linear_forward(void *vctx, int n, farol_tensor *const *xs, farol_tensor **out) {
    linear_ctx *c = vctx;
    c->calls++;
    assert_true(farol_grad_enabled());
    if (c->fail) {
        farol_set_error("model exploded");
        return -1;
    }
    *out = farol_linear(xs[0], c->w, NULL);
    return *out ? 0 : -1;
}

static farol_tensor *randn(int ndim, const int64_t *shape, uint64_t seed, farol_dtype dt) {
    farol_manual_seed(seed);
    farol_tensor *t = farol_randn(ndim, shape, dt);
    assert_non_null(t);
    return t;
}

static void test_target_forms(void **state) {
    int64_t xs[2] = {3, 4}, ws[2] = {5, 4};
    farol_tensor *x = randn(2, xs, 1, FAROL_F64), *w = randn(2, ws, 2, FAROL_F64), *a = NULL;
    linear_ctx c = {w, 0, false};
    /* one class for every example: |w[t]| per row */
    int64_t t = 2;
    farol_target all = {FAROL_TARGET_ALL, 1, 0, &t, false};
    assert_int_equal(farol_saliency(linear_forward, &c, 1, &x, &all, true, &a), 0);
    for (int64_t n = 0; n < 3; n++)
        for (int64_t j = 0; j < 4; j++) {
            int64_t ai[2] = {n, j}, wi[2] = {2, j};
            assert_true(fabs(farol_get(a, ai) - fabs(farol_get(w, wi))) < 1e-14);
        }
    farol_release(a);
    /* negative index counts from the end; signed */
    t = -1;
    assert_int_equal(farol_saliency(linear_forward, &c, 1, &x, &all, false, &a), 0);
    int64_t ai[2] = {1, 3}, wi[2] = {4, 3};
    assert_true(fabs(farol_get(a, ai) - farol_get(w, wi)) < 1e-14);
    farol_release(a);
    /* one class per example */
    int64_t per[3] = {0, 4, 1};
    farol_target pe = {FAROL_TARGET_PER_EXAMPLE, 1, 3, per, false};
    assert_int_equal(farol_saliency(linear_forward, &c, 1, &x, &pe, false, &a), 0);
    for (int64_t n = 0; n < 3; n++) {
        int64_t ai2[2] = {n, 1}, wi2[2] = {per[n], 1};
        assert_true(fabs(farol_get(a, ai2) - farol_get(w, wi2)) < 1e-14);
    }
    assert_int_equal(a->dtype, FAROL_F64);
    assert_int_equal(a->ndim, 2);
    farol_release(a);
    farol_release(x);
    farol_release(w);
}

static void test_inputs_untouched(void **state) {
    int64_t xs[2] = {2, 4}, ws[2] = {3, 4};
    farol_tensor *x = randn(2, xs, 1, FAROL_F32), *w = randn(2, ws, 2, FAROL_F32), *a = NULL;
    farol_tensor *before = farol_clone(x);
    linear_ctx c = {w, 0, false};
    int64_t t = 0;
    farol_target all = {FAROL_TARGET_ALL, 1, 0, &t, false};
    assert_int_equal(farol_saliency(linear_forward, &c, 1, &x, &all, true, &a), 0);
    assert_false(x->requires_grad);
    assert_null(x->grad);
    assert_null(x->node);
    assert_null(w->grad);
    tu_assert_close("x unchanged", x, before, 0, 0);
    assert_int_equal(a->dtype, FAROL_F32);
    farol_release(a); farol_release(before); farol_release(x); farol_release(w);
}

static void expect_error(linear_ctx *c, farol_tensor *x, const farol_target *tg, const char *msg) {
    farol_tensor *a = (farol_tensor *)1;
    bool was = farol_grad_enabled();
    assert_int_equal(farol_saliency(linear_forward, c, 1, &x, tg, true, &a), -1);
    assert_null(a);
    assert_int_equal(farol_grad_enabled(), was);
    if (!strstr(farol_last_error_1based(), msg)) fail_msg("error %s lacks %s", farol_last_error_1based(), msg);
}

static void test_errors(void **state) {
    int64_t xs[2] = {3, 4}, ws[2] = {5, 4};
    farol_tensor *x = randn(2, xs, 1, FAROL_F32), *w = randn(2, ws, 2, FAROL_F32);
    linear_ctx c = {w, 0, false};
    expect_error(&c, x, NULL, "a target is needed: the forward output has shape [3, 5]");
    int64_t t = 5;
    farol_target all = {FAROL_TARGET_ALL, 1, 0, &t, false};
    expect_error(&c, x, &all, "target index 6 is out of range for output dim 2 of size 5");
    t = -6;
    expect_error(&c, x, &all, "target index -6 is out of range");
    int64_t per[2] = {0, 1};
    farol_target pe = {FAROL_TARGET_PER_EXAMPLE, 1, 2, per, false};
    expect_error(&c, x, &pe, "per-example target has 2 entries but the batch has 3");
    int64_t two[2] = {0, 0};
    farol_target tup = {FAROL_TARGET_ALL, 2, 0, two, false};
    expect_error(&c, x, &tup, "target has 2 indices per example but output [3, 5] has 1 dims");
    c.fail = true;
    t = 0;
    expect_error(&c, x, &all, "model exploded");
    c.fail = false;
    /* int64 input, disagreeing batch sizes */
    farol_tensor *xi = farol_zeros(2, xs, FAROL_I64);
    expect_error(&c, xi, &all, "input 1 is int64");
    int64_t ys[2] = {2, 4};
    farol_tensor *y = randn(2, ys, 3, FAROL_F32), *pair[2] = {x, y}, *a[2];
    assert_int_equal(farol_saliency(linear_forward, &c, 2, pair, &all, true, a), -1);
    assert_non_null(strstr(farol_last_error_1based(), "input 2 has batch size 2 but input 1 has 3"));
    farol_release(y); farol_release(xi); farol_release(x); farol_release(w);
}

/* a small CNN: conv -> relu -> max_pool -> linear, two inputs summed */
typedef struct { farol_tensor *cw, *cb, *lw; } cnn_ctx;

static int cnn_forward(void *vctx, int n, farol_tensor *const *xs, farol_tensor **out) {
    cnn_ctx *c = vctx;
    farol_conv_opts o = farol_conv_defaults();
    o.padding[0] = o.padding[1] = 1;
    farol_pool_opts p = {.kernel = {2, 2}, .stride = {2, 2}, .padding = {0, 0}};
    farol_tensor *sum = farol_add(xs[0], xs[1]);
    farol_tensor *h = sum ? farol_conv2d(sum, c->cw, c->cb, &o) : NULL;
    farol_tensor *r = h ? farol_unary(h, FAROL_RELU) : NULL;
    farol_tensor *m = r ? farol_max_pool2d(r, &p) : NULL;
    farol_tensor *f = m ? farol_flatten(m, 1, 3) : NULL;
    *out = f ? farol_linear(f, c->lw, NULL) : NULL;
    farol_release(f); farol_release(m); farol_release(r); farol_release(h); farol_release(sum);
    return *out ? 0 : -1;
}

/* every allocation failing in turn: an error each time, nothing leaked
 * (LeakSanitizer checks at exit), the live bytes back where they were, and
 * the next call works and agrees with the first */
static void test_allocation_failure_through_cnn(void **state) {
    int64_t xs[4] = {2, 1, 6, 6}, cws[4] = {3, 1, 3, 3}, cbs[1] = {3}, lws[2] = {4, 27};
    cnn_ctx c = {randn(4, cws, 1, FAROL_F32), randn(1, cbs, 2, FAROL_F32), randn(2, lws, 3, FAROL_F32)};
    farol_tensor *x1 = randn(4, xs, 4, FAROL_F32), *x2 = randn(4, xs, 5, FAROL_F32), *in[2] = {x1, x2};
    int64_t t = 2;
    farol_target all = {FAROL_TARGET_ALL, 1, 0, &t, false};
    farol_tensor *ref[2];
    assert_int_equal(farol_saliency(cnn_forward, &c, 2, in, &all, true, ref), 0);
    size_t live = farol_live_bytes();
    int failures = 0;
    for (int64_t n = 1;; n++) {
        farol_tensor *a[2] = {0};
        farol_alloc_fail_at(n);
        int rc = farol_saliency(cnn_forward, &c, 2, in, &all, true, a);
        farol_alloc_fail_at(0);
        assert_true(farol_grad_enabled());
        if (rc == 0) {
            tu_assert_close("after failures", a[0], ref[0], 0, 0);
            farol_release(a[0]);
            farol_release(a[1]);
            break;
        }
        assert_null(a[0]);
        assert_int_equal(farol_live_bytes(), live);
        failures++;
    }
    assert_true(failures > 20);
    farol_release(ref[0]); farol_release(ref[1]);
    farol_release(x1); farol_release(x2);
    farol_release(c.cw); farol_release(c.cb); farol_release(c.lw);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_target_forms, tu_reset),
        cmocka_unit_test_setup(test_inputs_untouched, tu_reset),
        cmocka_unit_test_setup(test_errors, tu_reset),
        cmocka_unit_test_setup(test_allocation_failure_through_cnn, tu_reset),
    };
    return tu_run(tests, argc, argv);
}
