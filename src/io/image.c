/* Images: PNG and JPEG in, PNG out, with stb_image and stb_image_write (the
 * implementations come from Debian's libstb, linked, not compiled here).
 *
 * A loaded image is a float32 C x H x W tensor in [0, 1], C being the file's
 * channels (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA) unless asked for.  Files
 * are hostile: the whole file is read (with a size cap) and its declared size
 * checked with stbi_info before stb allocates anything for the pixels. */
#define _POSIX_C_SOURCE 200809L

#include "internal.h"
#include "io/filedtype.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image.h>
#include <stb_image_write.h>

/* a 1 GiB file or an image of more than 2^26 pixels (8192 x 8192) is
 * refused: a hostile header must not make farol allocate gigabytes */
#define IMAGE_MAX_FILE ((size_t)1 << 30)
#define IMAGE_MAX_PIXELS ((int64_t)1 << 26)

/* the file's bytes (malloc'd) or NULL with the error set */
static unsigned char *read_file(const char *path, size_t *len) {
    char why[160];
    uint64_t size = 0;
    FILE *f = farol_open_regular(path, why, sizeof why, &size);  /* a FIFO must not block */
    if (!f) {
        farol_io_error("image.load", path, "%s", why);
        return NULL;
    }
    if (size > IMAGE_MAX_FILE) {
        farol_io_error("image.load", path, "file of %llu bytes, more than the limit of %zu",
                    (unsigned long long)size, IMAGE_MAX_FILE);
        fclose(f);
        return NULL;
    }
    size_t n = (size_t)size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        farol_io_error("image.load", path, "out of memory reading %zu bytes", n);
        fclose(f);
        return NULL;
    }
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        farol_io_error("image.load", path, "read %zu of %zu bytes", got, n);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

farol_tensor *farol_image_load(const char *path, int channels) {
    if (channels < 0 || channels > 4) {
        farol_set_error("farol: image.load: channels must be 1 to 4, got %d", channels);
        return NULL;
    }
    size_t len = 0;
    unsigned char *buf = read_file(path, &len);
    if (!buf) return NULL;
    if (len > (size_t)INT32_MAX) {
        farol_io_error("image.load", path, "file too large for stb_image");
        free(buf);
        return NULL;
    }
    int w = 0, h = 0, comp = 0;
    int ok = stbi_info_from_memory(buf, (int)len, &w, &h, &comp);
    /* stb refuses a PNG over 2^30 bytes without saying so: read its IHDR
     * size ourselves, so the message tells what the file declares */
    static const unsigned char png_sig[8] = {137, 'P', 'N', 'G', '\r', '\n', 26, '\n'};
    if (!ok && len >= 24 && memcmp(buf, png_sig, 8) == 0 && memcmp(buf + 12, "IHDR", 4) == 0) {
        uint32_t pw = (uint32_t)buf[16] << 24 | (uint32_t)buf[17] << 16 | (uint32_t)buf[18] << 8 | buf[19];
        uint32_t ph = (uint32_t)buf[20] << 24 | (uint32_t)buf[21] << 16 | (uint32_t)buf[22] << 8 | buf[23];
        if ((uint64_t)pw * ph > (uint64_t)IMAGE_MAX_PIXELS) {
            farol_io_error("image.load", path, "declares %u x %u pixels, more than the limit of %lld pixels", pw, ph,
                        (long long)IMAGE_MAX_PIXELS);
            free(buf);
            return NULL;
        }
    }
    if (!ok) {
        farol_io_error("image.load", path, "not a PNG or JPEG image that farol can read (stb_image: %s)",
                    stbi_failure_reason());
        free(buf);
        return NULL;
    }
    if (w <= 0 || h <= 0 || (int64_t)w * h > IMAGE_MAX_PIXELS) {
        farol_io_error("image.load", path, "declares %d x %d pixels, more than the limit of %lld pixels", w, h,
                    (long long)IMAGE_MAX_PIXELS);
        free(buf);
        return NULL;
    }
    int c = channels ? channels : comp;
    unsigned char *px = stbi_load_from_memory(buf, (int)len, &w, &h, &comp, c);
    free(buf);
    if (!px) {
        farol_io_error("image.load", path, "corrupt or truncated image (stb_image: %s)", stbi_failure_reason());
        return NULL;
    }
    int64_t shape[3] = {c, h, w};
    farol_tensor *t = farol_empty(3, shape, FAROL_F32);
    if (!t) {
        stbi_image_free(px);
        return NULL;
    }
    /* interleaved HWC bytes -> planar CHW floats */
    float *out = farol_data(t);
    int64_t hw = (int64_t)h * w;
    for (int64_t p = 0; p < hw; p++)
        for (int k = 0; k < c; k++) out[k * hw + p] = (float)px[p * c + k] / 255.0f;
    stbi_image_free(px);
    return t;
}

typedef struct {
    FILE *f;
    bool failed;
} png_sink;

static void png_write(void *ctx, void *data, int size) {
    png_sink *s = ctx;
    if (!s->failed && fwrite(data, 1, (size_t)size, s->f) != (size_t)size) s->failed = true;
}

int farol_image_save_png(const char *path, farol_tensor *t) {
    int64_t c, h, w;
    if (t->ndim == 2) {
        c = 1, h = t->shape[0], w = t->shape[1];
    } else if (t->ndim == 3) {
        c = t->shape[0], h = t->shape[1], w = t->shape[2];
    } else {
        farol_set_error("farol: image.save: image must be C x H x W or H x W, got %d dims", t->ndim);
        return -1;
    }
    if (c < 1 || c > 4 || h < 1 || w < 1 || h * w > IMAGE_MAX_PIXELS) {
        char buf[96];
        farol_set_error("farol: image.save: image of shape %s: need 1 to 4 channels and 1 to %lld pixels",
                        farol_shape_str(t->ndim, t->shape, buf, sizeof buf), (long long)IMAGE_MAX_PIXELS);
        return -1;
    }
    farol_tensor *d = farol_cast_raw(t, FAROL_F64);
    if (!d) return -1;
    unsigned char *px = malloc((size_t)(c * h * w));
    if (!px) {
        farol_release(d);
        farol_set_error("farol: image.save: out of memory");
        return -1;
    }
    /* floating values are in [0, 1]; int64 ones in [0, 255]; both clamped */
    double scale = farol_is_floating(t->dtype) ? 255.0 : 1.0;
    const double *in = farol_data(d);
    int64_t hw = h * w;
    for (int64_t p = 0; p < hw; p++)
        for (int64_t k = 0; k < c; k++) {
            double v = in[k * hw + p] * scale;
            v = v != v ? 0 : v < 0 ? 0 : v > 255 ? 255 : v;
            px[p * c + k] = (unsigned char)lround(v);
        }
    farol_release(d);
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(px);
        farol_io_error("image.save", path, "cannot open for writing (%s)", strerror(errno));
        return -1;
    }
    png_sink s = {f, false};
    int ok = stbi_write_png_to_func(png_write, &s, (int)w, (int)h, (int)c, px, (int)(w * c));
    free(px);
    if (fclose(f) != 0) s.failed = true;
    if (!ok || s.failed) {
        farol_io_error("image.save", path, "write failed");
        return -1;
    }
    return 0;
}
