/* farol from C, without Lua: Saliency of a small model given as a C
 * callback.  Built as build/saliency_from_c. */
#include <farol.h>
#include <stdio.h>
#include <stdlib.h>

/* the model: out = tanh(x @ w^T), w is 3 x 4 */
static int forward(void *ctx, int n_in, farol_tensor *const *inputs, farol_tensor **out) {
    farol_tensor *w = ctx;
    farol_tensor *z = farol_linear(inputs[0], w, NULL);
    *out = z ? farol_unary(z, FAROL_TANH) : NULL;
    farol_release(z);
    return *out ? 0 : -1;  /* on failure the op has set farol_last_error() */
}

int main(void) {
    farol_manual_seed(7);
    int64_t xs[2] = {2, 4}, ws[2] = {3, 4};
    farol_tensor *x = farol_randn(2, xs, FAROL_F32), *w = farol_randn(2, ws, FAROL_F32);
    int64_t cls = 1;  /* 0-based in C: the second output */
    farol_target target = {FAROL_TARGET_ALL, 1, 0, &cls, false};
    farol_tensor *attr = NULL;
    if (!x || !w || farol_saliency(forward, w, 1, &x, &target, true, &attr) < 0) {
        fprintf(stderr, "%s\n", farol_last_error());
        return 1;
    }
    char *s = farol_tostring(attr);
    printf("%s\n", s);
    free(s);
    farol_release(attr);
    farol_release(x);
    farol_release(w);
    return 0;
}
