/* Random numbers: xoshiro256** seeded by splitmix64, one generator per
 * thread.  Tensors are filled sequentially, so results depend only on the
 * seed, never on the thread count. */
#include "internal.h"

#include <math.h>

static _Thread_local uint64_t state[4];
static _Thread_local bool seeded;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void farol_manual_seed(uint64_t seed) {
    for (int i = 0; i < 4; i++) state[i] = splitmix64(&seed);
    seeded = true;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(void) {
    if (!seeded) farol_manual_seed(0);
    uint64_t r = rotl(state[1] * 5, 7) * 9, t = state[1] << 17;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= t;
    state[3] = rotl(state[3], 45);
    return r;
}

/* uniform in [0, 1) with 53 random bits */
double farol_rand_uniform(void) { return (double)(next_u64() >> 11) * 0x1.0p-53; }

static double normal(void) {
    /* Box-Muller; 1 - u keeps the log argument in (0, 1] */
    double u = 1.0 - farol_rand_uniform(), v = farol_rand_uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586476925 * v);
}

static farol_tensor *fill_random(const char *fn, int ndim, const int64_t *shape, farol_dtype dt,
                                 double (*gen)(void)) {
    if (!farol_is_floating(dt)) {
        farol_set_error("farol: %s: dtype must be float32 or float64, got %s", fn,
                        farol_dtype_name(dt));
        return NULL;
    }
    farol_tensor *t = farol_empty(ndim, shape, dt);
    if (!t) return NULL;
    int64_t n = farol_numel(t);
    if (dt == FAROL_F32) {
        float *p = farol_data(t);
        for (int64_t i = 0; i < n; i++) p[i] = (float)gen();
    } else {
        double *p = farol_data(t);
        for (int64_t i = 0; i < n; i++) p[i] = gen();
    }
    return t;
}

farol_tensor *farol_rand(int ndim, const int64_t *shape, farol_dtype dt) {
    return fill_random("rand", ndim, shape, dt, farol_rand_uniform);
}

farol_tensor *farol_randn(int ndim, const int64_t *shape, farol_dtype dt) {
    return fill_random("randn", ndim, shape, dt, normal);
}
