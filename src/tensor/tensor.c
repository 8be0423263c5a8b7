/* Storage, views, creation, element access, copies and the strided loop. */
#include "internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>

/* float -> int64 as PyTorch truncates, with NaN as 0 and out-of-range values
 * saturated (a plain cast of those is undefined behaviour) */
static inline int64_t to_int64(double v) {
    if (v != v) return 0;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v;
}

size_t farol_dtype_size(farol_dtype dt) { return dt == FAROL_F32 ? 4 : 8; }

static const char *const dtype_names[FAROL_DTYPE_COUNT] = {"float32", "float64", "int64"};

const char *farol_dtype_name(farol_dtype dt) {
    return (unsigned)dt < FAROL_DTYPE_COUNT ? dtype_names[dt] : "?";
}

int farol_dtype_from_name(const char *name, farol_dtype *out) {
    for (int i = 0; i < FAROL_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_names[i]) == 0) { *out = (farol_dtype)i; return 0; }
    if (strcmp(name, "float") == 0) { *out = FAROL_F32; return 0; }
    if (strcmp(name, "double") == 0) { *out = FAROL_F64; return 0; }
    if (strcmp(name, "long") == 0) { *out = FAROL_I64; return 0; }
    return -1;
}

bool farol_is_floating(farol_dtype dt) { return dt == FAROL_F32 || dt == FAROL_F64; }

int64_t farol_numel(const farol_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

void farol_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

bool farol_is_contiguous(const farol_tensor *t) {
    if (farol_numel(t) == 0) return true;
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

const char *farol_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

bool farol_same_shape(const farol_tensor *a, const farol_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

int farol_norm_dim(const char *fn, int dim, int ndim) {
    int n = ndim > 0 ? ndim : 1;
    if (dim < -n || dim >= n) {
        farol_set_error("farol: %s: dim " FAROL_IX " out of range for a %d-d tensor", fn,
                        (long long)dim, ndim);
        return -1;
    }
    return dim < 0 ? dim + n : dim;
}

int farol_check_float(const char *fn, const char *arg, const farol_tensor *t) {
    if (farol_is_floating(t->dtype)) return 0;
    farol_set_error("farol: %s: %s must be a floating tensor (float32 or float64), got %s", fn,
                    arg, farol_dtype_name(t->dtype));
    return -1;
}

farol_dtype farol_result_dtype(const farol_tensor *a, const farol_tensor *b) {
    if (a->dtype == FAROL_F64 || b->dtype == FAROL_F64) return FAROL_F64;
    if (a->dtype == FAROL_I64 && b->dtype == FAROL_I64) return FAROL_I64;
    return FAROL_F32;
}

/* ---- lifetime ---- */

static farol_storage *storage_new(size_t nbytes) {
    farol_storage *s = farol_malloc(sizeof *s);
    if (!s) return NULL;
    s->data = farol_aligned_alloc(nbytes);
    if (!s->data) {
        farol_free(s);
        return NULL;
    }
    s->nbytes = nbytes;
    s->refcount = 1;
    s->version = 0;
    return s;
}

static void storage_release(farol_storage *s) {
    if (s && --s->refcount == 0) {
        farol_aligned_free(s->data);
        farol_free(s);
    }
}

farol_tensor *farol_retain(farol_tensor *t) {
    if (t) t->refcount++;
    return t;
}

/* set once by the tape (the same pointer every time), read here */
static _Atomic(const farol_tape_hooks *) tape_hooks;

void farol_tensor_set_tape_hooks(const farol_tape_hooks *h) {
    if (atomic_load_explicit(&tape_hooks, memory_order_acquire) != h)
        atomic_store_explicit(&tape_hooks, h, memory_order_release);
}

void farol_release(farol_tensor *t) {
    if (!t || --t->refcount > 0) return;
    if (t->node) atomic_load_explicit(&tape_hooks, memory_order_acquire)->release_node(t);
    farol_release(t->grad);
    storage_release(t->storage);
    farol_free(t);
}

static bool shape_ok(const char *fn, int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim < 0 || ndim > FAROL_MAX_DIMS) {
        farol_set_error("farol: %s: %d dims, at most %d are supported", fn, ndim, FAROL_MAX_DIMS);
        return false;
    }
    /* the product of max(size, 1) bounds the strides as well as the count */
    int64_t n = 1, span = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            farol_set_error("farol: %s: size %lld of dim " FAROL_IX " is negative", fn, (long long)shape[i],
                            (long long)i);
            return false;
        }
        if (__builtin_mul_overflow(span, shape[i] > 0 ? shape[i] : 1, &span) ||
            span > ((int64_t)1 << 40)) {
            farol_set_error("farol: %s: a tensor of that shape is too large", fn);
            return false;
        }
        n *= shape[i];
    }
    *numel = n;
    return true;
}

farol_tensor *farol_empty(int ndim, const int64_t *shape, farol_dtype dt) {
    int64_t numel;
    if (!shape_ok("empty", ndim, shape, &numel)) return NULL;
    farol_tensor *t = farol_calloc(1, sizeof *t);
    if (!t) goto oom;
    t->storage = storage_new((size_t)numel * farol_dtype_size(dt));
    if (!t->storage) {
        farol_free(t);
        goto oom;
    }
    t->refcount = 1;
    t->dtype = dt;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, ndim * sizeof *shape);
    farol_contiguous_strides(ndim, t->shape, t->strides);
    return t;
oom:
    farol_set_error("farol: out of memory allocating a tensor of %lld elements", (long long)numel);
    return NULL;
}

farol_tensor *farol_make_view(farol_tensor *t, int ndim, const int64_t *shape,
                              const int64_t *strides, int64_t offset) {
    farol_tensor *v = farol_calloc(1, sizeof *v);
    if (!v) {
        farol_set_error("farol: out of memory");
        return NULL;
    }
    v->refcount = 1;
    v->dtype = t->dtype;
    v->ndim = ndim;
    if (ndim) {
        memcpy(v->shape, shape, ndim * sizeof *shape);
        memcpy(v->strides, strides, ndim * sizeof *strides);
    }
    v->offset = offset;
    v->storage = t->storage;
    t->storage->refcount++;
    return v;
}

farol_tensor *farol_detach(farol_tensor *t) {
    return farol_make_view(t, t->ndim, t->shape, t->strides, t->offset);
}

farol_tensor *farol_zeros(int ndim, const int64_t *shape, farol_dtype dt) {
    farol_tensor *t = farol_empty(ndim, shape, dt);
    if (t) memset(t->storage->data, 0, t->storage->nbytes);
    return t;
}

static void fill_contig(farol_tensor *t, double v) {
    int64_t n = farol_numel(t);
    void *d = farol_data(t);
    switch (t->dtype) {
    case FAROL_F32: { float f = (float)v; float *p = d; for (int64_t i = 0; i < n; i++) p[i] = f; break; }
    case FAROL_F64: { double *p = d; for (int64_t i = 0; i < n; i++) p[i] = v; break; }
    default: { int64_t x = to_int64(v); int64_t *p = d; for (int64_t i = 0; i < n; i++) p[i] = x; break; }
    }
}

farol_tensor *farol_full(int ndim, const int64_t *shape, double value, farol_dtype dt) {
    farol_tensor *t = farol_empty(ndim, shape, dt);
    if (t) fill_contig(t, value);
    return t;
}

farol_tensor *farol_scalar(double value, farol_dtype dt) { return farol_full(0, NULL, value, dt); }

farol_tensor *farol_empty_like(const farol_tensor *t) { return farol_empty(t->ndim, t->shape, t->dtype); }
farol_tensor *farol_zeros_like(const farol_tensor *t) { return farol_zeros(t->ndim, t->shape, t->dtype); }

farol_tensor *farol_from_data(int ndim, const int64_t *shape, farol_dtype dt, const void *data) {
    farol_tensor *t = farol_empty(ndim, shape, dt);
    if (t) memcpy(t->storage->data, data, (size_t)farol_numel(t) * farol_dtype_size(dt));
    return t;
}

farol_tensor *farol_arange(double start, double end, double step, farol_dtype dt) {
    if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step)) {
        farol_set_error("farol: arange: step must be non-zero and bounds finite");
        return NULL;
    }
    double count = ceil((end - start) / step);
    if (count < 0) count = 0;
    if (count > 1e10) {
        farol_set_error("farol: arange: %g elements is too many", count);
        return NULL;
    }
    int64_t n = (int64_t)count;
    farol_tensor *t = farol_empty(1, &n, dt);
    if (!t) return NULL;
    for (int64_t i = 0; i < n; i++) farol_set(t, &i, start + (double)i * step);
    return t;
}

farol_tensor *farol_linspace(double start, double end, int64_t n, farol_dtype dt) {
    if (n < 0 || n > ((int64_t)1 << 34)) {
        farol_set_error("farol: linspace: n must be between 0 and 2^34, got %lld", (long long)n);
        return NULL;
    }
    farol_tensor *t = farol_empty(1, &n, dt);
    if (!t) return NULL;
    for (int64_t i = 0; i < n; i++)
        farol_set(t, &i, n == 1 ? start : start + (end - start) * (double)i / (double)(n - 1));
    return t;
}

farol_tensor *farol_eye(int64_t n, farol_dtype dt) {
    int64_t shape[2] = {n, n};
    farol_tensor *t = farol_zeros(2, shape, dt);
    if (!t) return NULL;
    for (int64_t i = 0; i < n; i++) {
        int64_t idx[2] = {i, i};
        farol_set(t, idx, 1);
    }
    return t;
}

/* ---- element access ---- */

static inline double load(const char *p, farol_dtype dt) {
    switch (dt) {
    case FAROL_F32: return *(const float *)p;
    case FAROL_F64: return *(const double *)p;
    default: return (double)*(const int64_t *)p;
    }
}

static inline void store(char *p, farol_dtype dt, double v) {
    switch (dt) {
    case FAROL_F32: *(float *)p = (float)v; break;
    case FAROL_F64: *(double *)p = v; break;
    default: *(int64_t *)p = to_int64(v); break;
    }
}

static char *element(const farol_tensor *t, const int64_t *index) {
    int64_t off = t->offset;
    for (int i = 0; i < t->ndim; i++) off += index[i] * t->strides[i];
    return (char *)t->storage->data + off * (int64_t)farol_dtype_size(t->dtype);
}

double farol_get(const farol_tensor *t, const int64_t *index) { return load(element(t, index), t->dtype); }

int farol_set(farol_tensor *t, const int64_t *index, double v) {
    store(element(t, index), t->dtype, v);
    return 0;
}

int64_t farol_get_i64(const farol_tensor *t, const int64_t *index) {
    if (t->dtype != FAROL_I64) return to_int64(farol_get(t, index));
    return *(const int64_t *)element(t, index);
}

double farol_item(const farol_tensor *t) { return load(farol_data(t), t->dtype); }

double farol_get_flat(const farol_tensor *t, int64_t k) {
    int64_t idx[FAROL_MAX_DIMS];
    for (int i = t->ndim - 1; i >= 0; i--) {
        int64_t s = t->shape[i] ? t->shape[i] : 1;
        idx[i] = k % s;
        k /= s;
    }
    return farol_get(t, idx);
}

/* ---- the strided loop ---- */

void farol_broadcast_strides(const farol_tensor *t, int ndim, const int64_t *out_shape,
                             int64_t *bstrides) {
    int lead = ndim - t->ndim;
    int64_t es = (int64_t)farol_dtype_size(t->dtype);
    for (int i = 0; i < ndim; i++) {
        int j = i - lead;
        bstrides[i] = (j < 0 || t->shape[j] == 1 || out_shape[i] == 1) ? 0 : t->strides[j] * es;
    }
}

void farol_loop(int ndim, const int64_t *shape, int nops, char **base,
                int64_t strides[][FAROL_MAX_DIMS], farol_row_fn fn, void *ctx) {
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) return;
    if (ndim == 0) {
        int64_t step[FAROL_MAX_OPERANDS] = {0};
        fn(ctx, 1, base, step);
        return;
    }
    /* merge adjacent dims that are contiguous for every operand, so most
     * loops become one long row */
    int64_t sh[FAROL_MAX_DIMS], st[FAROL_MAX_OPERANDS][FAROL_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 1) continue;
        bool merge = nd > 0;
        for (int k = 0; k < nops && merge; k++)
            merge = st[k][nd - 1] == strides[k][i] * shape[i];
        if (merge) {
            sh[nd - 1] *= shape[i];
            for (int k = 0; k < nops; k++) st[k][nd - 1] = strides[k][i];
        } else {
            sh[nd] = shape[i];
            for (int k = 0; k < nops; k++) st[k][nd] = strides[k][i];
            nd++;
        }
    }
    if (nd == 0) {
        int64_t step[FAROL_MAX_OPERANDS] = {0};
        fn(ctx, 1, base, step);
        return;
    }
    int64_t inner = sh[nd - 1], step[FAROL_MAX_OPERANDS];
    for (int k = 0; k < nops; k++) step[k] = st[k][nd - 1];
    int64_t rows = 1;
    for (int i = 0; i < nd - 1; i++) rows *= sh[i];
    int64_t idx[FAROL_MAX_DIMS] = {0};
    char *p[FAROL_MAX_OPERANDS];
    for (int64_t r = 0; r < rows; r++) {
        for (int k = 0; k < nops; k++) {
            int64_t off = 0;
            for (int i = 0; i < nd - 1; i++) off += idx[i] * st[k][i];
            p[k] = base[k] + off;
        }
        fn(ctx, inner, p, step);
        for (int i = nd - 2; i >= 0; i--) {
            if (++idx[i] < sh[i]) break;
            idx[i] = 0;
        }
    }
}

/* ---- copies ---- */

typedef struct { farol_dtype src, dst; } copy_ctx;

static void copy_row(void *vctx, int64_t n, char **p, const int64_t *step) {
    copy_ctx *c = vctx;
    char *d = p[0], *s = p[1];
    int64_t ds = step[0], ss = step[1];
    if (c->src == c->dst) {
        size_t es = farol_dtype_size(c->src);
        if (ds == (int64_t)es && ss == (int64_t)es) {
            memcpy(d, s, (size_t)n * es);
        } else if (es == 4) {
            for (int64_t i = 0; i < n; i++) *(float *)(d + i * ds) = *(const float *)(s + i * ss);
        } else {
            for (int64_t i = 0; i < n; i++) *(int64_t *)(d + i * ds) = *(const int64_t *)(s + i * ss);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) store(d + i * ds, c->dst, load(s + i * ss, c->src));
}

/* dst (given byte strides) <- src broadcast to dst_shape */
static void strided_copy(char *dst, farol_dtype ddt, int ndim, const int64_t *shape,
                         const int64_t *dst_bstrides, const farol_tensor *src) {
    int64_t strides[2][FAROL_MAX_DIMS];
    memcpy(strides[0], dst_bstrides, ndim * sizeof(int64_t));
    farol_broadcast_strides(src, ndim, shape, strides[1]);
    char *base[2] = {dst, (char *)farol_data(src)};
    copy_ctx c = {src->dtype, ddt};
    farol_loop(ndim, shape, 2, base, strides, copy_row, &c);
}

void farol_copy_to_buffer(const farol_tensor *src, void *dst, farol_dtype dt) {
    int64_t st[FAROL_MAX_DIMS];
    farol_contiguous_strides(src->ndim, src->shape, st);
    for (int i = 0; i < src->ndim; i++) st[i] *= (int64_t)farol_dtype_size(dt);
    strided_copy(dst, dt, src->ndim, src->shape, st, src);
}

farol_tensor *farol_cast_raw(farol_tensor *t, farol_dtype dt) {
    /* an empty t counts as contiguous whatever its strides: kernels get a
     * fresh one with the strides its shape implies */
    if (t->dtype == dt && farol_is_contiguous(t) && farol_numel(t) > 0) return farol_retain(t);
    farol_tensor *out = farol_empty(t->ndim, t->shape, dt);
    if (out) farol_copy_to_buffer(t, farol_data(out), dt);
    return out;
}

farol_tensor *farol_contig_raw(farol_tensor *t) { return farol_cast_raw(t, t->dtype); }

int farol_begin_inplace(const char *fn, farol_tensor *t) {
    const farol_tape_hooks *h = atomic_load_explicit(&tape_hooks, memory_order_acquire);
    if (t->requires_grad && h && h->grad_enabled()) {
        farol_set_error("farol: %s: cannot modify in place a tensor that requires a gradient "
                        "(use it inside farol.no_grad, or detach it)", fn);
        return -1;
    }
    t->storage->version++;
    return 0;
}

/* PyTorch refuses to write into a tensor whose elements share memory (an
 * expanded view: a stride 0 under a size above 1), since which of the
 * values written lands is unspecified; so does farol */
static int check_writable(const char *fn, const farol_tensor *t) {
    if (farol_numel(t) == 0) return 0;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] > 1 && t->strides[i] == 0) {
            char sh[96];
            farol_set_error("farol: %s: cannot write into a tensor whose elements share memory "
                            "(dim " FAROL_IX " of shape %s is expanded); clone() it first",
                            fn, (long long)i, farol_shape_str(t->ndim, t->shape, sh, sizeof sh));
            return -1;
        }
    return 0;
}

/* the first and last element offsets a view reaches in its storage */
static void view_span(const farol_tensor *t, int64_t *lo, int64_t *hi) {
    *lo = *hi = t->offset;
    for (int i = 0; i < t->ndim; i++) {
        int64_t d = (t->shape[i] - 1) * t->strides[i];
        if (d < 0) *lo += d;
        else *hi += d;
    }
}

/* can writing dst change what src reads? */
static bool may_overlap(const farol_tensor *dst, const farol_tensor *src) {
    if (dst->storage != src->storage || farol_numel(dst) == 0 || farol_numel(src) == 0) return false;
    int64_t dlo, dhi, slo, shi;
    view_span(dst, &dlo, &dhi);
    view_span(src, &slo, &shi);
    size_t ds = farol_dtype_size(dst->dtype), ss = farol_dtype_size(src->dtype);
    return dlo * (int64_t)ds < (shi + 1) * (int64_t)ss && slo * (int64_t)ss < (dhi + 1) * (int64_t)ds;
}

int farol_copy_(farol_tensor *dst, farol_tensor *src) {
    int nout;
    int64_t out[FAROL_MAX_DIMS];
    char a[96], b[96];
    if (farol_broadcast_shapes(dst->ndim, dst->shape, src->ndim, src->shape, &nout, out) < 0 ||
        nout != dst->ndim || memcmp(out, dst->shape, nout * sizeof *out) != 0) {
        farol_set_error("farol: copy_: source of shape %s does not broadcast to %s",
                        farol_shape_str(src->ndim, src->shape, a, sizeof a),
                        farol_shape_str(dst->ndim, dst->shape, b, sizeof b));
        return -1;
    }
    if (check_writable("copy_", dst) < 0 || farol_begin_inplace("copy_", dst) < 0) return -1;
    /* src may overlap dst (x:copy_(x:t()), shifted narrows): copy src to a
     * fresh buffer first */
    farol_tensor *tmp = NULL;
    if (may_overlap(dst, src)) {
        tmp = farol_empty(src->ndim, src->shape, src->dtype);
        if (!tmp) return -1;
        farol_copy_to_buffer(src, farol_data(tmp), src->dtype);
        src = tmp;
    }
    int64_t bs[FAROL_MAX_DIMS];
    for (int i = 0; i < dst->ndim; i++) bs[i] = dst->strides[i] * (int64_t)farol_dtype_size(dst->dtype);
    strided_copy(farol_data(dst), dst->dtype, dst->ndim, dst->shape, bs, src);
    farol_release(tmp);
    return 0;
}

int farol_fill_(farol_tensor *dst, double v) {
    if (check_writable("fill_", dst) < 0 || farol_begin_inplace("fill_", dst) < 0) return -1;
    if (farol_is_contiguous(dst)) {
        fill_contig(dst, v);
        return 0;
    }
    farol_tensor *s = farol_scalar(v, dst->dtype);
    if (!s) return -1;
    int64_t bs[FAROL_MAX_DIMS];
    for (int i = 0; i < dst->ndim; i++) bs[i] = dst->strides[i] * (int64_t)farol_dtype_size(dst->dtype);
    strided_copy(farol_data(dst), dst->dtype, dst->ndim, dst->shape, bs, s);
    farol_release(s);
    return 0;
}

int farol_broadcast_shapes(int na, const int64_t *a, int nb, const int64_t *b, int *nout,
                           int64_t *out) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - na), ib = i - (n - nb);
        int64_t sa = ia >= 0 ? a[ia] : 1, sb = ib >= 0 ? b[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) return -1;
        out[i] = sa == 1 ? sb : sa;
    }
    *nout = n;
    return 0;
}
