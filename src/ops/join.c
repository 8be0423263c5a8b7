/* Ops that copy: cat, stack, index_select, contiguous, clone and to_dtype,
 * with their backwards.  The views they lean on live in shape.c. */
#include "internal.h"


/* ---- cat and stack ---- */

/* out: (outer, sum_k width[k]) bytes; part k: (outer, width[k]) bytes,
 * contiguous.  Part k fills its band of columns in every row of out. */
static void join_rows(char *out, int n, char *const *part, const int64_t *width, int64_t outer) {
    int64_t row = 0;
    for (int k = 0; k < n; k++)
        row += width[k];
#pragma omp parallel for if (outer > 1 && outer * row > FAROL_PAR_MIN * 4)
    for (int64_t o = 0; o < outer; o++) {
        char *dst = out + o * row;
        for (int k = 0; k < n; k++) {
            memcpy(dst, part[k] + o * width[k], (size_t)width[k]);
            dst += width[k];
        }
    }
}

/* Makes every xs[k] contiguous and copies it into out seen as (outer, ...)
 * rows: part k contributes xs[k]->shape[d] * rest elements per row, or rest
 * when d < 0 (stack). */
static int join_copy(const char *fn, farol_tensor *out, int n, farol_tensor *const *xs, int d,
                     int64_t rest, int64_t outer) {
    size_t bytes = (size_t)n * (sizeof(farol_tensor *) + sizeof(char *) + sizeof(int64_t));
    char *scratch = farol_malloc(bytes);
    if (!scratch) {
        farol_set_error("farol: %s: out of memory", fn);
        return -1;
    }
    farol_tensor **c = (farol_tensor **)scratch;
    char **part = (char **)(c + n);
    int64_t *width = (int64_t *)(part + n);
    int made = 0, rc = 0;
    for (; made < n; made++) {
        c[made] = farol_contig_raw(xs[made]);
        if (!c[made]) {
            rc = -1;
            break;
        }
        part[made] = farol_data(c[made]);
        width[made] = (d >= 0 ? xs[made]->shape[d] : 1) * rest *
                      (int64_t)farol_dtype_size(out->dtype);
    }
    if (rc == 0)
        join_rows(farol_data(out), n, part, width, outer);
    for (int k = 0; k < made; k++)
        farol_release(c[k]);
    farol_free(scratch);
    return rc;
}

/* Checks what cat and stack share: at least one tensor, none NULL, one dtype. */
static int check_list(const char *fn, int n, farol_tensor *const *xs) {
    if (n < 1 || !xs) {
        farol_set_error("farol: %s: needs a list of at least one tensor", fn);
        return -1;
    }
    for (int k = 0; k < n; k++) {
        if (!xs[k]) {
            farol_set_error("farol: %s: tensor " FAROL_IX " of the list is missing", fn, (long long)k);
            return -1;
        }
        if (xs[k]->dtype != xs[0]->dtype) {
            farol_set_error("farol: %s: tensor " FAROL_IX " is %s but tensor " FAROL_IX0 " is %s; convert with to_dtype",
                            fn, (long long)k, farol_dtype_name(xs[k]->dtype), farol_dtype_name(xs[0]->dtype));
            return -1;
        }
    }
    return 0;
}

farol_tensor *farol_cat(int n, farol_tensor *const *xs, int dim) {
    if (check_list("cat", n, xs) < 0)
        return NULL;
    int nd = xs[0]->ndim;
    if (nd == 0) {
        farol_set_error("farol: cat: tensor " FAROL_IX0 " is 0-d; 0-d tensors cannot be concatenated "
                        "(use stack)");
        return NULL;
    }
    int d = farol_norm_dim("cat", dim, nd);
    if (d < 0)
        return NULL;
    int64_t shape[FAROL_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    shape[d] = 0;
    for (int k = 0; k < n; k++) {
        const farol_tensor *x = xs[k];
        bool same = x->ndim == nd;
        for (int i = 0; same && i < nd; i++)
            same = i == d || x->shape[i] == xs[0]->shape[i];
        if (!same) {
            char a[160], b[160];
            farol_set_error("farol: cat: tensor " FAROL_IX " has shape %s but tensor " FAROL_IX0 " has shape %s; "
                            "shapes must match except in dim " FAROL_IX,
                            (long long)k, farol_shape_str(x->ndim, x->shape, a, sizeof a),
                            farol_shape_str(nd, xs[0]->shape, b, sizeof b), (long long)(dim));
            return NULL;
        }
        shape[d] += x->shape[d];
    }
    int64_t outer = 1, rest = 1;
    for (int i = 0; i < d; i++)
        outer *= shape[i];
    for (int i = d + 1; i < nd; i++)
        rest *= shape[i];
    if (farol_shape_empty(nd, shape))
        return farol_record_empty(FAROL_OP_CAT, nd, shape, xs[0]->dtype, n, xs);
    farol_tensor *out = farol_empty(nd, shape, xs[0]->dtype);
    if (!out)
        return NULL;
    if (join_copy("cat", out, n, xs, d, rest, outer) < 0) {
        farol_release(out);
        return NULL;
    }
    return farol_record(FAROL_OP_CAT, out, n, xs, FAROL_NO_SAVE, &(farol_op_params){.dim = {d}});
}

/* out = cat(xs, d): gin[k] = gout.narrow(d, offset of k, size of k) */
int farol_cat_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    int d = n->p.dim.dim;
    int64_t off = 0;
    for (int k = 0; k < n->n_inputs; k++) {
        int64_t len = n->inputs[k].shape[d];
        if (n->inputs[k].need) {
            gin[k] = farol_narrow(gout, d, off, len);
            if (!gin[k])
                return -1;
        }
        off += len;
    }
    return 0;
}

farol_tensor *farol_stack(int n, farol_tensor *const *xs, int dim) {
    if (check_list("stack", n, xs) < 0)
        return NULL;
    const farol_tensor *x0 = xs[0];
    for (int k = 1; k < n; k++)
        if (!farol_same_shape(xs[k], x0)) {
            char a[160], b[160];
            farol_set_error("farol: stack: tensor " FAROL_IX " has shape %s but tensor " FAROL_IX0 " has shape %s; "
                            "all must have the same shape",
                            (long long)k, farol_shape_str(xs[k]->ndim, xs[k]->shape, a, sizeof a),
                            farol_shape_str(x0->ndim, x0->shape, b, sizeof b));
            return NULL;
        }
    if (x0->ndim >= FAROL_MAX_DIMS) {
        farol_set_error("farol: stack: tensors of %d dims cannot be stacked (at most %d dims)",
                        x0->ndim, FAROL_MAX_DIMS);
        return NULL;
    }
    int d = farol_norm_dim("stack", dim, x0->ndim + 1);
    if (d < 0)
        return NULL;
    int64_t shape[FAROL_MAX_DIMS], outer = 1, rest = 1;
    for (int i = 0, j = 0; i <= x0->ndim; i++)
        shape[i] = i == d ? n : x0->shape[j++];
    for (int i = 0; i < d; i++)
        outer *= x0->shape[i];
    for (int i = d; i < x0->ndim; i++)
        rest *= x0->shape[i];
    farol_tensor *out = farol_empty(x0->ndim + 1, shape, x0->dtype);
    if (!out)
        return NULL;
    if (join_copy("stack", out, n, xs, -1, rest, outer) < 0) {
        farol_release(out);
        return NULL;
    }
    return farol_record(FAROL_OP_STACK, out, n, xs, FAROL_NO_SAVE, &(farol_op_params){.dim = {d}});
}

/* out = stack(xs, d): gin[k] = gout.select(d, k) */
int farol_stack_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    int d = n->p.dim.dim;
    for (int k = 0; k < n->n_inputs; k++)
        if (n->inputs[k].need && !(gin[k] = farol_select(gout, d, k)))
            return -1;
    return 0;
}

/* ---- index_select ---- */

farol_tensor *farol_index_select(farol_tensor *x, int dim, farol_tensor *index) {
    char a[160];
    if (!index || index->dtype != FAROL_I64 || index->ndim > 1) {
        farol_set_error("farol: index_select: index must be a 1-D int64 tensor, got %s %s",
                        index ? farol_dtype_name(index->dtype) : "nothing",
                        index ? farol_shape_str(index->ndim, index->shape, a, sizeof a) : "");
        return NULL;
    }
    if (x->ndim == 0) {
        farol_set_error("farol: index_select: cannot index a 0-d tensor");
        return NULL;
    }
    int d = farol_norm_dim("index_select", dim, x->ndim);
    if (d < 0)
        return NULL;
    farol_tensor *ic = farol_contig_raw(index);
    if (!ic)
        return NULL;
    const int64_t *idx = farol_data(ic);
    int64_t m = farol_numel(ic), size = x->shape[d];
    for (int64_t j = 0; j < m; j++)
        if (idx[j] < 0 || idx[j] >= size) {
            farol_set_error("farol: index_select: index " FAROL_IX " (at position " FAROL_IX ") is out of range "
                            "for dim " FAROL_IX " of shape %s",
                            (long long)idx[j], (long long)j, (long long)(dim),
                            farol_shape_str(x->ndim, x->shape, a, sizeof a));
            farol_release(ic);
            return NULL;
        }
    int64_t shape[FAROL_MAX_DIMS], outer = 1, inner = (int64_t)farol_dtype_size(x->dtype);
    memcpy(shape, x->shape, sizeof shape);
    shape[d] = m;
    for (int i = 0; i < d; i++)
        outer *= x->shape[i];
    for (int i = d + 1; i < x->ndim; i++)
        inner *= x->shape[i];
    farol_tensor *out = farol_empty(x->ndim, shape, x->dtype);
    farol_tensor *xc = out ? farol_contig_raw(x) : NULL;
    if (!xc) {
        farol_release(out);
        farol_release(ic);
        return NULL;
    }
    // x: (outer, size, inner) -> out: (outer, m, inner), inner in bytes
    const char *src = farol_data(xc);
    char *dst = farol_data(out);
#pragma omp parallel for if (outer * m * inner > FAROL_PAR_MIN * 4)
    for (int64_t r = 0; r < outer * m; r++) {
        int64_t o = r / m, j = r % m;
        memcpy(dst + r * inner, src + (o * size + idx[j]) * inner, (size_t)inner);
    }
    farol_release(xc);
    farol_tensor *ins[2] = {x, index};
    out = farol_record(FAROL_OP_INDEX_SELECT, out, 2, ins, FAROL_SAVE(ic),
                       &(farol_op_params){.dim = {d}});
    farol_release(ic);
    return out;
}

/* g: (outer, size, inner) += gout: (outer, m, inner) at rows idx; repeated
 * indices accumulate, so only the outer loop runs in parallel. */
#define INDEX_ADD(T)                                                                   \
    do {                                                                               \
        T *g = farol_data(gin);                                                        \
        const T *go = farol_data(gc);                                                  \
        _Pragma("omp parallel for if (outer > 1 && outer * m * inner > FAROL_PAR_MIN)") \
        for (int64_t o = 0; o < outer; o++)                                            \
            for (int64_t j = 0; j < m; j++) {                                          \
                T *dst = g + (o * size + idx[j]) * inner;                              \
                const T *src = go + (o * m + j) * inner;                               \
                for (int64_t i = 0; i < inner; i++)                                    \
                    dst[i] += src[i];                                                  \
            }                                                                          \
    } while (0)

/* out = x.index_select(d, idx): gin = zeros, gin[.., idx[j], ..] += gout[.., j, ..] */
int farol_index_select_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin_out) {
    if (!n->inputs[0].need)
        return 0;
    farol_edge *e = &n->inputs[0];
    farol_tensor *ic = farol_saved(n, 0);
    if (!ic)
        return -1;
    int d = n->p.dim.dim;
    farol_tensor *gin = farol_zeros(e->ndim, e->shape, e->dtype);
    farol_tensor *gc = gin ? (gout->dtype == e->dtype ? farol_contig_raw(gout)
                                                      : farol_cast_raw(gout, e->dtype))
                           : NULL;
    if (!gc) {
        farol_release(gin);
        return -1;
    }
    const int64_t *idx = farol_data(ic);
    int64_t m = farol_numel(ic), size = e->shape[d], outer = 1, inner = 1;
    for (int i = 0; i < d; i++)
        outer *= e->shape[i];
    for (int i = d + 1; i < e->ndim; i++)
        inner *= e->shape[i];
    if (e->dtype == FAROL_F32)
        INDEX_ADD(float);
    else
        INDEX_ADD(double);
    farol_release(gc);
    gin_out[0] = gin;
    return 0;
}

/* ---- contiguous, clone, to_dtype ---- */

farol_tensor *farol_contiguous(farol_tensor *t) {
    if (farol_is_contiguous(t))
        return farol_retain(t);
    farol_tensor *out = farol_contig_raw(t);
    if (!out)
        return NULL;
    return farol_record(FAROL_OP_COPY, out, 1, &t, FAROL_NO_SAVE, NULL);
}

farol_tensor *farol_clone(farol_tensor *t) {
    farol_tensor *out = farol_empty(t->ndim, t->shape, t->dtype);
    if (!out)
        return NULL;
    farol_copy_to_buffer(t, farol_data(out), t->dtype);
    return farol_record(FAROL_OP_COPY, out, 1, &t, FAROL_NO_SAVE, NULL);
}

/* out = copy of x: gin = gout */
int farol_copy_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    if (n->inputs[0].need)
        gin[0] = farol_retain(gout);
    return 0;
}

farol_tensor *farol_to_dtype(farol_tensor *t, farol_dtype dt) {
    if ((int)dt < 0 || dt >= FAROL_DTYPE_COUNT) {
        farol_set_error("farol: to_dtype: unknown dtype %d", (int)dt);
        return NULL;
    }
    if (t->dtype == dt)
        return farol_retain(t);  // as PyTorch's x.to(x.dtype): the tensor itself
    farol_tensor *out = farol_cast_raw(t, dt);
    if (!out)
        return NULL;
    // a gradient flows only between floating dtypes
    if (!farol_is_floating(t->dtype) || !farol_is_floating(dt))
        return out;
    return farol_record(FAROL_OP_TO_DTYPE, out, 1, &t, FAROL_NO_SAVE, NULL);
}

/* out = x.to(dt): gin = gout converted back to x's dtype */
int farol_to_dtype_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    if (!n->inputs[0].need)
        return 0;
    farol_dtype dt = n->inputs[0].dtype;
    gin[0] = gout->dtype == dt ? farol_retain(gout) : farol_cast_raw(gout, dt);
    return gin[0] ? 0 : -1;
}
