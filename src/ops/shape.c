/* Views: tensors that share their input's storage with new shape, strides
 * and offset.  view, reshape, flatten, squeeze, unsqueeze, transpose,
 * permute, expand, select and narrow, with their backwards.  Copies that
 * join or gather (cat, stack, index_select, contiguous, clone, to_dtype)
 * live in join.c. */
#include "internal.h"

#include <stdio.h>


/* ---- view and reshape ---- */

/* Resolves a requested shape for a tensor of numel elements: checks the
 * sizes and replaces one -1 by the size that makes the products match. */
static int infer_shape(const char *fn, const farol_tensor *x, int nd, const int64_t *req,
                       int64_t *out) {
    char want[160], have[160];
    if (nd < 0 || nd > FAROL_MAX_DIMS) {
        farol_set_error("farol: %s: %d sizes given, at most %d dims are supported", fn, nd,
                        FAROL_MAX_DIMS);
        return -1;
    }
    int infer = -1;
    int64_t known = 1, span = 1;
    for (int i = 0; i < nd; i++) {
        if (req[i] == -1) {
            if (infer >= 0) {
                farol_set_error("farol: %s: only one size may be -1, got %s", fn,
                                farol_shape_str(nd, req, want, sizeof want));
                return -1;
            }
            infer = i;
        } else if (req[i] < 0) {
            farol_set_error("farol: %s: invalid size %lld in %s", fn, (long long)req[i],
                            farol_shape_str(nd, req, want, sizeof want));
            return -1;
        } else {
            /* the non-zero sizes multiply into the strides: at most 2^40, like numel */
            if (__builtin_mul_overflow(span, req[i] ? req[i] : 1, &span) || span > ((int64_t)1 << 40)) {
                farol_set_error("farol: %s: shape %s is too large", fn,
                                farol_shape_str(nd, req, want, sizeof want));
                return -1;
            }
            known *= req[i];  /* known <= span */
        }
        out[i] = req[i];
    }
    int64_t numel = farol_numel(x);
    if (infer >= 0) {
        if (known == 0) {
            farol_set_error("farol: %s: cannot infer the -1 in %s for a tensor of shape %s: "
                            "the other sizes multiply to 0",
                            fn, farol_shape_str(nd, req, want, sizeof want),
                            farol_shape_str(x->ndim, x->shape, have, sizeof have));
            return -1;
        }
        out[infer] = numel / known;
        known *= out[infer];  // differs from numel when known does not divide it
    }
    if (known != numel) {
        farol_set_error("farol: %s: shape %s is invalid for a tensor of shape %s (%lld elements)",
                        fn, farol_shape_str(nd, req, want, sizeof want),
                        farol_shape_str(x->ndim, x->shape, have, sizeof have), (long long)numel);
        return -1;
    }
    return 0;
}

/* Strides that show x with shape ns without copying, or false when some new
 * dim would span two chunks of memory that are not evenly strided
 * (PyTorch's computeStride). */
static bool view_strides(const farol_tensor *x, int nd, const int64_t *ns, int64_t *st) {
    if (x->ndim == 0) {
        for (int i = 0; i < nd; i++)
            st[i] = 1;
        return true;
    }
    if (farol_numel(x) == 0) {
        farol_contiguous_strides(nd, ns, st);
        return true;
    }
    int view_d = nd - 1;
    int64_t chunk = x->strides[x->ndim - 1];
    int64_t tensor_numel = 1, view_numel = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        tensor_numel *= x->shape[d];
        // a chunk ends where the next outer dim is not laid out right after it
        if (d == 0 || (x->shape[d - 1] != 1 && x->strides[d - 1] != tensor_numel * chunk)) {
            while (view_d >= 0 && (view_numel < tensor_numel || ns[view_d] == 1)) {
                st[view_d] = view_numel * chunk;
                view_numel *= ns[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel)
                return false;
            if (d > 0) {
                chunk = x->strides[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

farol_tensor *farol_view(farol_tensor *x, int ndim, const int64_t *shape) {
    int64_t ns[FAROL_MAX_DIMS], st[FAROL_MAX_DIMS];
    if (infer_shape("view", x, ndim, shape, ns) < 0)
        return NULL;
    if (!view_strides(x, ndim, ns, st)) {
        char want[160], have[160];
        farol_set_error("farol: view: cannot view a non-contiguous tensor of shape %s as %s "
                        "without copying (a new dim would span separate memory chunks); "
                        "use reshape instead",
                        farol_shape_str(x->ndim, x->shape, have, sizeof have),
                        farol_shape_str(ndim, ns, want, sizeof want));
        return NULL;
    }
    farol_tensor *out = farol_make_view(x, ndim, ns, st, x->offset);
    if (!out)
        return NULL;
    return farol_record(FAROL_OP_VIEW, out, 1, &x, FAROL_NO_SAVE, NULL);
}

farol_tensor *farol_reshape(farol_tensor *x, int ndim, const int64_t *shape) {
    int64_t ns[FAROL_MAX_DIMS], st[FAROL_MAX_DIMS];
    if (infer_shape("reshape", x, ndim, shape, ns) < 0)
        return NULL;
    farol_tensor *out;
    if (view_strides(x, ndim, ns, st)) {
        out = farol_make_view(x, ndim, ns, st, x->offset);
    } else {
        // the copy is in logical row-major order; the tape sees one reshape
        farol_tensor *c = farol_contig_raw(x);
        if (!c)
            return NULL;
        farol_contiguous_strides(ndim, ns, st);
        out = farol_make_view(c, ndim, ns, st, c->offset);
        farol_release(c);
    }
    if (!out)
        return NULL;
    return farol_record(FAROL_OP_VIEW, out, 1, &x, FAROL_NO_SAVE, NULL);
}

farol_tensor *farol_flatten(farol_tensor *x, int start, int end) {
    if (x->ndim == 0) {
        // PyTorch: a 0-d tensor flattens to one element, dims -1 and 0 allowed
        if (start < -1 || start > 0 || end < -1 || end > 0) {
            farol_set_error("farol: flatten: dims (" FAROL_IX ", " FAROL_IX ") out of range for a 0-d tensor",
                            (long long)(start), (long long)(end));
            return NULL;
        }
        int64_t one = 1;
        return farol_reshape(x, 1, &one);
    }
    int s = farol_norm_dim("flatten", start, x->ndim);
    if (s < 0)
        return NULL;
    int e = farol_norm_dim("flatten", end, x->ndim);
    if (e < 0)
        return NULL;
    if (s > e) {
        farol_set_error("farol: flatten: start dim " FAROL_IX " comes after end dim " FAROL_IX, (long long)(start),
                        (long long)(end));
        return NULL;
    }
    int64_t ns[FAROL_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < s; i++)
        ns[nd++] = x->shape[i];
    int64_t m = 1;
    for (int i = s; i <= e; i++)
        m *= x->shape[i];
    ns[nd++] = m;
    for (int i = e + 1; i < x->ndim; i++)
        ns[nd++] = x->shape[i];
    return farol_reshape(x, nd, ns);
}

farol_tensor *farol_squeeze(farol_tensor *x, int dim) {
    int d = -1;
    if (dim != FAROL_DIM_ALL) {
        if (x->ndim == 0) {
            if (dim != 0 && dim != -1) {
                farol_set_error("farol: squeeze: dim " FAROL_IX " out of range for a 0-d tensor", (long long)(dim));
                return NULL;
            }
        } else if ((d = farol_norm_dim("squeeze", dim, x->ndim)) < 0) {
            return NULL;
        }
    }
    int64_t ns[FAROL_MAX_DIMS], st[FAROL_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        // squeezing a dim whose size is not 1 leaves it, as PyTorch does
        bool drop = x->shape[i] == 1 && (dim == FAROL_DIM_ALL || i == d);
        if (!drop) {
            ns[nd] = x->shape[i];
            st[nd++] = x->strides[i];
        }
    }
    farol_tensor *out = farol_make_view(x, nd, ns, st, x->offset);
    if (!out)
        return NULL;
    return farol_record(FAROL_OP_VIEW, out, 1, &x, FAROL_NO_SAVE, NULL);
}

farol_tensor *farol_unsqueeze(farol_tensor *x, int dim) {
    if (x->ndim >= FAROL_MAX_DIMS) {
        farol_set_error("farol: unsqueeze: a tensor of %d dims cannot grow (at most %d dims)",
                        x->ndim, FAROL_MAX_DIMS);
        return NULL;
    }
    int d = farol_norm_dim("unsqueeze", dim, x->ndim + 1);
    if (d < 0)
        return NULL;
    int64_t ns[FAROL_MAX_DIMS], st[FAROL_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i <= x->ndim; i++) {
        if (i == d) {
            ns[nd] = 1;
            st[nd++] = d < x->ndim ? x->shape[d] * x->strides[d] : 1;
        }
        if (i < x->ndim) {
            ns[nd] = x->shape[i];
            st[nd++] = x->strides[i];
        }
    }
    farol_tensor *out = farol_make_view(x, nd, ns, st, x->offset);
    if (!out)
        return NULL;
    return farol_record(FAROL_OP_VIEW, out, 1, &x, FAROL_NO_SAVE, NULL);
}

/* out = x reshaped back to input 0's shape */
int farol_view_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    if (!n->inputs[0].need)
        return 0;
    gin[0] = farol_reshape(gout, n->inputs[0].ndim, n->inputs[0].shape);
    return gin[0] ? 0 : -1;
}

/* ---- transpose and permute ---- */

farol_tensor *farol_permute(farol_tensor *x, int ndim, const int *dims) {
    if (ndim != x->ndim) {
        farol_set_error("farol: permute: %d dims given for a tensor of %d dims", ndim, x->ndim);
        return NULL;
    }
    int perm[FAROL_MAX_DIMS];
    bool seen[FAROL_MAX_DIMS] = {false};
    for (int i = 0; i < ndim; i++) {
        int d = farol_norm_dim("permute", dims[i], ndim);
        if (d < 0)
            return NULL;
        if (seen[d]) {
            char buf[160];
            int k = snprintf(buf, sizeof buf, "(");
            for (int j = 0; j < ndim; j++)
                k += snprintf(buf + k, sizeof buf - k, j ? ", " FAROL_IX : FAROL_IX, (long long)dims[j]);
            snprintf(buf + k, sizeof buf - k, ")");
            farol_set_error("farol: permute: dims %s are not a permutation of the tensor's %d "
                            "dims: dim " FAROL_IX " repeats",
                            buf, ndim, (long long)(dims[i]));
            return NULL;
        }
        seen[d] = true;
        perm[i] = d;
    }
    int64_t ns[FAROL_MAX_DIMS], st[FAROL_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        ns[i] = x->shape[perm[i]];
        st[i] = x->strides[perm[i]];
    }
    farol_tensor *out = farol_make_view(x, ndim, ns, st, x->offset);
    if (!out)
        return NULL;
    farol_op_params prm = {0};
    memcpy(prm.permute.perm, perm, ndim * sizeof *perm);
    return farol_record(FAROL_OP_PERMUTE, out, 1, &x, FAROL_NO_SAVE, &prm);
}

farol_tensor *farol_transpose(farol_tensor *x, int d1, int d2) {
    if (x->ndim == 0) {
        // PyTorch allows transpose(0, 0) and friends on a 0-d tensor
        if (d1 < -1 || d1 > 0 || d2 < -1 || d2 > 0) {
            farol_set_error("farol: transpose: dims (" FAROL_IX ", " FAROL_IX ") out of range for a 0-d tensor",
                            (long long)(d1), (long long)(d2));
            return NULL;
        }
        return farol_permute(x, 0, NULL);
    }
    int a = farol_norm_dim("transpose", d1, x->ndim);
    if (a < 0)
        return NULL;
    int b = farol_norm_dim("transpose", d2, x->ndim);
    if (b < 0)
        return NULL;
    int perm[FAROL_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
        perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return farol_permute(x, x->ndim, perm);
}

/* out = x.permute(p): gin = gout.permute(p^-1) */
int farol_permute_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    if (!n->inputs[0].need)
        return 0;
    int nd = n->inputs[0].ndim, inv[FAROL_MAX_DIMS];
    for (int i = 0; i < nd; i++)
        inv[n->p.permute.perm[i]] = i;
    gin[0] = farol_permute(gout, nd, inv);
    return gin[0] ? 0 : -1;
}

/* ---- expand ---- */

farol_tensor *farol_expand(farol_tensor *x, int ndim, const int64_t *shape) {
    char want[160], have[160];
    if (ndim < x->ndim || ndim > FAROL_MAX_DIMS) {
        farol_set_error("farol: expand: %d sizes given for a tensor of shape %s: need at least "
                        "%d and at most %d",
                        ndim, farol_shape_str(x->ndim, x->shape, have, sizeof have), x->ndim,
                        FAROL_MAX_DIMS);
        return NULL;
    }
    int64_t ns[FAROL_MAX_DIMS], st[FAROL_MAX_DIMS];
    int lead = ndim - x->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - lead;  // the matching dim of x, right-aligned
        if (shape[i] < (j < 0 ? 0 : -1)) {
            farol_set_error("farol: expand: cannot expand shape %s to %s: size %lld is "
                            "invalid for %s dim " FAROL_IX,
                            farol_shape_str(x->ndim, x->shape, have, sizeof have),
                            farol_shape_str(ndim, shape, want, sizeof want), (long long)shape[i],
                            j < 0 ? "new leading" : "existing", (long long)(i));
            return NULL;
        }
        if (j < 0) {
            ns[i] = shape[i];
            st[i] = 0;
        } else if (shape[i] == -1 || shape[i] == x->shape[j]) {
            ns[i] = x->shape[j];
            st[i] = x->strides[j];
        } else if (x->shape[j] == 1) {
            ns[i] = shape[i];
            st[i] = 0;  // every index reads the one element
        } else {
            farol_set_error("farol: expand: cannot expand shape %s to %s: dim " FAROL_IX " has size %lld, "
                            "which is not 1",
                            farol_shape_str(x->ndim, x->shape, have, sizeof have),
                            farol_shape_str(ndim, shape, want, sizeof want), (long long)(j),
                            (long long)x->shape[j]);
            return NULL;
        }
    }
    /* the engine's element limit holds for views too, so numel cannot overflow */
    int64_t span = 1;
    for (int i = 0; i < ndim; i++)
        if (__builtin_mul_overflow(span, ns[i] > 0 ? ns[i] : 1, &span) || span > ((int64_t)1 << 40)) {
            farol_set_error("farol: expand: shape %s has too many elements (at most 2^40)",
                            farol_shape_str(ndim, ns, want, sizeof want));
            return NULL;
        }
    farol_tensor *out = farol_make_view(x, ndim, ns, st, x->offset);
    if (!out)
        return NULL;
    return farol_record(FAROL_OP_EXPAND, out, 1, &x, FAROL_NO_SAVE, NULL);
}

/* out = x.expand(s): gin = gout summed over the broadcast dims */
int farol_expand_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    if (!n->inputs[0].need)
        return 0;
    gin[0] = farol_sum_to(gout, n->inputs[0].ndim, n->inputs[0].shape);
    return gin[0] ? 0 : -1;
}

/* ---- select and narrow ---- */

farol_tensor *farol_select(farol_tensor *x, int dim, int64_t index) {
    if (x->ndim == 0) {
        farol_set_error("farol: select: cannot select from a 0-d tensor");
        return NULL;
    }
    int d = farol_norm_dim("select", dim, x->ndim);
    if (d < 0)
        return NULL;
    int64_t size = x->shape[d];
    if (index < -size || index >= size) {
        farol_set_error("farol: select: index " FAROL_IX " is out of range for dim " FAROL_IX " of size %lld",
                        (long long)(index), (long long)(dim), (long long)size);
        return NULL;
    }
    int64_t i = index < 0 ? index + size : index;
    int64_t ns[FAROL_MAX_DIMS], st[FAROL_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < x->ndim; k++)
        if (k != d) {
            ns[nd] = x->shape[k];
            st[nd++] = x->strides[k];
        }
    farol_tensor *out = farol_make_view(x, nd, ns, st, x->offset + i * x->strides[d]);
    if (!out)
        return NULL;
    return farol_record(FAROL_OP_SELECT, out, 1, &x, FAROL_NO_SAVE,
                        &(farol_op_params){.slice = {.dim = d, .start = i}});
}

farol_tensor *farol_narrow(farol_tensor *x, int dim, int64_t start, int64_t length) {
    if (x->ndim == 0) {
        farol_set_error("farol: narrow: cannot narrow a 0-d tensor");
        return NULL;
    }
    int d = farol_norm_dim("narrow", dim, x->ndim);
    if (d < 0)
        return NULL;
    int64_t size = x->shape[d];
    if (start < -size || start > size) {
        farol_set_error("farol: narrow: start " FAROL_IX " is out of range for dim " FAROL_IX " of size %lld",
                        (long long)(start), (long long)(dim), (long long)size);
        return NULL;
    }
    int64_t s = start < 0 ? start + size : start;
    if (length < 0 || s + length > size) {
        farol_set_error("farol: narrow: start " FAROL_IX " with length %lld exceeds dim " FAROL_IX " of size %lld",
                        (long long)(start), (long long)length, (long long)(dim), (long long)size);
        return NULL;
    }
    int64_t ns[FAROL_MAX_DIMS];
    memcpy(ns, x->shape, sizeof ns);
    ns[d] = length;
    farol_tensor *out = farol_make_view(x, x->ndim, ns, x->strides, x->offset + s * x->strides[d]);
    if (!out)
        return NULL;
    return farol_record(FAROL_OP_NARROW, out, 1, &x, FAROL_NO_SAVE,
                        &(farol_op_params){.slice = {d, s, length}});
}

/* Zeros shaped like input 0 with gout written into the slice that slice()
 * cuts from it: the gradient of any view that reads part of its input. */
typedef farol_tensor *(*slice_fn)(farol_node *n, farol_tensor *g);

static farol_tensor *scatter_slice(farol_node *n, farol_tensor *gout, slice_fn slice) {
    farol_edge *e = &n->inputs[0];
    farol_tensor *g = farol_zeros(e->ndim, e->shape, e->dtype);
    if (!g)
        return NULL;
    farol_tensor *part = slice(n, g);
    if (!part || farol_copy_(part, gout) < 0) {
        farol_release(part);
        farol_release(g);
        return NULL;
    }
    farol_release(part);
    return g;
}

static farol_tensor *select_slice(farol_node *n, farol_tensor *g) {
    return farol_select(g, n->p.slice.dim, n->p.slice.start);
}

static farol_tensor *narrow_slice(farol_node *n, farol_tensor *g) {
    return farol_narrow(g, n->p.slice.dim, n->p.slice.start, n->p.slice.length);
}

/* out = x.select(d, i): gin = zeros with gin.select(d, i) = gout */
int farol_select_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    if (!n->inputs[0].need)
        return 0;
    gin[0] = scatter_slice(n, gout, select_slice);
    return gin[0] ? 0 : -1;
}

/* out = x.narrow(d, s, len): gin = zeros with gin.narrow(d, s, len) = gout */
int farol_narrow_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    if (!n->inputs[0].need)
        return 0;
    gin[0] = scatter_slice(n, gout, narrow_slice);
    return gin[0] ? 0 : -1;
}
