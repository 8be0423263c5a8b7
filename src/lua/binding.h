/* The Lua binding: shared helpers.  The binding is thin: it checks Lua
 * arguments, turns 1-based Lua indices into 0-based ones and calls the C API. */
#ifndef FAROL_BINDING_H
#define FAROL_BINDING_H

#include <lauxlib.h>
#include <lua.h>

#include "internal.h"

#define FAROL_TENSOR_MT "farol.Tensor"
#define FAROL_TUPLE_MT "farol.tuple"

/* the userdata: t is NULL once freed.  magic tells a box from a foreign
 * userdata given the tensor metatable (debug.setmetatable). */
#define FAROL_BOX_MAGIC 0x666172546e73724bULL
typedef struct {
    uint64_t magic;
    farol_tensor *t;
    size_t bytes;  /* what this box counts towards its state's GC figure */
} tensor_box;

/* the box at index i, or NULL when the value is not a farol tensor box */
tensor_box *farol_lua_test_box(lua_State *L, int i);
/* pushes a new empty box (t NULL) */
tensor_box *farol_lua_push_empty_box(lua_State *L);

/* fills an empty box with t (taking over the reference) and counts its bytes */
void farol_lua_box_set(lua_State *L, tensor_box *b, farol_tensor *t);

/* the tensor at index i, or an error ("farol.Tensor expected" / "tensor was freed") */
farol_tensor *farol_lua_check_tensor(lua_State *L, int i);
/* the tensor at index i, or NULL if it is not a tensor (freed tensors raise) */
farol_tensor *farol_lua_test_tensor(lua_State *L, int i);
/* pushes t, taking over its reference; t == NULL raises farol_last_error() */
void farol_lua_push_tensor(lua_State *L, farol_tensor *t);
/* tensor, or a number coerced to a 0-d tensor like `like` (a new reference) */
farol_tensor *farol_lua_to_tensor_arg(lua_State *L, int i, const farol_tensor *like);
/* A hold: n tensor slots owned by a userdata pushed on the stack, released
 * by its __gc (or hold_release).  The binding keeps every tensor it uses
 * across a call that can run Lua (a forward, a metamethod, an allocation
 * that collects garbage) in a hold or a box on the stack, so that Lua code
 * freeing or dropping its tensors cannot leave C with a dangling pointer,
 * and an error cannot leak them.  n is checked against max. */
farol_tensor **farol_lua_push_hold(lua_State *L, lua_Integer n, lua_Integer max, const char *fn, const char *what);
/* releases the hold's tensors now (it stays valid and empty) */
void farol_lua_hold_release(farol_tensor **slots);

/* Any Lua allocation can run the GC, and so a finalizer (Lua code) that
 * frees the tensor of a box.  A function that reads a tensor after making
 * Lua objects anchors it first: a private box on the stack holding its own
 * reference.  Returns t. */
farol_tensor *farol_lua_anchor_tensor(lua_State *L, farol_tensor *t);

/* raises the pending C error */
int farol_lua_raise_error(lua_State *L);
/* raises a formatted message as is: farol's messages start with "farol:",
 * so no position is prepended (printf formats) */
int farol_error(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 1-based (or negative) Lua dim -> 0-based dim in [0, ndim) */
int farol_lua_check_dim(lua_State *L, int i, int ndim, const char *fn);
/* optional dim: FAROL_DIM_ALL when absent */
int farol_lua_opt_dim(lua_State *L, int i, int ndim, const char *fn);
/* sizes from varargs starting at i (numbers) or from one array at i;
 * a trailing dtype string is left for the caller (returns the count) */
int farol_lua_check_sizes(lua_State *L, int i, int64_t *shape, const char *fn, bool allow_minus1);
/* Lua boolean option: nil -> def */
bool farol_lua_opt_bool(lua_State *L, int i, bool def);

/* an int64 tensor of 0-based indices from a 1-based index tensor or array,
 * left on the stack in a box (which owns it).  It allocates, so the GC may
 * run Lua finalizers: fetch other tensor arguments after it. */
farol_tensor *farol_lua_check_index_tensor(lua_State *L, int i, const char *fn);


/* options table at idx: 0 when absent (nil or none), else its absolute
 * index; raises "farol: <fn>: unknown option 'k' (valid: a, b)" for a key
 * not in valid (NULL-terminated), and for a non-table */
int farol_lua_check_options(lua_State *L, int idx, const char *fn, const char *const valid[]);

/* registration of each part */
void farol_lua_tensor(lua_State *L);   /* metatable + creation functions */
void farol_lua_ops(lua_State *L);      /* ops as functions and methods */
void farol_lua_autograd(lua_State *L);
void farol_lua_attr(lua_State *L);
void farol_lua_io(lua_State *L);
void farol_lua_options(lua_State *L);  /* farol.check_options */
void farol_lua_image(lua_State *L);   /* image files, directory listing, isatty */

/* adds functions to the farol table (at -2) and, when meth is true, to the
 * tensor methods table (at -1) */
void farol_lua_register_funcs(lua_State *L, const luaL_Reg *fns, bool as_methods);

int farol_lua_open(lua_State *L);

/* the helpers' names before they took the farol_lua_ prefix, for code
 * written against them; new code uses the prefixed names */
#define check_tensor farol_lua_check_tensor
#define test_tensor farol_lua_test_tensor
#define push_tensor farol_lua_push_tensor
#define raise_error farol_lua_raise_error
#define to_tensor_arg farol_lua_to_tensor_arg
#define push_hold farol_lua_push_hold
#define hold_release farol_lua_hold_release
#define check_dim farol_lua_check_dim
#define opt_dim farol_lua_opt_dim
#define check_sizes farol_lua_check_sizes
#define opt_bool farol_lua_opt_bool
#define check_index_tensor farol_lua_check_index_tensor
#define box_set farol_lua_box_set
#define push_empty_box farol_lua_push_empty_box
#define test_box farol_lua_test_box
#define register_funcs farol_lua_register_funcs

#endif
