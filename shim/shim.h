/* Shared by the preload library's two files: the entry points (shim.c) and the interception of
 * dlopen()/dlsym() (intercept.c). Nothing here is exported. */
#ifndef PQRI_SHIM_H
#define PQRI_SHIM_H

#include <stdbool.h>

/* The libpq functions the preload library wraps, in every way a program can reach them. */
enum wrapped {
    W_CONNECTDB,
    W_CONNECTDB_PARAMS,
    W_SETDB_LOGIN,
    W_CONNECT_START,
    W_CONNECT_START_PARAMS,
    W_PING,
    W_PING_PARAMS,
    W_CONNINFO,
    W_CONNECT_POLL,
    W_FINISH,
    W_SOCKET,
    W_COUNT
};
extern const char *const shim_wrapped_names[W_COUNT];

/* The index of a wrapped name, or -1. */
int shim_wrapped_index(const char *name);
/* Our global wrapper for w (what a program that binds by name through the global scope gets). */
void *shim_global_wrapper(enum wrapped w);
/* The wrapper bound to the libpq that defines real_fn (a dlsym() result), or NULL. */
void *shim_instance_wrapper(void *real_fn, enum wrapped w);
/* Routing is configured in this (unprivileged) process. */
bool shim_configured(void);
/* Rewrite the wrapped names' relocations of the object a dlopen(RTLD_DEEPBIND) returned (h) so
 * that they reach our wrappers. */
void shim_patch_object(void *h);
/* dlsym and dlopen as libc defines them (intercept.c). */
extern void *(*shim_real_dlsym)(void *, const char *);
extern void *(*shim_real_dlopen)(const char *, int);
void shim_bind_libc(void);
void shim_error(const char *fmt, const char *a, const char *b);

#endif
