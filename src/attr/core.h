/* The attribution core every gradient method is built on (Saliency,
 * InputXGradient, IntegratedGradients, NoiseTunnel, GuidedBackprop,
 * Deconvolution, the layer methods), and the pieces only attribution uses:
 * the modified ReLU of GuidedBackprop/Deconvolution and interpolate.
 * Internal to farol: the Lua binding and farol_saliency use it. */
#ifndef FAROL_ATTR_CORE_H
#define FAROL_ATTR_CORE_H

#include "internal.h"

/* The model for the core.  Sets *output to a new reference; when layer is
 * not NULL also sets *layer to a new reference to the tensor whose gradient
 * is wanted (a layer's output or input, captured during the forward).
 * 0, or -1 after farol_set_error. */
typedef int (*farol_attr_forward_fn)(void *ctx, int n_in, farol_tensor *const *inputs,
                                     farol_tensor **output, farol_tensor **layer);

typedef struct {
    const char *method;            /* names the method in every message */
    farol_attr_forward_fn forward;
    void *ctx;
    bool layer;                    /* gradient w.r.t. the forward's *layer, not the inputs;
                                      inputs may then be int64 (token ids) */
} farol_attr_call;

/* Runs the forward on inputs (dim 0 the batch; a batch the caller may have
 * expanded), selects each example's target output and returns in grads the
 * gradient of their sum with respect to each input (n_in tensors), or to the
 * layer tensor (grads[0]) in layer mode.  A per-example target must have one
 * row per example of this batch.  Grad mode is restored on every path;
 * the inputs are not modified. */
int farol_attr_gradient(const farol_attr_call *call, int n_in, farol_tensor *const *inputs,
                        const farol_target *target, farol_tensor **grads);

/* The 0/1 selection mask (shaped like out, one 1 per example) of target
 * over out, whose dim 0 must hold n_examples examples; NULL on error. */
farol_tensor *farol_attr_selection(const char *method, const farol_tensor *out,
                                   const farol_target *target, int64_t n_examples);

/* (src/ops/modified_relu.c) relu whose backward is modified as Captum's GuidedBackprop (deconv false:
 * relu(grad) where the input was positive) or Deconvolution (deconv true:
 * relu(grad) everywhere) */
farol_tensor *farol_modified_relu(farol_tensor *x, bool deconv);

/* PyTorch's interpolate (align_corners = False) of an (N, C, H, W) or
 * (N, C, L) tensor to size (oh, ow) (ow only for 3-D: oh must be 1).
 * Not recorded on the tape. */
typedef enum { FAROL_INTERP_NEAREST, FAROL_INTERP_BILINEAR, FAROL_INTERP_AREA } farol_interp_mode;
farol_tensor *farol_interpolate(farol_tensor *x, int64_t oh, int64_t ow, farol_interp_mode mode);

#endif
