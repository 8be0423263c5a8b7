/* Softmax and log-softmax along one dim, shifted by the line's maximum so
 * large inputs cannot overflow.  The input is seen as a contiguous block
 * (outer, n, inner) and each line x[o, :, j] (n elements at stride inner)
 * is normalised on its own: along the last dim (the usual case: logits,
 * attention scores) lines are unit-stride.  Backward uses the saved output:
 *   softmax:      gx = y * (g - sum(g * y))
 *   log_softmax:  gx = g - exp(y) * sum(g) */
#include "internal.h"

#include "softmax_line.h"

#define DEF_SOFTMAX(T, SUF, EXP)                                                           \
    DEF_SOFTMAX_LINES(T, SUF, EXP)                                                         \
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
