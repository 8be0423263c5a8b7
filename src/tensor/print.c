/* tostring: PyTorch-like text with shape and dtype, large tensors summarised. */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#define SUMMARY_THRESHOLD 1000 /* more elements than this: show edges only */
#define EDGE 3

typedef struct { char *s; size_t len, cap; bool oom; } strbuf;

static void put(strbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 256) + (size_t)n;
        char *s = farol_realloc(b->s, cap);
        if (!s) { b->oom = true; return; }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

typedef struct {
    const farol_tensor *t;
    bool summarise, sci;
    int width, prec;
} printer;

static void put_number(strbuf *b, const printer *p, double v) {
    if (p->t->dtype == FAROL_I64) /* widths only: elements print exactly in put_rows */
        put(b, "%*lld", p->width, (long long)(v > 9e18 ? 9e18 : v < -9e18 ? -9e18 : v));
    else if (isnan(v)) put(b, "%*s", p->width, "nan");
    else if (isinf(v)) put(b, "%*s", p->width, v > 0 ? "inf" : "-inf");
    else if (p->sci) put(b, "%*.*e", p->width, p->prec, v);
    else if (p->prec == 0) put(b, "%*.0f.", p->width - 1, v);
    else put(b, "%*.*f", p->width, p->prec, v);
}

/* visit the elements that will be printed */
static void scan(const farol_tensor *t, int dim, int64_t *idx, bool summarise,
                 void (*fn)(void *, double), void *ctx) {
    if (dim == t->ndim) {
        fn(ctx, farol_get(t, idx));
        return;
    }
    int64_t n = t->shape[dim];
    for (int64_t i = 0; i < n; i++) {
        if (summarise && n > 2 * EDGE && i == EDGE) i = n - EDGE;
        idx[dim] = i;
        scan(t, dim + 1, idx, summarise, fn, ctx);
    }
}

typedef struct { double maxabs, minabs, lo, hi; bool all_int, nonfinite; } stats;

static void collect(void *ctx, double v) {
    stats *s = ctx;
    if (!isfinite(v)) { s->nonfinite = true; return; }
    double a = fabs(v);
    if (a > s->maxabs) s->maxabs = a;
    if (a > 0 && a < s->minabs) s->minabs = a;
    if (v < s->lo) s->lo = v;
    if (v > s->hi) s->hi = v;
    if (v != floor(v)) s->all_int = false;
}

static void put_rows(strbuf *b, const printer *p, int dim, int64_t *idx) {
    const farol_tensor *t = p->t;
    if (dim == t->ndim) {
        if (t->dtype == FAROL_I64) put(b, "%*lld", p->width, (long long)farol_get_i64(t, idx));
        else put_number(b, p, farol_get(t, idx));
        return;
    }
    put(b, "[");
    int64_t n = t->shape[dim];
    for (int64_t i = 0; i < n; i++) {
        if (i > 0) {
            put(b, ",");
            if (dim == t->ndim - 1) put(b, " ");
            else {
                for (int k = 0; k < t->ndim - dim - 1; k++) put(b, "\n");
                put(b, "%*s", 7 + dim + 1, "");
            }
        }
        if (p->summarise && n > 2 * EDGE && i == EDGE) {
            put(b, "...");
            i = n - EDGE - 1;
            continue;
        }
        idx[dim] = i;
        put_rows(b, p, dim + 1, idx);
    }
    put(b, "]");
}

char *farol_tostring(const farol_tensor *t) {
    strbuf b = {0};
    int64_t idx[FAROL_MAX_DIMS] = {0};
    printer p = {.t = t, .summarise = farol_numel(t) > SUMMARY_THRESHOLD, .width = 1, .prec = 4};
    stats s = {0, INFINITY, INFINITY, -INFINITY, true, false};
    if (farol_numel(t) > 0) scan(t, 0, idx, p.summarise, collect, &s);
    if (t->dtype != FAROL_I64) {
        p.sci = s.maxabs >= 1e8 || (s.minabs < 1e-4 && s.minabs != INFINITY && !s.all_int);
        if (s.all_int && s.maxabs < 1e8) p.prec = 0;  /* whole numbers print as "3." */
    }
    /* width: the widest of the extremes as printed */
    strbuf w = {0};
    double extremes[2] = {s.lo, s.hi};
    for (int i = 0; i < 2 && s.lo <= s.hi; i++) {
        w.len = 0;
        put_number(&w, &p, extremes[i]);
        if ((int)w.len > p.width) p.width = (int)w.len;
    }
    if (s.nonfinite && p.width < 4) p.width = 4;
    farol_free(w.s);
    put(&b, "tensor(");
    if (farol_numel(t) == 0) put(&b, "[]");  /* however large the other dims */
    else put_rows(&b, &p, 0, idx);
    char sh[128];
    put(&b, ", shape=%s, dtype=%s", farol_shape_str(t->ndim, t->shape, sh, sizeof sh),
        farol_dtype_name(t->dtype));
    if (t->requires_grad) put(&b, ", requires_grad=true");
    put(&b, ")");
    /* the caller frees the result with free(): a plain copy of the buffer,
     * which went through farol's counting allocator */
    char *out = b.oom ? NULL : malloc(b.len + 1);
    if (out) memcpy(out, b.s, b.len + 1);
    else farol_set_error("farol: tostring: out of memory");
    farol_free(b.s);
    return out;
}
