#include "testutil.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* what was alive when the test started: a test that failed and leaked is
 * reported once, not again by every test after it */
static size_t base_bytes;
static int64_t base_allocs;

int tu_reset(void **state) {
    (void)state;
    base_bytes = farol_live_bytes();
    base_allocs = farol_live_allocs();
    farol_set_grad_enabled(true);
    farol_alloc_fail_at(0);
    farol_reset_tape_stats();
    return 0;
}

int tu_check_clean(void **state) {
    (void)state;
    size_t bytes = farol_live_bytes();
    int64_t blocks = farol_live_allocs();
    size_t b0 = base_bytes;
    int64_t a0 = base_allocs;
    base_bytes = bytes;
    base_allocs = blocks;
    if (bytes != b0 || blocks != a0)
        fail_msg("the test left %lld bytes of tensor storage and %lld engine allocations alive",
                 (long long)bytes - (long long)b0, (long long)(blocks - a0));
    return 0;
}

static bool name_matches(const char *pattern, const char *name) {
    char prefixed[256];
    snprintf(prefixed, sizeof prefixed, "test_%s", pattern);
    return fnmatch(pattern, name, 0) == 0 || fnmatch(prefixed, name, 0) == 0;
}

int tu_run_tests(const char *suite, const struct CMUnitTest *tests, size_t n,
                 CMFixtureFunction group_setup, CMFixtureFunction group_teardown, int argc,
                 char **argv) {
    const char *pattern = argc > 1 ? argv[1] : NULL;
    struct CMUnitTest *run = calloc(n ? n : 1, sizeof *run);
    if (!run) return 1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (pattern && !name_matches(pattern, tests[i].name)) continue;
        run[k] = tests[i];
        if (!run[k].setup_func) run[k].setup_func = tu_reset;
        if (!run[k].teardown_func) run[k].teardown_func = tu_check_clean;
        k++;
    }
    if (k == 0) {
        fprintf(stderr, "%s: no test matches '%s'; the tests are:\n", suite, pattern);
        for (size_t i = 0; i < n; i++) fprintf(stderr, "  %s\n", tests[i].name);
        free(run);
        return 1;
    }
    const char *base = strrchr(suite, '/');
    int rc = _cmocka_run_group_tests(base ? base + 1 : suite, run, k, group_setup, group_teardown);
    free(run);
    return rc;
}

farol_tensor *tu_tensor(int ndim, const int64_t *shape, const double *vals) {
    farol_tensor *t = farol_from_data(ndim, shape, FAROL_F64, vals);
    assert_non_null(t);
    return t;
}

farol_tensor *tu_randn64(int ndim, const int64_t *shape, uint64_t seed) {
    farol_manual_seed(seed);
    farol_tensor *t = farol_randn(ndim, shape, FAROL_F64);
    assert_non_null(t);
    assert_int_equal(farol_set_requires_grad(t, true), 0);
    return t;
}

void tu_assert_close(const char *what, const farol_tensor *got, const farol_tensor *exp,
                     double rtol, double atol) {
    char a[96], b[96];
    if (!farol_same_shape(got, exp))
        fail_msg("%s: shape %s, expected %s", what, farol_shape_str(got->ndim, got->shape, a, sizeof a),
                 farol_shape_str(exp->ndim, exp->shape, b, sizeof b));
    int64_t n = farol_numel(got);
    for (int64_t i = 0; i < n; i++) {
        double g = farol_get_flat(got, i), e = farol_get_flat(exp, i);
        bool ok = (isnan(g) && isnan(e)) || g == e || fabs(g - e) <= atol + rtol * fabs(e);
        if (!ok) fail_msg("%s: element %lld is %.12g, expected %.12g", what, (long long)i, g, e);
    }
}

void tu_gradcheck(const char *what, tu_fn f, void *ctx, int n, farol_tensor **xs) {
    farol_tensor *y = f(ctx, xs);
    if (!y) fail_msg("%s: forward failed: %s", what, farol_last_error());
    /* a fixed random weight makes every output element matter */
    farol_manual_seed(99);
    farol_tensor *w = farol_randn(y->ndim, y->shape, FAROL_F64);
    assert_non_null(w);
    farol_tensor *grads[8] = {0}, *wrt[8];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (xs[i]->requires_grad) wrt[k++] = xs[i];
    if (farol_grad(1, &y, &w, k, wrt, grads) < 0) fail_msg("%s: grad failed: %s", what, farol_last_error());
    farol_release(y);

    bool prev = farol_set_grad_enabled(false);
    const double h = 1e-6;
    for (int j = 0; j < k; j++) {
        farol_tensor *x = wrt[j];
        assert_true(farol_is_contiguous(x) && x->dtype == FAROL_F64);
        double *p = farol_data(x);
        int64_t m = farol_numel(x);
        for (int64_t e = 0; e < m; e++) {
            double saved = p[e], val[2];
            for (int s = 0; s < 2; s++) {
                p[e] = saved + (s ? -h : h);
                farol_tensor *o = f(ctx, xs);
                assert_non_null(o);
                double acc = 0;
                for (int64_t q = 0; q < farol_numel(o); q++) acc += farol_get_flat(o, q) * farol_get_flat(w, q);
                val[s] = acc;
                farol_release(o);
            }
            p[e] = saved;
            double num = (val[0] - val[1]) / (2 * h), ana = farol_get_flat(grads[j], e);
            if (fabs(num - ana) > 1e-7 + 1e-6 * fabs(num))
                fail_msg("%s: d/dinput%d[%lld]: analytic %.10g, numeric %.10g", what, j + 1,
                         (long long)e, ana, num);
        }
    }
    farol_set_grad_enabled(prev);
    for (int j = 0; j < k; j++) farol_release(grads[j]);
    farol_release(w);
}

farol_tensor_dict tu_fixture(const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", FAROL_FIXTURES, rel);
    farol_tensor_dict d = {0};
    if (farol_load_safetensors(path, &d) < 0) fail_msg("fixture %s: %s", rel, farol_last_error());
    return d;
}

farol_tensor *tu_fx(const farol_tensor_dict *d, const char *variant, const char *name) {
    char key[128];
    if (snprintf(key, sizeof key, "%s.%s", variant, name) >= (int)sizeof key)
        fail_msg("fixture name %s.%s too long", variant, name);
    farol_tensor *t = farol_dict_get(d, key);
    if (!t) fail_msg("fixture tensor %s missing", key);
    return t;
}

void tu_check_fixture(const farol_tensor_dict *d, const char *variant, tu_fn f, void *ctx, int n,
                      const char *const *names) {
    farol_tensor *xs[8];
    char what[160], key[128];
    assert_true(n <= 8);
    for (int i = 0; i < n; i++) {
        xs[i] = farol_clone(tu_fx(d, variant, names[i]));
        assert_non_null(xs[i]);
        if (farol_is_floating(xs[i]->dtype)) assert_int_equal(farol_set_requires_grad(xs[i], true), 0);
    }
    farol_tensor *out = f(ctx, xs);
    if (!out) fail_msg("%s: forward failed: %s", variant, farol_last_error());
    snprintf(what, sizeof what, "%s out", variant);
    tu_assert_close(what, out, tu_fx(d, variant, "out"), 1e-10, 1e-10);

    snprintf(key, sizeof key, "%s.grad_out", variant);
    farol_tensor *gout = farol_dict_get(d, key);
    if (gout) {
        farol_tensor *wrt[8], *grads[8] = {0};
        const char *wrt_names[8];
        int k = 0;
        for (int i = 0; i < n; i++) {
            snprintf(key, sizeof key, "%s.grad_%s", variant, names[i]);
            if (farol_dict_get(d, key)) {
                wrt[k] = xs[i];
                wrt_names[k++] = names[i];
            }
        }
        if (k > 0) {
            if (farol_grad(1, &out, &gout, k, wrt, grads) < 0)
                fail_msg("%s: grad failed: %s", variant, farol_last_error());
            for (int j = 0; j < k; j++) {
                snprintf(key, sizeof key, "grad_%s", wrt_names[j]);
                snprintf(what, sizeof what, "%s %s", variant, key);
                tu_assert_close(what, grads[j], tu_fx(d, variant, key), 1e-10, 1e-10);
                farol_release(grads[j]);
            }
        }
    }
    farol_release(out);
    for (int i = 0; i < n; i++) farol_release(xs[i]);
}
