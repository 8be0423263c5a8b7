/* The BLAS kernel farol runs on, chosen so it does not depend on luck, and
 * farol_get_config(): what runs (BLAS, its kernel, oneDNN's ISA, farol's own
 * kernels, threads).
 *
 * OpenBLAS built with DYNAMIC_ARCH picks its kernel from CPUID when it loads.
 * Versions before 0.3.25 fall back to a generic core (Prescott, SSE3: about a
 * fifth of the speed) on CPUs they do not know, e.g. Intel family 6 model
 * 0xCF, although their AVX-512 or AVX2 kernels run there.  When that happened,
 * the user did not set OPENBLAS_CORETYPE and the CPU has AVX-512 (or AVX2 and
 * FMA), farol re-runs OpenBLAS's selection with OPENBLAS_CORETYPE set for that
 * moment only (gotoblas_dynamic_quit/init), then restores the environment.
 * This happens in a constructor and again, once, before farol's first GEMM
 * (farol_blas_ready), so C users of libfarol get it too.  Other BLAS builds
 * (no such symbols) are left alone. */
#define _GNU_SOURCE
#include "internal.h"

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#ifdef FAROL_HAVE_DNNL
#include <dnnl.h>
#endif

/* OpenBLAS's own entry points (in its cblas.h, but not in every BLAS's) */
char *openblas_get_config(void);
char *openblas_get_corename(void);

static char core_before[32];   /* what OpenBLAS had picked when farol replaced it */
static const char *chosen_by = "openblas";

/* Cores whose sgemm uses AVX2+FMA or AVX-512: anything else on a CPU that
 * has those is a fallback. */
static bool core_is_modern(const char *core) {
    static const char *const modern[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake",
                                         "SapphireRapids", "Excavator"};
    for (size_t i = 0; i < sizeof modern / sizeof *modern; i++)
        if (strcasecmp(core, modern[i]) == 0) return true;
    return false;
}

unsigned farol_cpu_features(void) {
    unsigned f = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* __builtin_cpu_supports also checks that the OS saves the registers */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f |= FAROL_CPU_AVX2_FMA;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512cd"))
        f |= FAROL_CPU_AVX512;
#endif
    return f;
}

const char *farol_blas_wanted_core(const char *picked, unsigned features) {
    if (!picked || core_is_modern(picked)) return NULL;
    if (features & FAROL_CPU_AVX512) return "SkylakeX";
    if (features & FAROL_CPU_AVX2_FMA) return "Haswell";
    return NULL;
}

typedef void (*void_fn)(void);

/* OpenBLAS's dynamic-arch entry points, found in the library that holds
 * openblas_get_corename (a Lua module is loaded RTLD_LOCAL, so look in that
 * library itself, not the global scope) */
static bool dynamic_fns(void_fn *quit, void_fn *init) {
    Dl_info info;
    if (!dladdr((void *)openblas_get_corename, &info) || !info.dli_fname) return false;
    void *h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) return false;
    *quit = (void_fn)dlsym(h, "gotoblas_dynamic_quit");
    *init = (void_fn)dlsym(h, "gotoblas_dynamic_init");
    dlclose(h);  /* NOLOAD: only drops the reference just taken */
    return *quit && *init;
}

int farol_blas_select_core(const char *core) {
    void_fn quit, init;
    if (!core || !dynamic_fns(&quit, &init)) return -1;
    const char *user = getenv("OPENBLAS_CORETYPE");
    char *saved = user ? strdup(user) : NULL;
    if (user && !saved) return -1;
    setenv("OPENBLAS_CORETYPE", core, 1);
    quit();
    init();
    if (saved) {
        setenv("OPENBLAS_CORETYPE", saved, 1);
        free(saved);
    } else {
        unsetenv("OPENBLAS_CORETYPE");
    }
    return 0;
}

void farol_blas_fix_core(void) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user && *user) {
        chosen_by = "user (OPENBLAS_CORETYPE)";
        return;
    }
    const char *picked = openblas_get_corename();
    const char *want = farol_blas_wanted_core(picked, farol_cpu_features());
    if (!want) return;
    snprintf(core_before, sizeof core_before, "%s", picked);
    if (farol_blas_select_core(want) == 0 && core_is_modern(openblas_get_corename()))
        chosen_by = "farol";
    else
        core_before[0] = '\0';
}

static pthread_once_t fix_once = PTHREAD_ONCE_INIT;

__attribute__((constructor)) static void blas_constructor(void) { pthread_once(&fix_once, farol_blas_fix_core); }

void farol_blas_ready(void) { pthread_once(&fix_once, farol_blas_fix_core); }

/* "0.3.21" from "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..." */
static const char *blas_version(void) {
    static char v[32];
    const char *cfg = openblas_get_config();
    if (sscanf(cfg, "OpenBLAS %31s", v) != 1) snprintf(v, sizeof v, "unknown");
    return v;
}

#ifdef FAROL_HAVE_DNNL
static const char *dnnl_isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

static char dnnl_ver[32];
static pthread_once_t dnnl_once = PTHREAD_ONCE_INIT;

static void dnnl_describe(void) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(dnnl_ver, sizeof dnnl_ver, "%d.%d.%d", v->major, v->minor, v->patch);
}
#endif

/* the instruction set farol's own hot loops run: chosen at run time
 * (src/tensor/cpu.c), on top of what the whole build was compiled for */
static const char *kernel_isa(void) {
#if defined(__AVX512F__)
    return "avx512 (the build targets it: FAROL_NATIVE)";
#elif defined(__AVX2__)
    static char buf[64];
    snprintf(buf, sizeof buf, "%s (build: avx2, FAROL_NATIVE)", farol_cpu_isa_name());
    return buf;
#else
    return farol_cpu_isa_name();
#endif
}

void farol_get_config(farol_config_info *out) {
    farol_blas_ready();
    memset(out, 0, sizeof *out);
    out->blas = openblas_get_config();
    out->blas_version = blas_version();
    out->blas_core = openblas_get_corename();
    out->blas_core_chosen_by = chosen_by;
    out->blas_core_replaced = core_before[0] ? core_before : NULL;
#ifdef FAROL_HAVE_DNNL
    pthread_once(&dnnl_once, dnnl_describe);
    out->dnnl_version = dnnl_ver;
    out->dnnl_isa = dnnl_isa_name(dnnl_get_effective_cpu_isa());
#endif
    out->kernel_isa = kernel_isa();
    out->threads = farol_get_num_threads();
    out->threads_in_use = farol_threads_in_use();
}
