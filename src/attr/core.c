/* The attribution core: run the forward, select each example's target
 * output, take the gradient of their sum w.r.t. the inputs or a layer.
 *
 * Instead of gathering the selected outputs and summing them, the selection
 * becomes the output gradient: a 0/1 mask shaped like the output with a one
 * at each example's selected element.  The gradient is the same and nothing
 * extra is recorded.  Every message names the method the user called. */
#include "attr/core.h"

#include <stdio.h>

/* 0-based index (negative counts from the end) checked against size */
static int check_index(const char *m, int64_t *idx, int64_t size, int out_dim, const farol_tensor *out) {
    int64_t i = *idx < 0 ? *idx + size : *idx;
    if (i < 0 || i >= size) {
        char sh[96];
        farol_set_error("farol: %s: target index " FAROL_IX " is out of range for output dim " FAROL_IX " of "
                        "size %lld (output shape %s)", m,
                        (long long)*idx, (long long)out_dim, (long long)size,
                        farol_shape_str(out->ndim, out->shape, sh, sizeof sh));
        return -1;
    }
    *idx = i;
    return 0;
}

farol_tensor *farol_attr_selection(const char *m, const farol_tensor *out, const farol_target *tg,
                                   int64_t n) {
    char sh[96];
    farol_shape_str(out->ndim, out->shape, sh, sizeof sh);
    if (out->ndim < 1) {
        farol_set_error("farol: %s: the forward output is 0-d; it needs a batch dim of %lld "
                        "examples", m, (long long)n);
        return NULL;
    }
    int n_idx = tg->kind == FAROL_TARGET_NONE ? 0 : tg->n_idx;
    if (n_idx > out->ndim - 1) {
        farol_set_error("farol: %s: target has %d indices per example but output %s has %d "
                        "dims after the batch", m, n_idx, sh, out->ndim - 1);
        return NULL;
    }
    int64_t rest = 1;
    for (int d = 1 + n_idx; d < out->ndim; d++) rest *= out->shape[d];
    if (rest != 1) {
        if (tg->kind == FAROL_TARGET_NONE)
            farol_set_error("farol: %s: a target is needed: the forward output has shape %s "
                            "(%lld elements per example); pass target = a class index", m, sh,
                            (long long)rest);
        else
            farol_set_error("farol: %s: after selecting the target each example still has "
                            "%lld elements (output shape %s); give one index per output dim after "
                            "the batch", m, (long long)rest, sh);
        return NULL;
    }
    int64_t batch = out->shape[0];
    if (tg->kind == FAROL_TARGET_PER_EXAMPLE && tg->need_2d && out->ndim != 2) {
        farol_set_error("farol: %s: one class per example needs a 2-D output (batch, "
                        "classes), got %s; give one index tuple per example instead", m, sh);
        return NULL;
    }
    if (tg->kind == FAROL_TARGET_PER_EXAMPLE) {
        if (tg->n_examples != n) {
            farol_set_error("farol: %s: the per-example target has %lld entries but the batch "
                            "has %lld examples", m, (long long)tg->n_examples, (long long)n);
            return NULL;
        }
        if (batch != n) {
            farol_set_error("farol: %s: the forward output has shape %s: its dim " FAROL_IX0 " must be "
                            "the batch (%lld examples) for a per-example target", m, sh, (long long)n);
            return NULL;
        }
    }
    farol_tensor *mask = farol_zeros(out->ndim, out->shape, out->dtype);
    if (!mask) return NULL;
    int64_t per_example = farol_numel(out) / (batch ? batch : 1);
    for (int64_t e = 0; e < batch; e++) {
        int64_t off = e * per_example;
        for (int j = 0; j < n_idx; j++) {
            int64_t idx = tg->kind == FAROL_TARGET_ALL ? tg->idx[j] : tg->idx[e * n_idx + j];
            if (check_index(m, &idx, out->shape[1 + j], 1 + j, out) < 0) {
                farol_release(mask);
                return NULL;
            }
            off += idx * mask->strides[1 + j];
        }
        if (out->dtype == FAROL_F32) ((float *)farol_data(mask))[off] = 1.0f;
        else ((double *)farol_data(mask))[off] = 1.0;
    }
    return mask;
}

static int check_inputs(const char *m, bool layer, int n_in, farol_tensor *const *inputs) {
    if (n_in < 1) {
        farol_set_error("farol: %s: no inputs given", m);
        return -1;
    }
    for (int i = 0; i < n_in; i++) {
        const farol_tensor *x = inputs[i];
        if (!layer && !farol_is_floating(x->dtype)) {
            farol_set_error("farol: %s: input " FAROL_IX " is %s; attributions need floating inputs "
                            "(float32 or float64)", m, (long long)i, farol_dtype_name(x->dtype));
            return -1;
        }
        if (x->ndim < 1) {
            farol_set_error("farol: %s: input " FAROL_IX " is 0-d; dim " FAROL_IX0 " must be the batch", m, (long long)i);
            return -1;
        }
        if (x->shape[0] != inputs[0]->shape[0]) {
            farol_set_error("farol: %s: input " FAROL_IX " has batch size %lld but input " FAROL_IX0 " has %lld "
                            "(dim " FAROL_IX0 " is the batch and must agree)", m, (long long)i, (long long)x->shape[0],
                            (long long)inputs[0]->shape[0]);
            return -1;
        }
    }
    return 0;
}

int farol_attr_gradient(const farol_attr_call *call, int n_in, farol_tensor *const *inputs,
                        const farol_target *target, farol_tensor **grads) {
    const char *m = call->method;
    int n_grads = call->layer ? 1 : n_in;
    for (int i = 0; i < n_grads; i++) grads[i] = NULL;
    if (check_inputs(m, call->layer, n_in, inputs) < 0) return -1;
    farol_target none = {FAROL_TARGET_NONE, 0, 0, NULL, false};
    if (!target) target = &none;

    int rc = -1;
    /* Only the gradients of the inputs (or the layer) are asked for: the
     * leaves that exist before the call (the model's parameters) are
     * constants during the forward, so ops keep only what input gradients
     * need (no conv input, no batch_norm input).  Not when no input is
     * floating (token ids): a layer's gradient then flows from the
     * parameters alone.  Restored at done. */
    bool any_float = false;
    for (int i = 0; i < n_in; i++) any_float |= farol_is_floating(inputs[i]->dtype);
    uint64_t prev_frozen = farol_freeze_leaves(any_float ? FAROL_FREEZE_NOW : 0);
    farol_tensor **xs = farol_calloc((size_t)n_in, sizeof *xs);
    farol_tensor *out = NULL, *layer = NULL, *mask = NULL;
    if (!xs) {
        farol_set_error("farol: %s: out of memory", m);
        goto done;
    }
    /* the forward sees views of the inputs that require a gradient, made
     * after the freeze, so the caller's tensors keep their requires_grad and
     * .grad (int64 inputs of layer methods are passed as they are) */
    for (int i = 0; i < n_in; i++) {
        if (!(xs[i] = farol_detach(inputs[i]))) goto done;
        if (farol_is_floating(xs[i]->dtype) && farol_set_requires_grad(xs[i], true) < 0) goto done;
    }

    bool prev = farol_set_grad_enabled(true);
    int frc = call->forward(call->ctx, n_in, xs, &out, call->layer ? &layer : NULL);
    if (frc == 0 && layer && !farol_takes_grad(layer) && any_float) {
        /* the layer's tensor does not come from the inputs (a module
         * returning its parameter, or computing from parameters alone):
         * run again with every leaf taking a gradient */
        farol_release(out);
        farol_release(layer);
        out = layer = NULL;
        farol_freeze_leaves(prev_frozen);
        frc = call->forward(call->ctx, n_in, xs, &out, &layer);
    }
    farol_set_grad_enabled(prev);
    if (frc < 0) goto done;
    if (!out) {
        farol_set_error("farol: %s: the forward function returned no tensor", m);
        goto done;
    }
    if (!farol_is_floating(out->dtype)) {
        farol_set_error("farol: %s: the forward output is %s; it must be floating", m,
                        farol_dtype_name(out->dtype));
        goto done;
    }
    if (!out->node) {
        farol_set_error("farol: %s: the forward output does not depend on the inputs (no "
                        "gradient flows back to them)", m);
        goto done;
    }
    if (call->layer) {
        if (!layer) {
            farol_set_error("farol: %s: the layer did not run during the forward (is it a "
                            "submodule the model calls?)", m);
            goto done;
        }
        if (!farol_is_floating(layer->dtype) || !layer->node) {
            farol_set_error("farol: %s: the layer's tensor is %s and %s; no gradient can be "
                            "taken with respect to it", m, farol_dtype_name(layer->dtype),
                            layer->node ? "recorded" : "not recorded on the tape");
            goto done;
        }
    }
    if (!(mask = farol_attr_selection(m, out, target, inputs[0]->shape[0]))) goto done;
    if (farol_grad(1, &out, &mask, n_grads, call->layer ? &layer : xs, grads) < 0) goto done;
    rc = 0;
done:
    farol_freeze_leaves(prev_frozen);
    if (rc < 0)
        for (int i = 0; i < n_grads; i++) {
            farol_release(grads[i]);
            grads[i] = NULL;
        }
    for (int i = 0; xs && i < n_in; i++) farol_release(xs[i]);
    farol_free(xs);
    farol_release(out);
    farol_release(layer);
    farol_release(mask);
    return rc;
}
