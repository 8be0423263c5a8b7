/* PyTorch's interpolate with align_corners = False, for Captum's
 * LayerAttribution.interpolate (upsampling layer attributions to the input's
 * size).  "nearest" is PyTorch's legacy nearest (source = floor(dst * in /
 * out), the scale in float), "bilinear" its half-pixel bilinear, "area" its
 * adaptive average pooling.  A 3-D (N, C, L) input is treated as
 * (N, C, 1, L).  Results are new tensors, not recorded on the tape. */
#include "attr/core.h"

#include <math.h>

/* PyTorch's nearest source index; the scale is a float, as in ATen */
static int64_t nearest_src(int64_t o, int64_t in, int64_t out) {
    if (out == in) return o;
    if (out == 2 * in) return o >> 1;
    float scale = (float)in / (float)out;
    int64_t s = (int64_t)floorf((float)o * scale);
    return s < in - 1 ? s : in - 1;
}

/* Bilinear source indices and weights along one dim, in the element type's
 * precision (ATen's opmath: float for float32). */
#define LINEAR_INDEX(T)                                                                   \
    static void linear_index_##T(int64_t o, int64_t in, int64_t out, int64_t *i0,         \
                                 int64_t *i1, T *l0, T *l1) {                             \
        T scale = (T)in / (T)out;                                                          \
        T src = scale * ((T)o + (T)0.5) - (T)0.5;                                          \
        if (src < 0) src = 0;                                                              \
        *i0 = (int64_t)src;                                                                \
        *i1 = *i0 + (*i0 < in - 1 ? 1 : 0);                                                \
        *l1 = src - (T)*i0;                                                                \
        *l0 = (T)1 - *l1;                                                                  \
    }
LINEAR_INDEX(float)
LINEAR_INDEX(double)

#define RESAMPLE(T)                                                                       \
    static void resample_##T(const T *x, T *y, int64_t planes, int64_t ih, int64_t iw,    \
                             int64_t oh, int64_t ow, bool bilinear) {                     \
        for (int64_t p = 0; p < planes; p++) {                                            \
            const T *src = x + p * ih * iw;                                               \
            T *dst = y + p * oh * ow;                                                     \
            for (int64_t r = 0; r < oh; r++) {                                            \
                if (!bilinear) {                                                          \
                    const T *row = src + nearest_src(r, ih, oh) * iw;                     \
                    for (int64_t c = 0; c < ow; c++) dst[r * ow + c] = row[nearest_src(c, iw, ow)]; \
                    continue;                                                             \
                }                                                                         \
                int64_t h0, h1;                                                           \
                T a0, a1;                                                                 \
                linear_index_##T(r, ih, oh, &h0, &h1, &a0, &a1);                           \
                for (int64_t c = 0; c < ow; c++) {                                        \
                    int64_t w0, w1;                                                       \
                    T b0, b1;                                                             \
                    linear_index_##T(c, iw, ow, &w0, &w1, &b0, &b1);                       \
                    T top = b0 * src[h0 * iw + w0] + b1 * src[h0 * iw + w1];              \
                    T bot = b0 * src[h1 * iw + w0] + b1 * src[h1 * iw + w1];              \
                    dst[r * ow + c] = a0 * top + a1 * bot;                                \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }
RESAMPLE(float)
RESAMPLE(double)

farol_tensor *farol_interpolate(farol_tensor *x, int64_t oh, int64_t ow, farol_interp_mode mode) {
    char sh[96];
    if (farol_check_float("interpolate", "input", x) < 0) return NULL;
    if (x->ndim != 3 && x->ndim != 4) {
        farol_set_error("farol: interpolate: input must be 3-D (N, C, L) or 4-D (N, C, H, W), got %s",
                        farol_shape_str(x->ndim, x->shape, sh, sizeof sh));
        return NULL;
    }
    if (oh < 1 || ow < 1 || (x->ndim == 3 && oh != 1)) {
        farol_set_error("farol: interpolate: size must be positive (and one size for a 3-D input), "
                        "got %lld x %lld", (long long)oh, (long long)ow);
        return NULL;
    }
    int64_t ih = x->ndim == 4 ? x->shape[2] : 1, iw = x->shape[x->ndim - 1];
    if (ih < 1 || iw < 1) {
        farol_set_error("farol: interpolate: input %s has an empty spatial dim",
                        farol_shape_str(x->ndim, x->shape, sh, sizeof sh));
        return NULL;
    }
    bool prev = farol_set_grad_enabled(false);
    farol_tensor *out = NULL;
    if (mode == FAROL_INTERP_AREA) {
        int64_t shape4[4] = {x->shape[0], x->shape[1], ih, iw};
        farol_tensor *x4 = farol_reshape(x, 4, shape4);
        farol_tensor *y4 = x4 ? farol_adaptive_avg_pool2d(x4, oh, ow) : NULL;
        int64_t shape3[3] = {x->shape[0], x->shape[1], ow};
        out = !y4 ? NULL : x->ndim == 4 ? farol_retain(y4) : farol_reshape(y4, 3, shape3);
        farol_release(x4);
        farol_release(y4);
    } else {
        farol_tensor *xc = farol_contig_raw(x);
        int64_t shape[4] = {x->shape[0], x->shape[1], oh, ow};
        if (x->ndim == 3) shape[2] = ow;
        out = xc ? farol_empty(x->ndim, shape, x->dtype) : NULL;
        if (out) {
            int64_t planes = x->shape[0] * x->shape[1];
            bool bil = mode == FAROL_INTERP_BILINEAR;
            if (x->dtype == FAROL_F32)
                resample_float(farol_data(xc), farol_data(out), planes, ih, iw, oh, ow, bil);
            else
                resample_double(farol_data(xc), farol_data(out), planes, ih, iw, oh, ow, bil);
        }
        farol_release(xc);
    }
    farol_set_grad_enabled(prev);
    return out;
}
