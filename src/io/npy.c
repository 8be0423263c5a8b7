/* .npy: the magic "\x93NUMPY", a major and a minor version byte, the header
 * length (2 bytes little-endian in v1, 4 in v2 and v3), then a Python dict
 * literal padded with spaces and ending in '\n',
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * then the raw array.  farol reads the little-endian types of filedtype.c
 * (converting those it has no dtype for) and turns Fortran order into a
 * C-order tensor; it writes version 1.0 files numpy reads.
 *
 * The file is hostile: the dict is parsed by a bounded cursor that accepts
 * only the three keys and never reads past the header, and the data length
 * is checked against the shape (with overflow checks) before allocating. */
#define _POSIX_C_SOURCE 200809L

#include "internal.h"
#include "io/filedtype.h"

#include <errno.h>
#include <stdio.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "farol's file formats are little-endian and so must the host be"
#endif

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* the parsed header */
typedef struct {
    char descr[24];
    const farol_file_dtype *fd;
    bool fortran;
    int ndim;
    int64_t shape[FAROL_MAX_DIMS];
} npy_header;

/* a cursor over the header dict; src names the file in messages */
typedef struct {
    const char *src;
    const char *start, *p, *end;
} npy_cur;

static int dict_error(const npy_cur *c, const char *what) {
    return farol_io_error("load", c->src, "bad header dict: %s at byte %td", what, c->p - c->start);
}

static void skip_ws(npy_cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* consumes ch (after blanks) if it is next */
static bool eat(npy_cur *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* a quoted string without escapes into dst (cap bytes with the NUL) */
static int parse_str(npy_cur *c, char *dst, size_t cap) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return dict_error(c, "expected a string");
    char q = *c->p++;
    const char *s = c->p;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\') return dict_error(c, "escapes are not supported");
        c->p++;
    }
    if (c->p >= c->end) return dict_error(c, "unterminated string");
    size_t n = (size_t)(c->p - s);
    if (n >= cap) return dict_error(c, "string too long");
    memcpy(dst, s, n);
    dst[n] = '\0';
    c->p++;
    return 0;
}

static int parse_bool(npy_cur *c, bool *out) {
    skip_ws(c);
    size_t left = (size_t)(c->end - c->p);
    if (left >= 4 && memcmp(c->p, "True", 4) == 0) {
        c->p += 4;
        *out = true;
    } else if (left >= 5 && memcmp(c->p, "False", 5) == 0) {
        c->p += 5;
        *out = false;
    } else {
        return dict_error(c, "expected True or False");
    }
    return 0;
}

/* a tuple of non-negative ints: "()", "(3,)", "(2, 3)"; "3L" from Python 2 */
static int parse_shape(npy_cur *c, npy_header *h) {
    if (!eat(c, '(')) return dict_error(c, "expected a shape tuple");
    h->ndim = 0;
    if (eat(c, ')')) return 0;
    for (;;) {
        skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return dict_error(c, "expected a non-negative integer in the shape");
        if (h->ndim == FAROL_MAX_DIMS)
            return farol_io_error("load", c->src, "shape has more than %d dims", FAROL_MAX_DIMS);
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - (*c->p - '0')) / 10)
                return dict_error(c, "shape dim too large");
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') c->p++;
        h->shape[h->ndim++] = v;
        if (eat(c, ')')) return 0;
        if (!eat(c, ',')) return dict_error(c, "expected ',' or ')' in the shape");
        if (eat(c, ')')) return 0;
    }
}

/* {'descr': ..., 'fortran_order': ..., 'shape': ...}, each key once */
static int parse_dict(npy_cur *c, npy_header *h) {
    enum { DESCR = 1, FORTRAN = 2, SHAPE = 4 };
    int seen = 0;
    if (!eat(c, '{')) return dict_error(c, "expected '{'");
    while (!eat(c, '}')) {
        char key[24];
        if (parse_str(c, key, sizeof key) < 0) return -1;
        if (!eat(c, ':')) return dict_error(c, "expected ':'");
        int bit = strcmp(key, "descr") == 0 ? DESCR : strcmp(key, "fortran_order") == 0 ? FORTRAN
                : strcmp(key, "shape") == 0 ? SHAPE : 0;
        if (bit == 0) return farol_io_error("load", c->src, "unexpected key '%s' in the header", key);
        if (seen & bit) return farol_io_error("load", c->src, "duplicate key '%s' in the header", key);
        seen |= bit;
        int rc = bit == DESCR ? parse_str(c, h->descr, sizeof h->descr)
               : bit == FORTRAN ? parse_bool(c, &h->fortran) : parse_shape(c, h);
        if (rc < 0) return -1;
        if (!eat(c, ',')) {
            if (!eat(c, '}')) return dict_error(c, "expected ',' or '}'");
            break;
        }
    }
    skip_ws(c);
    if (c->p != c->end) return dict_error(c, "characters after the dict");
    const char *missing = !(seen & DESCR) ? "descr" : !(seen & FORTRAN) ? "fortran_order"
                        : !(seen & SHAPE) ? "shape" : NULL;
    if (missing) return farol_io_error("load", c->src, "header lacks '%s'", missing);
    h->fd = farol_fd_by_npy(h->descr);
    if (!h->fd)
        return farol_io_error("load", c->src, "unsupported descr '%s' (farol reads %s)", h->descr, farol_fd_npy_list());
    return 0;
}

/* a nested error without its "farol: " */
static const char *strip_prefix(const char *msg) {
    return strncmp(msg, "farol: ", 7) == 0 ? msg + 7 : msg;
}

/* a tensor of that shape holding the (maybe unaligned) values, converted */
static farol_tensor *from_bytes(int ndim, const int64_t *shape, const farol_file_dtype *fd,
                                const unsigned char *data) {
    farol_tensor *t = farol_empty(ndim, shape, fd->to);
    if (t) farol_fd_decode(fd, data, farol_numel(t), farol_data(t));
    return t;
}

/* Fortran-order data of shape s: read it as the reversed shape in C order,
 * view that transposed back to s, and copy to C order. */
static farol_tensor *from_fortran(const npy_header *h, const unsigned char *data, size_t nbytes) {
    if (nbytes == 0) return from_bytes(h->ndim, h->shape, h->fd, data);  /* no order to fix */
    int n = h->ndim;
    int64_t rev[FAROL_MAX_DIMS], strides[FAROL_MAX_DIMS], step = 1;
    for (int i = 0; i < n; i++) {
        rev[i] = h->shape[n - 1 - i];
        strides[i] = step;     /* dim i of s moves by the product of dims before it */
        step *= h->shape[i];
    }
    farol_tensor *raw = from_bytes(n, rev, h->fd, data);
    if (!raw) return NULL;
    farol_tensor *view = farol_make_view(raw, n, h->shape, strides, 0);
    farol_tensor *out = view ? farol_contig_raw(view) : NULL;
    farol_release(view);
    farol_release(raw);
    return out;
}

static farol_tensor *npy_read(const unsigned char *buf, size_t len, const char *src,
                              const char **stored) {
    if (len < 10) return farol_io_error("load", src, "%zu bytes, too short for a .npy header", len), NULL;
    if (memcmp(buf, npy_magic, sizeof npy_magic) != 0)
        return farol_io_error("load", src, "not a .npy file (bad magic)"), NULL;
    int major = buf[6], minor = buf[7];
    size_t hlen, start;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        start = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return farol_io_error("load", src, "%zu bytes, too short for a .npy header", len), NULL;
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        start = 12;
    } else {
        return farol_io_error("load", src, "unsupported .npy version %d.%d", major, minor), NULL;
    }
    if (hlen > len - start)
        return farol_io_error("load", src, "header length %zu larger than the file (%zu bytes follow it)",
                         hlen, len - start), NULL;

    npy_header h = {0};
    npy_cur c = {src, (const char *)buf + start, (const char *)buf + start,
                 (const char *)buf + start + hlen};
    if (parse_dict(&c, &h) < 0) return NULL;

    /* span reads zero dims as ones, as strides do: it must fit too */
    int64_t span = 1, nbytes;
    bool empty = false;
    for (int i = 0; i < h.ndim; i++) {
        empty |= h.shape[i] == 0;
        if (__builtin_mul_overflow(span, h.shape[i] ? h.shape[i] : 1, &span))
            return farol_io_error("load", src, "shape overflows the element count"), NULL;
    }
    int64_t numel = empty ? 0 : span;
    if (__builtin_mul_overflow(numel, (int64_t)h.fd->size, &nbytes))
        return farol_io_error("load", src, "shape overflows the byte count"), NULL;
    size_t have = len - start - hlen;
    if ((uint64_t)nbytes > have) {
        char sh[128];
        return farol_io_error("load", src, "data is %zu bytes but %s %s needs %lld", have, h.descr,
                         farol_shape_str(h.ndim, h.shape, sh, sizeof sh), (long long)nbytes), NULL;
    }

    const unsigned char *data = buf + start + hlen;
    size_t n = (size_t)nbytes;
    farol_tensor *t = h.fortran && h.ndim > 1 ? from_fortran(&h, data, n)
                                              : from_bytes(h.ndim, h.shape, h.fd, data);
    if (t && stored) *stored = h.fd->name;
    if (!t) {
        char why[256];
        snprintf(why, sizeof why, "%s", strip_prefix(farol_last_error()));
        farol_io_error("load", src, "%s", why);
    }
    return t;
}

farol_tensor *farol_npy_parse(const unsigned char *buf, size_t len) {
    if (!buf && len) return farol_io_error("load", "buffer", "NULL data of %zu bytes", len), NULL;
    return npy_read(buf, len, "buffer", NULL);
}

/* .npy files hold one array: read it whole, then parse. */
farol_tensor *farol_load_npy(const char *path) { return farol_load_npy_stored(path, NULL); }

farol_tensor *farol_load_npy_stored(const char *path, const char **stored) {
    if (!path) return farol_io_error("load", "(null)", "no path"), NULL;
    char why[160];
    uint64_t fsize = 0;
    FILE *f = farol_open_regular(path, why, sizeof why, &fsize);
    if (!f) return farol_io_error("load", path, "%s", why), NULL;
    unsigned char *buf = NULL;
    size_t size = 0;
    farol_tensor *t = NULL;
    if (fsize > SIZE_MAX - 1 || !(buf = farol_malloc((size = (size_t)fsize) + 1))) {
        farol_io_error("load", path, "out of memory for %llu bytes", (unsigned long long)fsize);
    } else if (fread(buf, 1, size, f) != size) {
        farol_io_error("load", path, "cannot read %zu bytes (%s)", size,
                  ferror(f) ? strerror(errno) : "file shrank");
    } else {
        t = npy_read(buf, size, path, stored);
    }
    farol_free(buf);
    fclose(f);
    return t;
}

/* ---- writing: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces to a multiple of 64 bytes with the 10-byte preamble,
 * ending in '\n', as numpy writes it; path + ".tmp" renamed over path */
int farol_save_npy(const char *path, const farol_tensor *t, const char *dtype) {
    if (!path) return farol_set_error("farol: save: (null): no path"), -1;
    if (!t) return farol_set_error("farol: save: %s: no tensor", path), -1;
    const farol_file_dtype *as = NULL;
    if (dtype && !(as = farol_save_dtype(path, dtype, true))) return -1;
    const farol_file_dtype *fd = as && farol_is_floating(t->dtype) ? as : farol_fd_of(t->dtype);
    char head[512];
    int len = snprintf(head, sizeof head, "{'descr': '%s', 'fortran_order': False, 'shape': (", fd->npy);
    for (int i = 0; i < t->ndim; i++)
        len += snprintf(head + len, sizeof head - (size_t)len, "%s%lld%s", i ? ", " : "",
                        (long long)t->shape[i], t->ndim == 1 ? "," : "");
    len += snprintf(head + len, sizeof head - (size_t)len, "), }");
    int total = (10 + len + 1 + 63) / 64 * 64;   /* preamble, dict, '\n' */
    int hlen = total - 10;
    memset(head + len, ' ', (size_t)(hlen - 1 - len));
    head[hlen - 1] = '\n';

    size_t plen = strlen(path);
    char *tmp = farol_malloc(plen + 5);
    if (!tmp) return farol_set_error("farol: save: %s: out of memory", path), -1;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int rc = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        farol_set_error("farol: save: %s: cannot open '%s' for writing (%s)", path, tmp, strerror(errno));
        rc = -1;
    } else {
        unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                                 (unsigned char)(hlen >> 8)};
        if (fwrite(pre, 1, 10, f) != 10 || fwrite(head, 1, (size_t)hlen, f) != (size_t)hlen) {
            farol_set_error("farol: save: %s: cannot write the header (%s)", path, strerror(errno));
            rc = -1;
        }
        if (rc == 0) rc = farol_write_values(f, path, "array", t, fd);
        if (fclose(f) != 0 && rc == 0) {
            farol_set_error("farol: save: %s: cannot close '%s' (%s)", path, tmp, strerror(errno));
            rc = -1;
        }
        if (rc == 0 && rename(tmp, path) != 0) {
            farol_set_error("farol: save: %s: cannot rename '%s' to it (%s)", path, tmp, strerror(errno));
            rc = -1;
        }
        if (rc != 0) remove(tmp);
    }
    farol_free(tmp);
    return rc;
}
