/* The op list: every op the tape records, named once.  From it come the
 * farol_op enum and the backward prototypes (internal.h) and the op table
 * (optable.c).  One line per op:
 *
 *   X(ID, name, arity, D)
 *     ID     the enum member FAROL_OP_<ID>
 *     name   the op's name in messages; its backward is farol_<name>_backward,
 *            defined beside the forward in src/ops/<family>.c
 *     arity  the most inputs it records (FAROL_VARIADIC: any number)
 *     D      GRAD: has a backward; NOGRAD: explicitly not differentiable
 *
 * Adding an op: one line here, then see docs/DEVELOPING.md. */
#ifndef FAROL_OPLIST_H
#define FAROL_OPLIST_H

#define FAROL_VARIADIC (-1)

#define FAROL_OP_LIST(X)                                 \
    X(LEAF, leaf, 0, NOGRAD)                             \
    /* arith.c */                                        \
    X(ADD, add, 2, GRAD)                                 \
    X(SUB, sub, 2, GRAD)                                 \
    X(MUL, mul, 2, GRAD)                                 \
    X(DIV, div, 2, GRAD)                                 \
    X(POW, pow, 2, GRAD)                                 \
    X(POW_SCALAR, pow_scalar, 1, GRAD)                   \
    X(NEG, neg, 1, GRAD)                                 \
    X(WHERE, where, 2, GRAD)                             \
    X(MASKED_FILL, masked_fill, 1, GRAD)                 \
    /* pointwise.c (UNARY: every farol_unary_op) */      \
    X(UNARY, unary, 1, GRAD)                             \
    X(LEAKY_RELU, leaky_relu, 1, GRAD)                   \
    X(ELU, elu, 1, GRAD)                                 \
    X(CLAMP, clamp, 1, GRAD)                             \
    /* reduce.c */                                       \
    X(SUM, sum, 1, GRAD)                                 \
    X(MEAN, mean, 1, GRAD)                               \
    X(VAR, var, 1, GRAD)                                 \
    X(STD, std, 1, GRAD)                                 \
    X(AMAX, amax, 1, GRAD)                               \
    X(AMIN, amin, 1, GRAD)                               \
    X(LOGSUMEXP, logsumexp, 1, GRAD)                     \
    X(NORM, norm, 1, GRAD)                               \
    X(MAX_DIM, max_dim, 1, GRAD)                         \
    /* softmax.c */                                      \
    X(SOFTMAX, softmax, 1, GRAD)                         \
    X(LOG_SOFTMAX, log_softmax, 1, GRAD)                 \
    /* attention.c */                                    \
    X(ATTENTION, attention, 4, GRAD)                     \
    X(SELF_ATTENTION, self_attention, 2, GRAD)           \
    /* matmul.c */                                       \
    X(MATMUL, matmul, 2, GRAD)                           \
    X(LINEAR, linear, 3, GRAD)                           \
    /* shape.c */                                        \
    X(VIEW, view, 1, GRAD)                               \
    X(PERMUTE, permute, 1, GRAD)                         \
    X(EXPAND, expand, 1, GRAD)                           \
    X(SELECT, select, 1, GRAD)                           \
    X(NARROW, narrow, 1, GRAD)                           \
    /* join.c */                                         \
    X(INDEX_SELECT, index_select, 2, GRAD)               \
    X(CAT, cat, FAROL_VARIADIC, GRAD)                    \
    X(STACK, stack, FAROL_VARIADIC, GRAD)                \
    X(COPY, copy, 1, GRAD)                               \
    X(TO_DTYPE, to_dtype, 1, GRAD)                       \
    /* conv.c */                                         \
    X(CONV2D, conv2d, 3, GRAD)                           \
    /* pool.c */                                         \
    X(MAX_POOL2D, max_pool2d, 1, GRAD)                   \
    X(AVG_POOL2D, avg_pool2d, 1, GRAD)                   \
    X(ADAPTIVE_AVG_POOL2D, adaptive_avg_pool2d, 1, GRAD) \
    /* norm.c */                                         \
    X(BATCH_NORM, batch_norm, 3, GRAD)                   \
    X(LAYER_NORM, layer_norm, 3, GRAD)                   \
    /* nn.c */                                           \
    X(EMBEDDING, embedding, 1, GRAD)                     \
    X(DROPOUT, dropout, 1, GRAD)                         \
    X(CROSS_ENTROPY, cross_entropy, 1, GRAD)             \
    X(MSE_LOSS, mse_loss, 2, GRAD)                       \
    X(PAD, pad, 1, GRAD)                                 \
    /* modified_relu.c (GuidedBackprop's relu) */        \
    X(MODIFIED_RELU, modified_relu, 1, GRAD)

#endif
