/* Shape and view ops: views share storage, copies gather and join;
 * fixtures, finite differences, recording and error messages. */
#include "testutil.h"

#include <stdio.h>

#define LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Every test must give back every byte of tensor storage it took. */
static void expect_error(farol_tensor *r, const char *what) {
    assert_null(r);
    if (!strstr(farol_last_error_1based(), what))
        fail_msg("error \"%s\" does not contain \"%s\"", farol_last_error_1based(), what);
}

/* ---- one callback per op; ctx holds its arguments ---- */

typedef struct {
    int nd;
    int64_t shape[FAROL_MAX_DIMS];
    int dims[FAROL_MAX_DIMS];
    int64_t a, b;
    int n;              /* number of inputs for cat/stack */
    bool pre_t;         /* transpose dims 0 and 1 of xs[0] first */
} args;

static farol_tensor *maybe_t(const args *g, farol_tensor *x) {
    return g->pre_t ? farol_transpose(x, 0, 1) : farol_retain(x);
}

#define UNARY_FN(name, call)                                    \
    static farol_tensor *name(void *ctx, farol_tensor **xs) {   \
        const args *g = ctx;                                    \
        (void)g;                                                \
        farol_tensor *x = maybe_t(g, xs[0]);                    \
        if (!x)                                                 \
            return NULL;                                        \
        farol_tensor *y = call;                                 \
        farol_release(x);                                       \
        return y;                                               \
    }

UNARY_FN(f_view, farol_view(x, g->nd, g->shape))
UNARY_FN(f_reshape, farol_reshape(x, g->nd, g->shape))
UNARY_FN(f_flatten, farol_flatten(x, (int)g->a, (int)g->b))
UNARY_FN(f_squeeze, farol_squeeze(x, (int)g->a))
UNARY_FN(f_unsqueeze, farol_unsqueeze(x, (int)g->a))
UNARY_FN(f_transpose, farol_transpose(x, (int)g->a, (int)g->b))
UNARY_FN(f_permute, farol_permute(x, g->nd, g->dims))
UNARY_FN(f_expand, farol_expand(x, g->nd, g->shape))
UNARY_FN(f_select, farol_select(x, (int)g->a, g->b))
UNARY_FN(f_narrow, farol_narrow(x, g->dims[0], g->a, g->b))
UNARY_FN(f_contiguous, farol_contiguous(x))
UNARY_FN(f_clone, farol_clone(x))

/* x:transpose(0, 1):contiguous() as one call */
static farol_tensor *f_t_contiguous(void *ctx, farol_tensor **xs) {
    (void)ctx;
    farol_tensor *t = farol_transpose(xs[0], 0, 1);
    farol_tensor *y = t ? farol_contiguous(t) : NULL;
    farol_release(t);
    return y;
}

/* x: (4, 6) -> narrow(1, 0, 4): (4, 4) with row stride 6 -> view (4, 2, 2) */
static farol_tensor *f_narrow_view(void *ctx, farol_tensor **xs) {
    (void)ctx;
    farol_tensor *n = farol_narrow(xs[0], 1, 0, 4);
    farol_tensor *y = n ? farol_view(n, 3, (int64_t[]){4, 2, 2}) : NULL;
    farol_release(n);
    return y;
}

/* idx given 1-based (as in the fixtures) when a is 1 */
static farol_tensor *f_index_select(void *ctx, farol_tensor **xs) {
    const args *g = ctx;
    farol_tensor *idx = xs[1];
    if (g->a) {
        idx = farol_clone(xs[1]);
        assert_non_null(idx);
        int64_t *p = farol_data(idx);
        for (int64_t i = 0; i < farol_numel(idx); i++)
            p[i] -= 1;
    }
    farol_tensor *x = maybe_t(g, xs[0]);
    farol_tensor *y = farol_index_select(x, g->dims[0], idx);
    farol_release(x);
    if (g->a)
        farol_release(idx);
    return y;
}

static farol_tensor *f_cat(void *ctx, farol_tensor **xs) {
    const args *g = ctx;
    farol_tensor *in[8];
    for (int k = 0; k < g->n; k++)
        in[k] = k == 0 ? maybe_t(g, xs[0]) : farol_retain(xs[k]);
    farol_tensor *y = farol_cat(g->n, in, g->dims[0]);
    for (int k = 0; k < g->n; k++)
        farol_release(in[k]);
    return y;
}

static farol_tensor *f_stack(void *ctx, farol_tensor **xs) {
    const args *g = ctx;
    farol_tensor *in[8];
    for (int k = 0; k < g->n; k++)
        in[k] = k == 0 ? maybe_t(g, xs[0]) : farol_retain(xs[k]);
    farol_tensor *y = farol_stack(g->n, in, g->dims[0]);
    for (int k = 0; k < g->n; k++)
        farol_release(in[k]);
    return y;
}

/* ---- fixtures ---- */

static const char *const X[] = {"x"};

static void check_variants(const char *file, const char *const *variants, const args *a, int n,
                           tu_fn *fns, int n_names, const char *const *names) {
    farol_tensor_dict d = tu_fixture(file);
    for (int i = 0; i < n; i++)
        tu_check_fixture(&d, variants[i], fns[i], (void *)&a[i], n_names, names);
    farol_dict_free(&d);
}

static void test_fixture_transpose(void **state) {
    (void)state;
    const char *v[] = {"v1", "v2", "v3", "v4"};
    args a[] = {{.a = 0, .b = 1}, {.a = 0, .b = 2}, {.a = -1, .b = -2}, {.a = 0, .b = 1}};
    tu_fn f[] = {f_transpose, f_transpose, f_transpose, f_transpose};
    check_variants("ops/transpose.safetensors", v, a, LEN(v), f, 1, X);
}

static void test_fixture_permute(void **state) {
    (void)state;
    const char *v[] = {"v1", "v2"};
    args a[] = {{.nd = 3, .dims = {2, 0, 1}}, {.nd = 4, .dims = {1, 3, 0, 2}}};
    tu_fn f[] = {f_permute, f_permute};
    check_variants("ops/permute.safetensors", v, a, LEN(v), f, 1, X);
}

static void test_fixture_narrow(void **state) {
    (void)state;
    const char *v[] = {"v1", "v2", "v3"};
    args a[] = {{.dims = {1}, .a = 1, .b = 3}, {.dims = {0}, .a = 0, .b = 1},
                {.dims = {-1}, .a = 2, .b = 2}};
    tu_fn f[] = {f_narrow, f_narrow, f_narrow};
    check_variants("ops/narrow.safetensors", v, a, LEN(v), f, 1, X);
}

static void test_fixture_select(void **state) {
    (void)state;
    const char *v[] = {"v1", "v2", "v3", "v4"};
    args a[] = {{.a = 1, .b = 2}, {.a = 0, .b = -1}, {.a = 0, .b = 1}, {.a = 2, .b = 0}};
    tu_fn f[] = {f_select, f_select, f_select, f_select};
    check_variants("ops/select.safetensors", v, a, LEN(v), f, 1, X);
}

static void test_fixture_index_select(void **state) {
    (void)state;
    const char *v[] = {"v1", "v2"};
    const char *names[] = {"x", "idx"};
    args a[] = {{.dims = {0}, .a = 1}, {.dims = {1}, .a = 1}};
    tu_fn f[] = {f_index_select, f_index_select};
    check_variants("ops/index_select.safetensors", v, a, LEN(v), f, 2, names);
}

static void test_fixture_expand(void **state) {
    (void)state;
    const char *v[] = {"v1", "v2", "v3", "v4"};
    args a[] = {{.nd = 2, .shape = {3, 4}},
                {.nd = 3, .shape = {2, 3, 4}},
                {.nd = 3, .shape = {-1, 5, -1}},
                {.nd = 3, .shape = {2, 3, 4}}};
    tu_fn f[] = {f_expand, f_expand, f_expand, f_expand};
    check_variants("ops/expand.safetensors", v, a, LEN(v), f, 1, X);
}

static void test_fixture_view_reshape(void **state) {
    (void)state;
    const char *v[] = {"v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10"};
    args a[] = {
        {.nd = 2, .shape = {3, 8}},
        {.nd = 2, .shape = {-1, 6}},
        {.nd = 1, .shape = {12}, .pre_t = true},
        {.a = 0, .b = -1},
        {.a = 1, .b = -1},
        {.a = FAROL_DIM_ALL},
        {.a = 1},
        {.a = 0},
        {.a = 2},
        {0},
    };
    tu_fn f[] = {f_view,      f_reshape,   f_reshape,   f_flatten,   f_flatten,
                 f_squeeze,   f_squeeze,   f_unsqueeze, f_unsqueeze, f_t_contiguous};
    check_variants("ops/view_reshape.safetensors", v, a, LEN(v), f, 1, X);
}

static void test_fixture_cat(void **state) {
    (void)state;
    const char *names[] = {"x", "y", "z"};
    farol_tensor_dict d = tu_fixture("ops/cat.safetensors");
    args a1 = {.n = 2, .dims = {0}}, a2 = {.n = 3, .dims = {1}}, a3 = {.n = 2, .dims = {-1}};
    tu_check_fixture(&d, "v1", f_cat, &a1, 2, names);
    tu_check_fixture(&d, "v2", f_cat, &a2, 3, names);
    tu_check_fixture(&d, "v3", f_cat, &a3, 2, names);
    farol_dict_free(&d);
}

static void test_fixture_stack(void **state) {
    (void)state;
    const char *names[] = {"x", "y", "z"};
    farol_tensor_dict d = tu_fixture("ops/stack.safetensors");
    args a1 = {.n = 2, .dims = {0}}, a2 = {.n = 3, .dims = {2}}, a3 = {.n = 2, .dims = {1}},
         a4 = {.n = 2, .dims = {-1}};
    tu_check_fixture(&d, "v1", f_stack, &a1, 2, names);
    tu_check_fixture(&d, "v2", f_stack, &a2, 3, names);
    tu_check_fixture(&d, "v3", f_stack, &a3, 2, names);
    tu_check_fixture(&d, "v4", f_stack, &a4, 2, names);
    farol_dict_free(&d);
}

/* ---- finite differences ---- */

static void gradcheck1(const char *what, tu_fn f, const args *a, int nd, const int64_t *shape) {
    farol_tensor *x = tu_randn64(nd, shape, 7);
    tu_gradcheck(what, f, (void *)a, 1, &x);
    farol_release(x);
}

static void test_grad_views(void **state) {
    (void)state;
    int64_t s234[] = {2, 3, 4}, s6[] = {6}, s34[] = {3, 4}, s2131[] = {2, 1, 3, 1},
            s2345[] = {2, 3, 4, 5}, s31[] = {3, 1}, s131[] = {1, 3, 1}, s35[] = {3, 5},
            s46[] = {4, 6};
    args view1 = {.nd = 2, .shape = {4, -1}}, view2 = {.nd = 2, .shape = {2, 3}};
    gradcheck1("view [2,3,4]->[4,-1]", f_view, &view1, 3, s234);
    gradcheck1("view [6]->[2,3]", f_view, &view2, 1, s6);
    args resh1 = {.nd = 3, .shape = {3, 2, 2}}, resh2 = {.nd = 2, .shape = {2, 6}, .pre_t = true};
    gradcheck1("reshape", f_reshape, &resh1, 2, s34);
    gradcheck1("reshape of a transposed input (copy)", f_reshape, &resh2, 2, s34);
    args fl1 = {.a = 1, .b = 2}, fl2 = {.a = 0, .b = 1, .pre_t = true};
    gradcheck1("flatten(1, 2)", f_flatten, &fl1, 3, s234);
    gradcheck1("flatten of a transposed input", f_flatten, &fl2, 3, s234);
    args sq1 = {.a = FAROL_DIM_ALL}, sq2 = {.a = -1};
    gradcheck1("squeeze()", f_squeeze, &sq1, 4, s2131);
    gradcheck1("squeeze(-1)", f_squeeze, &sq2, 4, s2131);
    args un1 = {.a = -1}, un2 = {.a = 1, .pre_t = true};
    gradcheck1("unsqueeze(-1)", f_unsqueeze, &un1, 2, s34);
    gradcheck1("unsqueeze of a transposed input", f_unsqueeze, &un2, 3, s234);
    args tr1 = {.a = 0, .b = 1}, tr2 = {.a = 0, .b = 2};
    gradcheck1("transpose(0, 1)", f_transpose, &tr1, 2, s34);
    gradcheck1("transpose(0, 2)", f_transpose, &tr2, 3, s234);
    args pe1 = {.nd = 4, .dims = {3, 1, 0, 2}}, pe2 = {.nd = 3, .dims = {2, 0, 1}, .pre_t = true};
    gradcheck1("permute 4-d", f_permute, &pe1, 4, s2345);
    gradcheck1("permute of a transposed input", f_permute, &pe2, 3, s234);
    args ex1 = {.nd = 3, .shape = {2, 3, 4}}, ex2 = {.nd = 4, .shape = {2, -1, 3, 5}},
         ex3 = {.nd = 3, .shape = {2, 4, 3}, .pre_t = true};
    gradcheck1("expand new leading dim", f_expand, &ex1, 2, s31);
    gradcheck1("expand with -1", f_expand, &ex2, 3, s131);
    gradcheck1("expand of a transposed input", f_expand, &ex3, 2, s31);
    args se1 = {.a = 1, .b = -1}, se2 = {.a = 0, .b = 2, .pre_t = true};
    gradcheck1("select(1, -1)", f_select, &se1, 2, s35);
    gradcheck1("select of a transposed input", f_select, &se2, 3, s234);
    args na1 = {.dims = {1}, .a = 1, .b = 3}, na2 = {.dims = {0}, .a = -3, .b = 2, .pre_t = true};
    gradcheck1("narrow(1, 1, 3)", f_narrow, &na1, 2, s35);
    gradcheck1("narrow of a transposed input", f_narrow, &na2, 2, s46);
    // a view of a narrowed (non-contiguous but viewable) tensor
    gradcheck1("view of a column slice", f_narrow_view, NULL, 2, s46);
}

static void test_grad_copies(void **state) {
    (void)state;
    int64_t s34[] = {3, 4}, s253[] = {2, 5, 3};
    args co = {.pre_t = true}, cl1 = {0}, cl2 = {.pre_t = true};
    gradcheck1("contiguous of a transposed input", f_contiguous, &co, 2, s34);
    gradcheck1("clone", f_clone, &cl1, 2, s34);
    gradcheck1("clone of a transposed input", f_clone, &cl2, 3, s253);

    // index_select with repeated indices: gradients accumulate
    int64_t ivals[] = {2, 0, 2, 2, 1}, n5 = 5, ivals2[] = {4, 4, 0};
    farol_tensor *idx = farol_from_data(1, &n5, FAROL_I64, ivals);
    farol_tensor *idx2 = farol_from_data(1, (int64_t[]){3}, FAROL_I64, ivals2);
    farol_tensor *xs[2] = {tu_randn64(2, s34, 5), idx};
    args is0 = {.dims = {0}}, is1 = {.dims = {1}, .pre_t = true}, is2 = {.dims = {-2}};
    tu_gradcheck("index_select dim 0, repeats", f_index_select, &is0, 2, xs);
    tu_gradcheck("index_select of a transposed input", f_index_select, &is1, 2, xs);
    farol_release(xs[0]);
    xs[0] = tu_randn64(3, s253, 6);
    xs[1] = idx2;
    tu_gradcheck("index_select dim -2 of 3-d", f_index_select, &is2, 2, xs);
    farol_release(xs[0]);
    farol_release(idx);
    farol_release(idx2);

    farol_tensor *cx[3] = {tu_randn64(2, (int64_t[]){2, 3}, 1), tu_randn64(2, (int64_t[]){2, 1}, 2),
                           tu_randn64(2, (int64_t[]){2, 4}, 3)};
    args cat1 = {.n = 3, .dims = {1}};
    tu_gradcheck("cat dim 1", f_cat, &cat1, 3, cx);
    farol_release(cx[0]);
    cx[0] = tu_randn64(2, (int64_t[]){4, 2}, 4);  // transposed to (2, 4) inside
    args cat2 = {.n = 3, .dims = {-1}, .pre_t = true};
    tu_gradcheck("cat with a transposed input", f_cat, &cat2, 3, cx);
    for (int k = 0; k < 3; k++)
        farol_release(cx[k]);

    farol_tensor *sx[3] = {tu_randn64(2, s34, 1), tu_randn64(2, s34, 2), tu_randn64(2, s34, 3)};
    args st1 = {.n = 3, .dims = {0}}, st2 = {.n = 2, .dims = {-1}};
    tu_gradcheck("stack dim 0", f_stack, &st1, 3, sx);
    tu_gradcheck("stack dim -1", f_stack, &st2, 2, sx);
    farol_release(sx[0]);
    sx[0] = tu_randn64(2, (int64_t[]){4, 3}, 4);
    args st3 = {.n = 3, .dims = {1}, .pre_t = true};
    tu_gradcheck("stack with a transposed input", f_stack, &st3, 3, sx);
    for (int k = 0; k < 3; k++)
        farol_release(sx[k]);
}

/* float32 <-> float64: values convert, the gradient converts back */
static void test_to_dtype(void **state) {
    (void)state;
    int64_t s[] = {2, 3};
    farol_manual_seed(11);
    farol_tensor *x = farol_randn(2, s, FAROL_F32);
    assert_int_equal(farol_set_requires_grad(x, true), 0);
    farol_tensor *y = farol_to_dtype(x, FAROL_F64);
    assert_non_null(y);
    assert_int_equal(y->dtype, FAROL_F64);
    assert_true(y->requires_grad);
    assert_int_equal(y->node->op, FAROL_OP_TO_DTYPE);
    for (int64_t i = 0; i < 6; i++)
        assert_true(farol_get_flat(y, i) == farol_get_flat(x, i));
    double gv[] = {1, -2, 3.5, 0.25, 5, -6};
    farol_tensor *gout = farol_from_data(2, s, FAROL_F64, gv), *gx = NULL;
    assert_int_equal(farol_grad(1, &y, &gout, 1, &x, &gx), 0);
    assert_int_equal(gx->dtype, FAROL_F32);
    for (int64_t i = 0; i < 6; i++)
        assert_true(farol_get_flat(gx, i) == gv[i]);
    farol_release(gx);

    // the same dtype is the tensor itself; int64 is not recorded
    farol_tensor *same = farol_to_dtype(x, FAROL_F32);
    assert_ptr_equal(same, x);
    farol_release(same);
    farol_tensor *xi = farol_to_dtype(x, FAROL_I64);
    assert_non_null(xi);
    assert_false(xi->requires_grad);
    assert_null(xi->node);
    farol_tensor *back = farol_to_dtype(xi, FAROL_F64);
    assert_false(back->requires_grad);
    assert_int_equal((int64_t)farol_get_flat(xi, 0), (int64_t)farol_get_flat(x, 0));
    expect_error(farol_to_dtype(x, (farol_dtype)7), "to_dtype: unknown dtype");
    farol_release(back);
    farol_release(xi);
    farol_release(gout);
    farol_release(y);
    farol_release(x);
}

/* ---- storage sharing and the tape ---- */

static double at(const farol_tensor *t, int64_t i, int64_t j) {
    return farol_get(t, (int64_t[]){i, j});
}

static void test_views_share_storage(void **state) {
    (void)state;
    int64_t s[] = {3, 4};
    farol_tensor *base = farol_arange(0, 12, 1, FAROL_F64);
    farol_tensor *x = farol_view(base, 2, s);
    assert_non_null(x);
    assert_ptr_equal(x->storage, base->storage);

    farol_tensor *t = farol_transpose(x, 0, 1);  // (4, 3)
    assert_int_equal(farol_set(t, (int64_t[]){3, 1}, 100), 0);
    assert_true(at(x, 1, 3) == 100);
    assert_true(farol_get(base, (int64_t[]){7}) == 100);

    farol_tensor *row = farol_select(x, 0, -1);  // x[2, :]
    assert_int_equal(farol_set(row, (int64_t[]){0}, -5), 0);
    assert_true(at(x, 2, 0) == -5);

    farol_tensor *col = farol_select(x, 1, 2);  // x[:, 2]
    assert_int_equal(farol_set(col, (int64_t[]){1}, 42), 0);
    assert_true(at(x, 1, 2) == 42);

    farol_tensor *nar = farol_narrow(x, 1, 1, 2);  // x[:, 1:3]
    assert_int_equal(farol_set(nar, (int64_t[]){2, 1}, 9), 0);
    assert_true(at(x, 2, 2) == 9);

    farol_tensor *un = farol_unsqueeze(nar, 1);  // (3, 1, 2)
    assert_int_equal(farol_set(un, (int64_t[]){0, 0, 0}, 17), 0);
    assert_true(at(x, 0, 1) == 17);
    farol_tensor *sq = farol_squeeze(un, 1);
    assert_int_equal(farol_set(sq, (int64_t[]){1, 0}, 18), 0);
    assert_true(at(x, 1, 1) == 18);

    farol_tensor *pe = farol_permute(un, 3, (int[]){2, 0, 1});  // (2, 3, 1)
    assert_int_equal(farol_set(pe, (int64_t[]){1, 0, 0}, 19), 0);
    assert_true(at(x, 0, 2) == 19);

    farol_tensor *ex = farol_expand(col, 2, (int64_t[]){2, 3});  // reads x[:, 2] twice
    assert_true(farol_get(ex, (int64_t[]){1, 1}) == 42);
    assert_int_equal(ex->strides[0], 0);

    farol_tensor *r = farol_reshape(x, 1, (int64_t[]){12});  // contiguous: a view
    assert_ptr_equal(r->storage, base->storage);
    farol_tensor *rt = farol_reshape(t, 1, (int64_t[]){12});  // transposed: a copy
    assert_ptr_not_equal(rt->storage, base->storage);
    assert_true(farol_get(rt, (int64_t[]){1}) == at(x, 1, 0));
    farol_tensor *fl = farol_flatten(x, 0, -1);
    assert_ptr_equal(fl->storage, base->storage);

    // contiguous: the tensor itself when already contiguous, else a copy
    farol_tensor *c1 = farol_contiguous(x), *c2 = farol_contiguous(t);
    assert_ptr_equal(c1, x);
    assert_ptr_not_equal(c2->storage, base->storage);
    assert_true(farol_is_contiguous(c2));
    assert_true(at(c2, 3, 1) == 100);
    farol_tensor *cl = farol_clone(x);
    assert_ptr_not_equal(cl->storage, base->storage);
    assert_true(at(cl, 2, 0) == -5);

    farol_tensor *all[] = {x, t, row, col, nar, un, sq, pe, ex, r, rt, fl, c1, c2, cl, base};
    for (int i = 0; i < LEN(all); i++)
        farol_release(all[i]);
}

static void test_view_of_strided_input(void **state) {
    (void)state;
    farol_tensor *x = farol_arange(0, 24, 1, FAROL_F32);
    farol_tensor *m = farol_view(x, 2, (int64_t[]){4, 6});
    farol_tensor *rows = farol_narrow(m, 0, 1, 2);  // (2, 6), still one chunk
    farol_tensor *v = farol_view(rows, 3, (int64_t[]){2, 2, 3});
    assert_non_null(v);
    assert_ptr_equal(v->storage, x->storage);
    assert_true(farol_get(v, (int64_t[]){1, 0, 2}) == 14);
    farol_tensor *cols = farol_narrow(m, 1, 0, 4);  // (4, 4) with row stride 6
    farol_tensor *v2 = farol_view(cols, 3, (int64_t[]){4, 2, 2});  // splits a row: fine
    assert_non_null(v2);
    assert_true(farol_get(v2, (int64_t[]){2, 1, 0}) == 14);
    expect_error(farol_view(cols, 1, (int64_t[]){16}), "use reshape");
    farol_tensor *r = farol_reshape(cols, 1, (int64_t[]){16});
    assert_non_null(r);
    assert_true(farol_get(r, (int64_t[]){5}) == 7);
    // a size-1 dim may carry any stride: it never splits a chunk
    farol_tensor *odd = farol_make_view(x, 3, (int64_t[]){2, 1, 3}, (int64_t[]){3, 7, 1}, 0);
    farol_tensor *v3 = farol_view(odd, 1, (int64_t[]){6});
    assert_non_null(v3);
    assert_int_equal(v3->strides[0], 1);
    assert_true(farol_get(v3, (int64_t[]){4}) == 4);
    farol_release(v3);
    farol_release(odd);
    // 0-d <-> one element
    farol_tensor *s = farol_scalar(3, FAROL_F64);
    farol_tensor *f = farol_flatten(s, 0, -1);
    assert_int_equal(f->ndim, 1);
    assert_int_equal(f->shape[0], 1);
    farol_tensor *z = farol_view(f, 0, NULL);
    assert_int_equal(z->ndim, 0);
    assert_true(farol_item(z) == 3);
    farol_tensor *all[] = {x, m, rows, v, cols, v2, r, s, f, z};
    for (int i = 0; i < LEN(all); i++)
        farol_release(all[i]);
}

static void test_recorded_ops(void **state) {
    (void)state;
    farol_tensor *x = tu_randn64(2, (int64_t[]){3, 4}, 2);
    struct {
        farol_tensor *y;
        farol_op op;
    } c[] = {
        {farol_view(x, 1, (int64_t[]){12}), FAROL_OP_VIEW},
        {farol_squeeze(x, 0), FAROL_OP_VIEW},
        {farol_unsqueeze(x, 0), FAROL_OP_VIEW},
        {farol_flatten(x, 0, 1), FAROL_OP_VIEW},
        {farol_transpose(x, 0, 1), FAROL_OP_PERMUTE},
        {farol_expand(x, 3, (int64_t[]){2, 3, 4}), FAROL_OP_EXPAND},
        {farol_select(x, 0, 1), FAROL_OP_SELECT},
        {farol_narrow(x, 1, 0, 2), FAROL_OP_NARROW},
        {farol_clone(x), FAROL_OP_COPY},
        {farol_cat(1, &x, 0), FAROL_OP_CAT},
        {farol_stack(1, &x, 0), FAROL_OP_STACK},
    };
    for (int i = 0; i < LEN(c); i++) {
        assert_non_null(c[i].y);
        assert_true(c[i].y->requires_grad);
        assert_int_equal(c[i].y->node->op, c[i].op);
        farol_release(c[i].y);
    }
    // grad mode off: views are not recorded
    bool prev = farol_set_grad_enabled(false);
    farol_tensor *t = farol_transpose(x, 0, 1);
    assert_false(t->requires_grad);
    assert_null(t->node);
    farol_release(t);
    farol_set_grad_enabled(prev);
    farol_release(x);
}

/* A long chain of views and copies, then backward into the base. */
static void test_chain_backward(void **state) {
    (void)state;
    int64_t s[] = {2, 3, 4};
    farol_tensor *x = tu_randn64(3, s, 4);
    farol_tensor *a = farol_permute(x, 3, (int[]){2, 0, 1});  // (4, 2, 3)
    farol_tensor *b = farol_reshape(a, 2, (int64_t[]){8, 3});  // copy
    farol_tensor *c = farol_narrow(b, 0, 2, 4);                // (4, 3)
    farol_tensor *d = farol_cat(2, (farol_tensor *[]){c, c}, 1);  // (4, 6)
    farol_tensor *g = NULL;
    farol_tensor *ones = farol_full(2, (int64_t[]){4, 6}, 1, FAROL_F64);
    assert_int_equal(farol_grad(1, &d, &ones, 1, &x, &g), 0);
    // element x[i, j, k] reaches b row k*2 + i; rows 2..5 are kept, twice
    for (int64_t i = 0; i < 2; i++)
        for (int64_t j = 0; j < 3; j++)
            for (int64_t k = 0; k < 4; k++) {
                int64_t row = k * 2 + i;
                double want = (row >= 2 && row < 6) ? 2 : 0;
                assert_true(farol_get(g, (int64_t[]){i, j, k}) == want);
            }
    farol_tensor *all[] = {x, a, b, c, d, g, ones};
    for (int i = 0; i < LEN(all); i++)
        farol_release(all[i]);
}

/* Large float32 copies through the fast paths agree with element reads. */
static void test_large_copies(void **state) {
    (void)state;
    int64_t s[] = {3, 128, 100};
    farol_manual_seed(5);
    farol_tensor *x = farol_randn(3, s, FAROL_F32);
    farol_tensor *t = farol_transpose(x, 1, 2);  // (3, 100, 128)
    farol_tensor *c = farol_contiguous(t);
    farol_tensor *cat = farol_cat(2, (farol_tensor *[]){t, c}, 1);  // (3, 200, 128)
    int64_t iv[300];
    for (int i = 0; i < 300; i++)
        iv[i] = (i * 37) % 128;
    farol_tensor *idx = farol_from_data(1, (int64_t[]){300}, FAROL_I64, iv);
    farol_tensor *is = farol_index_select(cat, 2, idx);  // (3, 200, 300)
    for (int64_t b = 0; b < 3; b++)
        for (int64_t i = 0; i < 200; i++)
            for (int64_t j = 0; j < 300; j += 7) {
                double got = farol_get(is, (int64_t[]){b, i, j});
                double want = farol_get(x, (int64_t[]){b, iv[j], i % 100});
                assert_true(got == want);
            }
    farol_tensor *all[] = {x, t, c, cat, idx, is};
    for (int i = 0; i < LEN(all); i++)
        farol_release(all[i]);
}

/* ---- errors ---- */

static void test_errors_view(void **state) {
    (void)state;
    farol_tensor *x = farol_zeros(3, (int64_t[]){2, 3, 4}, FAROL_F32);
    farol_tensor *t = farol_transpose(x, 0, 2);
    expect_error(farol_view(t, 1, (int64_t[]){24}), "view: cannot view a non-contiguous tensor "
                                                   "of shape [4, 3, 2] as [24]");
    expect_error(farol_view(t, 1, (int64_t[]){24}), "use reshape instead");
    expect_error(farol_view(x, 2, (int64_t[]){-1, -1}), "view: only one size may be -1");
    expect_error(farol_view(x, 2, (int64_t[]){5, -1}),
                 "view: shape [5, -1] is invalid for a tensor of shape [2, 3, 4] (24 elements)");
    expect_error(farol_reshape(x, 2, (int64_t[]){3, 5}),
                 "reshape: shape [3, 5] is invalid for a tensor of shape [2, 3, 4]");
    expect_error(farol_view(x, 2, (int64_t[]){-2, 12}), "view: invalid size -2 in [-2, 12]");
    expect_error(farol_view(x, 2, (int64_t[]){0, -1}), "cannot infer the -1 in [0, -1]");
    expect_error(farol_flatten(x, 2, 1), "flatten: start dim 3 comes after end dim 2");
    expect_error(farol_flatten(x, 0, 3), "flatten: dim 4 out of range");
    expect_error(farol_squeeze(x, 3), "squeeze: dim 4 out of range");
    expect_error(farol_unsqueeze(x, 4), "unsqueeze: dim 5 out of range");
    expect_error(farol_unsqueeze(x, -5), "unsqueeze: dim -5 out of range");
    farol_tensor *u = farol_unsqueeze(x, -4);  // -(ndim+1) is the front
    assert_int_equal(u->shape[0], 1);
    farol_release(u);
    farol_release(t);
    farol_release(x);
}

static void test_errors_permute_expand(void **state) {
    (void)state;
    farol_tensor *x = farol_zeros(3, (int64_t[]){2, 3, 1}, FAROL_F32);
    expect_error(farol_permute(x, 3, (int[]){0, 0, 1}),
                 "permute: dims (1, 1, 2) are not a permutation of the tensor's 3 dims: dim 1 "
                 "repeats");
    expect_error(farol_permute(x, 3, (int[]){0, -3, 1}), "not a permutation");
    expect_error(farol_permute(x, 2, (int[]){0, 1}), "permute: 2 dims given for a tensor of 3");
    expect_error(farol_permute(x, 3, (int[]){0, 1, 3}), "permute: dim 4 out of range");
    expect_error(farol_transpose(x, 0, 3), "transpose: dim 4 out of range");
    expect_error(farol_expand(x, 3, (int64_t[]){2, 4, 5}),
                 "expand: cannot expand shape [2, 3, 1] to [2, 4, 5]: dim 2 has size 3, which is "
                 "not 1");
    expect_error(farol_expand(x, 2, (int64_t[]){3, 1}), "expand: 2 sizes given for a tensor of "
                                                        "shape [2, 3, 1]");
    expect_error(farol_expand(x, 4, (int64_t[]){-1, 2, 3, 1}), "size -1 is invalid for new "
                                                               "leading dim 1");
    expect_error(farol_expand(x, 3, (int64_t[]){2, 3, -2}), "size -2 is invalid for existing "
                                                            "dim 3");
    farol_release(x);
}

static void test_errors_select_narrow(void **state) {
    (void)state;
    farol_tensor *x = farol_zeros(2, (int64_t[]){3, 5}, FAROL_F64);
    expect_error(farol_select(x, 0, 3), "select: index 4 is out of range for dim 1 of size 3");
    expect_error(farol_select(x, 1, -6), "select: index -6 is out of range for dim 2 of size 5");
    expect_error(farol_select(x, 2, 0), "select: dim 3 out of range");
    expect_error(farol_narrow(x, 1, 2, 4), "narrow: start 3 with length 4 exceeds dim 2 of size 5");
    expect_error(farol_narrow(x, 1, 6, 0), "narrow: start 7 is out of range");
    expect_error(farol_narrow(x, 1, 0, -1), "exceeds dim 2");
    farol_tensor *s = farol_scalar(1, FAROL_F64);
    expect_error(farol_select(s, 0, 0), "select: cannot select from a 0-d tensor");
    farol_tensor *e = farol_narrow(x, 1, 5, 0);  // an empty slice at the end is fine
    assert_non_null(e);
    assert_int_equal(e->shape[1], 0);
    farol_release(e);
    farol_release(s);
    farol_release(x);
}

static void test_errors_index_select(void **state) {
    (void)state;
    farol_tensor *x = farol_zeros(2, (int64_t[]){4, 3}, FAROL_F64);
    farol_tensor *bad = farol_from_data(1, (int64_t[]){3}, FAROL_I64, (int64_t[]){0, 4, 1});
    expect_error(farol_index_select(x, 0, bad),
                 "index_select: index 5 (at position 2) is out of range for dim 1 of shape [4, 3]");
    farol_tensor *neg = farol_from_data(1, (int64_t[]){1}, FAROL_I64, (int64_t[]){-1});
    expect_error(farol_index_select(x, 1, neg), "index -1 (at position 1) is out of range");
    farol_tensor *fidx = farol_zeros(1, (int64_t[]){2}, FAROL_F32);
    expect_error(farol_index_select(x, 0, fidx),
                 "index_select: index must be a 1-D int64 tensor, got float32 [2]");
    farol_tensor *idx2 = farol_zeros(2, (int64_t[]){1, 1}, FAROL_I64);
    expect_error(farol_index_select(x, 0, idx2), "got int64 [1, 1]");
    farol_tensor *ok = farol_from_data(1, (int64_t[]){1}, FAROL_I64, (int64_t[]){3});
    expect_error(farol_index_select(x, 2, ok), "index_select: dim 3 out of range");
    farol_tensor *all[] = {x, bad, neg, fidx, idx2, ok};
    for (int i = 0; i < LEN(all); i++)
        farol_release(all[i]);
}

static void test_errors_cat_stack(void **state) {
    (void)state;
    farol_tensor *a = farol_zeros(2, (int64_t[]){2, 3}, FAROL_F32);
    farol_tensor *b = farol_zeros(2, (int64_t[]){4, 4}, FAROL_F32);
    farol_tensor *c = farol_zeros(1, (int64_t[]){3}, FAROL_F32);
    farol_tensor *d = farol_zeros(2, (int64_t[]){2, 3}, FAROL_F64);
    farol_tensor *s = farol_scalar(1, FAROL_F32);
    expect_error(farol_cat(2, (farol_tensor *[]){a, b}, 0),
                 "cat: tensor 2 has shape [4, 4] but tensor 1 has shape [2, 3]; shapes must "
                 "match except in dim 1");
    expect_error(farol_cat(2, (farol_tensor *[]){a, c}, 0), "cat: tensor 2 has shape [3]");
    expect_error(farol_cat(2, (farol_tensor *[]){a, d}, 0),
                 "cat: tensor 2 is float64 but tensor 1 is float32");
    expect_error(farol_cat(0, NULL, 0), "cat: needs a list of at least one tensor");
    expect_error(farol_cat(1, &s, 0), "cat: tensor 1 is 0-d");
    expect_error(farol_cat(2, (farol_tensor *[]){a, a}, 2), "cat: dim 3 out of range");
    expect_error(farol_stack(2, (farol_tensor *[]){a, b}, 0),
                 "stack: tensor 2 has shape [4, 4] but tensor 1 has shape [2, 3]");
    expect_error(farol_stack(2, (farol_tensor *[]){a, a}, 3), "stack: dim 4 out of range");
    expect_error(farol_stack(2, (farol_tensor *[]){a, NULL}, 0), "stack: tensor 2 of the list "
                                                                 "is missing");
    farol_tensor *ok = farol_stack(2, (farol_tensor *[]){s, s}, -1);  // 0-d stack to 1-D
    assert_int_equal(ok->ndim, 1);
    assert_int_equal(ok->shape[0], 2);
    farol_tensor *all[] = {a, b, c, d, s, ok};
    for (int i = 0; i < LEN(all); i++)
        farol_release(all[i]);
}

/* Failing any allocation gives NULL (or -1) with a message and leaks nothing,
 * forward and backward. */
typedef farol_tensor *(*make_fn)(farol_tensor *x, farol_tensor *idx);

static farol_tensor *mk_cat(farol_tensor *x, farol_tensor *idx) {
    (void)idx;
    return farol_cat(3, (farol_tensor *[]){x, x, x}, 1);
}

static farol_tensor *mk_stack(farol_tensor *x, farol_tensor *idx) {
    (void)idx;
    return farol_stack(2, (farol_tensor *[]){x, x}, 2);
}

#define MK_T(name, call)                                      \
    static farol_tensor *name(farol_tensor *x, farol_tensor *idx) { \
        (void)idx;                                            \
        farol_tensor *t = farol_transpose(x, 0, 1);           \
        if (!t)                                               \
            return NULL;                                      \
        farol_tensor *y = call;                               \
        farol_release(t);                                     \
        return y;                                             \
    }

MK_T(mk_index_select, farol_index_select(t, 1, idx))
MK_T(mk_reshape, farol_reshape(t, 1, (int64_t[]){12}))
MK_T(mk_select, farol_select(t, 1, 2))
MK_T(mk_narrow, farol_narrow(t, 0, 1, 2))
MK_T(mk_expand, farol_expand(t, 3, (int64_t[]){2, 4, 3}))
MK_T(mk_contiguous, farol_contiguous(t))

static void test_alloc_failures(void **state) {
    (void)state;
    make_fn mk[] = {mk_cat, mk_stack, mk_index_select, mk_reshape,
                    mk_select, mk_narrow, mk_expand, mk_contiguous};
    for (int c = 0; c < LEN(mk); c++) {
        farol_tensor *x = tu_randn64(2, (int64_t[]){3, 4}, 1);
        farol_tensor *idx = farol_from_data(1, (int64_t[]){3}, FAROL_I64, (int64_t[]){1, 1, 0});
        farol_tensor *y = NULL;
        for (int64_t n = 1; !y; n++) {
            assert_true(n < 100);
            farol_alloc_fail_at(n);
            y = mk[c](x, idx);
            farol_alloc_fail_at(0);
            if (!y)
                assert_non_null(strstr(farol_last_error_1based(), "farol:"));
        }
        farol_tensor *gout = farol_full(y->ndim, y->shape, 1, FAROL_F64);
        int rc = -1;
        for (int64_t n = 1; rc < 0; n++) {
            assert_true(n < 100);
            farol_tensor *g = NULL;
            farol_alloc_fail_at(n);
            rc = farol_grad(1, &y, &gout, 1, &x, &g);
            farol_alloc_fail_at(0);
            if (rc < 0)
                assert_non_null(strstr(farol_last_error_1based(), "farol:"));
            farol_release(g);
        }
        farol_release(gout);
        farol_release(y);
        farol_release(idx);
        farol_release(x);
    }
}

/* the engine's messages count from 0; the Lua binding shows the same
 * message counting from 1; negative indices (from the end) stay as they are */
static void test_messages_0_based(void **state) {
    (void)state;
    int64_t sh[2] = {2, 3};
    farol_tensor *x = farol_zeros(2, sh, FAROL_F64);
    assert_null(farol_select(x, 1, 5));
    assert_string_equal(farol_last_error(), "farol: select: index 5 is out of range for dim 1 of size 3");
    assert_string_equal(farol_last_error_1based(),
                        "farol: select: index 6 is out of range for dim 2 of size 3");
    assert_null(farol_select(x, -1, -9));
    assert_string_equal(farol_last_error(), "farol: select: index -9 is out of range for dim -1 of size 3");
    assert_string_equal(farol_last_error_1based(), farol_last_error());
    assert_null(farol_sum(x, 2, false));
    assert_string_equal(farol_last_error(), "farol: sum: dim 2 out of range for a 2-d tensor");
    assert_string_equal(farol_last_error_1based(), "farol: sum: dim 3 out of range for a 2-d tensor");
    farol_release(x);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_0_based),
        cmocka_unit_test(test_fixture_transpose),
        cmocka_unit_test(test_fixture_permute),
        cmocka_unit_test(test_fixture_narrow),
        cmocka_unit_test(test_fixture_select),
        cmocka_unit_test(test_fixture_index_select),
        cmocka_unit_test(test_fixture_expand),
        cmocka_unit_test(test_fixture_view_reshape),
        cmocka_unit_test(test_fixture_cat),
        cmocka_unit_test(test_fixture_stack),
        cmocka_unit_test(test_grad_views),
        cmocka_unit_test(test_grad_copies),
        cmocka_unit_test(test_to_dtype),
        cmocka_unit_test(test_views_share_storage),
        cmocka_unit_test(test_view_of_strided_input),
        cmocka_unit_test(test_recorded_ops),
        cmocka_unit_test(test_chain_backward),
        cmocka_unit_test(test_large_copies),
        cmocka_unit_test(test_errors_view),
        cmocka_unit_test(test_errors_permute_expand),
        cmocka_unit_test(test_errors_select_narrow),
        cmocka_unit_test(test_errors_index_select),
        cmocka_unit_test(test_errors_cat_stack),
        cmocka_unit_test(test_alloc_failures),
    };
    return tu_run(tests, argc, argv);
}
