/* Helpers shared by the cmocka suites: tensors from literals, closeness,
 * float64 finite-difference gradient checks and golden fixtures. */
#ifndef FAROL_TESTUTIL_H
#define FAROL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

/* a float64 tensor of the given shape filled from vals (numel values) */
farol_tensor *tu_tensor(int ndim, const int64_t *shape, const double *vals);
/* seeded normal float64 tensor that requires a gradient */
farol_tensor *tu_randn64(int ndim, const int64_t *shape, uint64_t seed);

/* asserts |got - exp| <= atol + rtol*|exp| elementwise and equal shapes;
 * what names the comparison in the failure message */
void tu_assert_close(const char *what, const farol_tensor *got, const farol_tensor *exp,
                     double rtol, double atol);

/* A function of n float64 tensors returning one tensor. */
typedef farol_tensor *(*tu_fn)(void *ctx, farol_tensor **xs);

/* Checks farol_grad of sum(f(xs) * w) (w a fixed random weight) against
 * central differences (step 1e-6) for every xs[k] with requires_grad, in
 * float64; tolerance rtol 1e-6, atol 1e-7.  Asserts on failure. */
void tu_gradcheck(const char *what, tu_fn f, void *ctx, int n, farol_tensor **xs);

/* Loads tests/fixtures/<rel> (e.g. "ops/add.safetensors"); asserts on failure. */
farol_tensor_dict tu_fixture(const char *rel);
/* the fixture tensor "<variant>.<name>"; asserts it exists */
farol_tensor *tu_fx(const farol_tensor_dict *d, const char *variant, const char *name);

/* Checks an op against a fixture variant: runs f on the variant's inputs
 * (names given in order; each floating input gets requires_grad), compares
 * with "<v>.out", then backpropagates "<v>.grad_out" and compares each
 * "<v>.grad_<name>" present in the file; rtol = atol = 1e-10. */
void tu_check_fixture(const farol_tensor_dict *d, const char *variant, tu_fn f, void *ctx,
                      int n, const char *const *names);

/* Per-test setup: a failed assertion in an earlier test may have left grad
 * mode off or an allocation failure armed.  Use with cmocka_unit_test_setup. */
int tu_reset(void **state);
/* Per-test teardown: every byte of tensor storage and every engine
 * allocation made since the test's setup (tu_reset) was freed; so, the
 * first test included, nothing stays alive between tests. */
int tu_check_clean(void **state);

/* A suite's main:  int main(int argc, char **argv) { ... return tu_run(tests, argc, argv); }
 * Runs every test, or with an argument only the tests it names
 * (build/test_conv conv2d_backward: "test_" may be left out; * and ? match
 * like a shell pattern).  Each test without its own setup gets tu_reset and
 * each without its own teardown tu_check_clean. */
#define tu_run(tests, argc, argv) tu_run_group(tests, NULL, NULL, argc, argv)
/* the same with a group setup and teardown (run once around the suite) */
#define tu_run_group(tests, setup, teardown, argc, argv) \
    tu_run_tests(__FILE__, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown, argc, argv)
int tu_run_tests(const char *suite, const struct CMUnitTest *tests, size_t n,
                 CMFixtureFunction group_setup, CMFixtureFunction group_teardown, int argc,
                 char **argv);

/* The counting allocator: fail the nth allocation from now (1-based), 0 = never. */
void farol_alloc_fail_at(int64_t n);
int64_t farol_alloc_count(void);

#endif
