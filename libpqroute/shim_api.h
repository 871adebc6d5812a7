/*
 * What libpqroute-preload.so and libpqroute.so share: the one private entry point the library
 * exports for the shim, and the table of libpq functions the shim hands the engine. The only engine
 * header the shim includes.
 */
#ifndef PQRI_SHIM_API_H
#define PQRI_SHIM_API_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "libpqroute.h"

#define PQRI_DEFAULT_CONFIG "/etc/libpqroute.conf"
/* The variables the shim looks at before loading the engine (the rest: settings.c). */
#define PQRI_ENV_PATRONI "PQROUTE_PATRONI"
#define PQRI_ENV_ETCD "PQROUTE_ETCD"
#define PQRI_ENV_CONSUL "PQROUTE_CONSUL"
#define PQRI_ENV_CONFIG "PQROUTE_CONFIG"

enum pqri_mode { PQRI_BLOCKING, PQRI_NONBLOCKING };

/* One libpq, as the routing code calls it. A process may hold several (a wheel's bundled copy
 * beside the system's, another version under another soname): the shim hands the engine the one
 * the application's call was meant for, and every call on the connections it makes goes to that
 * same one. The first three take their own table, so that the shim knows which instance. */
struct pqri_libpq {
    PGconn *(*connectdb_params)(const struct pqri_libpq *, const char *const *, const char *const *,
                                int);
    PGconn *(*connect_start_params)(const struct pqri_libpq *, const char *const *,
                                    const char *const *, int);
    PGPing (*ping_params)(const struct pqri_libpq *, const char *const *, const char *const *, int);
    ConnStatusType (*status)(const PGconn *);
    char *(*error_message)(const PGconn *);
    void (*finish)(PGconn *);
    PQconninfoOption *(*conninfo)(PGconn *);
    void (*conninfo_free)(PQconninfoOption *);
    char *(*pass)(const PGconn *);
    char *(*hostaddr)(const PGconn *);
    char *(*port)(const PGconn *);
    PostgresPollingStatusType (*connect_poll)(PGconn *);
    int (*socket)(const PGconn *);
    int (*lib_version)(void); /* PQlibVersion: what target_session_attrs values it knows */
    /* PQresetStart: another round of a non-blocking connect on the caller's PGconn (NULL: none) */
    int (*reset_start)(const struct pqri_libpq *, PGconn *);
    /* PQconnectionUsedPassword / PQconnectionNeedsPassword: a connect that failed at
     * authentication is not tried again (NULL: unknown, taken as yes) */
    int (*used_password)(const PGconn *);
    int (*needs_password)(const PGconn *);
};

/* A conninfo string parsed by libpq into NULL-terminated keyword/value arrays. */
struct pqri_conninfo {
    PQconninfoOption *opts;
    const char **kw, **val; /* the options as keyword/value arrays */
    /* The string as a call libpq reads by a string's rules: handed over whole as an expanded
     * dbname. In a string an empty value (port='') means libpq's built-in default and the PG*
     * variable is not consulted; in arrays an empty value is skipped and the variable applies. */
    const char *call_kw[2], *call_val[2];
    int call_expand;
};

#define PQRI_SHIM_API_VERSION 8
struct pqri_shim_api {
    int version;
    /* NULL with an empty message: nothing configured. */
    pqr_router *(*router_from_env)(char *err, size_t errlen);
    /* *passed: not ours to route (the caller then makes the application's own call). */
    PGconn *(*connect)(pqr_router *r, const struct pqri_libpq *pq, const char *const *kw,
                       const char *const *val, int expand, enum pqri_mode mode, bool *passed);
    PGPing (*ping)(pqr_router *r, const struct pqri_libpq *pq, const char *const *kw,
                   const char *const *val, int expand, bool *passed);
    /* PQconninfoParse() into arrays / freed (password cleared), with the library's own libpq. */
    int (*conninfo_parse)(struct pqri_conninfo *ci, const char *conninfo);
    void (*conninfo_release)(struct pqri_conninfo *ci);
    /* PQconninfo()'s result for conn, made the application's own when we routed conn. */
    void (*conninfo_report)(const PGconn *conn, PQconninfoOption *opts);
    /* The caller's PQconnectPoll() of a routed non-blocking connect in progress (false: not
     * one, call libpq), and its PQfinish() (before libpq's). */
    bool (*connect_poll)(PGconn *conn, PostgresPollingStatusType *out);
    /* PQsocket(): the number the caller was given for a routed non-blocking connect (false: none,
     * libpq's answer libpq_fd stands). */
    bool (*socket)(const PGconn *conn, int libpq_fd, int *out);
    void (*finish)(PGconn *conn);
};

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const struct pqri_shim_api *
pqri_shim_api(int version);

#endif
