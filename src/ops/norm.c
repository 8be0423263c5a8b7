/* Normalisation: batch_norm with inference statistics and layer_norm, each a
 * fused forward kernel beside its backward.
 *
 * Dtypes: x, w and b are computed in float64 when any of them is float64,
 * else in float32; each gradient is returned in its input's dtype.  batch_norm's
 * mean and var are statistics: they get no gradient and only feed the
 * per-channel scale and shift, computed in double. */
#include "internal.h"

#include <math.h>

static farol_dtype compute_dtype(const farol_tensor *x, const farol_tensor *w,
                                 const farol_tensor *b) {
    bool f64 = x->dtype == FAROL_F64 || (w && w->dtype == FAROL_F64) ||
               (b && b->dtype == FAROL_F64);
    return f64 ? FAROL_F64 : FAROL_F32;
}

/* t converted to dt and contiguous, or NULL when t is NULL (not an error) */
static int cast_opt(farol_tensor *t, farol_dtype dt, farol_tensor **out) {
    *out = NULL;
    if (!t) return 0;
    *out = farol_cast_raw(t, dt);
    return *out ? 0 : -1;
}

/* g (compute dtype) as a new tensor of the input's dtype */
static farol_tensor *to_input_dtype(farol_tensor *g, const farol_edge *e) {
    return g->dtype == e->dtype ? farol_retain(g) : farol_cast_raw(g, e->dtype);
}

/* inputs of the node: x, then w and b when given; their slots go to ip */
static int gather_inputs(farol_tensor *x, farol_tensor *w, farol_tensor *b,
                         farol_tensor **in, int *iw, int *ib) {
    int k = 0;
    in[k++] = x;
    *iw = *ib = -1;
    if (w) { *iw = k; in[k++] = w; }
    if (b) { *ib = k; in[k++] = b; }
    return k;
}

/* ---- batch_norm ---- */

/* x: (N, C, S) -> out: (N, C, S), out = x*scale[c] + shift[c] */
#define BN_FORWARD(T)                                                                     \
    static void bn_forward_##T(T *out, const T *x, const T *scale, const T *shift,        \
                               int64_t N, int64_t C, int64_t S) {                         \
        _Pragma("omp parallel for collapse(2) if (N * C * S > FAROL_PAR_MIN)")            \
        for (int64_t n = 0; n < N; n++)                                                   \
            for (int64_t c = 0; c < C; c++) {                                             \
                const T *xr = x + (n * C + c) * S;                                        \
                T *o = out + (n * C + c) * S, sc = scale[c], sh = shift[c];               \
                _Pragma("omp simd")                                                       \
                for (int64_t s = 0; s < S; s++) o[s] = xr[s] * sc + sh;                   \
            }                                                                             \
    }

/* g, x: (N, C, S) -> dx = g*scale[c] (dx may be NULL);
 * dw[c] = sum g*(x - mean[c])*invstd[c], db[c] = sum g (either may be NULL;
 * x is read for dw only and may be NULL without it) */
#define BN_BACKWARD(T)                                                                    \
    static void bn_backward_##T(T *dx, double *dw, double *db, const T *g, const T *x,    \
                                const double *scale, const double *mean,                  \
                                const double *invstd, int64_t N, int64_t C, int64_t S) {  \
        if (dx) {                                                                         \
            _Pragma("omp parallel for collapse(2) if (N * C * S > FAROL_PAR_MIN)")        \
            for (int64_t n = 0; n < N; n++)                                               \
                for (int64_t c = 0; c < C; c++) {                                         \
                    const T *gr = g + (n * C + c) * S;                                    \
                    T *d = dx + (n * C + c) * S, sc = (T)scale[c];                        \
                    _Pragma("omp simd")                                                   \
                    for (int64_t s = 0; s < S; s++) d[s] = gr[s] * sc;                    \
                }                                                                         \
        }                                                                                 \
        if (!dw && !db) return;                                                           \
        _Pragma("omp parallel for if (N * C * S > FAROL_PAR_MIN)")                        \
        for (int64_t c = 0; c < C; c++) {                                                 \
            double sw = 0, sb = 0;                                                        \
            T m = (T)mean[c], is = (T)invstd[c];                                          \
            for (int64_t n = 0; n < N; n++) {                                             \
                const T *gr = g + (n * C + c) * S, *xr = x ? x + (n * C + c) * S : gr;   \
                T rw = 0, rb = 0;                                                         \
                _Pragma("omp simd reduction(+ : rw, rb)")                                 \
                for (int64_t s = 0; s < S; s++) {                                         \
                    rw += gr[s] * (xr[s] - m) * is;                                       \
                    rb += gr[s];                                                          \
                }                                                                         \
                sw += rw;                                                                 \
                sb += rb;                                                                 \
            }                                                                             \
            if (dw) dw[c] = sw;                                                           \
            if (db) db[c] = sb;                                                           \
        }                                                                                 \
    }

BN_FORWARD(float)
BN_FORWARD(double)
BN_BACKWARD(float)
BN_BACKWARD(double)

static int bn_check_param(const char *arg, const farol_tensor *p, const farol_tensor *x) {
    char a[96], b[96];
    if (farol_check_float("batch_norm", arg, p) < 0) return -1;
    if (p->ndim == 1 && p->shape[0] == x->shape[1]) return 0;
    farol_set_error("farol: batch_norm: %s must have shape [%lld] (the channels of x %s), got %s",
                    arg, (long long)x->shape[1], farol_shape_str(x->ndim, x->shape, a, sizeof a),
                    farol_shape_str(p->ndim, p->shape, b, sizeof b));
    return -1;
}

/* x viewed as (N, C, S): S is the product of the dims after the channels */
static void bn_sizes(int ndim, const int64_t *shape, int64_t *N, int64_t *C, int64_t *S) {
    *N = shape[0];
    *C = shape[1];
    *S = 1;
    for (int i = 2; i < ndim; i++) *S *= shape[i];
}

/* per channel: invstd = 1/sqrt(var + eps), scale = w*invstd, shift = b - mean*scale;
 * each array holds C doubles (shift and w, b may be NULL) */
static void bn_channel_params(int64_t C, const farol_tensor *mean, const farol_tensor *var,
                              const farol_tensor *w, const farol_tensor *b, double eps,
                              double *mu, double *invstd, double *scale, double *shift) {
    for (int64_t c = 0; c < C; c++) {
        mu[c] = farol_get_flat(mean, c);
        invstd[c] = 1.0 / sqrt(farol_get_flat(var, c) + eps);
        scale[c] = w ? farol_get_flat(w, c) * invstd[c] : invstd[c];
        if (shift) shift[c] = (b ? farol_get_flat(b, c) : 0.0) - mu[c] * scale[c];
    }
}

farol_tensor *farol_batch_norm(farol_tensor *x, farol_tensor *mean, farol_tensor *var,
                               farol_tensor *w, farol_tensor *b, double eps) {
    char a[96];
    if (!x || !mean || !var) {
        farol_set_error("farol: batch_norm: x, mean and var are required");
        return NULL;
    }
    if (farol_check_float("batch_norm", "x", x) < 0) return NULL;
    if (x->ndim < 2) {
        farol_set_error("farol: batch_norm: x must have at least 2 dims (N, C, ...), got %s",
                        farol_shape_str(x->ndim, x->shape, a, sizeof a));
        return NULL;
    }
    if (bn_check_param("mean", mean, x) < 0 || bn_check_param("var", var, x) < 0 ||
        (w && bn_check_param("w", w, x) < 0) || (b && bn_check_param("b", b, x) < 0))
        return NULL;
    if (!(eps >= 0)) {
        farol_set_error("farol: batch_norm: eps must be >= 0, got %g", eps);
        return NULL;
    }

    farol_dtype dt = compute_dtype(x, w, b);
    int64_t N, C, S;
    bn_sizes(x->ndim, x->shape, &N, &C, &S);
    farol_tensor *xc = farol_cast_raw(x, dt), *out = NULL;
    double *buf = farol_malloc((size_t)(4 * C + 1) * sizeof *buf);
    void *tp = farol_malloc((size_t)(2 * C + 1) * sizeof(double));
    if (!xc || !buf || !tp) {
        if (xc) farol_set_error("farol: batch_norm: out of memory");
        goto done;
    }
    double *mu = buf, *invstd = buf + C, *scale = buf + 2 * C, *shift = buf + 3 * C;
    bn_channel_params(C, mean, var, w, b, eps, mu, invstd, scale, shift);
    out = farol_empty(x->ndim, x->shape, dt);
    if (!out) goto done;
    if (dt == FAROL_F32) {
        float *sc = tp, *sh = sc + C;
        for (int64_t c = 0; c < C; c++) { sc[c] = (float)scale[c]; sh[c] = (float)shift[c]; }
        bn_forward_float(farol_data(out), farol_data(xc), sc, sh, N, C, S);
    } else {
        bn_forward_double(farol_data(out), farol_data(xc), scale, shift, N, C, S);
    }

    farol_tensor *in[3];
    int iw, ib, k = gather_inputs(x, w, b, in, &iw, &ib);
    /* saved: 0 x (compute dtype) when w takes a gradient (only dw reads it:
     * dx needs the per-channel scale alone), 1 mean, 2 var, 3 w (or an
     * empty slot) */
    out = farol_record(FAROL_OP_BATCH_NORM, out, k, in,
                       FAROL_SAVE(farol_takes_grad(w) ? xc : NULL, mean, var, w),
                       &(farol_op_params){.norm = {.iw = iw, .ib = ib, .eps = eps}});
done:
    farol_free(buf);
    farol_free(tp);
    farol_release(xc);
    return out;
}

/* a 1-D tensor of C values (doubles) in the dtype of edge e */
static farol_tensor *channel_grad(const double *v, int64_t C, const farol_edge *e) {
    farol_tensor *t = farol_from_data(1, &C, FAROL_F64, v);
    if (!t || e->dtype == FAROL_F64) return t;
    farol_tensor *r = farol_cast_raw(t, e->dtype);
    farol_release(t);
    return r;
}

int farol_batch_norm_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    int iw = n->p.norm.iw, ib = n->p.norm.ib;
    bool need_x = n->inputs[0].need, need_w = iw >= 0 && n->inputs[iw].need,
         need_b = ib >= 0 && n->inputs[ib].need;
    farol_tensor *x = need_w ? farol_saved(n, 0) : NULL, *mean = farol_saved(n, 1),
                 *var = farol_saved(n, 2), *w = iw >= 0 ? farol_saved(n, 3) : NULL;
    if ((need_w && !x) || !mean || !var || (iw >= 0 && !w)) return -1;

    int rc = -1;
    const farol_edge *ex = &n->inputs[0];
    int64_t N, C, S;
    bn_sizes(ex->ndim, ex->shape, &N, &C, &S);
    bool f64 = ex->dtype == FAROL_F64 || (iw >= 0 && n->inputs[iw].dtype == FAROL_F64) ||
               (ib >= 0 && n->inputs[ib].dtype == FAROL_F64);
    farol_dtype dt = f64 ? FAROL_F64 : FAROL_F32; /* the forward's compute dtype */
    farol_tensor *g = farol_cast_raw(gout, dt), *dx = NULL;
    double *buf = farol_malloc((size_t)(5 * C + 1) * sizeof *buf);
    if (!g || !buf) {
        if (g) farol_set_error("farol: batch_norm backward: out of memory");
        goto done;
    }
    double *mu = buf, *invstd = buf + C, *scale = buf + 2 * C, *dw = buf + 3 * C,
           *db = buf + 4 * C;
    bn_channel_params(C, mean, var, w, NULL, n->p.norm.eps, mu, invstd, scale, NULL);
    if (need_x && !(dx = farol_empty(ex->ndim, ex->shape, dt))) goto done;
    const void *xd = x ? farol_data(x) : NULL;  /* read for dw only */
    if (dt == FAROL_F32)
        bn_backward_float(dx ? farol_data(dx) : NULL, need_w ? dw : NULL, need_b ? db : NULL,
                          farol_data(g), xd, scale, mu, invstd, N, C, S);
    else
        bn_backward_double(dx ? farol_data(dx) : NULL, need_w ? dw : NULL, need_b ? db : NULL,
                           farol_data(g), xd, scale, mu, invstd, N, C, S);
    if (need_x && !(gin[0] = to_input_dtype(dx, &n->inputs[0]))) goto done;
    if (need_w && !(gin[iw] = channel_grad(dw, C, &n->inputs[iw]))) goto done;
    if (need_b && !(gin[ib] = channel_grad(db, C, &n->inputs[ib]))) goto done;
    rc = 0;
done:
    farol_free(buf);
    farol_release(g);
    farol_release(dx);
    return rc;
}

/* ---- layer_norm ---- */

/* x: (R, D) -> out: (R, D), mean and rstd: (R); w, b: (D) or NULL.
 * Two passes per row (mean, then the biased variance) for accuracy. */
#define LN_FORWARD(T, SUF)                                                                \
    static void ln_forward_##SUF(T *out, T *mean, T *rstd, const T *x, const T *w,          \
                               const T *b, double eps, int64_t R, int64_t D) {            \
        _Pragma("omp parallel for if (R * D > FAROL_PAR_MIN)")                            \
        for (int64_t r = 0; r < R; r++) {                                                 \
            const T *xr = x + r * D;                                                      \
            T *o = out + r * D, s = 0, v = 0;                                             \
            _Pragma("omp simd reduction(+ : s)")                                          \
            for (int64_t j = 0; j < D; j++) s += xr[j];                                   \
            T m = s / (T)D;                                                               \
            _Pragma("omp simd reduction(+ : v)")                                          \
            for (int64_t j = 0; j < D; j++) v += (xr[j] - m) * (xr[j] - m);               \
            T rs = (T)(1.0 / sqrt((double)(v / (T)D) + eps));                             \
            mean[r] = m;                                                                  \
            rstd[r] = rs;                                                                 \
            /* out = (x - mean)*rstd*w + b, one simd loop per case */                 \
            if (w && b) {                                                                 \
                _Pragma("omp simd")                                                       \
                for (int64_t j = 0; j < D; j++) o[j] = (xr[j] - m) * rs * w[j] + b[j];    \
            } else if (w) {                                                               \
                _Pragma("omp simd")                                                       \
                for (int64_t j = 0; j < D; j++) o[j] = (xr[j] - m) * rs * w[j];           \
            } else if (b) {                                                               \
                _Pragma("omp simd")                                                       \
                for (int64_t j = 0; j < D; j++) o[j] = (xr[j] - m) * rs + b[j];           \
            } else {                                                                      \
                _Pragma("omp simd")                                                       \
                for (int64_t j = 0; j < D; j++) o[j] = (xr[j] - m) * rs;                  \
            }                                                                             \
        }                                                                                 \
    }

/* one row of dx for LN_BACKWARD; GW(j) is g*w at j (w absent: g) */
#define LN_DX_ROW(T, GW)                                                                  \
    do {                                                                                  \
        T s1 = 0, s2 = 0;                                                                 \
        _Pragma("omp simd reduction(+ : s1, s2)")                                         \
        for (int64_t j = 0; j < D; j++) {                                                 \
            s1 += GW(j);                                                                  \
            s2 += GW(j) * (xr[j] - m) * rs;                                               \
        }                                                                                 \
        s1 /= (T)D;                                                                       \
        s2 /= (T)D;                                                                       \
        _Pragma("omp simd")                                                               \
        for (int64_t j = 0; j < D; j++) d[j] = rs * (GW(j) - s1 - (xr[j] - m) * rs * s2); \
    } while (0)
#define LN_GW(j) (gr[j] * w[j])
#define LN_G(j) (gr[j])

/* g, x: (R, D) -> dx (may be NULL) = rstd*(gw - mean(gw) - xhat*mean(gw*xhat)) with
 * gw = g*w and xhat = (x - mean)*rstd; dw += sum_r g*xhat, db += sum_r g (zeroed by
 * the caller; either may be NULL) */
#define LN_BACKWARD(T, SUF)                                                               \
    static void ln_backward_##SUF(T *dx, T *dw, T *db, const T *g, const T *x,              \
                                const T *w, const T *mean, const T *rstd, int64_t R,      \
                                int64_t D) {                                              \
        if (dx) {                                                                         \
            _Pragma("omp parallel for if (R * D > FAROL_PAR_MIN)")                        \
            for (int64_t r = 0; r < R; r++) {                                             \
                const T *gr = g + r * D, *xr = x + r * D;                                 \
                T *d = dx + r * D, m = mean[r], rs = rstd[r];                             \
                if (w)                                                                    \
                    LN_DX_ROW(T, LN_GW);                                                  \
                else                                                                      \
                    LN_DX_ROW(T, LN_G);                                                   \
            }                                                                             \
        }                                                                                 \
        if (!dw && !db) return;                                                           \
        for (int64_t r = 0; r < R; r++) {                                                 \
            const T *gr = g + r * D, *xr = x + r * D;                                     \
            T m = mean[r], rs = rstd[r];                                                  \
            if (dw) {                                                                     \
                _Pragma("omp simd")                                                       \
                for (int64_t j = 0; j < D; j++) dw[j] += gr[j] * (xr[j] - m) * rs;        \
            }                                                                             \
            if (db) {                                                                     \
                _Pragma("omp simd")                                                       \
                for (int64_t j = 0; j < D; j++) db[j] += gr[j];                           \
            }                                                                             \
        }                                                                                 \
    }

LN_FORWARD(float, float)
LN_FORWARD(double, double)
LN_BACKWARD(float, float)
LN_BACKWARD(double, double)
#if FAROL_HAVE_ISA_VARIANTS /* the same kernels for AVX2 and AVX-512, chosen at run time */
FAROL_ISA_BEGIN_AVX2
LN_FORWARD(float, float_avx2)
LN_FORWARD(double, double_avx2)
LN_BACKWARD(float, float_avx2)
LN_BACKWARD(double, double_avx2)
FAROL_ISA_END
FAROL_ISA_BEGIN_AVX512
LN_FORWARD(float, float_avx512)
LN_FORWARD(double, double_avx512)
LN_BACKWARD(float, float_avx512)
LN_BACKWARD(double, double_avx512)
FAROL_ISA_END
#endif

static bool shape_eq(int n, const int64_t *a, const int64_t *b) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return false;
    return true;
}

static int ln_check_param(const char *arg, const farol_tensor *p, int nshape,
                          const int64_t *shape) {
    char a[96], b[96];
    if (farol_check_float("layer_norm", arg, p) < 0) return -1;
    if (p->ndim == nshape && shape_eq(nshape, p->shape, shape)) return 0;
    farol_set_error("farol: layer_norm: %s must have the normalized shape %s, got %s", arg,
                    farol_shape_str(nshape, shape, a, sizeof a),
                    farol_shape_str(p->ndim, p->shape, b, sizeof b));
    return -1;
}

farol_tensor *farol_layer_norm(farol_tensor *x, int nshape, const int64_t *shape,
                               farol_tensor *w, farol_tensor *b, double eps) {
    char a[96], s[96];
    if (!x) {
        farol_set_error("farol: layer_norm: x is required");
        return NULL;
    }
    if (farol_check_float("layer_norm", "x", x) < 0) return NULL;
    if (nshape < 1 || nshape > x->ndim || !shape) {
        farol_set_error("farol: layer_norm: the normalized shape must have 1 to %d dims (those "
                        "of x %s), got %d", x->ndim,
                        farol_shape_str(x->ndim, x->shape, a, sizeof a), nshape);
        return NULL;
    }
    int lead = x->ndim - nshape;
    if (!shape_eq(nshape, x->shape + lead, shape)) {
        farol_set_error("farol: layer_norm: normalized shape %s does not match the trailing "
                        "dims of x %s", farol_shape_str(nshape, shape, s, sizeof s),
                        farol_shape_str(x->ndim, x->shape, a, sizeof a));
        return NULL;
    }
    if ((w && ln_check_param("w", w, nshape, shape) < 0) ||
        (b && ln_check_param("b", b, nshape, shape) < 0))
        return NULL;
    if (!(eps >= 0)) {
        farol_set_error("farol: layer_norm: eps must be >= 0, got %g", eps);
        return NULL;
    }

    farol_dtype dt = compute_dtype(x, w, b);
    if (farol_shape_empty(x->ndim, x->shape)) {
        farol_tensor *ins[3] = {x, w, b};
        return farol_record_empty(FAROL_OP_LAYER_NORM, x->ndim, x->shape, dt, 3, ins);
    }
    int64_t R = 1, D = 1;
    for (int i = 0; i < lead; i++) R *= x->shape[i];
    for (int i = lead; i < x->ndim; i++) D *= x->shape[i];
    farol_tensor *xc = farol_cast_raw(x, dt), *wc = NULL, *bc = NULL;
    farol_tensor *out = NULL, *mean = NULL, *rstd = NULL;
    if (!xc || cast_opt(w, dt, &wc) < 0 || cast_opt(b, dt, &bc) < 0) goto done;
    out = farol_empty(x->ndim, x->shape, dt);
    mean = farol_empty(1, &R, dt);
    rstd = farol_empty(1, &R, dt);
    if (!out || !mean || !rstd) goto fail;
    if (dt == FAROL_F32)
        FAROL_ISA_DISPATCH(ln_forward_float,
                           (farol_data(out), farol_data(mean), farol_data(rstd), farol_data(xc),
                            wc ? farol_data(wc) : NULL, bc ? farol_data(bc) : NULL, eps, R, D));
    else
        FAROL_ISA_DISPATCH(ln_forward_double,
                           (farol_data(out), farol_data(mean), farol_data(rstd), farol_data(xc),
                            wc ? farol_data(wc) : NULL, bc ? farol_data(bc) : NULL, eps, R, D));

    farol_tensor *in[3];
    int iw, ib, k = gather_inputs(x, w, b, in, &iw, &ib);
    /* saved: 0 x, 1 w (or an empty slot), 2 mean, 3 rstd; all in compute dtype */
    out = farol_record(FAROL_OP_LAYER_NORM, out, k, in, FAROL_SAVE(xc, wc, mean, rstd),
                       &(farol_op_params){.norm = {.iw = iw, .ib = ib, .rows = R, .cols = D}});
    goto done;
fail:
    farol_release(out);
    out = NULL;
done:
    farol_release(xc);
    farol_release(wc);
    farol_release(bc);
    farol_release(mean);
    farol_release(rstd);
    return out;
}

int farol_layer_norm_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    int iw = n->p.norm.iw, ib = n->p.norm.ib;
    int64_t R = n->p.norm.rows, D = n->p.norm.cols;
    bool need_x = n->inputs[0].need, need_w = iw >= 0 && n->inputs[iw].need,
         need_b = ib >= 0 && n->inputs[ib].need;
    farol_tensor *x = farol_saved(n, 0), *w = iw >= 0 ? farol_saved(n, 1) : NULL;
    farol_tensor *mean = farol_saved(n, 2), *rstd = farol_saved(n, 3);
    if (!x || !mean || !rstd || (iw >= 0 && !w)) return -1;

    int rc = -1;
    farol_dtype dt = x->dtype;
    farol_tensor *g = farol_cast_raw(gout, dt), *dx = NULL, *dw = NULL, *db = NULL;
    if (!g) goto done;
    if (need_x && !(dx = farol_empty(x->ndim, x->shape, dt))) goto done;
    if (need_w && !(dw = farol_zeros(n->inputs[iw].ndim, n->inputs[iw].shape, dt))) goto done;
    if (need_b && !(db = farol_zeros(n->inputs[ib].ndim, n->inputs[ib].shape, dt))) goto done;
#define LN_PTR(t) ((t) ? farol_data(t) : NULL)
    if (dt == FAROL_F32)
        FAROL_ISA_DISPATCH(ln_backward_float,
                           (LN_PTR(dx), LN_PTR(dw), LN_PTR(db), farol_data(g), farol_data(x),
                            LN_PTR(w), farol_data(mean), farol_data(rstd), R, D));
    else
        FAROL_ISA_DISPATCH(ln_backward_double,
                           (LN_PTR(dx), LN_PTR(dw), LN_PTR(db), farol_data(g), farol_data(x),
                            LN_PTR(w), farol_data(mean), farol_data(rstd), R, D));
#undef LN_PTR
    if (need_x && !(gin[0] = to_input_dtype(dx, &n->inputs[0]))) goto done;
    if (need_w && !(gin[iw] = to_input_dtype(dw, &n->inputs[iw]))) goto done;
    if (need_b && !(gin[ib] = to_input_dtype(db, &n->inputs[ib]))) goto done;
    rc = 0;
done:
    farol_release(g);
    farol_release(dx);
    farol_release(dw);
    farol_release(db);
    return rc;
}
