/* The Lua half of farol (every .lua file under lua/farol), compiled into
 * the binary by cmake/embed_lua.cmake: luaopen_farol registers each file in
 * package.preload, so require("farol.nn") needs no path. */
#ifndef FAROL_LUA_EMBEDDED_H
#define FAROL_LUA_EMBEDDED_H

#include <stddef.h>

typedef struct {
    const char *name;    /* for require: "farol.nn" */
    const char *chunk;   /* chunk name in messages: "@lua/farol/nn/init.lua" */
    const char *src;
    size_t len;
    int text;            /* 1: not Lua, require returns the text (docs/API.md) */
} farol_lua_source;

/* ends with an entry whose name is NULL */
extern const farol_lua_source farol_lua_sources[];

#endif
