/* Attribution routines.  Saliency has the semantics of Captum's
 * captum.attr.Saliency: the gradient of the sum over examples of the selected
 * outputs with respect to each input, absolute by default. */
#ifndef FAROL_ATTR_H
#define FAROL_ATTR_H

#include "farol/export.h"

#include "farol/tensor.h"

/* The model: given n_in inputs (dim 0 is the batch), set *output to a new
 * reference.  Return 0, or -1 after farol_set_error (the message is kept). */
typedef int (*farol_forward_fn)(void *ctx, int n_in, farol_tensor *const *inputs,
                                farol_tensor **output);

/* Which output element each example contributes (0-based indices into the
 * output dims after the batch dim):
 *   FAROL_TARGET_NONE:    every example's output has exactly one element
 *   FAROL_TARGET_ALL:     the same n_idx indices for every example
 *   FAROL_TARGET_PER_EXAMPLE: n_examples rows of n_idx indices (row-major)
 * After selection each example must contain exactly one element. */
typedef enum { FAROL_TARGET_NONE, FAROL_TARGET_ALL, FAROL_TARGET_PER_EXAMPLE } farol_target_kind;
typedef struct {
    farol_target_kind kind;
    int n_idx;              /* indices per example (dims 1 .. n_idx of the output) */
    int64_t n_examples;     /* PER_EXAMPLE: rows in idx */
    const int64_t *idx;
    bool need_2d;           /* per-example classes (Captum's list of ints): the output must be 2-D */
} farol_target;

/* attrs[k] gets a new tensor shaped and typed like inputs[k].  The inputs are
 * not modified (the forward sees views of them that require a gradient).
 * Grad mode is restored on every path. */
FAROL_API int farol_saliency(farol_forward_fn forward, void *ctx, int n_in, farol_tensor *const *inputs,
                   const farol_target *target, bool abs, farol_tensor **attrs);

#endif
