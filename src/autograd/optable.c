/* The op table: one descriptor per op, indexed by farol_op.  Each backward
 * lives beside its forward in the op's family file (src/ops/<family>.c). */
#include "internal.h"

#include <assert.h>

/* arith.c */
int farol_add_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_sub_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_mul_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_div_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_pow_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_pow_scalar_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_neg_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_where_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_masked_fill_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
/* pointwise.c */
int farol_unary_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_leaky_relu_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_elu_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_clamp_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
/* reduce.c */
int farol_sum_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_mean_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_var_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_std_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_amax_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_amin_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_logsumexp_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_norm_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_max_dim_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
/* softmax.c */
int farol_softmax_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_log_softmax_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
/* matmul.c */
int farol_matmul_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_linear_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
/* shape.c */
int farol_view_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_permute_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_expand_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_select_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_narrow_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_index_select_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_cat_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_stack_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_copy_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_to_dtype_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
/* conv.c */
int farol_conv2d_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
/* pool.c */
int farol_max_pool2d_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_avg_pool2d_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_adaptive_avg_pool2d_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
/* norm.c */
int farol_batch_norm_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_layer_norm_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
/* nn.c */
int farol_embedding_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_dropout_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_cross_entropy_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_mse_loss_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);
int farol_pad_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);

const farol_op_desc farol_ops[FAROL_OP_COUNT] = {
    [FAROL_OP_LEAF] = {"leaf", NULL},
    [FAROL_OP_ADD] = {"add", farol_add_backward},
    [FAROL_OP_SUB] = {"sub", farol_sub_backward},
    [FAROL_OP_MUL] = {"mul", farol_mul_backward},
    [FAROL_OP_DIV] = {"div", farol_div_backward},
    [FAROL_OP_POW] = {"pow", farol_pow_backward},
    [FAROL_OP_POW_SCALAR] = {"pow_scalar", farol_pow_scalar_backward},
    [FAROL_OP_NEG] = {"neg", farol_neg_backward},
    [FAROL_OP_WHERE] = {"where", farol_where_backward},
    [FAROL_OP_MASKED_FILL] = {"masked_fill", farol_masked_fill_backward},
    [FAROL_OP_UNARY] = {"unary", farol_unary_backward},
    [FAROL_OP_LEAKY_RELU] = {"leaky_relu", farol_leaky_relu_backward},
    [FAROL_OP_ELU] = {"elu", farol_elu_backward},
    [FAROL_OP_CLAMP] = {"clamp", farol_clamp_backward},
    [FAROL_OP_SUM] = {"sum", farol_sum_backward},
    [FAROL_OP_MEAN] = {"mean", farol_mean_backward},
    [FAROL_OP_VAR] = {"var", farol_var_backward},
    [FAROL_OP_STD] = {"std", farol_std_backward},
    [FAROL_OP_AMAX] = {"amax", farol_amax_backward},
    [FAROL_OP_AMIN] = {"amin", farol_amin_backward},
    [FAROL_OP_LOGSUMEXP] = {"logsumexp", farol_logsumexp_backward},
    [FAROL_OP_NORM] = {"norm", farol_norm_backward},
    [FAROL_OP_MAX_DIM] = {"max_dim", farol_max_dim_backward},
    [FAROL_OP_SOFTMAX] = {"softmax", farol_softmax_backward},
    [FAROL_OP_LOG_SOFTMAX] = {"log_softmax", farol_log_softmax_backward},
    [FAROL_OP_MATMUL] = {"matmul", farol_matmul_backward},
    [FAROL_OP_LINEAR] = {"linear", farol_linear_backward},
    [FAROL_OP_VIEW] = {"view", farol_view_backward},
    [FAROL_OP_PERMUTE] = {"permute", farol_permute_backward},
    [FAROL_OP_EXPAND] = {"expand", farol_expand_backward},
    [FAROL_OP_SELECT] = {"select", farol_select_backward},
    [FAROL_OP_NARROW] = {"narrow", farol_narrow_backward},
    [FAROL_OP_INDEX_SELECT] = {"index_select", farol_index_select_backward},
    [FAROL_OP_CAT] = {"cat", farol_cat_backward},
    [FAROL_OP_STACK] = {"stack", farol_stack_backward},
    [FAROL_OP_COPY] = {"copy", farol_copy_backward},
    [FAROL_OP_TO_DTYPE] = {"to_dtype", farol_to_dtype_backward},
    [FAROL_OP_CONV2D] = {"conv2d", farol_conv2d_backward},
    [FAROL_OP_MAX_POOL2D] = {"max_pool2d", farol_max_pool2d_backward},
    [FAROL_OP_AVG_POOL2D] = {"avg_pool2d", farol_avg_pool2d_backward},
    [FAROL_OP_ADAPTIVE_AVG_POOL2D] = {"adaptive_avg_pool2d", farol_adaptive_avg_pool2d_backward},
    [FAROL_OP_BATCH_NORM] = {"batch_norm", farol_batch_norm_backward},
    [FAROL_OP_LAYER_NORM] = {"layer_norm", farol_layer_norm_backward},
    [FAROL_OP_EMBEDDING] = {"embedding", farol_embedding_backward},
    [FAROL_OP_DROPOUT] = {"dropout", farol_dropout_backward},
    [FAROL_OP_CROSS_ENTROPY] = {"cross_entropy", farol_cross_entropy_backward},
    [FAROL_OP_MSE_LOSS] = {"mse_loss", farol_mse_loss_backward},
    [FAROL_OP_PAD] = {"pad", farol_pad_backward},
};

static_assert(sizeof farol_ops / sizeof farol_ops[0] == FAROL_OP_COUNT,
              "every op has a descriptor");
