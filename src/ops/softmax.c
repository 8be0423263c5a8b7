/* Softmax and log-softmax along one dim, shifted by the line's maximum so
 * large inputs cannot overflow.  The input is seen as a contiguous block
 * (outer, n, inner) and each line x[o, :, j] (n elements at stride inner)
 * is normalised on its own: along the last dim (the usual case: logits,
 * attention scores) lines are unit-stride.  Backward uses the saved output:
 *   softmax:      gx = y * (g - sum(g * y))
 *   log_softmax:  gx = g - exp(y) * sum(g) */
#include "internal.h"

#include <math.h>

/* expf that vectorises (libm's expf does not without -ffast-math): Cephes'
 * polynomial on r = x - n ln2, |r| <= ln2 / 2, times 2^n made in the
 * exponent bits; relative error under 1e-7.  Below -87.33 (where expf is
 * under FLT_MIN) it gives 0, so masked -inf scores get exact zeros; NaN
 * stays NaN.  Softmax only passes x <= 0: above 88, 2^n would overflow.
 * Branch-free on purpose: a float op under a branch blocks if-conversion. */
static inline float fast_expf(float x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * 1.44269504f + magic, n = t - magic;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t tb, yb, magic_bits = 0x4B400000; /* t's low bits hold n */
    memcpy(&tb, &t, sizeof tb);
    tb = (tb - magic_bits + 127) << 23;
    float scale, y;
    memcpy(&scale, &tb, sizeof scale);
    y = p * scale;
    uint32_t keep = -(uint32_t)!isless(x, -87.33654f); /* else the exponent wrapped */
    memcpy(&yb, &y, sizeof yb);
    yb &= keep;
    memcpy(&y, &yb, sizeof y);
    return y;
}

/* One line of n elements at stride s (inlined with s = 1 for the last
 * dim, so those loops are unit-stride and vectorised); sums in double. */
#define DEF_SOFTMAX(T, SUF, EXP)                                                           \
    static inline __attribute__((always_inline)) void forward_line_##SUF(                  \
        bool logsm, T *y, const T *x, int64_t n, int64_t s) {                              \
        /* the max in 8 lanes (omp simd's max reduction is slow here); a NaN it            \
         * skips still reaches every output through the sum */                             \
        T lane[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,                           \
                     -INFINITY, -INFINITY, -INFINITY, -INFINITY}, m = -INFINITY;           \
        int64_t i0 = 0;                                                                    \
        for (; i0 + 8 <= n; i0 += 8)                                                       \
            for (int j = 0; j < 8; j++)                                                    \
                lane[j] = x[(i0 + j) * s] > lane[j] ? x[(i0 + j) * s] : lane[j];           \
        for (; i0 < n; i0++) m = x[i0 * s] > m ? x[i0 * s] : m;                            \
        for (int j = 0; j < 8; j++) m = lane[j] > m ? lane[j] : m;                         \
        double sum = 0;                                                                    \
        if (logsm) {                                                                       \
            _Pragma("omp simd reduction(+:sum)")                                           \
            for (int64_t i = 0; i < n; i++) sum += EXP(x[i * s] - m);                      \
            T lse = (T)log(sum);                                                           \
            _Pragma("omp simd")                                                            \
            for (int64_t i = 0; i < n; i++) y[i * s] = (x[i * s] - m) - lse;               \
        } else {                                                                           \
            _Pragma("omp simd reduction(+:sum)")                                           \
            for (int64_t i = 0; i < n; i++) {                                              \
                T e = EXP(x[i * s] - m);                                                   \
                y[i * s] = e;                                                              \
                sum += e;                                                                  \
            }                                                                              \
            T inv = (T)(1.0 / sum);                                                        \
            _Pragma("omp simd")                                                            \
            for (int64_t i = 0; i < n; i++) y[i * s] *= inv;                               \
        }                                                                                  \
    }                                                                                      \
    static inline __attribute__((always_inline)) void backward_line_##SUF(                 \
        bool logsm, T *gx, const T *g, const T *y,                                         \
                                           int64_t n, int64_t s) {                         \
        double dot = 0;                                                                    \
        if (logsm) {                                                                       \
            _Pragma("omp simd reduction(+:dot)")                                           \
            for (int64_t i = 0; i < n; i++) dot += g[i * s];                               \
            _Pragma("omp simd")                                                            \
            for (int64_t i = 0; i < n; i++) gx[i * s] = g[i * s] - EXP(y[i * s]) * (T)dot; \
        } else {                                                                           \
            _Pragma("omp simd reduction(+:dot)")                                           \
            for (int64_t i = 0; i < n; i++) dot += (double)g[i * s] * y[i * s];            \
            _Pragma("omp simd")                                                            \
            for (int64_t i = 0; i < n; i++) gx[i * s] = y[i * s] * (g[i * s] - (T)dot);    \
        }                                                                                  \
    }                                                                                      \
    /* x, y: (outer, n, inner) */                                                          \
    static void forward_##SUF(bool logsm, T *y, const T *x, int64_t outer, int64_t n,      \
                              int64_t inner) {                                             \
        _Pragma("omp parallel for if (outer * inner * n > FAROL_PAR_MIN)")                 \
        for (int64_t l = 0; l < outer * inner; l++) {                                      \
            int64_t base = (l / inner) * n * inner + l % inner;                            \
            if (inner == 1) forward_line_##SUF(logsm, y + base, x + base, n, 1);           \
            else forward_line_##SUF(logsm, y + base, x + base, n, inner);                  \
        }                                                                                  \
    }                                                                                      \
    static void backward_##SUF(bool logsm, T *gx, const T *g, const T *y, int64_t outer,   \
                               int64_t n, int64_t inner) {                                 \
        _Pragma("omp parallel for if (outer * inner * n > FAROL_PAR_MIN)")                 \
        for (int64_t l = 0; l < outer * inner; l++) {                                      \
            int64_t base = (l / inner) * n * inner + l % inner;                            \
            if (inner == 1) backward_line_##SUF(logsm, gx + base, g + base, y + base, n, 1); \
            else backward_line_##SUF(logsm, gx + base, g + base, y + base, n, inner);      \
        }                                                                                  \
    }

DEF_SOFTMAX(float, f32, fast_expf)
DEF_SOFTMAX(double, f64, exp)
#if FAROL_HAVE_ISA_VARIANTS /* the same kernels for AVX2 and AVX-512, chosen at run time */
FAROL_ISA_BEGIN_AVX2
DEF_SOFTMAX(float, f32_avx2, fast_expf)
DEF_SOFTMAX(double, f64_avx2, exp)
FAROL_ISA_END
FAROL_ISA_BEGIN_AVX512
DEF_SOFTMAX(float, f32_avx512, fast_expf)
DEF_SOFTMAX(double, f64_avx512, exp)
FAROL_ISA_END
#endif

/* x as (outer, n, inner) around dim d */
static void split_at(int ndim, const int64_t *shape, int d, int64_t *outer, int64_t *n,
                     int64_t *inner) {
    *outer = *n = *inner = 1;
    for (int i = 0; i < ndim; i++) {
        if (i < d) *outer *= shape[i];
        else if (i == d) *n = shape[i];
        else *inner *= shape[i];
    }
}

static farol_tensor *softmax_op(bool logsm, farol_tensor *x, int dim) {
    const char *fn = logsm ? "log_softmax" : "softmax";
    if (!x) {
        farol_set_error("farol: %s: x is NULL", fn);
        return NULL;
    }
    if (farol_check_float(fn, "x", x) < 0) return NULL;
    int d = farol_norm_dim(fn, dim, x->ndim);
    if (d < 0) return NULL;
    farol_tensor *ins[1] = {x};
    farol_op op = logsm ? FAROL_OP_LOG_SOFTMAX : FAROL_OP_SOFTMAX;
    if (farol_shape_empty(x->ndim, x->shape))
        return farol_record_empty(op, x->ndim, x->shape, x->dtype, 1, ins);
    int64_t outer, n, inner;
    split_at(x->ndim, x->shape, d, &outer, &n, &inner);
    farol_tensor *xc = farol_contig_raw(x);
    farol_tensor *out = xc ? farol_empty(x->ndim, x->shape, x->dtype) : NULL;
    if (!out) {
        farol_release(xc);
        return NULL;
    }
    if (x->dtype == FAROL_F32)
        FAROL_ISA_DISPATCH(forward_f32, (logsm, farol_data(out), farol_data(xc), outer, n, inner));
    else
        FAROL_ISA_DISPATCH(forward_f64, (logsm, farol_data(out), farol_data(xc), outer, n, inner));
    farol_release(xc);

    return farol_record(op, out, 1, ins, FAROL_SAVE(out), &(farol_op_params){.dim = {d}});
}

farol_tensor *farol_softmax(farol_tensor *x, int dim) { return softmax_op(false, x, dim); }
farol_tensor *farol_log_softmax(farol_tensor *x, int dim) { return softmax_op(true, x, dim); }

static int softmax_backward(bool logsm, farol_node *nd, farol_tensor *gout, farol_tensor **gin) {
    if (!nd->inputs[0].need) return 0;
    const farol_edge *e = &nd->inputs[0];
    farol_tensor *ys = farol_saved(nd, 0);
    if (!ys) return -1;
    int64_t outer, n, inner;
    split_at(e->ndim, e->shape, nd->p.dim.dim, &outer, &n, &inner);
    farol_tensor *y = farol_contig_raw(ys);
    farol_tensor *g = farol_cast_raw(gout, e->dtype);
    farol_tensor *gx = farol_empty(e->ndim, e->shape, e->dtype);
    if (!y || !g || !gx || farol_numel(g) != farol_numel(y)) {
        if (y && g && gx)
            farol_set_error("farol: %s backward: gradient has %lld elements, expected %lld",
                            logsm ? "log_softmax" : "softmax", (long long)farol_numel(g),
                            (long long)farol_numel(y));
        farol_release(y);
        farol_release(g);
        farol_release(gx);
        return -1;
    }
    if (e->dtype == FAROL_F32)
        FAROL_ISA_DISPATCH(backward_f32, (logsm, farol_data(gx), farol_data(g), farol_data(y), outer, n, inner));
    else
        FAROL_ISA_DISPATCH(backward_f64, (logsm, farol_data(gx), farol_data(g), farol_data(y), outer, n, inner));
    farol_release(y);
    farol_release(g);
    gin[0] = gx;
    return 0;
}

int farol_softmax_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    return softmax_backward(false, n, gout, gin);
}
int farol_log_softmax_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    return softmax_backward(true, n, gout, gin);
}
