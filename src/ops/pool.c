/* Pooling over the last two dims of (N, C, H, W) or (C, H, W) inputs, as
 * PyTorch: max_pool2d (padding counts as -inf, ties go to the first maximum),
 * avg_pool2d (count_include_pad or not), both with ceil_mode, and
 * adaptive_avg_pool2d, with backwards.
 *
 * Every pooling here is separable in its windows: output row oh reads input
 * rows [h0[oh], h1[oh]) and the average divides by hn[oh] * wn[ow].  A plan
 * holds those per-axis tables, so fixed and adaptive windows share kernels.
 * Planes (N*C of them) are independent and spread over OpenMP threads. */
#include "internal.h"

#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef struct {
    int64_t planes, H, W, OH, OW;
    int64_t *h0, *h1, *w0, *w1;  /* window of output (oh, ow), clipped to the input */
    double *hn, *wn;             /* the average of (oh, ow) divides by hn[oh] * wn[ow] */
    int64_t kh, kw, sw, pw;      /* max_pool2d's kernel, column stride and padding */
} pool_plan;

static void plan_free(pool_plan *p) { farol_free(p->h0); }

static int plan_alloc(pool_plan *p, const char *fn, int ndim, const int64_t *shape, int64_t oh,
                      int64_t ow) {
    p->H = shape[ndim - 2];
    p->W = shape[ndim - 1];
    p->planes = ndim == 4 ? shape[0] * shape[1] : shape[0];
    p->OH = oh;
    p->OW = ow;
    p->kh = p->kw = p->sw = p->pw = 0;
    /* one block: four index tables, then two divisor tables */
    p->h0 = farol_malloc((size_t)(oh + ow) * (2 * sizeof(int64_t) + sizeof(double)));
    if (!p->h0) {
        farol_set_error("farol: %s: out of memory", fn);
        return -1;
    }
    p->h1 = p->h0 + oh;
    p->w0 = p->h1 + oh;
    p->w1 = p->w0 + ow;
    p->hn = (double *)(p->w1 + ow);
    p->wn = p->hn + oh;
    return 0;
}

/* windows of size k every s, padded by pad: PyTorch's count_include_pad
 * divisor is the window clipped to the padded input, not to the input (a
 * ceil_mode window past it counts only up to its end); without
 * count_include_pad (exclude_pad) the divisor is the window's input cells */
static void fixed_axis(int64_t n, int64_t n_out, int64_t k, int64_t s, int64_t pad, bool exclude_pad,
                       int64_t *lo, int64_t *hi, double *cnt) {
    for (int64_t o = 0; o < n_out; o++) {
        int64_t a = o * s - pad, b = a + k < n + pad ? a + k : n + pad;
        lo[o] = a < 0 ? 0 : a;
        hi[o] = b < n ? b : n;
        cnt[o] = (double)(exclude_pad ? hi[o] - lo[o] : b - a);
    }
}

/* bin o covers [floor(o*n/n_out), ceil((o+1)*n/n_out)) */
static void adaptive_axis(int64_t n, int64_t n_out, int64_t *lo, int64_t *hi, double *cnt) {
    for (int64_t o = 0; o < n_out; o++) {
        lo[o] = o * n / n_out;
        hi[o] = ((o + 1) * n + n_out - 1) / n_out;
        cnt[o] = (double)(hi[o] - lo[o]);
    }
}

static int check_input(const char *fn, const farol_tensor *x) {
    char s[96];
    if (!x) {
        farol_set_error("farol: %s: x is required", fn);
        return -1;
    }
    if (farol_check_float(fn, "x", x) < 0) return -1;
    if (x->ndim != 3 && x->ndim != 4) {
        farol_set_error("farol: %s: x must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape %s", fn,
                        farol_shape_str(x->ndim, x->shape, s, sizeof s));
        return -1;
    }
    return 0;
}

/* checks the options and fills kernel, stride (0 means the kernel) and
 * padding, and the output size */
static int fixed_geometry(const char *fn, const farol_tensor *x, const farol_pool_opts *o,
                          int64_t k[2], int64_t s[2], int64_t p[2], int64_t out[2]) {
    if (check_input(fn, x) < 0) return -1;
    if (!o) {
        farol_set_error("farol: %s: options with the kernel size are required", fn);
        return -1;
    }
    for (int i = x->ndim - 3; i < x->ndim; i++)
        if (x->shape[i] == 0) {  /* as PyTorch: only the batch may be 0 */
            char sh[96];
            farol_set_error("farol: %s: x %s has an empty channel or spatial dim (only the batch "
                            "may be 0)", fn, farol_shape_str(x->ndim, x->shape, sh, sizeof sh));
            return -1;
        }
    for (int i = 0; i < 2; i++) {
        k[i] = o->kernel[i];
        s[i] = o->stride[i] == 0 ? k[i] : o->stride[i];
        p[i] = o->padding[i];
        if (k[i] < 1 || s[i] < 1) {
            farol_set_error("farol: %s: kernel and stride must be >= 1 (stride 0 means the kernel), "
                            "got kernel %d x %d, stride %d x %d",
                            fn, o->kernel[0], o->kernel[1], o->stride[0], o->stride[1]);
            return -1;
        }
        if (p[i] < 0 || 2 * p[i] > k[i]) {
            farol_set_error("farol: %s: padding must be >= 0 and at most half the kernel, got "
                            "padding %d x %d for kernel %d x %d",
                            fn, o->padding[0], o->padding[1], o->kernel[0], o->kernel[1]);
            return -1;
        }
        int64_t n = x->shape[x->ndim - 2 + i], e = n + 2 * p[i] - k[i];
        if (e < 0) {
            farol_set_error("farol: %s: output size is not positive: input %lld x %lld with padding "
                            "%d x %d is smaller than the kernel %d x %d",
                            fn, (long long)x->shape[x->ndim - 2], (long long)x->shape[x->ndim - 1],
                            o->padding[0], o->padding[1], o->kernel[0], o->kernel[1]);
            return -1;
        }
        /* ceil_mode keeps a last partial window, unless it would start in
         * the right padding (PyTorch's pooling_output_shape) */
        out[i] = (o->ceil_mode ? (e + s[i] - 1) / s[i] : e / s[i]) + 1;
        if (o->ceil_mode && (out[i] - 1) * s[i] >= n + p[i]) out[i]--;
    }
    return 0;
}

static farol_tensor *pooled_output(const farol_tensor *x, int64_t oh, int64_t ow) {
    int64_t shape[4];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 2] = oh;
    shape[x->ndim - 1] = ow;
    return farol_empty(x->ndim, shape, x->dtype);
}

/* ---- kernels, written once for float and double ---- */

/* x: (P, H, W) -> out: (P, OH, OW) and, when idx is given, the flat index
 * ih*W + iw of each maximum.  Only a strictly greater value (or a NaN, as
 * PyTorch) replaces the running maximum, so ties keep the first in
 * row-major window order; starting from the first element equals starting
 * from -inf.  The comparison does not branch (random data would mispredict
 * it), and full 3x3 windows (ResNet's pool) run as straight-line code so
 * that consecutive outputs overlap in the pipeline. */
#define MAX_TAKE(T, v, j)                                                                      \
    do {                                                                                       \
        T v_ = (v);                                                                            \
        if (v_ != v_) {                                                                        \
            best = v_, bi = (j);                                                               \
        } else {                                                                               \
            bi ^= (bi ^ (j)) & -(int64_t)(v_ > best);                                          \
            best = v_ > best ? v_ : best;                                                      \
        }                                                                                      \
    } while (0)

/* output (oh, ow) of plane xp: its maximum into out_, its index into idx_ */
#define MAX_ONE(T, k3, out_, idx_)                                                             \
    do {                                                                                       \
        int64_t w0 = p->w0[ow], w1 = p->w1[ow], bi = h0 * W + w0;                              \
        T best = xp[bi];                                                                       \
        if (k3 && h1 - h0 == 3 && w1 - w0 == 3) {                                              \
            const T *r = xp + bi;                                                              \
            int64_t i = bi;                                                                    \
            MAX_TAKE(T, r[1], i + 1);                                                          \
            MAX_TAKE(T, r[2], i + 2);                                                          \
            MAX_TAKE(T, r[W], i + W);                                                          \
            MAX_TAKE(T, r[W + 1], i + W + 1);                                                  \
            MAX_TAKE(T, r[W + 2], i + W + 2);                                                  \
            MAX_TAKE(T, r[2 * W], i + 2 * W);                                                  \
            MAX_TAKE(T, r[2 * W + 1], i + 2 * W + 1);                                          \
            MAX_TAKE(T, r[2 * W + 2], i + 2 * W + 2);                                          \
        } else {                                                                               \
            for (int64_t ih = h0; ih < h1; ih++)                                               \
                for (int64_t i = ih * W + w0; i < ih * W + w1; i++) MAX_TAKE(T, xp[i], i);     \
        }                                                                                      \
        (out_) = best;                                                                         \
        if (idx_) *(idx_) = (int32_t)bi;                                                       \
    } while (0)

#define DEFINE_MAX_FORWARD(T, NAME)                                                            \
    static void NAME(const pool_plan *p, T *out, int32_t *idx, const T *x) {                   \
        int64_t W = p->W, HW = p->H * W, OW = p->OW, OHW = p->OH * OW;                         \
        int64_t work = p->planes * HW;                                                         \
        bool k3 = p->kh == 3 && p->kw == 3;                                                    \
        _Pragma("omp parallel for if (work > FAROL_PAR_MIN)")                                  \
        for (int64_t pl = 0; pl < p->planes; pl++)                                             \
            for (int64_t oh = 0; oh < p->OH; oh++) {                                           \
                const T *xp = x + pl * HW;                                                     \
                int64_t h0 = p->h0[oh], h1 = p->h1[oh], q = pl * OHW + oh * OW;                \
                for (int64_t ow = 0; ow < OW; ow++)                                            \
                    MAX_ONE(T, k3, out[q + ow], idx ? idx + q + ow : NULL);                    \
            }                                                                                  \
    }

/* one window element in the vectorised 3x3 kernel: kk is its number in
 * row-major window order; the rule of MAX_TAKE without a branch */
#define MAX_TAKE_K(v, kk)                                                                      \
    do {                                                                                       \
        __typeof__(best) v_ = (v);                                                             \
        bool t_ = (v_ > best) | (v_ != v_);                                                       \
        best = t_ ? v_ : best;                                                                 \
        k = t_ ? (kk) : k;                                                                     \
    } while (0)

/* one lane: output ow of rows r0..r2 into o[ow], its window number in k */
#define MAX_3X3_LANE                                                                           \
    int64_t c = 2 * ow - pw;                                                                   \
    __typeof__(*o) best = r0[c];                                                               \
    int32_t k = 0;                                                                             \
    MAX_TAKE_K(r0[c + 1], 1);                                                                  \
    MAX_TAKE_K(r0[c + 2], 2);                                                                  \
    MAX_TAKE_K(r1[c], 3);                                                                      \
    MAX_TAKE_K(r1[c + 1], 4);                                                                  \
    MAX_TAKE_K(r1[c + 2], 5);                                                                  \
    MAX_TAKE_K(r2[c], 6);                                                                      \
    MAX_TAKE_K(r2[c + 1], 7);                                                                  \
    MAX_TAKE_K(r2[c + 2], 8);                                                                  \
    o[ow] = best

/* outputs [from, to) of one output row whose 3x3 windows (column stride 2)
 * lie inside rows r0..r2: maxima into o, indices (when id) into id.  The
 * compiler vectorises it, leaving a scalar remainder: the stride-2 reads
 * need one (see the AVX-512 float32 row below). */
#define DEFINE_MAX_3X3_ROW(T, NAME)                                                            \
    static void NAME(const T *r0, const T *r1, const T *r2, T *o, int32_t *id, int64_t from,   \
                     int64_t to, int64_t pw, int32_t base, int32_t W32) {                      \
        if (id) {                                                                              \
            _Pragma("omp simd")                                                                \
            for (int64_t ow = from; ow < to; ow++) {                                           \
                MAX_3X3_LANE;                                                                  \
                id[ow] = base + (k / 3) * W32 + (int32_t)c + k % 3;                            \
            }                                                                                  \
        } else {                                                                               \
            _Pragma("omp simd")                                                                \
            for (int64_t ow = from; ow < to; ow++) {                                           \
                MAX_3X3_LANE;                                                                  \
                (void)k;                                                                       \
            }                                                                                  \
        }                                                                                      \
    }

/* 3x3 windows at column stride 2 (ResNet's stem pool): the outputs whose
 * window lies inside the input run vectorised across the row, each lane
 * taking its nine elements in window order (so ties and NaNs resolve as
 * MAX_TAKE's), a row at a time (ROW); the others as MAX_ONE.  Indices fit in int32 here: the
 * caller refuses larger planes when it keeps them. */
#define DEFINE_MAX_FORWARD_3X3S2(T, NAME, ROW)                                                 \
    static void NAME(const pool_plan *p, T *out, int32_t *idx, const T *x) {                   \
        int64_t W = p->W, HW = p->H * W, OW = p->OW, OHW = p->OH * OW, pw = p->pw;             \
        int64_t work = p->planes * HW;                                                         \
        /* inside: 2*ow - pw >= 0 and 2*ow - pw + 3 <= W */                                   \
        int64_t lo = (pw + 1) / 2, hi = W + pw >= 3 ? (W + pw - 3) / 2 + 1 : 0;                 \
        hi = hi < OW ? hi : OW;                                                                \
        lo = lo < hi ? lo : hi;                                                                \
        _Pragma("omp parallel for if (work > FAROL_PAR_MIN)")                                  \
        for (int64_t pl = 0; pl < p->planes; pl++)                                             \
            for (int64_t oh = 0; oh < p->OH; oh++) {                                           \
                const T *xp = x + pl * HW;                                                     \
                int64_t h0 = p->h0[oh], h1 = p->h1[oh], q = pl * OHW + oh * OW;                \
                int64_t a = h1 - h0 == 3 ? lo : OW;                                            \
                int64_t b = a < OW ? hi : OW;                                                  \
                for (int64_t ow = 0; ow < a; ow++)                                             \
                    MAX_ONE(T, true, out[q + ow], idx ? idx + q + ow : NULL);                  \
                if (a < b)                                                                     \
                    ROW(xp + h0 * W, xp + (h0 + 1) * W, xp + (h0 + 2) * W, out + q,            \
                        idx ? idx + q : NULL, a, b, pw, (int32_t)(h0 * W), (int32_t)W);        \
                for (int64_t ow = b; ow < OW; ow++)                                            \
                    MAX_ONE(T, true, out[q + ow], idx ? idx + q + ow : NULL);                  \
            }                                                                                  \
    }

/* the common 2x2 window at stride 2 without padding: one output row from
 * input rows r0 and r1 (base: r0's index in the plane), straight-line */
#define DEFINE_MAX_2X2_ROW(T, NAME)                                                            \
    static inline void NAME(const T *r0, const T *r1, T *o, int32_t *id, int64_t OW, int32_t base, \
                     int32_t W32) {                                                            \
        for (int64_t ow = 0; ow < OW; ow++) {                                                  \
            int64_t i = base + 2 * ow, bi = i;                                                 \
            T best = r0[2 * ow];                                                               \
            MAX_TAKE(T, r0[2 * ow + 1], i + 1);                                                \
            MAX_TAKE(T, r1[2 * ow], i + W32);                                                  \
            MAX_TAKE(T, r1[2 * ow + 1], i + W32 + 1);                                          \
            o[ow] = best;                                                                      \
            if (id) id[ow] = (int32_t)bi;                                                      \
        }                                                                                      \
    }

#define DEFINE_MAX_FORWARD_2X2(T, NAME, ROW)                                                   \
    static void NAME(const pool_plan *p, T *out, int32_t *idx, const T *x) {                   \
        int64_t W = p->W, HW = p->H * W, OW = p->OW, OHW = p->OH * OW;                         \
        int64_t work = p->planes * HW;                                                         \
        _Pragma("omp parallel for if (work > FAROL_PAR_MIN)")                                  \
        for (int64_t pl = 0; pl < p->planes; pl++)                                             \
            for (int64_t oh = 0; oh < p->OH; oh++) {                                           \
                const T *r = x + pl * HW + 2 * oh * W;                                         \
                int64_t q = pl * OHW + oh * OW;                                                \
                ROW(r, r + W, out + q, idx ? idx + q : NULL, OW, (int32_t)(2 * oh * W), (int32_t)W); \
            }                                                                                  \
    }

/* gout: (P, OH, OW), idx -> gx: (P, H, W); overlapping windows add */
#define DEFINE_MAX_BACKWARD(T, NAME)                                                            \
    static void NAME(const pool_plan *p, T *gx, const T *gout, const int32_t *idx) {            \
        int64_t HW = p->H * p->W, OHW = p->OH * p->OW;                                          \
        int64_t work = p->planes * HW;                                                          \
        _Pragma("omp parallel for if (work > FAROL_PAR_MIN)")                                   \
        for (int64_t pl = 0; pl < p->planes; pl++) {                                            \
            T *gp = gx + pl * HW;                                                               \
            memset(gp, 0, (size_t)HW * sizeof *gp);                                             \
            for (int64_t q = pl * OHW; q < (pl + 1) * OHW; q++) gp[idx[q]] += gout[q];          \
        }                                                                                       \
    }

/* x: (P, H, W) -> out: (P, OH, OW), the window sum over hn*wn */
#define DEFINE_AVG_FORWARD(T, NAME)                                                             \
    static void NAME(const pool_plan *p, T *out, const T *x) {                                  \
        int64_t HW = p->H * p->W, OHW = p->OH * p->OW;                                          \
        int64_t work = p->planes * HW;                                                          \
        _Pragma("omp parallel for if (work > FAROL_PAR_MIN)")                                   \
        for (int64_t pl = 0; pl < p->planes; pl++) {                                            \
            const T *xp = x + pl * HW;                                                          \
            for (int64_t oh = 0; oh < p->OH; oh++)                                              \
                for (int64_t ow = 0; ow < p->OW; ow++) {                                        \
                    T sum = 0;                                                                  \
                    for (int64_t ih = p->h0[oh]; ih < p->h1[oh]; ih++)                          \
                        for (int64_t iw = p->w0[ow]; iw < p->w1[ow]; iw++) sum += xp[ih * p->W + iw]; \
                    out[pl * OHW + oh * p->OW + ow] = sum / (T)(p->hn[oh] * p->wn[ow]);         \
                }                                                                               \
        }                                                                                       \
    }

/* gout: (P, OH, OW) -> gx: (P, H, W), each window's share added to its cells */
#define DEFINE_AVG_BACKWARD(T, NAME)                                                            \
    static void NAME(const pool_plan *p, T *gx, const T *gout) {                                \
        int64_t HW = p->H * p->W, OHW = p->OH * p->OW;                                          \
        int64_t work = p->planes * HW;                                                          \
        _Pragma("omp parallel for if (work > FAROL_PAR_MIN)")                                   \
        for (int64_t pl = 0; pl < p->planes; pl++) {                                            \
            T *gp = gx + pl * HW;                                                               \
            memset(gp, 0, (size_t)HW * sizeof *gp);                                             \
            for (int64_t oh = 0; oh < p->OH; oh++)                                              \
                for (int64_t ow = 0; ow < p->OW; ow++) {                                        \
                    T v = gout[pl * OHW + oh * p->OW + ow] / (T)(p->hn[oh] * p->wn[ow]);        \
                    for (int64_t ih = p->h0[oh]; ih < p->h1[oh]; ih++)                          \
                        for (int64_t iw = p->w0[ow]; iw < p->w1[ow]; iw++) gp[ih * p->W + iw] += v; \
                }                                                                               \
        }                                                                                       \
    }

/* The AVX-512 float32 row, in blocks of 16 outputs (the last block
 * overlapping the one before, so no scalar remainder): per input row two
 * loads and a one-element masked load, deinterleaved into the window's
 * three columns; MAX_TAKE's rule as mask compares. */
#if FAROL_HAVE_ISA_VARIANTS
#define MAX_TAKE_V(v, kk)                                                                      \
    do {                                                                                       \
        __mmask16 t_ = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) |                               \
                       _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);                                 \
        best = _mm512_mask_mov_ps(best, t_, v);                                                \
        k = _mm512_mask_mov_epi32(k, t_, _mm512_set1_epi32(kk));                               \
    } while (0)
#define MAX_ROW_3X3S2_F32_AVX512_BLOCKS                                                        \
    static void max_row_3x3s2_f32_avx512_blocks(const float *r0, const float *r1,              \
                                                const float *r2, float *o, int32_t *id,         \
                                                int64_t from, int64_t to, int64_t pw,           \
                                                int32_t base, int32_t W32) {                    \
        if (to - from < 16) {                                                                  \
            max_row_3x3s2_f32_avx512(r0, r1, r2, o, id, from, to, pw, base, W32);              \
            return;                                                                            \
        }                                                                                      \
        const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,     \
                                             26, 28, 30);                                      \
        const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));                         \
        const __m512i sh = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,    \
                                             15, 16);                                          \
        const __m512i rowoff = _mm512_setr_epi32(0, 0, 0, W32, W32, W32, 2 * W32, 2 * W32,     \
                                                 2 * W32, 0, 0, 0, 0, 0, 0, 0);                \
        const __m512i coloff = _mm512_setr_epi32(0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0); \
        const float *rows[3] = {r0, r1, r2};                                                   \
        for (int64_t s0 = from; s0 < to; s0 += 16) {                                           \
            int64_t st = s0 + 16 <= to ? s0 : to - 16, c = 2 * st - pw;                        \
            __m512 best = _mm512_setzero_ps();                                                 \
            __m512i k = _mm512_setzero_si512();                                                \
            for (int r = 0; r < 3; r++) {                                                      \
                const float *p = rows[r] + c;                                                  \
                __m512 A = _mm512_loadu_ps(p), B = _mm512_loadu_ps(p + 16);                    \
                __m512 C = _mm512_maskz_loadu_ps(1, p + 32);                                   \
                __m512 e0 = _mm512_permutex2var_ps(A, ev, B);                                  \
                __m512 o1 = _mm512_permutex2var_ps(A, od, B);                                  \
                __m512 e2 = _mm512_permutex2var_ps(e0, sh, C);                                 \
                if (r == 0) best = e0;                                                         \
                else MAX_TAKE_V(e0, 3 * r);                                                    \
                MAX_TAKE_V(o1, 3 * r + 1);                                                     \
                MAX_TAKE_V(e2, 3 * r + 2);                                                     \
            }                                                                                  \
            _mm512_storeu_ps(o + st, best);                                                    \
            if (id) {                                                                          \
                __m512i i = _mm512_add_epi32(_mm512_set1_epi32(base + (int32_t)c), ev);        \
                i = _mm512_add_epi32(i, _mm512_permutexvar_epi32(k, rowoff));                  \
                i = _mm512_add_epi32(i, _mm512_permutexvar_epi32(k, coloff));                  \
                _mm512_storeu_si512(id + st, i);                                               \
            }                                                                                  \
        }                                                                                      \
    }
/* the 2x2 window at stride 2 the same way: two loads per input row,
 * deinterleaved into the window's two columns */
#define MAX_ROW_2X2_F32_AVX512_BLOCKS                                                          \
    static void max_row_2x2_f32_avx512_blocks(const float *r0, const float *r1, float *o,      \
                                              int32_t *id, int64_t OW, int32_t base,           \
                                              int32_t W32) {                                   \
        const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,     \
                                             26, 28, 30);                                      \
        const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));                         \
        const __m512i koff = _mm512_setr_epi32(0, 1, W32, W32 + 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,   \
                                               0, 0, 0);                                       \
        /* rows under 16 outputs (a 16-wide plane's pool) in one masked block */             \
        int64_t w = OW < 16 ? OW : 16;                                                         \
        __mmask16 mo = (__mmask16)((1u << w) - 1), ma = (__mmask16)((1u << (2 * w < 16 ? 2 * w : 16)) - 1), \
                  mb = (__mmask16)((1u << (2 * w > 16 ? 2 * w - 16 : 0)) - 1);                  \
        for (int64_t s0 = 0; s0 < OW; s0 += 16) {                                              \
            int64_t st = s0 + 16 <= OW || OW < 16 ? s0 : OW - 16;                              \
            __m512 A = _mm512_maskz_loadu_ps(ma, r0 + 2 * st);                                 \
            __m512 B = _mm512_maskz_loadu_ps(mb, r0 + 2 * st + 16);                            \
            __m512 C = _mm512_maskz_loadu_ps(ma, r1 + 2 * st);                                 \
            __m512 D = _mm512_maskz_loadu_ps(mb, r1 + 2 * st + 16);                            \
            __m512 best = _mm512_permutex2var_ps(A, ev, B);                                    \
            __m512i k = _mm512_setzero_si512();                                                \
            MAX_TAKE_V(_mm512_permutex2var_ps(A, od, B), 1);                                   \
            MAX_TAKE_V(_mm512_permutex2var_ps(C, ev, D), 2);                                   \
            MAX_TAKE_V(_mm512_permutex2var_ps(C, od, D), 3);                                   \
            _mm512_mask_storeu_ps(o + st, mo, best);                                           \
            if (id) {                                                                          \
                __m512i i = _mm512_add_epi32(_mm512_set1_epi32(base + 2 * (int32_t)st), ev);    \
                _mm512_mask_storeu_epi32(id + st, mo, _mm512_add_epi32(i, _mm512_permutexvar_epi32(k, koff))); \
            }                                                                                  \
        }                                                                                      \
    }
#endif

/* Every pool kernel of one ISA: S is its name suffix (empty for the
 * portable ones), BLOCKS defines the AVX-512 float32 rows and ROW32 names
 * the float32 rows the stride-2 forwards call (_blocks: those). */
#define POOL_KERNELS(S, BLOCKS, ROW32)                                                          \
    DEFINE_MAX_FORWARD(float, max_forward_f32##S)                                               \
    DEFINE_MAX_FORWARD(double, max_forward_f64##S)                                              \
    DEFINE_MAX_3X3_ROW(float, max_row_3x3s2_f32##S)                                             \
    DEFINE_MAX_3X3_ROW(double, max_row_3x3s2_f64##S)                                            \
    DEFINE_MAX_2X2_ROW(float, max_row_2x2_f32##S)                                               \
    DEFINE_MAX_2X2_ROW(double, max_row_2x2_f64##S)                                              \
    BLOCKS                                                                                      \
    DEFINE_MAX_FORWARD_3X3S2(float, max_forward_3x3s2_f32##S, max_row_3x3s2_f32##S##ROW32)      \
    DEFINE_MAX_FORWARD_3X3S2(double, max_forward_3x3s2_f64##S, max_row_3x3s2_f64##S)            \
    DEFINE_MAX_FORWARD_2X2(float, max_forward_2x2_f32##S, max_row_2x2_f32##S##ROW32)            \
    DEFINE_MAX_FORWARD_2X2(double, max_forward_2x2_f64##S, max_row_2x2_f64##S)                  \
    DEFINE_MAX_BACKWARD(float, max_backward_f32##S)                                             \
    DEFINE_MAX_BACKWARD(double, max_backward_f64##S)                                            \
    DEFINE_AVG_FORWARD(float, avg_forward_f32##S)                                               \
    DEFINE_AVG_FORWARD(double, avg_forward_f64##S)                                              \
    DEFINE_AVG_BACKWARD(float, avg_backward_f32##S)                                             \
    DEFINE_AVG_BACKWARD(double, avg_backward_f64##S)

POOL_KERNELS(, , )
#if FAROL_HAVE_ISA_VARIANTS /* the same kernels for AVX2 and AVX-512, chosen at run time */
FAROL_ISA_BEGIN_AVX2
POOL_KERNELS(_avx2, , )
FAROL_ISA_END
FAROL_ISA_BEGIN_AVX512
POOL_KERNELS(_avx512, MAX_ROW_3X3S2_F32_AVX512_BLOCKS MAX_ROW_2X2_F32_AVX512_BLOCKS, _blocks)
FAROL_ISA_END
#endif

static void avg_forward(const pool_plan *p, farol_tensor *out, const farol_tensor *x) {
    if (x->dtype == FAROL_F32) FAROL_ISA_DISPATCH(avg_forward_f32, (p, farol_data(out), farol_data(x)));
    else FAROL_ISA_DISPATCH(avg_forward_f64, (p, farol_data(out), farol_data(x)));
}

/* gx: a new tensor of the input's shape */
static farol_tensor *avg_backward(const pool_plan *p, const farol_edge *e, farol_tensor *gout) {
    farol_tensor *gc = farol_cast_raw(gout, e->dtype);
    farol_tensor *gx = gc ? farol_empty(e->ndim, e->shape, e->dtype) : NULL;
    if (gx && e->dtype == FAROL_F32) FAROL_ISA_DISPATCH(avg_backward_f32, (p, farol_data(gx), farol_data(gc)));
    else if (gx) FAROL_ISA_DISPATCH(avg_backward_f64, (p, farol_data(gx), farol_data(gc)));
    farol_release(gc);
    return gx;
}

/* ---- max_pool2d ---- */

farol_tensor *farol_max_pool2d(farol_tensor *x, const farol_pool_opts *o) {
    int64_t k[2], s[2], pad[2], osz[2];
    if (fixed_geometry("max_pool2d", x, o, k, s, pad, osz) < 0) return NULL;
    pool_plan p;
    if (plan_alloc(&p, "max_pool2d", x->ndim, x->shape, osz[0], osz[1]) < 0) return NULL;
    fixed_axis(p.H, p.OH, k[0], s[0], pad[0], false, p.h0, p.h1, p.hn);
    fixed_axis(p.W, p.OW, k[1], s[1], pad[1], false, p.w0, p.w1, p.wn);
    p.kh = k[0], p.kw = k[1], p.sw = s[1], p.pw = pad[1];
    /* the vectorised 3x3 kernel computes indices in int32 */
    bool k3s2 = k[0] == 3 && k[1] == 3 && s[1] == 2 && p.H * p.W <= INT32_MAX;
    bool rec = farol_needs_record(1, &x);
    farol_tensor *xc = farol_contig_raw(x);
    farol_tensor *out = xc ? pooled_output(x, p.OH, p.OW) : NULL;
    bool two = k[0] == 2 && k[1] == 2 && s[0] == 2 && s[1] == 2 && pad[0] == 0 && pad[1] == 0 &&
               2 * p.OH <= p.H && 2 * p.OW <= p.W;  /* ceil_mode: a last partial window */
    /* the argmax in its plane is kept for backward, as int32 (half of
     * int64): an internal int64 tensor of ceil(n / 2) elements holds them */
    if (rec && p.H * p.W > INT32_MAX) {
        farol_set_error("farol: max_pool2d: planes of more than 2^31 - 1 elements (%lld x %lld) "
                        "cannot be recorded for backward", (long long)p.H, (long long)p.W);
        farol_release(out);
        out = NULL;
    }
    int64_t words = out ? (farol_numel(out) + 1) / 2 : 0;
    farol_tensor *idx = out && rec ? farol_empty(1, &words, FAROL_I64) : NULL;
    if (out && (idx || !rec)) {
        int32_t *ip = idx ? farol_data(idx) : NULL;
        bool f32 = x->dtype == FAROL_F32;
        if (two && f32) FAROL_ISA_DISPATCH(max_forward_2x2_f32, (&p, farol_data(out), ip, farol_data(xc)));
        else if (two) FAROL_ISA_DISPATCH(max_forward_2x2_f64, (&p, farol_data(out), ip, farol_data(xc)));
        else if (k3s2 && f32) FAROL_ISA_DISPATCH(max_forward_3x3s2_f32, (&p, farol_data(out), ip, farol_data(xc)));
        else if (k3s2) FAROL_ISA_DISPATCH(max_forward_3x3s2_f64, (&p, farol_data(out), ip, farol_data(xc)));
        else if (f32) FAROL_ISA_DISPATCH(max_forward_f32, (&p, farol_data(out), ip, farol_data(xc)));
        else FAROL_ISA_DISPATCH(max_forward_f64, (&p, farol_data(out), ip, farol_data(xc)));
    } else {
        farol_release(out);
        out = NULL;
    }
    out = farol_record(FAROL_OP_MAX_POOL2D, out, 1, &x, FAROL_SAVE(idx), NULL);
    farol_release(idx);
    farol_release(xc);
    plan_free(&p);
    return out;
}

/* the gradient of each window goes to its saved argmax */
int farol_max_pool2d_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    const farol_edge *e = &n->inputs[0];
    farol_tensor *idx = farol_saved(n, 0);
    if (!idx) return -1;
    pool_plan p = {
        .planes = farol_numel(gout) / (gout->shape[gout->ndim - 2] * gout->shape[gout->ndim - 1]),
        .H = e->shape[e->ndim - 2], .W = e->shape[e->ndim - 1],
        .OH = gout->shape[gout->ndim - 2], .OW = gout->shape[gout->ndim - 1],
    };
    farol_tensor *gc = farol_cast_raw(gout, e->dtype);
    farol_tensor *gx = gc ? farol_empty(e->ndim, e->shape, e->dtype) : NULL;
    if (gx && e->dtype == FAROL_F32) FAROL_ISA_DISPATCH(max_backward_f32, (&p, farol_data(gx), farol_data(gc), farol_data(idx)));
    else if (gx) FAROL_ISA_DISPATCH(max_backward_f64, (&p, farol_data(gx), farol_data(gc), farol_data(idx)));
    farol_release(gc);
    gin[0] = gx;
    return gx ? 0 : -1;
}

/* ---- avg_pool2d ---- */

farol_tensor *farol_avg_pool2d(farol_tensor *x, const farol_pool_opts *o) {
    int64_t k[2], s[2], pad[2], osz[2];
    if (fixed_geometry("avg_pool2d", x, o, k, s, pad, osz) < 0) return NULL;
    pool_plan p;
    if (plan_alloc(&p, "avg_pool2d", x->ndim, x->shape, osz[0], osz[1]) < 0) return NULL;
    fixed_axis(p.H, p.OH, k[0], s[0], pad[0], o->exclude_pad, p.h0, p.h1, p.hn);
    fixed_axis(p.W, p.OW, k[1], s[1], pad[1], o->exclude_pad, p.w0, p.w1, p.wn);
    farol_tensor *xc = farol_contig_raw(x);
    farol_tensor *out = xc ? pooled_output(x, p.OH, p.OW) : NULL;
    if (out) avg_forward(&p, out, xc);
    out = farol_record(FAROL_OP_AVG_POOL2D, out, 1, &x, FAROL_NO_SAVE,
                       &(farol_op_params){.pool = {{k[0], k[1]}, {s[0], s[1]}, {pad[0], pad[1]},
                                                   {p.OH, p.OW}, o->exclude_pad}});
    farol_release(xc);
    plan_free(&p);
    return out;
}

int farol_avg_pool2d_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    const farol_edge *e = &n->inputs[0];
    pool_plan p;
    const int64_t *k = n->p.pool.kernel, *s = n->p.pool.stride, *pad = n->p.pool.padding;
    bool excl = n->p.pool.exclude_pad;
    if (plan_alloc(&p, "avg_pool2d", e->ndim, e->shape, n->p.pool.out[0], n->p.pool.out[1]) < 0)
        return -1;
    fixed_axis(p.H, p.OH, k[0], s[0], pad[0], excl, p.h0, p.h1, p.hn);
    fixed_axis(p.W, p.OW, k[1], s[1], pad[1], excl, p.w0, p.w1, p.wn);
    gin[0] = avg_backward(&p, e, gout);
    plan_free(&p);
    return gin[0] ? 0 : -1;
}

/* ---- adaptive_avg_pool2d ---- */

farol_tensor *farol_adaptive_avg_pool2d(farol_tensor *x, int64_t oh, int64_t ow) {
    if (check_input("adaptive_avg_pool2d", x) < 0) return NULL;
    if (oh < 0 || ow < 0) {
        farol_set_error("farol: adaptive_avg_pool2d: output size must be non-negative, got %lld x %lld",
                        (long long)oh, (long long)ow);
        return NULL;
    }
    int64_t area, planes = x->ndim == 4 ? x->shape[0] * x->shape[1] : x->shape[0];
    if (__builtin_mul_overflow(oh, ow, &area) || __builtin_mul_overflow(area, planes, &area) ||
        area > ((int64_t)1 << 40)) {
        farol_set_error("farol: adaptive_avg_pool2d: output size %lld x %lld is too large",
                        (long long)oh, (long long)ow);
        return NULL;
    }
    if (x->shape[x->ndim - 2] < 1 || x->shape[x->ndim - 1] < 1) {
        farol_set_error("farol: adaptive_avg_pool2d: input planes must not be empty, got %lld x %lld",
                        (long long)x->shape[x->ndim - 2], (long long)x->shape[x->ndim - 1]);
        return NULL;
    }
    int64_t osz[4];
    memcpy(osz, x->shape, sizeof osz);
    osz[x->ndim - 2] = oh, osz[x->ndim - 1] = ow;
    if (farol_shape_empty(x->ndim, osz))
        return farol_record_empty(FAROL_OP_ADAPTIVE_AVG_POOL2D, x->ndim, osz, x->dtype, 1, &x);
    pool_plan p;
    if (plan_alloc(&p, "adaptive_avg_pool2d", x->ndim, x->shape, oh, ow) < 0) return NULL;
    adaptive_axis(p.H, oh, p.h0, p.h1, p.hn);
    adaptive_axis(p.W, ow, p.w0, p.w1, p.wn);
    farol_tensor *xc = farol_contig_raw(x);
    farol_tensor *out = xc ? pooled_output(x, oh, ow) : NULL;
    if (out) avg_forward(&p, out, xc);
    out = farol_record(FAROL_OP_ADAPTIVE_AVG_POOL2D, out, 1, &x, FAROL_NO_SAVE,
                       &(farol_op_params){.pool.out = {oh, ow}});
    farol_release(xc);
    plan_free(&p);
    return out;
}

int farol_adaptive_avg_pool2d_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    const farol_edge *e = &n->inputs[0];
    pool_plan p;
    if (plan_alloc(&p, "adaptive_avg_pool2d", e->ndim, e->shape, n->p.pool.out[0], n->p.pool.out[1]) < 0)
        return -1;
    adaptive_axis(p.H, p.OH, p.h0, p.h1, p.hn);
    adaptive_axis(p.W, p.OW, p.w0, p.w1, p.wn);
    gin[0] = avg_backward(&p, e, gout);
    plan_free(&p);
    return gin[0] ? 0 : -1;
}
