/* Files: safetensors (F32, F64, I64), .npy, and PNG/JPEG images. */
#ifndef FAROL_IO_H
#define FAROL_IO_H

#include "farol/export.h"

#include "farol/tensor.h"

typedef struct {
    int n;
    char **names;
    farol_tensor **tensors;
    int n_meta;
    char **meta_keys;
    char **meta_values;
} farol_tensor_dict;

/* parse a safetensors image held in memory (len bytes) */
FAROL_API int farol_safetensors_parse(const unsigned char *buf, size_t len, farol_tensor_dict *out);
FAROL_API int farol_load_safetensors(const char *path, farol_tensor_dict *out);
/* tensors are written contiguous, names as given, metadata may be empty */
FAROL_API int farol_save_safetensors(const char *path, const farol_tensor_dict *d);
/* one array from .npy (float32, float64, int64, little-endian, C or Fortran order) */
FAROL_API farol_tensor *farol_npy_parse(const unsigned char *buf, size_t len);
FAROL_API farol_tensor *farol_load_npy(const char *path);
FAROL_API void farol_dict_free(farol_tensor_dict *d);
/* the tensor called name, or NULL */
FAROL_API farol_tensor *farol_dict_get(const farol_tensor_dict *d, const char *name);
FAROL_API const char *farol_dict_meta(const farol_tensor_dict *d, const char *key);

/* PNG or JPEG -> float32 C x H x W in [0, 1]; channels 0 keeps the file's
 * (1 to 4), 1 to 4 converts (stb_image's rules) */
FAROL_API farol_tensor *farol_image_load(const char *path, int channels);
/* C x H x W (C 1 to 4) or H x W -> PNG; floating values in [0, 1], int64 in
 * [0, 255], clamped and rounded */
FAROL_API int farol_image_save_png(const char *path, farol_tensor *t);

#endif
