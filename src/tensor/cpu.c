/* The instruction set farol's own kernels use, chosen once at run time.
 *
 * farol is compiled for plain x86-64 (see CMakeLists.txt), so that a binary
 * runs on any x86-64 CPU.  The hot kernels are compiled a second and third
 * time for AVX2+FMA and for AVX-512 (FAROL_ISA_BEGIN_AVX2 ... in the kernel
 * files) and FAROL_ISA_DISPATCH calls the variant this CPU runs.  The
 * environment variable FAROL_ISA (base, avx2 or avx512) lowers the choice,
 * never raises it: FAROL_ISA=avx2 runs the suite without the AVX-512 path. */
#include "internal.h"

#include <stdatomic.h>
#include <stdio.h>

static const char *const isa_names[] = {"base", "avx2", "avx512"};

static farol_isa detect(void) {
#if FAROL_HAVE_ISA_VARIANTS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return FAROL_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return FAROL_ISA_AVX2;
#endif
    return FAROL_ISA_BASE;
}

static farol_isa choose(void) {
    farol_isa isa = detect();
    const char *want = getenv("FAROL_ISA");
    if (!want || !*want) return isa;
    for (int i = 0; i < FAROL_ISA_COUNT; i++)
        if (strcmp(want, isa_names[i]) == 0) return (farol_isa)i < isa ? (farol_isa)i : isa;
    fprintf(stderr, "farol: FAROL_ISA=%s is not one of base, avx2, avx512; ignored\n", want);
    return isa;
}

farol_isa farol_cpu_isa(void) {
    static atomic_int chosen = -1;  /* the same value whichever thread sets it */
    int isa = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (isa < 0) {
        isa = (int)choose();
        atomic_store_explicit(&chosen, isa, memory_order_relaxed);
    }
    return (farol_isa)isa;
}

const char *farol_cpu_isa_name(void) { return isa_names[farol_cpu_isa()]; }
