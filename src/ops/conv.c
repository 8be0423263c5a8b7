/* Convolution as PyTorch computes it (cross-correlation): conv1d and conv2d
 * with stride, padding, dilation and groups, forward and backward.
 *
 * The fast path lowers to GEMM.  im2col gathers the receptive fields of a
 * tile of output rows (sized to stay in L2) into columns, and
 * out = W (K/g, C/g*kh*kw) @ cols; images with small output planes are
 * batched into one GEMM instead.  The input gradient runs the other way,
 * cols = W^T @ G then col2im.  A 1x1 stride-1 convolution needs no columns;
 * depthwise convolution (groups == C == K) has a direct kernel.
 *
 * Threads take whole images, each calling a single-threaded GEMM: on the
 * CNN benchmark shapes that runs 1.5-2x faster than OpenBLAS threading each
 * GEMM, and on ResNet-18's as fast or faster.  With fewer images than
 * threads, an image is split (row tiles forward, input-channel blocks
 * backward, so col2im writes never overlap).
 * Reference kernels (conv_ref.h) stay beside the fast ones for the tests. */
#include "conv_ref.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>

/* Narrower GEMMs run well below peak: batch images up to this many columns. */
#define CONV_MIN_COLS 256
/* Columns are made a tile of output rows at a time, about this big, so
 * that they stay in L2 between im2col and the GEMM. */
#define CONV_TILE_BYTES ((int64_t)512 << 10)
/* Below this many multiply-adds, threads cost more than they save. */
#define CONV_PAR_MIN_MACS ((int64_t)1 << 21)

farol_conv_opts farol_conv_defaults(void) {
    return (farol_conv_opts){.stride = {1, 1}, .padding = {0, 0}, .dilation = {1, 1}, .groups = 1};
}

/* ---- geometry ---- */

static int64_t div_floor(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static int64_t div_ceil(int64_t a, int64_t b) { return -div_floor(-a, b); }

/* The output positions o in [*lo, *hi) whose input position o*s + off lies
 * in [0, n): off = k*d - p for kernel tap k. */
static void valid_range(int64_t n, int64_t n_out, int64_t s, int64_t off, int64_t *lo, int64_t *hi) {
    int64_t a = s == 1 ? -off : div_ceil(-off, s), b = s == 1 ? n - off : div_floor(n - 1 - off, s) + 1;
    *lo = a < 0 ? 0 : a > n_out ? n_out : a;
    *hi = b > n_out ? n_out : b < *lo ? *lo : b;
}

int farol_conv_geom_init(farol_conv_geom *g, const char *fn, const int64_t *xs,
                         const int64_t *ws, const farol_conv_opts *o) {
    for (int i = 0; i < 2; i++) {
        if (o->stride[i] < 1 || o->dilation[i] < 1 || o->padding[i] < 0) {
            farol_set_error("farol: %s: stride and dilation must be >= 1 and padding >= 0, "
                            "got stride %d, dilation %d, padding %d",
                            fn, o->stride[i], o->dilation[i], o->padding[i]);
            return -1;
        }
    }
    int64_t groups = o->groups;
    if (groups < 1) {
        farol_set_error("farol: %s: groups must be >= 1, got %lld", fn, (long long)groups);
        return -1;
    }
    if (xs[1] < 0 || ws[0] < 1) {  /* 0 input channels: the output is the bias */
        farol_set_error("farol: %s: x and w need at least one channel, got %lld and %lld", fn,
                        (long long)xs[1], (long long)ws[0]);
        return -1;
    }
    if (xs[1] % groups != 0 || ws[0] % groups != 0) {
        farol_set_error("farol: %s: groups %lld must divide both the %lld input channels and the "
                        "%lld output channels",
                        fn, (long long)groups, (long long)xs[1], (long long)ws[0]);
        return -1;
    }
    if (ws[1] * groups != xs[1]) {
        farol_set_error("farol: %s: input has %lld channels, weight expects %lld (groups %lld)", fn,
                        (long long)xs[1], (long long)(ws[1] * groups), (long long)groups);
        return -1;
    }
    *g = (farol_conv_geom){
        .N = xs[0], .C = xs[1], .H = xs[2], .W = xs[3], .K = ws[0], .kh = ws[2], .kw = ws[3],
        .sh = o->stride[0], .sw = o->stride[1], .ph = o->padding[0], .pw = o->padding[1],
        .dh = o->dilation[0], .dw = o->dilation[1], .groups = groups,
    };
    int64_t eh = g->H + 2 * g->ph - g->dh * (g->kh - 1);  /* padded size minus dilated kernel, +1 */
    int64_t ew = g->W + 2 * g->pw - g->dw * (g->kw - 1);
    if (g->kh < 1 || g->kw < 1 || eh < 1 || ew < 1) {
        farol_set_error("farol: %s: output size is not positive: input %lld x %lld with padding "
                        "%lld x %lld is smaller than the kernel %lld x %lld dilated by %lld x %lld",
                        fn, (long long)g->H, (long long)g->W, (long long)g->ph, (long long)g->pw,
                        (long long)g->kh, (long long)g->kw, (long long)g->dh, (long long)g->dw);
        return -1;
    }
    if (g->H == 0 || g->W == 0) {  /* PyTorch: only the batch or the channels may be 0 */
        farol_set_error("farol: %s: input %lld x %lld is empty: only the batch or the channels "
                        "may be 0", fn, (long long)g->H, (long long)g->W);
        return -1;
    }
    g->OH = (eh - 1) / g->sh + 1;
    g->OW = (ew - 1) / g->sw + 1;
    /* GEMM sizes are ints in cblas (batched images stay under 2*CONV_MIN_COLS columns) */
    if (g->OH * g->OW > INT_MAX || ws[1] * g->kh * g->kw > INT_MAX || g->H * g->W > INT_MAX) {
        farol_set_error("farol: %s: sizes too large for one GEMM", fn);
        return -1;
    }
    return 0;
}

/* ---- reference kernels ---- */

typedef enum { NAIVE_FORWARD, NAIVE_DX, NAIVE_DW } naive_pass;

/* The seven loops of the definition, shared by the three reference
 * kernels: every (n, k, oh, ow) meets every tap (c, ki, kj) inside x. */
static void conv2d_naive(naive_pass pass, double *res, const double *x, const double *w,
                         const double *b, const double *dout, const farol_conv_geom *g) {
    int64_t Cg = g->C / g->groups, Kg = g->K / g->groups;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t k = 0; k < g->K; k++)
            for (int64_t oh = 0; oh < g->OH; oh++)
                for (int64_t ow = 0; ow < g->OW; ow++) {
                    int64_t o = ((n * g->K + k) * g->OH + oh) * g->OW + ow;
                    double acc = b ? b[k] : 0.0;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t ki = 0; ki < g->kh; ki++)
                            for (int64_t kj = 0; kj < g->kw; kj++) {
                                int64_t ih = oh * g->sh - g->ph + ki * g->dh;
                                int64_t iw = ow * g->sw - g->pw + kj * g->dw;
                                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                                int64_t xi = ((n * g->C + k / Kg * Cg + c) * g->H + ih) * g->W + iw;
                                int64_t wi = ((k * Cg + c) * g->kh + ki) * g->kw + kj;
                                if (pass == NAIVE_FORWARD) acc += x[xi] * w[wi];
                                else if (pass == NAIVE_DX) res[xi] += dout[o] * w[wi];
                                else res[wi] += dout[o] * x[xi];
                            }
                    if (pass == NAIVE_FORWARD) res[o] = acc;
                }
}

void farol_conv2d_forward_naive(double *out, const double *x, const double *w, const double *b,
                                const farol_conv_geom *g) {
    conv2d_naive(NAIVE_FORWARD, out, x, w, b, NULL, g);
}

void farol_conv2d_backward_input_naive(double *dx, const double *dout, const double *w,
                                       const farol_conv_geom *g) {
    memset(dx, 0, (size_t)(g->N * g->C * g->H * g->W) * sizeof *dx);
    conv2d_naive(NAIVE_DX, dx, NULL, w, NULL, dout, g);
}

void farol_conv2d_backward_weight_naive(double *dw, const double *dout, const double *x,
                                        const farol_conv_geom *g) {
    memset(dw, 0, (size_t)(g->K * (g->C / g->groups) * g->kh * g->kw) * sizeof *dw);
    conv2d_naive(NAIVE_DW, dw, x, NULL, NULL, dout, g);
}

/* ---- rows: the only code that knows the element type ---- */

/* dst[0, n) = 0 except dst[lo + i] = src[i * step] for i < hi - lo.  Rows
 * are short (a few dozen elements): plain loops beat memset/memcpy calls. */
static inline void row_window(farol_dtype dt, char *dst, const char *src, int64_t step, int64_t lo,
                              int64_t hi, int64_t n) {
    if (dt == FAROL_F32) {
        float *restrict d = (float *)dst;
        const float *restrict s = (const float *)src;
        for (int64_t i = 0; i < lo; i++) d[i] = 0.0f;
        if (step == 1)
#pragma omp simd
            for (int64_t i = 0; i < hi - lo; i++) d[lo + i] = s[i];
        else
            for (int64_t i = 0; i < hi - lo; i++) d[lo + i] = s[i * step];
        for (int64_t i = hi; i < n; i++) d[i] = 0.0f;
    } else {
        double *restrict d = (double *)dst;
        const double *restrict s = (const double *)src;
        for (int64_t i = 0; i < lo; i++) d[i] = 0.0;
        if (step == 1)
#pragma omp simd
            for (int64_t i = 0; i < hi - lo; i++) d[lo + i] = s[i];
        else
            for (int64_t i = 0; i < hi - lo; i++) d[lo + i] = s[i * step];
        for (int64_t i = hi; i < n; i++) d[i] = 0.0;
    }
}

/* dst[i * dstep] += a * src[i * sstep], i < n */
static void row_axpy(farol_dtype dt, char *dst, int64_t dstep, const char *src, int64_t sstep,
                     int64_t n, double a) {
    if (dt == FAROL_F32) {
        float *restrict d = (float *)dst;
        const float *restrict s = (const float *)src;
        float af = (float)a;
        if (dstep == 1 && sstep == 1) {
#pragma omp simd
            for (int64_t i = 0; i < n; i++) d[i] += af * s[i];
        } else if (dstep == 2 && sstep == 1) { /* col2im at stride 2: a constant stride vectorises */
#pragma omp simd
            for (int64_t i = 0; i < n; i++) d[2 * i] += af * s[i];
        } else {
            for (int64_t i = 0; i < n; i++) d[i * dstep] += af * s[i * sstep];
        }
    } else {
        double *restrict d = (double *)dst;
        const double *restrict s = (const double *)src;
        if (dstep == 1 && sstep == 1) {
#pragma omp simd
            for (int64_t i = 0; i < n; i++) d[i] += a * s[i];
        } else {
            for (int64_t i = 0; i < n; i++) d[i * dstep] += a * s[i * sstep];
        }
    }
}

/* sum of a[i] * b[i * bstep], i < n (b NULL: sum of a) */
static double row_dot(farol_dtype dt, const char *a, const char *b, int64_t bstep, int64_t n) {
    double acc = 0.0;
    if (dt == FAROL_F32) {
        const float *x = (const float *)a, *y = (const float *)b;
        for (int64_t i = 0; i < n; i++) acc += (double)x[i] * (y ? y[i * bstep] : 1.0f);
    } else {
        const double *x = (const double *)a, *y = (const double *)b;
        for (int64_t i = 0; i < n; i++) acc += x[i] * (y ? y[i * bstep] : 1.0);
    }
    return acc;
}

static double elem(farol_dtype dt, const char *p, int64_t i) {
    return dt == FAROL_F32 ? ((const float *)p)[i] : ((const double *)p)[i];
}

/* C (m, n) = op(A) @ op(B) + beta * C, row-major, ld* in elements: through
 * farol_gemm, whose results do not depend on the thread count (a job that
 * runs alone outside a parallel region would otherwise get OpenBLAS's own
 * threading, which sums in another order at 2 threads than at 1) */
static void gemm(farol_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const char *a,
                 int64_t lda, const char *b, int64_t ldb, double beta, char *c, int64_t ldc) {
    farol_gemm(dt, ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
}

/* ---- im2col / col2im ---- */

/* With stride 1 and OW == W (padding that keeps the width), consecutive
 * output rows read consecutive input rows at the same pitch, so one tap's
 * rows [a, b) are a single contiguous run of the input, apart from the
 * padding columns between rows (gap entries per row, at row ends). */
static bool contiguous_taps(const farol_conv_geom *g) {
    return g->sh == 1 && g->sw == 1 && g->OW == g->W;
}

/* zero the gap entries of rows [a, b - 1) of a tap: the end of one output
 * row and the start of the next, outside [wlo, whi) */
static void zero_gaps(farol_dtype dt, char *row, int64_t OW, int64_t a, int64_t b, int64_t wlo,
                      int64_t whi) {
    for (int64_t r = a; r + 1 < b; r++)
        for (int64_t q = r * OW + whi; q < (r + 1) * OW + wlo; q++) {
            if (dt == FAROL_F32) ((float *)row)[q] = 0.0f;
            else ((double *)row)[q] = 0.0;
        }
}

/* x: (Cg, H, W) of one image and group -> col: (Cg*kh*kw, (oh1-oh0)*OW),
 * the receptive fields of output rows [oh0, oh1), rows ld elements apart.
 * Padding becomes zeros. */
static void im2col(const farol_conv_geom *g, farol_dtype dt, char *col, int64_t ld, const char *x,
                   int64_t Cg, int64_t oh0, int64_t oh1) {
    size_t es = farol_dtype_size(dt);
    int64_t OW = g->OW;
    bool runs = contiguous_taps(g);
#pragma omp parallel for if (!omp_in_parallel() && Cg * g->kh * g->kw * (oh1 - oh0) * OW > FAROL_PAR_MIN)
    for (int64_t c = 0; c < Cg; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                char *row = col + (size_t)(((c * g->kh + ki) * g->kw + kj) * ld) * es;
                int64_t hlo, hhi, wlo, whi;
                valid_range(g->H, g->OH, g->sh, ki * g->dh - g->ph, &hlo, &hhi);
                valid_range(g->W, OW, g->sw, kj * g->dw - g->pw, &wlo, &whi);
                hlo = hlo < oh0 ? oh0 : hlo > oh1 ? oh1 : hlo;
                hhi = hhi > oh1 ? oh1 : hhi < hlo ? hlo : hhi;
                /* rows [hlo, hhi) of the tile read the input; the rest is padding */
                char *r0 = row + (size_t)((hlo - oh0) * OW) * es;
                const char *x0 = x + (size_t)((c * g->H + hlo * g->sh - g->ph + ki * g->dh) * g->W +
                                              wlo * g->sw - g->pw + kj * g->dw) * es;
                memset(row, 0, (size_t)((hlo - oh0) * OW) * es);
                if (runs && hhi > hlo && whi > wlo) {
                    memset(r0, 0, (size_t)wlo * es);
                    memcpy(r0 + wlo * es, x0, (size_t)((hhi - hlo - 1) * OW + whi - wlo) * es);
                    zero_gaps(dt, r0, OW, 0, hhi - hlo, wlo, whi);
                    memset(r0 + (size_t)((hhi - hlo - 1) * OW + whi) * es, 0, (size_t)(OW - whi) * es);
                } else {
                    for (int64_t oh = hlo; oh < hhi; oh++)
                        row_window(dt, r0 + (size_t)((oh - hlo) * OW) * es,
                                   x0 + (size_t)((oh - hlo) * g->sh * g->W) * es, g->sw, wlo, whi, OW);
                }
                memset(row + (size_t)((hhi - oh0) * OW) * es, 0, (size_t)((oh1 - hhi) * OW) * es);
            }
}

/* col: (Cg*kh*kw, (oh1-oh0)*OW) for output rows [oh0, oh1), rows ld apart
 * -> dx: (Cg, H, W): every column adds into the input it was gathered from.
 * With contiguous taps the padding entries of col are zeroed (they are
 * scratch) so that each tap adds as one run. */
static void col2im(const farol_conv_geom *g, farol_dtype dt, char *dx, char *col, int64_t ld,
                   int64_t Cg, int64_t oh0, int64_t oh1) {
    size_t es = farol_dtype_size(dt);
    int64_t OW = g->OW, HW = g->H * g->W;
    bool runs = contiguous_taps(g);
#pragma omp parallel for if (!omp_in_parallel() && Cg * g->kh * g->kw * (oh1 - oh0) * OW > FAROL_PAR_MIN)
    for (int64_t c = 0; c < Cg; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                char *row = col + (size_t)(((c * g->kh + ki) * g->kw + kj) * ld) * es;
                int64_t hlo, hhi, wlo, whi;
                valid_range(g->H, g->OH, g->sh, ki * g->dh - g->ph, &hlo, &hhi);
                valid_range(g->W, OW, g->sw, kj * g->dw - g->pw, &wlo, &whi);
                hlo = hlo < oh0 ? oh0 : hlo > oh1 ? oh1 : hlo;
                hhi = hhi > oh1 ? oh1 : hhi < hlo ? hlo : hhi;
                if (hhi <= hlo || whi <= wlo) continue;
                char *r0 = row + (size_t)((hlo - oh0) * OW + wlo) * es;
                char *d0 = dx + (size_t)(c * HW + (hlo * g->sh - g->ph + ki * g->dh) * g->W +
                                         wlo * g->sw - g->pw + kj * g->dw) * es;
                if (runs) {
                    zero_gaps(dt, r0 - wlo * es, OW, 0, hhi - hlo, wlo, whi);
                    row_axpy(dt, d0, 1, r0, 1, (hhi - hlo - 1) * OW + whi - wlo, 1.0);
                } else {
                    for (int64_t oh = hlo; oh < hhi; oh++)
                        row_axpy(dt, d0 + (size_t)((oh - hlo) * g->sh * g->W) * es, g->sw,
                                 r0 + (size_t)((oh - hlo) * OW) * es, 1, whi - wlo, 1.0);
                }
            }
}

/* ---- the GEMM path ---- */

typedef struct {
    const farol_conv_geom *g;
    farol_dtype dt;
    size_t es;
    int64_t Cg, Kg, Ckk, kk, HW, OHW;
    int64_t nb;          /* images per GEMM */
    int64_t th;          /* output rows per column tile (all of them when nb > 1) */
    /* With fewer images than threads each image is split into parts: tiles
     * of rows going forward, blocks of cb input channels going backward
     * (their col2im writes stay apart). */
    int64_t parts, cb;
    int64_t jobs;        /* ceil(N / nb) * parts */
    bool backward;
    bool direct;         /* 1x1, stride 1, no padding, one image: x is the column matrix */
    int nt;              /* threads */
    int slots;           /* weight-gradient accumulators: one per fixed range of jobs */
    size_t col_bytes;    /* per thread: (Ckk, columns of a tile) */
    size_t buf_bytes;    /* per thread: (Kg, nb*OHW) output or gradient block */
} conv_plan;

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }
static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static void plan_init(conv_plan *p, const farol_conv_geom *g, farol_dtype dt, bool backward) {
    *p = (conv_plan){.g = g, .dt = dt, .es = farol_dtype_size(dt), .Cg = g->C / g->groups,
                     .Kg = g->K / g->groups, .kk = g->kh * g->kw, .HW = g->H * g->W,
                     .OHW = g->OH * g->OW, .nb = 1, .th = g->OH, .parts = 1, .backward = backward};
    p->Ckk = p->Cg * p->kk;
    p->cb = p->Cg;
    /* The plan (batches, tiles, parts) depends on the shape and the core
     * count, never on the thread count, so that results do not either;
     * threads only share its jobs out (run_jobs). */
    int nt = g->N * g->K * p->OHW * p->Ckk < CONV_PAR_MIN_MACS ? 1 : omp_get_num_procs();
    if (p->OHW < CONV_MIN_COLS) {
        int64_t cap = g->N / nt > 1 ? g->N / nt : 1;  /* keep a job per thread */
        p->nb = ceil_div(CONV_MIN_COLS, p->OHW);
        if (p->nb > cap) p->nb = cap;
        p->nb = ceil_div(g->N, ceil_div(g->N, p->nb));  /* even batches */
    }
    p->direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
                p->nb == 1;
    /* tiles of output rows keep the columns in cache, but no narrower than
     * CONV_MIN_COLS */
    if (p->nb == 1 && !p->direct) {
        int64_t by_bytes = CONV_TILE_BYTES / ((int64_t)p->es * p->Ckk * g->OW);
        int64_t by_width = ceil_div(CONV_MIN_COLS, g->OW);
        p->th = by_bytes > by_width ? by_bytes : by_width;
        if (p->th > g->OH) p->th = g->OH;
    }
    int64_t chunks = ceil_div(g->N, p->nb);
    if (chunks < nt && p->nb == 1) {
        int64_t want = ceil_div(nt, chunks);
        if (!backward) {
            if (p->th > ceil_div(g->OH, want)) p->th = ceil_div(g->OH, want);
            p->parts = ceil_div(g->OH, p->th);
        } else {
            p->cb = ceil_div(p->Cg, want);
            p->parts = ceil_div(p->Cg, p->cb);
        }
    }
    p->jobs = chunks * p->parts;
    /* the threads that run: one job each at least; with a single job its
     * GEMMs thread themselves (farol_gemm, also independent of the count) */
    int run = omp_in_parallel() || nt == 1 ? 1 : omp_get_max_threads();
    p->nt = run < 2 || p->jobs < 2 ? 1 : p->jobs < run ? (int)p->jobs : run;
    p->slots = p->jobs < nt ? (int)p->jobs : nt;
    size_t cols = (size_t)(p->nb > 1 ? p->nb * p->OHW : p->th * g->OW);
    p->col_bytes = p->direct ? 0 : round64((size_t)p->Ckk * cols * p->es);
    p->buf_bytes = p->nb > 1 ? round64((size_t)(p->Kg * p->nb * p->OHW) * p->es) : 0;
}

/* Runs body(p, job, slot, thread scratch) over all jobs: spread over threads
 * with single-threaded GEMMs, or in order on one thread.  With by_slot, the
 * jobs go in p->slots fixed ranges, each run in order by one thread and
 * given its range's index (its weight-gradient accumulator), so the sums do
 * not depend on which thread took what; otherwise one job at a time to
 * whichever thread is free (slot 0). */
typedef void (*job_fn)(const conv_plan *p, void *ctx, int64_t job, int slot, char *col, char *buf);

/* range r of n: its slot's jobs in order, or (n == jobs) the one job r */
static void run_range(const conv_plan *p, job_fn body, void *ctx, int64_t r, int64_t n, bool by_slot,
                      char *col, char *buf) {
    for (int64_t j = r * p->jobs / n; j < (r + 1) * p->jobs / n; j++)
        body(p, ctx, j, by_slot ? (int)r : 0, col, buf);
}

static int run_jobs(const conv_plan *p, job_fn body, void *ctx, bool by_slot) {
    size_t per = p->col_bytes + p->buf_bytes;
    char *scratch = NULL;
    if (per) {
        scratch = farol_aligned_alloc(per * (size_t)p->nt);
        if (!scratch) {
            farol_set_error("farol: conv2d: out of memory for %zu bytes of columns", per * p->nt);
            return -1;
        }
    }
    int64_t ranges = by_slot ? p->slots : p->jobs;
    if (p->nt > 1) {
        /* OpenBLAS on OpenMP runs single-threaded inside a parallel region by
         * itself; the pthreads build must be told (process-wide, restored
         * right after) or each call would wake its own pool */
        int blas_nt = openblas_get_parallel() == 1 ? openblas_get_num_threads() : 1;
        if (blas_nt > 1) openblas_set_num_threads(1);
#pragma omp parallel num_threads(p->nt)
        {
            int tid = omp_get_thread_num();
            char *col = scratch + per * (size_t)tid, *buf = col + p->col_bytes;
#pragma omp for schedule(dynamic, 1)
            for (int64_t r = 0; r < ranges; r++) run_range(p, body, ctx, r, ranges, by_slot, col, buf);
        }
        if (blas_nt > 1) openblas_set_num_threads(blas_nt);
    } else {
        for (int64_t r = 0; r < ranges; r++)
            run_range(p, body, ctx, r, ranges, by_slot, scratch, scratch ? scratch + p->col_bytes : NULL);
    }
    farol_aligned_free(scratch);
    return 0;
}

typedef struct {
    char *out, *dx, *dw;       /* dw: slots accumulators of (K, Ckk) */
    const char *x, *w, *b, *gout;
} conv_io;

/* A job covers input channels [c0, c1) of cnt images from n0, in tiles
 * [t0, t1) of th output rows; batched images (cnt > 1) make one tile.  A
 * tile's columns are image-major, (oh1 - oh0) * OW per image. */
typedef struct {
    int64_t n0, cnt, c0, c1, t0, t1;
    int64_t oh0, oh1, ncols;   /* the current tile */
} conv_block;

static void job_block(const conv_plan *p, int64_t job, conv_block *b) {
    int64_t part = job % p->parts;
    b->n0 = job / p->parts * p->nb;
    b->cnt = p->g->N - b->n0 < p->nb ? p->g->N - b->n0 : p->nb;
    b->c0 = 0;
    b->c1 = p->Cg;
    b->t0 = 0;
    b->t1 = b->cnt > 1 ? 1 : ceil_div(p->g->OH, p->th);
    if (p->parts > 1 && !p->backward) {
        b->t0 = part;
        b->t1 = part + 1;
    } else if (p->parts > 1) {
        b->c0 = part * p->cb;
        b->c1 = b->c0 + p->cb < p->Cg ? b->c0 + p->cb : p->Cg;
    }
}

static void block_rows(const conv_plan *p, conv_block *b, int64_t t) {
    b->oh0 = t * p->th;
    b->oh1 = b->oh0 + p->th < p->g->OH ? b->oh0 + p->th : p->g->OH;
    b->ncols = b->cnt * (b->oh1 - b->oh0) * p->g->OW;
}

/* the tile's columns for group gi and channels [c0, c1), rows *ld apart:
 * im2col, or x itself for a direct 1x1 */
static const char *block_cols(const conv_plan *p, const conv_io *io, const conv_block *b, int64_t gi,
                              char *col, int64_t *ld) {
    const farol_conv_geom *g = p->g;
    const char *x = io->x + (size_t)((b->n0 * g->C + gi * p->Cg + b->c0) * p->HW) * p->es;
    if (p->direct) {
        *ld = p->HW;
        return x + (size_t)(b->oh0 * g->OW) * p->es;
    }
    int64_t per = (b->oh1 - b->oh0) * g->OW;
    for (int64_t i = 0; i < b->cnt; i++)
        im2col(g, p->dt, col + (size_t)(i * per) * p->es, b->ncols, x + (size_t)(i * g->C * p->HW) * p->es,
               b->c1 - b->c0, b->oh0, b->oh1);
    *ld = b->ncols;
    return col;
}

/* C: (Kg, n) rows ld apart = the bias of each row's channel, so that the
 * GEMM can accumulate onto it (beta 1 also spares OpenBLAS zeroing C) */
static void fill_bias(farol_dtype dt, char *c, int64_t Kg, int64_t n, int64_t ld, const char *b) {
    for (int64_t k = 0; k < Kg; k++) {
        if (dt == FAROL_F32) {
            float *d = (float *)c + k * ld, v = ((const float *)b)[k];
            for (int64_t q = 0; q < n; q++) d[q] = v;
        } else {
            double *d = (double *)c + k * ld, v = ((const double *)b)[k];
            for (int64_t q = 0; q < n; q++) d[q] = v;
        }
    }
}

/* out[n0 .. n0+cnt) = W @ im2col(x) + b, one group at a time */
static void forward_job(const conv_plan *p, void *ctx, int64_t job, int slot, char *col, char *buf) {
    const conv_io *io = ctx;
    const farol_conv_geom *g = p->g;
    size_t es = p->es;
    conv_block b;
    job_block(p, job, &b);
    for (int64_t gi = 0; gi < g->groups; gi++) {
        const char *wg = io->w + (size_t)(gi * p->Kg * p->Ckk) * es;
        const char *bg = io->b ? io->b + (size_t)(gi * p->Kg) * es : NULL;
        char *outg = io->out + (size_t)((b.n0 * g->K + gi * p->Kg) * p->OHW) * es;
        for (int64_t t = b.t0; t < b.t1; t++) {
            block_rows(p, &b, t);
            int64_t ld;
            const char *cols = block_cols(p, io, &b, gi, col, &ld);
            /* one image writes in place; a batch goes through buf */
            char *c = b.cnt == 1 ? outg + (size_t)(b.oh0 * g->OW) * es : buf;
            int64_t ldc = b.cnt == 1 ? p->OHW : b.ncols;
            if (bg) fill_bias(p->dt, c, p->Kg, b.ncols, ldc, bg);
            gemm(p->dt, false, false, p->Kg, b.ncols, p->Ckk, wg, p->Ckk, cols, ld, bg ? 1.0 : 0.0, c, ldc);
        }
        if (b.cnt > 1)
            for (int64_t i = 0; i < b.cnt; i++)
                for (int64_t k = 0; k < p->Kg; k++)
                    memcpy(outg + (size_t)((i * g->K + k) * p->OHW) * es,
                           buf + (size_t)(k * b.ncols + i * p->OHW) * es, p->OHW * es);
    }
}

/* dx[n0 .. n0+cnt) = col2im(W^T @ G) and dw += G @ im2col(x)^T, for the
 * job's input channels */
static void backward_job(const conv_plan *p, void *ctx, int64_t job, int slot, char *col, char *buf) {
    const conv_io *io = ctx;
    const farol_conv_geom *g = p->g;
    size_t es = p->es;
    conv_block b;
    job_block(p, job, &b);
    int64_t nc = b.c1 - b.c0;
    for (int64_t gi = 0; gi < g->groups; gi++) {
        /* rows [c0*kk, c1*kk) of W^T: columns of this group's W */
        const char *wg = io->w + (size_t)(gi * p->Kg * p->Ckk + b.c0 * p->kk) * es;
        /* G of this group: (Kg, OHW) rows OHW apart, or batched into buf */
        const char *gm = io->gout + (size_t)((b.n0 * g->K + gi * p->Kg) * p->OHW) * es;
        int64_t ldg = p->OHW;
        if (b.cnt > 1) {
            int64_t n = b.cnt * p->OHW;
            for (int64_t i = 0; i < b.cnt; i++)
                for (int64_t k = 0; k < p->Kg; k++)
                    memcpy(buf + (size_t)(k * n + i * p->OHW) * es,
                           gm + (size_t)((i * g->K + k) * p->OHW) * es, p->OHW * es);
            gm = buf;
            ldg = n;
        }
        char *dxg = io->dx ? io->dx + (size_t)((b.n0 * g->C + gi * p->Cg + b.c0) * p->HW) * es : NULL;
        if (dxg && !p->direct)
            for (int64_t i = 0; i < b.cnt; i++)
                memset(dxg + (size_t)(i * g->C * p->HW) * es, 0, (size_t)(nc * p->HW) * es);
        for (int64_t t = b.t0; t < b.t1; t++) {
            block_rows(p, &b, t);
            const char *gt = gm + (size_t)(b.oh0 * g->OW) * es;
            if (dxg && p->direct) {
                gemm(p->dt, true, false, nc, b.ncols, p->Kg, wg, p->Ckk, gt, ldg, 0.0, dxg, p->HW);
            } else if (dxg) {
                gemm(p->dt, true, false, nc * p->kk, b.ncols, p->Kg, wg, p->Ckk, gt, ldg, 0.0, col, b.ncols);
                int64_t per = (b.oh1 - b.oh0) * g->OW;
                for (int64_t i = 0; i < b.cnt; i++)
                    col2im(g, p->dt, dxg + (size_t)(i * g->C * p->HW) * es, col + (size_t)(i * per) * es,
                           b.ncols, nc, b.oh0, b.oh1);
            }
            if (io->dw) {
                int64_t ld;
                const char *cols = block_cols(p, io, &b, gi, col, &ld);
                char *acc = io->dw + (size_t)((slot * g->K + gi * p->Kg) * p->Ckk + b.c0 * p->kk) * es;
                gemm(p->dt, false, true, p->Kg, nc * p->kk, b.ncols, gt, ldg, cols, ld, 1.0, acc, p->Ckk);
            }
        }
    }
}

/* ---- depthwise: groups == C == K, one filter per plane ---- */

/* Forward, x: (N, C, H, W), w: (C, 1, kh, kw), b: (C) or NULL -> out:
 * (N, C, OH, OW); or, with dx set, the input gradient gout -> dx: the same
 * taps with gather and scatter swapped.  One plane per iteration. */
static void depthwise_planes(const farol_conv_geom *g, farol_dtype dt, char *out, char *dx,
                             const char *src, const char *w, const char *b) {
    size_t es = farol_dtype_size(dt);
    int64_t planes = g->N * g->C, OW = g->OW, HW = g->H * g->W, OHW = g->OH * OW;
#pragma omp parallel for if (planes * OHW * g->kh * g->kw > FAROL_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t c = pl % g->C;
        char *op = out ? out + (size_t)(pl * OHW) * es : NULL, *dp = dx ? dx + (size_t)(pl * HW) * es : NULL;
        const char *sp = src + (size_t)(pl * (dx ? OHW : HW)) * es;
        if (dp) memset(dp, 0, (size_t)HW * es);
        for (int64_t q = 0; op && q < OHW; q++) {
            if (dt == FAROL_F32) ((float *)op)[q] = b ? ((const float *)b)[c] : 0.0f;
            else ((double *)op)[q] = b ? ((const double *)b)[c] : 0.0;
        }
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                double wv = elem(dt, w, (c * g->kh + ki) * g->kw + kj);
                int64_t hlo, hhi, wlo, whi;
                valid_range(g->H, g->OH, g->sh, ki * g->dh - g->ph, &hlo, &hhi);
                valid_range(g->W, OW, g->sw, kj * g->dw - g->pw, &wlo, &whi);
                for (int64_t oh = hlo; oh < hhi; oh++) {
                    int64_t ih = oh * g->sh - g->ph + ki * g->dh, iw = wlo * g->sw - g->pw + kj * g->dw;
                    size_t xo = (size_t)(ih * g->W + iw) * es, oo = (size_t)(oh * OW + wlo) * es;
                    if (op) row_axpy(dt, op + oo, 1, sp + xo, g->sw, whi - wlo, wv);
                    else row_axpy(dt, dp + xo, g->sw, sp + oo, 1, whi - wlo, wv);
                }
            }
    }
}

// gout: (N, C, OH, OW), x -> dw: (C, 1, kh, kw), one thread per channel
static void depthwise_weight_grad(const farol_conv_geom *g, farol_dtype dt, char *dw, const char *gout,
                                  const char *x) {
    size_t es = farol_dtype_size(dt);
    int64_t OW = g->OW, HW = g->H * g->W, OHW = g->OH * OW;
#pragma omp parallel for if (g->N * g->C * OHW * g->kh * g->kw > FAROL_PAR_MIN)
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                int64_t hlo, hhi, wlo, whi;
                valid_range(g->H, g->OH, g->sh, ki * g->dh - g->ph, &hlo, &hhi);
                valid_range(g->W, OW, g->sw, kj * g->dw - g->pw, &wlo, &whi);
                double acc = 0.0;
                for (int64_t n = 0; n < g->N; n++)
                    for (int64_t oh = hlo; oh < hhi; oh++) {
                        int64_t ih = oh * g->sh - g->ph + ki * g->dh, iw = wlo * g->sw - g->pw + kj * g->dw;
                        acc += row_dot(dt, gout + (size_t)((n * g->C + c) * OHW + oh * OW + wlo) * es,
                                       x + (size_t)((n * g->C + c) * HW + ih * g->W + iw) * es, g->sw,
                                       whi - wlo);
                    }
                int64_t i = (c * g->kh + ki) * g->kw + kj;
                if (dt == FAROL_F32) ((float *)dw)[i] = (float)acc;
                else ((double *)dw)[i] = acc;
            }
}

static bool is_depthwise(const farol_conv_geom *g) {
    return g->groups > 1 && g->groups == g->C && g->K == g->C;
}

/* ---- the op ---- */

/* checks common to conv1d and conv2d: presence, dtypes, dims, bias shape */
static int check_args(const char *fn, const farol_tensor *x, const farol_tensor *w,
                      const farol_tensor *b, int ndim, const char *layout) {
    char s[96];
    if (!x || !w) {
        farol_set_error("farol: %s: x and w are required", fn);
        return -1;
    }
    if (farol_check_float(fn, "x", x) < 0 || farol_check_float(fn, "w", w) < 0 ||
        (b && farol_check_float(fn, "b", b) < 0))
        return -1;
    if (x->ndim != ndim) {
        farol_set_error("farol: %s: x must be %d-D %s, got shape %s", fn, ndim, layout,
                        farol_shape_str(x->ndim, x->shape, s, sizeof s));
        return -1;
    }
    if (w->ndim != ndim) {
        farol_set_error("farol: %s: w must be %d-D (K, C/groups, %s), got shape %s", fn, ndim,
                        ndim == 3 ? "kL" : "kH, kW", farol_shape_str(w->ndim, w->shape, s, sizeof s));
        return -1;
    }
    if (x->dtype != w->dtype || (b && b->dtype != x->dtype)) {
        farol_set_error("farol: %s: x, w and b must share a dtype, got x %s, w %s%s%s", fn,
                        farol_dtype_name(x->dtype), farol_dtype_name(w->dtype), b ? ", b " : "",
                        b ? farol_dtype_name(b->dtype) : "");
        return -1;
    }
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) {
        farol_set_error("farol: %s: b must have shape [%lld] (one per output channel), got %s", fn,
                        (long long)w->shape[0], farol_shape_str(b->ndim, b->shape, s, sizeof s));
        return -1;
    }
    return 0;
}

static int conv_forward(const farol_conv_geom *g, farol_dtype dt, char *out, const char *x,
                        const char *w, const char *b) {
    farol_threads_adapt();
    if (dt == FAROL_F32 && !is_depthwise(g)) {
        int rc = farol_dnnl_conv_forward(g, (float *)out, (const float *)x, (const float *)w, (const float *)b);
        if (rc != 0) return rc < 0 ? -1 : 0;
    }
    if (is_depthwise(g)) {
        depthwise_planes(g, dt, out, NULL, x, w, b);
        return 0;
    }
    conv_plan p;
    plan_init(&p, g, dt, false);
    conv_io io = {.out = out, .x = x, .w = w, .b = b};
    return run_jobs(&p, forward_job, &io, false);
}

farol_tensor *farol_conv2d(farol_tensor *x, farol_tensor *w, farol_tensor *b, const farol_conv_opts *o) {
    farol_conv_opts def = farol_conv_defaults();
    if (!o) o = &def;
    farol_conv_geom g;
    if (check_args("conv2d", x, w, b, 4, "(N, C, H, W)") < 0 ||
        farol_conv_geom_init(&g, "conv2d", x->shape, w->shape, o) < 0)
        return NULL;
    int64_t shape[4] = {g.N, g.K, g.OH, g.OW};
    farol_tensor *inputs[3] = {x, w, b};
    /* an empty batch: here, above every kernel path */
    if (g.N == 0) return farol_record_empty(FAROL_OP_CONV2D, 4, shape, x->dtype, b ? 3 : 2, inputs);
    farol_tensor *xc = farol_contig_raw(x), *wc = farol_contig_raw(w);
    farol_tensor *bc = b ? farol_contig_raw(b) : NULL;
    farol_tensor *out = xc && wc && (bc || !b) ? (g.C == 0 ? farol_zeros : farol_empty)(4, shape, x->dtype) : NULL;
    if (out && g.C == 0) {  /* sums over no channel: the bias alone, as linear with no feature */
        size_t plane = (size_t)(g.K * g.OH * g.OW) * farol_dtype_size(x->dtype);
        for (int64_t i = 0; i < g.N && bc; i++)
            fill_bias(x->dtype, (char *)farol_data(out) + i * plane, g.K, g.OH * g.OW, g.OH * g.OW,
                      farol_data(bc));
    } else if (out && conv_forward(&g, x->dtype, farol_data(out), farol_data(xc), farol_data(wc),
                                   bc ? farol_data(bc) : NULL) < 0) {
        farol_release(out);
        out = NULL;
    }
    /* dw needs x and dx needs w; db needs neither */
    out = farol_record(FAROL_OP_CONV2D, out, b ? 3 : 2, inputs,
                       FAROL_SAVE(farol_takes_grad(w) ? xc : NULL, farol_takes_grad(x) ? wc : NULL),
                       &(farol_op_params){.conv = *o});
    farol_release(xc);
    farol_release(wc);
    farol_release(bc);
    return out;
}

/* gin[0] = dx (transposed conv), gin[1] = dw, gin[2] = db, each only when needed */
int farol_conv2d_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin) {
    farol_conv_opts o = n->p.conv;
    farol_edge *ex = &n->inputs[0], *ew = &n->inputs[1];
    bool need_x = ex->need, need_w = ew->need, need_b = n->n_inputs > 2 && n->inputs[2].need;
    farol_dtype dt = ex->dtype;
    farol_conv_geom g;
    if (farol_conv_geom_init(&g, "conv2d", ex->shape, ew->shape, &o) < 0) return -1;
    farol_tensor *x = need_w ? farol_saved(n, 0) : NULL, *w = need_x ? farol_saved(n, 1) : NULL;
    if ((need_w && !x) || (need_x && !w)) return -1;
    farol_tensor *gc = farol_cast_raw(gout, dt);
    if (!gc) return -1;
    farol_tensor *dx = need_x ? farol_empty(4, ex->shape, dt) : NULL;
    farol_tensor *dw = need_w ? farol_zeros(4, ew->shape, dt) : NULL;
    farol_tensor *db = need_b ? farol_empty(1, n->inputs[2].shape, dt) : NULL;
    int rc = (need_x && !dx) || (need_w && !dw) || (need_b && !db) ? -1 : 0;
    const char *gp = farol_data(gc);
    size_t es = farol_dtype_size(dt);
    farol_threads_adapt();
    /* the input gradient on oneDNN when it has a fast kernel; dw below */
    if (rc == 0 && dx && dt == FAROL_F32 && !is_depthwise(&g)) {
        int r = farol_dnnl_conv_backward_data(&g, farol_data(dx), (const float *)gp, farol_data(w));
        if (r < 0) rc = -1;
        if (r > 0) {
            gin[0] = dx;
            dx = NULL;
        }
    }

    if (g.C == 0) {
        /* dx and dw have no element */
    } else if (rc == 0 && (dx || dw) && is_depthwise(&g)) {
        if (dx) depthwise_planes(&g, dt, NULL, farol_data(dx), gp, farol_data(w), NULL);
        if (dw) depthwise_weight_grad(&g, dt, farol_data(dw), gp, farol_data(x));
    } else if (rc == 0 && (dx || dw)) {
        conv_plan p;
        plan_init(&p, &g, dt, true);
        conv_io io = {.dx = dx ? farol_data(dx) : NULL, .gout = gp, .x = x ? farol_data(x) : NULL,
                      .w = w ? farol_data(w) : NULL};
        /* dw: one zeroed accumulator per fixed range of jobs, summed in order after */
        size_t dw_bytes = (size_t)(g.K * p.Ckk) * es;
        char *acc = NULL;
        if (dw && p.slots > 1) {
            acc = farol_calloc((size_t)p.slots, dw_bytes);
            if (!acc) {
                farol_set_error("farol: conv2d: out of memory");
                rc = -1;
            }
        }
        io.dw = acc ? acc : dw ? farol_data(dw) : NULL;
        if (rc == 0) rc = run_jobs(&p, backward_job, &io, dw != NULL);
        if (rc == 0 && acc)
            for (int t = 0; t < p.slots; t++)
                row_axpy(dt, farol_data(dw), 1, acc + t * dw_bytes, 1, g.K * p.Ckk, 1.0);
        farol_free(acc);
    }
    if (rc == 0 && db) {
        int64_t OHW = g.OH * g.OW;
        for (int64_t k = 0; k < g.K; k++) {
            double s = 0.0;
            for (int64_t i = 0; i < g.N; i++) s += row_dot(dt, gp + (size_t)((i * g.K + k) * OHW) * es, NULL, 0, OHW);
            if (dt == FAROL_F32) ((float *)farol_data(db))[k] = (float)s;
            else ((double *)farol_data(db))[k] = s;
        }
    }
    farol_release(gc);
    if (rc < 0) {
        farol_release(dx);
        farol_release(gin[0]);
        gin[0] = NULL;
        farol_release(dw);
        farol_release(db);
        return -1;
    }
    if (need_x && !gin[0]) gin[0] = dx;
    gin[1] = dw;
    if (n->n_inputs > 2) gin[2] = db;
    return 0;
}

/* conv2d on (N, C, 1, L) views */
farol_tensor *farol_conv1d(farol_tensor *x, farol_tensor *w, farol_tensor *b, const farol_conv_opts *o) {
    farol_conv_opts def = farol_conv_defaults();
    if (!o) o = &def;
    if (check_args("conv1d", x, w, b, 3, "(N, C, L)") < 0) return NULL;
    farol_conv_opts o2 = {
        .stride = {1, o->stride[0]}, .padding = {0, o->padding[0]},
        .dilation = {1, o->dilation[0]}, .groups = o->groups,
    };
    int64_t xs[4] = {x->shape[0], x->shape[1], 1, x->shape[2]};
    int64_t ws[4] = {w->shape[0], w->shape[1], 1, w->shape[2]};
    farol_conv_geom g;
    if (farol_conv_geom_init(&g, "conv1d", xs, ws, &o2) < 0) return NULL;
    farol_tensor *x4 = farol_unsqueeze(x, 2);
    farol_tensor *w4 = x4 ? farol_unsqueeze(w, 2) : NULL;
    farol_tensor *y4 = w4 ? farol_conv2d(x4, w4, b, &o2) : NULL;
    farol_tensor *y = y4 ? farol_squeeze(y4, 2) : NULL;
    farol_release(x4);
    farol_release(w4);
    farol_release(y4);
    return y;
}
