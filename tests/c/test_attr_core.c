/* The attribution core from C (src/attr/core.c): gradients w.r.t. the
 * inputs or a layer's tensor, the method's name in messages, grad mode
 * restored; and interpolate's nearest, bilinear and area values. */
#include "testutil.h"
#include "attr/core.h"

#include <math.h>
#include <string.h>

/* out = relu(x @ w1^T) @ w2^T; the layer is the hidden relu output */
typedef struct { farol_tensor *w1, *w2; bool skip_layer; } mlp_ctx;

static int mlp_forward(void *vctx, int n, farol_tensor *const *xs, farol_tensor **out, farol_tensor **layer) {
    mlp_ctx *c = vctx;
    farol_tensor *h = farol_linear(xs[0], c->w1, NULL);
    farol_tensor *r = h ? farol_unary(h, FAROL_RELU) : NULL;
    *out = r ? farol_linear(r, c->w2, NULL) : NULL;
    farol_release(h);
    if (layer && !c->skip_layer) *layer = farol_retain(r);
    farol_release(r);
    return *out ? 0 : -1;
}

static farol_tensor *randn(int ndim, const int64_t *shape, uint64_t seed) {
    farol_manual_seed(seed);
    farol_tensor *t = farol_randn(ndim, shape, FAROL_F64);
    assert_non_null(t);
    return t;
}

static void test_layer_gradient(void **state) {
    int64_t xs[2] = {3, 4}, w1s[2] = {5, 4}, w2s[2] = {2, 5};
    farol_tensor *x = randn(2, xs, 1), *w1 = randn(2, w1s, 2), *w2 = randn(2, w2s, 3), *g = NULL;
    mlp_ctx c = {w1, w2, false};
    int64_t t = 1;
    farol_target tg = {FAROL_TARGET_ALL, 1, 0, &t, false};
    /* d out[:, 1] / d hidden = w2[1, :] for every example */
    farol_attr_call call = {"LayerTest", mlp_forward, &c, true};
    assert_int_equal(farol_attr_gradient(&call, 1, &x, &tg, &g), 0);
    assert_int_equal(g->ndim, 2);
    assert_int_equal(g->shape[0], 3);
    assert_int_equal(g->shape[1], 5);
    for (int64_t n = 0; n < 3; n++)
        for (int64_t j = 0; j < 5; j++) {
            int64_t gi[2] = {n, j}, wi[2] = {1, j};
            assert_true(fabs(farol_get(g, gi) - farol_get(w2, wi)) < 1e-14);
        }
    farol_release(g);
    assert_true(farol_grad_enabled());
    assert_false(x->node != NULL);   /* the input was left as it was */
    /* a forward that reports no layer tensor: the method is named */
    c.skip_layer = true;
    assert_int_equal(farol_attr_gradient(&call, 1, &x, &tg, &g), -1);
    assert_null(g);
    assert_non_null(strstr(farol_last_error(), "farol: LayerTest: the layer did not run"));
    /* an int64 input is refused outside layer mode, with the method's name (C speaks 0-based) */
    farol_tensor *ids = farol_zeros(2, xs, FAROL_I64);
    call.layer = false;
    assert_int_equal(farol_attr_gradient(&call, 1, &ids, &tg, &g), -1);
    assert_non_null(strstr(farol_last_error(), "farol: LayerTest: input 0 is int64"));
    farol_release(ids);
    farol_release(x); farol_release(w1); farol_release(w2);
}

static void test_interpolate(void **state) {
    int64_t s[4] = {1, 1, 2, 2};
    farol_tensor *x = tu_tensor(4, s, (double[]){1, 2, 3, 4});
    farol_tensor *y = farol_interpolate(x, 4, 4, FAROL_INTERP_NEAREST);
    int64_t s4[4] = {1, 1, 4, 4};
    farol_tensor *e = tu_tensor(4, s4, (double[]){1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
    tu_assert_close("nearest", y, e, 0, 0);
    farol_release(y); farol_release(e);
    /* half-pixel bilinear: rows/cols at 0, 0.25, 0.75, 1 of the way */
    y = farol_interpolate(x, 4, 4, FAROL_INTERP_BILINEAR);
    e = tu_tensor(4, s4, (double[]){1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5,
                                    2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4});
    tu_assert_close("bilinear", y, e, 1e-15, 1e-15);
    farol_release(y); farol_release(e);
    /* area down to 1 x 1 is the mean */
    y = farol_interpolate(x, 1, 1, FAROL_INTERP_AREA);
    assert_true(fabs(farol_get_flat(y, 0) - 2.5) < 1e-15);
    farol_release(y);
    /* not recorded, and a bad size is an error */
    farol_set_requires_grad(x, true);
    y = farol_interpolate(x, 3, 3, FAROL_INTERP_NEAREST);
    assert_null(y->node);
    farol_release(y);
    assert_null(farol_interpolate(x, 0, 3, FAROL_INTERP_NEAREST));
    assert_non_null(strstr(farol_last_error(), "farol: interpolate: size must be positive"));
    farol_release(x);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_gradient),
        cmocka_unit_test(test_interpolate),
    };
    return tu_run(tests, argc, argv);
}
