/* The op table: one descriptor per op, generated from the op list
 * (autograd/oplist.h), indexed by farol_op.  Each backward lives beside its
 * forward in the op's family file (src/ops/<family>.c).  The table belongs
 * to the ops layer: an op hands its row to the tape when it records
 * (farol_record), so the tape never reaches up into the ops. */
#include "internal.h"

#include <assert.h>

#define FAROL_X_BACKWARD_GRAD(name) farol_##name##_backward
#define FAROL_X_BACKWARD_NOGRAD(name) NULL
#define FAROL_X_IS_GRAD_GRAD true
#define FAROL_X_IS_GRAD_NOGRAD false
#define FAROL_X_ROW(ID, name, arity, d) \
    [FAROL_OP_##ID] = {#name, arity, FAROL_X_IS_GRAD_##d, FAROL_X_BACKWARD_##d(name)},

/* Unsized, so that its size is the rows it holds, and two rows for one
 * enum member are an error, not a silent override.  What the compiler
 * cannot see (unique names, a finite-difference check per op) the test
 * tests/c/test_optable.c checks by walking this table. */
#pragma GCC diagnostic error "-Woverride-init"
const farol_op_desc farol_ops[] = {FAROL_OP_LIST(FAROL_X_ROW)};

static_assert(sizeof farol_ops / sizeof farol_ops[0] == FAROL_OP_COUNT,
              "the op table has exactly one row per op of the list");

/* an op's empty result (see internal.h), here so the tape need not read the
 * op table */
farol_tensor *farol_record_empty(farol_op op, int ndim, const int64_t *shape, farol_dtype dt, int n,
                                 farol_tensor *const *inputs) {
    return farol_record(op, farol_empty(ndim, shape, dt), n, inputs, FAROL_NO_SAVE, NULL);
}
