/* libFuzzer harness: farol_npy_parse on arbitrary bytes.
 *
 *   tests/fuzz/run.sh npy 60     (builds with clang, fuzzes 60 seconds)
 *
 * Replayed over the corpus by tests/fuzz/replay.c in the normal build. */
#include "farol.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    farol_tensor *t = farol_npy_parse(data, size);
    if (!t) {
        if (strncmp(farol_last_error(), "farol: load: buffer: ", 21) != 0) __builtin_trap();
        return 0;
    }
    /* an accepted array fits in the input, has C-order strides and is readable */
    size_t nbytes = (size_t)farol_numel(t) * farol_dtype_size(t->dtype);
    if (nbytes > size || t->offset != 0) __builtin_trap();
    int64_t step = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != step) __builtin_trap();
        step *= t->shape[i] > 0 ? t->shape[i] : 1;
    }
    volatile unsigned char sink = 0;
    for (size_t k = 0; k < nbytes; k++) sink ^= ((const unsigned char *)farol_data(t))[k];
    farol_release(t);
    return 0;
}
