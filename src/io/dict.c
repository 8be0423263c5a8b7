/* farol_tensor_dict: the named tensors and string metadata of a file.
 * A dict filled by a loader owns its strings (farol_malloc'ed) and one
 * reference to each tensor; farol_dict_free returns all of it. */
#include "internal.h"

void farol_dict_free(farol_tensor_dict *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) {
        if (d->names) farol_free(d->names[i]);
        if (d->tensors) farol_release(d->tensors[i]);
    }
    for (int i = 0; i < d->n_meta; i++) {
        if (d->meta_keys) farol_free(d->meta_keys[i]);
        if (d->meta_values) farol_free(d->meta_values[i]);
    }
    farol_free(d->names);
    farol_free(d->tensors);
    farol_free(d->meta_keys);
    farol_free(d->meta_values);
    farol_free(d->stored);
    memset(d, 0, sizeof *d);
}

/* Borrowed (the dict keeps its reference).  A linear search: files hold
 * tens to hundreds of tensors, each looked up once. */
farol_tensor *farol_dict_get(const farol_tensor_dict *d, const char *name) {
    if (!d || !name) return NULL;
    for (int i = 0; i < d->n; i++)
        if (d->names[i] && strcmp(d->names[i], name) == 0) return d->tensors[i];
    return NULL;
}

const char *farol_dict_meta(const farol_tensor_dict *d, const char *key) {
    if (!d || !key) return NULL;
    for (int i = 0; i < d->n_meta; i++)
        if (d->meta_keys[i] && strcmp(d->meta_keys[i], key) == 0) return d->meta_values[i];
    return NULL;
}
