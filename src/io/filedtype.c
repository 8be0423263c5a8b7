/* File element types (see filedtype.h): the table, and the conversions. */
#include "io/filedtype.h"

#include <math.h>
#include <stdarg.h>

static const farol_file_dtype fds[FD_COUNT] = {
    {FD_F32, "float32", "F32", "<f4", 4, FAROL_F32},
    {FD_F64, "float64", "F64", "<f8", 8, FAROL_F64},
    {FD_I64, "int64", "I64", "<i8", 8, FAROL_I64},
    {FD_F16, "float16", "F16", "<f2", 2, FAROL_F32},
    {FD_BF16, "bfloat16", "BF16", NULL, 2, FAROL_F32},
    {FD_I32, "int32", "I32", "<i4", 4, FAROL_I64},
    {FD_I16, "int16", "I16", "<i2", 2, FAROL_I64},
    {FD_I8, "int8", "I8", "|i1", 1, FAROL_I64},
    {FD_U32, "uint32", "U32", "<u4", 4, FAROL_I64},
    {FD_U16, "uint16", "U16", "<u2", 2, FAROL_I64},
    {FD_U8, "uint8", "U8", "|u1", 1, FAROL_I64},
    {FD_BOOL, "bool", "BOOL", "|b1", 1, FAROL_F32},
};

const farol_file_dtype *farol_fd_by_st(const char *st) {
    for (int i = 0; st && i < FD_COUNT; i++)
        if (strcmp(fds[i].st, st) == 0) return &fds[i];
    return NULL;
}

const farol_file_dtype *farol_fd_by_npy(const char *descr) {
    for (int i = 0; descr && i < FD_COUNT; i++)
        if (fds[i].npy && strcmp(fds[i].npy, descr) == 0) return &fds[i];
    return NULL;
}

const farol_file_dtype *farol_fd_by_name(const char *name) {
    for (int i = 0; name && i < FD_COUNT; i++)
        if (strcmp(fds[i].name, name) == 0) return &fds[i];
    return NULL;
}

const farol_file_dtype *farol_fd_of(farol_dtype dt) {
    return dt == FAROL_F32 ? &fds[FD_F32] : dt == FAROL_F64 ? &fds[FD_F64] : &fds[FD_I64];
}

const char *farol_fd_st_list(void) { return "F32, F64, I64, F16, BF16, I32, I16, I8, U32, U16, U8, BOOL"; }

const char *farol_fd_npy_list(void) {
    return "'<f4', '<f8', '<i8', '<f2', '<i4', '<i2', '|i1', '<u4', '<u2', '|u1', '|b1'";
}

/* IEEE binary16 bits to float: normals, subnormals, zeros, inf, NaN */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | man << 13;
    } else if (exp != 0) {
        bits = sign | (exp + 112) << 23 | man << 13;
    } else {
        float f = ldexpf((float)man, -24);  /* subnormal or zero: exact */
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* float to binary16, round to nearest even; overflow to inf, NaN kept quiet */
static uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff);  /* NaN */
    if (ax >= 0x477ff000u) return sign | 0x7c00;       /* rounds past 65504: inf */
    if (ax < 0x38800000u) {                              /* below 2^-14: subnormal half */
        float a;
        memcpy(&a, &ax, 4);
        /* a * 2^24 is the subnormal's integer mantissa; nearbyint rounds to even */
        return sign | (uint16_t)nearbyintf(a * 16777216.0f);
    }
    uint32_t r = ax + 0xfffu + ((ax >> 13) & 1);       /* round the 13 dropped bits to even */
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);  /* NaN stays NaN */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* element i of an unaligned array */
static uint16_t ld16(const void *p, int64_t i) {
    uint16_t v;
    memcpy(&v, (const char *)p + 2 * i, 2);
    return v;
}

static uint32_t ld32(const void *p, int64_t i) {
    uint32_t v;
    memcpy(&v, (const char *)p + 4 * i, 4);
    return v;
}

void farol_fd_decode(const farol_file_dtype *fd, const void *src, int64_t n, void *dst) {
    float *f = dst;
    int64_t *l = dst;
    switch (fd->kind) {
    case FD_F32: case FD_F64: case FD_I64: memcpy(dst, src, (size_t)n * (size_t)fd->size); break;
    case FD_F16: for (int64_t i = 0; i < n; i++) f[i] = half_to_float(ld16(src, i)); break;
    case FD_BF16: for (int64_t i = 0; i < n; i++) f[i] = bf16_to_float(ld16(src, i)); break;
    case FD_BOOL: for (int64_t i = 0; i < n; i++) f[i] = ((const uint8_t *)src)[i] ? 1.0f : 0.0f; break;
    case FD_I32: for (int64_t i = 0; i < n; i++) l[i] = (int32_t)ld32(src, i); break;
    case FD_I16: for (int64_t i = 0; i < n; i++) l[i] = (int16_t)ld16(src, i); break;
    case FD_I8: for (int64_t i = 0; i < n; i++) l[i] = ((const int8_t *)src)[i]; break;
    case FD_U32: for (int64_t i = 0; i < n; i++) l[i] = ld32(src, i); break;
    case FD_U16: for (int64_t i = 0; i < n; i++) l[i] = ld16(src, i); break;
    case FD_U8: for (int64_t i = 0; i < n; i++) l[i] = ((const uint8_t *)src)[i]; break;
    case FD_COUNT: break;
    }
}

void farol_fd_encode_half(const farol_file_dtype *fd, const float *src, int64_t n, void *dst) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = fd->kind == FD_F16 ? float_to_half(src[i]) : float_to_bf16(src[i]);
        memcpy((char *)dst + 2 * i, &h, 2);
    }
}

int farol_io_error(const char *verb, const char *name, const char *fmt, ...) {
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    farol_set_error("farol: %s: %s: %s", verb, name, what);
    return -1;
}
