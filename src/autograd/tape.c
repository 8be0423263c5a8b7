/* The gradient tape.
 *
 * Recording is eager: an op whose input requires a gradient creates a node
 * holding detached views of what its backward needs and edges to its inputs'
 * nodes.  Nodes are numbered in creation order, so a node's inputs always
 * have smaller numbers and sorting by number is a topological order.
 *
 * Backward collects the nodes reachable from the outputs, marks those that
 * lead to a requested input ("needed"), and runs only needed nodes, newest
 * first, telling each which of its input gradients lead somewhere. */
#include "internal.h"

#include <stdatomic.h>
#include <stdio.h>

static _Thread_local bool grad_disabled;
static _Thread_local farol_tape_stats stats;
static atomic_uint_fast64_t next_seq;
/* leaves numbered up to this take no gradient on this thread (0: none) */
static _Thread_local uint64_t frozen_upto;

bool farol_grad_enabled(void) { return !grad_disabled; }

bool farol_set_grad_enabled(bool on) {
    bool prev = !grad_disabled;
    grad_disabled = !on;
    return prev;
}

farol_tape_stats farol_get_tape_stats(void) { return stats; }
void farol_reset_tape_stats(void) { memset(&stats, 0, sizeof stats); }

/* ---- nodes ---- */

/* what the tensor layer asks of the tape without calling up into it */
static void release_node(farol_tensor *t) {
    if (t->node->leaf == t) t->node->leaf = NULL;
    farol_node_release(t->node);
}
static const farol_tape_hooks hooks = {release_node, farol_grad_enabled};

static const farol_op_desc leaf_desc = {"leaf", 0, false, NULL};

static farol_node *node_new(farol_op op, const farol_op_desc *desc, int n_inputs) {
    /* before any tensor has a node: the tensor layer then knows the tape */
    farol_tensor_set_tape_hooks(&hooks);
    farol_node *n = farol_calloc(1, sizeof *n);
    if (!n) return NULL;
    if (n_inputs > 0) {
        n->inputs = farol_calloc((size_t)n_inputs, sizeof *n->inputs);
        if (!n->inputs) {
            farol_free(n);
            return NULL;
        }
    }
    n->refcount = 1;
    n->op = op;
    n->desc = desc;
    n->n_inputs = n_inputs;
    n->seq = atomic_fetch_add(&next_seq, 1) + 1;
    return n;
}

void farol_node_retain(farol_node *n) {
    if (n) n->refcount++;
}

/* Iterative, so that releasing a long chain (a loop of 100k ops) cannot
 * overflow the C stack. */
void farol_node_release(farol_node *n) {
    if (!n || --n->refcount > 0) return;
    farol_node *stack_small[64], **stack = stack_small;
    size_t top = 0, cap = 64;
    stack[top++] = n;
    while (top > 0) {
        farol_node *x = stack[--top];
        for (int i = 0; i < x->n_saved; i++) farol_release(x->saved[i]);
        farol_release(x->grad);
        for (int i = 0; i < x->n_inputs; i++) {
            farol_node *in = x->inputs[i].fn;
            if (!in || --in->refcount > 0) continue;
            if (top == cap) {
                size_t ncap = cap * 2;
                farol_node **s = farol_malloc(ncap * sizeof *s);
                if (!s) {
                    /* cannot grow: release recursively instead of leaking */
                    in->refcount = 1;
                    farol_node_release(in);
                    continue;
                }
                memcpy(s, stack, top * sizeof *s);
                if (stack != stack_small) farol_free(stack);
                stack = s;
                cap = ncap;
            }
            stack[top++] = in;
        }
        farol_free(x->inputs);
        farol_free(x);
    }
    if (stack != stack_small) farol_free(stack);
}

bool farol_is_leaf(const farol_tensor *t) { return !t->node || t->node->op == FAROL_OP_LEAF; }

int farol_set_requires_grad(farol_tensor *t, bool on) {
    if (on && !farol_is_floating(t->dtype)) {
        farol_set_error("farol: requires_grad: only floating tensors can require a gradient, got %s",
                        farol_dtype_name(t->dtype));
        return -1;
    }
    if (!farol_is_leaf(t)) {
        if (on) return 0;
        farol_set_error("farol: requires_grad: cannot turn off the gradient of a tensor computed "
                        "by an op; use x:detach()");
        return -1;
    }
    if (on && !t->node) {
        farol_node *n = node_new(FAROL_OP_LEAF, &leaf_desc, 0);
        if (!n) {
            farol_set_error("farol: out of memory");
            return -1;
        }
        n->leaf = t;
        t->node = n;
    } else if (!on && t->node) {
        t->node->leaf = NULL;
        farol_node_release(t->node);
        t->node = NULL;
    }
    t->requires_grad = on;
    return 0;
}

void farol_zero_grad(farol_tensor *t) {
    farol_release(t->grad);
    t->grad = NULL;
}

/* ---- recording ---- */

uint64_t farol_freeze_leaves(uint64_t upto) {
    uint64_t prev = frozen_upto;
    frozen_upto = upto == FAROL_FREEZE_NOW ? atomic_load(&next_seq) : upto;
    return prev;
}

bool farol_takes_grad(const farol_tensor *t) {
    if (grad_disabled || !t || !t->node) return false;
    return !(t->node->op == FAROL_OP_LEAF && t->node->seq <= frozen_upto);
}

bool farol_needs_record(int n, farol_tensor *const *inputs) {
    for (int i = 0; i < n; i++)
        if (farol_takes_grad(inputs[i])) return true;
    return false;
}

static int save(farol_node *n, farol_tensor *t) {
    if (n->n_saved == FAROL_MAX_SAVED) {
        farol_set_error("farol: %s: too many saved tensors", n->desc->name);
        return -1;
    }
    farol_tensor *v = NULL;
    if (t) {
        v = farol_detach(t);
        if (!v) return -1;
        n->saved_version[n->n_saved] = t->storage->version;
    }
    n->saved[n->n_saved++] = v;
    return 0;
}

farol_tensor *farol_record_op(farol_op op, const farol_op_desc *d, farol_tensor *out, int n,
                              farol_tensor *const *inputs, int n_save, farol_tensor *const *saves,
                              const farol_op_params *params) {
    if (!out || !farol_needs_record(n, inputs)) return out;
    if ((d->arity != FAROL_VARIADIC && n > d->arity) || n_save > FAROL_MAX_SAVED) {
        farol_set_error("farol: %s: recorded with %d inputs and %d saved tensors (at most %d and %d)",
                        d->name, n, n_save, d->arity, FAROL_MAX_SAVED);
        farol_release(out);
        return NULL;
    }
    farol_node *node = node_new(op, d, n);
    if (!node) {
        farol_set_error("farol: %s: out of memory recording the tape", d->name);
        farol_release(out);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        farol_edge *e = &node->inputs[i];
        if (!inputs[i]) continue;
        if (farol_takes_grad(inputs[i])) {
            e->fn = inputs[i]->node;
            farol_node_retain(e->fn);
        }
        e->ndim = inputs[i]->ndim;
        memcpy(e->shape, inputs[i]->shape, sizeof e->shape);
        e->dtype = inputs[i]->dtype;
    }
    if (params) node->p = *params;
    /* saved before out owns the node: a saved tensor may be out itself */
    for (int i = 0; i < n_save; i++)
        if (save(node, saves[i]) < 0) {
            farol_node_release(node);
            farol_release(out);
            return NULL;
        }
    farol_node_release(out->node);
    out->node = node;
    out->requires_grad = true;
    return out;
}

bool farol_shape_empty(int ndim, const int64_t *shape) {
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) return true;
    return false;
}

farol_tensor *farol_saved(farol_node *n, int k) {
    farol_tensor *t = n->saved[k];
    if (t && t->storage->version != n->saved_version[k]) {
        farol_set_error("farol: backward: a tensor saved by %s was modified in place after it "
                        "was used (version %u, expected %u); clone it before modifying it",
                        n->desc->name, (unsigned)t->storage->version,
                        (unsigned)n->saved_version[k]);
        return NULL;
    }
    return t;
}

/* ---- backward ---- */

/* *slot += g, taking over g's reference; both have the same shape and
 * dtype (run_node checks what a backward returns).  Adds in place when *slot
 * is a private contiguous buffer, the common case; otherwise (a gradient
 * the user holds, a view) into a fresh copy.  A plain loop, not farol_add:
 * the tape sits below the ops. */
static int accumulate(farol_tensor **slot, farol_tensor *g) {
    farol_tensor *acc = *slot;
    if (!acc) {
        *slot = g;
        return 0;
    }
    if (acc->dtype != g->dtype || !farol_same_shape(acc, g) || !farol_is_floating(acc->dtype)) {
        char a[96], b[96];
        farol_set_error("farol: backward: cannot add a %s %s gradient to a %s %s one",
                        farol_shape_str(g->ndim, g->shape, a, sizeof a), farol_dtype_name(g->dtype),
                        farol_shape_str(acc->ndim, acc->shape, b, sizeof b),
                        farol_dtype_name(acc->dtype));
        farol_release(g);
        return -1;
    }
    if (acc->refcount != 1 || acc->storage->refcount != 1 || !farol_is_contiguous(acc)) {
        farol_tensor *fresh = farol_empty(acc->ndim, acc->shape, acc->dtype);
        if (!fresh) {
            farol_release(g);
            return -1;
        }
        farol_copy_to_buffer(acc, farol_data(fresh), acc->dtype);
        farol_release(acc);
        *slot = acc = fresh;
    }
    farol_tensor *gc = farol_contig_raw(g);
    farol_release(g);
    if (!gc) return -1;
    /* elementwise, so threads change no bit; a serial add here kept the
     * other threads waiting at every residual connection */
    int64_t n = farol_numel(acc);
    if (acc->dtype == FAROL_F32) {
        float *a = farol_data(acc);
        const float *b = farol_data(gc);
        #pragma omp parallel for simd schedule(static) if (n > FAROL_PAR_MIN * 4)
        for (int64_t i = 0; i < n; i++) a[i] += b[i];
    } else {
        double *a = farol_data(acc);
        const double *b = farol_data(gc);
        #pragma omp parallel for simd schedule(static) if (n > FAROL_PAR_MIN * 4)
        for (int64_t i = 0; i < n; i++) a[i] += b[i];
    }
    farol_release(gc);
    return 0;
}

typedef struct {
    farol_node **nodes;   /* reachable nodes, sorted by seq */
    bool *needed;
    size_t n, cap;
} graph;

static int graph_push(graph *g, farol_node *n) {
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        farol_node **s = farol_malloc(cap * sizeof *s);
        if (!s) return -1;
        if (g->n) memcpy(s, g->nodes, g->n * sizeof *s);
        farol_free(g->nodes);
        g->nodes = s;
        g->cap = cap;
    }
    n->mark = 1;
    g->nodes[g->n++] = n;
    return 0;
}

static int by_seq(const void *a, const void *b) {
    uint64_t x = (*(farol_node *const *)a)->seq, y = (*(farol_node *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* collect every node reachable from the roots (the array doubles as the
 * work list) and sort it topologically */
static int collect(graph *g, int n_roots, farol_node *const *roots) {
    for (int i = 0; i < n_roots; i++)
        if (roots[i]->mark == 0 && graph_push(g, roots[i]) < 0) return -1;
    for (size_t k = 0; k < g->n; k++) {
        farol_node *x = g->nodes[k];
        for (int i = 0; i < x->n_inputs; i++) {
            farol_node *in = x->inputs[i].fn;
            if (in && in->mark == 0 && graph_push(g, in) < 0) return -1;
        }
    }
    qsort(g->nodes, g->n, sizeof *g->nodes, by_seq);
    for (size_t k = 0; k < g->n; k++) g->nodes[k]->mark = (int)k + 1; /* position + 1 */
    return 0;
}

static void graph_free(graph *g) {
    for (size_t k = 0; k < g->n; k++) {
        g->nodes[k]->mark = 0;
        farol_release(g->nodes[k]->grad);
        g->nodes[k]->grad = NULL;
    }
    farol_free(g->nodes);
    farol_free(g->needed);
}

static int run_node(farol_node *x, const bool *needed) {
    farol_tensor *gin_small[8] = {0}, **gin = gin_small;
    int n_need = 0;
    for (int i = 0; i < x->n_inputs; i++) {
        farol_edge *e = &x->inputs[i];
        e->need = e->fn && needed[e->fn->mark - 1];
        n_need += e->need;
    }
    if (n_need == 0) return 0;
    const farol_op_desc *d = x->desc;
    if (!d->backward) {
        farol_set_error("farol: backward: %s has no backward", d->name);
        return -1;
    }
    if (x->n_inputs > 8) {
        gin = farol_calloc((size_t)x->n_inputs, sizeof *gin);
        if (!gin) {
            farol_set_error("farol: backward: out of memory");
            return -1;
        }
    }
    stats.nodes_run++;
    stats.input_grads_computed += n_need;
    /* An output with no element adds nothing to any input's gradient, and
     * an input with no element has an empty one: those gradients are zeros
     * made here, so no backward needs a path for empty shapes. */
    bool empty_out = farol_numel(x->grad) == 0;
    int n_run = 0;
    for (int i = 0; i < x->n_inputs; i++) {
        farol_edge *e = &x->inputs[i];
        if (e->need && (empty_out || farol_shape_empty(e->ndim, e->shape))) e->need = false;
        n_run += e->need;
    }
    int rc = n_run ? d->backward(x, x->grad, gin) : 0;
    for (int i = 0; i < x->n_inputs; i++) {
        farol_edge *e = &x->inputs[i];
        bool need = e->fn && needed[e->fn->mark - 1];
        if (rc == 0 && need && !e->need) {
            farol_release(gin[i]);
            if (!(gin[i] = farol_zeros(e->ndim, e->shape, e->dtype))) rc = -1;
        }
        e->need = need;
    }
    for (int i = 0; i < x->n_inputs; i++) {
        farol_edge *e = &x->inputs[i];
        farol_tensor *g = gin[i];
        gin[i] = NULL;
        if (!g) {
            if (rc == 0 && e->need) {
                farol_set_error("farol: backward: %s returned no gradient for input " FAROL_IX, d->name, (long long)i);
                rc = -1;
            }
            continue;
        }
        if (rc < 0 || !e->need) {
            farol_release(g);
            continue;
        }
        if (g->ndim != e->ndim || memcmp(g->shape, e->shape, e->ndim * sizeof *e->shape) != 0 ||
            g->dtype != e->dtype) {
            char a[96], b[96];
            farol_set_error("farol: backward: %s gave a %s %s gradient for a %s %s input", d->name,
                            farol_shape_str(g->ndim, g->shape, a, sizeof a), farol_dtype_name(g->dtype),
                            farol_shape_str(e->ndim, e->shape, b, sizeof b), farol_dtype_name(e->dtype));
            farol_release(g);
            rc = -1;
            continue;
        }
        if (accumulate(&e->fn->grad, g) < 0) rc = -1;
    }
    if (gin != gin_small) farol_free(gin);
    return rc;
}

/* The shared walk.  Targets: the nodes whose gradient is wanted.  With
 * results != NULL, results[i] receives target i's gradient; otherwise leaf
 * gradients are accumulated into the leaves' .grad. */
static int run_backward(int n_out, farol_tensor *const *outputs, farol_tensor *const *grad_outputs,
                        int n_targets, farol_node *const *targets, farol_tensor **results) {
    graph g = {0};
    int rc = -1;
    bool prev = farol_set_grad_enabled(false);
    farol_node *roots_small[16], **roots = roots_small;
    if (n_out > 16 && !(roots = farol_malloc((size_t)n_out * sizeof *roots))) goto oom;
    for (int i = 0; i < n_out; i++) roots[i] = outputs[i]->node;
    if (collect(&g, n_out, roots) < 0) goto oom;
    if (!(g.needed = farol_calloc(g.n, sizeof *g.needed))) goto oom;

    /* needed: a target, or an input of it is needed (inputs come first) */
    for (int i = 0; i < n_targets; i++)
        if (targets[i]->mark) g.needed[targets[i]->mark - 1] = true;
    /* backward: every leaf, even one already collected, so that what the
     * walk checks (saved tensors modified in place) does not depend on
     * when the Lua GC ran */
    if (!results)
        for (size_t k = 0; k < g.n; k++)
            if (g.nodes[k]->op == FAROL_OP_LEAF) g.needed[k] = true;
    for (size_t k = 0; k < g.n; k++) {
        farol_node *x = g.nodes[k];
        for (int i = 0; i < x->n_inputs && !g.needed[k]; i++)
            if (x->inputs[i].fn && g.needed[x->inputs[i].fn->mark - 1]) g.needed[k] = true;
    }

    /* seed the outputs */
    for (int i = 0; i < n_out; i++) {
        farol_tensor *go = grad_outputs ? grad_outputs[i] : NULL, *seed;
        if (go) {
            /* a copy, never go itself: x:backward(x) would make x its own .grad */
            seed = farol_empty(go->ndim, go->shape, outputs[i]->dtype);
            if (seed) farol_copy_to_buffer(go, farol_data(seed), outputs[i]->dtype);
        } else seed = farol_full(outputs[i]->ndim, outputs[i]->shape, 1.0, outputs[i]->dtype);
        if (!seed || accumulate(&roots[i]->grad, seed) < 0) goto fail;
    }

    for (size_t k = g.n; k-- > 0;) {
        farol_node *x = g.nodes[k];
        if (!g.needed[k] || !x->grad) continue;
        for (int i = 0; i < n_targets && results; i++)
            if (targets[i] == x) {
                farol_release(results[i]);
                results[i] = farol_retain(x->grad);
            }
        if (x->op == FAROL_OP_LEAF) {
            if (!results && x->leaf && accumulate(&x->leaf->grad, farol_retain(x->grad)) < 0) goto fail;
        } else if (run_node(x, g.needed) < 0) {
            goto fail;
        }
        farol_release(x->grad);
        x->grad = NULL;
    }
    rc = 0;
    goto done;
oom:
    farol_set_error("farol: backward: out of memory");
fail:
    rc = -1;
done:
    graph_free(&g);
    if (roots != roots_small) farol_free(roots);
    farol_set_grad_enabled(prev);
    return rc;
}

static int check_outputs(const char *fn, int n_out, farol_tensor *const *outputs,
                         farol_tensor *const *grad_outputs) {
    for (int i = 0; i < n_out; i++) {
        farol_tensor *o = outputs[i], *go = grad_outputs ? grad_outputs[i] : NULL;
        char a[96], b[96];
        if (!o->node) {
            farol_set_error("farol: %s: output " FAROL_IX " does not require a gradient (no input of the "
                            "ops that made it requires one)", fn, (long long)i);
            return -1;
        }
        if (!go && farol_numel(o) != 1) {
            farol_set_error("farol: %s: output " FAROL_IX " has shape %s: a gradient for it is needed "
                            "unless it has one element", fn, (long long)i,
                            farol_shape_str(o->ndim, o->shape, a, sizeof a));
            return -1;
        }
        if (go && (!farol_same_shape(o, go) || !farol_is_floating(go->dtype))) {
            farol_set_error("farol: %s: gradient " FAROL_IX " has shape %s (%s), output has %s", fn, (long long)i,
                            farol_shape_str(go->ndim, go->shape, a, sizeof a),
                            farol_dtype_name(go->dtype), farol_shape_str(o->ndim, o->shape, b, sizeof b));
            return -1;
        }
    }
    return 0;
}

int farol_grad(int n_out, farol_tensor *const *outputs, farol_tensor *const *grad_outputs,
               int n_in, farol_tensor *const *inputs, farol_tensor **grads) {
    for (int i = 0; i < n_in; i++) grads[i] = NULL;
    if (check_outputs("grad", n_out, outputs, grad_outputs) < 0) return -1;
    farol_node *targets_small[16], **targets = targets_small;
    if (n_in > 16 && !(targets = farol_malloc((size_t)n_in * sizeof *targets))) {
        farol_set_error("farol: grad: out of memory");
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n_in && rc == 0; i++) {
        targets[i] = inputs[i]->node;
        if (!targets[i]) {
            farol_set_error("farol: grad: input " FAROL_IX " does not require a gradient", (long long)i);
            rc = -1;
        }
    }
    if (rc == 0) rc = run_backward(n_out, outputs, grad_outputs, n_in, targets, grads);
    /* inputs the outputs do not depend on get zeros */
    for (int i = 0; i < n_in && rc == 0; i++)
        if (!grads[i] && !(grads[i] = farol_zeros_like(inputs[i]))) rc = -1;
    if (rc < 0)
        for (int i = 0; i < n_in; i++) {
            farol_release(grads[i]);
            grads[i] = NULL;
        }
    if (targets != targets_small) farol_free(targets);
    return rc;
}

int farol_backward(farol_tensor *output, farol_tensor *grad_output) {
    farol_tensor *go[1] = {grad_output};
    if (check_outputs("backward", 1, &output, go) < 0) return -1;
    return run_backward(1, &output, go, 0, NULL, NULL);
}
