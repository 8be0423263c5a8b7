/* Arithmetic with NumPy broadcasting: add, sub, mul, div, pow (tensor and
 * scalar exponents), neg, where, comparisons and masked_fill, with their
 * backwards.
 *
 * Every kernel is a row function run by run_broadcast: a flat pass (in
 * parallel chunks) when each operand is contiguous and either the output's
 * size or a single element, else the strided farol_loop over the broadcast
 * shape.  Numbers arrive as 0-d tensors: they take the flat path with a zero
 * step, never a materialised broadcast copy. */
#include "internal.h"

#include <tgmath.h>

/* ---- dtypes, shapes and the loop runner ---- */

/* PyTorch's promotion with numbers: a 0-d operand does not widen a
 * dimensioned one of the same kind (float32 x + float64 2.5 stays float32);
 * otherwise farol_result_dtype decides. */
static farol_dtype binary_dtype(const farol_tensor *a, const farol_tensor *b)
{
    bool fa = farol_is_floating(a->dtype), fb = farol_is_floating(b->dtype);
    if (a->ndim == 0 && b->ndim > 0 && (fb || !fa))
        return b->dtype;
    if (b->ndim == 0 && a->ndim > 0 && (fa || !fb))
        return a->dtype;
    return farol_result_dtype(a, b);
}

/* broadcast shape of n operands; the error names fn and the shapes */
static int broadcast(const char *fn, int n, farol_tensor *const *ts, int *ndim, int64_t *shape)
{
    int nd = ts[0]->ndim;
    int64_t cur[FAROL_MAX_DIMS];
    memcpy(cur, ts[0]->shape, sizeof(int64_t) * nd);
    for (int k = 1; k < n; k++) {
        int nout;
        int64_t next[FAROL_MAX_DIMS];
        if (farol_broadcast_shapes(nd, cur, ts[k]->ndim, ts[k]->shape, &nout, next) < 0) {
            char s1[96], s2[96];
            farol_set_error("farol: %s: shapes %s and %s cannot be broadcast together", fn,
                            farol_shape_str(nd, cur, s1, sizeof s1),
                            farol_shape_str(ts[k]->ndim, ts[k]->shape, s2, sizeof s2));
            return -1;
        }
        nd = nout;
        memcpy(cur, next, sizeof(int64_t) * nd);
    }
    *ndim = nd;
    memcpy(shape, cur, sizeof(int64_t) * nd);
    return 0;
}

/* t itself (retained) when it has dtype dt, else a converted copy */
static farol_tensor *as_dtype(farol_tensor *t, farol_dtype dt)
{
    return t->dtype == dt ? farol_retain(t) : farol_cast_raw(t, dt);
}

/* a mask of dtype dt holding exactly 1 where m is nonzero, 0 elsewhere */
static farol_tensor *mask_as(farol_tensor *m, farol_dtype dt)
{
    if (m->dtype == dt)
        return farol_retain(m);
    farol_tensor *c = farol_contig_raw(m);
    farol_tensor *out = c ? farol_empty(m->ndim, m->shape, dt) : NULL;
    if (out) {
        int64_t n = farol_numel(c);
        const void *src = farol_data(c);
        void *dst = farol_data(out);
        for (int64_t i = 0; i < n; i++) {
            bool nz = c->dtype == FAROL_F32   ? ((const float *)src)[i] != 0
                      : c->dtype == FAROL_F64 ? ((const double *)src)[i] != 0
                                              : ((const int64_t *)src)[i] != 0;
            if (dt == FAROL_F32)
                ((float *)dst)[i] = nz;
            else if (dt == FAROL_F64)
                ((double *)dst)[i] = nz;
            else
                ((int64_t *)dst)[i] = nz;
        }
    }
    farol_release(c);
    return out;
}

/* out (fresh, contiguous) = fn(ins...) elementwise, ins broadcast to out.
 * cost: rough work per element, for the parallel threshold. */
static void run_broadcast(farol_row_fn fn, void *ctx, farol_tensor *out, int nin,
                          farol_tensor *const *ins, int64_t cost)
{
    int nops = nin + 1, nd = out->ndim;
    int64_t n = farol_numel(out);
    if (n == 0)
        return;
    char *base[FAROL_MAX_OPERANDS];
    int64_t step[FAROL_MAX_OPERANDS];
    bool flat = true;
    base[0] = farol_data(out);
    step[0] = (int64_t)farol_dtype_size(out->dtype);
    for (int k = 0; k < nin; k++) {
        int64_t m = farol_numel(ins[k]);
        base[k + 1] = farol_data(ins[k]);
        step[k + 1] = m == 1 ? 0 : (int64_t)farol_dtype_size(ins[k]->dtype);
        if (m != 1 && (m != n || !farol_is_contiguous(ins[k])))
            flat = false;
    }
    if (flat) {
        const int64_t chunk = 8192;
        int64_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for if (n * cost > FAROL_PAR_MIN) schedule(static)
        for (int64_t c = 0; c < nchunks; c++) {
            char *p[FAROL_MAX_OPERANDS];
            int64_t lo = c * chunk, len = n - lo < chunk ? n - lo : chunk;
            for (int k = 0; k < nops; k++)
                p[k] = base[k] + lo * step[k];
            fn(ctx, len, p, step);
        }
        return;
    }
    int64_t strides[FAROL_MAX_OPERANDS][FAROL_MAX_DIMS];
    farol_contiguous_strides(nd, out->shape, strides[0]);
    for (int d = 0; d < nd; d++)
        strides[0][d] *= step[0];
    for (int k = 0; k < nin; k++)
        farol_broadcast_strides(ins[k], nd, out->shape, strides[k + 1]);
    if (nd >= 2 && out->shape[0] > 1 && n * cost > FAROL_PAR_MIN) {
        /* split the outermost dim across threads, the rest strided */
        int64_t sub[FAROL_MAX_OPERANDS][FAROL_MAX_DIMS];
        for (int k = 0; k < nops; k++)
            memcpy(sub[k], strides[k] + 1, sizeof(int64_t) * (nd - 1));
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < out->shape[0]; i++) {
            char *p[FAROL_MAX_OPERANDS];
            for (int k = 0; k < nops; k++)
                p[k] = base[k] + i * strides[k][0];
            farol_loop(nd - 1, out->shape + 1, nops, p, sub, fn, ctx);
        }
        return;
    }
    farol_loop(nd, out->shape, nops, base, strides, fn, ctx);
}

/* ---- row kernels ---- */

/* the contiguous rows are vectorised even at -O2 */
#define SIMD _Pragma("omp simd")

/* o = EXPR(x, y); contiguous and one-side-scalar rows get their own loop so
 * the compiler vectorises them */
#define BIN_ROW(NAME, T, EXPR)                                                        \
    static void NAME(void *ctx, int64_t n, char **p, const int64_t *s)                \
    {                                                                                 \
        (void)ctx;                                                                    \
        const int64_t es = sizeof(T);                                                 \
        T *restrict o = (T *)p[0];                                                    \
        const T *restrict pa = (const T *)p[1], *restrict pb = (const T *)p[2];       \
        if (s[0] == es && s[1] == es && s[2] == es) {                                 \
            SIMD for (int64_t i = 0; i < n; i++) {                                    \
                T x = pa[i], y = pb[i];                                               \
                o[i] = (EXPR);                                                        \
            }                                                                         \
        } else if (s[0] == es && s[1] == es && s[2] == 0) {                           \
            const T y = *pb;                                                          \
            SIMD for (int64_t i = 0; i < n; i++) {                                    \
                T x = pa[i];                                                          \
                o[i] = (EXPR);                                                        \
            }                                                                         \
        } else if (s[0] == es && s[1] == 0 && s[2] == es) {                           \
            const T x = *pa;                                                          \
            SIMD for (int64_t i = 0; i < n; i++) {                                    \
                T y = pb[i];                                                          \
                o[i] = (EXPR);                                                        \
            }                                                                         \
        } else {                                                                      \
            for (int64_t i = 0; i < n; i++) {                                         \
                T x = *(const T *)(p[1] + i * s[1]), y = *(const T *)(p[2] + i * s[2]); \
                *(T *)(p[0] + i * s[0]) = (EXPR);                                     \
            }                                                                         \
        }                                                                             \
    }

/* int64 wraps on overflow (as PyTorch) instead of being undefined */
#define WRAP(e) ((int64_t)(e))
BIN_ROW(add_f32, float, x + y)
BIN_ROW(add_f64, double, x + y)
BIN_ROW(add_i64, int64_t, WRAP((uint64_t)x + (uint64_t)y))
BIN_ROW(sub_f32, float, x - y)
BIN_ROW(sub_f64, double, x - y)
BIN_ROW(sub_i64, int64_t, WRAP((uint64_t)x - (uint64_t)y))
BIN_ROW(mul_f32, float, x * y)
BIN_ROW(mul_f64, double, x * y)
BIN_ROW(mul_i64, int64_t, WRAP((uint64_t)x * (uint64_t)y))
BIN_ROW(div_f32, float, x / y)
BIN_ROW(div_f64, double, x / y)
BIN_ROW(pow_f32, float, pow(x, y))
BIN_ROW(pow_f64, double, pow(x, y))

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_POW, BIN_COUNT };
/* [kind][dtype]; NULL: computed in float32 (div) or refused (pow) */
static const farol_row_fn bin_rows[BIN_COUNT][FAROL_DTYPE_COUNT] = {
    [BIN_ADD] = {add_f32, add_f64, add_i64},
    [BIN_SUB] = {sub_f32, sub_f64, sub_i64},
    [BIN_MUL] = {mul_f32, mul_f64, mul_i64},
    [BIN_DIV] = {div_f32, div_f64, NULL},
    [BIN_POW] = {pow_f32, pow_f64, NULL},
};

/* o = EXPR(g, x, y) over four generic strided operands (backward kernels) */
#define TERN_ROW(NAME, T, EXPR)                                                       \
    static void NAME(void *ctx, int64_t n, char **p, const int64_t *s)                \
    {                                                                                 \
        (void)ctx;                                                                    \
        for (int64_t i = 0; i < n; i++) {                                             \
            T g = *(const T *)(p[1] + i * s[1]);                                      \
            T x = *(const T *)(p[2] + i * s[2]), y = *(const T *)(p[3] + i * s[3]);   \
            *(T *)(p[0] + i * s[0]) = (EXPR);                                         \
        }                                                                             \
    }

/* d(x/y)/dy = -x/y^2, as PyTorch: -g * x / (y * y) */
TERN_ROW(divb_f32, float, -g * x / (y * y))
TERN_ROW(divb_f64, double, -g * x / (y * y))
/* d(x^y)/dx = y x^(y-1), 0 where y == 0 (PyTorch) */
TERN_ROW(powa_f32, float, y == 0 ? 0 : g * (y * pow(x, y - 1)))
TERN_ROW(powa_f64, double, y == 0 ? 0 : g * (y * pow(x, y - 1)))
/* d(x^y)/dy = x^y log x, 0 where x == 0 and y >= 0 (PyTorch) */
TERN_ROW(powb_f32, float, x == 0 && y >= 0 ? 0 : g * (pow(x, y) * log(x)))
TERN_ROW(powb_f64, double, x == 0 && y >= 0 ? 0 : g * (pow(x, y) * log(x)))
/* where: o = c != 0 ? a : b (operands named g, x, y by the macro) */
TERN_ROW(where_f32, float, g != 0 ? x : y)
TERN_ROW(where_f64, double, g != 0 ? x : y)
TERN_ROW(where_i64, int64_t, g != 0 ? x : y)

enum { TERN_DIVB, TERN_POWA, TERN_POWB, TERN_WHERE, TERN_COUNT };
static const farol_row_fn tern_rows[TERN_COUNT][FAROL_DTYPE_COUNT] = {
    [TERN_DIVB] = {divb_f32, divb_f64, NULL},
    [TERN_POWA] = {powa_f32, powa_f64, NULL},
    [TERN_POWB] = {powb_f32, powb_f64, NULL},
    [TERN_WHERE] = {where_f32, where_f64, where_i64},
};

/* PyTorch's pow(tensor, number): exact shortcuts for the common exponents */
#define POWK(T, SQRT)                                                                 \
    static inline T powk_##T(T x, T q)                                                \
    {                                                                                 \
        if (q == 0) return 1;                                                         \
        if (q == 1) return x;                                                         \
        if (q == 2) return x * x;                                                     \
        if (q == 3) return x * x * x;                                                 \
        if (q == (T)0.5) return SQRT(x);                                              \
        if (q == (T)-0.5) return 1 / SQRT(x);                                         \
        if (q == -1) return 1 / x;                                                    \
        if (q == -2) return 1 / (x * x);                                              \
        return pow(x, q);                                                             \
    }
POWK(float, sqrtf)
POWK(double, sqrt)

/* unary rows over (o, x), ctx a const double *: x^p, neg */
#define UN_ROW(NAME, T, EXPR)                                                         \
    static void NAME(void *ctx, int64_t n, char **p, const int64_t *s)                \
    {                                                                                 \
        const T q = ctx ? (T) * (const double *)ctx : 0;                              \
        (void)q;                                                                      \
        if (s[0] == sizeof(T) && s[1] == sizeof(T)) {                                 \
            T *restrict o = (T *)p[0];                                                \
            const T *restrict px = (const T *)p[1];                                   \
            SIMD for (int64_t i = 0; i < n; i++) {                                    \
                T x = px[i];                                                          \
                o[i] = (EXPR);                                                        \
            }                                                                         \
        } else {                                                                      \
            for (int64_t i = 0; i < n; i++) {                                         \
                T x = *(const T *)(p[1] + i * s[1]);                                  \
                *(T *)(p[0] + i * s[0]) = (EXPR);                                     \
            }                                                                         \
        }                                                                             \
    }
UN_ROW(neg_f32, float, -x)
UN_ROW(neg_f64, double, -x)
UN_ROW(neg_i64, int64_t, WRAP(-(uint64_t)x))
UN_ROW(pows_f32, float, powk_float(x, q))
UN_ROW(pows_f64, double, powk_double(x, q))
static const farol_row_fn neg_rows[FAROL_DTYPE_COUNT] = {neg_f32, neg_f64, neg_i64};
static const farol_row_fn pows_rows[FAROL_DTYPE_COUNT] = {pows_f32, pows_f64, NULL};

/* d(x^p)/dx * g over (o, g, x), ctx the exponent p: g * (p * x^(p-1)) */
#define POWS_GRAD_ROW(NAME, T)                                                        \
    static void NAME(void *ctx, int64_t n, char **p, const int64_t *s)                \
    {                                                                                 \
        const T e = (T) * (const double *)ctx;                                        \
        for (int64_t i = 0; i < n; i++) {                                             \
            T g = *(const T *)(p[1] + i * s[1]), x = *(const T *)(p[2] + i * s[2]);   \
            *(T *)(p[0] + i * s[0]) = g * (e * powk_##T(x, e - 1));                   \
        }                                                                             \
    }
POWS_GRAD_ROW(powsg_f32, float)
POWS_GRAD_ROW(powsg_f64, double)

/* comparisons: o = (x OP y) as 1 or 0 in the output's floating dtype */
#define CMP_ROW(NAME, T, O)                                                           \
    static void NAME(void *ctx, int64_t n, char **p, const int64_t *s)                \
    {                                                                                 \
        const farol_cmp op = *(const farol_cmp *)ctx;                                 \
        for (int64_t i = 0; i < n; i++) {                                             \
            T x = *(const T *)(p[1] + i * s[1]), y = *(const T *)(p[2] + i * s[2]);   \
            bool r = op == FAROL_EQ   ? x == y                                        \
                     : op == FAROL_NE ? x != y                                        \
                     : op == FAROL_LT ? x < y                                         \
                     : op == FAROL_LE ? x <= y                                        \
                     : op == FAROL_GT ? x > y                                         \
                                      : x >= y;                                       \
            *(O *)(p[0] + i * s[0]) = r;                                              \
        }                                                                             \
    }
CMP_ROW(cmp_f32, float, float)
CMP_ROW(cmp_f64, double, double)
CMP_ROW(cmp_i64, int64_t, float)
static const farol_row_fn cmp_rows[FAROL_DTYPE_COUNT] = {cmp_f32, cmp_f64, cmp_i64};

/* ---- unrecorded forwards (also used by the backwards) ---- */

static farol_tensor *binary_raw(const char *fn, int kind, farol_tensor *a, farol_tensor *b)
{
    farol_dtype dt = binary_dtype(a, b);
    if (kind == BIN_DIV && dt == FAROL_I64)
        dt = FAROL_F32; /* true division, as PyTorch */
    if (!bin_rows[kind][dt]) {
        farol_set_error("farol: %s: int64 operands are not supported (convert to a float dtype)",
                        fn);
        return NULL;
    }
    int nd;
    int64_t shape[FAROL_MAX_DIMS];
    farol_tensor *ts[2] = {a, b};
    if (broadcast(fn, 2, ts, &nd, shape) < 0)
        return NULL;
    farol_tensor *ins[2] = {as_dtype(a, dt), NULL};
    ins[1] = ins[0] ? as_dtype(b, dt) : NULL;
    farol_tensor *out = ins[1] ? farol_empty(nd, shape, dt) : NULL;
    if (out)
        run_broadcast(bin_rows[kind][dt], NULL, out, 2, ins, kind == BIN_POW ? 16 : 1);
    farol_release(ins[0]);
    farol_release(ins[1]);
    return out;
}

/* out = kernel(t0, t1, t2) with the three broadcast, in dtype dt */
static farol_tensor *ternary_raw(const char *fn, int kind, farol_dtype dt, farol_tensor *t0,
                                 farol_tensor *t1, farol_tensor *t2)
{
    int nd;
    int64_t shape[FAROL_MAX_DIMS];
    farol_tensor *ts[3] = {t0, t1, t2};
    if (broadcast(fn, 3, ts, &nd, shape) < 0)
        return NULL;
    farol_tensor *ins[3] = {NULL, NULL, NULL};
    farol_tensor *out = NULL;
    ins[0] = kind == TERN_WHERE ? mask_as(t0, dt) : as_dtype(t0, dt);
    if (ins[0] && (ins[1] = as_dtype(t1, dt)) && (ins[2] = as_dtype(t2, dt)))
        out = farol_empty(nd, shape, dt);
    if (out)
        run_broadcast(tern_rows[kind][dt], NULL, out, 3, ins, kind == TERN_WHERE ? 1 : 16);
    for (int k = 0; k < 3; k++)
        farol_release(ins[k]);
    return out;
}

static farol_tensor *where_raw(farol_tensor *cond, farol_tensor *a, farol_tensor *b)
{
    return ternary_raw("where", TERN_WHERE, binary_dtype(a, b), cond, a, b);
}

/* out = row(x) elementwise, x's shape and dtype; ctx for the row */
static farol_tensor *unary_raw(farol_row_fn row, void *ctx, farol_tensor *x, int64_t cost)
{
    farol_tensor *out = farol_empty(x->ndim, x->shape, x->dtype);
    if (out)
        run_broadcast(row, ctx, out, 1, &x, cost);
    return out;
}

/* ---- backward helpers ---- */

/* g (consumed) summed over input k's broadcast dims, in input k's dtype */
static farol_tensor *to_input(farol_node *n, int k, farol_tensor *g)
{
    if (!g)
        return NULL;
    const farol_edge *e = &n->inputs[k];
    farol_tensor *r = farol_sum_to(g, e->ndim, e->shape);
    farol_release(g);
    if (r && r->dtype != e->dtype) {
        farol_tensor *c = farol_cast_raw(r, e->dtype);
        farol_release(r);
        r = c;
    }
    return r;
}

/* releases what was set in gin[0..n) and reports failure */
static int fail_grads(farol_tensor **gin, int n)
{
    for (int k = 0; k < n; k++) {
        farol_release(gin[k]);
        gin[k] = NULL;
    }
    return -1;
}

static bool wants(const farol_tensor *t)
{
    return farol_takes_grad(t);
}

static int null_args(const char *fn, int n, farol_tensor *const *ts)
{
    for (int k = 0; k < n; k++)
        if (!ts[k]) {
            farol_set_error("farol: %s: argument " FAROL_IX " is NULL", fn, (long long)k);
            return -1;
        }
    return 0;
}

/* ---- add, sub, mul, div ---- */

farol_tensor *farol_add(farol_tensor *a, farol_tensor *b)
{
    farol_tensor *ins[2] = {a, b};
    if (null_args("add", 2, ins) < 0)
        return NULL;
    farol_tensor *out = binary_raw("add", BIN_ADD, a, b);
    return farol_record(FAROL_OP_ADD, out, 2, ins, FAROL_NO_SAVE, NULL);
}

int farol_add_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    for (int k = 0; k < 2; k++)
        if (n->inputs[k].need && !(gin[k] = to_input(n, k, farol_retain(gout))))
            return fail_grads(gin, 2);
    return 0;
}

farol_tensor *farol_sub(farol_tensor *a, farol_tensor *b)
{
    farol_tensor *ins[2] = {a, b};
    if (null_args("sub", 2, ins) < 0)
        return NULL;
    farol_tensor *out = binary_raw("sub", BIN_SUB, a, b);
    return farol_record(FAROL_OP_SUB, out, 2, ins, FAROL_NO_SAVE, NULL);
}

int farol_sub_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    if (n->inputs[0].need && !(gin[0] = to_input(n, 0, farol_retain(gout))))
        return fail_grads(gin, 2);
    if (n->inputs[1].need) {
        /* reduce first: negating the reduced gradient is cheaper */
        farol_tensor *g = to_input(n, 1, farol_retain(gout));
        gin[1] = g ? unary_raw(neg_rows[g->dtype], NULL, g, 1) : NULL;
        farol_release(g);
        if (!gin[1])
            return fail_grads(gin, 2);
    }
    return 0;
}

farol_tensor *farol_mul(farol_tensor *a, farol_tensor *b)
{
    farol_tensor *ins[2] = {a, b};
    if (null_args("mul", 2, ins) < 0)
        return NULL;
    farol_tensor *out = binary_raw("mul", BIN_MUL, a, b);
    /* slot 0: a, for b's gradient; slot 1: b, for a's */
    return farol_record(FAROL_OP_MUL, out, 2, ins,
                        FAROL_SAVE(wants(b) ? a : NULL, wants(a) ? b : NULL), NULL);
}

int farol_mul_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    for (int k = 0; k < 2; k++) {
        if (!n->inputs[k].need)
            continue;
        farol_tensor *other = farol_saved(n, 1 - k);
        if (!other || !(gin[k] = to_input(n, k, binary_raw("mul", BIN_MUL, gout, other))))
            return fail_grads(gin, 2);
    }
    return 0;
}

farol_tensor *farol_div(farol_tensor *a, farol_tensor *b)
{
    farol_tensor *ins[2] = {a, b};
    if (null_args("div", 2, ins) < 0)
        return NULL;
    farol_tensor *out = binary_raw("div", BIN_DIV, a, b);
    return farol_record(FAROL_OP_DIV, out, 2, ins, FAROL_SAVE(wants(b) ? a : NULL, b), NULL);
}

int farol_div_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    farol_tensor *a = NULL, *b = farol_saved(n, 1);
    if (!b || (n->inputs[1].need && !(a = farol_saved(n, 0))))
        return -1;
    if (n->inputs[0].need && !(gin[0] = to_input(n, 0, binary_raw("div", BIN_DIV, gout, b))))
        return fail_grads(gin, 2);
    if (n->inputs[1].need &&
        !(gin[1] = to_input(n, 1, ternary_raw("div", TERN_DIVB, gout->dtype, gout, a, b))))
        return fail_grads(gin, 2);
    return 0;
}

/* ---- pow ---- */

farol_tensor *farol_pow(farol_tensor *a, farol_tensor *b)
{
    farol_tensor *ins[2] = {a, b};
    if (null_args("pow", 2, ins) < 0)
        return NULL;
    farol_tensor *out = binary_raw("pow", BIN_POW, a, b);
    return farol_record(FAROL_OP_POW, out, 2, ins, FAROL_SAVE(a, b), NULL);
}

int farol_pow_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    farol_tensor *a = farol_saved(n, 0), *b = a ? farol_saved(n, 1) : NULL;
    if (!b)
        return -1;
    static const int kinds[2] = {TERN_POWA, TERN_POWB};
    for (int k = 0; k < 2; k++)
        if (n->inputs[k].need &&
            !(gin[k] = to_input(n, k, ternary_raw("pow", kinds[k], gout->dtype, gout, a, b))))
            return fail_grads(gin, 2);
    return 0;
}

farol_tensor *farol_pow_scalar(farol_tensor *x, double p)
{
    if (null_args("pow", 1, &x) < 0 || farol_check_float("pow", "x", x) < 0)
        return NULL;
    farol_tensor *out = unary_raw(pows_rows[x->dtype], &p, x, 16);
    return farol_record(FAROL_OP_POW_SCALAR, out, 1, &x, FAROL_SAVE(x),
                        &(farol_op_params){.pow = {p}});
}

int farol_pow_scalar_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    if (!n->inputs[0].need)
        return 0;
    farol_tensor *x = farol_saved(n, 0);
    if (!x)
        return -1;
    double p = n->p.pow.p;
    if (p == 0) { /* PyTorch: exactly zero, even where x^-1 is infinite */
        gin[0] = farol_zeros(x->ndim, x->shape, x->dtype);
        return gin[0] ? 0 : -1;
    }
    farol_row_fn row = x->dtype == FAROL_F32 ? powsg_f32 : powsg_f64;
    farol_tensor *ins[2] = {as_dtype(gout, x->dtype), x};
    farol_tensor *g = ins[0] ? farol_empty(x->ndim, x->shape, x->dtype) : NULL;
    if (g)
        run_broadcast(row, &p, g, 2, ins, 16);
    farol_release(ins[0]);
    gin[0] = g;
    return g ? 0 : -1;
}

/* ---- neg ---- */

farol_tensor *farol_neg(farol_tensor *x)
{
    if (null_args("neg", 1, &x) < 0)
        return NULL;
    farol_tensor *out = unary_raw(neg_rows[x->dtype], NULL, x, 1);
    return farol_record(FAROL_OP_NEG, out, 1, &x, FAROL_NO_SAVE, NULL);
}

int farol_neg_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    if (!n->inputs[0].need)
        return 0;
    farol_tensor *g = to_input(n, 0, farol_retain(gout));
    gin[0] = g ? unary_raw(neg_rows[g->dtype], NULL, g, 1) : NULL;
    farol_release(g);
    return gin[0] ? 0 : -1;
}

/* ---- where, masked_fill ---- */

/* Only a and b are inputs on the tape: cond is a mask and gets no gradient. */
farol_tensor *farol_where(farol_tensor *cond, farol_tensor *a, farol_tensor *b)
{
    farol_tensor *args[3] = {cond, a, b};
    if (null_args("where", 3, args) < 0)
        return NULL;
    farol_tensor *out = where_raw(cond, a, b);
    return farol_record(FAROL_OP_WHERE, out, 2, args + 1, FAROL_SAVE(cond), NULL);
}

int farol_where_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    farol_tensor *cond = farol_saved(n, 0);
    farol_tensor *zero = cond ? farol_scalar(0, gout->dtype) : NULL;
    if (!zero)
        return -1;
    if (n->inputs[0].need && !(gin[0] = to_input(n, 0, where_raw(cond, gout, zero))))
        goto fail;
    if (n->inputs[1].need && !(gin[1] = to_input(n, 1, where_raw(cond, zero, gout))))
        goto fail;
    farol_release(zero);
    return 0;
fail:
    farol_release(zero);
    return fail_grads(gin, 2);
}

farol_tensor *farol_masked_fill(farol_tensor *x, farol_tensor *mask, double v)
{
    farol_tensor *args[2] = {x, mask};
    if (null_args("masked_fill", 2, args) < 0)
        return NULL;
    int nd;
    int64_t shape[FAROL_MAX_DIMS];
    if (broadcast("masked_fill", 2, args, &nd, shape) < 0)
        return NULL;
    if (nd != x->ndim || memcmp(shape, x->shape, sizeof(int64_t) * nd) != 0) {
        char s1[96], s2[96];
        farol_set_error("farol: masked_fill: mask of shape %s does not broadcast to x of shape %s",
                        farol_shape_str(mask->ndim, mask->shape, s1, sizeof s1),
                        farol_shape_str(x->ndim, x->shape, s2, sizeof s2));
        return NULL;
    }
    if (x->dtype == FAROL_I64 && !(fabs(v) < 9.2e18 && v == floor(v))) {
        farol_set_error("farol: masked_fill: value %g does not fit an int64 tensor", v);
        return NULL;
    }
    farol_tensor *value = farol_scalar(v, x->dtype);
    farol_tensor *out = value ? where_raw(mask, value, x) : NULL;
    farol_release(value);
    return farol_record(FAROL_OP_MASKED_FILL, out, 1, &x, FAROL_SAVE(mask), NULL);
}

/* the gradient of x is zero where it was filled */
int farol_masked_fill_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    if (!n->inputs[0].need)
        return 0;
    farol_tensor *mask = farol_saved(n, 0);
    farol_tensor *zero = mask ? farol_scalar(0, gout->dtype) : NULL;
    if (!zero)
        return -1;
    gin[0] = to_input(n, 0, where_raw(mask, zero, gout));
    farol_release(zero);
    return gin[0] ? 0 : -1;
}

/* ---- comparisons ---- */

farol_tensor *farol_compare(farol_tensor *a, farol_tensor *b, farol_cmp op)
{
    farol_tensor *args[2] = {a, b};
    if (null_args("compare", 2, args) < 0)
        return NULL;
    if ((int)op < FAROL_EQ || op > FAROL_GE) {
        farol_set_error("farol: compare: unknown comparison %d", (int)op);
        return NULL;
    }
    farol_dtype dt = binary_dtype(a, b);
    int nd;
    int64_t shape[FAROL_MAX_DIMS];
    if (broadcast("compare", 2, args, &nd, shape) < 0)
        return NULL;
    farol_tensor *ins[2] = {as_dtype(a, dt), NULL};
    ins[1] = ins[0] ? as_dtype(b, dt) : NULL;
    farol_tensor *out = ins[1] ? farol_empty(nd, shape, dt == FAROL_I64 ? FAROL_F32 : dt) : NULL;
    if (out)
        run_broadcast(cmp_rows[dt], &op, out, 2, ins, 1);
    farol_release(ins[0]);
    farol_release(ins[1]);
    return out;
}
