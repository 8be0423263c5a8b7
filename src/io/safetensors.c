/* safetensors: an 8-byte little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}, ...,
 *    "__metadata__": {"key": "value", ...}}
 * padded with spaces, then the data area; offsets are relative to its start.
 *
 * Every file is hostile until proven otherwise: each length is checked
 * against the bytes really present before anything is read or allocated, so
 * a corrupt file costs at most a small multiple of its own size in memory.
 * A file is read header first, then each tensor straight into its storage
 * (no second copy of the whole file).  Tensor bytes are copied verbatim: the
 * format is little-endian and so must the host be (x86_64, aarch64). */
#define _POSIX_C_SOURCE 200809L

#include "internal.h"
#include "io/filedtype.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "farol's file formats are little-endian and so must the host be"
#endif

/* the limit of the reference implementation (safetensors' MAX_HEADER_SIZE) */
#define ST_MAX_HEADER 100000000u
/* largest integer a JSON number (a double in cJSON) holds exactly */
#define ST_MAX_INT 9007199254740992.0

/* Where the bytes come from: a memory image or an open file. */
typedef struct {
    const char *name;           /* the path, or "buffer": for messages */
    const unsigned char *buf;   /* the image, or NULL */
    FILE *f;                    /* else the file */
    uint64_t size;              /* bytes in the image or the file */
} st_src;

/* one tensor entry of the header, validated */
typedef struct {
    const char *name;           /* owned by the cJSON tree */
    const farol_file_dtype *fd; /* as stored */
    int ndim;
    int64_t shape[FAROL_MAX_DIMS];
    uint64_t begin, end;        /* in the data area */
} st_entry;

#define load_error(s, ...) farol_io_error("load", (s)->name, __VA_ARGS__)

/* n bytes at off; the caller has checked off + n <= size */
static int src_read(const st_src *s, uint64_t off, void *dst, size_t n) {
    if (n == 0) return 0;
    if (s->buf) {
        memcpy(dst, s->buf + off, n);
        return 0;
    }
    if (fseeko(s->f, (off_t)off, SEEK_SET) != 0 || fread(dst, 1, n, s->f) != n)
        return load_error(s, "cannot read %zu bytes at offset %llu (%s)", n,
                          (unsigned long long)off, ferror(s->f) ? strerror(errno) : "file shrank");
    return 0;
}

/* a nested error without its "farol: " */
static const char *strip_prefix(const char *msg) {
    return strncmp(msg, "farol: ", 7) == 0 ? msg + 7 : msg;
}

/* a JSON number that is an integer in [0, 2^53] */
static bool json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= ST_MAX_INT) || d != floor(d)) return false;
    *out = (uint64_t)d;
    return true;
}

/* Checks one header entry against the data area of data_len bytes. */
static int parse_entry(const st_src *s, const cJSON *item, uint64_t data_len, st_entry *e) {
    const char *nm = item->string;
    e->name = nm;
    if (!cJSON_IsObject(item)) return load_error(s, "entry '%.64s' is not an object", nm);

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    if (!cJSON_IsString(dt)) return load_error(s, "tensor '%.64s': missing or invalid dtype", nm);
    e->fd = farol_fd_by_st(dt->valuestring);
    if (!e->fd)
        return load_error(s, "tensor '%.64s': unsupported dtype '%.16s' "
                          "(farol reads %s)", nm, dt->valuestring, farol_fd_st_list());

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    if (!cJSON_IsArray(shape)) return load_error(s, "tensor '%.64s': shape is not an array", nm);
    /* span reads zero dims as ones, as strides do: it must fit too */
    int n = 0;
    int64_t span = 1;
    bool empty = false;
    const cJSON *v;
    cJSON_ArrayForEach(v, shape) {
        uint64_t dim;
        if (n == FAROL_MAX_DIMS)
            return load_error(s, "tensor '%.64s': shape has more than %d dims", nm, FAROL_MAX_DIMS);
        if (!json_uint(v, &dim))
            return load_error(s, "tensor '%.64s': shape[%d] is not a non-negative integer", nm, n);
        e->shape[n++] = (int64_t)dim;
        empty |= dim == 0;
        if (__builtin_mul_overflow(span, dim ? (int64_t)dim : 1, &span))
            return load_error(s, "tensor '%.64s': shape overflows the element count", nm);
    }
    e->ndim = n;
    int64_t numel = empty ? 0 : span, nbytes;
    if (__builtin_mul_overflow(numel, (int64_t)e->fd->size, &nbytes))
        return load_error(s, "tensor '%.64s': shape overflows the byte count", nm);

    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(offs->child, &e->begin) || !json_uint(offs->child->next, &e->end))
        return load_error(s, "tensor '%.64s': data_offsets is not two non-negative integers", nm);
    if (e->begin > e->end)
        return load_error(s, "tensor '%.64s': data_offsets [%llu, %llu] has begin > end", nm,
                          (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > data_len)
        return load_error(s, "tensor '%.64s': data_offsets [%llu, %llu] outside the data area "
                          "(%llu bytes)", nm, (unsigned long long)e->begin,
                          (unsigned long long)e->end, (unsigned long long)data_len);
    if (e->end - e->begin != (uint64_t)nbytes) {
        char sh[128];
        return load_error(s, "tensor '%.64s': data_offsets [%llu, %llu] span %llu bytes but "
                          "%s %s needs %lld", nm, (unsigned long long)e->begin,
                          (unsigned long long)e->end, (unsigned long long)(e->end - e->begin),
                          e->fd->st, farol_shape_str(n, e->shape, sh, sizeof sh),
                          (long long)nbytes);
    }
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* index into names of a name that occurs twice, or -1; sorts names */
static int find_duplicate(const char **names, int n) {
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return i;
    return -1;
}

static int cmp_begin(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* No two non-empty tensors may share a byte of the data area. */
static int check_overlap(const st_src *s, const st_entry *e, int n) {
    const st_entry **ord = farol_malloc((size_t)n * sizeof *ord);
    if (!ord) return load_error(s, "out of memory checking %d tensors", n);
    for (int i = 0; i < n; i++) ord[i] = &e[i];
    qsort(ord, (size_t)n, sizeof *ord, cmp_begin);
    const st_entry *prev = NULL;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        if (ord[i]->begin == ord[i]->end) continue;  /* empty: occupies nothing */
        if (prev && ord[i]->begin < prev->end)
            rc = load_error(s, "tensors '%.64s' and '%.64s' overlap in the data area", prev->name,
                            ord[i]->name);
        prev = ord[i];
    }
    farol_free(ord);
    return rc;
}

/* Names of entries (tensors or metadata keys) must be unique. */
static int check_unique(const st_src *s, const char *what, const char **names, int n) {
    int d = find_duplicate(names, n);
    if (d >= 0) return load_error(s, "duplicate %s '%.64s'", what, names[d]);
    return 0;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = farol_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* The "__metadata__" object: string values only, unique keys. */
static int read_meta(const st_src *s, const cJSON *meta, farol_tensor_dict *out) {
    if (!cJSON_IsObject(meta)) return load_error(s, "__metadata__ is not an object");
    int n = cJSON_GetArraySize(meta);
    const char **keys = farol_malloc((size_t)n * sizeof *keys);
    out->meta_keys = farol_calloc((size_t)n, sizeof *out->meta_keys);
    out->meta_values = farol_calloc((size_t)n, sizeof *out->meta_values);
    int rc = 0, i = 0;
    if (!keys || !out->meta_keys || !out->meta_values)
        rc = load_error(s, "out of memory for %d metadata entries", n);
    const cJSON *v;
    cJSON_ArrayForEach(v, meta) {
        if (rc) break;
        if (!cJSON_IsString(v))
            rc = load_error(s, "__metadata__ value of '%.64s' is not a string", v->string);
        else
            keys[i++] = v->string;
    }
    if (rc == 0) rc = check_unique(s, "metadata key", keys, n);
    farol_free(keys);
    for (v = meta->child; rc == 0 && v; v = v->next) {
        char *k = dup_str(v->string), *val = dup_str(v->valuestring);
        if (k) out->meta_keys[out->n_meta] = k;
        if (val) out->meta_values[out->n_meta] = val;
        if (k || val) out->n_meta++;  /* counted so farol_dict_free frees it */
        if (!k || !val) rc = load_error(s, "out of memory copying metadata");
    }
    return rc;
}

/* Allocates and reads each tensor, in header order. */
static int read_tensors(const st_src *s, const st_entry *e, int n, uint64_t data_start,
                        farol_tensor_dict *out) {
    out->names = farol_calloc((size_t)n, sizeof *out->names);
    out->tensors = farol_calloc((size_t)n, sizeof *out->tensors);
    out->stored = farol_calloc((size_t)n, sizeof *out->stored);
    if (!out->names || !out->tensors || !out->stored)
        return load_error(s, "out of memory for %d tensors", n);
    for (int i = 0; i < n; i++) {
        char *nm = dup_str(e[i].name);
        farol_tensor *t = farol_empty(e[i].ndim, e[i].shape, e[i].fd->to);
        if (!nm || !t) {
            char why[256];
            const char *err = nm ? strip_prefix(farol_last_error()) : "out of memory";
            snprintf(why, sizeof why, "%s", err);
            farol_free(nm);
            farol_release(t);
            return load_error(s, "tensor '%.64s': %s", e[i].name, why);
        }
        out->names[i] = nm;
        out->tensors[i] = t;
        out->stored[i] = e[i].fd->name;
        out->n = i + 1;
        size_t nbytes = e[i].end - e[i].begin;
        if (farol_fd_of(e[i].fd->to) == e[i].fd) {  /* farol's own dtype: straight in */
            if (src_read(s, data_start + e[i].begin, farol_data(t), nbytes) < 0) return -1;
            continue;
        }
        /* converted on the way in, from a buffer the size of the stored bytes */
        void *raw = farol_malloc(nbytes ? nbytes : 1);
        if (!raw) return load_error(s, "tensor '%.64s': out of memory for %zu bytes", e[i].name, nbytes);
        int rc = src_read(s, data_start + e[i].begin, raw, nbytes);
        if (rc == 0) farol_fd_decode(e[i].fd, raw, farol_numel(t), farol_data(t));
        farol_free(raw);
        if (rc < 0) return -1;
    }
    return 0;
}

/* Validates the parsed header, then reads metadata and tensors. */
static int read_body(const st_src *s, const cJSON *root, uint64_t data_start,
                     farol_tensor_dict *out) {
    int n_children = cJSON_GetArraySize(root);
    st_entry *e = farol_malloc((size_t)n_children * sizeof *e);
    const char **names = farol_malloc((size_t)n_children * sizeof *names);
    const cJSON *meta = NULL, *item;
    int n = 0, rc = 0;
    if (!e || !names) rc = load_error(s, "out of memory for %d header entries", n_children);
    cJSON_ArrayForEach(item, root) {
        if (rc) break;
        if (strcmp(item->string, "__metadata__") == 0) {
            if (meta) rc = load_error(s, "duplicate __metadata__");
            meta = item;
            continue;
        }
        rc = parse_entry(s, item, s->size - data_start, &e[n]);
        names[n] = e[n].name;
        n++;
    }
    if (rc == 0) rc = check_unique(s, "tensor name", names, n);
    if (rc == 0) rc = check_overlap(s, e, n);
    if (rc == 0 && meta) rc = read_meta(s, meta, out);
    if (rc == 0) rc = read_tensors(s, e, n, data_start, out);
    farol_free(names);
    farol_free(e);
    return rc;
}

static int st_read(const st_src *s, farol_tensor_dict *out) {
    memset(out, 0, sizeof *out);
    if (s->size < 8)
        return load_error(s, "%llu bytes, too short for the 8-byte header length",
                          (unsigned long long)s->size);
    unsigned char lb[8];
    if (src_read(s, 0, lb, 8) < 0) return -1;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lb[i];
    if (hlen > ST_MAX_HEADER)
        return load_error(s, "header length %llu exceeds the 100 MB limit",
                          (unsigned long long)hlen);
    if (hlen > s->size - 8)
        return load_error(s, "header length %llu larger than the file (%llu bytes follow it)",
                          (unsigned long long)hlen, (unsigned long long)(s->size - 8));

    /* a NUL-terminated copy: cJSON never sees past the header */
    char *text = farol_malloc((size_t)hlen + 1);
    if (!text)
        return load_error(s, "out of memory for a %llu-byte header", (unsigned long long)hlen);
    if (src_read(s, 8, text, (size_t)hlen) < 0) {
        farol_free(text);
        return -1;
    }
    text[hlen] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, 0);
    int rc = 0;
    if (!root) {
        rc = load_error(s, "header is not valid JSON (error at byte %lld of %llu)",
                        end ? (long long)(end - text) : -1LL, (unsigned long long)hlen);
    } else if (!cJSON_IsObject(root)) {
        rc = load_error(s, "header is not a JSON object");
    } else {
        for (const char *p = end; rc == 0 && p < text + hlen; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
                rc = load_error(s, "header has bytes after its JSON object (at byte %lld)",
                                (long long)(p - text));
    }
    if (rc == 0) rc = read_body(s, root, 8 + hlen, out);
    cJSON_Delete(root);
    farol_free(text);
    if (rc) farol_dict_free(out);
    return rc;
}

int farol_safetensors_parse(const unsigned char *buf, size_t len, farol_tensor_dict *out) {
    st_src s = {"buffer", buf, NULL, len};
    if (!out) return load_error(&s, "no output dict");
    if (!buf && len) {
        memset(out, 0, sizeof *out);
        return load_error(&s, "NULL data of %zu bytes", len);
    }
    return st_read(&s, out);
}

int farol_load_safetensors(const char *path, farol_tensor_dict *out) {
    if (!path) path = "(null)";
    if (!out) return farol_io_error("load", path, "no output dict");
    memset(out, 0, sizeof *out);
    char why[160];
    st_src s = {path, NULL, NULL, 0};
    s.f = farol_open_regular(path, why, sizeof why, &s.size);
    if (!s.f) return load_error(&s, "%s", why);
    int rc = st_read(&s, out);
    fclose(s.f);
    return rc;
}

/* ---- writing ---- */

#define save_error(path, ...) farol_io_error("save", path, __VA_ARGS__)

static bool add_uint_array(cJSON *obj, const char *key, int n, const int64_t *v) {
    cJSON *a = cJSON_AddArrayToObject(obj, key);
    if (!a) return false;
    for (int i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateNumber((double)v[i]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            return false;
        }
    }
    return true;
}

/* how t is written: floating tensors as `as` when given, the rest as they are */
static const farol_file_dtype *stored_as(const farol_tensor *t, const farol_file_dtype *as) {
    return as && farol_is_floating(t->dtype) ? as : farol_fd_of(t->dtype);
}

/* The header JSON (unpadded, cJSON-allocated), or NULL with the error set. */
static char *build_header(const char *path, const farol_tensor_dict *d, const farol_file_dtype *as) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    if (ok && d->n_meta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        ok = meta != NULL;
        for (int i = 0; ok && i < d->n_meta; i++)
            ok = cJSON_AddStringToObject(meta, d->meta_keys[i], d->meta_values[i]) != NULL;
    }
    int64_t off = 0;
    for (int i = 0; ok && i < d->n; i++) {
        const farol_tensor *t = d->tensors[i];
        const farol_file_dtype *fd = stored_as(t, as);
        int64_t range[2] = {off, off + farol_numel(t) * (int64_t)fd->size};
        cJSON *e = cJSON_AddObjectToObject(root, d->names[i]);
        ok = e && cJSON_AddStringToObject(e, "dtype", fd->st) &&
             add_uint_array(e, "shape", t->ndim, t->shape) &&
             add_uint_array(e, "data_offsets", 2, range);
        off = range[1];
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) save_error(path, "out of memory building the header");
    return json;
}

/* What may be saved: named tensors of farol's dtypes, unique names. */
static int check_dict(const char *path, const farol_tensor_dict *d) {
    if (d->n < 0 || d->n_meta < 0 || (d->n > 0 && (!d->names || !d->tensors)) ||
        (d->n_meta > 0 && (!d->meta_keys || !d->meta_values)))
        return save_error(path, "malformed dict (n = %d, n_meta = %d)", d->n, d->n_meta);
    for (int i = 0; i < d->n; i++) {
        if (!d->names[i] || !d->tensors[i])
            return save_error(path, "entry %d has no %s", i, d->names[i] ? "tensor" : "name");
        if (strcmp(d->names[i], "__metadata__") == 0)
            return save_error(path, "tensor name '__metadata__' is reserved");
        if ((unsigned)d->tensors[i]->dtype >= FAROL_DTYPE_COUNT)
            return save_error(path, "tensor '%.64s' has an invalid dtype", d->names[i]);
    }
    for (int i = 0; i < d->n_meta; i++)
        if (!d->meta_keys[i] || !d->meta_values[i])
            return save_error(path, "metadata entry %d has no %s", i,
                              d->meta_keys[i] ? "value" : "key");
    const char **names = farol_malloc((size_t)d->n * sizeof *names);
    if (!names) return save_error(path, "out of memory");
    memcpy(names, d->names, (size_t)d->n * sizeof *names);
    int dup = find_duplicate(names, d->n);
    int rc = dup >= 0 ? save_error(path, "duplicate tensor name '%.64s'", names[dup]) : 0;
    if (rc == 0 && d->n_meta > 0) {
        farol_free(names);
        names = farol_malloc((size_t)d->n_meta * sizeof *names);
        if (!names) return save_error(path, "out of memory");
        memcpy(names, d->meta_keys, (size_t)d->n_meta * sizeof *names);
        dup = find_duplicate(names, d->n_meta);
        if (dup >= 0) rc = save_error(path, "duplicate metadata key '%.64s'", names[dup]);
    }
    farol_free(names);
    return rc;
}

/* The values of t, contiguous in logical order, as fd: 0, or -1 with the
 * error set.  Shared with the .npy writer. */
int farol_write_values(FILE *f, const char *path, const char *name, const farol_tensor *t,
                       const farol_file_dtype *fd) {
    int64_t n = farol_numel(t);
    size_t nbytes = (size_t)n * (size_t)fd->size;
    if (nbytes == 0) return 0;
    void *tmp = NULL, *half = NULL;
    const void *src = farol_data(t);
    if (fd->to != t->dtype || fd != farol_fd_of(fd->to) || !farol_is_contiguous(t)) {
        /* farol_copy_to_buffer converts between farol's dtypes; halves go
         * through float32 */
        farol_dtype via = fd->size == 2 ? FAROL_F32 : fd->to;
        tmp = farol_malloc((size_t)n * farol_dtype_size(via));
        if (fd->size == 2) half = farol_malloc(nbytes);
        if (!tmp || (fd->size == 2 && !half)) {
            farol_free(tmp);
            farol_free(half);
            return save_error(path, "out of memory copying tensor '%.64s'", name);
        }
        farol_copy_to_buffer(t, tmp, via);
        if (half) farol_fd_encode_half(fd, tmp, n, half);
        src = half ? half : tmp;
    }
    int rc = 0;
    if (fwrite(src, 1, nbytes, f) != nbytes)
        rc = save_error(path, "cannot write tensor '%.64s' (%s)", name, strerror(errno));
    farol_free(tmp);
    farol_free(half);
    return rc;
}

/* Writes path + ".tmp" and renames it over path, so a failed save never
 * leaves a half-written file under the real name. */
/* a dtype a floating tensor can be written as, or NULL with the error set */
const farol_file_dtype *farol_save_dtype(const char *path, const char *dtype, bool npy) {
    const farol_file_dtype *fd = farol_fd_by_name(dtype);
    if (!fd || fd->to == FAROL_I64 || fd->kind == FD_BOOL || (npy && !fd->npy)) {
        save_error(path, "cannot write floating tensors as '%s' (%s: float32, float64, float16%s)",
                   dtype, npy ? ".npy takes" : "valid", npy ? "" : ", bfloat16");
        return NULL;
    }
    return fd;
}

int farol_save_safetensors(const char *path, const farol_tensor_dict *d) {
    return farol_save_safetensors_as(path, d, NULL);
}

int farol_save_safetensors_as(const char *path, const farol_tensor_dict *d, const char *dtype) {
    if (!path) return save_error("(null)", "no path");
    if (!d) return save_error(path, "no dict");
    const farol_file_dtype *as = NULL;
    if (dtype && !(as = farol_save_dtype(path, dtype, false))) return -1;
    if (check_dict(path, d) < 0) return -1;
    char *json = build_header(path, d, as);
    if (!json) return -1;
    size_t hlen = strlen(json), padded = (hlen + 7) / 8 * 8;
    size_t plen = strlen(path);
    char *tmp = farol_malloc(plen + 5);
    if (!tmp) {
        cJSON_free(json);
        return save_error(path, "out of memory");
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    int rc = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rc = save_error(path, "cannot open '%s' for writing (%s)", tmp, strerror(errno));
    } else {
        unsigned char lb[8];
        for (int i = 0; i < 8; i++) lb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
        bool ok = fwrite(lb, 1, 8, f) == 8 && fwrite(json, 1, hlen, f) == hlen;
        for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
        if (!ok) rc = save_error(path, "cannot write the header (%s)", strerror(errno));
        for (int i = 0; rc == 0 && i < d->n; i++)
            rc = farol_write_values(f, path, d->names[i], d->tensors[i], stored_as(d->tensors[i], as));
        if (fclose(f) != 0 && rc == 0)
            rc = save_error(path, "cannot close '%s' (%s)", tmp, strerror(errno));
        if (rc == 0 && rename(tmp, path) != 0)
            rc = save_error(path, "cannot rename '%s' to it (%s)", tmp, strerror(errno));
        if (rc != 0) remove(tmp);
    }
    farol_free(tmp);
    cJSON_free(json);
    return rc;
}
