/* Saliency from Lua: target forms, the Lua forward called back from C, and
 * farol.tuple.  The call forms (positional or options table) are sorted out
 * in lua/farol/attr.lua, which calls farol._saliency. */
#include "binding.h"

#include <stdio.h>

/* 1-based (or negative) Lua target index -> C convention (0-based, or
 * negative from the end) */
static int64_t target_index(lua_State *L, int idx, const char *what) {
    int isint;
    lua_Integer v = lua_tointegerx(L, idx, &isint);
    if (!isint)
        farol_error(L, "farol: Saliency: %s must be an integer, got %s", what,
                   lua_type(L, idx) == LUA_TNUMBER ? "a non-integer number" : luaL_typename(L, idx));
    if (v == 0) farol_error(L, "farol: Saliency: %s is 0; targets are 1-based (-1 is the last)", what);
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
static int read_indices(lua_State *L, int idx, int64_t *out, const char *what) {
    size_t len = lua_rawlen(L, idx);
    if (len < 1 || len >= FAROL_MAX_DIMS)
        farol_error(L, "farol: Saliency: %s has %zu indices; give 1 to %d", what, len, FAROL_MAX_DIMS - 1);
    int n = (int)len;
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, idx, i + 1);
        out[i] = target_index(L, lua_gettop(L), what);
        lua_pop(L, 1);
    }
    return n;
}

/* Parses the target at idx.  Index storage is a userdata left on the stack. */
static void parse_target(lua_State *L, int idx, farol_target *tg) {
    tg->kind = FAROL_TARGET_NONE;
    tg->n_idx = 0;
    tg->n_examples = 0;
    tg->idx = NULL;
    if (lua_isnoneornil(L, idx)) return;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        int64_t *p = lua_newuserdatauv(L, sizeof *p, 0);
        p[0] = target_index(L, idx, "target");
        *tg = (farol_target){FAROL_TARGET_ALL, 1, 0, p, false};
        return;
    }
    tensor_box *box = test_box(L, idx);
    if (box && !box->t) farol_error(L, "farol: Saliency: the target tensor was freed");
    farol_tensor *t = box ? box->t : NULL;
    if (t) {
        int64_t n = farol_numel(t);
        if (t->ndim > 1)
            farol_error(L, "farol: Saliency: a target tensor must have one element or be 1-D, got %d dims", t->ndim);
        int64_t *p = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *p, 0);
        for (int64_t i = 0; i < n; i++) {
            /* int64 read exactly: beyond 2^53 a double would not hold it */
            if (t->dtype == FAROL_I64) lua_pushinteger(L, (lua_Integer)farol_get_i64(t, &i));
            else lua_pushnumber(L, farol_get_flat(t, i));
            p[i] = target_index(L, lua_gettop(L), "target tensor element");
            lua_pop(L, 1);
        }
        if (n == 1) *tg = (farol_target){FAROL_TARGET_ALL, 1, 0, p, false};
        else *tg = (farol_target){FAROL_TARGET_PER_EXAMPLE, 1, n, p, true};
        return;
    }
    if (!lua_istable(L, idx))
        farol_error(L, "farol: Saliency: target must be nil, an integer, a tensor, farol.tuple(...) "
                      "or an array, got %s", luaL_typename(L, idx));
    if (is_tuple(L, idx)) {
        int64_t *p = lua_newuserdatauv(L, FAROL_MAX_DIMS * sizeof *p, 0);
        int n = read_indices(L, idx, p, "the target tuple");
        *tg = (farol_target){FAROL_TARGET_ALL, n, 0, p, false};
        return;
    }
    /* an array: integers (one class per example) or tuples/arrays (one index
     * tuple per example) */
    /* raw reads: a target array's metamethods have no say in its length or
     * entries */
    size_t len = lua_rawlen(L, idx);
    if (len < 1) farol_error(L, "farol: Saliency: the target array is empty");
    lua_rawgeti(L, idx, 1);
    bool rows = lua_istable(L, -1);
    size_t w = rows ? lua_rawlen(L, -1) : 1;
    lua_pop(L, 1);
    if (w < 1 || w >= FAROL_MAX_DIMS)
        farol_error(L, "farol: Saliency: target[1] has %zu indices; give 1 to %d", w, FAROL_MAX_DIMS - 1);
    int width = (int)w;
    if (len > ((size_t)1 << 40) / FAROL_MAX_DIMS)
        farol_error(L, "farol: Saliency: the target array has %zu entries, too many", len);
    int64_t n = (int64_t)len;
    int64_t *p = lua_newuserdatauv(L, (size_t)(n * width) * sizeof *p, 0);
    char what[64];
    for (int64_t e = 0; e < n; e++) {
        lua_rawgeti(L, idx, e + 1);
        snprintf(what, sizeof what, "target[%lld]", (long long)e + 1);
        if (lua_istable(L, -1) != rows)  /* {1, {2}} or {{1}, 2} */
            farol_error(L, "farol: Saliency: target[%lld] is a %s but target[1] is %s; give all "
                       "integers or all index tuples", (long long)e + 1, luaL_typename(L, -1),
                       rows ? "an index tuple" : "an integer");
        if (rows) {
            int64_t row[FAROL_MAX_DIMS];
            int k = read_indices(L, lua_gettop(L), row, what);
            if (k != width)
                farol_error(L, "farol: Saliency: target[%lld] has %d indices but target[1] has %d",
                           (long long)e + 1, k, width);
            memcpy(p + e * width, row, (size_t)width * sizeof *row);
        } else {
            p[e] = target_index(L, lua_gettop(L), what);
        }
        lua_pop(L, 1);
    }
    *tg = (farol_target){FAROL_TARGET_PER_EXAMPLE, width, n, p, !rows};
}

typedef struct {
    lua_State *L;
    int fn;        /* stack index of the forward */
    int args;      /* stack index of the packed additional args ({n = k, ...}) */
    int n_args;    /* k, checked */
    int err_ref;   /* the forward's error value, kept to rethrow after cleanup */
    int n_in;
    farol_tensor *const *inputs;
    farol_tensor *output;
} forward_ctx;

/* Runs under lua_pcall as trampoline(ctx, forward, packed_args): calls
 * forward(inputs..., args...) and checks the result.  Anything here may
 * raise, including running out of memory. */
static int forward_trampoline(lua_State *L) {
    forward_ctx *c = lua_touserdata(L, 1);
    luaL_checkstack(L, c->n_in + 8, "too many inputs");
    lua_pushvalue(L, 2);
    for (int i = 0; i < c->n_in; i++) {
        tensor_box *b = push_empty_box(L);
        box_set(L, b, farol_retain(c->inputs[i]));
    }
    int n_args = c->n_args;
    luaL_checkstack(L, n_args + 8, "too many additional_forward_args");
    for (int i = 1; i <= n_args; i++) lua_rawgeti(L, 3, i);
    lua_call(L, c->n_in + n_args, 1);
    tensor_box *b = test_box(L, -1);
    if (!b || !b->t)
        return farol_error(L, "farol: Saliency: the forward function returned %s, expected a farol.Tensor",
                          b ? "a freed tensor" : luaL_typename(L, -1));
    c->output = farol_retain(b->t);
    return 0;
}

/* The C callback: the Lua forward runs under lua_pcall, so an error cannot
 * longjmp over farol_saliency's frame, which owns tensors. */
static int lua_forward(void *vctx, int n_in, farol_tensor *const *inputs, farol_tensor **output) {
    forward_ctx *c = vctx;
    lua_State *L = c->L;
    c->n_in = n_in;
    c->inputs = inputs;
    c->output = NULL;
    lua_pushcfunction(L, forward_trampoline);
    lua_pushlightuserdata(L, c);
    lua_pushvalue(L, c->fn);
    lua_pushvalue(L, c->args);
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
        c->err_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        farol_set_error("farol: Saliency: the forward function raised an error");
        return -1;
    }
    *output = c->output;
    return 0;
}

/* most inputs and additional forward args taken (Lua's stack would refuse
 * more anyway) */
#define MAX_INPUTS 4096
#define MAX_FORWARD_ARGS 4096

/* farol._saliency(forward, inputs, target, abs, packed_args) */
static int l_saliency(lua_State *L) {
    lua_settop(L, 5);
    tensor_box *box = test_box(L, 2);
    if (box && !box->t) return farol_error(L, "farol: Saliency: the input was freed");
    bool single = box != NULL;
    lua_Integer n_in = 1;
    if (!single) {
        if (!lua_istable(L, 2))
            return farol_error(L, "farol: Saliency: inputs must be a farol.Tensor or an array of them, got %s",
                              luaL_typename(L, 2));
        n_in = (lua_Integer)lua_rawlen(L, 2);
        if (n_in < 1) return farol_error(L, "farol: Saliency: the inputs array is empty");
    }
    /* the inputs are held (retained) for the whole call: the forward may
     * free or drop them */
    farol_tensor **xs = push_hold(L, n_in, MAX_INPUTS, "Saliency", "the inputs array");
    for (int i = 0; i < n_in; i++) {
        if (single) {
            xs[i] = farol_retain(box->t);
            continue;
        }
        lua_rawgeti(L, 2, i + 1);
        tensor_box *b = test_box(L, -1);
        if (b && !b->t) return farol_error(L, "farol: Saliency: input %d was freed", i + 1);
        if (!b)
            return farol_error(L, "farol: Saliency: input %d is a %s, expected farol.Tensor", i + 1,
                              luaL_typename(L, -1));
        xs[i] = farol_retain(b->t);
        lua_pop(L, 1);
    }
    if (!lua_isnil(L, 4) && !lua_isboolean(L, 4))
        return farol_error(L, "farol: Saliency: abs must be a boolean, got %s", luaL_typename(L, 4));
    bool abs = lua_isnil(L, 4) ? true : lua_toboolean(L, 4);
    luaL_checktype(L, 5, LUA_TTABLE);
    lua_getfield(L, 5, "n");
    int isint;
    lua_Integer n_args = lua_tointegerx(L, -1, &isint);
    if (!isint || n_args < 0 || n_args > MAX_FORWARD_ARGS)
        return farol_error(L, "farol: Saliency: additional_forward_args.n must be an integer from 0 "
                          "to %d, got %s", MAX_FORWARD_ARGS,
                          lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
    lua_pop(L, 1);
    farol_target tg;
    parse_target(L, 3, &tg);

    farol_tensor **attrs = push_hold(L, n_in, MAX_INPUTS, "Saliency", "the inputs array");
    forward_ctx ctx = {L, 1, 5, (int)n_args, LUA_NOREF, 0, NULL, NULL};
    int rc = farol_saliency(lua_forward, &ctx, (int)n_in, xs, &tg, abs, attrs);
    if (rc < 0) {
        if (ctx.err_ref != LUA_NOREF) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, ctx.err_ref);
            luaL_unref(L, LUA_REGISTRYINDEX, ctx.err_ref);
            return lua_error(L);
        }
        return raise_error(L);
    }
    hold_release(xs);
    if (single) {
        push_tensor(L, farol_retain(attrs[0]));
        hold_release(attrs);
        return 1;
    }
    lua_createtable(L, (int)n_in, 0);
    for (int i = 0; i < n_in; i++) {
        push_tensor(L, farol_retain(attrs[i]));
        lua_rawseti(L, -2, i + 1);
    }
    hold_release(attrs);
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
    lua_pushcfunction(L, l_saliency);
    lua_setfield(L, -3, "_saliency");
    lua_pushcfunction(L, l_tuple);
    lua_setfield(L, -3, "tuple");
}
