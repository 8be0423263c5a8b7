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

/* The counting allocator: fail the nth allocation from now (1-based), 0 = never. */
void farol_alloc_fail_at(int64_t n);
int64_t farol_alloc_count(void);

#endif
