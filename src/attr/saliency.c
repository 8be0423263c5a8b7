/* Saliency with Captum's semantics: d(sum over examples of the selected
 * outputs)/d(input), absolute value by default.  The C entry point; the work
 * is the attribution core's (core.c). */
#include "attr/core.h"

typedef struct {
    farol_forward_fn forward;
    void *ctx;
} plain_forward;

static int call_plain(void *vctx, int n_in, farol_tensor *const *inputs, farol_tensor **output,
                      farol_tensor **layer) {
    (void)layer;  /* never asked: Saliency takes input gradients */
    plain_forward *p = vctx;
    return p->forward(p->ctx, n_in, inputs, output);
}

int farol_saliency(farol_forward_fn forward, void *ctx, int n_in, farol_tensor *const *inputs,
                   const farol_target *target, bool abs, farol_tensor **attrs) {
    for (int i = 0; i < n_in; i++) attrs[i] = NULL;
    if (n_in < 1) {
        farol_set_error("farol: Saliency: no inputs given");
        return -1;
    }
    farol_tensor **grads = farol_calloc((size_t)n_in, sizeof *grads);
    if (!grads) {
        farol_set_error("farol: Saliency: out of memory");
        return -1;
    }
    plain_forward p = {forward, ctx};
    farol_attr_call call = {"Saliency", call_plain, &p, false};
    int rc = farol_attr_gradient(&call, n_in, inputs, target, grads);
    if (rc == 0) {
        bool prev = farol_set_grad_enabled(false);
        for (int i = 0; i < n_in && rc == 0; i++) {
            /* a fresh tensor either way: the gradient may share memory with the mask */
            attrs[i] = abs ? farol_unary(grads[i], FAROL_ABS) : farol_clone(grads[i]);
            if (!attrs[i]) rc = -1;
        }
        farol_set_grad_enabled(prev);
    }
    if (rc < 0)
        for (int i = 0; i < n_in; i++) {
            farol_release(attrs[i]);
            attrs[i] = NULL;
        }
    for (int i = 0; i < n_in; i++) farol_release(grads[i]);
    farol_free(grads);
    return rc;
}
