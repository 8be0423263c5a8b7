/* What farol runs on: the BLAS and its kernel, oneDNN, farol's own kernels
 * and the thread count. */
#ifndef FAROL_CONFIG_H
#define FAROL_CONFIG_H

#include <stdbool.h>

#include "farol/export.h"

typedef struct {
    const char *blas;                /* the BLAS's own description */
    const char *blas_version;        /* e.g. "0.3.21" */
    const char *blas_core;           /* the kernel set in use, e.g. "SkylakeX" */
    const char *blas_core_chosen_by; /* "openblas", "user (OPENBLAS_CORETYPE)" or "farol" */
    const char *blas_core_replaced;  /* the generic core farol replaced, or NULL */
    const char *dnnl_version;        /* NULL when farol is built without oneDNN */
    const char *dnnl_isa;            /* oneDNN's instruction set, or NULL */
    const char *kernel_isa;          /* what farol's own loops were compiled for */
    int threads;                     /* as set (farol_set_num_threads) */
    int threads_in_use;              /* fewer while other processes hold cores */
} farol_config_info;

/* fills *out; the strings are static (valid for the process) */
FAROL_API void farol_get_config(farol_config_info *out);

/* Fast convolutions on oneDNN (float32 forward and input gradient), on by
 * default when farol was built with oneDNN; off when the environment has
 * FAROL_NO_DNNL=1 at the first convolution, or after farol_set_fast_conv(false):
 * then im2col + BLAS, the reference path. */
FAROL_API bool farol_fast_conv_available(void);   /* built with oneDNN */
FAROL_API bool farol_fast_conv_enabled(void);
FAROL_API void farol_set_fast_conv(bool on);
/* float32 matrix products on oneDNN's sgemm, on by default when farol was
 * built with oneDNN; off (OpenBLAS, the reference path) when the environment
 * has FAROL_NO_DNNL=1 at the first product, or after farol_set_fast_gemm(false).
 * Either way results do not depend on the thread count. */
FAROL_API bool farol_fast_gemm_available(void);   /* built with oneDNN */
FAROL_API bool farol_fast_gemm_enabled(void);
FAROL_API void farol_set_fast_gemm(bool on);
/* Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions (default on): a little
 * less accurate than direct convolution (relative error ~1e-6 vs ~1e-7) */
FAROL_API bool farol_conv_winograd_enabled(void);
FAROL_API void farol_set_conv_winograd(bool on);

#endif
