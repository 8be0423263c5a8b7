/* Reductions over one dim or over everything: sum, mean, var, std, amax,
 * amin, logsumexp, norm, max/min along a dim (values and indices),
 * argmax/argmin.  (farol_sum_to, the gradient of every broadcasting op, is in
 * the tensor layer: src/tensor/sum_to.c.)
 *
 * Every reduction sees its input as a contiguous block (outer, n, inner) and
 * reduces the middle dim.  A "line" is the n elements x[o, :, j], at stride
 * inner; a reduction over the last dim (inner == 1) reads unit-stride lines.
 * Float32 is accumulated in double so results stay close to PyTorch's
 * (which sums float32 pairwise). */
#include "internal.h"

#include <math.h>

typedef enum {
    K_SUM, K_MEAN, K_VAR, K_STD, K_AMAX, K_AMIN, K_LSE, K_NORM, K_MAX_DIM, K_MIN_DIM
} kind;

static const char *const kind_name[] = {
    "sum", "mean", "var", "std", "amax", "amin", "logsumexp", "norm", "max", "min"
};

/* the shape of one reduction: x viewed as (outer, n, inner) */
typedef struct {
    int dim;  /* normalised, or -1 for a full reduction */
    int64_t outer, n, inner;
    int ondim;
    int64_t oshape[FAROL_MAX_DIMS];
} rplan;

static void plan_split(int ndim, const int64_t *shape, int dim, rplan *p) {
    p->dim = dim;
    p->outer = p->n = p->inner = 1;
    for (int i = 0; i < ndim; i++) {
        if (dim < 0) p->n *= shape[i];
        else if (i < dim) p->outer *= shape[i];
        else if (i == dim) p->n = shape[i];
        else p->inner *= shape[i];
    }
}

static int plan_reduce(const char *fn, const farol_tensor *x, int dim, bool keepdim, rplan *p) {
    int d = -1;
    /* a 0-d tensor accepts dim 0 and -1, as in PyTorch */
    bool all = dim == FAROL_DIM_ALL || (x->ndim == 0 && (dim == 0 || dim == -1));
    if (!all && (d = farol_norm_dim(fn, dim, x->ndim)) < 0) return -1;
    plan_split(x->ndim, x->shape, d, p);
    p->ondim = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (d >= 0 && i != d) p->oshape[p->ondim++] = x->shape[i];
        else if (keepdim) p->oshape[p->ondim++] = 1;
    }
    return 0;
}

/* ---- kernels, written once for float and double ---- */

/* The maximum (want_min: the minimum) of a line of n >= 1 elements at
 * stride s and, with idx, its first index.  NaN counts as the extreme, as in
 * PyTorch.  A vectorised pass finds the value, a short scan its index. */
#define DEF_EXTREME(T, SUF, ISNAN)                                                         \
    static inline T extreme_##SUF(const T *x, int64_t n, int64_t s, bool want_min,         \
                           int64_t *idx) {                                                 \
        T m = x[0];                                                                        \
        int nan = 0;                                                                       \
        if (want_min) {                                                                    \
            _Pragma("omp simd reduction(min:m) reduction(|:nan)")                          \
            for (int64_t i = 0; i < n; i++) {                                              \
                m = x[i * s] < m ? x[i * s] : m;                                           \
                nan |= ISNAN(x[i * s]);                                                    \
            }                                                                              \
        } else {                                                                           \
            _Pragma("omp simd reduction(max:m) reduction(|:nan)")                          \
            for (int64_t i = 0; i < n; i++) {                                              \
                m = x[i * s] > m ? x[i * s] : m;                                           \
                nan |= ISNAN(x[i * s]);                                                    \
            }                                                                              \
        }                                                                                  \
        int64_t i = 0;                                                                     \
        if (nan)                                                                           \
            while (!ISNAN(x[i * s])) i++;                                                  \
        else if (idx)                                                                      \
            while (x[i * s] != m) i++;                                                     \
        if (idx) *idx = i;                                                                 \
        return nan ? x[i * s] : m;                                                         \
    }

#define FLOAT_ISNAN(v) ((v) != (v))
#define INT_ISNAN(v) 0

/* One line reduced in double: the sum (K_SUM, K_MEAN), the sum of squares
 * (K_NORM), the unbiased variance (K_VAR, K_STD) or log-sum-exp (K_LSE). */
#define DEF_LINE(T, SUF)                                                                   \
    static inline double line_##SUF(kind k, const T *x, int64_t n, int64_t s) {            \
        double acc = 0;                                                                    \
        if (k == K_SUM || k == K_MEAN) {                                                   \
            _Pragma("omp simd reduction(+:acc)")                                           \
            for (int64_t i = 0; i < n; i++) acc += x[i * s];                               \
        } else if (k == K_NORM) {                                                          \
            _Pragma("omp simd reduction(+:acc)")                                           \
            for (int64_t i = 0; i < n; i++) acc += (double)x[i * s] * x[i * s];            \
        } else if (k == K_VAR || k == K_STD) {                                             \
            if (n < 1) return NAN;                                                         \
            double mean = line_##SUF(K_SUM, x, n, s) / (double)n;                          \
            _Pragma("omp simd reduction(+:acc)")                                           \
            for (int64_t i = 0; i < n; i++) {                                              \
                double d = x[i * s] - mean;                                                \
                acc += d * d;                                                              \
            }                                                                              \
            acc /= (double)(n - 1);                                                        \
        } else { /* K_LSE, shifted by the max so exp cannot overflow */                    \
            double m = -INFINITY;                                                          \
            for (int64_t i = 0; i < n; i++)                                                \
                if (x[i * s] > m) m = x[i * s];                                            \
            if (isinf(m)) return m;                                                        \
            for (int64_t i = 0; i < n; i++) acc += exp(x[i * s] - m);                      \
            acc = m + log(acc);                                                            \
        }                                                                                  \
        return acc;                                                                        \
    }

/* the line result made final: mean divides, std and norm take the root */
static double finish(kind k, double v, int64_t n) {
    if (k == K_MEAN) return v / (double)n;
    if (k == K_STD || k == K_NORM) return sqrt(v);
    return v;
}

#define CHUNK ((int64_t)1 << 16) /* a full sum is split into chunks this long */

/* x: (outer, n, inner) -> out: (outer, inner), idx: (outer, inner) or NULL */
#define DEF_REDUCE(T, SUF)                                                                 \
    static void reduce_##SUF(kind k, T *out, int64_t *idx, const T *x, const rplan *p) {   \
        int64_t n = p->n, inner = p->inner, lines = p->outer * inner;                      \
        if (k == K_SUM || k == K_MEAN) { /* the tensor layer's sum, in its fixed order */      \
            farol_sum_lines(sizeof(T) == 4 ? FAROL_F32 : FAROL_F64, out, x, p->outer, n, inner, \
                            k == K_MEAN ? (double)n : 1.0);                              \
            return;                                                                        \
        }                                                                                  \
        if (k == K_NORM && lines == 1 && n > 2 * CHUNK) {                     \
            /* fixed chunks added in order: the same result for any thread count */        \
            int64_t nc = (n + CHUNK - 1) / CHUNK;                                          \
            double part[64], total = 0;                                                    \
            for (int64_t c0 = 0; c0 < nc; c0 += 64) {                                      \
                int64_t m = nc - c0 < 64 ? nc - c0 : 64;                                   \
                _Pragma("omp parallel for")                                                \
                for (int64_t c = 0; c < m; c++) {                                          \
                    int64_t s = (c0 + c) * CHUNK;                                          \
                    part[c] = line_##SUF(k, x + s, n - s < CHUNK ? n - s : CHUNK, 1);      \
                }                                                                          \
                for (int64_t c = 0; c < m; c++) total += part[c];                          \
            }                                                                              \
            out[0] = (T)finish(k, total, n);                                               \
            return;                                                                        \
        }                                                                                  \
        _Pragma("omp parallel for if (lines * n > FAROL_PAR_MIN && lines > 1)")            \
        for (int64_t l = 0; l < lines; l++) {                                              \
            const T *line = x + (l / inner) * n * inner + l % inner;                       \
            if (k == K_AMAX || k == K_AMIN || k == K_MAX_DIM || k == K_MIN_DIM) {          \
                bool lo = k == K_AMIN || k == K_MIN_DIM;                                   \
                T v = inner == 1 ? extreme_##SUF(line, n, 1, lo, idx ? idx + l : NULL)     \
                                 : extreme_##SUF(line, n, inner, lo, idx ? idx + l : NULL); \
                if (out) out[l] = v;                                                       \
            } else if (inner == 1) {                                                       \
                out[l] = (T)finish(k, line_##SUF(k, line, n, 1), n);                       \
            } else {                                                                       \
                out[l] = (T)finish(k, line_##SUF(k, line, n, inner), n);                   \
            }                                                                              \
        }                                                                                  \
    }

/* gin: (outer, n, inner) from g and y (the forward result): (outer, inner),
 * x: (outer, n, inner), idx: (outer, inner) for max/min along a dim */
#define DEF_BACKWARD(T, SUF)                                                               \
    static void backward_##SUF(kind k, T *gin, const T *g, const T *x, const T *y,         \
                               const int64_t *idx, const rplan *p) {                       \
        int64_t n = p->n, inner = p->inner, lines = p->outer * inner;                      \
        if (k == K_SUM || k == K_MEAN) { /* g broadcast along the dim, row by row */       \
            T scale = (T)(k == K_MEAN ? 1.0 / (double)n : 1.0);                            \
            _Pragma("omp parallel for if (lines * n > FAROL_PAR_MIN)")                     \
            for (int64_t r = 0; r < p->outer * n; r++) {                                   \
                const T *gr = g + (r / n) * inner;                                         \
                T *row = gin + r * inner;                                                  \
                for (int64_t j = 0; j < inner; j++) row[j] = gr[j] * scale;                \
            }                                                                              \
            return;                                                                        \
        }                                                                                  \
        if (k == K_MAX_DIM || k == K_MIN_DIM) { /* gin is zero; g goes to the index */     \
            for (int64_t l = 0; l < lines; l++)                                            \
                gin[(l / inner) * n * inner + idx[l] * inner + l % inner] = g[l];          \
            return;                                                                        \
        }                                                                                  \
        _Pragma("omp parallel for if (lines * n > FAROL_PAR_MIN && lines > 1)")            \
        for (int64_t l = 0; l < lines; l++) {                                              \
            int64_t base = (l / inner) * n * inner + l % inner;                            \
            const T *xl = x + base;                                                        \
            T *gl = gin + base;                                                            \
            double gv = g[l], yv = y ? y[l] : 0;                                           \
            if (k == K_VAR || k == K_STD) {                                                \
                /* d var / dx_i = 2 (x_i - mean) / (n - 1); std divides by 2 std */        \
                double mean = line_##SUF(K_SUM, xl, n, inner) / (double)n;                 \
                double c = k == K_VAR ? gv * 2.0 / (double)(n - 1)                         \
                                      : gv / ((double)(n - 1) * yv);                       \
                for (int64_t i = 0; i < n; i++)                                            \
                    gl[i * inner] = (T)(c * (xl[i * inner] - mean));                       \
            } else if (k == K_AMAX || k == K_AMIN) { /* ties share the gradient */         \
                int64_t ties = 0;                                                          \
                for (int64_t i = 0; i < n; i++) ties += xl[i * inner] == (T)yv;            \
                T share = (T)(gv / (double)(ties ? ties : 1));                             \
                for (int64_t i = 0; i < n; i++)                                            \
                    gl[i * inner] = xl[i * inner] == (T)yv ? share : (T)0;                 \
            } else if (k == K_LSE) { /* softmax of the line times g */                     \
                for (int64_t i = 0; i < n; i++)                                            \
                    gl[i * inner] = (T)(gv * exp(xl[i * inner] - yv));                     \
            } else { /* K_NORM: x / |x|, and 0 where the norm is 0 (PyTorch) */            \
                double c = yv == 0 ? 0 : gv / yv;                                          \
                for (int64_t i = 0; i < n; i++) gl[i * inner] = (T)(c * xl[i * inner]);    \
            }                                                                              \
        }                                                                                  \
    }

DEF_EXTREME(float, f32, FLOAT_ISNAN)
DEF_EXTREME(double, f64, FLOAT_ISNAN)
DEF_EXTREME(int64_t, i64, INT_ISNAN)
DEF_LINE(float, f32)
DEF_LINE(double, f64)
DEF_REDUCE(float, f32)
DEF_REDUCE(double, f64)
DEF_BACKWARD(float, f32)
DEF_BACKWARD(double, f64)

/* int64: sums (exact, in int64) and extremes only */
static void reduce_i64(kind k, int64_t *out, int64_t *idx, const int64_t *x, const rplan *p) {
    int64_t n = p->n, inner = p->inner, lines = p->outer * inner;
    for (int64_t l = 0; l < lines; l++) {
        const int64_t *line = x + (l / inner) * n * inner + l % inner;
        if (k == K_SUM) {
            uint64_t acc = 0;  /* wraps like PyTorch's int64 sum; signed overflow is UB */
            for (int64_t i = 0; i < n; i++) acc += (uint64_t)line[i * inner];
            out[l] = (int64_t)acc;
        } else {
            int64_t v = extreme_i64(line, n, inner, k == K_AMIN || k == K_MIN_DIM,
                                    idx ? idx + l : NULL);
            if (out) out[l] = v;
        }
    }
}

static void run_reduce(kind k, farol_tensor *out, int64_t *idx, const farol_tensor *xc,
                       const rplan *p) {
    void *o = out ? farol_data(out) : NULL;
    if (xc->dtype == FAROL_F32) reduce_f32(k, o, idx, farol_data(xc), p);
    else if (xc->dtype == FAROL_F64) reduce_f64(k, o, idx, farol_data(xc), p);
    else reduce_i64(k, o, idx, farol_data(xc), p);
}

static const farol_op op_of[] = {
    FAROL_OP_SUM, FAROL_OP_MEAN, FAROL_OP_VAR, FAROL_OP_STD, FAROL_OP_AMAX,
    FAROL_OP_AMIN, FAROL_OP_LOGSUMEXP, FAROL_OP_NORM, FAROL_OP_MAX_DIM, FAROL_OP_MAX_DIM
};

/* The common forward: checks, plans, reduces and records.  indices (max and
 * min along a dim, or argmax/argmin when want_values is false) receives the
 * int64 index tensor. */
static farol_tensor *reduce_op(kind k, farol_tensor *x, int dim, bool keepdim,
                               farol_tensor **indices, bool want_values, const char *fn) {
    char sbuf[96];
    if (!x) {
        farol_set_error("farol: %s: x is NULL", fn);
        return NULL;
    }
    bool extreme = k == K_AMAX || k == K_AMIN || k == K_MAX_DIM || k == K_MIN_DIM;
    if (!extreme && !(k == K_SUM && x->dtype == FAROL_I64) && farol_check_float(fn, "x", x) < 0)
        return NULL;
    rplan p;
    if (plan_reduce(fn, x, dim, keepdim, &p) < 0) return NULL;
    if (extreme && p.n == 0) {
        if (p.dim < 0)
            farol_set_error("farol: %s: cannot reduce an empty tensor %s", fn,
                            farol_shape_str(x->ndim, x->shape, sbuf, sizeof sbuf));
        else
            farol_set_error("farol: %s: cannot reduce over dim " FAROL_IX " of size 0 (input %s)", fn,
                            (long long)p.dim, farol_shape_str(x->ndim, x->shape, sbuf, sizeof sbuf));
        return NULL;
    }
    farol_tensor *xc = farol_contig_raw(x);
    if (!xc) return NULL;
    farol_tensor *out = want_values ? farol_empty(p.ondim, p.oshape, x->dtype) : NULL;
    farol_tensor *idx = indices ? farol_empty(p.ondim, p.oshape, FAROL_I64) : NULL;
    if ((want_values && !out) || (indices && !idx)) goto fail;
    if (p.n == 0) {  /* over nothing: PyTorch's value, without visiting the other dims */
        static const double empty_value[] = {[K_SUM] = 0, [K_MEAN] = NAN, [K_VAR] = NAN,
                                             [K_STD] = NAN, [K_LSE] = -INFINITY, [K_NORM] = 0};
        if (farol_fill_(out, empty_value[k]) < 0) goto fail;
    } else {
        run_reduce(k, out, idx ? farol_data(idx) : NULL, xc, &p);
    }

    farol_tensor *ins[1] = {x};
    if (out && farol_is_floating(x->dtype)) {
        /* saved: 0 x (the indices for max and min along a dim), 1 the result */
        farol_tensor *s0 = k == K_MAX_DIM || k == K_MIN_DIM ? idx : xc;
        int n_save = k == K_SUM || k == K_MEAN ? 0 : k == K_VAR ? 1 : 2;
        farol_tensor *save[2] = {s0, out};
        /* max or min along a dim share FAROL_OP_MAX_DIM: kind tells them apart */
        farol_op_params prm = {.reduce = {.dim = p.dim, .kind = k, .keepdim = keepdim}};
        if (!(out = farol_record(op_of[k], out, 1, ins, n_save, save, &prm))) goto fail;
    }
    farol_release(xc);
    if (indices) *indices = idx;
    return want_values ? out : idx;
fail:
    farol_release(xc);
    farol_release(out);
    farol_release(idx);
    return NULL;
}

farol_tensor *farol_sum(farol_tensor *x, int dim, bool keepdim) {
    return reduce_op(K_SUM, x, dim, keepdim, NULL, true, "sum");
}
farol_tensor *farol_mean(farol_tensor *x, int dim, bool keepdim) {
    return reduce_op(K_MEAN, x, dim, keepdim, NULL, true, "mean");
}
farol_tensor *farol_var(farol_tensor *x, int dim, bool keepdim) {
    return reduce_op(K_VAR, x, dim, keepdim, NULL, true, "var");
}
farol_tensor *farol_std(farol_tensor *x, int dim, bool keepdim) {
    return reduce_op(K_STD, x, dim, keepdim, NULL, true, "std");
}
farol_tensor *farol_amax(farol_tensor *x, int dim, bool keepdim) {
    return reduce_op(K_AMAX, x, dim, keepdim, NULL, true, "amax");
}
farol_tensor *farol_amin(farol_tensor *x, int dim, bool keepdim) {
    return reduce_op(K_AMIN, x, dim, keepdim, NULL, true, "amin");
}
farol_tensor *farol_logsumexp(farol_tensor *x, int dim, bool keepdim) {
    return reduce_op(K_LSE, x, dim, keepdim, NULL, true, "logsumexp");
}
farol_tensor *farol_norm(farol_tensor *x, int dim, bool keepdim) {
    return reduce_op(K_NORM, x, dim, keepdim, NULL, true, "norm");
}

static farol_tensor *extreme_dim(kind k, farol_tensor *x, int dim, bool keepdim,
                                 farol_tensor **indices, const char *fn) {
    farol_tensor *idx = NULL;
    if (!indices) {
        farol_set_error("farol: %s: indices is NULL (pass where to store them)", fn);
        return NULL;
    }
    *indices = NULL;
    farol_tensor *out = reduce_op(k, x, dim, keepdim, &idx, true, fn);
    if (out) *indices = idx;
    return out;
}

farol_tensor *farol_max_dim(farol_tensor *x, int dim, bool keepdim, farol_tensor **indices) {
    return extreme_dim(K_MAX_DIM, x, dim, keepdim, indices, "max");
}
farol_tensor *farol_min_dim(farol_tensor *x, int dim, bool keepdim, farol_tensor **indices) {
    return extreme_dim(K_MIN_DIM, x, dim, keepdim, indices, "min");
}

farol_tensor *farol_argmax(farol_tensor *x, int dim, bool keepdim) {
    farol_tensor *idx = NULL;
    return reduce_op(K_MAX_DIM, x, dim, keepdim, &idx, false, "argmax");
}
farol_tensor *farol_argmin(farol_tensor *x, int dim, bool keepdim) {
    farol_tensor *idx = NULL;
    return reduce_op(K_MIN_DIM, x, dim, keepdim, &idx, false, "argmin");
}

/* ---- backward ---- */

/* gin[0] = d loss / d x for a reduction of kind k; saved: 0 = x (or the
 * indices), 1 = the forward result */
static int reduce_backward(kind k, farol_node *nd, farol_tensor *gout, farol_tensor **gin) {
    if (!nd->inputs[0].need) return 0;
    const farol_edge *e = &nd->inputs[0];
    rplan p;
    plan_split(e->ndim, e->shape, nd->p.reduce.dim, &p);
    if (farol_numel(gout) != p.outer * p.inner) {
        farol_set_error("farol: %s backward: gradient has %lld elements, expected %lld",
                        kind_name[k], (long long)farol_numel(gout),
                        (long long)(p.outer * p.inner));
        return -1;
    }
    farol_tensor *s0 = NULL, *s1 = NULL;
    if (k != K_SUM && k != K_MEAN && !(s0 = farol_saved(nd, 0))) return -1;
    if (k != K_SUM && k != K_MEAN && k != K_VAR && k != K_MAX_DIM && k != K_MIN_DIM &&
        !(s1 = farol_saved(nd, 1)))
        return -1;
    farol_tensor *g = farol_cast_raw(gout, e->dtype);
    farol_tensor *x = s0 ? farol_contig_raw(s0) : NULL;
    farol_tensor *y = s1 ? farol_contig_raw(s1) : NULL;
    bool scatter = k == K_MAX_DIM || k == K_MIN_DIM;
    farol_tensor *out = scatter ? farol_zeros(e->ndim, e->shape, e->dtype)
                                : farol_empty(e->ndim, e->shape, e->dtype);
    int rc = -1;
    if (!g || (s0 && !x) || (s1 && !y) || !out) goto done;
    const void *xd = x && !scatter ? farol_data(x) : NULL, *yd = y ? farol_data(y) : NULL;
    const int64_t *id = scatter ? farol_data(x) : NULL;
    if (e->dtype == FAROL_F32) backward_f32(k, farol_data(out), farol_data(g), xd, yd, id, &p);
    else backward_f64(k, farol_data(out), farol_data(g), xd, yd, id, &p);
    gin[0] = out;
    out = NULL;
    rc = 0;
done:
    farol_release(g);
    farol_release(x);
    farol_release(y);
    farol_release(out);
    return rc;
}

int farol_sum_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    return reduce_backward(K_SUM, n, gout, gin);
}
int farol_mean_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    return reduce_backward(K_MEAN, n, gout, gin);
}
int farol_var_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    return reduce_backward(K_VAR, n, gout, gin);
}
int farol_std_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    return reduce_backward(K_STD, n, gout, gin);
}
int farol_amax_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    return reduce_backward(K_AMAX, n, gout, gin);
}
int farol_amin_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    return reduce_backward(K_AMIN, n, gout, gin);
}
int farol_logsumexp_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    return reduce_backward(K_LSE, n, gout, gin);
}
int farol_norm_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    return reduce_backward(K_NORM, n, gout, gin);
}
int farol_max_dim_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    return reduce_backward((kind)n->p.reduce.kind, n, gout, gin);
}
