/* The ReLU of GuidedBackprop and Deconvolution: forward is relu; backward
 * overrides relu's gradient as Captum's backward hook on nn.ReLU does:
 *   GuidedBackprop: relu(grad * (out > 0))  (relu of the usual gradient)
 *   Deconvolution:  relu(grad)              (the forward's mask ignored)
 * An op (the tape calls its backward) that only attribution uses; declared
 * in attr/core.h.  The Lua side puts it in place of nn.ReLU
 * modules' forward for the duration of one attribute call. */
#include "attr/core.h"

farol_tensor *farol_modified_relu(farol_tensor *x, bool deconv) {
    if (farol_check_float("modified_relu", "input", x) < 0) return NULL;
    bool prev = farol_set_grad_enabled(false);
    farol_tensor *out = farol_unary(x, FAROL_RELU);
    farol_set_grad_enabled(prev);
    return farol_record(FAROL_OP_MODIFIED_RELU, out, 1, &x, FAROL_SAVE(deconv ? NULL : out),
                        &(farol_op_params){.pw = {.kind = deconv}});
}

int farol_modified_relu_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    farol_tensor *g = farol_unary(gout, FAROL_RELU);
    if (!g || n->p.pw.kind) {  /* Deconvolution: relu(grad) */
        gin[0] = g;
        return g ? 0 : -1;
    }
    farol_tensor *out = farol_saved(n, 0);  /* borrowed */
    farol_tensor *zero = out ? farol_zeros(0, NULL, out->dtype) : NULL;
    farol_tensor *pos = zero ? farol_compare(out, zero, FAROL_GT) : NULL;
    gin[0] = pos ? farol_mul(g, pos) : NULL;
    farol_release(g);
    farol_release(zero);
    farol_release(pos);
    return gin[0] ? 0 : -1;
}
