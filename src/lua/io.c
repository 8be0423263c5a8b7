/* farol.load / farol.save. */
#include "binding.h"

#include <stdlib.h>

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

#define FAROL_DICT_MT "farol.dict"

/* the loading dict's userdata; magic: its metatable is reachable through
 * the debug library and may be put on a foreign userdata */
#define DICT_MAGIC 0x6661724469637421ULL
typedef struct {
    uint64_t magic;
    farol_tensor_dict d;
} dict_box;

static int dict_gc(lua_State *L) {
    dict_box *b = luaL_checkudata(L, 1, FAROL_DICT_MT);
    if (lua_rawlen(L, 1) == sizeof *b && b->magic == DICT_MAGIC) farol_dict_free(&b->d);
    return 0;
}

/* farol.load(path) -> {name = tensor}, metadata, {name = stored dtype}
 * (safetensors); tensor, nil, stored dtype (.npy) */
static int l_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    if (lua_gettop(L) > 1) return farol_error(L, "farol: load: takes one argument (path), got %d", lua_gettop(L));
    if (ends_with(path, ".npy")) {
        const char *stored = NULL;
        farol_lua_push_tensor(L, farol_load_npy_stored(path, &stored));
        lua_pushnil(L);
        lua_pushstring(L, stored);
        return 3;
    }
    /* the dict lives in a collectable userdata (liolib's pattern): whatever
     * raises below, the GC frees what was not handed over */
    dict_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    memset(box, 0, sizeof *box);
    box->magic = DICT_MAGIC;
    luaL_setmetatable(L, FAROL_DICT_MT);
    farol_tensor_dict *d = &box->d;
    if (farol_load_safetensors(path, d) < 0) return farol_lua_raise_error(L);
    lua_createtable(L, 0, d->n);
    lua_createtable(L, 0, d->n_meta);
    for (int i = 0; i < d->n_meta; i++) {
        lua_pushstring(L, d->meta_values[i]);
        lua_setfield(L, -2, d->meta_keys[i]);
    }
    lua_createtable(L, 0, d->n);  /* stored dtypes */
    for (int i = 0; i < d->n; i++) {
        lua_pushstring(L, d->stored[i]);
        lua_setfield(L, -2, d->names[i]);
    }
    for (int i = 0; i < d->n; i++) {
        lua_pushstring(L, d->names[i]);
        tensor_box *b = farol_lua_push_empty_box(L);
        farol_lua_box_set(L, b, d->tensors[i]);
        d->tensors[i] = NULL;
        lua_settable(L, -5);
    }
    farol_dict_free(d);
    return 3;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* the string option k of the options table at o, or NULL */
static const char *opt_string(lua_State *L, int o, const char *k) {
    if (!o) return NULL;
    lua_getfield(L, o, k);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        farol_error(L, "farol: save: option %s must be a string, got %s", k, luaL_typename(L, -1));
    const char *v = lua_tostring(L, -1);  /* kept alive by the options table */
    lua_pop(L, 1);
    return v;
}

/* farol.save(path.npy, tensor or {name = tensor} [, {dtype = ...}]) */
static int save_npy(lua_State *L, const char *path, int o) {
    int tv = 2;
    if (lua_istable(L, 2)) {
        int n = 0;
        for (lua_pushnil(L); lua_next(L, 2); lua_pop(L, 1)) n++;
        if (n != 1)
            return farol_error(L, "farol: save: %s: a .npy file holds one tensor, got a table of %d entries",
                               path, n);
        lua_pushnil(L);
        lua_next(L, 2);
        tv = lua_gettop(L);
    }
    tensor_box *b = luaL_testudata(L, tv, FAROL_TENSOR_MT);
    if (!b) return farol_error(L, "farol: save: %s: expected a tensor, got %s", path, luaL_typename(L, tv));
    if (!b->t) return farol_error(L, "farol: save: %s: the tensor was freed", path);
    if (o) {
        lua_getfield(L, o, "metadata");
        if (!lua_isnil(L, -1)) return farol_error(L, "farol: save: %s: .npy files have no metadata", path);
        lua_pop(L, 1);
    }
    if (farol_save_npy(path, b->t, opt_string(L, o, "dtype")) < 0) return farol_lua_raise_error(L);
    return 0;
}

/* farol.save(path, {name = tensor} [, {dtype = ..., metadata = {...}}]):
 * the format by the extension, .safetensors or .npy */
static int l_save(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    if (lua_gettop(L) > 3)
        return farol_error(L, "farol: save: takes (path, tensors [, options]), got %d arguments", lua_gettop(L));
    static const char *const valid[] = {"dtype", "metadata", NULL};
    int o = farol_lua_check_options(L, 3, "save", valid);
    lua_settop(L, 3);
    if (ends_with(path, ".npy")) return save_npy(L, path, o);
    if (!ends_with(path, ".safetensors"))
        return farol_error(L, "farol: save: %s: unknown extension (farol writes .safetensors and .npy)", path);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *dtype = opt_string(L, o, "dtype");
    /* the metadata table at slot 4 (the options stay at 3: they hold dtype) */
    if (o) lua_getfield(L, o, "metadata");
    else lua_pushnil(L);
    const int mi = 4;
    if (!lua_isnil(L, mi) && !lua_istable(L, mi))
        return farol_error(L, "farol: save: option metadata must be a table, got %s", luaL_typename(L, mi));
    int n = 0, n_meta = 0;
    for (lua_pushnil(L); lua_next(L, 2); lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return farol_error(L, "farol: save: tensor names must be strings, got a %s key",
                              luaL_typename(L, -2));
        tensor_box *b = farol_lua_test_box(L, -1);
        if (b && !b->t) return farol_error(L, "farol: save: %s was freed", lua_tostring(L, -2));
        if (!b)
            return farol_error(L, "farol: save: %s is a %s, expected farol.Tensor", lua_tostring(L, -2),
                              luaL_typename(L, -1));
        n++;
    }
    if (!lua_isnil(L, mi))
        for (lua_pushnil(L); lua_next(L, mi); lua_pop(L, 1)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return farol_error(L, "farol: save: metadata keys and values must be strings");
            n_meta++;
        }
    /* arrays live in userdata on the stack: nothing to free on error */
    farol_tensor_dict d = {0};
    d.n = n;
    d.names = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof(char *), 0);
    d.tensors = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof(farol_tensor *), 0);
    d.n_meta = n_meta;
    d.meta_keys = lua_newuserdatauv(L, (size_t)(n_meta + 1) * sizeof(char *), 0);
    d.meta_values = lua_newuserdatauv(L, (size_t)(n_meta + 1) * sizeof(char *), 0);
    int k = 0;
    for (lua_pushnil(L); lua_next(L, 2); lua_pop(L, 1)) d.names[k++] = (char *)lua_tostring(L, -2);
    qsort(d.names, (size_t)n, sizeof *d.names, by_name);
    for (int i = 0; i < n; i++) {
        lua_getfield(L, 2, d.names[i]);
        d.tensors[i] = farol_lua_test_tensor(L, -1);
        lua_pop(L, 1);
    }
    k = 0;
    if (!lua_isnil(L, mi))
        for (lua_pushnil(L); lua_next(L, mi); lua_pop(L, 1)) {
            d.meta_keys[k] = (char *)lua_tostring(L, -2);
            d.meta_values[k++] = (char *)lua_tostring(L, -1);
        }
    if (farol_save_safetensors_as(path, &d, dtype) < 0) return farol_lua_raise_error(L);
    return 0;
}

static const luaL_Reg funcs[] = {{"load", l_load}, {"save", l_save}, {NULL, NULL}};

void farol_lua_io(lua_State *L) {
    luaL_newmetatable(L, FAROL_DICT_MT);
    lua_pushcfunction(L, dict_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
}
