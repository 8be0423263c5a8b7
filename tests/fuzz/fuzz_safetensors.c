/* libFuzzer harness: farol_safetensors_parse on arbitrary bytes; what it
 * accepts is saved and loaded back, which must give the same dict (so the
 * writer meets hostile names and metadata too).
 *
 *   tests/fuzz/run.sh safetensors 60     (builds with clang, fuzzes 60 seconds)
 *
 * The same function is replayed over the corpus by tests/fuzz/replay.c in
 * the normal build.  A crash, a sanitizer report or a broken invariant
 * (__builtin_trap) is a bug in the loader. */
#define _POSIX_C_SOURCE 200809L

#include "farol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_tensor(const farol_tensor *a, const farol_tensor *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    size_t n = (size_t)farol_numel(a) * farol_dtype_size(a->dtype);
    return n == 0 || memcmp(farol_data(a), farol_data(b), n) == 0;
}

/* save d, load it back: same names, tensors and metadata, in order */
static void round_trip(const farol_tensor_dict *d) {
    static char path[256];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/farol_fuzz_%ld.safetensors", dir ? dir : "/tmp",
                 (long)getpid());
    }
    farol_tensor_dict back;
    if (farol_save_safetensors(path, d) != 0 || farol_load_safetensors(path, &back) != 0)
        __builtin_trap();
    remove(path);
    if (back.n != d->n || back.n_meta != d->n_meta) __builtin_trap();
    for (int i = 0; i < d->n; i++)
        if (strcmp(back.names[i], d->names[i]) != 0 || !same_tensor(back.tensors[i], d->tensors[i]))
            __builtin_trap();
    for (int i = 0; i < d->n_meta; i++)
        if (strcmp(back.meta_keys[i], d->meta_keys[i]) != 0 ||
            strcmp(back.meta_values[i], d->meta_values[i]) != 0)
            __builtin_trap();
    farol_dict_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    farol_tensor_dict d;
    if (farol_safetensors_parse(data, size, &d) != 0) {
        /* a rejection leaves the dict empty and says why */
        if (d.n != 0 || d.names || d.tensors || d.n_meta != 0 ||
            strncmp(farol_last_error(), "farol: load: buffer: ", 21) != 0)
            __builtin_trap();
        return 0;
    }
    /* what was accepted fits in the input and is readable */
    size_t total = 0;
    for (int i = 0; i < d.n; i++) {
        const farol_tensor *t = d.tensors[i];
        size_t nbytes = (size_t)farol_numel(t) * farol_dtype_size(t->dtype);
        total += nbytes;
        if (!d.names[i] || t->ndim > FAROL_MAX_DIMS || total > size) __builtin_trap();
        volatile unsigned char sink = 0;
        for (size_t k = 0; k < nbytes; k++) sink ^= ((const unsigned char *)farol_data(t))[k];
        if (farol_dict_get(&d, d.names[i]) == NULL) __builtin_trap();
    }
    for (int i = 0; i < d.n_meta; i++)
        if (!d.meta_keys[i] || !farol_dict_meta(&d, d.meta_keys[i])) __builtin_trap();
    round_trip(&d);
    farol_dict_free(&d);
    return 0;
}
