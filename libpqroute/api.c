/* The public pqr_* API: thin wrappers over the router and the route flow the shim uses too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pqr_private.h"

#define STR2(x) #x
#define STR(x) STR2(x)

static PGconn *direct_connectdb_params(const struct pqr_libpq *pq, const char *const *k,
                                       const char *const *v, int e)
{
    (void)pq;
    return PQconnectdbParams(k, v, e);
}

static PGconn *direct_connect_start_params(const struct pqr_libpq *pq, const char *const *k,
                                           const char *const *v, int e)
{
    (void)pq;
    return PQconnectStartParams(k, v, e);
}

static PGPing direct_ping_params(const struct pqr_libpq *pq, const char *const *k,
                                 const char *const *v, int e)
{
    (void)pq;
    return PQpingParams(k, v, e);
}

const struct pqr_libpq pqr__direct_libpq = {
    direct_connectdb_params, direct_connect_start_params, direct_ping_params, PQstatus,
    PQerrorMessage, PQfinish, PQconninfo, PQconninfoFree, PQpass, PQhostaddr, PQport,
};

const char *pqr_version(void)
{
    return STR(PQR_VERSION_MAJOR) "." STR(PQR_VERSION_MINOR) "." STR(PQR_VERSION_PATCH);
}

pqr_settings *pqr_settings_new(void)
{
    pqr_settings *s = malloc(sizeof *s);
    if (s)
        pqr__settings_init(s);
    return s;
}

int pqr_settings_set(pqr_settings *s, const char *name, const char *value, char *err,
                     size_t errlen)
{
    if (!s || !name) {
        pqr__errf(err, errlen, "no settings or no name");
        return -1;
    }
    return pqr__settings_set(s, name, value, err, errlen);
}

void pqr_settings_free(pqr_settings *s)
{
    if (s) {
        pqr__settings_clear(s);
        free(s);
    }
}

pqr_router *pqr_router_open(const pqr_settings *s, char *err, size_t errlen)
{
    struct pqr_settings tmp;
    pqr_router *r = NULL;
    int rc;

    if (!s) {
        pqr__errf(err, errlen, "no settings");
        return NULL;
    }
    if (pqr__settings_copy(&tmp, s) < 0) {
        pqr__settings_clear(&tmp);
        pqr__errf(err, errlen, "out of memory");
        return NULL;
    }
    rc = pqr__settings_finish(&tmp, err, errlen);
    if (rc == 1)
        pqr__errf(err, errlen, "no cluster configured (set PATRONI and RW and/or RO)");
    else if (rc == 0)
        r = pqr__router_new(&tmp, &pqr__direct_libpq, err, errlen);
    pqr__settings_clear(&tmp);
    return r;
}

/* Settings from the configuration file and the environment (which overrides the file). */
int pqr__settings_load(struct pqr_settings *s, char *err, size_t errlen)
{
    const char *path = getenv(PQR_ENV_CONFIG), *lvl = getenv(PQR_ENV_LOG);
    int level;

    pqr__settings_init(s);
    if (lvl && (level = pqr__log_parse(lvl)) >= 0)
        pqr__log_set(level);
    if (path && !*path) {
        pqr__errf(err, errlen, "%s is set but empty", PQR_ENV_CONFIG);
        return -1;
    }
    if (path) {
        char ferr[512];
        if (pqr__settings_from_file(s, path, ferr, sizeof ferr) < 0) {
            pqr__errf(err, errlen, "%s: %s", PQR_ENV_CONFIG, ferr);
            return -1;
        }
    } else if (access(PQR_DEFAULT_CONFIG, F_OK) == 0 &&
               pqr__settings_from_file(s, PQR_DEFAULT_CONFIG, err, errlen) < 0) {
        return -1;
    }
    if (pqr__settings_from_env(s, err, errlen) < 0)
        return -1;
    pqr__log_set(s->log_level);
    return pqr__settings_finish(s, err, errlen);
}

struct pqr_router *pqr__router_from_env(const struct pqr_libpq *pq, char *err, size_t errlen)
{
    struct pqr_settings s;
    struct pqr_router *r = NULL;
    int rc;

    /* setuid, setgid or file capabilities: the environment belongs to whoever started the
     * program, and would decide where its connections and passwords go. */
    if (pqr__privileged()) {
        pqr__errf(err, errlen, "this process runs with elevated privileges (setuid, setgid or "
                               "capabilities): PQROUTE_* and the configuration file named by the "
                               "environment are ignored");
        return NULL;
    }
    rc = pqr__settings_load(&s, err, errlen);

    if (rc == 0)
        r = pqr__router_new(&s, pq, err, errlen);
    else if (rc == 1 && err && errlen)
        err[0] = 0;
    pqr__settings_clear(&s);
    return r;
}

pqr_router *pqr_router_open_env(char *err, size_t errlen)
{
    return pqr__router_from_env(&pqr__direct_libpq, err, errlen);
}

void pqr_router_close(pqr_router *r)
{
    pqr__router_free(r);
}

static PGconn *connect_arrays(pqr_router *r, const char *const *kw, const char *const *val,
                              int expand, pqr_role role)
{
    bool passed;
    return pqr__route_connect(r, NULL, kw, val, expand, PQR_BLOCKING, role, &passed);
}

PGconn *pqr_connectdb_params(pqr_router *r, const char *const *keywords,
                             const char *const *values, int expand_dbname)
{
    PGconn *conn = r ? connect_arrays(r, keywords, values, expand_dbname, PQR_ROLE_AUTO) : NULL;
    return conn ? conn : PQconnectdbParams(keywords, values, expand_dbname);
}

PGconn *pqr_connectdb(pqr_router *r, const char *conninfo)
{
    PQconninfoOption *opts;
    const char **kw, **val;
    PGconn *conn = NULL;

    if (r && pqr__conninfo_arrays(conninfo, &opts, &kw, &val) == 0) {
        conn = connect_arrays(r, kw, val, 0, PQR_ROLE_AUTO);
        free(kw), free(val);
        pqr__conninfo_free(opts);
    }
    return conn ? conn : PQconnectdb(conninfo);
}

PGconn *pqr_connect(pqr_router *r, pqr_role role, const char *conninfo)
{
    PQconninfoOption *opts;
    const char **kw, **val;
    PGconn *conn = NULL;
    bool named = false;
    size_t n = 0;

    if (!r)
        return PQconnectdb(conninfo ? conninfo : "");
    if (pqr__conninfo_arrays(conninfo, &opts, &kw, &val) < 0)
        return PQconnectdb(conninfo ? conninfo : "");
    for (; kw[n]; n++)
        named = named || strcmp(kw[n], "host") == 0 || strcmp(kw[n], "hostaddr") == 0;
    const char **k2 = calloc(n + 3, sizeof *k2), **v2 = calloc(n + 3, sizeof *v2);
    char port[16];
    if (k2 && v2) {
        memcpy(k2, kw, n * sizeof *kw);
        memcpy(v2, val, n * sizeof *val);
        if (!named) {
            /* No host named: the first cluster's front door for this role. */
            const struct pqr_cluster_conf *c = &r->s.clusters[0];
            bool ro = role == PQR_ROLE_RO && c->ro_host;
            k2[n] = "host";
            v2[n] = ro ? c->ro_host : c->rw_host ? c->rw_host : c->ro_host;
            snprintf(port, sizeof port, "%d", ro ? c->ro_port : c->rw_host ? c->rw_port : c->ro_port);
            k2[n + 1] = "port";
            v2[n + 1] = port;
        }
        conn = connect_arrays(r, k2, v2, 0, role);
        if (!conn)
            conn = PQconnectdbParams(k2, v2, 0);
    }
    free(k2), free(v2), free(kw), free(val);
    pqr__conninfo_free(opts);
    return conn;
}

static struct pqr_cluster *find_cluster(pqr_router *r, const char *name)
{
    for (size_t i = 0; r && i < r->nclusters; i++)
        if (!name || strcmp(r->clusters[i].conf->name, name) == 0)
            return &r->clusters[i];
    return NULL;
}

pqr_topology *pqr_router_topology(pqr_router *r, const char *cluster)
{
    struct pqr_cluster *c = find_cluster(r, cluster);
    return c ? pqr__router_snapshot(r, c, 0) : NULL;
}

pqr_topology *pqr_router_refresh(pqr_router *r, const char *cluster, int timeout_ms)
{
    struct pqr_cluster *c = find_cluster(r, cluster);
    return c ? pqr__router_refresh(r, c, pqr__mono_ms() - 1, timeout_ms) : NULL;
}

const struct pqr_shim_api *pqr__shim_api(int version)
{
    static const struct pqr_shim_api api = {PQR_SHIM_API_VERSION, pqr__router_from_env,
                                            pqr__route_connect, pqr__route_ping,
                                            pqr__conninfo_arrays, pqr__conninfo_free};
    return version == PQR_SHIM_API_VERSION ? &api : NULL;
}
