/* The element types files hold, and their conversion to and from farol's
 * three dtypes: half and bfloat16 load as float32, integers as int64, bool
 * as a float32 0/1 mask; float16 and bfloat16 can be written from floating
 * tensors.  Shared by the safetensors and .npy readers and writers. */
#ifndef FAROL_IO_FILEDTYPE_H
#define FAROL_IO_FILEDTYPE_H

#include "internal.h"

typedef enum {
    FD_F32, FD_F64, FD_I64, FD_F16, FD_BF16, FD_I32, FD_I16, FD_I8, FD_U32, FD_U16, FD_U8, FD_BOOL,
    FD_COUNT
} farol_fd_kind;

typedef struct {
    farol_fd_kind kind;
    const char *name;   /* as farol.load reports it: "float16" */
    const char *st;     /* safetensors: "F16" */
    const char *npy;    /* .npy descr: "<f2", or NULL (bfloat16) */
    int size;           /* bytes per element in the file */
    farol_dtype to;     /* what it loads as */
} farol_file_dtype;

const farol_file_dtype *farol_fd_by_st(const char *st);
const farol_file_dtype *farol_fd_by_npy(const char *descr);
const farol_file_dtype *farol_fd_by_name(const char *name);
const farol_file_dtype *farol_fd_of(farol_dtype dt);  /* F32, F64, I64 as stored */
/* "F32, F64, ..." / "'<f4', '<f8', ..." for messages */
const char *farol_fd_st_list(void);
const char *farol_fd_npy_list(void);

/* n elements of file type fd at src (any alignment) into dst, of fd->to */
void farol_fd_decode(const farol_file_dtype *fd, const void *src, int64_t n, void *dst);
/* n float32 values into fd's bytes (F16 or BF16, round to nearest even) */
void farol_fd_encode_half(const farol_file_dtype *fd, const float *src, int64_t n, void *dst);

/* for the writers (safetensors.c): the file type a floating tensor may be
 * saved as, by name ("float16"), or NULL with the error set; the values of t
 * written as fd */
const farol_file_dtype *farol_save_dtype(const char *path, const char *dtype, bool npy);
int farol_write_values(FILE *f, const char *path, const char *name, const farol_tensor *t,
                       const farol_file_dtype *fd);

/* the readers' and writers' error: "farol: <verb>: <name>: <what>"; -1 */
__attribute__((format(printf, 3, 4)))
int farol_io_error(const char *verb, const char *name, const char *fmt, ...);

#endif
