/* Internals shared by the engine's layers: the tape node, the op table and
 * the helpers every op family uses.  Not part of the public API. */
#ifndef FAROL_INTERNAL_H
#define FAROL_INTERNAL_H

#include "farol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/oplist.h"

#define FAROL_MAX_SAVED 6

/* FAROL_OP_<ID> for every line of the op list (autograd/oplist.h) */
typedef enum {
#define FAROL_X_ENUM(ID, name, arity, d) FAROL_OP_##ID,
    FAROL_OP_LIST(FAROL_X_ENUM)
#undef FAROL_X_ENUM
    FAROL_OP_COUNT
} farol_op;

/* Op parameters, one struct per op family, in the node's `p`.  An op writes
 * its member when it records and its backward reads the same member. */
typedef union {
    struct { double p; } pow;                     /* pow_scalar */
    struct { int kind; double a, b; } pw;         /* unary (kind), leaky_relu, elu, clamp */
    struct { int dim, kind; bool keepdim; } reduce; /* dim < 0: every dim */
    struct { int dim; } dim;                      /* softmax, log_softmax, cat, stack, index_select */
    struct { int dim; int64_t start, length; } slice; /* select (start = index), narrow */
    struct { int perm[FAROL_MAX_DIMS]; } permute;
    struct { int nb; int64_t batch[FAROL_MAX_DIMS]; } matmul; /* broadcast batch shape */
    farol_conv_opts conv;
    struct { int64_t kernel[2], stride[2], padding[2], out[2]; bool exclude_pad; } pool;
                                                  /* avg_pool2d; adaptive: out only */
    struct { int iw, ib; double eps; int64_t rows, cols; } norm; /* iw, ib: input slots or -1 */
    struct { int64_t before[FAROL_MAX_DIMS]; } pad;
    struct { double scale; int64_t heads; } attn;   /* attention, self_attention */
} farol_op_params;

/* An input of a node: the node its gradient flows to (NULL when that input
 * needs no gradient) and the input's shape, so backward can shape results. */
typedef struct {
    farol_node *fn;
    int ndim;
    int64_t shape[FAROL_MAX_DIMS];
    farol_dtype dtype;
    bool need;   /* set by the tape before backward: compute this gradient */
} farol_edge;

typedef struct farol_op_desc farol_op_desc;

struct farol_node {
    int refcount;
    farol_op op;
    const farol_op_desc *desc; /* the op's row of farol_ops (the tape's own for leaves) */
    uint64_t seq;          /* creation order, so decreasing seq is topological */
    int n_inputs;
    farol_edge *inputs;
    farol_tensor *saved[FAROL_MAX_SAVED];      /* detached views */
    uint32_t saved_version[FAROL_MAX_SAVED];
    int n_saved;
    farol_op_params p;     /* the op's parameters */
    farol_tensor *leaf;    /* FAROL_OP_LEAF: the leaf (weak; cleared when it dies) */
    /* backward scratch, valid during one backward call */
    farol_tensor *grad;
    int mark;
};

/* Backward: for every k with n->inputs[k].need, set gin[k] to a new tensor
 * shaped like input k holding d(loss)/d(input k), given gout = d(loss)/d(out).
 * Runs with grad mode off; may use any farol op.  0 or -1 with the error set. */
typedef int (*farol_backward_fn)(farol_node *n, farol_tensor *gout, farol_tensor **gin);

#define FAROL_X_PROTO_GRAD(name) int farol_##name##_backward(farol_node *, farol_tensor *, farol_tensor **);
#define FAROL_X_PROTO_NOGRAD(name)
#define FAROL_X_PROTO(ID, name, arity, d) FAROL_X_PROTO_##d(name)
FAROL_OP_LIST(FAROL_X_PROTO)
#undef FAROL_X_PROTO

struct farol_op_desc {
    const char *name;
    int arity;                  /* most inputs recorded, or FAROL_VARIADIC */
    bool differentiable;        /* false: backward is NULL by design */
    farol_backward_fn backward;
};

/* the op table (src/ops/optable.c), FAROL_OP_COUNT rows */
extern const farol_op_desc farol_ops[];

/* Recording: the one way an op puts itself on the tape, called after it has
 * computed out (out may be NULL: then it returns NULL):
 *
 *   return farol_record(FAROL_OP_MUL, out, 2, ins, FAROL_SAVE(a, b), NULL);
 *   return farol_record(FAROL_OP_SELECT, out, 1, &x, FAROL_NO_SAVE,
 *                       &(farol_op_params){.slice = {d, i, 1}});
 *
 * When grad mode is on and an input has a node, gives out a node with edges
 * to ins (NULL entries: inputs that take no gradient), saves detached views
 * of the listed tensors (NULL keeps an empty slot) and copies the params.
 * Returns out, or on failure releases out and returns NULL with the error
 * set.  Nothing is recorded otherwise; when the tensors to save are costly to
 * make, test farol_needs_record first. */
#define FAROL_SAVE(...)                                                              \
    (int)(sizeof((farol_tensor *[]){__VA_ARGS__}) / sizeof(farol_tensor *)),        \
        (farol_tensor *[]){__VA_ARGS__}
#define FAROL_NO_SAVE 0, NULL
bool farol_needs_record(int n, farol_tensor *const *inputs);
/* t would get a gradient from an op recorded now: grad mode is on, t has a
 * node, and t is not a leaf frozen by farol_freeze_leaves.  Ops save what a
 * weight's gradient needs only when the weight takes one. */
bool farol_takes_grad(const farol_tensor *t);
/* Treats every leaf made so far (FAROL_FREEZE_NOW) or up to a number given
 * back by an earlier call (0: none) as a constant on this thread: ops record
 * no edge to it and save nothing for its gradient.  The attributions run
 * their forward so: they only ask for the gradients of inputs they mark
 * afterwards, so a model's parameters need no gradient.  Returns the
 * previous setting, to restore. */
#define FAROL_FREEZE_NOW UINT64_MAX
uint64_t farol_freeze_leaves(uint64_t upto);
#define farol_record(op, ...) farol_record_op(op, &farol_ops[op], __VA_ARGS__)
farol_tensor *farol_record_op(farol_op op, const farol_op_desc *desc, farol_tensor *out, int n,
                              farol_tensor *const *inputs, int n_save, farol_tensor *const *save,
                              const farol_op_params *params);
/* Empty shapes.  An op whose output has no element returns at once, after
 * checking its arguments as usual, with
 *   if (farol_shape_empty(nd, shape)) return farol_record_empty(FAROL_OP_X, nd, shape, dt, k, ins);
 * recorded without saved tensors or parameters: the tape never runs the
 * backward of an output with no element (every input's gradient is zeros),
 * nor asks a backward for the gradient of an input with no element.
 * farol_record_empty lives in the ops layer (ops/optable.c). */
bool farol_shape_empty(int ndim, const int64_t *shape);
farol_tensor *farol_record_empty(farol_op op, int ndim, const int64_t *shape, farol_dtype dt, int n,
                                 farol_tensor *const *inputs);

/* saved tensor k, checked against in-place modification since it was saved */
farol_tensor *farol_saved(farol_node *n, int k);

void farol_node_retain(farol_node *n);
void farol_node_release(farol_node *n);

/* ---- the tensor layer's view of the tape ----
 * The tensor layer never calls up into autograd: the tape installs these
 * hooks when it makes its first node (before any tensor can have a node or
 * require a gradient), and the tensor layer calls through them. */
typedef struct {
    void (*release_node)(farol_tensor *t); /* t is being freed and has a node */
    bool (*grad_enabled)(void);
} farol_tape_hooks;
void farol_tensor_set_tape_hooks(const farol_tape_hooks *h);

/* ---- indices in messages ----
 * The engine is 0-based.  An index (a dim, a position, an element number) in
 * an error message is written FAROL_IX with a long long argument:
 *   farol_set_error("farol: f: dim " FAROL_IX " out of range", (long long)d);
 * farol_last_error() shows it 0-based; the Lua binding shows the same
 * message 1-based (farol_last_error_1based).  Negative values (counting from
 * the end) show as they are in both. */
#define FAROL_IX_OPEN "\036"
#define FAROL_IX_CLOSE "\037"
#define FAROL_IX FAROL_IX_OPEN "%lld" FAROL_IX_CLOSE
#define FAROL_IX0 FAROL_IX_OPEN "0" FAROL_IX_CLOSE /* index 0 itself, the first */
const char *farol_last_error_1based(void);

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
/* x: (outer, n, inner) -> out: (outer, inner) summed over n in a fixed order (the
 * same for any thread count), float sums divided by div; int64 wraps */
void farol_sum_lines(farol_dtype dt, void *out, const void *x, int64_t outer, int64_t n,
                     int64_t inner, double div);

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
void *farol_realloc(void *p, size_t n);  /* p may be NULL; NULL on failure (p kept) */
void farol_free(void *p);
int64_t farol_live_allocs(void);         /* blocks not yet freed (for the tests) */
void *farol_aligned_alloc(size_t n);
void farol_aligned_free(void *p);
/* the freed-buffer cache (alloc.c): off in sanitizer builds; bytes it holds */
bool farol_buffer_cache_enabled(void);
size_t farol_cached_bytes(void);

/* a regular file opened for reading (its size in *size), without blocking
 * on a FIFO or a device; NULL with the reason written to why otherwise */
FILE *farol_open_regular(const char *path, char *why, size_t n, uint64_t *size);

/* gives the calling OS thread's OpenMP the process's thread count (OpenMP
 * keeps one per thread); cheap, called on entry from the Lua binding */
void farol_sync_num_threads(void);

/* ---- run-time instruction set (src/tensor/cpu.c) ----
 * A kernel file compiles its hot kernels again between FAROL_ISA_BEGIN_AVX2
 * (or _AVX512) and FAROL_ISA_END under names ending _avx2 (_avx512), and
 * calls them with FAROL_ISA_DISPATCH(name, (args)).  Only for floating-point
 * kernels: gcc 12's AVX-512 code for an int64 reduction gave wrong sums. */
typedef enum { FAROL_ISA_BASE, FAROL_ISA_AVX2, FAROL_ISA_AVX512, FAROL_ISA_COUNT } farol_isa;
farol_isa farol_cpu_isa(void);
const char *farol_cpu_isa_name(void);
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FAROL_HAVE_ISA_VARIANTS 1
#define FAROL_ISA_BEGIN_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define FAROL_ISA_BEGIN_AVX512                                                               \
    _Pragma("GCC push_options")                                                              \
    _Pragma("GCC target(\"avx512f,avx512vl,avx512bw,avx512dq,avx2,fma\")")
#define FAROL_ISA_END _Pragma("GCC pop_options")
#define FAROL_ISA_DISPATCH(name, args)                                                        \
    do {                                                                                      \
        switch (farol_cpu_isa()) {                                                            \
        case FAROL_ISA_AVX512: name##_avx512 args; break;                                     \
        case FAROL_ISA_AVX2: name##_avx2 args; break;                                         \
        default: name args; break;                                                            \
        }                                                                                     \
    } while (0)
#else
#define FAROL_HAVE_ISA_VARIANTS 0
#define FAROL_ISA_DISPATCH(name, args) name args
#endif

/* OpenMP: parallelise a loop only above this many elements of work */
#define FAROL_PAR_MIN 32768

/* ---- gemm.c: every matrix product ---- */

/* C (M x N, row-major, leading dim ldc) = alpha op(A) op(B) + beta C, op(X)
 * = X^T when the flag is set; A, B row-major with leading dims lda, ldb (as
 * cblas_?gemm with CblasRowMajor).  Threaded by farol over blocks of C that
 * do not depend on the thread count (results are the same at any count);
 * single-threaded inside a parallel region.  Dims up to INT_MAX. */
void farol_gemm(farol_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
                int64_t ldc);
/* C = bias (N values, in every row) + op(A) op(B), or as farol_gemm with
 * beta 0 when bias is NULL: the bias written block by block by the thread
 * that computes the block */
void farol_gemm_bias(farol_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                     const void *A, int64_t lda, const void *B, int64_t ldb, const void *bias,
                     void *C, int64_t ldc);
/* the same product as one single-threaded call on the calling thread, on
 * oneDNN's sgemm (dnnl: float32 with fast GEMMs on) or OpenBLAS: for ops
 * that thread over many small products themselves and choose per shape */
void farol_gemm_1t(farol_dtype dt, bool dnnl, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                   double alpha, const void *A, int64_t lda, const void *B, int64_t ldb,
                   double beta, void *C, int64_t ldc);
/* how many blocks farol_gemm cuts an M x N x K product into on `cores` cores */
int farol_gemm_blocks(int64_t M, int64_t N, int64_t K, int cores);

/* ---- blas.c: the BLAS kernel choice ---- */

/* call before the first BLAS call: makes sure the kernel was chosen (once) */
void farol_blas_ready(void);
/* at the entry of heavy ops (conv2d, matmul, linear, attention and their
 * backwards), outside parallel regions: adapts the thread count to other
 * processes' load (threads.c); cheap when called often.  Only there, never
 * inside an op: an op sizes per-thread buffers for the count it starts
 * with, and the count must not change under it. */
void farol_threads_adapt(void);
/* tests: every farol_threads_adapt outside a parallel region then switches
 * between one thread and the count asked for, so that an op which sizes
 * per-thread buffers before it and runs its region after shows (ASan) */
void farol_threads_flip_for_tests(bool on);
/* the thread count for `want` asked, `cores` usable and `foreign` cores
 * busy with other processes on average */
int farol_threads_for_load(int want, int cores, double foreign);
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
