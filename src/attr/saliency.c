/* Saliency with Captum's semantics: d(sum over examples of the selected
 * outputs)/d(input), absolute value by default.
 *
 * Instead of gathering the selected outputs and summing them, the selection
 * becomes the output gradient: a 0/1 mask shaped like the output with a one
 * at each example's selected element.  The gradient is the same and nothing
 * extra is recorded. */
#include "internal.h"

#include <stdio.h>

/* 0-based index (negative counts from the end) checked against size;
 * messages show it as the Lua user wrote it (1-based, or negative) */
static int check_index(int64_t *idx, int64_t size, int out_dim, const farol_tensor *out) {
    int64_t i = *idx < 0 ? *idx + size : *idx;
    if (i < 0 || i >= size) {
        char sh[96];
        farol_set_error("farol: Saliency: target index %lld is out of range for output dim %d of "
                        "size %lld (output shape %s; indices are 1-based)",
                        (long long)(*idx < 0 ? *idx : *idx + 1), out_dim + 1, (long long)size,
                        farol_shape_str(out->ndim, out->shape, sh, sizeof sh));
        return -1;
    }
    *idx = i;
    return 0;
}

/* the 0/1 selection mask for target over out (N examples) */
static farol_tensor *selection_mask(const farol_tensor *out, const farol_target *tg, int64_t n) {
    char sh[96];
    farol_shape_str(out->ndim, out->shape, sh, sizeof sh);
    if (out->ndim < 1) {
        farol_set_error("farol: Saliency: the forward output is 0-d; it needs a batch dim of %lld "
                        "examples", (long long)n);
        return NULL;
    }
    int n_idx = tg->kind == FAROL_TARGET_NONE ? 0 : tg->n_idx;
    if (n_idx > out->ndim - 1) {
        farol_set_error("farol: Saliency: target has %d indices per example but output %s has %d "
                        "dims after the batch", n_idx, sh, out->ndim - 1);
        return NULL;
    }
    int64_t rest = 1;
    for (int d = 1 + n_idx; d < out->ndim; d++) rest *= out->shape[d];
    if (rest != 1) {
        if (tg->kind == FAROL_TARGET_NONE)
            farol_set_error("farol: Saliency: a target is needed: the forward output has shape %s "
                            "(%lld elements per example); pass target = a class index", sh,
                            (long long)rest);
        else
            farol_set_error("farol: Saliency: after selecting the target each example still has "
                            "%lld elements (output shape %s); give one index per output dim after "
                            "the batch", (long long)rest, sh);
        return NULL;
    }
    int64_t batch = out->shape[0];
    if (tg->kind == FAROL_TARGET_PER_EXAMPLE && tg->need_2d && out->ndim != 2) {
        farol_set_error("farol: Saliency: one class per example needs a 2-D output (batch, "
                        "classes), got %s; give one index tuple per example instead", sh);
        return NULL;
    }
    if (tg->kind == FAROL_TARGET_PER_EXAMPLE) {
        if (tg->n_examples != n) {
            farol_set_error("farol: Saliency: the per-example target has %lld entries but the batch "
                            "has %lld examples", (long long)tg->n_examples, (long long)n);
            return NULL;
        }
        if (batch != n) {
            farol_set_error("farol: Saliency: the forward output has shape %s: its dim 1 must be "
                            "the batch (%lld examples) for a per-example target", sh, (long long)n);
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
            if (check_index(&idx, out->shape[1 + j], 1 + j, out) < 0) {
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

static int check_inputs(int n_in, farol_tensor *const *inputs) {
    if (n_in < 1) {
        farol_set_error("farol: Saliency: no inputs given");
        return -1;
    }
    for (int i = 0; i < n_in; i++) {
        const farol_tensor *x = inputs[i];
        if (!farol_is_floating(x->dtype)) {
            farol_set_error("farol: Saliency: input %d is %s; attributions need floating inputs "
                            "(float32 or float64)", i + 1, farol_dtype_name(x->dtype));
            return -1;
        }
        if (x->ndim < 1) {
            farol_set_error("farol: Saliency: input %d is 0-d; dim 1 must be the batch", i + 1);
            return -1;
        }
        if (x->shape[0] != inputs[0]->shape[0]) {
            farol_set_error("farol: Saliency: input %d has batch size %lld but input 1 has %lld "
                            "(dim 1 is the batch and must agree)", i + 1, (long long)x->shape[0],
                            (long long)inputs[0]->shape[0]);
            return -1;
        }
    }
    return 0;
}

int farol_saliency(farol_forward_fn forward, void *ctx, int n_in, farol_tensor *const *inputs,
                   const farol_target *target, bool abs, farol_tensor **attrs) {
    for (int i = 0; i < n_in; i++) attrs[i] = NULL;
    if (check_inputs(n_in, inputs) < 0) return -1;
    farol_target none = {FAROL_TARGET_NONE, 0, 0, NULL, false};
    if (!target) target = &none;

    int rc = -1;
    farol_tensor **xs = farol_calloc((size_t)n_in, sizeof *xs), **grads = NULL;
    farol_tensor *out = NULL, *mask = NULL;
    if (!xs || !(grads = farol_calloc((size_t)n_in, sizeof *grads))) {
        farol_set_error("farol: Saliency: out of memory");
        goto done;
    }
    /* the forward sees views of the inputs that require a gradient, so the
     * caller's tensors keep their requires_grad and .grad */
    for (int i = 0; i < n_in; i++)
        if (!(xs[i] = farol_detach(inputs[i])) || farol_set_requires_grad(xs[i], true) < 0) goto done;

    bool prev = farol_set_grad_enabled(true);
    int frc = forward(ctx, n_in, xs, &out);
    farol_set_grad_enabled(prev);
    if (frc < 0) goto done;
    if (!out) {
        farol_set_error("farol: Saliency: the forward function returned no tensor");
        goto done;
    }
    if (!farol_is_floating(out->dtype)) {
        farol_set_error("farol: Saliency: the forward output is %s; it must be floating",
                        farol_dtype_name(out->dtype));
        goto done;
    }
    if (!out->node) {
        farol_set_error("farol: Saliency: the forward output does not depend on the inputs (no "
                        "gradient flows back to them)");
        goto done;
    }
    if (!(mask = selection_mask(out, target, inputs[0]->shape[0]))) goto done;
    if (farol_grad(1, &out, &mask, n_in, xs, grads) < 0) goto done;

    prev = farol_set_grad_enabled(false);
    for (int i = 0; i < n_in; i++) {
        /* a fresh tensor either way: the gradient may share memory with the mask */
        attrs[i] = abs ? farol_unary(grads[i], FAROL_ABS) : farol_clone(grads[i]);
        if (!attrs[i]) break;
    }
    farol_set_grad_enabled(prev);
    rc = 0;
    for (int i = 0; i < n_in; i++)
        if (!attrs[i]) rc = -1;
done:
    if (rc < 0)
        for (int i = 0; i < n_in; i++) {
            farol_release(attrs[i]);
            attrs[i] = NULL;
        }
    for (int i = 0; xs && i < n_in; i++) farol_release(xs[i]);
    for (int i = 0; grads && i < n_in; i++) farol_release(grads[i]);
    farol_free(xs);
    farol_free(grads);
    farol_release(out);
    farol_release(mask);
    return rc;
}
