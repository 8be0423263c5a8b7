/* Softmax lines shared by softmax.c and attention.c: a vectorising expf
 * and, per element type, the forward and backward of one line of n
 * elements at stride s, compiled into each file (and each ISA variant)
 * that expands DEF_SOFTMAX_LINES. */
#ifndef FAROL_SOFTMAX_LINE_H
#define FAROL_SOFTMAX_LINE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* expf that vectorises (libm's expf does not without -ffast-math): Cephes'
 * polynomial on r = x - n ln2, |r| <= ln2 / 2, times 2^n made in the
 * exponent bits; relative error under 1e-7.  Below -87.33 (where expf is
 * under FLT_MIN) it gives 0, so masked -inf scores get exact zeros; NaN
 * stays NaN.  Softmax only passes x <= 0: above 88, 2^n would overflow.
 * Branch-free on purpose: a float op under a branch blocks if-conversion. */
static inline float fast_expf(float x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * 1.44269504f + magic, n = t - magic;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t tb, yb, magic_bits = 0x4B400000; /* t's low bits hold n */
    memcpy(&tb, &t, sizeof tb);
    tb = (tb - magic_bits + 127) << 23;
    float scale, y;
    memcpy(&scale, &tb, sizeof scale);
    y = p * scale;
    uint32_t keep = -(uint32_t)!isless(x, -87.33654f); /* else the exponent wrapped */
    memcpy(&yb, &y, sizeof yb);
    yb &= keep;
    memcpy(&y, &yb, sizeof y);
    return y;
}

/* One line of n elements at stride s (inlined with s = 1 for the last
 * dim, so those loops are unit-stride and vectorised); sums in double. */
#define DEF_SOFTMAX_LINES(T, SUF, EXP)                                                           \
    static inline __attribute__((always_inline)) void forward_line_##SUF(                  \
        bool logsm, T *y, const T *x, int64_t n, int64_t s) {                              \
        /* the max in 8 lanes (omp simd's max reduction is slow here); a NaN it            \
         * skips still reaches every output through the sum */                             \
        T lane[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,                           \
                     -INFINITY, -INFINITY, -INFINITY, -INFINITY}, m = -INFINITY;           \
        int64_t i0 = 0;                                                                    \
        for (; i0 + 8 <= n; i0 += 8)                                                       \
            for (int j = 0; j < 8; j++)                                                    \
                lane[j] = x[(i0 + j) * s] > lane[j] ? x[(i0 + j) * s] : lane[j];           \
        for (; i0 < n; i0++) m = x[i0 * s] > m ? x[i0 * s] : m;                            \
        for (int j = 0; j < 8; j++) m = lane[j] > m ? lane[j] : m;                         \
        double sum = 0;                                                                    \
        if (logsm) {                                                                       \
            _Pragma("omp simd reduction(+:sum)")                                           \
            for (int64_t i = 0; i < n; i++) sum += EXP(x[i * s] - m);                      \
            T lse = (T)log(sum);                                                           \
            _Pragma("omp simd")                                                            \
            for (int64_t i = 0; i < n; i++) y[i * s] = (x[i * s] - m) - lse;               \
        } else {                                                                           \
            _Pragma("omp simd reduction(+:sum)")                                           \
            for (int64_t i = 0; i < n; i++) {                                              \
                T e = EXP(x[i * s] - m);                                                   \
                y[i * s] = e;                                                              \
                sum += e;                                                                  \
            }                                                                              \
            T inv = (T)(1.0 / sum);                                                        \
            _Pragma("omp simd")                                                            \
            for (int64_t i = 0; i < n; i++) y[i * s] *= inv;                               \
        }                                                                                  \
    }                                                                                      \
    static inline __attribute__((always_inline)) void backward_line_##SUF(                 \
        bool logsm, T *gx, const T *g, const T *y,                                         \
                                           int64_t n, int64_t s) {                         \
        double dot = 0;                                                                    \
        if (logsm) {                                                                       \
            _Pragma("omp simd reduction(+:dot)")                                           \
            for (int64_t i = 0; i < n; i++) dot += g[i * s];                               \
            _Pragma("omp simd")                                                            \
            for (int64_t i = 0; i < n; i++) gx[i * s] = g[i * s] - EXP(y[i * s]) * (T)dot; \
        } else {                                                                           \
            _Pragma("omp simd reduction(+:dot)")                                           \
            for (int64_t i = 0; i < n; i++) dot += (double)g[i * s] * y[i * s];            \
            _Pragma("omp simd")                                                            \
            for (int64_t i = 0; i < n; i++) gx[i * s] = y[i * s] * (g[i * s] - (T)dot);    \
        }                                                                                  \
    }

#endif
