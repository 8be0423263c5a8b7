/* Convolution geometry and the plain reference kernels that the tests
 * compare the fast path against (llm.c keeps matmul_forward_naive beside
 * the tiled one for the same reason).  Internal to src/ops and tests. */
#ifndef FAROL_CONV_REF_H
#define FAROL_CONV_REF_H

#include "internal.h"

/* x (N, C, H, W), w (K, C/groups, kh, kw) -> out (N, K, OH, OW) */
typedef struct {
    int64_t N, C, H, W;
    int64_t K, kh, kw;
    int64_t OH, OW;
    int64_t sh, sw, ph, pw, dh, dw, groups;
} farol_conv_geom;

/* Fills g from the 4-D shapes of x and w and the options, checking them;
 * -1 with an error naming fn ("conv2d") otherwise. */
int farol_conv_geom_init(farol_conv_geom *g, const char *fn, const int64_t *xshape,
                         const int64_t *wshape, const farol_conv_opts *o);

/* Seven nested loops, float64, contiguous buffers; b may be NULL.
 * x: (N, C, H, W), w: (K, C/groups, kh, kw) -> out: (N, K, OH, OW) */
void farol_conv2d_forward_naive(double *out, const double *x, const double *w, const double *b,
                                const farol_conv_geom *g);
/* dout: (N, K, OH, OW), w -> dx: (N, C, H, W) (overwritten) */
void farol_conv2d_backward_input_naive(double *dx, const double *dout, const double *w,
                                       const farol_conv_geom *g);
/* dout, x -> dw: (K, C/groups, kh, kw) (overwritten) */
void farol_conv2d_backward_weight_naive(double *dw, const double *dout, const double *x,
                                        const farol_conv_geom *g);

/* the op table's backward, declared here for the tests that call it directly */
int farol_conv2d_backward(farol_node *n, farol_tensor *gout, farol_tensor **gin);

/* oneDNN (conv_dnnl.c), float32, contiguous NCHW: 1 = done, 0 = not taken
 * (no oneDNN, switched off, or no fast kernel for the shape: use im2col),
 * -1 = failed with the error set */
int farol_dnnl_conv_forward(const farol_conv_geom *g, float *out, const float *x, const float *w,
                            const float *b);
int farol_dnnl_conv_backward_data(const farol_conv_geom *g, float *dx, const float *gout, const float *w);
/* how many convolutions (forward or input gradient) ran on oneDNN in this thread */
int64_t farol_dnnl_conv_runs(void);

#endif
