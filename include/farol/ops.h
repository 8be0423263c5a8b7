/* farol's differentiable operations.  Every op records itself on the tape
 * when grad mode is on and an input requires a gradient.  Dims are 0-based
 * and may be negative (counting from the end); FAROL_DIM_ALL reduces over
 * every dim.  Results are new references, NULL on error (farol_last_error). */
#ifndef FAROL_OPS_H
#define FAROL_OPS_H

#include "farol/export.h"

#include "farol/tensor.h"

#define FAROL_DIM_ALL (-1000)

/* arithmetic, NumPy broadcasting; numbers are 0-d tensors */
FAROL_API farol_tensor *farol_add(farol_tensor *a, farol_tensor *b);
FAROL_API farol_tensor *farol_sub(farol_tensor *a, farol_tensor *b);
FAROL_API farol_tensor *farol_mul(farol_tensor *a, farol_tensor *b);
FAROL_API farol_tensor *farol_div(farol_tensor *a, farol_tensor *b);
FAROL_API farol_tensor *farol_pow(farol_tensor *a, farol_tensor *b);
FAROL_API farol_tensor *farol_pow_scalar(farol_tensor *x, double p);
FAROL_API farol_tensor *farol_neg(farol_tensor *x);
FAROL_API farol_tensor *farol_where(farol_tensor *cond, farol_tensor *a, farol_tensor *b);

/* comparisons: not differentiable; float masks (1 or 0) */
typedef enum { FAROL_EQ, FAROL_NE, FAROL_LT, FAROL_LE, FAROL_GT, FAROL_GE } farol_cmp;
FAROL_API farol_tensor *farol_compare(farol_tensor *a, farol_tensor *b, farol_cmp op);
/* x where mask == 0, v where mask != 0; differentiable in x */
FAROL_API farol_tensor *farol_masked_fill(farol_tensor *x, farol_tensor *mask, double v);

/* pointwise */
/* the unary functions, each once: X(ID, name) gives FAROL_<ID> and the
 * function's name (farol_unary_name, and the Lua binding's farol.<name>) */
#define FAROL_UNARY_LIST(X)                                                         \
    X(ABS, abs) X(EXP, exp) X(LOG, log) X(SQRT, sqrt) X(RSQRT, rsqrt) X(SIN, sin)   \
    X(COS, cos) X(TANH, tanh) X(SIGMOID, sigmoid) X(RELU, relu) X(GELU, gelu)       \
    X(SILU, silu) X(SOFTPLUS, softplus) X(SIGN, sign) X(RELU6, relu6)               \
    X(HARDSWISH, hardswish) X(HARDSIGMOID, hardsigmoid)
typedef enum {
#define FAROL_X_UNARY_ENUM(ID, name) FAROL_##ID,
    FAROL_UNARY_LIST(FAROL_X_UNARY_ENUM)
#undef FAROL_X_UNARY_ENUM
    FAROL_UNARY_COUNT
} farol_unary_op;
FAROL_API farol_tensor *farol_unary(farol_tensor *x, farol_unary_op op);
FAROL_API const char *farol_unary_name(farol_unary_op op);
FAROL_API farol_tensor *farol_leaky_relu(farol_tensor *x, double slope);
FAROL_API farol_tensor *farol_elu(farol_tensor *x, double alpha);
FAROL_API farol_tensor *farol_clamp(farol_tensor *x, double lo, double hi); /* +-INFINITY: no bound */

/* reductions over one dim or FAROL_DIM_ALL */
FAROL_API farol_tensor *farol_sum(farol_tensor *x, int dim, bool keepdim);
FAROL_API farol_tensor *farol_mean(farol_tensor *x, int dim, bool keepdim);
FAROL_API farol_tensor *farol_var(farol_tensor *x, int dim, bool keepdim);  /* unbiased */
FAROL_API farol_tensor *farol_std(farol_tensor *x, int dim, bool keepdim);  /* unbiased */
FAROL_API farol_tensor *farol_amax(farol_tensor *x, int dim, bool keepdim); /* ties share the gradient */
FAROL_API farol_tensor *farol_amin(farol_tensor *x, int dim, bool keepdim);
FAROL_API farol_tensor *farol_logsumexp(farol_tensor *x, int dim, bool keepdim);
FAROL_API farol_tensor *farol_norm(farol_tensor *x, int dim, bool keepdim); /* L2 */
/* values along dim and 0-based int64 indices (first extreme); the gradient goes to the index */
FAROL_API farol_tensor *farol_max_dim(farol_tensor *x, int dim, bool keepdim, farol_tensor **indices);
FAROL_API farol_tensor *farol_min_dim(farol_tensor *x, int dim, bool keepdim, farol_tensor **indices);
/* 0-based int64 indices; FAROL_DIM_ALL indexes the flattened tensor */
FAROL_API farol_tensor *farol_argmax(farol_tensor *x, int dim, bool keepdim);
FAROL_API farol_tensor *farol_argmin(farol_tensor *x, int dim, bool keepdim);

FAROL_API farol_tensor *farol_softmax(farol_tensor *x, int dim);
FAROL_API farol_tensor *farol_log_softmax(farol_tensor *x, int dim);

/* scaled dot-product attention, softmax(q k^T * scale + masks) v, one op
 * (src/ops/attention.c).  Masks (NULL: none): attn_mask broadcastable to
 * (..., L, S), floating (q's dtype) added to the scores, int64 forbidding
 * where nonzero; key_padding_mask int64 (B, S) or (S), B = q's first dim,
 * forbidding key s where nonzero.  scale NaN: 1/sqrt(E). */
typedef struct {
    farol_tensor *attn_mask, *key_padding_mask;
    double scale;
} farol_attention_opts;
FAROL_API farol_attention_opts farol_attention_defaults(void);
/* q (..., L, E), k (..., S, E), v (..., S, Ev) -> (..., L, Ev) */
FAROL_API farol_tensor *farol_attention(farol_tensor *q, farol_tensor *k, farol_tensor *v,
                                        const farol_attention_opts *o /* may be NULL */);
/* self-attention on a packed in-projection: qkv (N, L, 3 * heads * D) holds
 * q, k and v side by side -> (N, L, heads * D), the heads side by side */
FAROL_API farol_tensor *farol_self_attention(farol_tensor *qkv, int heads,
                                             const farol_attention_opts *o /* may be NULL */);

/* matrix products */
FAROL_API farol_tensor *farol_matmul(farol_tensor *a, farol_tensor *b);
FAROL_API farol_tensor *farol_linear(farol_tensor *x, farol_tensor *w, farol_tensor *b /* may be NULL */);

/* shapes and views (views share storage; -1 in a size infers it) */
FAROL_API farol_tensor *farol_view(farol_tensor *x, int ndim, const int64_t *shape);
FAROL_API farol_tensor *farol_reshape(farol_tensor *x, int ndim, const int64_t *shape);
FAROL_API farol_tensor *farol_flatten(farol_tensor *x, int start, int end);
FAROL_API farol_tensor *farol_squeeze(farol_tensor *x, int dim); /* FAROL_DIM_ALL: every size-1 dim */
FAROL_API farol_tensor *farol_unsqueeze(farol_tensor *x, int dim);
FAROL_API farol_tensor *farol_transpose(farol_tensor *x, int d1, int d2);
FAROL_API farol_tensor *farol_permute(farol_tensor *x, int ndim, const int *dims);
FAROL_API farol_tensor *farol_expand(farol_tensor *x, int ndim, const int64_t *shape);
FAROL_API farol_tensor *farol_select(farol_tensor *x, int dim, int64_t index);
FAROL_API farol_tensor *farol_narrow(farol_tensor *x, int dim, int64_t start, int64_t length);
FAROL_API farol_tensor *farol_index_select(farol_tensor *x, int dim, farol_tensor *index /* int64, 0-based */);
FAROL_API farol_tensor *farol_cat(int n, farol_tensor *const *xs, int dim);
FAROL_API farol_tensor *farol_stack(int n, farol_tensor *const *xs, int dim);

/* neural-network functions */
typedef struct { int stride[2], padding[2], dilation[2], groups; } farol_conv_opts;
FAROL_API farol_conv_opts farol_conv_defaults(void);
/* x (N, C, L), w (K, C/groups, kL); opts use index 0 */
FAROL_API farol_tensor *farol_conv1d(farol_tensor *x, farol_tensor *w, farol_tensor *b, const farol_conv_opts *o);
/* x (N, C, H, W), w (K, C/groups, kH, kW) */
FAROL_API farol_tensor *farol_conv2d(farol_tensor *x, farol_tensor *w, farol_tensor *b, const farol_conv_opts *o);
/* stride 0 means the kernel; flags left zero are PyTorch's defaults:
 * ceil_mode false, and count_include_pad true (exclude_pad false, avg only) */
typedef struct {
    int kernel[2], stride[2], padding[2];
    bool ceil_mode, exclude_pad;
} farol_pool_opts;
FAROL_API farol_tensor *farol_max_pool2d(farol_tensor *x, const farol_pool_opts *o);
FAROL_API farol_tensor *farol_avg_pool2d(farol_tensor *x, const farol_pool_opts *o);
FAROL_API farol_tensor *farol_adaptive_avg_pool2d(farol_tensor *x, int64_t oh, int64_t ow);
/* inference statistics over channel dim 1; w, b may be NULL */
FAROL_API farol_tensor *farol_batch_norm(farol_tensor *x, farol_tensor *mean, farol_tensor *var,
                               farol_tensor *w, farol_tensor *b, double eps);
/* over the trailing nshape dims; w, b may be NULL */
FAROL_API farol_tensor *farol_layer_norm(farol_tensor *x, int nshape, const int64_t *shape,
                               farol_tensor *w, farol_tensor *b, double eps);
FAROL_API farol_tensor *farol_embedding(farol_tensor *idx /* int64, 0-based */, farol_tensor *w);
FAROL_API farol_tensor *farol_dropout(farol_tensor *x, double p, bool training);
FAROL_API farol_tensor *farol_cross_entropy(farol_tensor *logits, farol_tensor *labels /* int64, 0-based */);
FAROL_API farol_tensor *farol_mse_loss(farol_tensor *a, farol_tensor *b);
/* constant padding; pads as PyTorch: (before, after) pairs from the last dim */
FAROL_API farol_tensor *farol_pad(farol_tensor *x, int npads, const int64_t *pads, double value);

#endif
