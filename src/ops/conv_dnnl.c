/* Convolutions on oneDNN (the library PyTorch's CPU convolutions use):
 * float32 forward and input gradient (backward-data) for conv.c, which keeps
 * its im2col + GEMM path as the reference and the fallback.
 *
 * farol's tensors are NCHW; each call reorders the input and the weights to
 * the blocked layouts oneDNN's JIT kernels prefer (nChw16c on AVX-512) and
 * the result back.  3x3 stride-1 convolutions use Winograd F(4x4, 3x3) where
 * oneDNN implements it (AVX-512), the rest its direct kernels.  Primitives
 * are created once per shape and kept (a process-wide cache under a lock);
 * each call brings its own scratch memory, so several OS threads may run
 * the same primitive at once.  oneDNN threads with OpenMP, like farol.
 *
 * Results do not depend on the thread count: each output element is
 * reduced by one thread in a fixed order (the tests check 1 vs 2 threads
 * bitwise).  FAROL_NO_DNNL=1 in the environment, or farol_set_fast_conv(false),
 * turns this path off. */
#include "conv_ref.h"

#include <pthread.h>
#include <stdio.h>

#ifdef FAROL_HAVE_DNNL
#include <dnnl.h>
#include <omp.h>

/* a shape's primitives; src/dst are the primitive's own input/output:
 * forward x -> out, backward-data gout -> dx */
typedef struct dnnl_plan {
    struct dnnl_plan *next;
    int64_t key[16];
    dnnl_primitive_t conv, r_src, r_wei, r_dst;   /* reorders NULL when not needed */
    dnnl_memory_desc_t src_md, wei_md, dst_md, bias_md;          /* the primitive's */
    dnnl_memory_desc_t usrc_md, uwei_md, udst_md;                /* NCHW, (g)oihw */
    size_t src_bytes, wei_bytes, dst_bytes, scratch_bytes;
    bool winograd;
} dnnl_plan;

static dnnl_engine_t engine;
static bool engine_ok;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_plan *cache;
static int cache_len;
#define CACHE_MAX 256

static void engine_init(void) { engine_ok = dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success; }

static void plan_free(dnnl_plan *p) {
    if (!p) return;
    if (p->conv) dnnl_primitive_destroy(p->conv);
    if (p->r_src) dnnl_primitive_destroy(p->r_src);
    if (p->r_wei) dnnl_primitive_destroy(p->r_wei);
    if (p->r_dst) dnnl_primitive_destroy(p->r_dst);
    free(p);
}

/* scratchpad owned by the caller: concurrent calls never share one */
static dnnl_primitive_attr_t user_scratch_attr(void) {
    dnnl_primitive_attr_t a = NULL;
    if (dnnl_primitive_attr_create(&a) != dnnl_success) return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user);
    return a;
}

static size_t scratch_of(const_dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

/* a reorder from -> to, or NULL when the layouts are the same; *scratch
 * grows to what it needs.  -1 on failure */
static int make_reorder(dnnl_primitive_t *r, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                        size_t *scratch) {
    *r = NULL;
    if (dnnl_memory_desc_equal(from, to)) return 0;
    dnnl_primitive_attr_t attr = user_scratch_attr();
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return -1;
    size_t s = scratch_of(pd);
    if (s > *scratch) *scratch = s;
    st = dnnl_primitive_create(r, pd);
    dnnl_primitive_desc_destroy(pd);
    return st == dnnl_success ? 0 : -1;
}

/* the convolution descriptor of g for one pass and algorithm, with
 * format_tag_any for the primitive's own layouts */
static dnnl_status_t conv_desc(dnnl_convolution_desc_t *cd, const farol_conv_geom *g, bool backward,
                               dnnl_prop_kind_t prop, dnnl_alg_kind_t alg, bool bias) {
    dnnl_dims_t xd = {g->N, g->C, g->H, g->W}, od = {g->N, g->K, g->OH, g->OW};
    dnnl_dims_t wd = {g->K, g->C / g->groups, g->kh, g->kw};
    dnnl_dims_t wgd = {g->groups, g->K / g->groups, g->C / g->groups, g->kh, g->kw};
    dnnl_dims_t bd = {g->K};
    dnnl_dims_t strides = {g->sh, g->sw}, dil = {g->dh - 1, g->dw - 1}, pl = {g->ph, g->pw};
    /* bottom/right padding so that the last output reads inside: oneDNN wants it exact */
    dnnl_dims_t pr = {(g->OH - 1) * g->sh + (g->kh - 1) * g->dh + 1 - g->H - g->ph,
                      (g->OW - 1) * g->sw + (g->kw - 1) * g->dw + 1 - g->W - g->pw};
    dnnl_memory_desc_t x, w, o, b;
    dnnl_memory_desc_init_by_tag(&x, 4, xd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&o, 4, od, dnnl_f32, dnnl_format_tag_any);
    if (g->groups > 1) dnnl_memory_desc_init_by_tag(&w, 5, wgd, dnnl_f32, dnnl_format_tag_any);
    else dnnl_memory_desc_init_by_tag(&w, 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&b, 1, bd, dnnl_f32, dnnl_a);
    if (backward)
        return dnnl_dilated_convolution_backward_data_desc_init(cd, alg, &x, &w, &o, strides, dil, pl, pr);
    return dnnl_dilated_convolution_forward_desc_init(cd, prop, alg, &x, &w, bias ? &b : NULL, &o, strides,
                                                      dil, pl, pr);
}

/* the primitive desc for one algorithm, or NULL when oneDNN has none */
static dnnl_primitive_desc_t conv_pd(const farol_conv_geom *g, bool backward, bool bias, dnnl_alg_kind_t alg) {
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL, hint = NULL;
    dnnl_primitive_attr_t attr = user_scratch_attr();
    if (backward) {
        /* backward-data needs the forward primitive desc as a hint */
        if (conv_desc(&cd, g, false, dnnl_forward_training, alg, false) != dnnl_success ||
            dnnl_primitive_desc_create(&hint, &cd, NULL, engine, NULL) != dnnl_success)
            hint = NULL;
    }
    if ((!backward || hint) &&
        conv_desc(&cd, g, backward, dnnl_forward_training, alg, bias) == dnnl_success &&
        dnnl_primitive_desc_create(&pd, &cd, attr, engine, hint) != dnnl_success)
        pd = NULL;
    if (hint) dnnl_primitive_desc_destroy(hint);
    dnnl_primitive_attr_destroy(attr);
    return pd;
}

/* Winograd where it pays (measured on AVX-512): 3x3 stride 1, enough
 * channels, and planes of at least 14 x 14 (on 7 x 7 the 4 x 4 tiles waste
 * too much and direct is faster) */
static bool winograd_shape(const farol_conv_geom *g) {
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 &&
           g->groups == 1 && g->C >= 16 && g->K >= 16 && g->OH >= 14 && g->OW >= 14;
}

static dnnl_plan *plan_create(const farol_conv_geom *g, bool backward, bool bias) {
    dnnl_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    dnnl_primitive_desc_t pd = NULL;
    if (winograd_shape(g) && farol_conv_winograd_enabled()) {
        pd = conv_pd(g, backward, bias, dnnl_convolution_winograd);
        p->winograd = pd != NULL;
    }
    if (!pd) pd = conv_pd(g, backward, bias, dnnl_convolution_direct);
    if (!pd) {
        free(p);
        return NULL;
    }
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    /* oneDNN's reference kernels are far slower than im2col + BLAS */
    if (impl && (strstr(impl, "ref") || strstr(impl, "gemm"))) {
        dnnl_primitive_desc_destroy(pd);
        free(p);
        return NULL;
    }
    dnnl_dims_t xd = {g->N, g->C, g->H, g->W}, od = {g->N, g->K, g->OH, g->OW};
    dnnl_dims_t wd = {g->K, g->C / g->groups, g->kh, g->kw};
    dnnl_dims_t wgd = {g->groups, g->K / g->groups, g->C / g->groups, g->kh, g->kw};
    dnnl_memory_desc_t ux, uo, uw;
    dnnl_memory_desc_init_by_tag(&ux, 4, xd, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&uo, 4, od, dnnl_f32, dnnl_nchw);
    if (g->groups > 1) dnnl_memory_desc_init_by_tag(&uw, 5, wgd, dnnl_f32, dnnl_goihw);
    else dnnl_memory_desc_init_by_tag(&uw, 4, wd, dnnl_f32, dnnl_oihw);
    p->uwei_md = uw;
    p->wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (backward) {
        p->usrc_md = uo, p->udst_md = ux;
        p->src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
        p->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0);
    } else {
        p->usrc_md = ux, p->udst_md = uo;
        p->src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        p->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        if (bias) p->bias_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1);
    }
    p->scratch_bytes = scratch_of(pd);
    dnnl_status_t st = dnnl_primitive_create(&p->conv, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success || make_reorder(&p->r_src, &p->usrc_md, &p->src_md, &p->scratch_bytes) < 0 ||
        make_reorder(&p->r_wei, &p->uwei_md, &p->wei_md, &p->scratch_bytes) < 0 ||
        make_reorder(&p->r_dst, &p->dst_md, &p->udst_md, &p->scratch_bytes) < 0) {
        plan_free(p);
        return NULL;
    }
    p->src_bytes = p->r_src ? dnnl_memory_desc_get_size(&p->src_md) : 0;
    p->wei_bytes = p->r_wei ? dnnl_memory_desc_get_size(&p->wei_md) : 0;
    p->dst_bytes = p->r_dst ? dnnl_memory_desc_get_size(&p->dst_md) : 0;
    return p;
}

/* A primitive splits its work for the thread count it was made with and
 * keeps that count: the count is part of the key, so that convolutions
 * follow adaptive threads (one plan per count; results are the same). */
static void make_key(int64_t *k, const farol_conv_geom *g, bool backward, bool bias) {
    int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    int64_t v[16] = {g->N, g->C, g->H, g->W, g->K, g->kh, g->kw, g->sh, g->sw, g->ph, g->pw,
                     g->dh, g->dw, g->groups, backward,
                     bias | (int64_t)farol_conv_winograd_enabled() << 1 | threads << 2};
    memcpy(k, v, sizeof v);
}

/* the cached plan for this shape (created on first use); NULL when oneDNN
 * has no fast kernel for it.  Unsupported shapes are cached too (conv NULL). */
static dnnl_plan *plan_get(const farol_conv_geom *g, bool backward, bool bias, bool *owned) {
    int64_t key[16];
    make_key(key, g, backward, bias);
    *owned = false;
    pthread_mutex_lock(&cache_lock);
    dnnl_plan *p = cache;
    while (p && memcmp(p->key, key, sizeof key)) p = p->next;
    pthread_mutex_unlock(&cache_lock);
    if (p) return p->conv ? p : NULL;
    p = plan_create(g, backward, bias);
    if (!p) p = calloc(1, sizeof *p);   /* remembers "no fast kernel" */
    if (!p) return NULL;
    memcpy(p->key, key, sizeof key);
    pthread_mutex_lock(&cache_lock);
    dnnl_plan *q = cache;
    while (q && memcmp(q->key, key, sizeof key)) q = q->next;
    if (q) {                      /* another thread made it meanwhile */
        pthread_mutex_unlock(&cache_lock);
        plan_free(p);
        return q->conv ? q : NULL;
    }
    if (cache_len < CACHE_MAX) {
        p->next = cache, cache = p, cache_len++;
    } else {
        *owned = true;            /* a full cache: this call's own */
    }
    pthread_mutex_unlock(&cache_lock);
    if (!p->conv && *owned) {
        plan_free(p);
        return NULL;
    }
    return p->conv ? p : NULL;
}

static dnnl_memory_t mem(const dnnl_memory_desc_t *md, void *data) {
    dnnl_memory_t m = NULL;
    if (dnnl_memory_create(&m, md, engine, data) != dnnl_success) return NULL;
    return m;
}

static int exec(dnnl_primitive_t prim, dnnl_stream_t s, int n, const dnnl_exec_arg_t *args) {
    return dnnl_primitive_execute(prim, s, n, args) == dnnl_success ? 0 : -1;
}

/* reorder user -> internal (from -> to) */
static int run_reorder(dnnl_primitive_t r, dnnl_stream_t s, const dnnl_memory_desc_t *from, void *src,
                       const dnnl_memory_desc_t *to, void *dst, dnnl_memory_t scratch) {
    dnnl_memory_t a = mem(from, src), b = mem(to, dst);
    int rc = -1;
    if (a && b) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}, {DNNL_ARG_SCRATCHPAD, scratch}};
        rc = exec(r, s, scratch ? 3 : 2, args);
    }
    if (a) dnnl_memory_destroy(a);
    if (b) dnnl_memory_destroy(b);
    return rc;
}

static dnnl_memory_desc_t scratch_md(size_t bytes) {
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {(dnnl_dim_t)bytes};
    dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_u8, dnnl_a);
    return md;
}

/* One workspace for the reordered operands and oneDNN's scratch, kept and
 * grown to the largest call: the per-layer sizes all differ, and as separate
 * buffers they would each stay in the buffer cache (measured +40 MiB peak on
 * the CNN benchmark).  A call that finds it in use (another OS thread)
 * takes its own buffer. */
static pthread_mutex_t ws_lock = PTHREAD_MUTEX_INITIALIZER;
static char *ws;
static size_t ws_size;

static char *workspace_take(size_t n, bool *shared) {
    if (pthread_mutex_trylock(&ws_lock) == 0) {
        if (ws_size < n) {
            free(ws);
            ws = aligned_alloc(64, (n + 63) & ~(size_t)63);
            ws_size = ws ? n : 0;
        }
        if (ws) {
            *shared = true;
            return ws;
        }
        pthread_mutex_unlock(&ws_lock);
    }
    *shared = false;
    return farol_aligned_alloc(n);
}

static void workspace_give(char *buf, bool shared) {
    if (shared) pthread_mutex_unlock(&ws_lock);
    else farol_aligned_free(buf);
}

/* src (user layout) -> dst (user layout) through the plan's primitive */
static int run_plan(dnnl_plan *p, const void *src, const void *wei, const void *bias, void *dst, bool backward) {
    size_t total = p->src_bytes + p->wei_bytes + p->dst_bytes + p->scratch_bytes + 4 * 64;
    bool shared = false;
    char *buf = workspace_take(total, &shared);
    if (!buf) {
        farol_set_error("farol: conv2d: out of memory for %zu bytes of oneDNN buffers", total);
        return -1;
    }
    char *cur = buf;
#define TAKE(n) (cur += ((n) + 63) & ~(size_t)63, cur - (((n) + 63) & ~(size_t)63))
    void *isrc = p->r_src ? TAKE(p->src_bytes) : (void *)src;
    void *iwei = p->r_wei ? TAKE(p->wei_bytes) : (void *)wei;
    void *idst = p->r_dst ? TAKE(p->dst_bytes) : dst;
    void *scr = p->scratch_bytes ? TAKE(p->scratch_bytes) : NULL;
#undef TAKE
    dnnl_stream_t s = NULL;
    dnnl_memory_desc_t smd = scratch_md(p->scratch_bytes ? p->scratch_bytes : 1);
    dnnl_memory_t scratch = scr ? mem(&smd, scr) : NULL;
    dnnl_memory_t ms = NULL, mw = NULL, md = NULL, mb = NULL;
    int rc = dnnl_stream_create(&s, engine, dnnl_stream_default_flags) == dnnl_success && (!scr || scratch) ? 0 : -1;
    if (rc == 0 && p->r_src) rc = run_reorder(p->r_src, s, &p->usrc_md, (void *)src, &p->src_md, isrc, scratch);
    if (rc == 0 && p->r_wei) rc = run_reorder(p->r_wei, s, &p->uwei_md, (void *)wei, &p->wei_md, iwei, scratch);
    if (rc == 0) {
        ms = mem(&p->src_md, isrc), mw = mem(&p->wei_md, iwei), md = mem(&p->dst_md, idst);
        mb = bias ? mem(&p->bias_md, (void *)bias) : NULL;
        rc = ms && mw && md && (!bias || mb) ? 0 : -1;
    }
    if (rc == 0) {
        dnnl_exec_arg_t args[5] = {{backward ? DNNL_ARG_DIFF_DST : DNNL_ARG_SRC, ms},
                                   {DNNL_ARG_WEIGHTS, mw},
                                   {backward ? DNNL_ARG_DIFF_SRC : DNNL_ARG_DST, md}};
        int n = 3;
        if (scratch) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, scratch};
        if (mb) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mb};
        rc = exec(p->conv, s, n, args);
    }
    if (rc == 0 && p->r_dst) rc = run_reorder(p->r_dst, s, &p->dst_md, idst, &p->udst_md, dst, scratch);
    if (rc == 0 && dnnl_stream_wait(s) != dnnl_success) rc = -1;
    if (ms) dnnl_memory_destroy(ms);
    if (mw) dnnl_memory_destroy(mw);
    if (md) dnnl_memory_destroy(md);
    if (mb) dnnl_memory_destroy(mb);
    if (scratch) dnnl_memory_destroy(scratch);
    if (s) dnnl_stream_destroy(s);
    workspace_give(buf, shared);
    if (rc < 0) farol_set_error("farol: conv2d: oneDNN failed");
    return rc;
}

static _Thread_local int64_t runs;

int64_t farol_dnnl_conv_runs(void) { return runs; }

static int run(const farol_conv_geom *g, bool backward, const void *src, const void *w, const void *b, void *dst) {
    pthread_once(&engine_once, engine_init);
    if (!engine_ok) return 0;
    bool owned;
    dnnl_plan *p = plan_get(g, backward, b != NULL, &owned);
    if (!p) return 0;
    int rc = run_plan(p, src, w, b, dst, backward);
    if (owned) plan_free(p);
    if (rc == 0) runs++;
    return rc < 0 ? -1 : 1;
}

int farol_dnnl_conv_forward(const farol_conv_geom *g, float *out, const float *x, const float *w, const float *b) {
    if (!farol_fast_conv_enabled()) return 0;
    return run(g, false, x, w, b, out);
}

int farol_dnnl_conv_backward_data(const farol_conv_geom *g, float *dx, const float *gout, const float *w) {
    /* few input channels per group (an image's first conv): oneDNN's
     * backward-data is slower there than im2col + BLAS */
    if (!farol_fast_conv_enabled() || g->C / g->groups < 8) return 0;
    return run(g, true, gout, w, NULL, dx);
}

#else /* no oneDNN */

int64_t farol_dnnl_conv_runs(void) { return 0; }

int farol_dnnl_conv_forward(const farol_conv_geom *g, float *out, const float *x, const float *w, const float *b) {
    return 0;
}

int farol_dnnl_conv_backward_data(const farol_conv_geom *g, float *dx, const float *gout, const float *w) {
    return 0;
}
#endif

/* ---- the switches ---- */

static int fast_conv = -1;       /* -1: not decided yet (environment) */
static int winograd = 1;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void read_env(void) {
    const char *e = getenv("FAROL_NO_DNNL");
    if (__atomic_load_n(&fast_conv, __ATOMIC_RELAXED) < 0)
        __atomic_store_n(&fast_conv, !(e && *e && strcmp(e, "0") != 0), __ATOMIC_RELAXED);
}

bool farol_fast_conv_available(void) {
#ifdef FAROL_HAVE_DNNL
    return true;
#else
    return false;
#endif
}

bool farol_fast_conv_enabled(void) {
    pthread_once(&env_once, read_env);
    return farol_fast_conv_available() && __atomic_load_n(&fast_conv, __ATOMIC_RELAXED) == 1;
}

void farol_set_fast_conv(bool on) {
    pthread_once(&env_once, read_env);
    __atomic_store_n(&fast_conv, on ? 1 : 0, __ATOMIC_RELAXED);
}

bool farol_conv_winograd_enabled(void) { return __atomic_load_n(&winograd, __ATOMIC_RELAXED) != 0; }

void farol_set_conv_winograd(bool on) { __atomic_store_n(&winograd, on ? 1 : 0, __ATOMIC_RELAXED); }
