/* Pointwise functions: farol_unary (abs exp log sqrt rsqrt sin cos tanh
 * sigmoid relu gelu silu softplus sign relu6 hardswish hardsigmoid), leaky_relu, elu, clamp, and their
 * backwards, with PyTorch's values at the kinks (see tests/fixtures/CASES.md).
 *
 * Kernels run over contiguous memory (a strided input is copied first), one
 * loop per op so each vectorises, in parallel above FAROL_PAR_MIN (sooner
 * for transcendental functions).  They are written once as macros over the
 * element type T; <tgmath.h> picks expf for float and exp for double, so the
 * float32 path never converts through double. */
#include "internal.h"

#include <tgmath.h>
#if FAROL_HAVE_ISA_VARIANTS
#include <immintrin.h>
#endif

static const char *const unary_names[FAROL_UNARY_COUNT] = {
#define X_NAME(ID, name) [FAROL_##ID] = #name,
    FAROL_UNARY_LIST(X_NAME)
#undef X_NAME
};

/* backward is cheaper from the output for these; sign saves nothing, relu
 * a mask (relu_recorded) */
static const bool saves_output[FAROL_UNARY_COUNT] = {
    [FAROL_EXP] = true,  [FAROL_SQRT] = true, [FAROL_RSQRT] = true,
    [FAROL_TANH] = true, [FAROL_SIGMOID] = true, [FAROL_RELU] = true,
};

const char *farol_unary_name(farol_unary_op op)
{
    return (unsigned)op < FAROL_UNARY_COUNT ? unary_names[op] : "unknown";
}

/* Loops over i in [0, n) in chunks: threads take chunks, each chunk a
 * vectorised loop.  CHEAP is for a few flops per element, COSTLY for a libm
 * call; both expect `n`, `cheap` and `costly` in scope. */
#define CHUNK 4096
#define CHUNKED(stmt)                                                                 \
    for (int64_t c = 0; c < n; c += CHUNK) {                                          \
        const int64_t end = n - c < CHUNK ? n : c + CHUNK;                            \
        _Pragma("omp simd")                                                           \
        for (int64_t i = c; i < end; i++) { stmt; }                                   \
    }
#define CHEAP(stmt)                                                                   \
    do {                                                                              \
        _Pragma("omp parallel for if (cheap) schedule(static)")                       \
        CHUNKED(stmt)                                                                 \
    } while (0)
#define COSTLY(stmt)                                                                  \
    do {                                                                              \
        _Pragma("omp parallel for if (costly) schedule(static)")                      \
        CHUNKED(stmt)                                                                 \
    } while (0)
#define PAR_FLAGS                                                                     \
    const bool cheap = n > FAROL_PAR_MIN, costly = n > FAROL_PAR_MIN / 16;            \
    (void)cheap, (void)costly

/* GELU's constants: 1/sqrt(2) and 1/sqrt(2 pi) */
#define GELU_ALPHA 0.70710678118654752440
#define GELU_BETA 0.39894228040143267794

/* kinds of the parameterised functions */
enum { PW_LEAKY_RELU, PW_ELU, PW_CLAMP };

/* x: (n) -> o: (n); and the backwards gi = g * f'(saved), saved being the
 * input or, for saves_output ops, the output (here `x` or `y`). */
#define POINTWISE_KERNELS(T, SFX)                                                     \
    static void unary_fwd_##SFX(int op, T *restrict o, const T *restrict x, int64_t n)  \
    {                                                                                 \
        PAR_FLAGS;                                                                    \
        switch (op) {                                                                 \
        case FAROL_ABS: CHEAP(o[i] = fabs(x[i])); break;                              \
        case FAROL_EXP: COSTLY(o[i] = exp(x[i])); break;                              \
        case FAROL_LOG: COSTLY(o[i] = log(x[i])); break;                              \
        case FAROL_SQRT: CHEAP(o[i] = sqrt(x[i])); break;                             \
        case FAROL_RSQRT: CHEAP(o[i] = 1 / sqrt(x[i])); break;                        \
        case FAROL_SIN: COSTLY(o[i] = sin(x[i])); break;                              \
        case FAROL_COS: COSTLY(o[i] = cos(x[i])); break;                              \
        case FAROL_TANH: COSTLY(o[i] = tanh(x[i])); break;                            \
        case FAROL_SIGMOID: /* exp of -|x| only: no overflow for large |x| */        \
            COSTLY(T e = exp(-fabs(x[i])); o[i] = x[i] >= 0 ? 1 / (1 + e) : e / (1 + e)); \
            break;                                                                    \
        case FAROL_RELU: /* NaN passes through, as PyTorch */                        \
            CHEAP(o[i] = x[i] < 0 ? 0 : x[i]);                                        \
            break;                                                                    \
        case FAROL_GELU:                                                              \
            COSTLY(o[i] = x[i] * (T)0.5 * (1 + erf(x[i] * (T)GELU_ALPHA)));           \
            break;                                                                    \
        case FAROL_SILU: COSTLY(o[i] = x[i] / (1 + exp(-x[i]))); break;               \
        case FAROL_SOFTPLUS: /* beta 1, threshold 20 */                              \
            COSTLY(o[i] = x[i] > 20 ? x[i] : log1p(exp(x[i])));                       \
            break;                                                                    \
        case FAROL_SIGN: CHEAP(o[i] = (T)((0 < x[i]) - (x[i] < 0))); break;           \
        case FAROL_RELU6: /* hardtanh(x, 0, 6) */                                    \
            CHEAP(T v = x[i] < 0 ? 0 : x[i]; o[i] = v > 6 ? 6 : v);                   \
            break;                                                                    \
        case FAROL_HARDSWISH:                                                         \
            CHEAP(T v = x[i] + 3 < 0 ? 0 : x[i] + 3; o[i] = x[i] * (v > 6 ? 6 : v) / 6); \
            break;                                                                    \
        case FAROL_HARDSIGMOID:                                                       \
            CHEAP(T v = x[i] + 3 < 0 ? 0 : x[i] + 3; o[i] = (v > 6 ? 6 : v) / 6);     \
            break;                                                                    \
        }                                                                             \
    }                                                                                 \
                                                                                      \
    static void unary_bwd_##SFX(int op, T *restrict gi, const T *restrict g,          \
                                const T *restrict s, int64_t n)                       \
    {                                                                                 \
        PAR_FLAGS;                                                                    \
        switch (op) {                                                                 \
        case FAROL_ABS: /* sign(0) = 0 */                                            \
            CHEAP(gi[i] = g[i] * (T)((0 < s[i]) - (s[i] < 0)));                       \
            break;                                                                    \
        case FAROL_EXP: CHEAP(gi[i] = g[i] * s[i]); break;                            \
        case FAROL_LOG: CHEAP(gi[i] = g[i] / s[i]); break;                            \
        case FAROL_SQRT: CHEAP(gi[i] = g[i] / (2 * s[i])); break;                     \
        case FAROL_RSQRT: CHEAP(gi[i] = (T)-0.5 * g[i] * (s[i] * s[i] * s[i])); break; \
        case FAROL_SIN: COSTLY(gi[i] = g[i] * cos(s[i])); break;                      \
        case FAROL_COS: COSTLY(gi[i] = g[i] * -sin(s[i])); break;                     \
        case FAROL_TANH: CHEAP(gi[i] = g[i] * (1 - s[i] * s[i])); break;              \
        case FAROL_SIGMOID: CHEAP(gi[i] = g[i] * (1 - s[i]) * s[i]); break;           \
        case FAROL_RELU: /* relu'(0) = 0 */                                          \
            CHEAP(gi[i] = s[i] <= 0 ? 0 : g[i]);                                      \
            break;                                                                    \
        case FAROL_GELU:                                                              \
            COSTLY(T x = s[i]; T cdf = (T)0.5 * (1 + erf(x * (T)GELU_ALPHA));         \
                   T pdf = (T)GELU_BETA * exp(x * x * (T)-0.5);                       \
                   gi[i] = g[i] * (cdf + x * pdf));                                   \
            break;                                                                    \
        case FAROL_SILU:                                                              \
            COSTLY(T x = s[i]; T sg = 1 / (1 + exp(-x));                              \
                   gi[i] = g[i] * sg * (1 + x * (1 - sg)));                           \
            break;                                                                    \
        case FAROL_SOFTPLUS: /* exactly g above the threshold */                     \
            COSTLY(T z = exp(s[i]); gi[i] = s[i] > 20 ? g[i] : g[i] * z / (z + 1));   \
            break;                                                                    \
        case FAROL_SIGN: CHEAP(gi[i] = 0); break;                                     \
        /* PyTorch's corners (its vectorised CPU kernels): relu6 and         \
         * hardsigmoid are flat at theirs (unlike clamp); hardswish has slope   \
         * -0.5 at -3 and 1 at 3; hardsigmoid's 1/6 is a float constant */      \
        case FAROL_RELU6: CHEAP(gi[i] = s[i] <= 0 || s[i] >= 6 ? 0 : g[i]); break;    \
        case FAROL_HARDSWISH:                                                         \
            CHEAP(gi[i] = s[i] < -3 ? 0 : s[i] < 3 ? g[i] * (s[i] / 3 + (T)0.5) : g[i]); \
            break;                                                                    \
        case FAROL_HARDSIGMOID:                                                       \
            CHEAP(gi[i] = s[i] > -3 && s[i] < 3 ? g[i] * (T)(1.0f / 6.0f) : 0);       \
            break;                                                                    \
        }                                                                             \
    }                                                                                 \
                                                                                      \
    static void param_fwd_##SFX(int kind, const double *prm, T *restrict o,           \
                                const T *restrict x, int64_t n)                       \
    {                                                                                 \
        PAR_FLAGS;                                                                    \
        const T a = (T)prm[0], b = (T)prm[1];                                         \
        switch (kind) {                                                               \
        case PW_LEAKY_RELU: CHEAP(o[i] = x[i] > 0 ? x[i] : x[i] * a); break;          \
        case PW_ELU: COSTLY(o[i] = x[i] <= 0 ? expm1(x[i]) * a : x[i]); break;        \
        case PW_CLAMP: /* min(max(x, lo), hi), NaN passes through */                 \
            CHEAP(T v = x[i] < a ? a : x[i]; o[i] = v > b ? b : v);                   \
            break;                                                                    \
        }                                                                             \
    }                                                                                 \
                                                                                      \
    static void param_bwd_##SFX(int kind, const double *prm, T *restrict gi,          \
                                const T *restrict g, const T *restrict x, int64_t n)  \
    {                                                                                 \
        PAR_FLAGS;                                                                    \
        const T a = (T)prm[0], b = (T)prm[1];                                         \
        switch (kind) {                                                               \
        case PW_LEAKY_RELU: /* the negative slope at exactly 0 */                    \
            CHEAP(gi[i] = x[i] > 0 ? g[i] : g[i] * a);                                \
            break;                                                                    \
        case PW_ELU: COSTLY(gi[i] = x[i] <= 0 ? g[i] * a * exp(x[i]) : g[i]); break;  \
        case PW_CLAMP: /* inclusive bounds pass the gradient */                      \
            CHEAP(gi[i] = x[i] >= a && x[i] <= b ? g[i] : 0);                         \
            break;                                                                    \
        }                                                                             \
    }

POINTWISE_KERNELS(float, f32)
POINTWISE_KERNELS(double, f64)
#if FAROL_HAVE_ISA_VARIANTS /* the same kernels for AVX2 and AVX-512, chosen at run time */
FAROL_ISA_BEGIN_AVX2
POINTWISE_KERNELS(float, f32_avx2)
POINTWISE_KERNELS(double, f64_avx2)
FAROL_ISA_END
FAROL_ISA_BEGIN_AVX512
POINTWISE_KERNELS(float, f32_avx512)
POINTWISE_KERNELS(double, f64_avx512)
FAROL_ISA_END
#endif

/* relu keeping its mask for backward, one bit per element: bit i % 8 of
 * byte i / 8 is set where the gradient passes (x > 0, or NaN), the rule of
 * unary_bwd's FAROL_RELU.  Chunks of CHUNK elements (a multiple of 16)
 * never share a byte between threads. */
static inline bool relu_passes_f32(float v) { return !(v <= 0); }
static inline bool relu_passes_f64(double v) { return !(v <= 0); }
#define RELU_BITS_TAIL(T, SFX)                                                        \
    static void relu_bits_fwd_tail_##SFX(T *restrict o, uint8_t *restrict m,          \
                                         const T *restrict x, int64_t i, int64_t end) \
    {                                                                                 \
        for (; i < end; i += 8) {                                                     \
            uint8_t v = 0;                                                            \
            for (int64_t j = 0; j < 8 && i + j < end; j++) {                          \
                o[i + j] = x[i + j] < 0 ? 0 : x[i + j];                               \
                v |= (uint8_t)(relu_passes_##SFX(x[i + j]) << j);                     \
            }                                                                         \
            m[i / 8] = v;                                                             \
        }                                                                             \
    }
RELU_BITS_TAIL(float, f32)
RELU_BITS_TAIL(double, f64)

/* STEP elements (a multiple of 8, dividing CHUNK) per iteration: FWD(i)
 * writes o and the mask bytes of elements i.., BWD(i) gi; the generic loops
 * take a chunk's last elements.  With AVX2 and AVX-512 a compare gives the
 * mask bits at once; the portable kernels build each byte in a loop. */
#define RELU_BITS_VEC(T, SFX, PASS, STEP, FWD, BWD)                                   \
    static void relu_bits_fwd_##SFX(T *restrict o, uint8_t *restrict m,               \
                                    const T *restrict x, int64_t n)                   \
    {                                                                                 \
        PAR_FLAGS;                                                                    \
        _Pragma("omp parallel for if (cheap) schedule(static)")                       \
        for (int64_t c = 0; c < n; c += CHUNK) {                                      \
            const int64_t end = n - c < CHUNK ? n : c + CHUNK;                        \
            int64_t i = c;                                                            \
            for (; i + STEP <= end; i += STEP) FWD;                                   \
            relu_bits_fwd_tail_##PASS(o, m, x, i, end);                               \
        }                                                                             \
    }                                                                                 \
                                                                                      \
    static void relu_bits_bwd_##SFX(T *restrict gi, const T *restrict g,              \
                                    const uint8_t *restrict m, int64_t n)             \
    {                                                                                 \
        PAR_FLAGS;                                                                    \
        _Pragma("omp parallel for if (cheap) schedule(static)")                       \
        for (int64_t c = 0; c < n; c += CHUNK) {                                      \
            const int64_t end = n - c < CHUNK ? n : c + CHUNK;                        \
            int64_t i = c;                                                            \
            for (; i + STEP <= end; i += STEP) BWD;                                   \
            for (; i < end; i++) gi[i] = (m[i >> 3] >> (i & 7)) & 1 ? g[i] : 0;       \
        }                                                                             \
    }

/* the portable kernels (no x86 vector extension): 8 elements, one byte */
#define PORTABLE_FWD                                                                  \
    do {                                                                              \
        unsigned v_ = 0;                                                              \
        for (int j = 0; j < 8; j++) {                                                 \
            o[i + j] = x[i + j] < 0 ? 0 : x[i + j];                                   \
            v_ |= (unsigned)!(x[i + j] <= 0) << j;                                    \
        }                                                                             \
        m[i / 8] = (uint8_t)v_;                                                       \
    } while (0)
#define PORTABLE_BWD                                                                  \
    do {                                                                              \
        unsigned v_ = m[i / 8];                                                       \
        for (int j = 0; j < 8; j++) gi[i + j] = v_ >> j & 1 ? g[i + j] : 0;           \
    } while (0)
RELU_BITS_VEC(float, f32, f32, 8, PORTABLE_FWD, PORTABLE_BWD)
RELU_BITS_VEC(double, f64, f64, 8, PORTABLE_FWD, PORTABLE_BWD)


#if FAROL_HAVE_ISA_VARIANTS
FAROL_ISA_BEGIN_AVX2
/* 8 floats: x < 0 ? 0 : x (NaN and -0 kept), one mask byte */
#define F32_AVX2_FWD                                                                  \
    do {                                                                              \
        __m256 v = _mm256_loadu_ps(x + i), z = _mm256_setzero_ps();                   \
        _mm256_storeu_ps(o + i, _mm256_blendv_ps(v, z, _mm256_cmp_ps(v, z, _CMP_LT_OQ))); \
        m[i / 8] = (uint8_t)_mm256_movemask_ps(_mm256_cmp_ps(v, z, _CMP_NLE_UQ));     \
    } while (0)
#define F32_AVX2_BWD                                                                  \
    do {                                                                              \
        const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);           \
        __m256i b = _mm256_and_si256(_mm256_set1_epi32(m[i / 8]), sel);               \
        __m256 keep = _mm256_castsi256_ps(_mm256_cmpeq_epi32(b, sel));                \
        _mm256_storeu_ps(gi + i, _mm256_and_ps(keep, _mm256_loadu_ps(g + i)));        \
    } while (0)
/* 8 doubles, two halves of 4 */
#define F64_AVX2_FWD                                                                  \
    do {                                                                              \
        __m256d z = _mm256_setzero_pd(), a = _mm256_loadu_pd(x + i), b = _mm256_loadu_pd(x + i + 4); \
        _mm256_storeu_pd(o + i, _mm256_blendv_pd(a, z, _mm256_cmp_pd(a, z, _CMP_LT_OQ))); \
        _mm256_storeu_pd(o + i + 4, _mm256_blendv_pd(b, z, _mm256_cmp_pd(b, z, _CMP_LT_OQ))); \
        m[i / 8] = (uint8_t)(_mm256_movemask_pd(_mm256_cmp_pd(a, z, _CMP_NLE_UQ)) |    \
                             _mm256_movemask_pd(_mm256_cmp_pd(b, z, _CMP_NLE_UQ)) << 4); \
    } while (0)
#define F64_AVX2_BWD                                                                  \
    do {                                                                              \
        const __m256i lo = _mm256_setr_epi64x(1, 2, 4, 8), hi = _mm256_setr_epi64x(16, 32, 64, 128); \
        __m256i v = _mm256_set1_epi64x(m[i / 8]);                                     \
        __m256d kl = _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(v, lo), lo)); \
        __m256d kh = _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(v, hi), hi)); \
        _mm256_storeu_pd(gi + i, _mm256_and_pd(kl, _mm256_loadu_pd(g + i)));         \
        _mm256_storeu_pd(gi + i + 4, _mm256_and_pd(kh, _mm256_loadu_pd(g + i + 4)));  \
    } while (0)
RELU_BITS_VEC(float, f32_avx2, f32, 8, F32_AVX2_FWD, F32_AVX2_BWD)
RELU_BITS_VEC(double, f64_avx2, f64, 8, F64_AVX2_FWD, F64_AVX2_BWD)
FAROL_ISA_END

FAROL_ISA_BEGIN_AVX512
/* 16 floats: two mask bytes, stored little-endian (elements i..i+7 first) */
#define F32_AVX512_FWD                                                                \
    do {                                                                              \
        __m512 v = _mm512_loadu_ps(x + i), z = _mm512_setzero_ps();                   \
        _mm512_storeu_ps(o + i, _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, z, _CMP_LT_OQ), z)); \
        uint16_t bits = (uint16_t)_mm512_cmp_ps_mask(v, z, _CMP_NLE_UQ);              \
        memcpy(m + i / 8, &bits, 2);                                                  \
    } while (0)
#define F32_AVX512_BWD                                                                \
    do {                                                                              \
        uint16_t bits;                                                                \
        memcpy(&bits, m + i / 8, 2);                                                  \
        _mm512_storeu_ps(gi + i, _mm512_maskz_mov_ps((__mmask16)bits, _mm512_loadu_ps(g + i))); \
    } while (0)
#define F64_AVX512_FWD                                                                \
    do {                                                                              \
        __m512d v = _mm512_loadu_pd(x + i), z = _mm512_setzero_pd();                  \
        _mm512_storeu_pd(o + i, _mm512_mask_mov_pd(v, _mm512_cmp_pd_mask(v, z, _CMP_LT_OQ), z)); \
        m[i / 8] = (uint8_t)_mm512_cmp_pd_mask(v, z, _CMP_NLE_UQ);                    \
    } while (0)
#define F64_AVX512_BWD                                                                \
    _mm512_storeu_pd(gi + i, _mm512_maskz_mov_pd((__mmask8)m[i / 8], _mm512_loadu_pd(g + i)))
RELU_BITS_VEC(float, f32_avx512, f32, 16, F32_AVX512_FWD, F32_AVX512_BWD)
RELU_BITS_VEC(double, f64_avx512, f64, 8, F64_AVX512_FWD, F64_AVX512_BWD)
FAROL_ISA_END
#endif

/* ---- shared plumbing ---- */

/* t contiguous in dtype dt (t itself, retained, when it already is) */
static farol_tensor *contig_as(farol_tensor *t, farol_dtype dt)
{
    return t->dtype == dt ? farol_contig_raw(t) : farol_cast_raw(t, dt);
}

static int check_input(const char *fn, farol_tensor *x)
{
    if (!x) {
        farol_set_error("farol: %s: argument x is NULL", fn);
        return -1;
    }
    return farol_check_float(fn, "x", x);
}

/* the gradient of a pointwise op: gi shaped like input 0, from gout and the
 * saved tensor s (either may be strided); run(gi, g, s, n) fills it */
typedef void (*bwd_run)(void *ctx, farol_dtype dt, void *gi, const void *g, const void *s,
                        int64_t n);

static int pointwise_grad(farol_node *n, farol_tensor *gout, farol_tensor *s, bwd_run run,
                          void *ctx, farol_tensor **gin)
{
    const farol_edge *e = &n->inputs[0];
    farol_tensor *g = contig_as(gout, e->dtype);
    farol_tensor *sc = g && s ? contig_as(s, e->dtype) : NULL;
    farol_tensor *gi = sc ? farol_empty(e->ndim, e->shape, e->dtype) : NULL;
    if (gi)
        run(ctx, e->dtype, farol_data(gi), farol_data(g), farol_data(sc), farol_numel(gi));
    farol_release(g);
    farol_release(sc);
    gin[0] = gi;
    return gi ? 0 : -1;
}

/* ---- farol_unary ---- */

/* ReLU's backward needs only where the gradient passes: one bit per
 * element (a 32nd of a float32 output), kept in an internal int64 tensor of
 * ceil(n / 64) elements that holds the bytes.  Recorded as relu; takes over
 * xc and out. */
static farol_tensor *relu_recorded(farol_tensor *x, farol_tensor *xc, farol_tensor *out)
{
    int64_t n = farol_numel(out), words = (n + 63) / 64;
    farol_tensor *mask = farol_empty(1, &words, FAROL_I64);
    if (!mask) {
        farol_release(out);
        out = NULL;
    } else if (x->dtype == FAROL_F32) {
        FAROL_ISA_DISPATCH(relu_bits_fwd_f32, (farol_data(out), farol_data(mask), farol_data(xc), n));
    } else {
        FAROL_ISA_DISPATCH(relu_bits_fwd_f64, (farol_data(out), farol_data(mask), farol_data(xc), n));
    }
    out = farol_record(FAROL_OP_UNARY, out, 1, &x, FAROL_SAVE(mask),
                       &(farol_op_params){.pw = {.kind = FAROL_RELU}});
    farol_release(mask);
    farol_release(xc);
    return out;
}

static int relu_backward(farol_node *n, farol_tensor *gout, farol_tensor *mask, farol_tensor **gin)
{
    const farol_edge *e = &n->inputs[0];
    farol_tensor *g = contig_as(gout, e->dtype);
    farol_tensor *gi = g ? farol_empty(e->ndim, e->shape, e->dtype) : NULL;
    if (gi && e->dtype == FAROL_F32)
        FAROL_ISA_DISPATCH(relu_bits_bwd_f32, (farol_data(gi), farol_data(g), farol_data(mask), farol_numel(gi)));
    else if (gi)
        FAROL_ISA_DISPATCH(relu_bits_bwd_f64, (farol_data(gi), farol_data(g), farol_data(mask), farol_numel(gi)));
    farol_release(g);
    gin[0] = gi;
    return gi ? 0 : -1;
}

farol_tensor *farol_unary(farol_tensor *x, farol_unary_op op)
{
    if ((unsigned)op >= FAROL_UNARY_COUNT) {
        farol_set_error("farol: unary: unknown op %d", (int)op);
        return NULL;
    }
    const char *fn = unary_names[op];
    if (check_input(fn, x) < 0)
        return NULL;
    farol_tensor *xc = farol_contig_raw(x);
    farol_tensor *out = xc ? farol_empty(x->ndim, x->shape, x->dtype) : NULL;
    if (!out) {
        farol_release(xc);
        return NULL;
    }
    int64_t n = farol_numel(out);
    if (op == FAROL_RELU && farol_needs_record(1, &x))
        return relu_recorded(x, xc, out);
    if (x->dtype == FAROL_F32)
        FAROL_ISA_DISPATCH(unary_fwd_f32, (op, farol_data(out), farol_data(xc), n));
    else
        FAROL_ISA_DISPATCH(unary_fwd_f64, (op, farol_data(out), farol_data(xc), n));
    farol_tensor *keep = op == FAROL_SIGN ? NULL : saves_output[op] ? out : xc;
    out = farol_record(FAROL_OP_UNARY, out, 1, &x, FAROL_SAVE(keep),
                       &(farol_op_params){.pw = {.kind = op}});
    farol_release(xc);
    return out;
}

static void unary_bwd_run(void *ctx, farol_dtype dt, void *gi, const void *g, const void *s,
                          int64_t n)
{
    int op = *(const int *)ctx;
    if (dt == FAROL_F32)
        FAROL_ISA_DISPATCH(unary_bwd_f32, (op, gi, g, s, n));
    else
        FAROL_ISA_DISPATCH(unary_bwd_f64, (op, gi, g, s, n));
}

int farol_unary_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    if (!n->inputs[0].need)
        return 0;
    int op = n->p.pw.kind;
    const farol_edge *e = &n->inputs[0];
    if (op == FAROL_SIGN) {
        gin[0] = farol_zeros(e->ndim, e->shape, e->dtype);
        return gin[0] ? 0 : -1;
    }
    farol_tensor *s = farol_saved(n, 0);
    if (!s)
        return -1;
    if (op == FAROL_RELU)
        return relu_backward(n, gout, s, gin);
    return pointwise_grad(n, gout, s, unary_bwd_run, &op, gin);
}

/* ---- leaky_relu, elu, clamp ---- */

/* out = f(x; prm) recorded as op, saving the (contiguous) input */
static farol_tensor *param_forward(const char *fn, farol_op op, int kind, farol_tensor *x,
                                   double p0, double p1)
{
    if (check_input(fn, x) < 0)
        return NULL;
    const double prm[2] = {p0, p1};
    farol_tensor *xc = farol_contig_raw(x);
    farol_tensor *out = xc ? farol_empty(x->ndim, x->shape, x->dtype) : NULL;
    if (!out) {
        farol_release(xc);
        return NULL;
    }
    int64_t n = farol_numel(out);
    if (x->dtype == FAROL_F32)
        FAROL_ISA_DISPATCH(param_fwd_f32, (kind, prm, farol_data(out), farol_data(xc), n));
    else
        FAROL_ISA_DISPATCH(param_fwd_f64, (kind, prm, farol_data(out), farol_data(xc), n));
    out = farol_record(op, out, 1, &x, FAROL_SAVE(xc),
                       &(farol_op_params){.pw = {.kind = kind, .a = p0, .b = p1}});
    farol_release(xc);
    return out;
}

static void param_bwd_run(void *ctx, farol_dtype dt, void *gi, const void *g, const void *s,
                          int64_t n)
{
    const farol_node *node = ctx;
    const double prm[2] = {node->p.pw.a, node->p.pw.b};
    if (dt == FAROL_F32)
        FAROL_ISA_DISPATCH(param_bwd_f32, (node->p.pw.kind, prm, gi, g, s, n));
    else
        FAROL_ISA_DISPATCH(param_bwd_f64, (node->p.pw.kind, prm, gi, g, s, n));
}

static int param_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    if (!n->inputs[0].need)
        return 0;
    farol_tensor *x = farol_saved(n, 0);
    if (!x)
        return -1;
    return pointwise_grad(n, gout, x, param_bwd_run, n, gin);
}

farol_tensor *farol_leaky_relu(farol_tensor *x, double slope)
{
    return param_forward("leaky_relu", FAROL_OP_LEAKY_RELU, PW_LEAKY_RELU, x, slope, 0);
}

int farol_leaky_relu_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    return param_backward(n, gout, gin);
}

farol_tensor *farol_elu(farol_tensor *x, double alpha)
{
    return param_forward("elu", FAROL_OP_ELU, PW_ELU, x, alpha, 0);
}

int farol_elu_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    return param_backward(n, gout, gin);
}

farol_tensor *farol_clamp(farol_tensor *x, double lo, double hi)
{
    if (isnan(lo) || isnan(hi)) {
        farol_set_error("farol: clamp: bounds must not be NaN (lo %g, hi %g)", lo, hi);
        return NULL;
    }
    return param_forward("clamp", FAROL_OP_CLAMP, PW_CLAMP, x, lo, hi);
}

int farol_clamp_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin)
{
    return param_backward(n, gout, gin);
}
