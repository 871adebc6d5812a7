/*
 * libpqroute-preload.so: libpq's connect and ping entry points, routed through libpqroute.
 *
 * Loaded is not enabled: until a connect call arrives nothing runs, and a process without
 * PQROUTE_PATRONI, PQROUTE_ETCD or PQROUTE_CONSUL (or a configuration file) calls straight through
 * to libpq. A privileged process (setuid, setgid, capabilities) reads nothing from its environment
 * and is never routed.
 *
 * Which libpq? A process may hold several: the system's, a wheel's bundled copy under a private
 * soname loaded RTLD_LOCAL, one that a plugin host loads and unloads. Each call goes to the libpq
 * the caller would have used without us: the definition its own lookup scope finds (the object
 * that called us, found from the return address), else the next one in the global scope. Every
 * libpq we call into is pinned (a dlopen reference of our own), so a host that unloads and loads it
 * again never leaves us pointing at unmapped code. A pointer handed out by dlsym() (intercept.c) is
 * a wrapper bound to the libpq that dlsym() found.
 *
 * The routing engine is libpqroute.so, loaded with dlopen() from this library's own directory by
 * the first connect call of a process where routing is configured. The engine calls libpq only
 * through the instance's table, so a connection is always handled by the libpq that made it.
 *
 * libpq calls its own PQconnectStart/PQconnectStartParams through the PLT (PQconnectdb enters
 * PQconnectStart), so every call into libpq is made with a thread-local guard up: the inner call
 * then goes straight through and a connection is routed exactly once.
 */
#include <dlfcn.h>
#include <libgen.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "shim_api.h"
#include "shim.h"

#define EXPORT __attribute__((visibility("default")))
#define MAX_INSTANCES 8
#define MAX_CALLERS 32

typedef PGconn *connectdb_fn(const char *);
typedef PGconn *params_fn(const char *const *, const char *const *, int);
typedef PGconn *setdb_login_fn(const char *, const char *, const char *, const char *, const char *,
                               const char *, const char *);
typedef PGPing ping_fn(const char *);
typedef PGPing ping_params_fn(const char *const *, const char *const *, int);
typedef PQconninfoOption *conninfo_fn(PGconn *);
typedef PostgresPollingStatusType poll_fn(PGconn *);
typedef void finish_fn(PGconn *);
typedef int socket_fn(const PGconn *);

const char *const shim_wrapped_names[W_COUNT] = {
    "PQconnectdb", "PQconnectdbParams", "PQsetdbLogin", "PQconnectStart", "PQconnectStartParams",
    "PQping",      "PQpingParams",      "PQconninfo",   "PQconnectPoll",  "PQfinish",
    "PQsocket",
};

/* One libpq in this process. */
struct instance {
    struct pqri_libpq pq; /* first: the engine hands it back to us */
    void *pin;            /* our own reference: never unloaded under us */
    void *base;           /* load address, its identity */
    void *fn[W_COUNT];    /* its own definitions */
    int (*reset_start)(PGconn *);
    bool routable; /* it has everything the engine calls */
};

static struct instance instances[MAX_INSTANCES];
static int ninstances; /* published with release after the entry is complete */
static struct {
    void *lm, *base;
    struct instance *in;
} callers[MAX_CALLERS];
static unsigned ncallers;
/* Guards instance creation and the callers cache; never held across anything but the loader's
 * own look-ups. Re-initialised in a fork child. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_once_t router_once = PTHREAD_ONCE_INIT, config_once = PTHREAD_ONCE_INIT;
static const struct pqri_shim_api *engine; /* libpqroute.so's routing functions */
static pqr_router *router;                 /* NULL: disabled */
static bool is_configured;
/* initial-exec: a preloaded library has static TLS, and these are read on hot paths */
static __thread int in_libpq __attribute__((tls_model("initial-exec")));

#define STR2(x) #x
#define STR(x) STR2(x)

/* The engine is not loaded yet when these are needed, so the shim has its own one-liner. */
void shim_error(const char *fmt, const char *a, const char *b)
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

int shim_wrapped_index(const char *name)
{
    if (name[0] != 'P' || name[1] != 'Q')
        return -1;
    for (int i = 0; i < W_COUNT; i++)
        if (strcmp(name, shim_wrapped_names[i]) == 0)
            return i;
    return -1;
}

static void read_config(void)
{
    /* A setuid/setgid/capability program: its environment is its caller's, so nothing is read
     * from it and nothing is loaded; every call goes straight to libpq. */
    if (getauxval(AT_SECURE))
        return;
    is_configured = getenv(PQRI_ENV_PATRONI) || getenv(PQRI_ENV_ETCD) || getenv(PQRI_ENV_CONSUL) ||
        getenv(PQRI_ENV_CONFIG) || access(PQRI_DEFAULT_CONFIG, F_OK) == 0;
}

bool shim_configured(void)
{
    pthread_once(&config_once, read_config);
    return is_configured;
}

/* ---- libpq instances ---- */

static void table_prepare(void)
{
    pthread_mutex_lock(&table_lock);
}
static void table_parent(void)
{
    pthread_mutex_unlock(&table_lock);
}
static void table_child(void)
{
    pthread_mutex_init(&table_lock, NULL);
}
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void)
{
    pthread_atfork(table_prepare, table_parent, table_child);
}

static void *object_base(void *addr)
{
    Dl_info info;
    return dladdr(addr, &info) ? info.dli_fbase : NULL;
}

static bool ours(void *fn)
{
    return fn && object_base(fn) == object_base((void *)shim_wrapped_names);
}

static PGconn *guarded_connectdb_params(const struct pqri_libpq *pq, const char *const *k,
                                        const char *const *v, int e)
{
    const struct instance *in = (const struct instance *)pq;
    PGconn *c;
    in_libpq++;
    c = ((params_fn *)in->fn[W_CONNECTDB_PARAMS])(k, v, e);
    in_libpq--;
    return c;
}

static PGconn *guarded_connect_start_params(const struct pqri_libpq *pq, const char *const *k,
                                            const char *const *v, int e)
{
    const struct instance *in = (const struct instance *)pq;
    PGconn *c;
    in_libpq++;
    c = ((params_fn *)in->fn[W_CONNECT_START_PARAMS])(k, v, e);
    in_libpq--;
    return c;
}

static int guarded_reset_start(const struct pqri_libpq *pq, PGconn *conn)
{
    int (*reset_start)(PGconn *) = ((const struct instance *)pq)->reset_start;
    int r;
    in_libpq++; /* it polls through the PLT: our PQconnectPoll passes that on */
    r = reset_start(conn);
    in_libpq--;
    return r;
}

static PGPing guarded_ping_params(const struct pqri_libpq *pq, const char *const *k,
                                  const char *const *v, int e)
{
    const struct instance *in = (const struct instance *)pq;
    PGPing r;
    in_libpq++;
    r = ((ping_params_fn *)in->fn[W_PING_PARAMS])(k, v, e);
    in_libpq--;
    return r;
}

/* The instance at base, or NULL. Called with table_lock held. */
static struct instance *known_locked(const void *base)
{
    for (int i = 0; i < ninstances; i++)
        if (instances[i].base == base)
            return &instances[i];
    return NULL;
}

/*
 * The instance defining real_fn, made (and pinned) if new. The loader's functions (dladdr, dlopen,
 * dlsym, dlclose) are called with no lock of ours held: they take the loader's lock, which a
 * constructor running in another thread holds while it may be calling dlsym()/dlopen() — ours —
 * which would then wait for table_lock: a deadlock. So the entry is prepared outside the lock and
 * only added under it.
 */
static struct instance *instance_of(void *real_fn)
{
    Dl_info info;
    struct instance fresh, *in;
    void *pin;

    /* Only the entry of one of the wrapped functions where a libpq defines it (not a PLT stub,
     * not our own wrapper). */
    if (!real_fn || ours(real_fn) || !dladdr(real_fn, &info) || !info.dli_fname ||
        info.dli_saddr != real_fn || !info.dli_sname || shim_wrapped_index(info.dli_sname) < 0)
        return NULL;
    pthread_mutex_lock(&table_lock);
    in = known_locked(info.dli_fbase);
    pthread_mutex_unlock(&table_lock);
    if (in)
        return in;
    /* A reference of our own; its handle searches this libpq first. */
    if (!(pin = shim_real_dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD)))
        return NULL;
    memset(&fresh, 0, sizeof fresh);
    fresh.pin = pin;
    fresh.base = info.dli_fbase;
    for (int w = 0; w < W_COUNT; w++) {
        void *f = shim_real_dlsym(pin, shim_wrapped_names[w]);
        fresh.fn[w] = f && object_base(f) == fresh.base ? f : NULL;
    }
#define GET(field, name) *(void **)&fresh.pq.field = shim_real_dlsym(pin, name)
    GET(status, "PQstatus");
    GET(error_message, "PQerrorMessage");
    GET(finish, "PQfinish");
    GET(conninfo, "PQconninfo");
    GET(conninfo_free, "PQconninfoFree");
    GET(pass, "PQpass");
    GET(hostaddr, "PQhostaddr");
    GET(port, "PQport");
    GET(connect_poll, "PQconnectPoll");
    GET(socket, "PQsocket");
    GET(lib_version, "PQlibVersion");
    GET(used_password, "PQconnectionUsedPassword");
    GET(needs_password, "PQconnectionNeedsPassword");
#undef GET
    *(void **)&fresh.reset_start = shim_real_dlsym(pin, "PQresetStart");
    if (fresh.reset_start)
        fresh.pq.reset_start = guarded_reset_start;
    fresh.pq.connectdb_params = guarded_connectdb_params;
    fresh.pq.connect_start_params = guarded_connect_start_params;
    fresh.pq.ping_params = guarded_ping_params;
    fresh.routable = fresh.fn[W_CONNECTDB_PARAMS] && fresh.fn[W_CONNECT_START_PARAMS] &&
        fresh.fn[W_PING_PARAMS] && fresh.pq.status && fresh.pq.error_message && fresh.pq.finish &&
        fresh.pq.conninfo && fresh.pq.conninfo_free && fresh.pq.pass && fresh.pq.hostaddr &&
        fresh.pq.port && fresh.pq.connect_poll && fresh.pq.socket;
    pthread_mutex_lock(&table_lock);
    if (!(in = known_locked(fresh.base)) && ninstances < MAX_INSTANCES) {
        in = &instances[ninstances];
        *in = fresh;
        __atomic_store_n(&ninstances, ninstances + 1, __ATOMIC_RELEASE);
        pin = NULL; /* kept */
    }
    pthread_mutex_unlock(&table_lock);
    if (pin)
        dlclose(pin); /* another thread made it first, or the table is full */
    return in;
}

/* The libpq the code at ret (our caller) would have reached for w without us, found the way the
 * dynamic linker binds a call: the global scope first (after us: RTLD_NEXT), then the caller's
 * own dependencies (a wheel's bundled libpq, loaded RTLD_LOCAL). Objects that bind in their own
 * scope first (RTLD_DEEPBIND) are given wrappers bound to their exact target when they are loaded
 * (intercept.c), so they do not come here. As above, no lock of ours across the loader. */
static struct instance *instance_for_caller(void *ret, enum wrapped w)
{
    struct link_map *lm = NULL;
    struct instance *in = NULL;
    Dl_info info;
    void *fn, *h;

    shim_bind_libc();
    pthread_once(&atfork_once, register_atfork);
    if (!dladdr1(ret, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        lm = NULL;
    pthread_mutex_lock(&table_lock);
    for (unsigned i = 0; lm && i < ncallers && i < MAX_CALLERS; i++)
        if (callers[i].lm == lm && callers[i].base == info.dli_fbase) {
            in = callers[i].in;
            break;
        }
    pthread_mutex_unlock(&table_lock);
    if (in)
        return in;
    fn = shim_real_dlsym(RTLD_NEXT, shim_wrapped_names[w]);
    if (!fn && lm && lm->l_name && lm->l_name[0] &&
        (h = shim_real_dlopen(lm->l_name, RTLD_LAZY | RTLD_NOLOAD))) {
        fn = shim_real_dlsym(h, shim_wrapped_names[w]);
        dlclose(h);
    }
    if ((in = instance_of(fn)) && lm) {
        pthread_mutex_lock(&table_lock);
        unsigned k = ncallers++ % MAX_CALLERS;
        callers[k].lm = lm;
        callers[k].base = info.dli_fbase;
        callers[k].in = in;
        pthread_mutex_unlock(&table_lock);
    }
    return in;
}

/* ---- the engine ---- */

/* This library's own file, as an absolute path. The loader records the name it was given, and
 * LD_PRELOAD=build/libpqroute-preload.so is relative to a directory the application may have left
 * by now (chdir): the kernel's /proc/self/maps names the file that is actually mapped. */
static bool own_path(char *out, size_t len)
{
    Dl_info info;
    char line[4352];
    FILE *maps;
    bool found = false;
    uintptr_t me = (uintptr_t)(void *)shim_wrapped_names;

    if (dladdr((void *)shim_wrapped_names, &info) && info.dli_fname && info.dli_fname[0] == '/' &&
        strlen(info.dli_fname) < len) {
        strcpy(out, info.dli_fname);
        return true;
    }
    if (!(maps = fopen("/proc/self/maps", "re")))
        return false;
    while (!found && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        int off = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) < 2 || !off || me < lo ||
            me >= hi)
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
    const struct pqri_shim_api *(*get)(int);
    char path[4096];
    void *h = NULL;

    if (own_path(path, sizeof path)) {
        char full[4096 + sizeof soname];
        snprintf(full, sizeof full, "%s/%s", dirname(path), soname);
        h = shim_real_dlopen(full, RTLD_NOW | RTLD_LOCAL);
    }
    if (!h)
        h = shim_real_dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        shim_error("cannot load %s: %s; routing disabled", soname, dlerror());
        return;
    }
    *(void **)&get = shim_real_dlsym(h, "pqri_shim_api");
    if (!get || !(engine = get(PQRI_SHIM_API_VERSION)))
        shim_error("%s is not the version this shim needs (%s); routing disabled", soname,
                   "API " STR(PQRI_SHIM_API_VERSION));
}

static void router_init(void)
{
    char err[512];

    if (!shim_configured())
        return;
    load_engine();
    if (!engine)
        return;
    /* published for do_conninfo(), which reads it without the once */
    __atomic_store_n(&router, engine->router_from_env(err, sizeof err), __ATOMIC_RELEASE);
    if (!router && err[0])
        shim_error("%s%s; routing disabled, connections go to libpq unchanged", err, "");
}

/* The router, or NULL when this call must go straight to libpq. */
static pqr_router *active(const struct instance *in)
{
    if (in_libpq || !in->routable || !shim_configured())
        return NULL;
    pthread_once(&router_once, router_init);
    return router;
}

/* No libpq to call: fail the way libpq fails when it cannot allocate a connection. */
static void missing(enum wrapped w)
{
    static int said;
    if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
        shim_error("cannot find the libpq that defines %s for this caller%s", shim_wrapped_names[w],
                   "");
}

/* ---- the calls, for one libpq ---- */

static PGconn *do_string(struct instance *in, enum wrapped w, const char *conninfo)
{
    pqr_router *r;
    struct pqri_conninfo ci;
    PGconn *conn = NULL;
    bool passed = true;

    if (!in || !in->fn[w])
        return missing(w), NULL;
    if ((r = active(in)) && engine->conninfo_parse(&ci, conninfo) == 0) {
        conn = engine->connect(r, &in->pq, ci.call_kw, ci.call_val, ci.call_expand,
                               w == W_CONNECTDB ? PQRI_BLOCKING : PQRI_NONBLOCKING, &passed);
        engine->conninfo_release(&ci);
    }
    if (passed) {
        in_libpq++;
        conn = ((connectdb_fn *)in->fn[w])(conninfo);
        in_libpq--;
    }
    return conn;
}

static PGconn *do_params(struct instance *in, enum wrapped w, const char *const *kw,
                         const char *const *val, int expand)
{
    pqr_router *r;
    PGconn *conn = NULL;
    bool passed = true;

    if (!in || !in->fn[w])
        return missing(w), NULL;
    if ((r = active(in)) && kw && val)
        conn = engine->connect(r, &in->pq, kw, val, expand,
                               w == W_CONNECTDB_PARAMS ? PQRI_BLOCKING : PQRI_NONBLOCKING, &passed);
    if (passed) {
        in_libpq++;
        conn = ((params_fn *)in->fn[w])(kw, val, expand);
        in_libpq--;
    }
    return conn;
}

static bool given(const char *s)
{
    return s && s[0];
}

/* PQsetdbLogin's rules as keyword arrays: a dbName that is a conninfo or URI is expanded, and the
 * other non-empty arguments override it (later entries win). pgtty is ignored by libpq >= 14. */
static PGconn *do_setdb_login(struct instance *in, const char *pghost, const char *pgport,
                              const char *pgoptions, const char *pgtty, const char *dbName,
                              const char *login, const char *pwd)
{
    pqr_router *r;
    const char *kw[7], *val[7];
    size_t n = 0;
    PGconn *conn = NULL;
    bool passed = true;

    if (!in || !in->fn[W_SETDB_LOGIN])
        return missing(W_SETDB_LOGIN), NULL;
    if ((r = active(in))) {
#define ADD(k, v)                                                                                  \
    if (given(v))                                                                                  \
    kw[n] = k, val[n++] = v
        ADD("dbname", dbName);
        ADD("host", pghost);
        ADD("port", pgport);
        ADD("options", pgoptions);
        ADD("user", login);
        ADD("password", pwd);
#undef ADD
        kw[n] = val[n] = NULL;
        conn = engine->connect(r, &in->pq, kw, val, 1, PQRI_BLOCKING, &passed);
    }
    if (passed) {
        in_libpq++;
        conn = ((setdb_login_fn *)in->fn[W_SETDB_LOGIN])(pghost, pgport, pgoptions, pgtty, dbName,
                                                         login, pwd);
        in_libpq--;
    }
    return conn;
}

static PGPing do_ping(struct instance *in, const char *conninfo)
{
    pqr_router *r;
    struct pqri_conninfo ci;
    PGPing ping = PQPING_NO_ATTEMPT;
    bool passed = true;

    if (!in || !in->fn[W_PING])
        return missing(W_PING), PQPING_NO_ATTEMPT;
    if ((r = active(in)) && engine->conninfo_parse(&ci, conninfo) == 0) {
        ping = engine->ping(r, &in->pq, ci.call_kw, ci.call_val, ci.call_expand, &passed);
        engine->conninfo_release(&ci);
    }
    if (passed) {
        in_libpq++;
        ping = ((ping_fn *)in->fn[W_PING])(conninfo);
        in_libpq--;
    }
    return ping;
}

static PGPing do_ping_params(struct instance *in, const char *const *kw, const char *const *val,
                             int expand)
{
    pqr_router *r;
    PGPing ping = PQPING_NO_ATTEMPT;
    bool passed = true;

    if (!in || !in->fn[W_PING_PARAMS])
        return missing(W_PING_PARAMS), PQPING_NO_ATTEMPT;
    if ((r = active(in)) && kw && val)
        ping = engine->ping(r, &in->pq, kw, val, expand, &passed);
    if (passed) {
        in_libpq++;
        ping = ((ping_params_fn *)in->fn[W_PING_PARAMS])(kw, val, expand);
        in_libpq--;
    }
    return ping;
}

/* What the connection reports: the application's own options when we routed it. */
static PQconninfoOption *do_conninfo(struct instance *in, PGconn *conn)
{
    PQconninfoOption *opts;

    if (!in || !in->fn[W_CONNINFO])
        return missing(W_CONNINFO), NULL;
    opts = ((conninfo_fn *)in->fn[W_CONNINFO])(conn);
    /* Only a process that routes has routed connections; the engine is loaded by then. */
    if (!in_libpq && __atomic_load_n(&router, __ATOMIC_ACQUIRE))
        engine->conninfo_report(conn, opts);
    return opts;
}

/* A routed non-blocking connect is driven by the caller's own polls (the engine's nb.c); every
 * other goes straight to libpq. Only a process that routes has such connects. */
static PostgresPollingStatusType do_connect_poll(struct instance *in, PGconn *conn)
{
    PostgresPollingStatusType ps;

    if (!in || !in->fn[W_CONNECT_POLL])
        return missing(W_CONNECT_POLL), PGRES_POLLING_FAILED;
    if (!in_libpq && conn && __atomic_load_n(&router, __ATOMIC_ACQUIRE) &&
        engine->connect_poll(conn, &ps))
        return ps;
    return ((poll_fn *)in->fn[W_CONNECT_POLL])(conn);
}

static void do_finish(struct instance *in, PGconn *conn)
{
    if (!in || !in->fn[W_FINISH]) {
        missing(W_FINISH);
        return;
    }
    if (!in_libpq && conn && __atomic_load_n(&router, __ATOMIC_ACQUIRE))
        engine->finish(conn);
    ((finish_fn *)in->fn[W_FINISH])(conn);
}

static int do_socket(struct instance *in, const PGconn *conn)
{
    int fd;

    if (!in || !in->fn[W_SOCKET])
        return missing(W_SOCKET), -1;
    fd = ((socket_fn *)in->fn[W_SOCKET])(conn);
    /* the number the caller was given, when conn is a routed non-blocking connection */
    if (!in_libpq && conn && __atomic_load_n(&router, __ATOMIC_ACQUIRE))
        (void)engine->socket(conn, fd, &fd);
    return fd;
}

/* ---- the exported names: the caller's own libpq ---- */

#define CALLER(w) instance_for_caller(__builtin_return_address(0), w)

/* PQsocket, PQconnectPoll and PQfinish are called for every query or connection of every libpq
 * program, routed or not: the last call site's libpq is remembered per thread (a call site is
 * code of one object, which binds one libpq). */
static __thread struct {
    void *ret;
    struct instance *in;
} hot[W_COUNT] __attribute__((tls_model("initial-exec")));
static struct instance *caller_cached(void *ret, enum wrapped w)
{
    if (hot[w].ret != ret || !hot[w].in) {
        hot[w].in = instance_for_caller(ret, w);
        hot[w].ret = ret;
    }
    return hot[w].in;
}
#define CALLER_HOT(w) caller_cached(__builtin_return_address(0), w)

EXPORT PGconn *PQconnectdb(const char *conninfo)
{
    return do_string(CALLER(W_CONNECTDB), W_CONNECTDB, conninfo);
}

EXPORT PGconn *PQconnectStart(const char *conninfo)
{
    return do_string(CALLER(W_CONNECT_START), W_CONNECT_START, conninfo);
}

EXPORT PGconn *PQconnectdbParams(const char *const *keywords, const char *const *values,
                                 int expand_dbname)
{
    return do_params(CALLER(W_CONNECTDB_PARAMS), W_CONNECTDB_PARAMS, keywords, values,
                     expand_dbname);
}

EXPORT PGconn *PQconnectStartParams(const char *const *keywords, const char *const *values,
                                    int expand_dbname)
{
    return do_params(CALLER(W_CONNECT_START_PARAMS), W_CONNECT_START_PARAMS, keywords, values,
                     expand_dbname);
}

EXPORT PGconn *PQsetdbLogin(const char *pghost, const char *pgport, const char *pgoptions,
                            const char *pgtty, const char *dbName, const char *login,
                            const char *pwd)
{
    return do_setdb_login(CALLER(W_SETDB_LOGIN), pghost, pgport, pgoptions, pgtty, dbName, login,
                          pwd);
}

EXPORT PGPing PQping(const char *conninfo)
{
    return do_ping(CALLER(W_PING), conninfo);
}

EXPORT PGPing PQpingParams(const char *const *keywords, const char *const *values,
                           int expand_dbname)
{
    return do_ping_params(CALLER(W_PING_PARAMS), keywords, values, expand_dbname);
}

EXPORT PQconninfoOption *PQconninfo(PGconn *conn)
{
    return do_conninfo(CALLER(W_CONNINFO), conn);
}

EXPORT PostgresPollingStatusType PQconnectPoll(PGconn *conn)
{
    return do_connect_poll(CALLER_HOT(W_CONNECT_POLL), conn);
}

EXPORT void PQfinish(PGconn *conn)
{
    do_finish(CALLER_HOT(W_FINISH), conn);
}

EXPORT int PQsocket(const PGconn *conn)
{
    return do_socket(CALLER_HOT(W_SOCKET), conn);
}

void *shim_global_wrapper(enum wrapped w)
{
    static void *const global[W_COUNT] = {
        (void *)PQconnectdb,
        (void *)PQconnectdbParams,
        (void *)PQsetdbLogin,
        (void *)PQconnectStart,
        (void *)PQconnectStartParams,
        (void *)PQping,
        (void *)PQpingParams,
        (void *)PQconninfo,
        (void *)PQconnectPoll,
        (void *)PQfinish,
        (void *)PQsocket,
    };
    return global[w];
}

/* ---- wrappers bound to one instance, for dlsym() results ---- */

#define SLOT(k)                                                                                    \
    static PGconn *s##k##_connectdb(const char *c)                                                 \
    {                                                                                              \
        return do_string(&instances[k], W_CONNECTDB, c);                                           \
    }                                                                                              \
    static PGconn *s##k##_connect_start(const char *c)                                             \
    {                                                                                              \
        return do_string(&instances[k], W_CONNECT_START, c);                                       \
    }                                                                                              \
    static PGconn *s##k##_connectdb_params(const char *const *kw, const char *const *v, int e)     \
    {                                                                                              \
        return do_params(&instances[k], W_CONNECTDB_PARAMS, kw, v, e);                             \
    }                                                                                              \
    static PGconn *s##k##_connect_start_params(const char *const *kw, const char *const *v, int e) \
    {                                                                                              \
        return do_params(&instances[k], W_CONNECT_START_PARAMS, kw, v, e);                         \
    }                                                                                              \
    static PGconn *s##k##_setdb_login(const char *h, const char *p, const char *o, const char *t,  \
                                      const char *d, const char *u, const char *pw)                \
    {                                                                                              \
        return do_setdb_login(&instances[k], h, p, o, t, d, u, pw);                                \
    }                                                                                              \
    static PGPing s##k##_ping(const char *c)                                                       \
    {                                                                                              \
        return do_ping(&instances[k], c);                                                          \
    }                                                                                              \
    static PGPing s##k##_ping_params(const char *const *kw, const char *const *v, int e)           \
    {                                                                                              \
        return do_ping_params(&instances[k], kw, v, e);                                            \
    }                                                                                              \
    static PQconninfoOption *s##k##_conninfo(PGconn *c)                                            \
    {                                                                                              \
        return do_conninfo(&instances[k], c);                                                      \
    }                                                                                              \
    static PostgresPollingStatusType s##k##_connect_poll(PGconn *c)                                \
    {                                                                                              \
        return do_connect_poll(&instances[k], c);                                                  \
    }                                                                                              \
    static void s##k##_finish(PGconn *c)                                                           \
    {                                                                                              \
        do_finish(&instances[k], c);                                                               \
    }                                                                                              \
    static int s##k##_socket(const PGconn *c)                                                      \
    {                                                                                              \
        return do_socket(&instances[k], c);                                                        \
    }
#define SLOT_ROW(k)                                                                                \
    {                                                                                              \
        (void *)s##k##_connectdb, (void *)s##k##_connectdb_params, (void *)s##k##_setdb_login,     \
            (void *)s##k##_connect_start, (void *)s##k##_connect_start_params,                     \
            (void *)s##k##_ping, (void *)s##k##_ping_params, (void *)s##k##_conninfo,              \
            (void *)s##k##_connect_poll, (void *)s##k##_finish, (void *)s##k##_socket              \
    }

/* Macro invocations without semicolons, which clang-format cannot lay out stably: */
/* clang-format off */
SLOT(0) SLOT(1) SLOT(2) SLOT(3) SLOT(4) SLOT(5) SLOT(6) SLOT(7)
static void *const slots[MAX_INSTANCES][W_COUNT] = {
    SLOT_ROW(0), SLOT_ROW(1), SLOT_ROW(2), SLOT_ROW(3),
    SLOT_ROW(4), SLOT_ROW(5), SLOT_ROW(6), SLOT_ROW(7),
};
/* clang-format on */

void *shim_instance_wrapper(void *real_fn, enum wrapped w)
{
    struct instance *in;

    pthread_once(&atfork_once, register_atfork);
    in = instance_of(real_fn);
    /* Only for the function dlsym() found, from the libpq it found it in. */
    return in && in->fn[w] == real_fn ? slots[in - instances][w] : NULL;
}
