/* The attribution layer from Lua: target forms (parsed once per call into
 * a farol.attr_target), the Lua forward called back from C, the core's
 * primitives (farol._attr_*) that lua/farol/attr.lua builds every method on,
 * farol._saliency (the C entry point) and farol.tuple. */
#include "binding.h"
#include "attr/core.h"

#include <stdio.h>

/* 1-based (or negative) Lua target index -> C convention (0-based, or
 * negative from the end) */
static int64_t target_index(lua_State *L, const char *m, int idx, const char *what) {
    int isint;
    lua_Integer v = lua_tointegerx(L, idx, &isint);
    if (!isint)
        farol_error(L, "farol: %s: %s must be an integer, got %s", m, what,
                   lua_type(L, idx) == LUA_TNUMBER ? "a non-integer number" : luaL_typename(L, idx));
    if (v == 0) farol_error(L, "farol: %s: %s is 0; targets are 1-based (-1 is the last)", m, what);
    return v > 0 ? v - 1 : v;
}

static bool is_tuple(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx)) return false;
    luaL_getmetatable(L, FAROL_TUPLE_MT);
    bool same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

/* the indices of one tuple or array at idx into out (at most FAROL_MAX_DIMS) */
static int read_indices(lua_State *L, const char *m, int idx, int64_t *out, const char *what) {
    size_t len = lua_rawlen(L, idx);
    if (len < 1 || len >= FAROL_MAX_DIMS)
        farol_error(L, "farol: %s: %s has %zu indices; give 1 to %d", m, what, len, FAROL_MAX_DIMS - 1);
    int n = (int)len;
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, idx, i + 1);
        out[i] = target_index(L, m, lua_gettop(L), what);
        lua_pop(L, 1);
    }
    return n;
}

/* Parses the target at idx.  Index storage is a userdata left on the stack. */
static void parse_target(lua_State *L, const char *m, int idx, farol_target *tg) {
    tg->kind = FAROL_TARGET_NONE;
    tg->n_idx = 0;
    tg->n_examples = 0;
    tg->idx = NULL;
    if (lua_isnoneornil(L, idx)) return;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        int64_t *p = lua_newuserdatauv(L, sizeof *p, 0);
        p[0] = target_index(L, m, idx, "target");
        *tg = (farol_target){FAROL_TARGET_ALL, 1, 0, p, false};
        return;
    }
    tensor_box *box = farol_lua_test_box(L, idx);
    if (box && !box->t) farol_error(L, "farol: %s: the target tensor was freed", m);
    /* anchored: the index storage below is a Lua allocation, which can run
     * a finalizer that frees the target tensor */
    farol_tensor *t = box ? farol_lua_anchor_tensor(L, box->t) : NULL;
    if (t) {
        int64_t n = farol_numel(t);
        if (t->ndim > 1)
            farol_error(L, "farol: %s: a target tensor must have one element or be 1-D, got %d dims", m, t->ndim);
        int64_t *p = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *p, 0);
        for (int64_t i = 0; i < n; i++) {
            /* int64 read exactly: beyond 2^53 a double would not hold it */
            if (t->dtype == FAROL_I64) lua_pushinteger(L, (lua_Integer)farol_get_i64(t, &i));
            else lua_pushnumber(L, farol_get_flat(t, i));
            p[i] = target_index(L, m, lua_gettop(L), "target tensor element");
            lua_pop(L, 1);
        }
        if (n == 1) *tg = (farol_target){FAROL_TARGET_ALL, 1, 0, p, false};
        else *tg = (farol_target){FAROL_TARGET_PER_EXAMPLE, 1, n, p, true};
        return;
    }
    if (!lua_istable(L, idx))
        farol_error(L, "farol: %s: target must be nil, an integer, a tensor, farol.tuple(...) "
                      "or an array, got %s", m, luaL_typename(L, idx));
    if (is_tuple(L, idx)) {
        int64_t *p = lua_newuserdatauv(L, FAROL_MAX_DIMS * sizeof *p, 0);
        int n = read_indices(L, m, idx, p, "the target tuple");
        *tg = (farol_target){FAROL_TARGET_ALL, n, 0, p, false};
        return;
    }
    /* an array: integers (one class per example) or tuples/arrays (one index
     * tuple per example) */
    /* raw reads: a target array's metamethods have no say in its length or
     * entries */
    size_t len = lua_rawlen(L, idx);
    if (len < 1) farol_error(L, "farol: %s: the target array is empty", m);
    lua_rawgeti(L, idx, 1);
    bool rows = lua_istable(L, -1);
    size_t w = rows ? lua_rawlen(L, -1) : 1;
    lua_pop(L, 1);
    if (w < 1 || w >= FAROL_MAX_DIMS)
        farol_error(L, "farol: %s: target[1] has %zu indices; give 1 to %d", m, w, FAROL_MAX_DIMS - 1);
    int width = (int)w;
    if (len > ((size_t)1 << 40) / FAROL_MAX_DIMS)
        farol_error(L, "farol: %s: the target array has %zu entries, too many", m, len);
    int64_t n = (int64_t)len;
    int64_t *p = lua_newuserdatauv(L, (size_t)(n * width) * sizeof *p, 0);
    char what[64];
    for (int64_t e = 0; e < n; e++) {
        lua_rawgeti(L, idx, e + 1);
        snprintf(what, sizeof what, "target[%lld]", (long long)e + 1);
        if (lua_istable(L, -1) != rows)  /* {1, {2}} or {{1}, 2} */
            farol_error(L, "farol: %s: target[%lld] is a %s but target[1] is %s; give all "
                       "integers or all index tuples", m, (long long)e + 1, luaL_typename(L, -1),
                       rows ? "an index tuple" : "an integer");
        if (rows) {
            int64_t row[FAROL_MAX_DIMS];
            int k = read_indices(L, m, lua_gettop(L), row, what);
            if (k != width)
                farol_error(L, "farol: %s: target[%lld] has %d indices but target[1] has %d", m,
                           (long long)e + 1, k, width);
            memcpy(p + e * width, row, (size_t)width * sizeof *row);
        } else {
            p[e] = target_index(L, m, lua_gettop(L), what);
        }
        lua_pop(L, 1);
    }
    *tg = (farol_target){FAROL_TARGET_PER_EXAMPLE, width, n, p, !rows};
}

typedef struct {
    lua_State *L;
    const char *m; /* the method, for messages */
    int fn;        /* stack index of the forward */
    int args;      /* stack index of the packed additional args ({n = k, ...}) */
    int n_args;    /* k, checked */
    int err_ref;   /* the forward's error value, kept to rethrow after cleanup */
    bool layer;    /* the forward returns (output, layer tensor) */
    int n_in;
    farol_tensor *const *inputs;
    farol_tensor *output, *layer_out;
} forward_ctx;

/* the tensor at idx returned by the forward, retained, or a Lua error */
static farol_tensor *returned_tensor(lua_State *L, const char *m, int idx, const char *what) {
    tensor_box *b = farol_lua_test_box(L, idx);
    if (!b || !b->t)
        farol_error(L, "farol: %s: the forward function returned %s%s, expected a farol.Tensor", m,
                    b ? "a freed tensor" : luaL_typename(L, idx), what);
    return farol_retain(b->t);
}

/* Runs under lua_pcall as trampoline(ctx, forward, packed_args): calls
 * forward(inputs..., args...) and checks the result.  Anything here may
 * raise, including running out of memory. */
static int forward_trampoline(lua_State *L) {
    forward_ctx *c = lua_touserdata(L, 1);
    luaL_checkstack(L, c->n_in + 8, "too many inputs");
    lua_pushvalue(L, 2);
    for (int i = 0; i < c->n_in; i++) {
        tensor_box *b = farol_lua_push_empty_box(L);
        farol_lua_box_set(L, b, farol_retain(c->inputs[i]));
    }
    int n_args = c->n_args;
    luaL_checkstack(L, n_args + 8, "too many additional_forward_args");
    for (int i = 1; i <= n_args; i++) lua_rawgeti(L, 3, i);
    lua_call(L, c->n_in + n_args, c->layer ? 2 : 1);
    int top = lua_gettop(L);
    if (c->layer) {
        /* a layer tensor missing (nil) is reported by the core */
        farol_tensor *lt = lua_isnil(L, top) ? NULL : returned_tensor(L, c->m, top, " as the layer value");
        c->layer_out = lt;
        top--;
    }
    c->output = returned_tensor(L, c->m, top, "");
    return 0;
}

/* The C callback: the Lua forward runs under lua_pcall, so an error cannot
 * longjmp over the core's frame, which owns tensors. */
static int lua_forward(void *vctx, int n_in, farol_tensor *const *inputs, farol_tensor **output,
                       farol_tensor **layer) {
    forward_ctx *c = vctx;
    lua_State *L = c->L;
    c->n_in = n_in;
    c->inputs = inputs;
    c->output = c->layer_out = NULL;
    lua_pushcfunction(L, forward_trampoline);
    lua_pushlightuserdata(L, c);
    lua_pushvalue(L, c->fn);
    lua_pushvalue(L, c->args);
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
        farol_release(c->output);
        farol_release(c->layer_out);
        c->output = c->layer_out = NULL;
        c->err_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        farol_set_error("farol: %s: the forward function raised an error", c->m);
        return -1;
    }
    *output = c->output;
    if (layer) *layer = c->layer_out;
    else farol_release(c->layer_out);
    return 0;
}

static int plain_forward(void *vctx, int n_in, farol_tensor *const *inputs, farol_tensor **output) {
    return lua_forward(vctx, n_in, inputs, output, NULL);
}

/* rethrows the forward's own error value, or raises the core's message */
static int raise_attr_error(lua_State *L, forward_ctx *c) {
    if (c->err_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, c->err_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, c->err_ref);
        return lua_error(L);
    }
    return farol_lua_raise_error(L);
}

/* most inputs and additional forward args taken (Lua's stack would refuse
 * more anyway) */
#define MAX_INPUTS 4096
#define MAX_FORWARD_ARGS 4096

/* The inputs at idx (a tensor, or an array of them), held for the call: the
 * forward may free or drop them.  Sets *n_in and *single. */
static farol_tensor **hold_inputs(lua_State *L, const char *m, int idx, lua_Integer *n_in, bool *single) {
    tensor_box *box = farol_lua_test_box(L, idx);
    if (box && !box->t) farol_error(L, "farol: %s: the input was freed", m);
    *single = box != NULL;
    *n_in = 1;
    if (!*single) {
        if (!lua_istable(L, idx))
            farol_error(L, "farol: %s: inputs must be a farol.Tensor or an array of them, got %s", m,
                        luaL_typename(L, idx));
        *n_in = (lua_Integer)lua_rawlen(L, idx);
        if (*n_in < 1) farol_error(L, "farol: %s: the inputs array is empty", m);
    }
    farol_tensor **xs = farol_lua_push_hold(L, *n_in, MAX_INPUTS, m, "the inputs array");
    for (int i = 0; i < *n_in; i++) {
        if (*single) {
            /* fetched again: making the hold ran the GC, whose finalizers
             * may have freed it */
            box = test_box(L, idx);
            if (!box->t) farol_error(L, "farol: %s: the input was freed", m);
            xs[i] = farol_retain(box->t);
            continue;
        }
        lua_rawgeti(L, idx, i + 1);
        tensor_box *b = farol_lua_test_box(L, -1);
        if (b && !b->t) farol_error(L, "farol: %s: input %d was freed", m, i + 1);
        if (!b)
            farol_error(L, "farol: %s: input %d is a %s, expected farol.Tensor", m, i + 1,
                        luaL_typename(L, -1));
        xs[i] = farol_retain(b->t);
        lua_pop(L, 1);
    }
    return xs;
}

/* the count of packed additional args ({n = k, ...}) at idx, checked */
static int packed_count(lua_State *L, const char *m, int idx) {
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "n");
    int isint;
    lua_Integer n_args = lua_tointegerx(L, -1, &isint);
    if (!isint || n_args < 0 || n_args > MAX_FORWARD_ARGS)
        farol_error(L, "farol: %s: additional_forward_args.n must be an integer from 0 to %d, got %s",
                    m, MAX_FORWARD_ARGS,
                    lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
    lua_pop(L, 1);
    return (int)n_args;
}

/* pushes the held tensors as one tensor (single) or an array, and empties the hold */
static int push_results(lua_State *L, farol_tensor **ts, lua_Integer n, bool single) {
    if (single) {
        farol_lua_push_tensor(L, farol_retain(ts[0]));
    } else {
        lua_createtable(L, (int)n, 0);
        for (int i = 0; i < n; i++) {
            farol_lua_push_tensor(L, farol_retain(ts[i]));
            lua_rawseti(L, -2, i + 1);
        }
    }
    farol_lua_hold_release(ts);
    return 1;
}

/* farol._saliency(forward, inputs, target, abs, packed_args): the C entry
 * point farol_saliency from Lua */
static int l_saliency(lua_State *L) {
    lua_settop(L, 5);
    lua_Integer n_in;
    bool single;
    farol_tensor **xs = hold_inputs(L, "Saliency", 2, &n_in, &single);
    if (!lua_isnil(L, 4) && !lua_isboolean(L, 4))
        return farol_error(L, "farol: Saliency: abs must be a boolean, got %s", luaL_typename(L, 4));
    bool abs = lua_isnil(L, 4) ? true : lua_toboolean(L, 4);
    int n_args = packed_count(L, "Saliency", 5);
    farol_target tg;
    parse_target(L, "Saliency", 3, &tg);

    farol_tensor **attrs = farol_lua_push_hold(L, n_in, MAX_INPUTS, "Saliency", "the inputs array");
    forward_ctx ctx = {L, "Saliency", 1, 5, n_args, LUA_NOREF, false, 0, NULL, NULL, NULL};
    if (farol_saliency(plain_forward, &ctx, (int)n_in, xs, &tg, abs, attrs) < 0)
        return raise_attr_error(L, &ctx);
    farol_lua_hold_release(xs);
    return push_results(L, attrs, n_in, single);
}

/* ---- the attribution layer's primitives (lua/farol/attr.lua) ---- */

#define FAROL_ATTR_TARGET_MT "farol.attr_target"

/* A parsed target for a batch of a known size, owning its indices. */
typedef struct {
    farol_target tg;
    int64_t idx[];
} attr_target;

static attr_target *push_attr_target(lua_State *L, const farol_target *tg, int64_t n_values) {
    attr_target *t = lua_newuserdatauv(L, sizeof *t + (size_t)n_values * sizeof t->idx[0], 0);
    t->tg = *tg;
    t->tg.idx = t->idx;
    luaL_setmetatable(L, FAROL_ATTR_TARGET_MT);
    return t;
}

static const farol_target *opt_attr_target(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx)) return NULL;
    return &((attr_target *)luaL_checkudata(L, idx, FAROL_ATTR_TARGET_MT))->tg;
}

static int64_t tg_values(const farol_target *tg) {
    if (tg->kind == FAROL_TARGET_NONE) return 0;
    return tg->kind == FAROL_TARGET_ALL ? tg->n_idx : tg->n_examples * tg->n_idx;
}

/* farol._attr_target(method, target, n_examples [, many]): the target
 * parsed once for a batch of n_examples.  With many, target is an array of
 * K targets and the result is a per-example target for K * n_examples rows
 * (target k for rows (k-1)n+1 .. kn). */
static int l_attr_target(lua_State *L) {
    const char *m = luaL_checkstring(L, 1);
    lua_Integer n = luaL_checkinteger(L, 3);
    bool many = lua_toboolean(L, 4);
    lua_settop(L, 3);
    if (!many) {
        farol_target tg;
        parse_target(L, m, 2, &tg);
        if (tg.kind == FAROL_TARGET_PER_EXAMPLE && tg.n_examples != n)
            return farol_error(L, "farol: %s: the per-example target has %lld entries but the batch "
                               "has %lld examples", m, (long long)tg.n_examples, (long long)n);
        attr_target *t = push_attr_target(L, &tg, tg_values(&tg));
        if (tg_values(&tg) > 0) memcpy(t->idx, tg.idx, (size_t)tg_values(&tg) * sizeof *t->idx);
        return 1;
    }
    if (!lua_istable(L, 2) || lua_getmetatable(L, 2))
        return farol_error(L, "farol: %s: targets must be an array of targets, got %s", m,
                           luaL_typename(L, 2));
    lua_Integer k = (lua_Integer)lua_rawlen(L, 2);
    if (k < 1) return farol_error(L, "farol: %s: targets is empty", m);
    if (n < 0 || n > ((lua_Integer)1 << 40) || k > ((lua_Integer)1 << 40) / (n + 1) / FAROL_MAX_DIMS)
        return farol_error(L, "farol: %s: targets has %lld entries, too many", m, (long long)k);
    farol_target all = {FAROL_TARGET_PER_EXAMPLE, 0, k * n, NULL, false};
    attr_target *t = NULL;
    for (lua_Integer j = 0; j < k; j++) {
        lua_rawgeti(L, 2, j + 1);
        int at = lua_gettop(L);
        if (lua_isnil(L, at)) return farol_error(L, "farol: %s: targets[%lld] is nil", m, (long long)j + 1);
        farol_target tg;
        parse_target(L, m, at, &tg);
        if (tg.kind == FAROL_TARGET_PER_EXAMPLE && tg.n_examples != n)
            return farol_error(L, "farol: %s: targets[%lld] has %lld entries but the batch has %lld "
                               "examples", m, (long long)j + 1, (long long)tg.n_examples, (long long)n);
        if (j == 0) {
            all.n_idx = tg.n_idx;
            /* the result takes slot 4 (targets[1], no longer needed: its
             * indices live in parse_target's userdata above it) */
            t = push_attr_target(L, &all, all.n_examples * all.n_idx);
            lua_replace(L, 4);
        } else if (tg.n_idx != all.n_idx) {
            return farol_error(L, "farol: %s: targets[%lld] has %d indices per example but "
                               "targets[1] has %d", m, (long long)j + 1, tg.n_idx, all.n_idx);
        }
        if (tg.need_2d) t->tg.need_2d = true;
        int w = tg.n_idx;
        for (int64_t e = 0; e < n; e++) {
            const int64_t *row = tg.kind == FAROL_TARGET_ALL ? tg.idx : tg.idx + e * w;
            memcpy(t->idx + (j * n + e) * w, row, (size_t)w * sizeof *row);
        }
        lua_settop(L, 4);
    }
    return 1;
}

/* farol._attr_target_expand(t, repeats, interleave): the target of a batch
 * expanded repeats times, as blocks (repeat: rows 1..n, 1..n, ...) or
 * interleaved (each row repeats times in a row), as Captum expands it */
static int l_attr_target_expand(lua_State *L) {
    const farol_target *tg = opt_attr_target(L, 1);
    lua_Integer r = luaL_checkinteger(L, 2);
    bool interleave = lua_toboolean(L, 3);
    if (!tg) return 0;
    if (tg->kind != FAROL_TARGET_PER_EXAMPLE || r == 1) {
        lua_settop(L, 1);
        return 1;
    }
    int64_t n = tg->n_examples, w = tg->n_idx;
    if (r < 1 || r > ((lua_Integer)1 << 40) / (n * w + 1))
        return farol_error(L, "farol: attribution: cannot expand a target %lld times", (long long)r);
    farol_target big = *tg;
    big.n_examples = n * r;
    attr_target *t = push_attr_target(L, &big, big.n_examples * w);
    for (int64_t row = 0; row < n * r; row++) {
        int64_t src = interleave ? row / r : row % n;
        memcpy(t->idx + row * w, tg->idx + src * w, (size_t)w * sizeof *t->idx);
    }
    return 1;
}

/* farol._attr_grad(method, forward, inputs, target, packed_args [, layer])
 * -> the gradient of the selected outputs w.r.t. each input (a tensor or an
 * array, as inputs), or with layer, w.r.t. the second value the forward
 * returns (one tensor) */
static int l_attr_grad(lua_State *L) {
    lua_settop(L, 6);
    const char *m = luaL_checkstring(L, 1);
    bool layer = lua_toboolean(L, 6);
    lua_Integer n_in;
    bool single;
    farol_tensor **xs = hold_inputs(L, m, 3, &n_in, &single);
    const farol_target *tg = opt_attr_target(L, 4);
    int n_args = packed_count(L, m, 5);
    lua_Integer n_out = layer ? 1 : n_in;
    farol_tensor **grads = farol_lua_push_hold(L, n_out, MAX_INPUTS, m, "the inputs array");
    forward_ctx ctx = {L, m, 2, 5, n_args, LUA_NOREF, layer, 0, NULL, NULL, NULL};
    farol_attr_call call = {m, lua_forward, &ctx, layer};
    if (farol_attr_gradient(&call, (int)n_in, xs, tg, grads) < 0) return raise_attr_error(L, &ctx);
    farol_lua_hold_release(xs);
    return push_results(L, grads, n_out, single || layer);
}

/* farol._attr_select(method, output, target, n_examples) -> each example's
 * selected output (an n_examples vector), as Captum's _select_targets */
static int l_attr_select(lua_State *L) {
    const char *m = luaL_checkstring(L, 1);
    farol_tensor *out = farol_lua_check_tensor(L, 2);
    const farol_target *tg = opt_attr_target(L, 3);
    lua_Integer n = luaL_checkinteger(L, 4);
    farol_target none = {FAROL_TARGET_NONE, 0, 0, NULL, false};
    if (!farol_is_floating(out->dtype))
        return farol_error(L, "farol: %s: the forward output is %s; it must be floating", m,
                           farol_dtype_name(out->dtype));
    farol_tensor *mask = farol_attr_selection(m, out, tg ? tg : &none, n);
    if (!mask) return farol_lua_raise_error(L);
    bool prev = farol_set_grad_enabled(false);
    farol_tensor *prod = farol_mul(out, mask);
    int64_t rows = out->ndim ? out->shape[0] : 1;  /* no -1 to infer: 0 examples are fine */
    int64_t shape[2] = {rows, rows ? farol_numel(out) / rows : 0};
    farol_tensor *flat = prod ? farol_reshape(prod, 2, shape) : NULL;
    farol_tensor *sel = flat ? farol_sum(flat, 1, false) : NULL;
    farol_set_grad_enabled(prev);
    farol_release(mask);
    farol_release(prod);
    farol_release(flat);
    farol_lua_push_tensor(L, sel);
    return 1;
}

/* farol._modified_relu(x, deconv) */
static int l_modified_relu(lua_State *L) {
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    farol_lua_push_tensor(L, farol_modified_relu(x, lua_toboolean(L, 2)));
    return 1;
}

/* farol._interpolate(x, oh, ow, mode) */
static int l_interpolate(lua_State *L) {
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    lua_Integer oh = luaL_checkinteger(L, 2), ow = luaL_checkinteger(L, 3);
    static const char *const modes[] = {"nearest", "bilinear", "area", NULL};
    int mode = luaL_checkoption(L, 4, NULL, modes);
    farol_lua_push_tensor(L, farol_interpolate(x, oh, ow, (farol_interp_mode)mode));
    return 1;
}

/* farol.tuple(a, b, ...): Captum's tuple, where a plain array would mean
 * "one entry per example" */
static int l_tuple(lua_State *L) {
    int n = lua_gettop(L);
    lua_createtable(L, n, 1);
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, i);
        lua_rawseti(L, -2, i);
    }
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    luaL_setmetatable(L, FAROL_TUPLE_MT);
    return 1;
}

static int tuple_tostring(lua_State *L) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "farol.tuple(");
    lua_Integer n = luaL_len(L, 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        luaL_tolstring(L, -1, NULL);
        lua_remove(L, -2);
        luaL_addvalue(&b);
        if (i < n) luaL_addstring(&b, ", ");
    }
    luaL_addstring(&b, ")");
    luaL_pushresult(&b);
    return 1;
}

void farol_lua_attr(lua_State *L) {
    luaL_newmetatable(L, FAROL_TUPLE_MT);
    lua_pushcfunction(L, tuple_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    luaL_newmetatable(L, FAROL_ATTR_TARGET_MT);
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {
        {"_saliency", l_saliency},
        {"_attr_target", l_attr_target},
        {"_attr_target_expand", l_attr_target_expand},
        {"_attr_grad", l_attr_grad},
        {"_attr_select", l_attr_select},
        {"_modified_relu", l_modified_relu},
        {"_interpolate", l_interpolate},
        {"tuple", l_tuple},
        {NULL, NULL},
    };
    for (const luaL_Reg *r = fns; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, -3, r->name);
    }
}
