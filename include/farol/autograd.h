/* farol's gradient tape: eager recording, topological backward, pruning. */
#ifndef FAROL_AUTOGRAD_H
#define FAROL_AUTOGRAD_H

#include "farol/export.h"

#include "farol/tensor.h"

/* grad mode is per thread (each thread has its own Lua state) */
FAROL_API bool farol_grad_enabled(void);
FAROL_API bool farol_set_grad_enabled(bool on);  /* returns the previous mode */

/* mark a leaf; an error for non-floating tensors and for non-leaves */
FAROL_API int farol_set_requires_grad(farol_tensor *t, bool on);
/* a tensor is a leaf when no op recorded it */
FAROL_API bool farol_is_leaf(const farol_tensor *t);

/* Gradients of sum_k <outputs[k], grad_outputs[k]> with respect to
 * inputs[0..n_in).  grad_outputs may be NULL (or hold NULLs) for outputs of
 * one element, meaning 1.  Writes a new reference per input into grads (a
 * zero tensor when an input does not reach the outputs).  Touches no .grad
 * and runs only nodes on a path from an output to a requested input, each
 * asked only for the input gradients that lead somewhere. */
FAROL_API int farol_grad(int n_out, farol_tensor *const *outputs, farol_tensor *const *grad_outputs,
               int n_in, farol_tensor *const *inputs, farol_tensor **grads);

/* Accumulates into the .grad of every leaf reachable from output. */
FAROL_API int farol_backward(farol_tensor *output, farol_tensor *grad_output);

FAROL_API void farol_zero_grad(farol_tensor *t);

/* Counters for tests: how many node backwards ran, and how many input
 * gradients they were asked for, since the last reset (this thread). */
typedef struct { int64_t nodes_run; int64_t input_grads_computed; } farol_tape_stats;
FAROL_API farol_tape_stats farol_get_tape_stats(void);
FAROL_API void farol_reset_tape_stats(void);

#endif
