/* Internals shared by the engine's layers: the tape node, the op table and
 * the helpers every op family uses.  Not part of the public API. */
#ifndef FAROL_INTERNAL_H
#define FAROL_INTERNAL_H

#include "farol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAROL_MAX_SAVED 6

/* One entry per differentiable op.  Forward functions have op-specific
 * signatures (farol_conv2d(x, w, b, opts) ...), so the table holds what the
 * tape calls: the name and the backward. */
typedef enum {
    FAROL_OP_LEAF,
    /* arith.c */
    FAROL_OP_ADD, FAROL_OP_SUB, FAROL_OP_MUL, FAROL_OP_DIV, FAROL_OP_POW,
    FAROL_OP_POW_SCALAR, FAROL_OP_NEG, FAROL_OP_WHERE, FAROL_OP_MASKED_FILL,
    /* pointwise.c */
    FAROL_OP_UNARY, FAROL_OP_LEAKY_RELU, FAROL_OP_ELU, FAROL_OP_CLAMP,
    /* reduce.c */
    FAROL_OP_SUM, FAROL_OP_MEAN, FAROL_OP_VAR, FAROL_OP_STD, FAROL_OP_AMAX, FAROL_OP_AMIN,
    FAROL_OP_LOGSUMEXP, FAROL_OP_NORM, FAROL_OP_MAX_DIM,
    /* softmax.c */
    FAROL_OP_SOFTMAX, FAROL_OP_LOG_SOFTMAX,
    /* matmul.c */
    FAROL_OP_MATMUL, FAROL_OP_LINEAR,
    /* shape.c */
    FAROL_OP_VIEW, FAROL_OP_PERMUTE, FAROL_OP_EXPAND, FAROL_OP_SELECT, FAROL_OP_NARROW,
    FAROL_OP_INDEX_SELECT, FAROL_OP_CAT, FAROL_OP_STACK, FAROL_OP_COPY, FAROL_OP_TO_DTYPE,
    /* conv.c */
    FAROL_OP_CONV2D,
    /* pool.c */
    FAROL_OP_MAX_POOL2D, FAROL_OP_AVG_POOL2D, FAROL_OP_ADAPTIVE_AVG_POOL2D,
    /* norm.c */
    FAROL_OP_BATCH_NORM, FAROL_OP_LAYER_NORM,
    /* nn.c */
    FAROL_OP_EMBEDDING, FAROL_OP_DROPOUT, FAROL_OP_CROSS_ENTROPY, FAROL_OP_MSE_LOSS, FAROL_OP_PAD,
    FAROL_OP_COUNT
} farol_op;

/* An input of a node: the node its gradient flows to (NULL when that input
 * needs no gradient) and the input's shape, so backward can shape results. */
typedef struct {
    farol_node *fn;
    int ndim;
    int64_t shape[FAROL_MAX_DIMS];
    farol_dtype dtype;
    bool need;   /* set by the tape before backward: compute this gradient */
} farol_edge;

struct farol_node {
    int refcount;
    farol_op op;
    uint64_t seq;          /* creation order, so decreasing seq is topological */
    int n_inputs;
    farol_edge *inputs;
    farol_tensor *saved[FAROL_MAX_SAVED];      /* detached views */
    uint32_t saved_version[FAROL_MAX_SAVED];
    int n_saved;
    int64_t ip[16];        /* op parameters */
    double fp[4];
    farol_tensor *leaf;    /* FAROL_OP_LEAF: the leaf (weak; cleared when it dies) */
    /* backward scratch, valid during one backward call */
    farol_tensor *grad;
    int mark;
};

/* Backward: for every k with n->inputs[k].need, set gin[k] to a new tensor
 * shaped like input k holding d(loss)/d(input k), given gout = d(loss)/d(out).
 * Runs with grad mode off; may use any farol op.  0 or -1 with the error set. */
typedef int (*farol_backward_fn)(farol_node *n, farol_tensor *gout, farol_tensor **gin);

typedef struct {
    const char *name;
    farol_backward_fn backward;
} farol_op_desc;

extern const farol_op_desc farol_ops[FAROL_OP_COUNT];

/* Recording.  After computing out from inputs, an op calls
 *   farol_node *n = farol_record(FAROL_OP_X, out, k, inputs);
 * which returns NULL both when nothing needs recording (check
 * farol_needs_record first if saving tensors is costly) and on failure:
 * distinguish with `out->node`.  Use the pattern:
 *   if (farol_needs_record(k, inputs)) {
 *       farol_node *n = farol_record(...);
 *       if (!n || farol_save(n, x) < 0) { farol_release(out); return NULL; }
 *       n->ip[0] = dim; ...
 *   }
 */
bool farol_needs_record(int n, farol_tensor *const *inputs);
farol_node *farol_record(farol_op op, farol_tensor *out, int n, farol_tensor *const *inputs);
int farol_save(farol_node *n, farol_tensor *t);  /* t may be NULL (keeps a slot) */
/* saved tensor k, checked against in-place modification since it was saved */
farol_tensor *farol_saved(farol_node *n, int k);

void farol_node_retain(farol_node *n);
void farol_node_release(farol_node *n);

/* ---- helpers for op families ---- */

/* normalise a 0-based dim that may be negative; -1 with an error naming fn */
int farol_norm_dim(const char *fn, int dim, int ndim);
/* tensors must be floating for fn; error names the argument */
int farol_check_float(const char *fn, const char *arg, const farol_tensor *t);
/* the common dtype of a binary op: float64 if either is, else float32;
 * int64 op int64 stays int64 */
farol_dtype farol_result_dtype(const farol_tensor *a, const farol_tensor *b);

/* sum g over broadcast dims so it has the given shape (returns a new ref) */
farol_tensor *farol_sum_to(farol_tensor *g, int ndim, const int64_t *shape);

/* A view of t with given shape and strides (shares storage, no recording). */
farol_tensor *farol_make_view(farol_tensor *t, int ndim, const int64_t *shape,
                              const int64_t *strides, int64_t offset);
/* strides of a contiguous tensor of that shape */
void farol_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
/* a contiguous tensor with t's values (t itself, retained, when already so);
 * not recorded: for kernels */
farol_tensor *farol_contig_raw(farol_tensor *t);
/* t converted to dtype dt, contiguous; not recorded */
farol_tensor *farol_cast_raw(farol_tensor *t, farol_dtype dt);

/* Strided loop over an output shape for up to 4 operands.  fn is called for
 * each innermost row with n elements, one data pointer per operand and the
 * operands' byte strides along that row.  Byte strides per operand per dim
 * come in strides[op][dim] (0 for broadcast dims). */
#define FAROL_MAX_OPERANDS 4
typedef void (*farol_row_fn)(void *ctx, int64_t n, char **ptrs, const int64_t *step);
void farol_loop(int ndim, const int64_t *shape, int nops, char **base,
                int64_t strides[][FAROL_MAX_DIMS], farol_row_fn fn, void *ctx);
/* byte strides of t broadcast to an output of ndim dims (right-aligned) */
void farol_broadcast_strides(const farol_tensor *t, int ndim, const int64_t *out_shape,
                             int64_t *bstrides);

/* in-place write check: refuses tensors the tape needs; bumps the version */
int farol_begin_inplace(const char *fn, farol_tensor *t);

/* allocation that can be made to fail in tests (counts every call) */
void *farol_malloc(size_t n);
void *farol_calloc(size_t n, size_t size);
void farol_free(void *p);
void *farol_aligned_alloc(size_t n);
void farol_aligned_free(void *p);

/* a regular file opened for reading (its size in *size), without blocking
 * on a FIFO or a device; NULL with the reason written to why otherwise */
FILE *farol_open_regular(const char *path, char *why, size_t n, uint64_t *size);

/* OpenMP: parallelise a loop only above this many elements of work */
#define FAROL_PAR_MIN 32768

/* ---- blas.c: the BLAS kernel choice ---- */

/* call before the first BLAS call: makes sure the kernel was chosen (once) */
void farol_blas_ready(void);
#define FAROL_CPU_AVX2_FMA 1u
#define FAROL_CPU_AVX512 2u   /* F, CD, BW, DQ, VL, saved by the OS */
unsigned farol_cpu_features(void);
/* the OpenBLAS core to switch to when `picked` is a generic fallback on a CPU
 * with these features, else NULL */
const char *farol_blas_wanted_core(const char *picked, unsigned features);
/* re-runs OpenBLAS's kernel selection as if OPENBLAS_CORETYPE=core (the
 * environment is restored); -1 when this BLAS cannot (not dynamic-arch).
 * No BLAS call may run meanwhile. */
int farol_blas_select_core(const char *core);
/* what the constructor does: fix a generic pick unless the user chose */
void farol_blas_fix_core(void);

#endif
