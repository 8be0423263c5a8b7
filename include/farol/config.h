/* What farol runs on: the BLAS and its kernel, oneDNN, farol's own kernels
 * and the thread count. */
#ifndef FAROL_CONFIG_H
#define FAROL_CONFIG_H

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
    int threads;
} farol_config_info;

/* fills *out; the strings are static (valid for the process) */
FAROL_API void farol_get_config(farol_config_info *out);

#endif
