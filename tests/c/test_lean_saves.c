/* What ops keep for backward when only input gradients are wanted: frozen
 * leaves (farol_freeze_leaves, used by the attributions) get no edge, and
 * conv2d / batch_norm / linear then keep no activation; relu keeps a bit mask and
 * max_pool2d int32 argmaxes always.  Each lean path is checked against
 * finite differences and against the full-save path (bitwise), in float32
 * and float64, and the bytes it keeps are counted. */
#include "testutil.h"

#include <math.h>
#include <string.h>

/* a small ResNet stem and block: conv -> bn -> relu -> maxpool -> conv ->
 * bn, plus the identity, -> relu.  p: conv1 w, bn1 mean var w b, conv2 w,
 * bn2 mean var w b (10 tensors). */
typedef struct {
    farol_tensor *p[10];
} block;

static farol_tensor *block_fn(void *vctx, farol_tensor **xs) {
    block *B = vctx;
    farol_tensor **p = B->p, *x = xs[0];
    farol_conv_opts co = farol_conv_defaults();
    co.padding[0] = co.padding[1] = 1;
    farol_pool_opts po = {{3, 3}, {2, 2}, {1, 1}, false, false};
    farol_tensor *c1 = farol_conv2d(x, p[0], NULL, &co);
    farol_tensor *b1 = farol_batch_norm(c1, p[1], p[2], p[3], p[4], 1e-5);
    farol_tensor *r1 = farol_unary(b1, FAROL_RELU);
    farol_tensor *m = farol_max_pool2d(r1, &po);
    farol_tensor *c2 = farol_conv2d(m, p[5], NULL, &co);
    farol_tensor *b2 = farol_batch_norm(c2, p[6], p[7], p[8], p[9], 1e-5);
    farol_tensor *s = farol_add(b2, m);
    farol_tensor *out = farol_unary(s, FAROL_RELU);
    farol_tensor *tmp[] = {c1, b1, r1, m, c2, b2, s};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) farol_release(tmp[i]);
    return out;
}

static void block_init(block *B, farol_dtype dt, int C, bool params_grad) {
    int64_t wsh[4] = {C, C, 3, 3}, csh[1] = {C};
    farol_manual_seed(11);
    for (int k = 0; k < 10; k++) {
        bool conv = k == 0 || k == 5;
        farol_tensor *t = farol_randn(conv ? 4 : 1, conv ? wsh : csh, dt);
        assert_non_null(t);
        /* var in [0.5, 1.5), conv weights scaled by 0.3 */
        double *v = farol_data(t);
        for (int64_t i = 0; i < farol_numel(t); i++) {
            double e = dt == FAROL_F32 ? ((float *)v)[i] : v[i];
            e = k == 2 || k == 7 ? 0.5 + fmod(fabs(e), 1.0) : conv ? 0.3 * e : e;
            if (dt == FAROL_F32) ((float *)v)[i] = (float)e;
            else v[i] = e;
        }
        assert_non_null(t);
        if (params_grad && k != 1 && k != 2 && k != 6 && k != 7)
            assert_int_equal(farol_set_requires_grad(t, true), 0);
        B->p[k] = t;
    }
}

static void block_free(block *B) {
    for (int k = 0; k < 10; k++) farol_release(B->p[k]);
}

/* d sum(block(x) * r) / dx, with the parameters frozen or not */
static farol_tensor *block_input_grad(block *B, farol_tensor *x0, farol_tensor *r, bool freeze) {
    uint64_t prev = farol_freeze_leaves(freeze ? FAROL_FREEZE_NOW : 0);
    farol_tensor *x = farol_detach(x0);
    assert_int_equal(farol_set_requires_grad(x, true), 0);
    farol_tensor *y = block_fn(B, &x), *g = NULL;
    assert_non_null(y);
    farol_freeze_leaves(prev);
    assert_int_equal(farol_grad(1, &y, &r, 1, &x, &g), 0);
    farol_release(y);
    farol_release(x);
    return g;
}

/* The lean path (frozen parameters) gives the input gradient of the full
 * path bit for bit, and the full path still gives the weight gradients
 * (checked against finite differences in float64). */
static void test_frozen_block_matches_full(void **state) {
    (void)state;
    for (int d = 0; d < 2; d++) {
        farol_dtype dt = d ? FAROL_F64 : FAROL_F32;
        block B;
        block_init(&B, dt, 4, true);
        int64_t xsh[4] = {2, 4, 9, 8};
        farol_tensor *x = farol_randn(4, xsh, dt);
        farol_tensor *y = block_fn(&B, &x);
        farol_tensor *r = farol_randn(y->ndim, y->shape, dt);
        farol_release(y);
        farol_tensor *full = block_input_grad(&B, x, r, false);
        farol_tensor *lean = block_input_grad(&B, x, r, true);
        assert_true(farol_same_shape(full, lean));
        assert_memory_equal(farol_data(full), farol_data(lean),
                            (size_t)farol_numel(full) * farol_dtype_size(dt));
        farol_release(full);
        farol_release(lean);
        farol_release(x);
        farol_release(r);
        block_free(&B);
    }
    /* float64: the input gradient against finite differences, with the
     * parameters taking gradients (full saves) and not (lean saves) */
    for (int pg = 0; pg < 2; pg++) {
        block B;
        block_init(&B, FAROL_F64, 3, pg);
        int64_t xsh[4] = {2, 3, 6, 5};
        farol_tensor *x = tu_randn64(4, xsh, 5);
        tu_gradcheck(pg ? "block, full saves" : "block, lean saves", block_fn, &B, 1, &x);
        farol_release(x);
        block_free(&B);
    }
}

/* each weight of the block, as input 0 of a wrapper: its gradient is taken
 * with the full saves (the weight takes a gradient) */
typedef struct {
    block *B;
    farol_tensor *x;
    int k;
} weight_ctx;

static farol_tensor *weight_fn(void *vctx, farol_tensor **xs) {
    weight_ctx *c = vctx;
    farol_tensor *keep = c->B->p[c->k];
    c->B->p[c->k] = xs[0];
    farol_tensor *out = block_fn(c->B, &c->x);
    c->B->p[c->k] = keep;
    return out;
}

static void test_block_weight_gradients(void **state) {
    (void)state;
    block B;
    block_init(&B, FAROL_F64, 3, false);
    int64_t xsh[4] = {2, 3, 6, 5};
    farol_manual_seed(8);
    farol_tensor *x = farol_randn(4, xsh, FAROL_F64);
    const int ks[] = {0, 3, 4, 5, 8, 9};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
        weight_ctx c = {&B, x, ks[i]};
        farol_tensor *w = farol_clone(B.p[ks[i]]);
        assert_int_equal(farol_set_requires_grad(w, true), 0);
        tu_gradcheck("block weight", weight_fn, &c, 1, &w);
        farol_release(w);
    }
    farol_release(x);
    block_free(&B);
}

/* batch_norm with a weight that takes no gradient keeps no input: its
 * input gradient and its bias gradient against finite differences */
typedef struct {
    farol_tensor *mean, *var, *w;
} bn_ctx;

static farol_tensor *bn_fn(void *vctx, farol_tensor **xs) {
    bn_ctx *c = vctx;
    return farol_batch_norm(xs[0], c->mean, c->var, c->w, xs[1], 1e-3);
}

static void test_batch_norm_lean_gradcheck(void **state) {
    (void)state;
    int64_t C = 3, xsh[4] = {2, 3, 4, 3};
    farol_manual_seed(3);
    farol_tensor *mean = farol_randn(1, &C, FAROL_F64), *w = farol_randn(1, &C, FAROL_F64);
    farol_tensor *var = farol_full(1, &C, 0.7, FAROL_F64);
    farol_tensor *x = tu_randn64(4, xsh, 4), *b = tu_randn64(1, &C, 5);
    bn_ctx c = {mean, var, w};
    farol_tensor *xs[2] = {x, b};
    tu_gradcheck("batch_norm, w without gradient", bn_fn, &c, 2, xs);
    farol_release(x);
    farol_release(b);
    farol_release(w);
    farol_release(mean);
    farol_release(var);
}

/* The bytes a recorded forward keeps once its intermediate results are
 * released: with frozen parameters, the block keeps no conv or batch_norm
 * activation, only relu's bit masks and the pool's int32 argmaxes (and
 * the outputs it returns); unfrozen, it also keeps what the weight
 * gradients need: the inputs of both convs and both batch_norms. */
static void test_lean_saves_bytes(void **state) {
    (void)state;
    for (int d = 0; d < 2; d++) {
        farol_dtype dt = d ? FAROL_F64 : FAROL_F32;
        size_t es = farol_dtype_size(dt);
        block B;
        block_init(&B, dt, 4, true);
        int64_t xsh[4] = {2, 4, 16, 12};
        farol_tensor *x0 = farol_randn(4, xsh, dt);
        size_t act = 2 * 4 * 16 * 12, pooled = 2 * 4 * 8 * 6; /* elements */
        for (int frozen = 0; frozen < 2; frozen++) {
            uint64_t prev = farol_freeze_leaves(frozen ? FAROL_FREEZE_NOW : 0);
            farol_tensor *x = farol_detach(x0);
            assert_int_equal(farol_set_requires_grad(x, true), 0);
            size_t before = farol_live_bytes();
            farol_tensor *y = block_fn(&B, &x);
            farol_freeze_leaves(prev);
            size_t kept = farol_live_bytes() - before;
            /* y, relu masks (1 bit per element, in 8-byte words), argmaxes
             * (4 bytes per element, in 8-byte words) */
            size_t lean = pooled * es + ((act + 63) / 64 * 8) + ((pooled + 63) / 64 * 8) +
                          ((pooled * 4 + 7) / 8 * 8);
            /* unfrozen: conv1's output (bn1's input), the pool's output
             * (conv2's input), conv2's output (bn2's input) */
            size_t full = lean + (act + 2 * pooled) * es;
            assert_int_equal(kept, frozen ? lean : full);
            farol_release(y);
            farol_release(x);
        }
        farol_release(x0);
        block_free(&B);
    }
}

/* relu's bit mask gives the rule of its backward: the gradient passes where
 * x > 0 and at NaN, not at 0, -0 or below; the forward keeps NaN and -0.
 * Lengths around the vector width, the byte and the threads' chunks. */
static void test_relu_mask_rule(void **state) {
    (void)state;
    const double v[] = {-2, -0.0, 0.0, 1e-30, 3, INFINITY, -INFINITY, NAN, 0.5, -1e-30, 7};
    const int64_t lens[] = {1, 9, 16, 23, 64, 4096 * 2 + 37, 40000 * 3 + 5};
    for (int d = 0; d < 2; d++)
        for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
            farol_dtype dt = d ? FAROL_F64 : FAROL_F32;
            int64_t n = lens[l];
            double *xv = malloc((size_t)n * sizeof *xv), *gv = malloc((size_t)n * sizeof *gv);
            for (int64_t i = 0; i < n; i++) {
                xv[i] = v[(i * 7 + i / 13) % 11];
                gv[i] = (double)(i % 1000) + 1;
            }
            farol_tensor *x64 = farol_from_data(1, &n, FAROL_F64, xv), *g64 = farol_from_data(1, &n, FAROL_F64, gv);
            farol_tensor *x = farol_cast_raw(x64, dt), *go = farol_cast_raw(g64, dt), *g = NULL;
            assert_int_equal(farol_set_requires_grad(x, true), 0);
            farol_tensor *y = farol_unary(x, FAROL_RELU);
            assert_int_equal(farol_grad(1, &y, &go, 1, &x, &g), 0);
            for (int64_t i = 0; i < n; i++) {
                double e = farol_get_flat(x, i), got = farol_get_flat(y, i); /* in dt */
                bool passes = !(e <= 0);
                assert_true(farol_get_flat(g, i) == (passes ? gv[i] : 0.0));
                if (!(isnan(e) ? isnan(got) : got == (e < 0 ? 0.0 : e) && signbit(got) == signbit(e < 0 ? 0.0 : e)))
                    fail_msg("d %d n %lld i %lld x %g got %g", d, (long long)n, (long long)i, e, got);
            }
            farol_tensor *all[] = {x64, g64, x, go, g, y};
            for (size_t k = 0; k < sizeof all / sizeof *all; k++) farol_release(all[k]);
            free(xv);
            free(gv);
        }
}

/* a leaf made after the freeze takes a gradient, one made before does not;
 * the previous setting comes back */
static void test_freeze_scope(void **state) {
    (void)state;
    int64_t n = 3;
    farol_tensor *old = farol_full(1, &n, 2.0, FAROL_F64);
    assert_int_equal(farol_set_requires_grad(old, true), 0);
    assert_true(farol_takes_grad(old));
    uint64_t prev = farol_freeze_leaves(FAROL_FREEZE_NOW);
    assert_false(farol_takes_grad(old));
    farol_tensor *x = farol_full(1, &n, 3.0, FAROL_F64);
    assert_int_equal(farol_set_requires_grad(x, true), 0);
    assert_true(farol_takes_grad(x));
    farol_tensor *y = farol_mul(x, old);     /* saves old for x, nothing for old */
    assert_true(farol_takes_grad(y));
    assert_null(y->node->saved[0]);
    assert_non_null(y->node->saved[1]);
    assert_null(y->node->inputs[1].fn);
    farol_tensor *z = farol_mul(old, old);   /* nothing takes a gradient: not recorded */
    assert_null(z->node);
    assert_true(farol_freeze_leaves(prev) > 0);
    assert_true(farol_takes_grad(old));
    farol_release(z);
    farol_release(y);
    farol_release(x);
    farol_release(old);
}

/* linear keeps x only for w's gradient and w only for x's: with frozen
 * weights it keeps no activation and gives the full path's input gradient
 * bit for bit; with a constant x it keeps no w and w's gradient is right */
static farol_tensor *linear_of_w(void *ctx, farol_tensor **xs) {
    return farol_linear((farol_tensor *)ctx, xs[0], xs[1]);
}

static void test_linear_lean(void **state) {
    (void)state;
    int64_t xsh[3] = {2, 5, 3}, wsh[2] = {4, 3}, bsh[1] = {4}, rsh[3] = {2, 5, 4};
    for (int d = 0; d < 2; d++) {
        farol_dtype dt = d ? FAROL_F64 : FAROL_F32;
        farol_manual_seed(21);
        farol_tensor *x0 = farol_randn(3, xsh, dt), *w = farol_randn(2, wsh, dt),
                     *b = farol_randn(1, bsh, dt), *r = farol_randn(3, rsh, dt), *g[2] = {NULL};
        assert_int_equal(farol_set_requires_grad(w, true), 0);
        assert_int_equal(farol_set_requires_grad(b, true), 0);
        for (int frozen = 0; frozen < 2; frozen++) {
            uint64_t prev = farol_freeze_leaves(frozen ? FAROL_FREEZE_NOW : 0);
            farol_tensor *x = farol_detach(x0);
            assert_int_equal(farol_set_requires_grad(x, true), 0);
            farol_tensor *y = farol_linear(x, w, b);
            farol_freeze_leaves(prev);
            assert_non_null(y);
            if (frozen) assert_null(y->node->saved[0]);
            else assert_non_null(y->node->saved[0]);
            assert_non_null(y->node->saved[1]);
            assert_int_equal(farol_grad(1, &y, &r, 1, &x, &g[frozen]), 0);
            farol_release(y);
            farol_release(x);
        }
        tu_assert_close("linear: frozen vs full dx", g[1], g[0], 0, 0);
        farol_release(g[0]);
        farol_release(g[1]);
        /* x a constant: w is not kept; w's and b's gradients by finite differences */
        if (dt == FAROL_F64) {
            farol_tensor *y = farol_linear(x0, w, b);
            assert_null(y->node->saved[1]);
            assert_non_null(y->node->saved[0]);
            farol_release(y);
            farol_tensor *wb[2] = {w, b};
            tu_gradcheck("linear: dw, db with a constant x", linear_of_w, x0, 2, wb);
        }
        farol_release(x0);
        farol_release(w);
        farol_release(b);
        farol_release(r);
    }
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_frozen_block_matches_full, tu_reset),
        cmocka_unit_test_setup(test_block_weight_gradients, tu_reset),
        cmocka_unit_test_setup(test_batch_norm_lean_gradcheck, tu_reset),
        cmocka_unit_test_setup(test_lean_saves_bytes, tu_reset),
        cmocka_unit_test_setup(test_relu_mask_rule, tu_reset),
        cmocka_unit_test_setup(test_freeze_scope, tu_reset),
        cmocka_unit_test_setup(test_linear_lean, tu_reset),
    };
    return tu_run(tests, argc, argv);
}
