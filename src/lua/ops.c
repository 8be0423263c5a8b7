/* Ops as Lua functions (farol.exp(x), farol.nn.functional.conv2d ...) and
 * tensor methods (x:exp()).  Arithmetic metamethods share one dispatch. */
#include "binding.h"

#include <limits.h>
#include <math.h>

/* ---- arithmetic: x + y, x - 2, 2 ^ x ... ---- */

typedef farol_tensor *(*binary_fn)(farol_tensor *, farol_tensor *);
static const binary_fn binary_fns[] = {farol_add, farol_sub, farol_mul, farol_div, farol_pow};
static const char *const binary_names[] = {"add", "sub", "mul", "div", "pow"};

static int arith(lua_State *L) {
    int op = (int)lua_tointeger(L, lua_upvalueindex(1));
    farol_tensor *ta = farol_lua_test_tensor(L, 1), *tb = farol_lua_test_tensor(L, 2);
    if (!ta && !tb)
        return farol_error(L, "farol: %s: expected a farol.Tensor operand", binary_names[op]);
    for (int i = 1; i <= 2; i++)
        if (!farol_lua_test_tensor(L, i) && lua_type(L, i) != LUA_TNUMBER)
            return farol_error(L, "farol: %s: operand %d must be a farol.Tensor or a number, got %s",
                              binary_names[op], i, luaL_typename(L, i));
    /* x ^ number has its own op: exact for negative bases with integer powers */
    if (op == 4 && ta && !tb) {
        farol_lua_push_tensor(L, farol_pow_scalar(ta, lua_tonumber(L, 2)));
        return 1;
    }
    farol_tensor *a = farol_lua_to_tensor_arg(L, 1, ta ? ta : tb), *b = farol_lua_to_tensor_arg(L, 2, ta ? ta : tb);
    farol_tensor *out = a && b ? binary_fns[op](a, b) : NULL;
    farol_release(a);
    farol_release(b);
    farol_lua_push_tensor(L, out);
    return 1;
}

static int l_unm(lua_State *L) { farol_lua_push_tensor(L, farol_neg(farol_lua_check_tensor(L, 1))); return 1; }

/* ---- pointwise ---- */

static int l_unary(lua_State *L) {
    farol_unary_op op = (farol_unary_op)lua_tointeger(L, lua_upvalueindex(1));
    farol_lua_push_tensor(L, farol_unary(farol_lua_check_tensor(L, 1), op));
    return 1;
}

static int l_leaky_relu(lua_State *L) {
    farol_lua_push_tensor(L, farol_leaky_relu(farol_lua_check_tensor(L, 1), luaL_optnumber(L, 2, 0.01)));
    return 1;
}

static int l_elu(lua_State *L) {
    farol_lua_push_tensor(L, farol_elu(farol_lua_check_tensor(L, 1), luaL_optnumber(L, 2, 1.0)));
    return 1;
}

static int l_clamp(lua_State *L) {
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    double lo = luaL_optnumber(L, 2, -INFINITY), hi = luaL_optnumber(L, 3, INFINITY);
    if (lo > hi) return farol_error(L, "farol: clamp: lower bound %g is above upper bound %g", lo, hi);
    farol_lua_push_tensor(L, farol_clamp(x, lo, hi));
    return 1;
}

/* ---- reductions: x:sum([dim [, keepdim]]) ---- */

typedef farol_tensor *(*reduce_fn)(farol_tensor *, int, bool);
static const reduce_fn reduce_fns[] = {farol_sum, farol_mean, farol_var, farol_std, farol_amax,
                                       farol_amin, farol_logsumexp, farol_norm};
static const char *const reduce_names[] = {"sum", "mean", "var", "std", "amax", "amin",
                                           "logsumexp", "norm"};

static int l_reduce(lua_State *L) {
    int op = (int)lua_tointeger(L, lua_upvalueindex(1));
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    int dim = farol_lua_opt_dim(L, 2, x->ndim, reduce_names[op]);
    farol_lua_push_tensor(L, reduce_fns[op](x, dim, farol_lua_opt_bool(L, 3, false)));
    return 1;
}

/* pushes 0-based indices as a new 1-based tensor (idx itself may be saved
 * by the tape, so it is not modified); takes over idx's reference */
static int push_indices(lua_State *L, farol_tensor *idx) {
    if (!idx) return farol_lua_raise_error(L);
    farol_tensor *one = farol_empty(idx->ndim, idx->shape, FAROL_I64);
    if (one) {
        farol_copy_to_buffer(idx, farol_data(one), FAROL_I64);
        int64_t *p = farol_data(one), n = farol_numel(one);
        for (int64_t i = 0; i < n; i++) p[i] += 1;
    }
    farol_release(idx);
    farol_lua_push_tensor(L, one);
    return 1;
}

/* x:max() -> 0-d value; x:max(d [, keepdim]) -> values, 1-based indices */
static int extreme(lua_State *L, bool is_max) {
    const char *fn = is_max ? "max" : "min";
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) {
        farol_lua_push_tensor(L, is_max ? farol_amax(x, FAROL_DIM_ALL, false) : farol_amin(x, FAROL_DIM_ALL, false));
        return 1;
    }
    int dim = farol_lua_check_dim(L, 2, x->ndim, fn);
    bool keep = farol_lua_opt_bool(L, 3, false);
    /* the indices wait in a hold while the values are pushed (which can
     * raise: out of memory) */
    farol_tensor **idx = farol_lua_push_hold(L, 1, 1, fn, "indices");
    x = farol_lua_check_tensor(L, 1);
    farol_tensor *v = is_max ? farol_max_dim(x, dim, keep, idx) : farol_min_dim(x, dim, keep, idx);
    if (!v) return farol_lua_raise_error(L);
    farol_lua_push_tensor(L, v);
    farol_tensor *i = *idx;
    *idx = NULL;
    return 1 + push_indices(L, i);
}

static int l_max(lua_State *L) { return extreme(L, true); }
static int l_min(lua_State *L) { return extreme(L, false); }

static int arg_extreme(lua_State *L, bool is_max) {
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    int dim = farol_lua_opt_dim(L, 2, x->ndim, is_max ? "argmax" : "argmin");
    bool keep = farol_lua_opt_bool(L, 3, false);
    return push_indices(L, is_max ? farol_argmax(x, dim, keep) : farol_argmin(x, dim, keep));
}

static int l_argmax(lua_State *L) { return arg_extreme(L, true); }
static int l_argmin(lua_State *L) { return arg_extreme(L, false); }

static int l_softmax(lua_State *L) {
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    farol_lua_push_tensor(L, farol_softmax(x, farol_lua_check_dim(L, 2, x->ndim, "softmax")));
    return 1;
}

static int l_log_softmax(lua_State *L) {
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    farol_lua_push_tensor(L, farol_log_softmax(x, farol_lua_check_dim(L, 2, x->ndim, "log_softmax")));
    return 1;
}

/* ---- comparisons, masks, where ---- */

static const char *const cmp_names[] = {"eq", "ne", "lt", "le", "gt", "ge"};

static int l_compare(lua_State *L) {
    int op = (int)lua_tointeger(L, lua_upvalueindex(1));
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    if (!farol_lua_test_tensor(L, 2) && lua_type(L, 2) != LUA_TNUMBER)
        return farol_error(L, "farol: %s: argument 2 must be a farol.Tensor or a number, got %s",
                          cmp_names[op], luaL_typename(L, 2));
    farol_tensor *y = farol_lua_to_tensor_arg(L, 2, x);
    farol_tensor *out = y ? farol_compare(x, y, (farol_cmp)op) : NULL;
    farol_release(y);
    const char *msg = farol_last_error_1based();
    if (!out && strncmp(msg, "farol: compare:", 15) == 0)  /* the C API's name for all six */
        return farol_error(L, "farol: %s:%s", cmp_names[op], msg + 15);
    farol_lua_push_tensor(L, out);
    return 1;
}

static int l_masked_fill(lua_State *L) {
    farol_tensor *x = farol_lua_check_tensor(L, 1), *mask = farol_lua_check_tensor(L, 2);
    farol_lua_push_tensor(L, farol_masked_fill(x, mask, luaL_checknumber(L, 3)));
    return 1;
}

static int l_where(lua_State *L) {
    farol_tensor *cond = farol_lua_check_tensor(L, 1);
    farol_tensor *like = farol_lua_test_tensor(L, 2) ? farol_lua_test_tensor(L, 2) : farol_lua_test_tensor(L, 3);
    for (int i = 2; i <= 3; i++)
        if (!farol_lua_test_tensor(L, i) && lua_type(L, i) != LUA_TNUMBER)
            return luaL_typeerror(L, i, "farol.Tensor or number");
    farol_tensor *a = farol_lua_to_tensor_arg(L, 2, like), *b = farol_lua_to_tensor_arg(L, 3, like);
    farol_tensor *out = a && b ? farol_where(cond, a, b) : NULL;
    farol_release(a);
    farol_release(b);
    farol_lua_push_tensor(L, out);
    return 1;
}

/* ---- matrix products ---- */

static int l_matmul(lua_State *L) {
    farol_lua_push_tensor(L, farol_matmul(farol_lua_check_tensor(L, 1), farol_lua_check_tensor(L, 2)));
    return 1;
}

static farol_tensor *opt_tensor(lua_State *L, int i) {
    return lua_isnoneornil(L, i) ? NULL : farol_lua_check_tensor(L, i);
}

static int l_linear(lua_State *L) {
    farol_tensor *x = farol_lua_check_tensor(L, 1), *w = farol_lua_check_tensor(L, 2);
    farol_lua_push_tensor(L, farol_linear(x, w, opt_tensor(L, 3)));
    return 1;
}

/* ---- attention ---- */

/* q, k, v [, opts] (nargs 4) or qkv, heads [, opts] (packed: MultiheadAttention's
 * self-attention); opts: attn_mask, key_padding_mask, scale */
static int attention(lua_State *L, bool packed) {
    const char *fn = packed ? "_self_attention" : "scaled_dot_product_attention";
    int oi = packed ? 3 : 4;
    if (lua_gettop(L) > oi)
        return farol_error(L, "farol: %s: takes at most %d arguments, got %d", fn, oi, lua_gettop(L));
    static const char *const valid[] = {"attn_mask", "key_padding_mask", "scale", NULL};
    int o = farol_lua_check_options(L, oi, fn, valid);
    lua_settop(L, oi);
    /* the option values stay on the stack (oi + 1 ...) while C reads them */
    static const char *const keys[] = {"attn_mask", "key_padding_mask", "scale"};
    for (int i = 0; i < 3; i++) {
        if (o) {
            lua_pushstring(L, keys[i]);
            lua_rawget(L, o);
        } else {
            lua_pushnil(L);
        }
    }
    farol_attention_opts a = farol_attention_defaults();
    for (int i = 0; i < 2; i++)
        if (!lua_isnil(L, oi + 1 + i) && !farol_lua_test_tensor(L, oi + 1 + i))
            return farol_error(L, "farol: %s: %s must be a tensor, got %s", fn, keys[i],
                               luaL_typename(L, oi + 1 + i));
    if (!lua_isnil(L, oi + 3)) {
        if (lua_type(L, oi + 3) != LUA_TNUMBER)
            return farol_error(L, "farol: %s: scale must be a number, got %s", fn,
                               luaL_typename(L, oi + 3));
        a.scale = lua_tonumber(L, oi + 3);
    }
    a.attn_mask = farol_lua_test_tensor(L, oi + 1);
    a.key_padding_mask = farol_lua_test_tensor(L, oi + 2);
    if (packed) {
        farol_tensor *qkv = farol_lua_check_tensor(L, 1);
        lua_Integer h = luaL_checkinteger(L, 2);
        if (h < 1 || h > INT_MAX) return farol_error(L, "farol: %s: heads must be positive, got %lld", fn, (long long)h);
        farol_lua_push_tensor(L, farol_self_attention(qkv, (int)h, &a));
    } else {
        farol_tensor *q = farol_lua_check_tensor(L, 1), *k = farol_lua_check_tensor(L, 2),
                     *v = farol_lua_check_tensor(L, 3);
        farol_lua_push_tensor(L, farol_attention(q, k, v, &a));
    }
    return 1;
}

static int l_scaled_dot_product_attention(lua_State *L) { return attention(L, false); }
static int l_self_attention(lua_State *L) { return attention(L, true); }

/* ---- lists of tensors: cat, stack ---- */

static int join(lua_State *L, bool stack) {
    const char *fn = stack ? "stack" : "cat";
    lua_settop(L, 2);  /* the optional dim stays at 2, below the array pushed next */
    luaL_checktype(L, 1, LUA_TTABLE);
    /* raw reads, and a hold: no metamethod runs and no tensor goes away
     * while C uses the list */
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    if (n < 1) return farol_error(L, "farol: %s: expects a non-empty array of tensors", fn);
    farol_tensor **xs = farol_lua_push_hold(L, n, 1 << 20, fn, "the array of tensors");
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        xs[i] = farol_retain(farol_lua_test_tensor(L, -1));
        if (!xs[i]) return farol_error(L, "farol: %s: element %d is a %s, expected farol.Tensor", fn,
                                      i + 1, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    int nd = xs[0]->ndim + (stack ? 1 : 0);
    int dim = lua_isnoneornil(L, 2) ? 0 : farol_lua_check_dim(L, 2, nd, fn);
    farol_tensor *out = stack ? farol_stack((int)n, xs, dim) : farol_cat((int)n, xs, dim);
    farol_lua_hold_release(xs);
    farol_lua_push_tensor(L, out);
    return 1;
}

static int l_cat(lua_State *L) { return join(L, false); }
static int l_stack(lua_State *L) { return join(L, true); }

/* ---- neural-network functions ---- */

/* the value at idx as a number or a {h, w} pair of integers */
static int pair_value(lua_State *L, int idx, const char *key, const char *fn) {
    lua_Integer v = lua_tointeger(L, idx);
    if (v < -(1 << 30) || v > (1 << 30))
        farol_error(L, "farol: %s: %s %lld is out of range", fn, key, v);
    return (int)v;
}

static void read_pair(lua_State *L, int idx, int *out, const char *key, const char *fn) {
    if (lua_isinteger(L, idx)) {
        out[0] = out[1] = pair_value(L, idx, key, fn);
        return;
    }
    if (lua_istable(L, idx) && !farol_lua_test_tensor(L, idx) && lua_rawlen(L, idx) == 2) {
        for (int i = 0; i < 2; i++) {
            lua_rawgeti(L, idx, i + 1);
            if (!lua_isinteger(L, -1))
                farol_error(L, "farol: %s: %s must be an integer or a pair of integers", fn, key);
            out[i] = pair_value(L, lua_gettop(L), key, fn);
            lua_pop(L, 1);
        }
        return;
    }
    farol_error(L, "farol: %s: %s must be an integer or a pair of integers, got %s", fn, key,
               luaL_typename(L, idx));
}

/* opts.key as a number or pair, def when absent (opts == 0: no options) */
static void opt_pair(lua_State *L, int opts, const char *key, int *out, int def, const char *fn) {
    out[0] = out[1] = def;
    if (opts == 0) return;
    lua_pushstring(L, key);
    lua_rawget(L, opts);  /* raw: an options table's metamethods have no say */
    if (!lua_isnil(L, -1)) read_pair(L, lua_gettop(L), out, key, fn);
    lua_pop(L, 1);
}

/* opts.key as a boolean, def when absent */
static bool opt_flag(lua_State *L, int opts, const char *key, bool def, const char *fn) {
    if (opts == 0) return def;
    lua_pushstring(L, key);
    lua_rawget(L, opts);
    bool v = def;
    if (lua_isboolean(L, -1)) v = lua_toboolean(L, -1);
    else if (!lua_isnil(L, -1))
        farol_error(L, "farol: %s: %s must be a boolean, got %s", fn, key, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

static int conv(lua_State *L, bool two_d) {
    const char *fn = two_d ? "conv2d" : "conv1d";
    farol_lua_check_tensor(L, 1), farol_lua_check_tensor(L, 2), opt_tensor(L, 3);
    static const char *const valid[] = {"stride", "padding", "dilation", "groups", NULL};
    int o = farol_lua_check_options(L, 4, fn, valid);
    farol_conv_opts c = farol_conv_defaults();
    opt_pair(L, o, "stride", c.stride, 1, fn);
    opt_pair(L, o, "padding", c.padding, 0, fn);
    opt_pair(L, o, "dilation", c.dilation, 1, fn);
    int g[2];
    opt_pair(L, o, "groups", g, 1, fn);
    c.groups = g[0];
    farol_tensor *x = farol_lua_check_tensor(L, 1), *w = farol_lua_check_tensor(L, 2), *b = opt_tensor(L, 3);
    farol_lua_push_tensor(L, two_d ? farol_conv2d(x, w, b, &c) : farol_conv1d(x, w, b, &c));
    return 1;
}

static int l_conv1d(lua_State *L) { return conv(L, false); }
static int l_conv2d(lua_State *L) { return conv(L, true); }

static int pool(lua_State *L, bool is_max) {
    const char *fn = is_max ? "max_pool2d" : "avg_pool2d";
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    farol_pool_opts p;
    read_pair(L, 2, p.kernel, "kernel size", fn);
    static const char *const max_valid[] = {"stride", "padding", "ceil_mode", NULL};
    static const char *const avg_valid[] = {"stride", "padding", "ceil_mode", "count_include_pad", NULL};
    int o = farol_lua_check_options(L, 3, fn, is_max ? max_valid : avg_valid);
    opt_pair(L, o, "stride", p.stride, 0, fn);
    opt_pair(L, o, "padding", p.padding, 0, fn);
    p.ceil_mode = opt_flag(L, o, "ceil_mode", false, fn);
    p.exclude_pad = !is_max && !opt_flag(L, o, "count_include_pad", true, fn);
    farol_lua_push_tensor(L, is_max ? farol_max_pool2d(x, &p) : farol_avg_pool2d(x, &p));
    return 1;
}

static int l_max_pool2d(lua_State *L) { return pool(L, true); }
static int l_avg_pool2d(lua_State *L) { return pool(L, false); }

static int l_adaptive_avg_pool2d(lua_State *L) {
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    int64_t size[FAROL_MAX_DIMS];  /* check_sizes may read up to FAROL_MAX_DIMS */
    if (lua_type(L, 2) == LUA_TNUMBER) {
        size[0] = size[1] = luaL_checkinteger(L, 2);
    } else if (farol_lua_check_sizes(L, 2, size, "adaptive_avg_pool2d", false) != 2) {
        return farol_error(L, "farol: adaptive_avg_pool2d: output size must be a number or {h, w}");
    }
    farol_lua_push_tensor(L, farol_adaptive_avg_pool2d(x, size[0], size[1]));
    return 1;
}

static int l_batch_norm(lua_State *L) {
    farol_tensor *x = farol_lua_check_tensor(L, 1), *m = farol_lua_check_tensor(L, 2), *v = farol_lua_check_tensor(L, 3);
    farol_lua_push_tensor(L, farol_batch_norm(x, m, v, opt_tensor(L, 4), opt_tensor(L, 5), luaL_optnumber(L, 6, 1e-5)));
    return 1;
}

static int l_layer_norm(lua_State *L) {
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    int64_t shape[FAROL_MAX_DIMS];
    int n;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        shape[0] = luaL_checkinteger(L, 2);
        n = 1;
    } else {
        luaL_checktype(L, 2, LUA_TTABLE);
        n = farol_lua_check_sizes(L, 2, shape, "layer_norm", false);
    }
    farol_lua_push_tensor(L, farol_layer_norm(x, n, shape, opt_tensor(L, 3), opt_tensor(L, 4),
                                    luaL_optnumber(L, 5, 1e-5)));
    return 1;
}

/* the first 0-based index in idx (fresh, contiguous) that is >= n, or -1 */
static int64_t first_beyond(const farol_tensor *idx, int64_t n) {
    const int64_t *p = farol_data((farol_tensor *)idx);
    for (int64_t k = 0; k < farol_numel(idx); k++)
        if (p[k] >= n) return k;
    return -1;
}

static int l_embedding(lua_State *L) {
    farol_lua_check_tensor(L, 2);
    farol_tensor *idx = farol_lua_check_index_tensor(L, 1, "embedding");  /* can run the GC */
    farol_tensor *w = farol_lua_check_tensor(L, 2);
    int64_t bad = w->ndim == 2 ? first_beyond(idx, w->shape[0]) : -1;
    if (bad >= 0) {
        lua_Integer v = ((int64_t *)farol_data(idx))[bad] + 1;
        return farol_error(L, "farol: embedding: index %lld (element %lld of the indices) is out of range "
                          "for w [%lld, %lld] (valid 1..%lld)", v, (lua_Integer)bad + 1,
                          (lua_Integer)w->shape[0], (lua_Integer)w->shape[1], (lua_Integer)w->shape[0]);
    }
    farol_lua_push_tensor(L, farol_embedding(idx, w));
    return 1;
}

static int l_dropout(lua_State *L) {
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    farol_lua_push_tensor(L, farol_dropout(x, luaL_optnumber(L, 2, 0.5), farol_lua_opt_bool(L, 3, true)));
    return 1;
}

static int l_cross_entropy(lua_State *L) {
    farol_lua_check_tensor(L, 1);
    farol_tensor *labels = farol_lua_check_index_tensor(L, 2, "cross_entropy");  /* can run the GC */
    farol_tensor *logits = farol_lua_check_tensor(L, 1);
    int64_t bad = logits->ndim == 2 ? first_beyond(labels, logits->shape[1]) : -1;
    if (bad >= 0) {
        lua_Integer v = ((int64_t *)farol_data(labels))[bad] + 1;
        return farol_error(L, "farol: cross_entropy: label %lld (element %lld of labels) is out of range "
                          "for %lld classes (valid 1..%lld)", v, (lua_Integer)bad + 1,
                          (lua_Integer)logits->shape[1], (lua_Integer)logits->shape[1]);
    }
    farol_lua_push_tensor(L, farol_cross_entropy(logits, labels));
    return 1;
}

static int l_mse_loss(lua_State *L) {
    farol_lua_push_tensor(L, farol_mse_loss(farol_lua_check_tensor(L, 1), farol_lua_check_tensor(L, 2)));
    return 1;
}

static int l_pad(lua_State *L) {
    farol_tensor *x = farol_lua_check_tensor(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t len = lua_rawlen(L, 2);
    if (len > 2 * FAROL_MAX_DIMS)
        return farol_error(L, "farol: pad: %zu pads given, at most %d", len, 2 * FAROL_MAX_DIMS);
    int n = (int)len;
    int64_t pads[2 * FAROL_MAX_DIMS];
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        if (!lua_isinteger(L, -1)) return farol_error(L, "farol: pad: pad %d must be an integer", i + 1);
        pads[i] = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    farol_lua_push_tensor(L, farol_pad(x, n, pads, luaL_optnumber(L, 3, 0)));
    return 1;
}

static const luaL_Reg op_funcs[] = {
    {"leaky_relu", l_leaky_relu}, {"elu", l_elu}, {"clamp", l_clamp},
    {"max", l_max}, {"min", l_min}, {"argmax", l_argmax}, {"argmin", l_argmin},
    {"softmax", l_softmax}, {"log_softmax", l_log_softmax}, {"masked_fill", l_masked_fill},
    {"matmul", l_matmul}, {"linear", l_linear}, {"conv1d", l_conv1d}, {"conv2d", l_conv2d},
    {"max_pool2d", l_max_pool2d}, {"avg_pool2d", l_avg_pool2d},
    {"adaptive_avg_pool2d", l_adaptive_avg_pool2d}, {"batch_norm", l_batch_norm},
    {"layer_norm", l_layer_norm}, {"dropout", l_dropout}, {"mse_loss", l_mse_loss},
    {"pad", l_pad}, {NULL, NULL},
};

/* functions only (the first argument is not the tensor they act on) */
static const luaL_Reg plain_funcs[] = {
    {"where", l_where}, {"cat", l_cat}, {"stack", l_stack}, {"embedding", l_embedding},
    {"cross_entropy", l_cross_entropy},
    {"scaled_dot_product_attention", l_scaled_dot_product_attention},
    {"_self_attention", l_self_attention}, {NULL, NULL},
};

/* push fn with integer upvalue k under name, as function and method */
static void register_closure(lua_State *L, const char *name, lua_CFunction fn, int k) {
    lua_pushinteger(L, k);
    lua_pushcclosure(L, fn, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    lua_setfield(L, -3, name);
}

/* expects the farol table at -2 and the methods table at -1 */
void farol_lua_ops(lua_State *L) {
    for (int op = 0; op < FAROL_UNARY_COUNT; op++)
        register_closure(L, farol_unary_name((farol_unary_op)op), l_unary, op);
    for (int op = 0; op < (int)(sizeof reduce_names / sizeof *reduce_names); op++)
        register_closure(L, reduce_names[op], l_reduce, op);
    for (int op = 0; op < 6; op++) register_closure(L, cmp_names[op], l_compare, op);
    for (int op = 0; op < 5; op++) register_closure(L, binary_names[op], arith, op);
    farol_lua_register_funcs(L, op_funcs, true);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, plain_funcs, 0);
    lua_pop(L, 1);

    /* metamethods on the tensor metatable */
    luaL_getmetatable(L, FAROL_TENSOR_MT);
    static const char *const events[] = {"__add", "__sub", "__mul", "__div", "__pow"};
    for (int op = 0; op < 5; op++) {
        lua_pushinteger(L, op);
        lua_pushcclosure(L, arith, 1);
        lua_setfield(L, -2, events[op]);
    }
    lua_pushcfunction(L, l_unm);
    lua_setfield(L, -2, "__unm");
    lua_pop(L, 1);
}
