/* farol tensors: refcounted storage plus refcounted views.
 *
 * Conventions of the whole C API:
 *   - dims and indices are 0-based here, in error messages too; the Lua
 *     binding converts (its messages count from 1).
 *   - a function returning farol_tensor * returns a new reference (release it
 *     with farol_release) or NULL after setting the error message
 *     (farol_last_error()); a function returning int returns 0 or -1 likewise.
 *   - inputs are borrowed: a function never releases what it was given.
 */
#ifndef FAROL_TENSOR_H
#define FAROL_TENSOR_H

#include "farol/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FAROL_MAX_DIMS 8

typedef enum { FAROL_F32, FAROL_F64, FAROL_I64, FAROL_DTYPE_COUNT } farol_dtype;

typedef struct farol_storage {
    void *data;          /* 64-byte aligned */
    size_t nbytes;
    int refcount;
    uint32_t version;    /* bumped by every in-place write: the tape checks it */
} farol_storage;

typedef struct farol_node farol_node;

typedef struct farol_tensor {
    int refcount;
    farol_dtype dtype;
    int ndim;
    int64_t shape[FAROL_MAX_DIMS];
    int64_t strides[FAROL_MAX_DIMS]; /* in elements */
    int64_t offset;                  /* in elements */
    farol_storage *storage;
    /* autograd */
    bool requires_grad;   /* a leaf the user marked, or any tape output */
    farol_node *node;     /* grad_fn of an op output, or the leaf's node */
    struct farol_tensor *grad;
} farol_tensor;

/* errors: one message per thread, set by the failing call */
FAROL_API const char *farol_last_error(void);
FAROL_API void farol_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* sizes and names */
FAROL_API size_t farol_dtype_size(farol_dtype dt);
FAROL_API const char *farol_dtype_name(farol_dtype dt);
FAROL_API int farol_dtype_from_name(const char *name, farol_dtype *out);
FAROL_API bool farol_is_floating(farol_dtype dt);
FAROL_API int64_t farol_numel(const farol_tensor *t);
FAROL_API bool farol_is_contiguous(const farol_tensor *t);
/* pointer to element 0 of the view */
static inline void *farol_data(const farol_tensor *t) {
    return (char *)t->storage->data + t->offset * (int64_t)(t->dtype == FAROL_F32 ? 4 : 8);
}

/* lifetime */
FAROL_API farol_tensor *farol_retain(farol_tensor *t);
FAROL_API void farol_release(farol_tensor *t);          /* NULL is fine */
FAROL_API size_t farol_live_bytes(void);                /* storage bytes alive, this process */
/* frees the cache of large buffers kept for reuse (buffers in use plus cached
 * stay within 1.5x the peak in use, at most 1 GiB cached) and measures that
 * peak again from now */
FAROL_API void farol_release_cached_memory(void);

/* creation (shape: ndim sizes; ndim 0 is a scalar) */
FAROL_API farol_tensor *farol_empty(int ndim, const int64_t *shape, farol_dtype dt);
FAROL_API farol_tensor *farol_zeros(int ndim, const int64_t *shape, farol_dtype dt);
FAROL_API farol_tensor *farol_full(int ndim, const int64_t *shape, double value, farol_dtype dt);
FAROL_API farol_tensor *farol_scalar(double value, farol_dtype dt);
FAROL_API farol_tensor *farol_empty_like(const farol_tensor *t);
FAROL_API farol_tensor *farol_zeros_like(const farol_tensor *t);
FAROL_API farol_tensor *farol_from_data(int ndim, const int64_t *shape, farol_dtype dt, const void *data);
FAROL_API farol_tensor *farol_arange(double start, double end, double step, farol_dtype dt);
FAROL_API farol_tensor *farol_linspace(double start, double end, int64_t n, farol_dtype dt);
FAROL_API farol_tensor *farol_eye(int64_t n, farol_dtype dt);

/* random numbers: one generator per thread, seeded */
FAROL_API void farol_manual_seed(uint64_t seed);
FAROL_API farol_tensor *farol_rand(int ndim, const int64_t *shape, farol_dtype dt);
FAROL_API farol_tensor *farol_randn(int ndim, const int64_t *shape, farol_dtype dt);
FAROL_API double farol_rand_uniform(void);

/* element access (flat index in row-major logical order, or n-d index) */
FAROL_API double farol_get(const farol_tensor *t, const int64_t *index);
FAROL_API int farol_set(farol_tensor *t, const int64_t *index, double v);
FAROL_API double farol_item(const farol_tensor *t);  /* caller checks numel == 1 */
/* an int64 element read exactly (doubles hold only 53 bits) */
FAROL_API int64_t farol_get_i64(const farol_tensor *t, const int64_t *index);
/* read element k of a tensor in logical row-major order */
FAROL_API double farol_get_flat(const farol_tensor *t, int64_t k);

/* copies and conversion (not recorded on the tape unless noted) */
FAROL_API farol_tensor *farol_contiguous(farol_tensor *t);   /* recorded; returns t itself (retained) when contiguous */
FAROL_API farol_tensor *farol_clone(farol_tensor *t);        /* recorded */
FAROL_API farol_tensor *farol_to_dtype(farol_tensor *t, farol_dtype dt); /* recorded between floating dtypes */
FAROL_API farol_tensor *farol_detach(farol_tensor *t);       /* shares storage, no grad */
FAROL_API int farol_copy_(farol_tensor *dst, farol_tensor *src); /* broadcasts src; dst must not need a grad */
FAROL_API int farol_fill_(farol_tensor *dst, double v);
/* raw copy of src's values into contiguous memory of dtype dt */
FAROL_API void farol_copy_to_buffer(const farol_tensor *src, void *dst, farol_dtype dt);

/* shape helpers */
FAROL_API int farol_broadcast_shapes(int na, const int64_t *a, int nb, const int64_t *b,
                           int *nout, int64_t *out);
FAROL_API bool farol_same_shape(const farol_tensor *a, const farol_tensor *b);
/* "[2, 3, 4]" into buf */
FAROL_API const char *farol_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* printing: a new malloc'ed string, PyTorch-like */
FAROL_API char *farol_tostring(const farol_tensor *t);

/* threads: OpenBLAS and OpenMP together */
FAROL_API void farol_set_num_threads(int n);
FAROL_API int farol_get_num_threads(void);
/* Adaptive threads (default on): while other processes keep cores busy,
 * farol runs with one thread fewer per busy core (see src/tensor/threads.c);
 * farol_threads_in_use() is the count in use now. */
FAROL_API void farol_set_adaptive_threads(bool on);
FAROL_API bool farol_adaptive_threads(void);
FAROL_API int farol_threads_in_use(void);

#endif
