/* Gradients from Lua: requires_grad, backward, farol.grad, farol.no_grad. */
#include "binding.h"

static int m_requires_grad(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    if (lua_isnone(L, 2)) {
        lua_pushboolean(L, t->requires_grad);
        return 1;
    }
    luaL_checktype(L, 2, LUA_TBOOLEAN);
    if (farol_set_requires_grad(t, lua_toboolean(L, 2)) < 0) return farol_lua_raise_error(L);
    lua_settop(L, 1);
    return 1;
}

static int m_backward(lua_State *L) {
    farol_tensor *t = farol_lua_check_tensor(L, 1);
    farol_tensor *g = lua_isnoneornil(L, 2) ? NULL : farol_lua_check_tensor(L, 2);
    if (farol_backward(t, g) < 0) return farol_lua_raise_error(L);
    return 0;
}

static int m_zero_grad(lua_State *L) {
    farol_zero_grad(farol_lua_check_tensor(L, 1));
    lua_settop(L, 1);
    return 1;
}

static int m_is_leaf(lua_State *L) {
    lua_pushboolean(L, farol_is_leaf(farol_lua_check_tensor(L, 1)));
    return 1;
}

/* A tensor or an array of tensors at arg into a hold (kept on the stack:
 * each tensor retained until the GC or hold_release).  Raw reads: the
 * array's metamethods have no say.  Returns the count. */
static int tensor_list(lua_State *L, int arg, farol_tensor ***out, const char *what, bool nil_ok) {
    farol_tensor *t = farol_lua_test_tensor(L, arg);
    lua_Integer n = 1;
    if (!t) {
        if (lua_type(L, arg) != LUA_TTABLE)
            farol_error(L, "farol: grad: %s must be a farol.Tensor or an array of them, got %s", what,
                       luaL_typename(L, arg));
        n = (lua_Integer)lua_rawlen(L, arg);
    }
    farol_tensor **xs = farol_lua_push_hold(L, n, 1 << 20, "grad", what);
    if (t) xs[0] = farol_retain(farol_lua_test_tensor(L, arg));  /* fetched again: the hold allocated */
    for (int i = 0; !t && i < n; i++) {
        lua_rawgeti(L, arg, i + 1);
        xs[i] = farol_retain(farol_lua_test_tensor(L, -1));
        if (!xs[i] && !(nil_ok && lua_isnil(L, -1)))
            farol_error(L, "farol: grad: %s[%d] is a %s, expected farol.Tensor", what, i + 1,
                       luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    *out = xs;
    return (int)n;
}

/* farol.grad(outputs, inputs [, grad_outputs]) -> gradients (an array when
 * inputs is an array, else one tensor) */
static int l_grad(lua_State *L) {
    lua_settop(L, 3);  /* the lists below are pushed above the arguments */
    farol_tensor **outs, **ins, **gouts = NULL, **grads;
    int n_out = tensor_list(L, 1, &outs, "outputs", false);
    int n_in = tensor_list(L, 2, &ins, "inputs", false);
    if (n_out == 0 || n_in == 0) return farol_error(L, "farol: grad: outputs and inputs must not be empty");
    if (!lua_isnoneornil(L, 3)) {
        int n_g = tensor_list(L, 3, &gouts, "grad_outputs", true);
        if (n_g != n_out)
            return farol_error(L, "farol: grad: %d grad_outputs for %d outputs", n_g, n_out);
    }
    grads = farol_lua_push_hold(L, n_in, 1 << 20, "grad", "inputs");
    if (farol_grad(n_out, outs, gouts, n_in, ins, grads) < 0) return farol_lua_raise_error(L);
    farol_lua_hold_release(outs);
    farol_lua_hold_release(ins);
    if (gouts) farol_lua_hold_release(gouts);
    bool single = farol_lua_test_tensor(L, 2) != NULL;
    if (single) {
        farol_lua_push_tensor(L, farol_retain(grads[0]));
        farol_lua_hold_release(grads);
        return 1;
    }
    lua_createtable(L, n_in, 0);
    for (int i = 0; i < n_in; i++) {
        farol_lua_push_tensor(L, farol_retain(grads[i]));  /* the hold keeps the rest if this raises */
        lua_rawseti(L, -2, i + 1);
    }
    farol_lua_hold_release(grads);
    return 1;
}

/* farol.no_grad(fn, ...) -> fn(...) with nothing recorded */
static int l_no_grad(lua_State *L) {
    bool callable = lua_type(L, 1) == LUA_TFUNCTION || luaL_getmetafield(L, 1, "__call") != LUA_TNIL;
    if (!callable)
        return farol_error(L, "farol: no_grad: fn must be a function or a callable table, got %s",
                          luaL_typename(L, 1));
    if (lua_type(L, 1) != LUA_TFUNCTION) lua_pop(L, 1);  /* the __call field */
    bool prev = farol_set_grad_enabled(false);
    int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    farol_set_grad_enabled(prev);
    if (rc != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

static int l_is_grad_enabled(lua_State *L) {
    lua_pushboolean(L, farol_grad_enabled());
    return 1;
}

static const luaL_Reg methods[] = {
    {"requires_grad", m_requires_grad}, {"backward", m_backward}, {"zero_grad", m_zero_grad},
    {"is_leaf", m_is_leaf}, {NULL, NULL},
};

static const luaL_Reg funcs[] = {
    {"grad", l_grad}, {"no_grad", l_no_grad}, {"is_grad_enabled", l_is_grad_enabled}, {NULL, NULL},
};

void farol_lua_autograd(lua_State *L) {
    for (const luaL_Reg *m = methods; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, -2, m->name);
    }
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
}
