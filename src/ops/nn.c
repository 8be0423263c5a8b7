/* Neural-network functions: embedding, dropout, the cross-entropy and mean
 * squared error losses, and constant padding. */
#include "internal.h"

#include <math.h>

static bool missing(const char *fn, const char *names, const farol_tensor *a,
                    const farol_tensor *b) {
    if (a && b) return false;
    farol_set_error("farol: %s: %s are required", fn, names);
    return true;
}

/* g as a new tensor of the dtype of edge e */
static farol_tensor *to_input_dtype(farol_tensor *g, const farol_edge *e) {
    return g->dtype == e->dtype ? farol_retain(g) : farol_cast_raw(g, e->dtype);
}

/* ---- embedding ---- */

farol_tensor *farol_embedding(farol_tensor *idx, farol_tensor *w) {
    char a[96], b[96];
    if (missing("embedding", "idx and w", idx, w)) return NULL;
    if (idx->dtype != FAROL_I64) {
        farol_set_error("farol: embedding: idx must be an int64 tensor, got %s",
                        farol_dtype_name(idx->dtype));
        return NULL;
    }
    if (farol_check_float("embedding", "w", w) < 0) return NULL;
    if (w->ndim != 2) {
        farol_set_error("farol: embedding: w must be 2-D (rows, dim), got %s",
                        farol_shape_str(w->ndim, w->shape, a, sizeof a));
        return NULL;
    }
    if (idx->ndim >= FAROL_MAX_DIMS) {
        farol_set_error("farol: embedding: idx %s has too many dims (at most %d)",
                        farol_shape_str(idx->ndim, idx->shape, a, sizeof a), FAROL_MAX_DIMS - 1);
        return NULL;
    }
    int64_t V = w->shape[0], D = w->shape[1];
    farol_tensor *ic = farol_contig_raw(idx), *wc = NULL, *out = NULL;
    if (!ic) return NULL;
    const int64_t *ix = farol_data(ic);
    int64_t m = farol_numel(ic);
    for (int64_t i = 0; i < m; i++) {
        if (ix[i] < 0 || ix[i] >= V) {
            farol_set_error("farol: embedding: index " FAROL_IX " (element " FAROL_IX " of idx %s) is "
                            "out of range for w %s (valid " FAROL_IX0 ".." FAROL_IX ")",
                            (long long)ix[i], (long long)i,
                            farol_shape_str(idx->ndim, idx->shape, a, sizeof a),
                            farol_shape_str(w->ndim, w->shape, b, sizeof b), (long long)V - 1);
            goto done;
        }
    }
    if (!(wc = farol_contig_raw(w))) goto done;
    int64_t shape[FAROL_MAX_DIMS];
    memcpy(shape, idx->shape, idx->ndim * sizeof *shape);
    shape[idx->ndim] = D;
    if (!(out = farol_empty(idx->ndim + 1, shape, w->dtype))) goto done;
    /* idx: (M) -> out: (M, D), row i = w[idx[i]] */
    size_t row = (size_t)D * farol_dtype_size(w->dtype);
    char *o = farol_data(out);
    const char *src = farol_data(wc);
    for (int64_t i = 0; i < m; i++) memcpy(o + i * row, src + ix[i] * row, row);

    /* the only input is w; idx is saved to route the gradient */
    out = farol_record(FAROL_OP_EMBEDDING, out, 1, &w, FAROL_SAVE(ic), NULL);
done:
    farol_release(ic);
    farol_release(wc);
    return out;
}

/* gout: (M, D) -> gw: (V, D), gw[idx[i]] += gout[i]; repeated rows accumulate */
#define EMB_BACKWARD(T)                                                                   \
    static void emb_backward_##T(T *gw, const T *g, const int64_t *ix, int64_t M,         \
                                 int64_t D) {                                             \
        for (int64_t i = 0; i < M; i++) {                                                 \
            T *dst = gw + ix[i] * D;                                                      \
            const T *src = g + i * D;                                                     \
            for (int64_t j = 0; j < D; j++) dst[j] += src[j];                             \
        }                                                                                 \
    }
EMB_BACKWARD(float)
EMB_BACKWARD(double)

int farol_embedding_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    if (!n->inputs[0].need) return 0;
    farol_tensor *idx = farol_saved(n, 0);
    if (!idx) return -1;
    const farol_edge *e = &n->inputs[0];
    farol_tensor *g = farol_cast_raw(gout, e->dtype);
    farol_tensor *gw = g ? farol_zeros(e->ndim, e->shape, e->dtype) : NULL;
    if (!gw) {
        farol_release(g);
        return -1;
    }
    int64_t M = farol_numel(idx), D = e->shape[1];
    if (e->dtype == FAROL_F32)
        emb_backward_float(farol_data(gw), farol_data(g), farol_data(idx), M, D);
    else
        emb_backward_double(farol_data(gw), farol_data(g), farol_data(idx), M, D);
    farol_release(g);
    gin[0] = gw;
    return 0;
}

/* ---- dropout ---- */

/* x, mask: (M) -> out = x*mask */
#define MUL_MASK(T)                                                                       \
    static void mul_mask_##T(T *out, const T *x, const T *mask, int64_t M) {              \
        _Pragma("omp parallel for simd if (M > FAROL_PAR_MIN)")                           \
        for (int64_t i = 0; i < M; i++) out[i] = x[i] * mask[i];                          \
    }
MUL_MASK(float)
MUL_MASK(double)

static void mul_mask(farol_tensor *out, const farol_tensor *x, const farol_tensor *mask) {
    if (out->dtype == FAROL_F32)
        mul_mask_float(farol_data(out), farol_data(x), farol_data(mask), farol_numel(out));
    else
        mul_mask_double(farol_data(out), farol_data(x), farol_data(mask), farol_numel(out));
}

farol_tensor *farol_dropout(farol_tensor *x, double p, bool training) {
    if (!x) {
        farol_set_error("farol: dropout: x is required");
        return NULL;
    }
    if (!(p >= 0 && p < 1)) {
        farol_set_error("farol: dropout: p must be in [0, 1), got %g", p);
        return NULL;
    }
    /* like PyTorch, the identity returns its input: gradients reach x directly */
    if (!training || p == 0) return farol_retain(x);
    if (farol_check_float("dropout", "x", x) < 0) return NULL;

    farol_tensor *xc = farol_contig_raw(x);
    farol_tensor *mask = xc ? farol_empty(x->ndim, x->shape, x->dtype) : NULL;
    farol_tensor *out = mask ? farol_empty(x->ndim, x->shape, x->dtype) : NULL;
    if (!out) goto fail;
    /* a kept element (probability 1 - p) is scaled by 1/(1 - p); the
     * generator runs sequentially so a seed fixes the mask */
    int64_t M = farol_numel(x);
    double keep = 1.0 - p, scale = 1.0 / keep;
    if (x->dtype == FAROL_F32) {
        float *mk = farol_data(mask), s = (float)scale;
        for (int64_t i = 0; i < M; i++) mk[i] = farol_rand_uniform() < keep ? s : 0.0f;
    } else {
        double *mk = farol_data(mask);
        for (int64_t i = 0; i < M; i++) mk[i] = farol_rand_uniform() < keep ? scale : 0.0;
    }
    mul_mask(out, xc, mask);
    if (!(out = farol_record(FAROL_OP_DROPOUT, out, 1, &x, FAROL_SAVE(mask), NULL))) goto fail;
    farol_release(xc);
    farol_release(mask);
    return out;
fail:
    farol_release(xc);
    farol_release(mask);
    farol_release(out);
    return NULL;
}

int farol_dropout_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    if (!n->inputs[0].need) return 0;
    farol_tensor *mask = farol_saved(n, 0);
    if (!mask) return -1;
    farol_tensor *g = farol_cast_raw(gout, mask->dtype);
    farol_tensor *gx = g ? farol_empty(mask->ndim, mask->shape, mask->dtype) : NULL;
    if (gx) mul_mask(gx, g, mask);
    farol_release(g);
    if (!gx) return -1;
    gin[0] = gx;
    return 0;
}

/* ---- cross_entropy ---- */

/* logits: (N, C), labels: (N) -> lse: (N) = logsumexp of each row (max-shifted),
 * returns sum_n lse[n] - logits[n, labels[n]] */
#define CE_FORWARD(T)                                                                     \
    static double ce_forward_##T(double *lse, const T *x, const int64_t *lab, int64_t N,  \
                                 int64_t C) {                                             \
        double total = 0;                                                                 \
        _Pragma("omp parallel for reduction(+ : total) if (N * C > FAROL_PAR_MIN)")       \
        for (int64_t r = 0; r < N; r++) {                                                 \
            const T *xr = x + r * C;                                                      \
            T mx = xr[0];                                                                 \
            for (int64_t c = 1; c < C; c++) mx = xr[c] > mx ? xr[c] : mx;                 \
            double s = 0;                                                                 \
            for (int64_t c = 0; c < C; c++) s += exp((double)(xr[c] - mx));               \
            lse[r] = (double)mx + log(s);                                                 \
            total += lse[r] - (double)xr[lab[r]];                                         \
        }                                                                                 \
        return total;                                                                     \
    }

/* -> dx[n, c] = scale*(exp(logits[n, c] - lse[n]) - [c == labels[n]]) */
#define CE_BACKWARD(T)                                                                    \
    static void ce_backward_##T(T *dx, const T *x, const double *lse, const int64_t *lab, \
                                double scale, int64_t N, int64_t C) {                     \
        _Pragma("omp parallel for if (N * C > FAROL_PAR_MIN)")                           \
        for (int64_t r = 0; r < N; r++) {                                                 \
            const T *xr = x + r * C;                                                      \
            T *d = dx + r * C;                                                            \
            for (int64_t c = 0; c < C; c++)                                               \
                d[c] = (T)(scale * exp((double)xr[c] - lse[r]));                          \
            d[lab[r]] -= (T)scale;                                                        \
        }                                                                                 \
    }
CE_FORWARD(float)
CE_FORWARD(double)
CE_BACKWARD(float)
CE_BACKWARD(double)

farol_tensor *farol_cross_entropy(farol_tensor *logits, farol_tensor *labels) {
    char a[96], b[96];
    if (missing("cross_entropy", "logits and labels", logits, labels)) return NULL;
    if (farol_check_float("cross_entropy", "logits", logits) < 0) return NULL;
    if (logits->ndim != 2) {
        farol_set_error("farol: cross_entropy: logits must be 2-D (N, C), got %s",
                        farol_shape_str(logits->ndim, logits->shape, a, sizeof a));
        return NULL;
    }
    if (labels->dtype != FAROL_I64) {
        farol_set_error("farol: cross_entropy: labels must be an int64 tensor, got %s",
                        farol_dtype_name(labels->dtype));
        return NULL;
    }
    int64_t N = logits->shape[0], C = logits->shape[1];
    if (labels->ndim != 1 || labels->shape[0] != N) {
        farol_set_error("farol: cross_entropy: labels must have shape [%lld] to match logits "
                        "%s, got %s", (long long)N,
                        farol_shape_str(logits->ndim, logits->shape, a, sizeof a),
                        farol_shape_str(labels->ndim, labels->shape, b, sizeof b));
        return NULL;
    }
    farol_tensor *lc = farol_contig_raw(labels), *xc = NULL, *lse = NULL, *out = NULL;
    if (!lc) return NULL;
    const int64_t *lab = farol_data(lc);
    for (int64_t r = 0; r < N; r++) {
        if (lab[r] < 0 || lab[r] >= C) {
            farol_set_error("farol: cross_entropy: label " FAROL_IX " (element " FAROL_IX " of labels) "
                            "is out of range for %lld classes (valid " FAROL_IX0 ".." FAROL_IX ")",
                            (long long)lab[r],
                            (long long)r, (long long)C, (long long)C - 1);
            goto done;
        }
    }
    if (!(xc = farol_contig_raw(logits)) || !(lse = farol_empty(1, &N, FAROL_F64))) goto done;
    double total = logits->dtype == FAROL_F32
                       ? ce_forward_float(farol_data(lse), farol_data(xc), lab, N, C)
                       : ce_forward_double(farol_data(lse), farol_data(xc), lab, N, C);
    /* an empty batch gives NaN, as in PyTorch */
    if (!(out = farol_scalar(total / (double)N, logits->dtype))) goto done;
    /* saved: 0 logits, 1 labels, 2 the rows' logsumexp (float64) */
    out = farol_record(FAROL_OP_CROSS_ENTROPY, out, 1, &logits, FAROL_SAVE(xc, lc, lse), NULL);
done:
    farol_release(lc);
    farol_release(xc);
    farol_release(lse);
    return out;
}

int farol_cross_entropy_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    if (!n->inputs[0].need) return 0;
    farol_tensor *x = farol_saved(n, 0), *lab = farol_saved(n, 1), *lse = farol_saved(n, 2);
    if (!x || !lab || !lse) return -1;
    int64_t N = x->shape[0], C = x->shape[1];
    farol_tensor *gx = farol_empty(2, x->shape, x->dtype);
    if (!gx) return -1;
    double scale = farol_item(gout) / (double)N;
    if (x->dtype == FAROL_F32)
        ce_backward_float(farol_data(gx), farol_data(x), farol_data(lse), farol_data(lab),
                          scale, N, C);
    else
        ce_backward_double(farol_data(gx), farol_data(x), farol_data(lse), farol_data(lab),
                           scale, N, C);
    gin[0] = gx;
    return 0;
}

/* ---- mse_loss ---- */

/* a, b: (M) -> sum (a - b)^2, accumulated in double over float blocks */
#define SQ_DIFF_SUM(T)                                                                    \
    static double sq_diff_sum_##T(const T *a, const T *b, int64_t M) {                    \
        double total = 0;                                                                 \
        _Pragma("omp parallel for reduction(+ : total) if (M > FAROL_PAR_MIN)")           \
        for (int64_t i0 = 0; i0 < M; i0 += 1024) {                                        \
            int64_t i1 = i0 + 1024 < M ? i0 + 1024 : M;                                   \
            T s = 0;                                                                      \
            _Pragma("omp simd reduction(+ : s)")                                          \
            for (int64_t i = i0; i < i1; i++) s += (a[i] - b[i]) * (a[i] - b[i]);         \
            total += (double)s;                                                           \
        }                                                                                 \
        return total;                                                                     \
    }

/* -> d = scale*(a - b) */
#define SCALED_DIFF(T)                                                                    \
    static void scaled_diff_##T(T *d, const T *a, const T *b, T scale, int64_t M) {       \
        _Pragma("omp parallel for simd if (M > FAROL_PAR_MIN)")                           \
        for (int64_t i = 0; i < M; i++) d[i] = scale * (a[i] - b[i]);                     \
    }
SQ_DIFF_SUM(float)
SQ_DIFF_SUM(double)
SCALED_DIFF(float)
SCALED_DIFF(double)

farol_tensor *farol_mse_loss(farol_tensor *a, farol_tensor *b) {
    char sa[96], sb[96];
    if (missing("mse_loss", "a and b", a, b)) return NULL;
    if (farol_check_float("mse_loss", "a", a) < 0 || farol_check_float("mse_loss", "b", b) < 0)
        return NULL;
    if (!farol_same_shape(a, b)) {
        farol_set_error("farol: mse_loss: a %s and b %s must have the same shape",
                        farol_shape_str(a->ndim, a->shape, sa, sizeof sa),
                        farol_shape_str(b->ndim, b->shape, sb, sizeof sb));
        return NULL;
    }
    farol_dtype dt = farol_result_dtype(a, b);
    farol_tensor *ac = farol_cast_raw(a, dt), *bc = ac ? farol_cast_raw(b, dt) : NULL;
    farol_tensor *out = NULL;
    if (!bc) goto done;
    int64_t M = farol_numel(a);
    double total = dt == FAROL_F32 ? sq_diff_sum_float(farol_data(ac), farol_data(bc), M)
                                   : sq_diff_sum_double(farol_data(ac), farol_data(bc), M);
    /* an empty input gives NaN, as in PyTorch */
    if (!(out = farol_scalar(total / (double)M, dt))) goto done;
    farol_tensor *in[2] = {a, b};
    out = farol_record(FAROL_OP_MSE_LOSS, out, 2, in, FAROL_SAVE(ac, bc), NULL);
done:
    farol_release(ac);
    farol_release(bc);
    return out;
}

int farol_mse_loss_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    farol_tensor *a = farol_saved(n, 0), *b = farol_saved(n, 1);
    if (!a || !b) return -1;
    int64_t M = farol_numel(a);
    double scale = 2.0 * farol_item(gout) / (double)M;
    /* d(mean (a-b)^2)/da = 2(a-b)/M and the opposite for b */
    for (int k = 0; k < 2; k++) {
        if (!n->inputs[k].need) continue;
        farol_tensor *d = farol_empty(a->ndim, a->shape, a->dtype);
        if (!d) return -1;
        double s = k == 0 ? scale : -scale;
        if (a->dtype == FAROL_F32)
            scaled_diff_float(farol_data(d), farol_data(a), farol_data(b), (float)s, M);
        else
            scaled_diff_double(farol_data(d), farol_data(a), farol_data(b), s, M);
        gin[k] = to_input_dtype(d, &n->inputs[k]);
        farol_release(d);
        if (!gin[k]) return -1;
    }
    return 0;
}

/* ---- pad ---- */

static void copy_elems(void *ctx, int64_t n, char **p, const int64_t *step) {
    size_t es = *(const size_t *)ctx;
    if (step[0] == (int64_t)es && step[1] == (int64_t)es) {
        memcpy(p[0], p[1], (size_t)n * es);
        return;
    }
    for (int64_t i = 0; i < n; i++) memcpy(p[0] + i * step[0], p[1] + i * step[1], es);
}

/* dst (the region of big starting at before[d] in each dim, shaped like small)
 * <-> small; to_big selects the direction.  Both share one dtype. */
static void copy_region(farol_tensor *big, farol_tensor *small, const int64_t *before,
                        bool to_big) {
    size_t es = farol_dtype_size(big->dtype);
    int nd = small->ndim;
    int64_t strides[2][FAROL_MAX_DIMS];
    char *corner = farol_data(big);
    for (int d = 0; d < nd; d++) {
        corner += before[d] * big->strides[d] * (int64_t)es;
        strides[0][d] = big->strides[d] * (int64_t)es;
        strides[1][d] = small->strides[d] * (int64_t)es;
    }
    char *base[2] = {corner, farol_data(small)};
    if (!to_big) {
        char *t = base[0]; base[0] = base[1]; base[1] = t;
        for (int d = 0; d < nd; d++) {
            int64_t s = strides[0][d]; strides[0][d] = strides[1][d]; strides[1][d] = s;
        }
    }
    farol_loop(nd, small->shape, 2, base, strides, copy_elems, &es);
}

/* Negative pads (cropping in PyTorch) are refused: use narrow to crop. */
farol_tensor *farol_pad(farol_tensor *x, int npads, const int64_t *pads, double value) {
    char a[96];
    if (!x) {
        farol_set_error("farol: pad: x is required");
        return NULL;
    }
    if (npads < 0 || npads % 2 != 0 || npads > 2 * x->ndim || (npads > 0 && !pads)) {
        farol_set_error("farol: pad: pads must hold (before, after) pairs, at most 2 per dim of "
                        "x %s (%d values), got %d values",
                        farol_shape_str(x->ndim, x->shape, a, sizeof a), 2 * x->ndim, npads);
        return NULL;
    }
    /* pair i pads dim ndim-1-i: PyTorch's order, from the last dim */
    int64_t before[FAROL_MAX_DIMS] = {0}, shape[FAROL_MAX_DIMS];
    memcpy(shape, x->shape, x->ndim * sizeof *shape);
    for (int i = 0; i < npads / 2; i++) {
        int d = x->ndim - 1 - i;
        int64_t lo = pads[2 * i], hi = pads[2 * i + 1];
        if (lo < 0 || hi < 0) {
            farol_set_error("farol: pad: negative padding (%lld, %lld) for dim " FAROL_IX " is not "
                            "supported (use narrow to crop)", (long long)lo, (long long)hi,
                            (long long)d);
            return NULL;
        }
        if (lo > ((int64_t)1 << 40) || hi > ((int64_t)1 << 40)) {
            farol_set_error("farol: pad: padding (%lld, %lld) for dim " FAROL_IX " is too large",
                            (long long)lo, (long long)hi, (long long)d);
            return NULL;
        }
        before[d] = lo;
        shape[d] += lo + hi;
    }
    int64_t numel = 1;
    for (int d = 0; d < x->ndim; d++)
        if (__builtin_mul_overflow(numel, shape[d], &numel) || numel > ((int64_t)1 << 40)) {
            farol_set_error("farol: pad: the padded shape of x %s is too large",
                            farol_shape_str(x->ndim, x->shape, a, sizeof a));
            return NULL;
        }
    farol_tensor *out = farol_full(x->ndim, shape, value, x->dtype);
    if (!out) return NULL;
    copy_region(out, x, before, true);
    farol_op_params prm = {0};
    memcpy(prm.pad.before, before, x->ndim * sizeof *before);
    return farol_record(FAROL_OP_PAD, out, 1, &x, FAROL_NO_SAVE, &prm);
}

int farol_pad_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    const farol_edge *e = &n->inputs[0];
    if (!e->need) return 0;
    /* the gradient of the padding is dropped: slice the interior back out */
    farol_tensor *gx = farol_empty(e->ndim, e->shape, gout->dtype);
    if (!gx) return -1;
    copy_region(gout, gx, n->p.pad.before, false);
    if (gx->dtype != e->dtype) {
        farol_tensor *c = farol_cast_raw(gx, e->dtype);
        farol_release(gx);
        if (!c) return -1;
        gx = c;
    }
    gin[0] = gx;
    return 0;
}
