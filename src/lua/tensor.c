/* Tensors as Lua userdata: the metatable, argument helpers, creation,
 * element access, views, and the memory accounting that drives the Lua GC. */
#include "binding.h"

#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>

/* ---- memory: the Lua GC cannot see tensor memory.  Each lua_State counts
 * the bytes its tensor boxes hold (each box: its view's extent), and
 * creating a tensor runs a full collection when that figure grows by a
 * quarter since the last collection, or when the engine's live bytes do
 * (they include what the tape keeps alive behind a box: saved activations),
 * with a floor so small scripts never pay.  The floor is 16 MiB: at 64 the
 * MLP benchmark's loop held 90 MiB of dead activations (peak RSS 156 MiB
 * instead of 65) and ran slower on memory that had gone cold.  A quarter,
 * not Lua's own pause of 2x, for the same reason: at 2x a forward's dead
 * activations raised ResNet-18's peak by 80 MiB (a collection costs ~0.3 ms
 * there, a dozen per attribution). */

#define GC_FLOOR ((size_t)16 << 20)
static const char gc_key = 'g';

typedef struct {
    size_t state_bytes;      /* held by this state's boxes */
    size_t state_threshold;
    size_t engine_threshold;
    size_t collections;
} gc_state;

static gc_state *get_gc_state(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &gc_key);
    gc_state *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
}

static size_t next_threshold(size_t n) { return n + n / 4 > GC_FLOOR ? n + n / 4 : GC_FLOOR; }

static void maybe_collect(lua_State *L, gc_state *s) {
    if (s->state_bytes <= s->state_threshold && farol_live_bytes() <= s->engine_threshold) return;
    lua_gc(L, LUA_GCCOLLECT);
    s->collections++;
    s->state_threshold = next_threshold(s->state_bytes);
    s->engine_threshold = next_threshold(farol_live_bytes());
}

/* the bytes the view spans in its storage, at most the storage's size: an
 * expanded view counts the memory it reads, not its numel */
static size_t extent_bytes(const farol_tensor *t) {
    if (farol_numel(t) == 0) return 0;
    uint64_t span = 1;
    for (int i = 0; i < t->ndim; i++)
        span += (uint64_t)(t->shape[i] - 1) * (uint64_t)(t->strides[i] < 0 ? -t->strides[i] : t->strides[i]);
    span *= farol_dtype_size(t->dtype);
    return span < t->storage->nbytes ? (size_t)span : t->storage->nbytes;
}

void farol_lua_box_set(lua_State *L, tensor_box *b, farol_tensor *t) {
    gc_state *s = get_gc_state(L);
    b->t = t;
    b->bytes = extent_bytes(t);
    if (s) {
        s->state_bytes += b->bytes;
        maybe_collect(L, s);
    }
}

/* farol.memory() -> engine bytes alive (process), bytes held by this state's
 * tensors, collections run by farol so far */
static int l_memory(lua_State *L) {
    gc_state *s = get_gc_state(L);
    lua_pushinteger(L, (lua_Integer)farol_live_bytes());
    lua_pushinteger(L, s ? (lua_Integer)s->state_bytes : 0);
    lua_pushinteger(L, s ? (lua_Integer)s->collections : 0);
    return 3;
}

/* ---- boxes ---- */

int farol_error(lua_State *L, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lua_pushstring(L, msg);
    return lua_error(L);
}

/* the engine's message with its indices 1-based, as Lua counts */
int farol_lua_raise_error(lua_State *L) { return farol_error(L, "%s", farol_last_error_1based()); }

tensor_box *farol_lua_push_empty_box(lua_State *L) {
    tensor_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    *b = (tensor_box){FAROL_BOX_MAGIC, NULL, 0};
    luaL_setmetatable(L, FAROL_TENSOR_MT);
    return b;
}

static int new_box(lua_State *L) {
    farol_lua_push_empty_box(L);
    return 1;
}

tensor_box *farol_lua_test_box(lua_State *L, int i) {
    tensor_box *b = luaL_testudata(L, i, FAROL_TENSOR_MT);
    if (!b || lua_rawlen(L, i) != sizeof *b || b->magic != FAROL_BOX_MAGIC) return NULL;
    return b;
}

static tensor_box *check_box(lua_State *L, int i) {
    tensor_box *b = farol_lua_test_box(L, i);
    if (!b) luaL_typeerror(L, i, FAROL_TENSOR_MT);
    return b;
}

/* The box is made under lua_pcall: if Lua runs out of memory making it, t
 * is released before the error goes on, instead of leaking. */
void farol_lua_push_tensor(lua_State *L, farol_tensor *t) {
    if (!t) farol_lua_raise_error(L);
    lua_pushcfunction(L, new_box);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
        farol_release(t);
        lua_error(L);
    }
    farol_lua_box_set(L, lua_touserdata(L, -1), t);
}

/* a freed tensor at index i: the message names the running function as Lua
 * called it ("view", "add"); a relative index is an element of a list */
static void freed_error(lua_State *L, int i) {
    lua_Debug ar;
    const char *fn = lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name ? ar.name : "?";
    if (i > 0) farol_error(L, "farol: %s: tensor was freed (argument #%d)", fn, i);
    farol_error(L, "farol: %s: tensor was freed (an element of a list argument)", fn);
}

farol_tensor *farol_lua_test_tensor(lua_State *L, int i) {
    farol_sync_num_threads();  /* every op takes its tensors here */
    tensor_box *b = farol_lua_test_box(L, i);
    if (!b) return NULL;
    if (!b->t) freed_error(L, i);
    return b->t;
}

farol_tensor *farol_lua_check_tensor(lua_State *L, int i) {
    farol_sync_num_threads();
    tensor_box *b = check_box(L, i);
    if (!b->t) freed_error(L, i);
    return b->t;
}

farol_tensor *farol_lua_to_tensor_arg(lua_State *L, int i, const farol_tensor *like) {
    farol_tensor *t = farol_lua_test_tensor(L, i);
    if (t) return farol_retain(t);
    if (lua_isinteger(L, i) && like && like->dtype == FAROL_I64)
        return farol_scalar((double)lua_tointeger(L, i), FAROL_I64);
    if (lua_type(L, i) == LUA_TNUMBER) {
        farol_dtype dt = like && farol_is_floating(like->dtype) ? like->dtype : FAROL_F32;
        return farol_scalar(lua_tonumber(L, i), dt);
    }
    luaL_typeerror(L, i, "farol.Tensor or number");
    return NULL;
}

farol_tensor *farol_lua_anchor_tensor(lua_State *L, farol_tensor *t) {
    push_tensor(L, farol_retain(t));
    return t;
}

/* __gc, __close and x:free(): idempotent */
static int box_gc(lua_State *L) {
    tensor_box *b = check_box(L, 1);
    if (b->t) {
        gc_state *s = get_gc_state(L);
        if (s) s->state_bytes -= b->bytes;
        farol_release(b->t);
        b->t = NULL;
    }
    return 0;
}

/* ---- holds ---- */

#define FAROL_HOLD_MT "farol.hold"

#define HOLD_MAGIC 0x666172486f6c6421ULL

typedef struct {
    uint64_t magic;  /* (the metatable is reachable through the debug library) */
    lua_Integer n;
    farol_tensor *t[];
} tensor_hold;

static int hold_gc(lua_State *L) {
    tensor_hold *h = lua_touserdata(L, 1);
    size_t len = lua_rawlen(L, 1);
    if (h && len >= sizeof *h && h->magic == HOLD_MAGIC && h->n >= 0 &&
        len == sizeof *h + (size_t)h->n * sizeof h->t[0])
        farol_lua_hold_release(h->t);
    return 0;
}

farol_tensor **farol_lua_push_hold(lua_State *L, lua_Integer n, lua_Integer max, const char *fn, const char *what) {
    if (n < 0 || n > max)
        farol_error(L, "farol: %s: %s has %lld entries, at most %lld", fn, what, (long long)n, (long long)max);
    tensor_hold *h = lua_newuserdatauv(L, sizeof *h + (size_t)n * sizeof h->t[0], 0);
    h->magic = HOLD_MAGIC;
    h->n = n;
    for (lua_Integer i = 0; i < n; i++) h->t[i] = NULL;
    if (luaL_newmetatable(L, FAROL_HOLD_MT)) {
        lua_pushcfunction(L, hold_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return h->t;
}

void farol_lua_hold_release(farol_tensor **slots) {
    tensor_hold *h = (tensor_hold *)((char *)slots - offsetof(tensor_hold, t));
    for (lua_Integer i = 0; i < h->n; i++) {
        farol_release(h->t[i]);
        h->t[i] = NULL;
    }
}

/* ---- argument helpers ---- */

int farol_lua_check_dim(lua_State *L, int i, int ndim, const char *fn) {
    lua_Integer d = luaL_checkinteger(L, i);
    int n = ndim > 0 ? ndim : 1;
    if (d >= 1 && d <= n) return (int)d - 1;
    if (d < 0 && d >= -n) return (int)(n + d);
    return farol_error(L, "farol: %s: dim %d is out of range for a %d-d tensor (dims are 1-based; "
                      "-1 is the last)", fn, (int)d, ndim);
}

int farol_lua_opt_dim(lua_State *L, int i, int ndim, const char *fn) {
    return lua_isnoneornil(L, i) ? FAROL_DIM_ALL : farol_lua_check_dim(L, i, ndim, fn);
}

static int64_t check_index(lua_State *L, int i, int64_t n, const char *fn) {
    lua_Integer v = luaL_checkinteger(L, i);
    if (v >= 1 && v <= n) return v - 1;
    if (v < 0 && v >= -n) return n + v;
    return farol_error(L, "farol: %s: index %lld is out of range for a dim of size %lld (1-based)", fn,
                      (lua_Integer)v, (lua_Integer)n);
}

static int64_t size_at(lua_State *L, int idx, int pos, const char *fn, bool allow_minus1) {
    int isnum;
    lua_Integer v = lua_tointegerx(L, idx, &isnum);
    if (!isnum) farol_error(L, "farol: %s: size %d must be an integer, got %s", fn, pos,
                           luaL_typename(L, idx));
    if (v < 0 && !(allow_minus1 && v == -1))
        farol_error(L, "farol: %s: size %d is %lld; sizes must be non-negative", fn, pos, v);
    return v;
}

int farol_lua_check_sizes(lua_State *L, int i, int64_t *shape, const char *fn, bool allow_minus1) {
    int n = 0;
    if (lua_istable(L, i) && !farol_lua_test_tensor(L, i)) {
        /* raw: a size table's metamethods have no say (and could free the
         * tensor the caller holds) */
        size_t len = lua_rawlen(L, i);
        if (len > FAROL_MAX_DIMS) farol_error(L, "farol: %s: %zu sizes given, at most %d dims", fn, len, FAROL_MAX_DIMS);
        n = (int)len;
        for (int k = 1; k <= n; k++) {
            lua_rawgeti(L, i, k);
            shape[k - 1] = size_at(L, -1, k, fn, allow_minus1);
            lua_pop(L, 1);
        }
        return n;
    }
    while (lua_type(L, i + n) == LUA_TNUMBER) {
        if (n == FAROL_MAX_DIMS) farol_error(L, "farol: %s: more than %d sizes given", fn, FAROL_MAX_DIMS);
        shape[n] = size_at(L, i + n, n + 1, fn, allow_minus1);
        n++;
    }
    return n;
}

/* sizes at i (varargs or one array) with nothing after them */
static int check_shape_only(lua_State *L, int i, int64_t *shape, const char *fn, bool allow_minus1) {
    int n = farol_lua_check_sizes(L, i, shape, fn, allow_minus1);
    int next = lua_istable(L, i) ? i + 1 : i + n;
    if (!lua_isnone(L, next)) {
        if (lua_istable(L, i))
            farol_error(L, "farol: %s: unexpected %s after the array of sizes", fn, luaL_typename(L, next));
        farol_error(L, "farol: %s: size %d must be an integer, got %s", fn, n + 1, luaL_typename(L, next));
    }
    return n;
}

/* refuses a shape whose element count overflows (the engine's limit is 2^40) */
static void check_numel(lua_State *L, int n, const int64_t *shape, const char *fn) {
    int64_t numel = 1, span = 1;  /* span: the non-zero sizes, which the strides multiply */
    bool bad = false;
    for (int k = 0; k < n && !bad; k++)
        bad = __builtin_mul_overflow(numel, shape[k], &numel) ||
              __builtin_mul_overflow(span, shape[k] ? shape[k] : 1, &span);
    if (bad || span > ((int64_t)1 << 40)) {  /* numel <= span */
        char sh[96];
        farol_error(L, "farol: %s: shape %s has too many elements (at most 2^40)", fn,
                    farol_shape_str(n, shape, sh, sizeof sh));
    }
}

/* a value stored into an int64 tensor must be an integer: NaN, infinities and
 * values beyond int64 would be undefined casts */
static void check_value(lua_State *L, farol_dtype dt, double v, const char *fn) {
    if (dt == FAROL_I64 && (v != floor(v) || fabs(v) > 9.2e18))
        farol_error(L, "farol: %s: %g is not an integer (dtype int64)", fn, v);
}

static farol_dtype opt_dtype(lua_State *L, int i, farol_dtype def, const char *fn) {
    if (lua_isnoneornil(L, i)) return def;
    /* the type first: lua_tostring would convert a number in place */
    const char *name = lua_type(L, i) == LUA_TSTRING ? lua_tostring(L, i) : NULL;
    farol_dtype dt;
    if (!name || farol_dtype_from_name(name, &dt) < 0) {
        if (!name && lua_type(L, i) == LUA_TNUMBER) {  /* shown as written, converting a copy */
            lua_pushvalue(L, i);
            name = lua_tostring(L, -1);
        }
        farol_error(L, "farol: %s: unknown dtype %s (use \"float32\", \"float64\" or \"int64\")", fn,
                   name ? name : luaL_typename(L, i));
    }
    return dt;
}

/* nothing may follow argument last - 1: creation functions stop reading
 * sizes at the first non-number, so a stray argument would be ignored */
static void no_more_args(lua_State *L, int last, const char *fn) {
    if (lua_gettop(L) >= last)
        farol_error(L, "farol: %s: unexpected argument #%d (a %s)", fn, last, luaL_typename(L, last));
}

bool farol_lua_opt_bool(lua_State *L, int i, bool def) {
    return lua_isnoneornil(L, i) ? def : lua_toboolean(L, i);
}

/* ---- Lua tables to tensors ---- */

static void infer_shape(lua_State *L, int idx, int depth, int *ndim, int64_t *shape, const char *fn) {
    if (lua_type(L, idx) == LUA_TNUMBER || lua_type(L, idx) == LUA_TBOOLEAN) {
        *ndim = depth;
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE || farol_lua_test_tensor(L, idx))
        farol_error(L, "farol: %s: expected a number or a nested array of numbers, got %s", fn,
                   luaL_typename(L, idx));
    if (depth == FAROL_MAX_DIMS) farol_error(L, "farol: %s: nested deeper than %d dims", fn, FAROL_MAX_DIMS);
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);  /* raw, as every read of the array */
    shape[depth] = n;
    if (n == 0) {
        *ndim = depth + 1;
        return;
    }
    lua_rawgeti(L, idx, 1);
    infer_shape(L, lua_gettop(L), depth + 1, ndim, shape, fn);
    lua_pop(L, 1);
}

/* writes values into dst (row-major), checking every level against shape */
static void fill_values(lua_State *L, int idx, int depth, int ndim, const int64_t *shape,
                        farol_tensor *t, int64_t *pos, const char *fn) {
    if (depth == ndim) {
        int isnum;
        double v = lua_isboolean(L, idx) ? lua_toboolean(L, idx) : lua_tonumberx(L, idx, &isnum);
        if (!lua_isboolean(L, idx) && !isnum)
            farol_error(L, "farol: %s: ragged or non-numeric array: expected a number at depth %d, "
                       "got %s", fn, depth + 1, luaL_typename(L, idx));
        int64_t k = (*pos)++;
        if (t->dtype == FAROL_F32) ((float *)farol_data(t))[k] = (float)v;
        else if (t->dtype == FAROL_F64) ((double *)farol_data(t))[k] = v;
        else if (lua_isinteger(L, idx)) {  /* exact, beyond 2^53 too */
            ((int64_t *)farol_data(t))[k] = lua_tointeger(L, idx);
        } else {
            if (v != floor(v) || fabs(v) > 9.2e18)
                farol_error(L, "farol: %s: %g is not an integer (dtype int64)", fn, v);
            ((int64_t *)farol_data(t))[k] = (int64_t)v;
        }
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE || farol_lua_test_tensor(L, idx) ||
        (lua_Integer)lua_rawlen(L, idx) != shape[depth]) {
        char sh[96];
        farol_error(L, "farol: %s: ragged array: expected %s of length %lld at depth %d (shape %s)", fn,
                   "an array", (lua_Integer)shape[depth], depth + 1,
                   farol_shape_str(ndim, shape, sh, sizeof sh));
    }
    for (int64_t k = 1; k <= shape[depth]; k++) {
        lua_rawgeti(L, idx, k);
        fill_values(L, lua_gettop(L), depth + 1, ndim, shape, t, pos, fn);
        lua_pop(L, 1);
    }
}

static farol_tensor *table_to_tensor_fn(lua_State *L, int i, farol_dtype dt, const char *fn) {
    int ndim = 0;
    int64_t shape[FAROL_MAX_DIMS];
    i = lua_absindex(L, i);
    infer_shape(L, i, 0, &ndim, shape, fn);
    check_numel(L, ndim, shape, fn);
    /* the tensor is pushed first (empty, collectable) so that an error while
     * reading the table cannot leak it */
    farol_tensor *t = farol_empty(ndim, shape, dt);
    farol_lua_push_tensor(L, t);
    int64_t pos = 0;
    fill_values(L, i, 0, ndim, shape, t, &pos, fn);
    lua_pop(L, 1);  /* the userdata still owns t until the caller re-pushes */
    return farol_retain(t);
}

static farol_tensor *table_to_tensor(lua_State *L, int i, farol_dtype dt) {
    return table_to_tensor_fn(L, i, dt, "tensor");
}

/* a detached copy of src with dtype dt */
static farol_tensor *raw_copy(farol_tensor *src, farol_dtype dt) {
    farol_tensor *c = farol_empty(src->ndim, src->shape, dt);
    if (c) farol_copy_to_buffer(src, farol_data(c), dt);
    return c;
}

farol_tensor *farol_lua_check_index_tensor(lua_State *L, int i, const char *fn) {
    i = lua_absindex(L, i);
    farol_tensor *src = farol_lua_test_tensor(L, i), *idx;
    if (src) {
        if (src->dtype != FAROL_I64)
            farol_error(L, "farol: %s: indices must be an int64 tensor or an array, got %s", fn,
                       farol_dtype_name(src->dtype));
        /* a private copy (shifted to 0-based below), owned by a box on the stack */
        farol_lua_push_tensor(L, raw_copy(src, FAROL_I64));
        idx = farol_lua_test_tensor(L, -1);
    } else if (lua_istable(L, i)) {
        farol_lua_push_tensor(L, table_to_tensor_fn(L, i, FAROL_I64, fn));
        idx = farol_lua_test_tensor(L, -1);
    } else {
        luaL_typeerror(L, i, "index tensor or array");
        return NULL;
    }
    int64_t *p = farol_data(idx), n = farol_numel(idx);
    for (int64_t k = 0; k < n; k++) {
        if (p[k] < 1)
            farol_error(L, "farol: %s: index %lld is not a valid 1-based index", fn, (lua_Integer)p[k]);
        p[k] -= 1;
    }
    return idx;
}

/* ---- creation ---- */

static int l_tensor(lua_State *L) {
    farol_dtype dt = opt_dtype(L, 2, FAROL_F32, "tensor");
    no_more_args(L, 3, "tensor");
    farol_tensor *src = farol_lua_test_tensor(L, 1);
    if (src) {
        farol_lua_push_tensor(L, raw_copy(src, lua_isnoneornil(L, 2) ? src->dtype : dt));
        return 1;
    }
    luaL_argexpected(L, lua_istable(L, 1) || lua_type(L, 1) == LUA_TNUMBER, 1, "number or array");
    farol_lua_push_tensor(L, table_to_tensor(L, 1, dt));
    return 1;
}

typedef enum { MAKE_EMPTY, MAKE_ZEROS, MAKE_ONES, MAKE_RAND, MAKE_RANDN } make_kind;

static int make(lua_State *L, make_kind kind, const char *fn) {
    int64_t shape[FAROL_MAX_DIMS];
    int n = farol_lua_check_sizes(L, 1, shape, fn, false);
    int dt_at = lua_istable(L, 1) ? 2 : n + 1;
    farol_dtype dt = opt_dtype(L, dt_at, FAROL_F32, fn);
    no_more_args(L, dt_at + 1, fn);
    check_numel(L, n, shape, fn);
    farol_tensor *t = NULL;
    switch (kind) {
    case MAKE_EMPTY: t = farol_zeros(n, shape, dt); break; /* zeroed: no stale memory shown */
    case MAKE_ZEROS: t = farol_zeros(n, shape, dt); break;
    case MAKE_ONES: t = farol_full(n, shape, 1, dt); break;
    case MAKE_RAND: t = farol_rand(n, shape, dt); break;
    case MAKE_RANDN: t = farol_randn(n, shape, dt); break;
    }
    farol_lua_push_tensor(L, t);
    return 1;
}

static int l_empty(lua_State *L) { return make(L, MAKE_EMPTY, "empty"); }
static int l_zeros(lua_State *L) { return make(L, MAKE_ZEROS, "zeros"); }
static int l_ones(lua_State *L) { return make(L, MAKE_ONES, "ones"); }
static int l_rand(lua_State *L) { return make(L, MAKE_RAND, "rand"); }
static int l_randn(lua_State *L) { return make(L, MAKE_RANDN, "randn"); }

static int l_full(lua_State *L) {
    int64_t shape[FAROL_MAX_DIMS];
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = farol_lua_check_sizes(L, 1, shape, "full", false);
    double v = luaL_checknumber(L, 2);
    farol_dtype dt = opt_dtype(L, 3, FAROL_F32, "full");
    no_more_args(L, 4, "full");
    check_numel(L, n, shape, "full");
    check_value(L, dt, v, "full");
    farol_lua_push_tensor(L, farol_full(n, shape, v, dt));
    return 1;
}

static int l_manual_seed(lua_State *L) {
    farol_manual_seed((uint64_t)luaL_checkinteger(L, 1));
    return 0;
}

static int l_arange(lua_State *L) {
    double a = luaL_checknumber(L, 1), b, step = 1;
    int dt_at = 2;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        b = lua_tonumber(L, 2);
        dt_at = 3;
        if (lua_type(L, 3) == LUA_TNUMBER) {
            step = lua_tonumber(L, 3);
            dt_at = 4;
        }
    } else {
        b = a;
        a = 0;
    }
    farol_dtype dt = opt_dtype(L, dt_at, FAROL_F32, "arange");
    no_more_args(L, dt_at + 1, "arange");
    farol_lua_push_tensor(L, farol_arange(a, b, step, dt));
    return 1;
}

static int l_linspace(lua_State *L) {
    double a = luaL_checknumber(L, 1), b = luaL_checknumber(L, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    farol_dtype dt = opt_dtype(L, 4, FAROL_F32, "linspace");
    no_more_args(L, 5, "linspace");
    farol_lua_push_tensor(L, farol_linspace(a, b, n, dt));
    return 1;
}

static int l_eye(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 0) return farol_error(L, "farol: eye: n must be non-negative, got %lld", n);
    check_numel(L, 2, (int64_t[]){n, n}, "eye");
    farol_dtype dt = opt_dtype(L, 2, FAROL_F32, "eye");
    no_more_args(L, 3, "eye");
    farol_lua_push_tensor(L, farol_eye(n, dt));
    return 1;
}

/* ---- inspection ---- */

static void push_shape(lua_State *L, const farol_tensor *t) {
    /* copied first: making the table can run the GC, and a finalizer may
     * free t */
    int n = t->ndim;
    int64_t shape[FAROL_MAX_DIMS];
    memcpy(shape, t->shape, (size_t)n * sizeof *shape);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static int m_size(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) push_shape(L, t);
    else lua_pushinteger(L, t->shape[farol_lua_check_dim(L, 2, t->ndim, "size")]);
    return 1;
}

static int m_dim(lua_State *L) { lua_pushinteger(L, farol_lua_check_tensor(L, 1)->ndim); return 1; }
static int m_numel(lua_State *L) { lua_pushinteger(L, farol_numel(farol_lua_check_tensor(L, 1))); return 1; }
static int m_dtype(lua_State *L) { lua_pushstring(L, farol_dtype_name(farol_lua_check_tensor(L, 1)->dtype)); return 1; }
static int m_is_contiguous(lua_State *L) { lua_pushboolean(L, farol_is_contiguous(farol_lua_check_tensor(L, 1))); return 1; }

/* element idx as a Lua integer (int64, exactly) or float */
static void push_element(lua_State *L, const farol_tensor *t, const int64_t *idx) {
    if (t->dtype == FAROL_I64) lua_pushinteger(L, (lua_Integer)farol_get_i64(t, idx));
    else lua_pushnumber(L, farol_get(t, idx));
}

static int m_item(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    if (farol_numel(t) != 1) {
        char sh[96];
        return farol_error(L, "farol: item: tensor of shape %s has %lld elements, item needs exactly one",
                          farol_shape_str(t->ndim, t->shape, sh, sizeof sh), (lua_Integer)farol_numel(t));
    }
    int64_t zero[FAROL_MAX_DIMS] = {0};
    push_element(L, t, zero);
    return 1;
}

static void push_table(lua_State *L, const farol_tensor *t, int dim, int64_t *idx) {
    if (dim == t->ndim) {
        push_element(L, t, idx);
        return;
    }
    luaL_checkstack(L, 4, "totable");
    lua_createtable(L, (int)t->shape[dim], 0);
    for (int64_t i = 0; i < t->shape[dim]; i++) {
        idx[dim] = i;
        push_table(L, t, dim + 1, idx);
        lua_rawseti(L, -2, i + 1);
    }
}

static int m_totable(lua_State *L) {
    int64_t idx[FAROL_MAX_DIMS] = {0};
    push_table(L, farol_lua_anchor_tensor(L, farol_lua_check_tensor(L, 1)), 0, idx);
    return 1;
}

static void check_element_index(lua_State *L, farol_tensor *t, int first, int64_t *idx, const char *fn) {
    int given = lua_gettop(L) - first + 1;
    if (given != t->ndim) {
        char sh[96];
        farol_error(L, "farol: %s: %d indices given for a tensor of shape %s", fn, given,
                   farol_shape_str(t->ndim, t->shape, sh, sizeof sh));
    }
    for (int i = 0; i < t->ndim; i++) idx[i] = check_index(L, first + i, t->shape[i], fn);
}

static int m_get(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    int64_t idx[FAROL_MAX_DIMS];
    check_element_index(L, t, 2, idx, "get");
    push_element(L, t, idx);
    return 1;
}

static int m_set(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    double v = luaL_checknumber(L, 2);
    int64_t idx[FAROL_MAX_DIMS];
    check_element_index(L, t, 3, idx, "set");
    check_value(L, t->dtype, v, "set");
    if (farol_begin_inplace("set", t) < 0) return farol_lua_raise_error(L);
    farol_set(t, idx, v);
    lua_settop(L, 1);
    return 1;
}

static int push_cstring(lua_State *L) {
    lua_pushstring(L, lua_touserdata(L, 1));
    return 1;
}

static int m_tostring(lua_State *L) {
    tensor_box *b = check_box(L, 1);
    if (!b->t) {
        lua_pushliteral(L, "tensor(<freed>)");
        return 1;
    }
    char *s = farol_tostring(b->t);
    if (!s) return farol_error(L, "farol: tostring: out of memory");
    /* pushed under lua_pcall: running out of Lua memory must not leak s */
    lua_pushcfunction(L, push_cstring);
    lua_pushlightuserdata(L, s);
    int rc = lua_pcall(L, 1, 1, 0);
    free(s);
    if (rc != LUA_OK) return lua_error(L);
    return 1;
}

static int m_len(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    if (t->ndim == 0) return farol_error(L, "farol: #: a 0-d tensor has no length");
    lua_pushinteger(L, t->shape[0]);
    return 1;
}

static int l_is_tensor(lua_State *L) {
    lua_pushboolean(L, farol_lua_test_box(L, 1) != NULL);
    return 1;
}

static int m_free(lua_State *L) {
    check_box(L, 1);
    return box_gc(L);
}

/* x[i]: select(1, i), a number when x is 1-D; x.shape, x.grad; methods */
static int m_index(lua_State *L) {
    /* (lua_tostring would turn a number key into a string in place) */
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    if (k && strcmp(k, "shape") != 0 && strcmp(k, "grad") != 0) {
        /* method lookup works on freed tensors too, so x:free() is idempotent;
         * a misspelt name is an error, not a silent nil */
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) == LUA_TNIL)
            return farol_error(L, "farol: tensor has no field '%s'", k);
        return 1;
    }
    if (!k && lua_type(L, 2) != LUA_TNUMBER)
        return farol_error(L, "farol: index: tensors take an integer index (x[i]) or a field name, got %s "
                          "(use x:narrow, x:select or x:get for more)", luaL_typename(L, 2));
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        if (t->ndim == 0) return farol_error(L, "farol: index: a 0-d tensor cannot be indexed");
        int64_t i = check_index(L, 2, t->shape[0], "index");
        if (t->ndim == 1) {
            push_element(L, t, &i);
            return 1;
        }
        farol_lua_push_tensor(L, farol_select(t, 0, i));
        return 1;
    }
    if (k && strcmp(k, "shape") == 0) {
        push_shape(L, t);
        return 1;
    }
    if (k && strcmp(k, "grad") == 0) {
        if (t->grad) farol_lua_push_tensor(L, farol_retain(t->grad));
        else lua_pushnil(L);
        return 1;
    }
    return 0;  /* not reached: every key kind is handled above */
}

/* x[i] = v: copies v (number or tensor) into select(1, i) */
static int m_newindex(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING)
        return farol_error(L, "farol: index: tensors take only integer keys for assignment, got string '%s'",
                          lua_tostring(L, 2));
    if (lua_type(L, 2) != LUA_TNUMBER)
        return farol_error(L, "farol: index: tensors take only integer keys for assignment, got %s",
                          luaL_typename(L, 2));
    if (t->ndim == 0) return farol_error(L, "farol: index: a 0-d tensor cannot be indexed");
    int64_t i = check_index(L, 2, t->shape[0], "index");
    farol_tensor *src = farol_lua_test_tensor(L, 3);
    if (!src && lua_type(L, 3) != LUA_TNUMBER) return luaL_typeerror(L, 3, "number or farol.Tensor");
    if (!src) check_value(L, t->dtype, lua_tonumber(L, 3), "index");
    farol_tensor *view = farol_select(t, 0, i);
    if (!view) return farol_lua_raise_error(L);
    int rc = src ? farol_copy_(view, src) : farol_fill_(view, lua_tonumber(L, 3));
    farol_release(view);
    if (rc < 0) return farol_lua_raise_error(L);
    return 0;
}

static int m_copy_(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1), *src = farol_lua_check_tensor(L, 2);
    if (farol_copy_(t, src) < 0) return farol_lua_raise_error(L);
    lua_settop(L, 1);
    return 1;
}

static int m_fill_(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    double v = luaL_checknumber(L, 2);
    check_value(L, t->dtype, v, "fill_");
    if (farol_fill_(t, v) < 0) return farol_lua_raise_error(L);
    lua_settop(L, 1);
    return 1;
}

static int m_zero_(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    if (farol_fill_(t, 0) < 0) return farol_lua_raise_error(L);
    lua_settop(L, 1);
    return 1;
}

static int m_clone(lua_State *L) { farol_lua_push_tensor(L, farol_clone(farol_lua_check_tensor(L, 1))); return 1; }
static int m_detach(lua_State *L) { farol_lua_push_tensor(L, farol_detach(farol_lua_check_tensor(L, 1))); return 1; }
static int m_contiguous(lua_State *L) { farol_lua_push_tensor(L, farol_contiguous(farol_lua_check_tensor(L, 1))); return 1; }

static int m_to(lua_State *L) {
    farol_lua_check_tensor(L, 1);
    if (lua_type(L, 2) != LUA_TSTRING) luaL_checktype(L, 2, LUA_TSTRING);
    farol_dtype dt = opt_dtype(L, 2, FAROL_F32, "to");
    farol_lua_push_tensor(L, farol_to_dtype(farol_lua_check_tensor(L, 1), dt));
    return 1;
}

/* ---- views ---- */

/* x:view(...), x:reshape(...), x:expand(...): sizes as varargs or an array */
typedef farol_tensor *(*reshape_fn)(farol_tensor *, int, const int64_t *);

static int resized(lua_State *L, reshape_fn fn, const char *name) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    int64_t shape[FAROL_MAX_DIMS];
    int n = check_shape_only(L, 2, shape, name, true);
    farol_lua_push_tensor(L, fn(t, n, shape));
    return 1;
}

static int m_view(lua_State *L) { return resized(L, farol_view, "view"); }
static int m_reshape(lua_State *L) { return resized(L, farol_reshape, "reshape"); }
static int m_expand(lua_State *L) { return resized(L, farol_expand, "expand"); }

static int m_flatten(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    int start = lua_isnoneornil(L, 2) ? 0 : farol_lua_check_dim(L, 2, t->ndim, "flatten");
    int end = lua_isnoneornil(L, 3) ? (t->ndim > 0 ? t->ndim - 1 : 0) : farol_lua_check_dim(L, 3, t->ndim, "flatten");
    farol_lua_push_tensor(L, farol_flatten(t, start, end));
    return 1;
}

static int m_squeeze(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    farol_lua_push_tensor(L, farol_squeeze(t, farol_lua_opt_dim(L, 2, t->ndim, "squeeze")));
    return 1;
}

static int m_unsqueeze(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    farol_lua_push_tensor(L, farol_unsqueeze(t, farol_lua_check_dim(L, 2, t->ndim + 1, "unsqueeze")));
    return 1;
}

static int m_transpose(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    int a = farol_lua_check_dim(L, 2, t->ndim, "transpose"), b = farol_lua_check_dim(L, 3, t->ndim, "transpose");
    farol_lua_push_tensor(L, farol_transpose(t, a, b));
    return 1;
}

static int m_t(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    if (t->ndim > 2) {
        char sh[96];
        return farol_error(L, "farol: t: expects a tensor of at most 2 dims, got shape %s",
                          farol_shape_str(t->ndim, t->shape, sh, sizeof sh));
    }
    farol_lua_push_tensor(L, t->ndim < 2 ? farol_retain(t) : farol_transpose(t, 0, 1));
    return 1;
}

static int m_permute(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    int dims[FAROL_MAX_DIMS];
    bool array = lua_istable(L, 2);
    size_t len = array ? lua_rawlen(L, 2) : (size_t)(lua_gettop(L) - 1);
    int n = len > FAROL_MAX_DIMS ? FAROL_MAX_DIMS + 1 : (int)len;
    if (n != t->ndim) {
        char sh[96];
        return farol_error(L, "farol: permute: %d dims given for a tensor of shape %s", n,
                          farol_shape_str(t->ndim, t->shape, sh, sizeof sh));
    }
    for (int i = 0; i < n; i++) {
        if (array) lua_rawgeti(L, 2, i + 1);
        else lua_pushvalue(L, 2 + i);
        int isint;
        lua_tointegerx(L, -1, &isint);
        if (!isint)
            return farol_error(L, "farol: permute: dim %d must be an integer, got %s", i + 1,
                              luaL_typename(L, -1));
        dims[i] = farol_lua_check_dim(L, lua_gettop(L), n, "permute");
        lua_pop(L, 1);
    }
    farol_lua_push_tensor(L, farol_permute(t, n, dims));
    return 1;
}

static int m_select(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    if (t->ndim == 0) return farol_error(L, "farol: select: a 0-d tensor has no dim to select from");
    int d = farol_lua_check_dim(L, 2, t->ndim, "select");
    farol_lua_push_tensor(L, farol_select(t, d, check_index(L, 3, t->shape[d], "select")));
    return 1;
}

static int m_narrow(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    if (t->ndim == 0) return farol_error(L, "farol: narrow: a 0-d tensor has no dim to narrow");
    int d = farol_lua_check_dim(L, 2, t->ndim, "narrow");
    lua_Integer len = luaL_checkinteger(L, 4);
    /* as PyTorch, an empty slice may start just past the end */
    int64_t start = len == 0 && lua_tointeger(L, 3) == t->shape[d] + 1
                        ? t->shape[d] : check_index(L, 3, t->shape[d], "narrow");
    if (len < 0 || len > t->shape[d] - start)
        return farol_error(L, "farol: narrow: start %lld with length %lld does not fit in dim %d of size %lld",
                          (lua_Integer)start + 1, len, d + 1, (lua_Integer)t->shape[d]);
    farol_lua_push_tensor(L, farol_narrow(t, d, start, len));
    return 1;
}

static int m_index_select(lua_State *L) {
    int d = farol_lua_check_dim(L, 2, farol_lua_check_tensor(L, 1)->ndim, "index_select");
    farol_tensor *idx = farol_lua_check_index_tensor(L, 3, "index_select");  /* can run the GC */
    farol_lua_push_tensor(L, farol_index_select(farol_lua_check_tensor(L, 1), d, idx));
    return 1;
}

static const luaL_Reg metameth[] = {
    {"__gc", box_gc}, {"__close", box_gc}, {"__tostring", m_tostring}, {"__len", m_len},
    {"__newindex", m_newindex}, {NULL, NULL},
};

static const luaL_Reg meth[] = {
    {"size", m_size}, {"dim", m_dim}, {"numel", m_numel}, {"dtype", m_dtype},
    {"is_contiguous", m_is_contiguous}, {"item", m_item}, {"totable", m_totable},
    {"get", m_get}, {"set", m_set}, {"copy_", m_copy_}, {"fill_", m_fill_}, {"zero_", m_zero_},
    {"clone", m_clone}, {"detach", m_detach}, {"contiguous", m_contiguous}, {"to", m_to},
    {"view", m_view}, {"reshape", m_reshape}, {"expand", m_expand}, {"flatten", m_flatten},
    {"squeeze", m_squeeze}, {"unsqueeze", m_unsqueeze}, {"transpose", m_transpose}, {"t", m_t},
    {"permute", m_permute}, {"select", m_select}, {"narrow", m_narrow},
    {"index_select", m_index_select}, {"free", m_free}, {NULL, NULL},
};

static const luaL_Reg funcs[] = {
    {"tensor", l_tensor}, {"zeros", l_zeros}, {"ones", l_ones}, {"full", l_full},
    {"empty", l_empty}, {"rand", l_rand}, {"randn", l_randn}, {"manual_seed", l_manual_seed},
    {"arange", l_arange}, {"linspace", l_linspace}, {"eye", l_eye}, {"memory", l_memory}, {"is_tensor", l_is_tensor},
    {NULL, NULL},
};

/* expects the farol table at -2 and the methods table at -1 */
void farol_lua_register_funcs(lua_State *L, const luaL_Reg *fns, bool as_methods) {
    for (; fns->name; fns++) {
        lua_pushcfunction(L, fns->func);
        if (as_methods) {
            lua_pushvalue(L, -1);
            lua_setfield(L, -3, fns->name);
        }
        lua_setfield(L, -3, fns->name);
    }
}

/* Leaves the farol table at -2 and the methods table at -1, as the other
 * parts expect when they register. */
void farol_lua_tensor(lua_State *L) {
    /* one account per lua_State, kept if farol is opened again (a script
     * clearing package.loaded): live boxes still count in it */
    if (!get_gc_state(L)) {
        gc_state *s = lua_newuserdatauv(L, sizeof *s, 0);
        *s = (gc_state){0, GC_FLOOR, GC_FLOOR, 0};
        lua_rawsetp(L, LUA_REGISTRYINDEX, &gc_key);
    }

    luaL_newmetatable(L, FAROL_TENSOR_MT);  /* farol mt */
    luaL_setfuncs(L, metameth, 0);
    lua_newtable(L);                        /* farol mt methods */
    for (const luaL_Reg *m = meth; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, -2, m->name);
    }
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, m_index, 1);
    lua_setfield(L, -3, "__index");
    lua_remove(L, -2);                      /* farol methods */
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
}
