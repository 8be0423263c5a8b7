/* Matrix products: farol_matmul (PyTorch's rules for 1-D, 2-D and batched
 * operands with broadcast batch dims) and farol_linear (x @ w^T + b).
 *
 * Everything goes through farol_gemm (src/tensor/gemm.c).  An operand that is a transposed view
 * is passed with CblasTrans and its own leading dimension, never copied; only
 * a matrix that is neither row- nor column-major in its last two dims is
 * made contiguous.  A batch is folded into one GEMM whenever the strides
 * allow it:
 *   - into M when B is shared over the batch  (x (B, T, in) @ w (in, out)),
 *   - into K when C is shared over the batch  (the gradient of a shared B:
 *     sum_b A_b^T G_b is one GEMM over the stacked rows),
 *   - into N when A is shared over the batch.
 * Otherwise the batch is a loop of GEMMs; a result shared over broadcast
 * batch dims (stride 0) accumulates, which sums the gradient of a broadcast
 * operand without materialising it. */
#include "internal.h"

#include <cblas.h>
#include <limits.h>

/* One matrix operand of a batched product: element (b..., r, c) lives at
 * data + (sum_i bstr[i] * b_i + r * rs + c * cs) * esize.  bstr is aligned
 * with the product's batch shape and is 0 along dims the operand broadcasts. */
typedef struct {
    char *data;
    int64_t bstr[FAROL_MAX_DIMS];
    int64_t rows, cols, rs, cs;
} mat;

static mat mat_t(mat m) {
    int64_t t = m.rows;
    m.rows = m.cols;
    m.cols = t;
    t = m.rs;
    m.rs = m.cs;
    m.cs = t;
    return m;
}

/* How a (rows x cols) matrix with strides (rs, cs) is passed to a row-major
 * GEMM: as is (NoTrans, ld = rs) or as the transpose of a row-major matrix
 * (Trans, ld = cs).  false when neither works and a copy is needed. */
static bool blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                        CBLAS_TRANSPOSE *tr, int64_t *ld) {
    /* the stride of a size-1 dim is meaningless */
    if ((cols == 1 || cs == 1) && (rows == 1 || rs >= cols)) {
        *tr = CblasNoTrans;
        *ld = rows == 1 ? cols : rs;
        if (*ld < 1) *ld = 1;
        return *ld <= INT_MAX;
    }
    if ((rows == 1 || rs == 1) && (cols == 1 || cs >= rows)) {
        *tr = CblasTrans;
        *ld = cols == 1 ? rows : cs;
        if (*ld < 1) *ld = 1;
        return *ld <= INT_MAX;
    }
    return false;
}

static bool mat_ok(const mat *m) {
    CBLAS_TRANSPOSE tr;
    int64_t ld;
    return blas_layout(m->rows, m->cols, m->rs, m->cs, &tr, &ld);
}

/* c (M, N) = a (M, K) @ b (K, N) + beta * c, c row-major */
static void gemm(farol_dtype dt, const mat *a, const mat *b, const mat *c, int64_t aoff,
                 int64_t boff, int64_t coff, double beta) {
    CBLAS_TRANSPOSE ta, tb, tc;
    int64_t lda, ldb, ldc;
    blas_layout(a->rows, a->cols, a->rs, a->cs, &ta, &lda);
    blas_layout(b->rows, b->cols, b->rs, b->cs, &tb, &ldb);
    blas_layout(c->rows, c->cols, c->rs, c->cs, &tc, &ldc);
    size_t es = farol_dtype_size(dt);
    farol_gemm(dt, ta == CblasTrans, tb == CblasTrans, a->rows, b->cols, a->cols, 1.0,
               a->data + aoff * es, lda, b->data + boff * es, ldb, beta, c->data + coff * es, ldc);
}

/* Does the (batch..., size) index of an operand run at one stride?  The
 * batch dims of size > 1 and then (size, stride) must nest like a
 * contiguous array, with no broadcast (stride 0) dim.  Writes the combined
 * length and stride. */
static bool collapse(int nb, const int64_t *bshape, const int64_t *bstr, int64_t size,
                     int64_t stride, int64_t *tot, int64_t *tstride) {
    int64_t len = 1, st = 0, expect = 0;
    for (int i = nb; i >= 0; i--) {
        int64_t n = i == nb ? size : bshape[i], s = i == nb ? stride : bstr[i];
        if (n == 1) continue;
        if (s == 0 || (len > 1 && s != expect)) return false;
        if (len == 1) st = s; /* the innermost dim of size > 1 sets the stride */
        expect = s * n;
        len *= n;
    }
    *tot = len;
    *tstride = len > 1 ? st : stride;
    return true;
}

/* true when the operand is the same matrix for every batch index */
static bool batch_shared(int nb, const int64_t *bshape, const int64_t *bstr) {
    for (int i = 0; i < nb; i++)
        if (bshape[i] > 1 && bstr[i] != 0) return false;
    return true;
}

/* C[b] = A[b] @ B[b] + beta * C[b] over the batch shape bshape (nb dims).
 * A and B must pass mat_ok; C is row-major (cs == 1), contiguous over its
 * cbytes bytes.  Where C is shared along a batch dim (stride 0), the
 * products accumulate into it. */
static void batched_gemm(farol_dtype dt, int nb, const int64_t *bshape, mat a, mat b, mat c,
                         size_t cbytes, double beta) {
    int64_t M = a.rows, N = b.cols, K = a.cols, count = 1;
    for (int i = 0; i < nb; i++) count *= bshape[i];
    bool c_shared = batch_shared(nb, bshape, c.bstr);
    if (M == 0 || N == 0 || count == 0 || K == 0) { /* empty products: C = beta * C */
        if (beta == 0) memset(c.data, 0, cbytes);
        return;
    }
    if (count > 1) {
        mat a2 = a, b2 = b, c2 = c;
        /* C shared: the batch joins the contraction, summed by the GEMM */
        if (c_shared && collapse(nb, bshape, a.bstr, K, a.cs, &a2.cols, &a2.cs) &&
            collapse(nb, bshape, b.bstr, K, b.rs, &b2.rows, &b2.rs) && mat_ok(&a2) &&
            mat_ok(&b2) && a2.cols <= INT_MAX) {
            gemm(dt, &a2, &b2, &c, 0, 0, 0, beta);
            return;
        }
        a2 = a;
        b2 = b;
        /* B shared: the batch stacks into the rows of A and C */
        if (batch_shared(nb, bshape, b.bstr) &&
            collapse(nb, bshape, a.bstr, M, a.rs, &a2.rows, &a2.rs) &&
            collapse(nb, bshape, c.bstr, M, c.rs, &c2.rows, &c2.rs) && mat_ok(&a2) &&
            mat_ok(&c2) && c2.rows <= INT_MAX) {
            gemm(dt, &a2, &b, &c2, 0, 0, 0, beta);
            return;
        }
        c2 = c;
        /* A shared: the batch stacks into the columns of B and C (C row-major
         * only when M == 1) */
        if (batch_shared(nb, bshape, a.bstr) &&
            collapse(nb, bshape, b.bstr, N, b.cs, &b2.cols, &b2.cs) &&
            collapse(nb, bshape, c.bstr, N, c.cs, &c2.cols, &c2.cs) && c2.cs == 1 &&
            mat_ok(&b2) && mat_ok(&c2) && c2.cols <= INT_MAX) {
            gemm(dt, &a, &b2, &c2, 0, 0, 0, beta);
            return;
        }
    }
    /* a loop of GEMMs; a C shared along some dim is zeroed, then accumulated */
    bool accumulate = false;
    for (int i = 0; i < nb; i++) accumulate |= bshape[i] > 1 && c.bstr[i] == 0;
    if (accumulate && beta == 0) {
        memset(c.data, 0, cbytes);
        beta = 1;
    }
    /* Many small products (attention heads) thread poorly inside BLAS: run
     * them one per thread instead (OpenBLAS is single-threaded inside an
     * OpenMP region).  Not when C accumulates: threads would share it. */
    if (!accumulate && count >= 2 && M * N * K <= ((int64_t)1 << 22)) {
        #pragma omp parallel for schedule(static) if (count * M * N * K > FAROL_PAR_MIN * 8)
        for (int64_t t = 0; t < count; t++) {
            int64_t rem = t, ao_t = 0, bo_t = 0, co_t = 0;
            for (int i = nb - 1; i >= 0; i--) {
                int64_t k = rem % bshape[i];
                rem /= bshape[i];
                ao_t += k * a.bstr[i];
                bo_t += k * b.bstr[i];
                co_t += k * c.bstr[i];
            }
            gemm(dt, &a, &b, &c, ao_t, bo_t, co_t, beta);
        }
        return;
    }
    int64_t idx[FAROL_MAX_DIMS] = {0}, ao = 0, bo = 0, co = 0;
    for (int64_t t = 0; t < count; t++) {
        gemm(dt, &a, &b, &c, ao, bo, co, beta);
        for (int i = nb - 1; i >= 0; i--) { /* odometer, offsets kept incrementally */
            ao += a.bstr[i];
            bo += b.bstr[i];
            co += c.bstr[i];
            if (++idx[i] < bshape[i]) break;
            ao -= a.bstr[i] * bshape[i];
            bo -= b.bstr[i] * bshape[i];
            co -= c.bstr[i] * bshape[i];
            idx[i] = 0;
        }
    }
}

/* ---- matmul ---- */

/* t's matrix view for a product with batch shape bshape (nb dims): the last
 * two dims, or for a 1-D t a row (as_row: a 1-D left operand) or a column */
static mat mat_of(const farol_tensor *t, bool as_row, int nb, const int64_t *bshape) {
    mat m = {.data = farol_data(t)};
    int nd = t->ndim;
    if (nd == 1) {
        m.rows = as_row ? 1 : t->shape[0];
        m.cols = as_row ? t->shape[0] : 1;
        m.rs = as_row ? t->shape[0] : t->strides[0];
        m.cs = as_row ? t->strides[0] : 1;
    } else {
        m.rows = t->shape[nd - 2];
        m.cols = t->shape[nd - 1];
        m.rs = t->strides[nd - 2];
        m.cs = t->strides[nd - 1];
    }
    int tb = nd > 2 ? nd - 2 : 0; /* t's batch dims, right-aligned with bshape */
    for (int i = 0; i < nb; i++) {
        int ti = i - (nb - tb);
        m.bstr[i] = ti >= 0 && t->shape[ti] == bshape[i] && bshape[i] > 1 ? t->strides[ti] : 0;
    }
    return m;
}

/* the operand t as GEMM can take it: t itself (retained) or a contiguous copy */
static farol_tensor *gemm_ready(farol_tensor *t, bool as_row) {
    mat m = mat_of(t, as_row, 0, NULL);
    return mat_ok(&m) ? farol_retain(t) : farol_contig_raw(t);
}

/* a fresh row-major C for a product with batch shape bshape; shaped like
 * out (ndim, shape), whose batch dims are right-aligned with bshape and
 * whose dims of size 1 (or missing) are shared: products accumulate there */
static mat mat_out(farol_tensor *out, int64_t rows, int64_t cols, int nb, const int64_t *bshape) {
    mat m = {.data = farol_data(out), .rows = rows, .cols = cols, .rs = cols, .cs = 1};
    int64_t stride = rows * cols;
    int tb = out->ndim - 2 > 0 ? out->ndim - 2 : 0;
    for (int i = nb - 1; i >= 0; i--) {
        int ti = i - (nb - tb);
        int64_t size = ti >= 0 ? out->shape[ti] : 1;
        m.bstr[i] = size == bshape[i] && size > 1 ? stride : 0;
        stride *= size;
    }
    return m;
}

static bool too_big(const char *fn, int64_t M, int64_t N, int64_t K) {
    if (M <= INT_MAX && N <= INT_MAX && K <= INT_MAX) return false;
    farol_set_error("farol: %s: matrix dims %lld x %lld x %lld exceed what BLAS accepts", fn,
                    (long long)M, (long long)K, (long long)N);
    return true;
}

static int check_pair(const char *fn, const char *na, const farol_tensor *a, const char *nb,
                      const farol_tensor *b) {
    if (!a || !b) {
        farol_set_error("farol: %s: %s is NULL", fn, a ? nb : na);
        return -1;
    }
    if (farol_check_float(fn, na, a) < 0 || farol_check_float(fn, nb, b) < 0) return -1;
    if (a->dtype != b->dtype) {
        farol_set_error("farol: %s: %s is %s but %s is %s (convert one with to_dtype)", fn, na,
                        farol_dtype_name(a->dtype), nb, farol_dtype_name(b->dtype));
        return -1;
    }
    return 0;
}

farol_tensor *farol_matmul(farol_tensor *a, farol_tensor *b) {
    char sa[96], sb[96];
    if (check_pair("matmul", "a", a, "b", b) < 0) return NULL;
    farol_threads_adapt();
    if (a->ndim == 0 || b->ndim == 0) {
        farol_set_error("farol: matmul: both arguments need at least 1 dim, got %s and %s",
                        farol_shape_str(a->ndim, a->shape, sa, sizeof sa),
                        farol_shape_str(b->ndim, b->shape, sb, sizeof sb));
        return NULL;
    }
    int64_t M = a->ndim == 1 ? 1 : a->shape[a->ndim - 2], K = a->shape[a->ndim - 1];
    int64_t Kb = b->shape[b->ndim == 1 ? 0 : b->ndim - 2];
    int64_t N = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
    int nb, na_b = a->ndim > 2 ? a->ndim - 2 : 0, nb_b = b->ndim > 2 ? b->ndim - 2 : 0;
    int64_t bshape[FAROL_MAX_DIMS];
    if (K != Kb) {
        farol_set_error("farol: matmul: a %s and b %s do not match: a has %lld columns, b has "
                        "%lld rows",
                        farol_shape_str(a->ndim, a->shape, sa, sizeof sa),
                        farol_shape_str(b->ndim, b->shape, sb, sizeof sb), (long long)K,
                        (long long)Kb);
        return NULL;
    }
    if (farol_broadcast_shapes(na_b, a->shape, nb_b, b->shape, &nb, bshape) < 0) {
        farol_set_error("farol: matmul: the batch dims of a %s and b %s do not broadcast",
                        farol_shape_str(a->ndim, a->shape, sa, sizeof sa),
                        farol_shape_str(b->ndim, b->shape, sb, sizeof sb));
        return NULL;
    }
    if (too_big("matmul", M, N, K)) return NULL;
    /* out: bshape, then M unless a is 1-D, then N unless b is 1-D */
    int ond = nb;
    int64_t oshape[FAROL_MAX_DIMS + 2];
    memcpy(oshape, bshape, nb * sizeof *bshape);
    if (a->ndim > 1) oshape[ond++] = M;
    if (b->ndim > 1) oshape[ond++] = N;
    if (ond > FAROL_MAX_DIMS) {
        farol_set_error("farol: matmul: the result would have more than %d dims", FAROL_MAX_DIMS);
        return NULL;
    }
    if (farol_shape_empty(ond, oshape))
        return farol_record_empty(FAROL_OP_MATMUL, ond, oshape, a->dtype, 2, (farol_tensor *[]){a, b});
    farol_tensor *ac = gemm_ready(a, true), *bc = ac ? gemm_ready(b, false) : NULL;
    farol_tensor *out = bc ? farol_empty(ond, oshape, a->dtype) : NULL;
    if (!out) goto fail;
    mat c = {.data = farol_data(out), .rows = M, .cols = N, .rs = N, .cs = 1};
    farol_contiguous_strides(nb, bshape, c.bstr);
    for (int i = 0; i < nb; i++) c.bstr[i] = bshape[i] > 1 ? c.bstr[i] * M * N : 0;
    batched_gemm(a->dtype, nb, bshape, mat_of(ac, true, nb, bshape),
                 mat_of(bc, false, nb, bshape), c, out->storage->nbytes, 0);

    farol_tensor *ins[2] = {a, b};
    /* the operands as used: a copy made here is what backward reads */
    farol_op_params prm = {.matmul.nb = nb};
    memcpy(prm.matmul.batch, bshape, nb * sizeof *bshape);
    if (!(out = farol_record(FAROL_OP_MATMUL, out, 2, ins, FAROL_SAVE(ac, bc), &prm))) goto fail;
    farol_release(ac);
    farol_release(bc);
    return out;
fail:
    farol_release(ac);
    farol_release(bc);
    farol_release(out);
    return NULL;
}

/* dA = G @ B^T and dB = A^T @ G, each straight into a tensor shaped like
 * its input: batch dims the input broadcast are summed by accumulation */
int farol_matmul_backward(farol_node *nd, farol_tensor *gout, farol_tensor **gin) {
    farol_tensor *a = farol_saved(nd, 0), *b = farol_saved(nd, 1);
    if (!a || !b) return -1;
    farol_threads_adapt();
    int nb = nd->p.matmul.nb;
    int64_t bshape[FAROL_MAX_DIMS];
    memcpy(bshape, nd->p.matmul.batch, nb * sizeof *bshape);
    int64_t M = a->ndim == 1 ? 1 : a->shape[a->ndim - 2], K = a->shape[a->ndim - 1];
    int64_t N = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
    farol_tensor *g = farol_cast_raw(gout, a->dtype);
    if (!g) return -1;
    /* G laid out as (bshape, M, N), contiguous */
    mat gm = {.data = farol_data(g), .rows = M, .cols = N, .rs = N, .cs = 1};
    farol_contiguous_strides(nb, bshape, gm.bstr);
    for (int i = 0; i < nb; i++) gm.bstr[i] = bshape[i] > 1 ? gm.bstr[i] * M * N : 0;
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (!nd->inputs[k].need) continue;
        farol_tensor *in = k == 0 ? a : b;
        farol_tensor *d = farol_empty(in->ndim, in->shape, in->dtype);
        if (!d) {
            rc = -1;
            break;
        }
        mat am = mat_of(a, true, nb, bshape), bm = mat_of(b, false, nb, bshape);
        if (k == 0)
            batched_gemm(a->dtype, nb, bshape, gm, mat_t(bm), mat_out(d, M, K, nb, bshape),
                         d->storage->nbytes, 0);
        else
            batched_gemm(a->dtype, nb, bshape, mat_t(am), gm, mat_out(d, K, N, nb, bshape),
                         d->storage->nbytes, 0);
        gin[k] = d;
    }
    farol_release(g);
    return rc;
}

/* ---- linear ---- */

/* t (..., cols) as one matrix of rows: its leading dims folded into M */
static bool rows_of(const farol_tensor *t, mat *m) {
    int nd = t->ndim;
    *m = (mat){.data = farol_data(t), .rows = 1, .cols = t->shape[nd - 1],
               .rs = t->shape[nd - 1], .cs = t->strides[nd - 1]};
    if (nd > 1 && !collapse(nd - 2, t->shape, t->strides, t->shape[nd - 2], t->strides[nd - 2],
                            &m->rows, &m->rs))
        return false;
    return m->rows <= INT_MAX && mat_ok(m);
}

/* x (..., in), w (out, in), b (out) -> (..., out) = x @ w^T + b as one GEMM
 * over all leading dims, w passed transposed (no copy), b preset in C block
 * by block (farol_gemm_bias) */
farol_tensor *farol_linear(farol_tensor *x, farol_tensor *w, farol_tensor *b) {
    char s1[96], s2[96];
    if (check_pair("linear", "x", x, "w", w) < 0) return NULL;
    farol_threads_adapt();
    if (w->ndim != 2) {
        farol_set_error("farol: linear: weight must be 2-D (out_features, in_features), got %s",
                        farol_shape_str(w->ndim, w->shape, s1, sizeof s1));
        return NULL;
    }
    int64_t in = w->shape[1], outf = w->shape[0];
    if (x->ndim == 0) {
        farol_set_error("farol: linear: input must have at least 1 dim, got a 0-d tensor");
        return NULL;
    }
    if (x->shape[x->ndim - 1] != in) {
        farol_set_error("farol: linear: input has %lld features, weight expects %lld "
                        "(input %s, weight %s)",
                        (long long)x->shape[x->ndim - 1], (long long)in,
                        farol_shape_str(x->ndim, x->shape, s1, sizeof s1),
                        farol_shape_str(w->ndim, w->shape, s2, sizeof s2));
        return NULL;
    }
    if (b && check_pair("linear", "x", x, "b", b) < 0) return NULL;
    if (b && (b->ndim != 1 || b->shape[0] != outf)) {
        farol_set_error("farol: linear: bias has shape %s, expected [%lld] (the weight's "
                        "out_features)",
                        farol_shape_str(b->ndim, b->shape, s1, sizeof s1), (long long)outf);
        return NULL;
    }
    if (too_big("linear", 1, outf, in)) return NULL;
    int64_t eshape[FAROL_MAX_DIMS];
    memcpy(eshape, x->shape, (x->ndim - 1) * sizeof *eshape);
    eshape[x->ndim - 1] = outf;
    if (farol_shape_empty(x->ndim, eshape))
        return farol_record_empty(FAROL_OP_LINEAR, x->ndim, eshape, x->dtype, b ? 3 : 2,
                                  (farol_tensor *[]){x, w, b});
    mat xm, wm;
    farol_tensor *xc = farol_retain(x), *wc = farol_retain(w), *bc = NULL, *out = NULL;
    if (!rows_of(xc, &xm)) {
        farol_release(xc);
        xc = farol_contig_raw(x);
        if (!xc || !rows_of(xc, &xm)) {
            if (xc) farol_set_error("farol: linear: input has too many rows for BLAS");
            goto fail;
        }
    }
    wm = mat_t(mat_of(wc, false, 0, NULL));
    if (!mat_ok(&wm)) {
        farol_release(wc);
        if (!(wc = farol_contig_raw(w))) goto fail;
        wm = mat_t(mat_of(wc, false, 0, NULL));
    }
    int64_t oshape[FAROL_MAX_DIMS];
    memcpy(oshape, x->shape, (x->ndim - 1) * sizeof *oshape);
    oshape[x->ndim - 1] = outf;
    out = farol_empty(x->ndim, oshape, x->dtype);
    if (!out || (b && !(bc = farol_contig_raw(b)))) goto fail;
    /* the bias preset in C by each block's thread, then the product added */
    CBLAS_TRANSPOSE ta, tb;
    int64_t lda, ldb;
    blas_layout(xm.rows, xm.cols, xm.rs, xm.cs, &ta, &lda);
    blas_layout(wm.rows, wm.cols, wm.rs, wm.cs, &tb, &ldb);
    farol_gemm_bias(x->dtype, ta == CblasTrans, tb == CblasTrans, xm.rows, outf, in, xm.data, lda,
                    wm.data, ldb, bc ? farol_data(bc) : NULL, farol_data(out), outf);

    farol_tensor *ins[3] = {x, w, b};
    /* dx needs w only, dw x only: an attribution's frozen weights keep no x */
    if (!(out = farol_record(FAROL_OP_LINEAR, out, 3, ins,
                             FAROL_SAVE(farol_takes_grad(w) ? xc : NULL, farol_takes_grad(x) ? wc : NULL),
                             NULL)))
        goto fail;
    farol_release(xc);
    farol_release(wc);
    farol_release(bc);
    return out;
fail:
    farol_release(xc);
    farol_release(wc);
    farol_release(bc);
    farol_release(out);
    return NULL;
}

/* G: (R, out).  dx = G @ w, dw = G^T @ x, db = sum of G's rows; each only
 * when the tape asks for it (saliency never computes dw or db) */
int farol_linear_backward(farol_node *nd, farol_tensor *gout, farol_tensor **gin) {
    /* x is kept only when w takes a gradient, w only when x does */
    farol_tensor *x = NULL, *w = NULL;
    if (nd->saved[0] && !(x = farol_saved(nd, 0))) return -1;
    if (nd->saved[1] && !(w = farol_saved(nd, 1))) return -1;
    farol_threads_adapt();
    const farol_edge *ex = &nd->inputs[0], *ew = &nd->inputs[1];
    int64_t outf = ew->shape[0], in = ew->shape[1];
    farol_tensor *g = farol_cast_raw(gout, ex->dtype);
    if (!g) return -1;
    int64_t rows = farol_numel(g) / outf;
    mat gm = {.data = farol_data(g), .rows = rows, .cols = outf, .rs = outf, .cs = 1};
    int rc = 0;
    if (nd->inputs[0].need) {
        farol_tensor *dx = w ? farol_empty(ex->ndim, ex->shape, ex->dtype) : NULL;
        if (dx) {
            mat c = {.data = farol_data(dx), .rows = rows, .cols = in, .rs = in, .cs = 1};
            batched_gemm(ex->dtype, 0, NULL, gm, mat_of(w, false, 0, NULL), c,
                         dx->storage->nbytes, 0);
        }
        rc = (gin[0] = dx) ? 0 : -1;
    }
    if (rc == 0 && nd->inputs[1].need) {
        mat xm;
        farol_tensor *dw = x ? farol_empty(2, ew->shape, ew->dtype) : NULL;
        if (dw) {
            rows_of(x, &xm); /* x was made GEMM-ready by the forward */
            mat c = {.data = farol_data(dw), .rows = outf, .cols = in, .rs = in, .cs = 1};
            batched_gemm(ex->dtype, 0, NULL, mat_t(gm), xm, c, dw->storage->nbytes, 0);
        }
        rc = (gin[1] = dw) ? 0 : -1;
    }
    if (rc == 0 && nd->n_inputs > 2 && nd->inputs[2].need)
        rc = (gin[2] = farol_sum_to(g, 1, &outf)) ? 0 : -1;
    farol_release(g);
    return rc;
}
