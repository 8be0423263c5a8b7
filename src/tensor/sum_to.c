/* farol_sum_to: a gradient summed over the dims where its input was
 * broadcast.  It sits in the tensor layer, below the tape and the ops,
 * because the backward of every broadcasting op needs it.  Its sum kernel
 * (double accumulators, rows of a block added in order, long lines in fixed
 * chunks: the same result for any thread count) is also reduce.c's sum and
 * mean, through farol_sum_lines. */
#include "internal.h"

#define COLBLK 256               /* columns summed together when inner > 1 */
#define CHUNK ((int64_t)1 << 16) /* a long line is split into chunks this long */

/* x: (outer, n, inner) -> out: (outer, inner), each sum divided by div
 * (1 for a sum, n for reduce.c's mean) */
#define DEF_SUM(T, SUF)                                                                    \
    static double line_##SUF(const T *x, int64_t n, int64_t s) {                           \
        double acc = 0;                                                                    \
        _Pragma("omp simd reduction(+:acc)")                                               \
        for (int64_t i = 0; i < n; i++) acc += x[i * s];                                   \
        return acc;                                                                        \
    }                                                                                      \
    static void sum_mid_##SUF(T *out, const T *x, int64_t outer, int64_t n, int64_t inner, \
                              double div) {                                        \
        int64_t lines = outer * inner;                                                     \
        if (inner > 1) { /* rows added to a block of accumulators */                       \
            int64_t nblk = (inner + COLBLK - 1) / COLBLK;                                  \
            _Pragma("omp parallel for if (lines * n > FAROL_PAR_MIN && outer * nblk > 1)") \
            for (int64_t t = 0; t < outer * nblk; t++) {                                   \
                int64_t o = t / nblk, j0 = (t % nblk) * COLBLK;                            \
                int64_t len = inner - j0 < COLBLK ? inner - j0 : COLBLK;                   \
                double acc[COLBLK] = {0};                                                  \
                for (int64_t i = 0; i < n; i++) {                                          \
                    const T *row = x + (o * n + i) * inner + j0;                           \
                    _Pragma("omp simd")                                                    \
                    for (int64_t j = 0; j < len; j++) acc[j] += row[j];                    \
                }                                                                          \
                for (int64_t j = 0; j < len; j++) out[o * inner + j0 + j] = (T)(acc[j] / div); \
            }                                                                              \
            return;                                                                        \
        }                                                                                  \
        if (lines == 1 && n > 2 * CHUNK) {                                                 \
            /* fixed chunks added in order: the same result for any thread count */        \
            int64_t nc = (n + CHUNK - 1) / CHUNK;                                          \
            double part[64], total = 0;                                                    \
            for (int64_t c0 = 0; c0 < nc; c0 += 64) {                                      \
                int64_t m = nc - c0 < 64 ? nc - c0 : 64;                                   \
                _Pragma("omp parallel for")                                                \
                for (int64_t c = 0; c < m; c++) {                                          \
                    int64_t s = (c0 + c) * CHUNK;                                          \
                    part[c] = line_##SUF(x + s, n - s < CHUNK ? n - s : CHUNK, 1);         \
                }                                                                          \
                for (int64_t c = 0; c < m; c++) total += part[c];                          \
            }                                                                              \
            out[0] = (T)(total / div);                                                     \
            return;                                                                        \
        }                                                                                  \
        _Pragma("omp parallel for if (lines * n > FAROL_PAR_MIN && lines > 1)")            \
        for (int64_t l = 0; l < lines; l++) out[l] = (T)(line_##SUF(x + l * n, n, 1) / div); \
    }

DEF_SUM(float, f32)
DEF_SUM(double, f64)

/* int64: exact, wrapping like PyTorch's int64 sum (signed overflow is UB) */
static void sum_mid_i64(int64_t *out, const int64_t *x, int64_t outer, int64_t n, int64_t inner) {
    for (int64_t l = 0; l < outer * inner; l++) {
        const int64_t *line = x + (l / inner) * n * inner + l % inner;
        uint64_t acc = 0;
        for (int64_t i = 0; i < n; i++) acc += (uint64_t)line[i * inner];
        out[l] = (int64_t)acc;
    }
}

/* out[o, j] = sum over i of x[o, i, j], divided by div (float types) */
void farol_sum_lines(farol_dtype dt, void *out, const void *x, int64_t outer, int64_t n,
                     int64_t inner, double div) {
    if (dt == FAROL_F32) sum_mid_f32(out, x, outer, n, inner, div);
    else if (dt == FAROL_F64) sum_mid_f64(out, x, outer, n, inner, div);
    else sum_mid_i64(out, x, outer, n, inner);
}

/* Sums g over the dims where it was broadcast so it takes the given shape:
 * leading extra dims and dims of size 1 in shape.  Runs of adjacent summed
 * (or kept) dims merge, so a bias gradient (B, T, C) -> (C) is one pass.
 * Returns g itself (retained) when it already has the shape. */
farol_tensor *farol_sum_to(farol_tensor *g, int ndim, const int64_t *shape) {
    char b1[96], b2[96];
    int lead = g->ndim - ndim;
    bool same = lead == 0, ok = lead >= 0;
    for (int i = 0; ok && i < ndim; i++) {
        int64_t gs = g->shape[lead + i];
        ok = shape[i] == gs || shape[i] == 1;
        same = same && shape[i] == gs;
    }
    if (!ok) {
        farol_set_error("farol: sum_to: cannot sum a gradient of shape %s to %s",
                        farol_shape_str(g->ndim, g->shape, b1, sizeof b1),
                        farol_shape_str(ndim, shape, b2, sizeof b2));
        return NULL;
    }
    if (same) return farol_retain(g);
    /* groups of adjacent dims, each summed or kept; size-1 dims join any group */
    int64_t size[FAROL_MAX_DIMS];
    bool summed[FAROL_MAX_DIMS];
    int ng = 0;
    for (int i = 0; i < g->ndim; i++) {
        bool r = i < lead || shape[i - lead] == 1;
        if (g->shape[i] == 1) continue;
        if (ng > 0 && summed[ng - 1] == r) {
            size[ng - 1] *= g->shape[i];
        } else {
            size[ng] = g->shape[i];
            summed[ng++] = r;
        }
    }
    farol_tensor *cur = farol_contig_raw(g);
    for (int k = 0; cur && k < ng; k++) {
        if (!summed[k]) continue;
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < ng; i++) {
            if (i < k) outer *= size[i];
            if (i > k) inner *= size[i];
        }
        int64_t m = outer * inner;
        farol_tensor *next = farol_empty(1, &m, g->dtype);
        if (next) {
            void *o = farol_data(next);
            const void *x = farol_data(cur);
            farol_sum_lines(g->dtype, o, x, outer, size[k], inner, 1);
        }
        farol_release(cur);
        cur = next;
        size[k] = 1;
    }
    if (!cur) return NULL;
    int64_t st[FAROL_MAX_DIMS];
    farol_contiguous_strides(ndim, shape, st);
    farol_tensor *out = farol_make_view(cur, ndim, shape, st, cur->offset);
    farol_release(cur);
    return out;
}
