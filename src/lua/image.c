/* The C half of farol.image and farol.dataset: image files in and out, and
 * the two things plain Lua cannot do, listing a directory and asking whether
 * a file descriptor is a terminal.  The public functions are in
 * lua/farol/image.lua and lua/farol/dataset.lua; these are farol._* helpers. */
#define _POSIX_C_SOURCE 200809L
#include "binding.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* farol._image_load(path, channels) -> C x H x W float32 tensor */
static int l_image_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_Integer c = luaL_optinteger(L, 2, 0);
    if (c < 0 || c > 4) return farol_error(L, "farol: image.load: channels must be 1, 2, 3 or 4, got %lld", c);
    farol_lua_push_tensor(L, farol_image_load(path, (int)c));
    return 1;
}

/* farol._image_save(path, tensor) */
static int l_image_save(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    farol_tensor *t = farol_lua_check_tensor(L, 2);
    if (farol_image_save_png(path, t) < 0) return farol_lua_raise_error(L);
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* magic: the metatable is reachable through the debug library */
#define DIR_MAGIC 0x6661724469722121ULL
typedef struct {
    uint64_t magic;
    DIR *d;
} dir_box;

static int dir_gc(lua_State *L) {
    dir_box *b = lua_touserdata(L, 1);
    if (b && lua_rawlen(L, 1) == sizeof *b && b->magic == DIR_MAGIC && b->d) {
        closedir(b->d);
        b->d = NULL;
    }
    return 0;
}

/* farol._listdir(path) -> sorted array of entry names (no "." or ".."), or
 * nil and a message */
static int l_listdir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    /* the DIR lives in a userdata whose __gc closes it: running out of Lua
     * memory below must not leak the descriptor */
    dir_box *dp = lua_newuserdatauv(L, sizeof *dp, 0);
    *dp = (dir_box){DIR_MAGIC, NULL};
    if (luaL_newmetatable(L, "farol.dir")) {
        lua_pushcfunction(L, dir_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    DIR *d = dp->d = opendir(path);
    if (!d) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    /* names collected in a Lua table first (no C allocation to leak on error) */
    lua_newtable(L);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++n);
    }
    closedir(d);
    dp->d = NULL;
    const char **names = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *names, 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, -2, i + 1);
        names[i] = lua_tostring(L, -1);
        lua_pop(L, 1);  /* still referenced by the table */
    }
    qsort(names, (size_t)n, sizeof *names, by_name);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* farol._isatty(fd) -> boolean */
static int l_isatty(lua_State *L) {
    lua_Integer fd = luaL_checkinteger(L, 1);
    lua_pushboolean(L, fd >= 0 && fd <= 1024 && isatty((int)fd));
    return 1;
}

static const luaL_Reg funcs[] = {
    {"_image_load", l_image_load}, {"_image_save", l_image_save},
    {"_listdir", l_listdir}, {"_isatty", l_isatty}, {NULL, NULL},
};

void farol_lua_image(lua_State *L) {
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
}
