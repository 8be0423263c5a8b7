/* Files: safetensors, .npy, and PNG/JPEG images.  Loading converts what
 * farol has no dtype for: float16 and bfloat16 to float32, int32/16/8 and
 * uint32/16/8 to int64, bool to a float32 0/1 mask.  Saving writes float32,
 * float64 and int64, and floating tensors as float16 or bfloat16 on request. */
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
    const char **stored;   /* filled by loaders: each tensor's type in the file
                            * ("float16", ...: static strings), else NULL */
} farol_tensor_dict;

/* parse a safetensors image held in memory (len bytes) */
FAROL_API int farol_safetensors_parse(const unsigned char *buf, size_t len, farol_tensor_dict *out);
FAROL_API int farol_load_safetensors(const char *path, farol_tensor_dict *out);
/* tensors are written contiguous, names as given, metadata may be empty */
FAROL_API int farol_save_safetensors(const char *path, const farol_tensor_dict *d);
/* the same, floating tensors written as dtype ("float32", "float64",
 * "float16", "bfloat16"; NULL: as they are) */
FAROL_API int farol_save_safetensors_as(const char *path, const farol_tensor_dict *d, const char *dtype);
/* one array from .npy (little-endian, C or Fortran order); *stored, when
 * given, is set to the type in the file ("float16", ...) */
FAROL_API farol_tensor *farol_npy_parse(const unsigned char *buf, size_t len);
FAROL_API farol_tensor *farol_load_npy(const char *path);
FAROL_API farol_tensor *farol_load_npy_stored(const char *path, const char **stored);
/* t as a version 1.0 .npy file, floating values as dtype (NULL: as they are;
 * "float32", "float64", "float16") */
FAROL_API int farol_save_npy(const char *path, const farol_tensor *t, const char *dtype);
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
