/* Scaled dot-product attention as one op, forward and backward, as
 * PyTorch's F.scaled_dot_product_attention:
 *   out = softmax(q k^T * scale + masks) v
 * computed per task (one per batch index, i.e. per (example, head)): two
 * GEMMs forward, five backward, the masks and the softmax fused in one pass
 * over each row of scores.  Each task runs on one thread with
 * single-threaded GEMMs, so a result depends neither on the thread count
 * nor on which thread took the task: tasks are handed out dynamically, and
 * a thread slowed by another process on its core takes fewer.
 *
 * Two ops share the kernels:
 *   attention       q (..., L, E), k (..., S, E), v (..., S, Ev) -> (..., L, Ev)
 *   self_attention  qkv (N, L, 3 * H * D), MultiheadAttention's in-projection,
 *                   -> (N, L, H * D): the heads are read straight from qkv's
 *                   columns, and qkv's gradient is one buffer that the three
 *                   slices' gradients are written into.
 * Masks (farol_attention_opts):
 *   attn_mask         broadcastable to (..., L, S); floating (q's dtype): added
 *                     to the scores, differentiable; int64: nonzero forbids
 *   key_padding_mask  int64 (B, S) or (S), B the first batch dim (N for
 *                     self_attention): nonzero forbids key s
 * Forbidden scores are -inf, so a row with every key forbidden gives NaN as
 * in PyTorch; forbidden scores get no gradient (as masked_fill's).  The
 * backward makes the probabilities P again from q k^T and each row's saved
 * max and 1 / sum (the same bits; keeping P cost the benchmark's two layers
 * 16 MiB, and reading it back took about as long as the extra GEMM), then
 * dS = P * (dP - sum(dP * P)). */
#include "internal.h"

#include <limits.h>
#include <omp.h>

#include "softmax_line.h"

/* per task a row-major matrix with unit column stride */
typedef struct {
    char *base;
    int64_t *off; /* element offset of task t's matrix */
    int64_t ld;
} tmat;

/* a mask seen as (tasks, L, S): base NULL when absent */
typedef struct {
    const char *base;
    int64_t *off;
    int64_t rs, cs;
} tmask;

typedef struct {
    farol_dtype dt;
    int64_t ntask, L, S, D, Dv; /* tasks, query rows, keys, head dims */
    double scale;
    tmat q, k, v;
    tmask add, forbid[2];
} plan;

#define AT(m, t, T) ((T *)(m).base + (m).off[t])

/* a leading dimension BLAS accepts for rows of `cols` elements `stride` apart
 * (the stride of a single row is arbitrary) */
static int64_t ld_of(int64_t stride, int64_t cols) {
    int64_t m = cols > 1 ? cols : 1;
    return stride > m ? stride : m;
}

/* C (M x N, ldc) = alpha op(A) op(B) on the calling thread.  The NT
 * products (q k^T, dO v^T: K = head dim) run on oneDNN's sgemm, the others
 * (K = L or S) on OpenBLAS: per call 5-6 us against 12 us, and 4.4 us
 * against 4.7-11 us, for 128 x 128 x 32 heads on this AVX-512 machine. */
static void tgemm(farol_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                  const void *a, int64_t lda, const void *b, int64_t ldb, void *c, int64_t ldc) {
    farol_gemm_1t(dt, !ta && tb, ta, tb, M, N, K, alpha, a, lda, b, ldb, 0, c, ldc);
}

/* fb[j] = key j is forbidden in row i of task t (by either int64 mask);
 * false when nothing is.  Rebuilt only when a mask varies along rows. */
static bool forbid_row(const plan *p, int64_t t, int64_t i, uint32_t *fb) {
    const tmask *m0 = &p->forbid[0], *m1 = &p->forbid[1];
    if (!m0->base && !m1->base) return false;
    bool rows_vary = (m0->base && m0->rs != 0) || (m1->base && m1->rs != 0);
    if (i > 0 && !rows_vary) return true;
    int64_t S = p->S;
    memset(fb, 0, S * sizeof *fb);
    for (int f = 0; f < 2; f++) {
        const tmask *m = &p->forbid[f];
        if (!m->base) continue;
        const int64_t *r = (const int64_t *)m->base + m->off[t] + i * m->rs;
        for (int64_t j = 0; j < S; j++) fb[j] |= r[j * m->cs] != 0;
    }
    return true;
}

/* The row kernels and the task loops, per element type and ISA.
 * fwd: scores (L x S) of task t in sc, scaled; adds, forbids, softmax.
 * bwd: ds (L x S) holds dP; becomes dS / scale, zero where forbidden. */
#define LANES 16
/* lane[0] = OP over lane[0..15] as a fixed tree; the widths are constants
 * so that the halves are combined as vectors (a loop over a variable width
 * compiled to a chain of scalar adds, a third of a row's time) */
#define LANE_TREE(lane, OP)                                                                    \
    do {                                                                                       \
        { const int w = 8; for (int j = 0; j < 8; j++) OP; }                                   \
        { const int w = 4; for (int j = 0; j < 4; j++) OP; }                                   \
        { const int w = 2; for (int j = 0; j < 2; j++) OP; }                                   \
        { const int w = 1; for (int j = 0; j < 1; j++) OP; }                                   \
    } while (0)
#define DEF_ATTN(T, SUF, EXP)                                                                  \
    /* softmax of one unit-stride row in place, in LANES partial sums; gives                   \
     * the row's max and 1 / sum, from which backward makes the row again (a                   \
     * row of -inf, every key forbidden, gives NaN) */                                         \
    static inline __attribute__((always_inline)) void softmax_row_##SUF(T *x, int64_t n,       \
                                                                      T *m_out, T *inv_out) {  \
        T lane[LANES], m = -INFINITY;                                                          \
        for (int j = 0; j < LANES; j++) lane[j] = -INFINITY;                                   \
        int64_t i = 0;                                                                         \
        for (; i + LANES <= n; i += LANES)                                                     \
            for (int j = 0; j < LANES; j++) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j]; \
        for (; i < n; i++) m = x[i] > m ? x[i] : m;                                            \
        LANE_TREE(lane, lane[j] = lane[j + w] > lane[j] ? lane[j + w] : lane[j]);              \
        m = lane[0] > m ? lane[0] : m;                                                         \
        T tail = 0;                                                                            \
        for (int j = 0; j < LANES; j++) lane[j] = 0;                                           \
        for (i = 0; i + LANES <= n; i += LANES)                                                \
            for (int j = 0; j < LANES; j++) {                                                  \
                T e = EXP(x[i + j] - m);                                                       \
                x[i + j] = e;                                                                  \
                lane[j] += e;                                                                  \
            }                                                                                  \
        for (; i < n; i++) {                                                                   \
            T e = EXP(x[i] - m);                                                               \
            x[i] = e;                                                                          \
            tail += e;                                                                         \
        }                                                                                      \
        LANE_TREE(lane, lane[j] += lane[j + w]);                                               \
        T inv = (T)1 / (lane[0] + tail);                                                       \
        _Pragma("omp simd")                                                                    \
        for (i = 0; i < n; i++) x[i] *= inv;                                                   \
        *m_out = m;                                                                            \
        *inv_out = inv;                                                                        \
    }                                                                                          \
    /* dP -> dS / scale = P * (dP - sum(dP * P)) in place */                                   \
    static inline __attribute__((always_inline)) void softmax_row_bwd_##SUF(T *g, const T *y,  \
                                                                          int64_t n) {         \
        T lane[LANES] = {0}, tail = 0;                                                         \
        int64_t i = 0;                                                                         \
        for (; i + LANES <= n; i += LANES)                                                     \
            for (int j = 0; j < LANES; j++) lane[j] += g[i + j] * y[i + j];                    \
        for (; i < n; i++) tail += g[i] * y[i];                                                \
        LANE_TREE(lane, lane[j] += lane[j + w]);                                               \
        T dot = lane[0] + tail;                                                                \
        _Pragma("omp simd")                                                                    \
        for (i = 0; i < n; i++) g[i] = y[i] * (g[i] - dot);                                    \
    }                                                                                          \
    /* row i of task t's scores: the additive mask, then the forbidden keys */                 \
    static inline __attribute__((always_inline)) void mask_row_##SUF(const plan *p, int64_t t, \
                                                                   int64_t i, T *row,          \
                                                                   uint32_t *fb) {             \
        int64_t S = p->S;                                                                      \
        if (p->add.base) {                                                                     \
            const T *a = (const T *)p->add.base + p->add.off[t] + i * p->add.rs;               \
            int64_t cs = p->add.cs;                                                            \
            if (cs == 1)                                                                       \
                _Pragma("omp simd") for (int64_t j = 0; j < S; j++) row[j] += a[j];            \
            else                                                                               \
                for (int64_t j = 0; j < S; j++) row[j] += a[j * cs];                           \
        }                                                                                      \
        if (forbid_row(p, t, i, fb))                                                           \
            _Pragma("omp simd") for (int64_t j = 0; j < S; j++)                                \
                row[j] = fb[j] ? (T)-INFINITY : row[j];                                        \
    }                                                                                          \
    /* scores (L x S) of task t in sc -> probabilities; st: (L, 2) max and                     \
     * 1 / sum per row, or NULL */                                                             \
    static void rows_fwd_##SUF(const plan *p, int64_t t, T *sc, uint32_t *fb, T *st) {         \
        T m, inv;                                                                              \
        for (int64_t i = 0; i < p->L; i++) {                                                   \
            mask_row_##SUF(p, t, i, sc + i * p->S, fb);                                        \
            softmax_row_##SUF(sc + i * p->S, p->S, &m, &inv);                                  \
            if (st) {                                                                          \
                st[2 * i] = m;                                                                 \
                st[2 * i + 1] = inv;                                                           \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    /* the same probabilities again from the scores and the saved stats: the                   \
     * operations of softmax_row, so the same bits */                                          \
    static void rows_again_##SUF(const plan *p, int64_t t, T *sc, uint32_t *fb, const T *st) { \
        int64_t S = p->S;                                                                      \
        for (int64_t i = 0; i < p->L; i++) {                                                   \
            T *row = sc + i * S, m = st[2 * i], inv = st[2 * i + 1];                           \
            mask_row_##SUF(p, t, i, row, fb);                                                  \
            _Pragma("omp simd") for (int64_t j = 0; j < S; j++) row[j] = EXP(row[j] - m);      \
            _Pragma("omp simd") for (int64_t j = 0; j < S; j++) row[j] *= inv;                 \
        }                                                                                      \
    }                                                                                          \
    static void rows_bwd_##SUF(const plan *p, int64_t t, T *ds, const T *P, uint32_t *fb) {    \
        int64_t S = p->S;                                                                      \
        for (int64_t i = 0; i < p->L; i++) {                                                   \
            T *row = ds + i * S;                                                               \
            softmax_row_bwd_##SUF(row, P + i * S, S);                                          \
            if (forbid_row(p, t, i, fb))                                                       \
                _Pragma("omp simd") for (int64_t j = 0; j < S; j++)                            \
                    row[j] = fb[j] ? (T)0 : row[j];                                            \
        }                                                                                      \
    }                                                                                          \
    /* scratch per thread: S flags, then 2 L x S blocks; st: (T, L, 2) row                     \
     * stats kept for backward, or NULL */                                                     \
    static void fwd_##SUF(const plan *p, tmat o, T *st, T *scratch, int nt) {                  \
        int64_t L = p->L, S = p->S;                                                            \
        _Pragma("omp parallel for schedule(dynamic, 2) num_threads(nt)")                       \
        for (int64_t t = 0; t < p->ntask; t++) {                                               \
            T *mine = scratch + omp_get_thread_num() * (2 * L + 1) * S, *sc = mine + S;        \
            tgemm(p->dt, false, true, L, S, p->D, p->scale, AT(p->q, t, T), p->q.ld,           \
                  AT(p->k, t, T), p->k.ld, sc, S);                                             \
            rows_fwd_##SUF(p, t, sc, (uint32_t *)mine, st ? st + t * L * 2 : NULL);            \
            tgemm(p->dt, false, false, L, p->Dv, S, 1, sc, S, AT(p->v, t, T), p->v.ld,         \
                  AT(o, t, T), o.ld);                                                          \
        }                                                                                      \
    }                                                                                          \
    /* P made again from q k^T and the stats; gq, gk, gv: base NULL when not                   \
     * wanted; dmask (T, L, S) or NULL */                                                      \
    static void bwd_##SUF(const plan *p, const T *st, tmat go, tmat gq, tmat gk, tmat gv,      \
                          T *dmask, T *scratch, int nt) {                                      \
        int64_t L = p->L, S = p->S, D = p->D, Dv = p->Dv;                                      \
        bool need_ds = gq.base || gk.base || dmask;                                            \
        _Pragma("omp parallel for schedule(dynamic, 2) num_threads(nt)")                       \
        for (int64_t t = 0; t < p->ntask; t++) {                                               \
            T *mine = scratch + omp_get_thread_num() * (2 * L + 1) * S, *P = mine + S;         \
            tgemm(p->dt, false, true, L, S, p->D, p->scale, AT(p->q, t, T), p->q.ld,           \
                  AT(p->k, t, T), p->k.ld, P, S);                                              \
            rows_again_##SUF(p, t, P, (uint32_t *)mine, st + t * L * 2);                       \
            if (gv.base) /* dV = P^T dO */                                                     \
                tgemm(p->dt, true, false, S, Dv, L, 1, P, S, AT(go, t, T), go.ld,              \
                      AT(gv, t, T), gv.ld);                                                    \
            if (!need_ds) continue;                                                            \
            T *ds = dmask ? dmask + t * L * S : P + L * S;                                     \
            tgemm(p->dt, false, true, L, S, Dv, 1, AT(go, t, T), go.ld, AT(p->v, t, T),        \
                  p->v.ld, ds, S); /* dP = dO V^T */                                           \
            rows_bwd_##SUF(p, t, ds, P, (uint32_t *)mine);                                     \
            if (gq.base) /* dQ = dS K * scale */                                               \
                tgemm(p->dt, false, false, L, D, S, p->scale, ds, S, AT(p->k, t, T), p->k.ld,  \
                      AT(gq, t, T), gq.ld);                                                    \
            if (gk.base) /* dK = dS^T Q * scale */                                             \
                tgemm(p->dt, true, false, S, D, L, p->scale, ds, S, AT(p->q, t, T), p->q.ld,   \
                      AT(gk, t, T), gk.ld);                                                    \
        }                                                                                      \
    }

DEF_ATTN(float, f32, fast_expf)
DEF_ATTN(double, f64, exp)
#if FAROL_HAVE_ISA_VARIANTS
FAROL_ISA_BEGIN_AVX2
DEF_ATTN(float, f32_avx2, fast_expf)
DEF_ATTN(double, f64_avx2, exp)
FAROL_ISA_END
FAROL_ISA_BEGIN_AVX512
DEF_ATTN(float, f32_avx512, fast_expf)
DEF_ATTN(double, f64_avx512, exp)
FAROL_ISA_END
#endif

/* ---- plans ---- */

/* offsets of task t over a batch shape (nb dims) with element strides st */
static void task_offsets(int64_t *off, int64_t T, int nb, const int64_t *bshape,
                         const int64_t *st, int64_t base) {
    for (int64_t t = 0; t < T; t++) {
        int64_t rem = t, o = base;
        for (int i = nb - 1; i >= 0; i--) {
            o += (rem % bshape[i]) * st[i];
            rem /= bshape[i];
        }
        off[t] = o;
    }
}

/* m broadcast to (bshape..., L, S) as a tmask (offsets written to off) */
static tmask mask_of(const farol_tensor *m, int nb, const int64_t *bshape, int64_t L, int64_t S,
                     int64_t T, int64_t *off) {
    int64_t full[FAROL_MAX_DIMS + 2], bst[FAROL_MAX_DIMS + 2];
    memcpy(full, bshape, nb * sizeof *full);
    full[nb] = L;
    full[nb + 1] = S;
    farol_broadcast_strides(m, nb + 2, full, bst);
    int64_t es = (int64_t)farol_dtype_size(m->dtype);
    for (int i = 0; i < nb + 2; i++) bst[i] /= es;
    task_offsets(off, T, nb, bshape, bst, 0);
    return (tmask){farol_data(m), off, bst[nb], bst[nb + 1]};
}

/* key_padding_mask (B, S) or (S) as a tmask; B is bshape[0] */
static tmask kpm_of(const farol_tensor *m, int nb, const int64_t *bshape, int64_t T, int64_t *off) {
    int64_t per_b = 1;
    for (int i = 1; i < nb; i++) per_b *= bshape[i];
    for (int64_t t = 0; t < T; t++) off[t] = m->ndim == 2 ? (t / per_b) * m->strides[0] : 0;
    return (tmask){farol_data(m), off, 0, m->strides[m->ndim - 1]};
}

/* Everything a plan points to: offsets for up to 12 task matrices. */
typedef struct {
    int64_t *buf;
    int used;
    int64_t T;
} offsets;

static int64_t *next_off(offsets *o) { return o->buf + (int64_t)(o->used++) * o->T; }

/* ---- argument checks ---- */

static int check_masks(const char *fn, const farol_attention_opts *o, farol_dtype dt, int nb,
                       const int64_t *bshape, int64_t L, int64_t S) {
    char s1[96], s2[96];
    int64_t full[FAROL_MAX_DIMS + 2];
    memcpy(full, bshape, nb * sizeof *full);
    full[nb] = L;
    full[nb + 1] = S;
    farol_tensor *am = o ? o->attn_mask : NULL, *kp = o ? o->key_padding_mask : NULL;
    if (am) {
        if (am->dtype != FAROL_I64 && am->dtype != dt) {
            farol_set_error("farol: %s: attn_mask is %s but q is %s (an additive mask has q's "
                            "dtype; an int64 mask forbids where nonzero)",
                            fn, farol_dtype_name(am->dtype), farol_dtype_name(dt));
            return -1;
        }
        bool ok = am->ndim <= nb + 2;
        for (int i = 0; ok && i < am->ndim; i++) {
            int64_t want = full[nb + 2 - am->ndim + i];
            ok = am->shape[i] == want || am->shape[i] == 1;
        }
        if (!ok) {
            farol_set_error("farol: %s: attn_mask %s does not broadcast to the scores %s", fn,
                            farol_shape_str(am->ndim, am->shape, s1, sizeof s1),
                            farol_shape_str(nb + 2, full, s2, sizeof s2));
            return -1;
        }
    }
    if (kp) {
        if (kp->dtype != FAROL_I64) {
            farol_set_error("farol: %s: key_padding_mask must be int64 (nonzero forbids a key), "
                            "got %s", fn, farol_dtype_name(kp->dtype));
            return -1;
        }
        bool ok = (kp->ndim == 1 && kp->shape[0] == S) ||
                  (kp->ndim == 2 && nb >= 1 && kp->shape[0] == bshape[0] && kp->shape[1] == S);
        if (!ok) {
            if (nb >= 1)
                farol_set_error("farol: %s: key_padding_mask must be [%lld, %lld] or [%lld], got %s",
                                fn, (long long)bshape[0], (long long)S, (long long)S,
                                farol_shape_str(kp->ndim, kp->shape, s1, sizeof s1));
            else
                farol_set_error("farol: %s: key_padding_mask must be [%lld], got %s", fn,
                                (long long)S, farol_shape_str(kp->ndim, kp->shape, s1, sizeof s1));
            return -1;
        }
    }
    if (o && isinf(o->scale)) {
        farol_set_error("farol: %s: scale must be finite (NaN: the default 1/sqrt(E)), got %g", fn,
                        o->scale);
        return -1;
    }
    return 0;
}

/* a matrix operand GEMM takes as is: unit column stride, rows apart by at
 * least a row (a single row: any) */
static bool gemm_rows(const farol_tensor *t) {
    int nd = t->ndim;
    int64_t rows = t->shape[nd - 2], cols = t->shape[nd - 1];
    bool ok = (cols <= 1 || t->strides[nd - 1] == 1) &&
              (rows <= 1 || t->strides[nd - 2] >= (cols > 1 ? cols : 1));
    return ok && t->strides[nd - 2] <= INT_MAX;
}

static farol_tensor *gemm_ready(farol_tensor *t) {
    return gemm_rows(t) ? farol_retain(t) : farol_contig_raw(t);
}

farol_attention_opts farol_attention_defaults(void) {
    return (farol_attention_opts){.attn_mask = NULL, .key_padding_mask = NULL, .scale = NAN};
}

/* the plan's masks from attn_mask (either kind) and key_padding_mask */
static void plan_masks(plan *p, offsets *ofs, int nb, const int64_t *bshape,
                       const farol_tensor *am, const farol_tensor *kp) {
    p->add = p->forbid[0] = p->forbid[1] = (tmask){0};
    if (am) {
        tmask m = mask_of(am, nb, bshape, p->L, p->S, p->ntask, next_off(ofs));
        if (am->dtype == FAROL_I64) p->forbid[0] = m;
        else p->add = m;
    }
    if (kp) p->forbid[1] = kpm_of(kp, nb, bshape, p->ntask, next_off(ofs));
}

/* The threads the tasks run on (the count adaptive threads set at the op's
 * entry) and their scratch: S flags and two L x S blocks each */
static int task_threads(const plan *p) {
    bool par = p->ntask > 1 && p->ntask * p->L * p->S * (p->D + p->Dv) > FAROL_PAR_MIN * 8;
    return par && !omp_in_parallel() ? omp_get_max_threads() : 1;
}

static farol_tensor *scratch_for(const plan *p, int nt) {
    int64_t n = (int64_t)nt * (2 * p->L + 1) * p->S;
    return farol_empty(1, &n, p->dt);
}

/* The forward of both ops once the plan's matrices are set.  Saved for
 * backward: the inputs as used (save[0 .. n_save_inputs)), each row's max
 * and 1 / sum (the probabilities are made again from them: 16 bytes a row
 * kept instead of S elements), and both masks. */
static farol_tensor *run_forward(farol_op op, plan *p, offsets *ofs, int nb, const int64_t *bshape,
                                 farol_tensor *out, tmat o, int n_in, farol_tensor **ins,
                                 farol_tensor **save, int n_save_inputs,
                                 const farol_attention_opts *opts) {
    farol_tensor *am = opts ? opts->attn_mask : NULL, *kp = opts ? opts->key_padding_mask : NULL;
    farol_threads_adapt();
    farol_blas_ready();
    int nt = task_threads(p);
    farol_tensor *st = NULL, *scratch = scratch_for(p, nt);
    plan_masks(p, ofs, nb, bshape, am, kp);
    int64_t sshape[FAROL_MAX_DIMS + 2];
    memcpy(sshape, bshape, nb * sizeof *sshape);
    sshape[nb] = p->L;
    sshape[nb + 1] = 2;
    bool keep = farol_needs_record(n_in, ins);
    if (keep && scratch) st = farol_empty(nb + 2, sshape, p->dt);
    if (!scratch || (keep && !st)) {
        farol_release(scratch);
        farol_release(out);
        return NULL;
    }
    void *sd = st ? farol_data(st) : NULL;
    if (p->dt == FAROL_F32)
        FAROL_ISA_DISPATCH(fwd_f32, (p, o, sd, farol_data(scratch), nt));
    else
        FAROL_ISA_DISPATCH(fwd_f64, (p, o, sd, farol_data(scratch), nt));
    farol_release(scratch);
    save[n_save_inputs] = st;
    save[n_save_inputs + 1] = am;
    save[n_save_inputs + 2] = kp;
    farol_op_params prm = {.attn = {p->scale, nb == 2 ? bshape[1] : 0}};
    out = farol_record_op(op, &farol_ops[op], out, n_in, ins, n_save_inputs + 3, save, &prm);
    farol_release(st);
    return out;
}

/* ---- attention(q, k, v) ---- */

farol_tensor *farol_attention(farol_tensor *q, farol_tensor *k, farol_tensor *v,
                              const farol_attention_opts *opts) {
    const char *fn = "scaled_dot_product_attention";
    char s1[96], s2[96], s3[96];
    if (!q || !k || !v) {
        farol_set_error("farol: %s: %s is NULL", fn, !q ? "q" : !k ? "k" : "v");
        return NULL;
    }
    if (farol_check_float(fn, "q", q) < 0 || farol_check_float(fn, "k", k) < 0 ||
        farol_check_float(fn, "v", v) < 0)
        return NULL;
    if (k->dtype != q->dtype || v->dtype != q->dtype) {
        farol_set_error("farol: %s: q, k and v must share a dtype, got %s, %s and %s", fn,
                        farol_dtype_name(q->dtype), farol_dtype_name(k->dtype),
                        farol_dtype_name(v->dtype));
        return NULL;
    }
    int nd = q->ndim, nb = nd - 2;
    bool ok = nd >= 2 && k->ndim == nd && v->ndim == nd;
    for (int i = 0; ok && i < nb; i++) ok = k->shape[i] == q->shape[i] && v->shape[i] == q->shape[i];
    ok = ok && k->shape[nd - 1] == q->shape[nd - 1] && v->shape[nd - 2] == k->shape[nd - 2];
    if (!ok) {
        farol_set_error("farol: %s: q %s, k %s and v %s must be (..., L, E), (..., S, E) and "
                        "(..., S, Ev) with the same batch dims",
                        fn, farol_shape_str(q->ndim, q->shape, s1, sizeof s1),
                        farol_shape_str(k->ndim, k->shape, s2, sizeof s2),
                        farol_shape_str(v->ndim, v->shape, s3, sizeof s3));
        return NULL;
    }
    plan p = {.dt = q->dtype, .L = q->shape[nd - 2], .S = k->shape[nd - 2],
              .D = q->shape[nd - 1], .Dv = v->shape[nd - 1]};
    if (check_masks(fn, opts, q->dtype, nb, q->shape, p.L, p.S) < 0) return NULL;
    if (p.L > INT_MAX || p.S > INT_MAX || p.D > INT_MAX || p.Dv > INT_MAX) {
        farol_set_error("farol: %s: dims exceed what BLAS accepts", fn);
        return NULL;
    }
    double scale = opts ? opts->scale : NAN;
    p.scale = isnan(scale) ? 1 / sqrt((double)(p.D > 0 ? p.D : 1)) : scale;
    farol_tensor *am = opts ? opts->attn_mask : NULL;
    farol_tensor *ins[4] = {q, k, v, am && am->dtype != FAROL_I64 ? am : NULL};
    int64_t oshape[FAROL_MAX_DIMS];
    memcpy(oshape, q->shape, nd * sizeof *oshape);
    oshape[nd - 1] = p.Dv;
    if (farol_shape_empty(nd, oshape))
        return farol_record_empty(FAROL_OP_ATTENTION, nd, oshape, q->dtype, 4, ins);
    p.ntask = 1;
    for (int i = 0; i < nb; i++) p.ntask *= q->shape[i];

    farol_tensor *qc = gemm_ready(q), *kc = qc ? gemm_ready(k) : NULL,
                 *vc = kc ? gemm_ready(v) : NULL;
    farol_tensor *out = vc ? farol_empty(nd, oshape, q->dtype) : NULL;
    offsets ofs = {.buf = out ? farol_malloc((size_t)(p.ntask > 0 ? p.ntask : 1) * 6 * sizeof(int64_t)) : NULL,
                   .T = p.ntask};
    if (!ofs.buf) {
        farol_release(out);
        out = NULL;
        goto done;
    }
    farol_tensor *ops[3] = {qc, kc, vc};
    tmat *ms[3] = {&p.q, &p.k, &p.v};
    for (int i = 0; i < 3; i++) {
        *ms[i] = (tmat){farol_data(ops[i]), next_off(&ofs),
                        ld_of(ops[i]->strides[nd - 2], ops[i]->shape[nd - 1])};
        task_offsets(ms[i]->off, p.ntask, nb, ops[i]->shape, ops[i]->strides, 0);
    }
    tmat o = {farol_data(out), next_off(&ofs), p.Dv};
    for (int64_t t = 0; t < p.ntask; t++) o.off[t] = t * p.L * p.Dv;
    farol_tensor *save[6] = {qc, kc, vc};
    out = run_forward(FAROL_OP_ATTENTION, &p, &ofs, nb, q->shape, out, o, 4, ins, save, 3, opts);
done:
    farol_free(ofs.buf);
    farol_release(qc);
    farol_release(kc);
    farol_release(vc);
    return out;
}

/* ---- self_attention(qkv, heads) ---- */

/* the plan's q, k, v of qkv (N, L, 3E) with H heads: task t = (n, h) */
static void packed_mats(plan *p, offsets *ofs, const farol_tensor *qkv, int64_t H) {
    int64_t N = qkv->shape[0], E = qkv->shape[2] / 3, D = E / H;
    tmat *ms[3] = {&p->q, &p->k, &p->v};
    for (int i = 0; i < 3; i++) {
        *ms[i] = (tmat){farol_data(qkv), next_off(ofs), ld_of(qkv->strides[1], 3 * E)};
        for (int64_t t = 0; t < N * H; t++)
            ms[i]->off[t] = (t / H) * qkv->strides[0] + (i * E + (t % H) * D) * qkv->strides[2];
    }
}

farol_tensor *farol_self_attention(farol_tensor *qkv, int heads, const farol_attention_opts *opts) {
    const char *fn = "self_attention";
    char s1[96];
    if (!qkv) {
        farol_set_error("farol: %s: qkv is NULL", fn);
        return NULL;
    }
    if (farol_check_float(fn, "qkv", qkv) < 0) return NULL;
    if (heads < 1) {
        farol_set_error("farol: %s: heads must be positive, got %d", fn, heads);
        return NULL;
    }
    if (qkv->ndim != 3 || qkv->shape[2] % (3 * (int64_t)heads) != 0) {
        farol_set_error("farol: %s: qkv must be (N, L, 3 * heads * head_dim) with %d heads, got %s",
                        fn, heads, farol_shape_str(qkv->ndim, qkv->shape, s1, sizeof s1));
        return NULL;
    }
    int64_t N = qkv->shape[0], L = qkv->shape[1], E = qkv->shape[2] / 3, H = heads;
    plan p = {.dt = qkv->dtype, .ntask = N * H, .L = L, .S = L, .D = E / H, .Dv = E / H};
    int64_t bshape[2] = {N, H};
    if (check_masks(fn, opts, qkv->dtype, 2, bshape, L, L) < 0) return NULL;
    if (L > INT_MAX || 3 * E > INT_MAX) {
        farol_set_error("farol: %s: dims exceed what BLAS accepts", fn);
        return NULL;
    }
    double scale = opts ? opts->scale : NAN;
    p.scale = isnan(scale) ? 1 / sqrt((double)(p.D > 0 ? p.D : 1)) : scale;
    farol_tensor *am = opts ? opts->attn_mask : NULL;
    farol_tensor *ins[2] = {qkv, am && am->dtype != FAROL_I64 ? am : NULL};
    int64_t oshape[3] = {N, L, E};
    if (farol_shape_empty(3, oshape))
        return farol_record_empty(FAROL_OP_SELF_ATTENTION, 3, oshape, qkv->dtype, 2, ins);
    /* the heads must be GEMM rows: unit stride along the features */
    bool rows_ok = qkv->strides[2] == 1 && qkv->strides[1] <= INT_MAX &&
                   (L <= 1 || qkv->strides[1] >= 3 * E);
    farol_tensor *xc = rows_ok ? farol_retain(qkv) : farol_contig_raw(qkv);
    farol_tensor *out = xc ? farol_empty(3, oshape, qkv->dtype) : NULL;
    offsets ofs = {.buf = out ? farol_malloc((size_t)p.ntask * 6 * sizeof(int64_t)) : NULL, .T = p.ntask};
    if (!ofs.buf) {
        farol_release(out);
        out = NULL;
        goto done;
    }
    packed_mats(&p, &ofs, xc, H);
    tmat o = {farol_data(out), next_off(&ofs), E};
    for (int64_t t = 0; t < p.ntask; t++) o.off[t] = (t / H) * L * E + (t % H) * p.D;
    farol_tensor *save[6] = {xc};
    out = run_forward(FAROL_OP_SELF_ATTENTION, &p, &ofs, 2, bshape, out, o, 2, ins, save, 1, opts);
done:
    farol_free(ofs.buf);
    farol_release(xc);
    return out;
}

/* ---- backward ---- */

/* the backward of both ops: the plan's q, k, v set from the saved inputs;
 * go, gq, gk, gv set by the caller; the stats and the masks from the saved
 * slots after the inputs (first = their index) */
static int run_backward(farol_node *nd, plan *p, offsets *ofs, int first, int nb,
                        const int64_t *bshape, tmat go, tmat gq, tmat gk, tmat gv, int mask_in,
                        farol_tensor **gin) {
    farol_tensor *st = farol_saved(nd, first), *am = NULL, *kp = NULL;
    if (!st) return -1;
    if (nd->saved[first + 1] && !(am = farol_saved(nd, first + 1))) return -1;
    if (nd->saved[first + 2] && !(kp = farol_saved(nd, first + 2))) return -1;
    plan_masks(p, ofs, nb, bshape, am, kp);
    bool want_mask = mask_in >= 0 && nd->inputs[mask_in].need;
    farol_threads_adapt();
    farol_blas_ready();
    int nt = task_threads(p);
    farol_tensor *dm = NULL, *scratch = scratch_for(p, nt);
    if (want_mask) {
        int64_t dshape[FAROL_MAX_DIMS + 2];
        memcpy(dshape, bshape, nb * sizeof *dshape);
        dshape[nb] = p->L;
        dshape[nb + 1] = p->S;
        dm = farol_empty(nb + 2, dshape, p->dt);
    }
    if ((want_mask && !dm) || !scratch) {
        farol_release(dm);
        farol_release(scratch);
        return -1;
    }
    void *dmd = want_mask ? farol_data(dm) : NULL, *sd = farol_data(scratch);
    if (p->dt == FAROL_F32)
        FAROL_ISA_DISPATCH(bwd_f32, (p, farol_data(st), go, gq, gk, gv, dmd, sd, nt));
    else
        FAROL_ISA_DISPATCH(bwd_f64, (p, farol_data(st), go, gq, gk, gv, dmd, sd, nt));
    farol_release(scratch);
    if (!want_mask) return 0;
    const farol_edge *e = &nd->inputs[mask_in];
    gin[mask_in] = farol_sum_to(dm, e->ndim, e->shape);
    farol_release(dm);
    return gin[mask_in] ? 0 : -1;
}

int farol_attention_backward(farol_node *nd, farol_tensor *gout, farol_tensor **gin) {
    farol_tensor *q = farol_saved(nd, 0), *k = farol_saved(nd, 1), *v = farol_saved(nd, 2);
    if (!q || !k || !v) return -1;
    int n = q->ndim, nb = n - 2;
    plan p = {.dt = q->dtype, .L = q->shape[n - 2], .S = k->shape[n - 2], .D = q->shape[n - 1],
              .Dv = v->shape[n - 1], .scale = nd->p.attn.scale, .ntask = 1};
    for (int i = 0; i < nb; i++) p.ntask *= q->shape[i];
    farol_tensor *g = farol_cast_raw(gout, q->dtype);
    offsets ofs = {.buf = g ? farol_malloc((size_t)p.ntask * 10 * sizeof(int64_t)) : NULL, .T = p.ntask};
    int rc = -1;
    if (!ofs.buf) goto done;
    farol_tensor *ts[3] = {q, k, v};
    tmat *ms[3] = {&p.q, &p.k, &p.v};
    for (int i = 0; i < 3; i++) {
        *ms[i] = (tmat){farol_data(ts[i]), next_off(&ofs),
                        ld_of(ts[i]->strides[n - 2], ts[i]->shape[n - 1])};
        task_offsets(ms[i]->off, p.ntask, nb, ts[i]->shape, ts[i]->strides, 0);
    }
    /* G and the input gradients: contiguous, task t at t * rows * cols */
    tmat gm[4] = {{0}};
    int64_t cols[4] = {p.Dv, p.D, p.D, p.Dv}, rows[4] = {p.L, p.L, p.S, p.S};
    gm[0].base = farol_data(g);
    for (int i = 1; i < 4; i++) {
        if (!nd->inputs[i - 1].need) continue;
        if (!(gin[i - 1] = farol_empty(ts[i - 1]->ndim, ts[i - 1]->shape, p.dt))) goto done;
        gm[i].base = farol_data(gin[i - 1]);
    }
    for (int i = 0; i < 4; i++) {
        gm[i].ld = cols[i];
        gm[i].off = next_off(&ofs);
        for (int64_t t = 0; t < p.ntask; t++) gm[i].off[t] = t * rows[i] * cols[i];
    }
    rc = run_backward(nd, &p, &ofs, 3, nb, q->shape, gm[0], gm[1], gm[2], gm[3],
                      nd->n_inputs > 3 ? 3 : -1, gin);
done:
    farol_free(ofs.buf);
    farol_release(g);
    return rc;
}

int farol_self_attention_backward(farol_node *nd, farol_tensor *gout, farol_tensor **gin) {
    farol_tensor *qkv = farol_saved(nd, 0);
    if (!qkv) return -1;
    int64_t N = qkv->shape[0], L = qkv->shape[1], E = qkv->shape[2] / 3;
    int64_t H = nd->p.attn.heads;
    plan p = {.dt = qkv->dtype, .ntask = N * H, .L = L, .S = L, .D = E / H, .Dv = E / H,
              .scale = nd->p.attn.scale};
    int64_t bshape[2] = {N, H};
    farol_tensor *g = farol_cast_raw(gout, qkv->dtype);
    offsets ofs = {.buf = g ? farol_malloc((size_t)p.ntask * 10 * sizeof(int64_t)) : NULL, .T = p.ntask};
    int rc = -1;
    if (!ofs.buf) goto done;
    packed_mats(&p, &ofs, qkv, H);
    tmat go = {farol_data(g), next_off(&ofs), E}, gq = {0}, gk = {0}, gv = {0};
    for (int64_t t = 0; t < p.ntask; t++) go.off[t] = (t / H) * L * E + (t % H) * p.D;
    if (nd->inputs[0].need) {
        /* one buffer for the three slices: every element is written once */
        if (!(gin[0] = farol_empty(3, qkv->shape, p.dt))) goto done;
        tmat *gs[3] = {&gq, &gk, &gv};
        for (int i = 0; i < 3; i++) {
            *gs[i] = (tmat){farol_data(gin[0]), next_off(&ofs), 3 * E};
            for (int64_t t = 0; t < p.ntask; t++)
                gs[i]->off[t] = (t / H) * L * 3 * E + i * E + (t % H) * p.D;
        }
    }
    rc = run_backward(nd, &p, &ofs, 1, 2, bshape, go, gq, gk, gv, nd->n_inputs > 1 ? 1 : -1, gin);
done:
    farol_free(ofs.buf);
    farol_release(g);
    return rc;
}
