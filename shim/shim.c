/*
 * libpqroute-preload.so: libpq's connect entry points, routed through libpqroute.
 *
 * Loaded is not enabled: until a connect call arrives nothing runs, and a process without
 * PQROUTE_PATRONI (or a configuration file) calls straight through to libpq. Real symbols are bound
 * once, lazily, with dlsym(RTLD_NEXT); a result that is this library's own function is refused.
 *
 * This library links nothing but libc: the routing engine is libpqroute.so, loaded with dlopen()
 * from the directory this library was loaded from, by the first connect call of a process where
 * routing is configured. Every other process pays for a few kilobytes of code and nothing else.
 *
 * libpq calls its own PQconnectStart/PQconnectStartParams through the PLT (PQconnectdb enters
 * PQconnectStart), so every call into libpq is made with a thread-local guard up: the inner call
 * then goes straight through and a connection is routed exactly once.
 */
#include <dlfcn.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/auxv.h>

#include "../libpqroute/pqr_private.h"

#define EXPORT __attribute__((visibility("default")))

typedef PGconn *connectdb_fn(const char *);
typedef PGconn *connectdb_params_fn(const char *const *, const char *const *, int);
typedef PGconn *setdb_login_fn(const char *, const char *, const char *, const char *,
                               const char *, const char *, const char *);

static struct {
    union { connectdb_fn *f; void *obj; } connectdb, connect_start;
    union { connectdb_params_fn *f; void *obj; } connectdb_params, connect_start_params;
    union { setdb_login_fn *f; void *obj; } setdb_login;
} real;

static pthread_once_t real_once = PTHREAD_ONCE_INIT;
static pthread_once_t router_once = PTHREAD_ONCE_INIT;
static const struct pqr_shim_api *engine; /* libpqroute.so's routing functions */
static struct pqr_router *router;         /* NULL: disabled */
static __thread int in_libpq;

#define STR2(x) #x
#define STR(x) STR2(x)

/* The engine is not loaded yet when these are needed, so the shim has its own one-liner. */
static void shim_error(const char *fmt, const char *a, const char *b)
{
    char line[768];
    int n = snprintf(line, sizeof line, "libpqroute: error: ");
    n += snprintf(line + n, sizeof line - (size_t)n, fmt, a, b);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}

EXPORT PGconn *PQconnectdb(const char *conninfo);
EXPORT PGconn *PQconnectStart(const char *conninfo);
EXPORT PGconn *PQconnectdbParams(const char *const *keywords, const char *const *values,
                                 int expand_dbname);
EXPORT PGconn *PQconnectStartParams(const char *const *keywords, const char *const *values,
                                    int expand_dbname);
EXPORT PGconn *PQsetdbLogin(const char *pghost, const char *pgport, const char *pgoptions,
                            const char *pgtty, const char *dbName, const char *login,
                            const char *pwd);

/* libpq's own definition: the next one after us in the global scope, or — for a libpq that was
 * dlopen()ed RTLD_LOCAL, as ctypes does, and so is not in that scope — from libpq's own handle
 * (RTLD_NOLOAD: it is loaded already, since it is what called us). */
static void *libpq_sym(const char *name, void *self)
{
    void *p = dlsym(RTLD_NEXT, name), *h;

    if ((!p || p == self) && (h = dlopen("libpq.so.5", RTLD_NOLOAD | RTLD_LAZY))) {
        p = dlsym(h, name);
        dlclose(h);
    }
    return p == self ? NULL : p;
}

static void *bind_one(const char *name, void *self)
{
    void *p = libpq_sym(name, self);
    if (!p) {
        shim_error("cannot find libpq's %s%s; routing disabled", name, "");
        return NULL;
    }
    return p;
}

static void bind_real(void)
{
    real.connectdb.obj = bind_one("PQconnectdb", (void *)PQconnectdb);
    real.connect_start.obj = bind_one("PQconnectStart", (void *)PQconnectStart);
    real.connectdb_params.obj = bind_one("PQconnectdbParams", (void *)PQconnectdbParams);
    real.connect_start_params.obj = bind_one("PQconnectStartParams", (void *)PQconnectStartParams);
    real.setdb_login.obj = bind_one("PQsetdbLogin", (void *)PQsetdbLogin);
}

/* The router's view of libpq: the real functions, called with the guard up. */
static PGconn *guarded_connectdb_params(const char *const *k, const char *const *v, int e)
{
    PGconn *c;
    in_libpq++;
    c = real.connectdb_params.f(k, v, e);
    in_libpq--;
    return c;
}

static PGconn *guarded_connect_start_params(const char *const *k, const char *const *v, int e)
{
    PGconn *c;
    in_libpq++;
    c = real.connect_start_params.f(k, v, e);
    in_libpq--;
    return c;
}

static bool configured(void)
{
    /* A setuid/setgid/capability program: its environment is its caller's, so nothing is read
     * from it and nothing is loaded; every call goes straight to libpq. */
    if (getauxval(AT_SECURE))
        return false;
    return getenv(PQR_ENV_PATRONI) || getenv(PQR_ENV_CONFIG) || access(PQR_DEFAULT_CONFIG, F_OK) == 0;
}

/* This library's own file, as an absolute path. The loader records the name it was given, and
 * LD_PRELOAD=build/libpqroute-preload.so is relative to a directory the application may have left
 * by now (chdir): the kernel's /proc/self/maps names the file that is actually mapped. */
static bool own_path(char *out, size_t len)
{
    Dl_info info;
    char line[4352];
    FILE *maps;
    bool found = false;
    uintptr_t me = (uintptr_t)(void *)PQconnectdb;

    if (dladdr((void *)PQconnectdb, &info) && info.dli_fname && info.dli_fname[0] == '/' &&
        strlen(info.dli_fname) < len) {
        strcpy(out, info.dli_fname);
        return true;
    }
    if (!(maps = fopen("/proc/self/maps", "re")))
        return false;
    while (!found && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        int off = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) < 2 || !off || me < lo || me >= hi)
            continue;
        char *path = line + off, *nl = strchr(path, '\n');
        if (nl)
            *nl = 0;
        if (path[0] == '/' && strlen(path) < len && !strstr(path, " (deleted)")) {
            strcpy(out, path);
            found = true;
        }
    }
    fclose(maps);
    return found;
}

/* libpqroute.so from this library's own directory (the build tree, or $PREFIX/lib), else the
 * loader's search path; never a path relative to the current directory. */
static void load_engine(void)
{
    static const char soname[] = "libpqroute.so." STR(PQR_SONAME);
    const struct pqr_shim_api *(*get)(int);
    char path[4096];
    void *h = NULL;

    if (own_path(path, sizeof path)) {
        char full[4096 + sizeof soname];
        snprintf(full, sizeof full, "%s/%s", dirname(path), soname);
        h = dlopen(full, RTLD_NOW | RTLD_LOCAL);
    }
    if (!h)
        h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        shim_error("cannot load %s: %s; routing disabled", soname, dlerror());
        return;
    }
    *(void **)&get = dlsym(h, "pqr__shim_api");
    if (!get || !(engine = get(PQR_SHIM_API_VERSION)))
        shim_error("%s is not the version this shim needs (%s); routing disabled", soname, "API " STR(PQR_SHIM_API_VERSION));
}

static void router_init(void)
{
    static const struct pqr_libpq pq = {guarded_connectdb_params, guarded_connect_start_params};
    char err[512];

    if (!real.connectdb_params.f || !real.connect_start_params.f || !configured())
        return;
    load_engine();
    if (!engine)
        return;
    router = engine->router_from_env(&pq, err, sizeof err);
    if (!router && err[0])
        shim_error("%s%s; routing disabled, connections go to libpq unchanged", err, "");
}

/* The router, or NULL when this call must go straight to libpq. */
static struct pqr_router *active(void)
{
    pthread_once(&real_once, bind_real);
    if (in_libpq)
        return NULL;
    pthread_once(&router_once, router_init);
    return router;
}

/* PQconninfoFree, from libpq itself: the shim links no library. */
static void free_opts(PQconninfoOption *o)
{
    static void (*fn)(PQconninfoOption *);
    if (!fn)
        *(void **)&fn = libpq_sym("PQconninfoFree", NULL);
    for (PQconninfoOption *x = o; x->keyword; x++)
        if (x->val && strcmp(x->keyword, "password") == 0)
            explicit_bzero(x->val, strlen(x->val));
    if (fn)
        fn(o);
}

/* A conninfo string: parsed by libpq, routed as arrays; on pass-through the original call. */
static PGconn *route_string(const char *conninfo, enum pqr_mode mode, connectdb_fn *orig)
{
    struct pqr_router *r = active();
    PQconninfoOption *opts;
    const char **kw, **val;
    PGconn *conn = NULL;
    bool passed = true;

    if (!orig)
        return NULL;
    if (r && engine->conninfo_arrays(conninfo, &opts, &kw, &val) == 0) {
        conn = engine->connect(r, kw, val, 0, mode, PQR_ROLE_AUTO, &passed);
        free(kw), free(val);
        free_opts(opts);
    }
    if (passed) {
        in_libpq++;
        conn = orig(conninfo);
        in_libpq--;
    }
    return conn;
}

static PGconn *route_params(const char *const *kw, const char *const *val, int expand,
                            enum pqr_mode mode, connectdb_params_fn *orig)
{
    struct pqr_router *r = active();
    PGconn *conn = NULL;
    bool passed = true;

    if (!orig)
        return NULL;
    if (r && kw && val)
        conn = engine->connect(r, kw, val, expand, mode, PQR_ROLE_AUTO, &passed);
    if (passed) {
        in_libpq++;
        conn = orig(kw, val, expand);
        in_libpq--;
    }
    return conn;
}

PGconn *PQconnectdb(const char *conninfo)
{
    pthread_once(&real_once, bind_real);
    return route_string(conninfo, PQR_BLOCKING, real.connectdb.f);
}

PGconn *PQconnectStart(const char *conninfo)
{
    pthread_once(&real_once, bind_real);
    return route_string(conninfo, PQR_NONBLOCKING, real.connect_start.f);
}

PGconn *PQconnectdbParams(const char *const *keywords, const char *const *values,
                          int expand_dbname)
{
    pthread_once(&real_once, bind_real);
    return route_params(keywords, values, expand_dbname, PQR_BLOCKING, real.connectdb_params.f);
}

PGconn *PQconnectStartParams(const char *const *keywords, const char *const *values,
                             int expand_dbname)
{
    pthread_once(&real_once, bind_real);
    return route_params(keywords, values, expand_dbname, PQR_NONBLOCKING,
                        real.connect_start_params.f);
}

static bool given(const char *s)
{
    return s && s[0];
}

/* PQsetdbLogin's rules as keyword arrays: a dbName that is a conninfo or URI is expanded, and the
 * other non-empty arguments override it (later entries win). pgtty is ignored by libpq >= 14. */
PGconn *PQsetdbLogin(const char *pghost, const char *pgport, const char *pgoptions,
                     const char *pgtty, const char *dbName, const char *login, const char *pwd)
{
    struct pqr_router *r;
    const char *kw[7], *val[7];
    size_t n = 0;
    PGconn *conn = NULL;
    bool passed = true;

    pthread_once(&real_once, bind_real);
    if (!real.setdb_login.f)
        return NULL;
    if ((r = active())) {
#define ADD(k, v) if (given(v)) kw[n] = k, val[n++] = v
        ADD("dbname", dbName);
        ADD("host", pghost);
        ADD("port", pgport);
        ADD("options", pgoptions);
        ADD("user", login);
        ADD("password", pwd);
#undef ADD
        kw[n] = val[n] = NULL;
        conn = engine->connect(r, kw, val, 1, PQR_BLOCKING, PQR_ROLE_AUTO, &passed);
    }
    if (passed) {
        in_libpq++;
        conn = real.setdb_login.f(pghost, pgport, pgoptions, pgtty, dbName, login, pwd);
        in_libpq--;
    }
    return conn;
}
