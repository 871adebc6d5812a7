/*
 * The public pqr_* API and the router's lifecycle: a router is the views of its clusters (view.c)
 * and the libpq it calls by default. Thin wrappers over the plan the shim uses too.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "patroni.h"
#include "source.h"
#include "connect.h"
#include "nb.h"
#include "asked.h"
#include "refresher.h"
#include "direct.h"

#define STR2(x) #x
#define STR(x) STR2(x)

struct pqr_router {
    struct pqri_views *views;
    const struct pqri_libpq *pq; /* the shim's calls bring their own */
    char **shown;                /* every cluster's REST endpoints, for display (no credentials) */
};

struct pqri_views *pqri_router_views(pqr_router *r)
{
    return r->views;
}

const char *pqr_version(void)
{
    return STR(PQR_VERSION_MAJOR) "." STR(PQR_VERSION_MINOR) "." STR(PQR_VERSION_PATCH);
}

pqr_error pqr_last_error(void)
{
    return (pqr_error)pqri_error_get();
}

const char *pqr_strerror(pqr_error code)
{
    switch (code) {
    case PQR_OK:
        return "no error";
    case PQR_ERR_NOT_CONFIGURED:
        return "not configured";
    case PQR_ERR_SETTING:
        return "invalid setting";
    case PQR_ERR_CONFIG_FILE:
        return "invalid configuration file";
    case PQR_ERR_PRIVILEGED:
        return "elevated privileges: environment not trusted";
    case PQR_ERR_NO_SUCH:
        return "no such cluster, endpoint or DCS";
    case PQR_ERR_UNREACHABLE:
        return "no usable answer";
    case PQR_ERR_NO_SHARED_CACHE:
        return "no shared cache directory";
    case PQR_ERR_RESOURCE:
        return "out of memory or resources";
    case PQR_ERR_ARGUMENT:
        return "invalid argument";
    }
    return "unknown error code";
}

/* A public call failed: its own code, unless a part below named the cause (pqri_errc). */
static void failed(pqr_error code)
{
    if (pqri_error_get() == PQR_OK)
        pqri_error_set(code);
}

pqr_settings *pqr_settings_new(void)
{
    pqr_settings *s = malloc(sizeof *s);
    if (s)
        pqri_settings_init(s);
    return s;
}

int pqr_settings_set(pqr_settings *s, const char *name, const char *value, char *err, size_t errlen)
{
    pqri_error_set(PQR_OK);
    if (!s || !name) {
        pqri_errc(PQR_ERR_ARGUMENT, err, errlen, "no settings or no name");
        return -1;
    }
    if (pqri_settings_set(s, name, value, err, errlen) < 0) {
        failed(PQR_ERR_SETTING);
        return -1;
    }
    return 0;
}

void pqr_settings_free(pqr_settings *s)
{
    if (s) {
        pqri_settings_clear(s);
        free(s);
    }
}

/* The router over finished settings. */
static pqr_router *router_new(const struct pqr_settings *s, char *err, size_t errlen)
{
    pqr_router *r = calloc(1, sizeof *r);
    size_t n = 0, k = 0;

    for (size_t i = 0; i < s->nclusters; i++)
        n += s->clusters[i].nseeds;
    if (!r || !(r->shown = calloc(n + 1, sizeof *r->shown))) {
        free(r);
        pqri_errc(PQR_ERR_RESOURCE, err, errlen, "out of memory");
        return NULL;
    }
    r->pq = &pqri_direct_libpq;
    for (size_t i = 0; i < s->nclusters; i++)
        for (size_t j = 0; j < s->clusters[i].nseeds; j++) {
            char buf[600];
            pqri_url_display(buf, sizeof buf, s->clusters[i].seeds[j]);
            if (!(r->shown[k++] = strdup(buf))) {
                pqri_errc(PQR_ERR_RESOURCE, err, errlen, "out of memory");
                pqr_router_close(r);
                return NULL;
            }
        }
    if (!(r->views = pqri_views_new(s, err, errlen))) {
        failed(PQR_ERR_RESOURCE); /* its message says what could not be made */
        pqr_router_close(r);
        return NULL;
    }
    return r;
}

pqr_router *pqr_router_open(const pqr_settings *s, char *err, size_t errlen)
{
    struct pqr_settings tmp;
    pqr_router *r = NULL;
    int rc;

    pqri_error_set(PQR_OK);
    if (!s) {
        pqri_errc(PQR_ERR_ARGUMENT, err, errlen, "no settings");
        return NULL;
    }
    if (pqri_settings_copy(&tmp, s) < 0) {
        pqri_settings_clear(&tmp);
        pqri_errc(PQR_ERR_RESOURCE, err, errlen, "out of memory");
        return NULL;
    }
    rc = pqri_settings_finish(&tmp, err, errlen);
    if (rc == 1)
        pqri_errc(PQR_ERR_NOT_CONFIGURED, err, errlen,
                  "no cluster configured (set PATRONI, ETCD or CONSUL, and RW and/or RO)");
    else if (rc == 0)
        r = router_new(&tmp, err, errlen);
    else
        failed(PQR_ERR_SETTING);
    pqri_settings_clear(&tmp);
    return r;
}

pqr_router *pqr_router_open_env(char *err, size_t errlen)
{
    struct pqr_settings s;
    pqr_router *r = NULL;
    int rc;

    /* setuid, setgid or file capabilities: the environment belongs to whoever started the
     * program, and would decide where its connections and passwords go. */
    pqri_error_set(PQR_OK);
    if (pqri_privileged()) {
        pqri_errc(PQR_ERR_PRIVILEGED, err, errlen,
                  "this process runs with elevated privileges (setuid, setgid or capabilities): "
                  "PQROUTE_* and the configuration file named by the environment are ignored");
        return NULL;
    }
    rc = pqri_settings_load(&s, err, errlen);
    if (rc == 0)
        r = router_new(&s, err, errlen);
    else if (rc == 1)
        pqri_errc(PQR_ERR_NOT_CONFIGURED, err, errlen, "%s", "");
    else
        failed(PQR_ERR_SETTING); /* the file's own errors say PQR_ERR_CONFIG_FILE */
    pqri_settings_clear(&s);
    return r;
}

void pqr_router_close(pqr_router *r)
{
    if (!r)
        return;
    if (r->views)
        pqri_nb_drop_views(r->views);
    pqri_views_free(r->views);
    for (size_t i = 0; r->shown[i]; i++)
        free(r->shown[i]);
    free(r->shown);
    free(r);
}

static PGconn *connect_arrays(pqr_router *r, const char *const *kw, const char *const *val,
                              int expand, pqr_role role)
{
    bool passed;
    return pqri_connect(r->views, r->pq, kw, val, expand, PQRI_BLOCKING, role, &passed);
}

PGconn *pqr_connectdb_params(pqr_router *r, const char *const *keywords, const char *const *values,
                             int expand_dbname)
{
    PGconn *conn = r ? connect_arrays(r, keywords, values, expand_dbname, PQR_ROLE_AUTO) : NULL;
    return conn ? conn : PQconnectdbParams(keywords, values, expand_dbname);
}

PGconn *pqr_connectdb(pqr_router *r, const char *conninfo)
{
    struct pqri_conninfo ci;
    PGconn *conn = NULL;

    if (r && pqri_conninfo_parse(&ci, conninfo) == 0) {
        conn = connect_arrays(r, ci.call_kw, ci.call_val, ci.call_expand, PQR_ROLE_AUTO);
        pqri_conninfo_release(&ci);
    }
    return conn ? conn : PQconnectdb(conninfo);
}

PQconninfoOption *pqr_conninfo(const PGconn *conn)
{
    PQconninfoOption *opts = PQconninfo((PGconn *)conn);
    pqri_asked_report(conn, opts);
    return opts;
}

PGconn *pqr_connect(pqr_router *r, pqr_role role, const char *conninfo)
{
    struct pqri_conninfo ci;
    PGconn *conn = NULL;
    bool named = false;
    size_t n = 0;

    if (!r || pqri_conninfo_parse(&ci, conninfo) < 0)
        return PQconnectdb(conninfo ? conninfo : "");
    for (; ci.kw[n]; n++)
        named = named || strcmp(ci.kw[n], "host") == 0 || strcmp(ci.kw[n], "hostaddr") == 0;
    const char **k2 = calloc(n + 3, sizeof *k2), **v2 = calloc(n + 3, sizeof *v2);
    char port[16];
    if (k2 && v2) {
        memcpy(k2, ci.kw, n * sizeof *k2);
        memcpy(v2, ci.val, n * sizeof *v2);
        if (!named) {
            /* No host named: the first cluster's front door for this role. */
            const struct pqri_cluster_conf *c = pqri_view_conf(pqri_views_at(r->views, 0));
            bool ro = role == PQR_ROLE_RO && c->ro_host;
            k2[n] = "host";
            v2[n] = ro ? c->ro_host : c->rw_host ? c->rw_host : c->ro_host;
            snprintf(port, sizeof port, "%d",
                     ro               ? c->ro_port
                         : c->rw_host ? c->rw_port
                                      : c->ro_port);
            k2[n + 1] = "port";
            v2[n + 1] = port;
        }
        conn = connect_arrays(r, k2, v2, 0, role);
        if (!conn)
            conn = PQconnectdbParams(k2, v2, 0);
    }
    free(k2), free(v2);
    pqri_conninfo_release(&ci);
    return conn;
}

static struct pqri_view *view_named(const pqr_router *r, const char *name)
{
    return r ? pqri_views_named(r->views, name) : NULL;
}

pqr_topology *pqr_router_topology(pqr_router *r, const char *cluster)
{
    struct pqri_view *v = view_named(r, cluster);
    return v ? pqri_view_snapshot(v, 0) : NULL;
}

pqr_topology *pqr_router_refresh(pqr_router *r, const char *cluster, int timeout_ms)
{
    struct pqri_view *v = view_named(r, cluster);
    if (v && timeout_ms < 0)
        timeout_ms = pqri_rest_budget_ms(pqri_views_settings(r->views));
    return v ? pqri_view_refresh(v, pqri_mono_ms() - 1, timeout_ms) : NULL;
}

/* ---- for operators' tools (pqroute) ---- */

size_t pqr_router_clusters(const pqr_router *r)
{
    return r ? pqri_views_count(r->views) : 0;
}

const char *pqr_router_cluster_name(const pqr_router *r, size_t i)
{
    return r && i < pqri_views_count(r->views) ? pqri_view_conf(pqri_views_at(r->views, i))->name
                                               : NULL;
}

int pqr_router_front_door(const pqr_router *r, const char *cluster, pqr_role role,
                          const char **host, int *port)
{
    struct pqri_view *v = view_named(r, cluster);
    const struct pqri_cluster_conf *c = v ? pqri_view_conf(v) : NULL;
    const char *h = !c ? NULL : role == PQR_ROLE_RO ? c->ro_host : c->rw_host;

    if (!h)
        return -1;
    *host = h;
    *port = role == PQR_ROLE_RO ? c->ro_port : c->rw_port;
    return 0;
}

const char *pqr_router_zone(const pqr_router *r, const char *cluster)
{
    struct pqri_view *v = view_named(r, cluster);
    return v ? pqri_zone(pqri_views_settings(r->views), pqri_view_conf(v)) : NULL;
}

const char *pqr_router_member_zone(const pqr_router *r, const char *cluster, const pqr_topology *t,
                                   size_t i)
{
    struct pqri_view *v = view_named(r, cluster);
    if (!v || !t || i >= t->n)
        return NULL;
    return pqri_member_tag(&t->m[i],
                           pqri_zone_tag(pqri_views_settings(r->views), pqri_view_conf(v)));
}

int pqr_router_read_why(const pqr_router *r, const char *cluster, const pqr_topology *t, size_t i,
                        char *buf, size_t len)
{
    struct pqri_view *v = view_named(r, cluster);
    const struct pqr_settings *s = r ? pqri_views_settings(r->views) : NULL;
    const struct pqri_cluster_conf *c = v ? pqri_view_conf(v) : NULL;

    if (!v || !t || i >= t->n || !buf || !len)
        return -1;
    struct pqri_policy_in in = {.t = t,
                                .role = PQR_ROLE_RO,
                                .max_lag = pqri_max_lag(s, c),
                                .zones = pqri_zone(s, c),
                                .zone_tag = pqri_zone_tag(s, c),
                                .ro_leader = pqri_ro_fallback(s, c) == PQRI_RO_LEADER};
    pqri_policy_ro_why(&in, i, buf, len);
    return 0;
}

size_t pqr_router_endpoints(const pqr_router *r, const char *cluster)
{
    struct pqri_view *v = view_named(r, cluster);
    return v ? pqri_view_conf(v)->nseeds : 0;
}

const char *pqr_router_endpoint(const pqr_router *r, const char *cluster, size_t i)
{
    struct pqri_view *v = view_named(r, cluster);
    const struct pqri_cluster_conf *c = v ? pqri_view_conf(v) : NULL;
    size_t k = 0;

    if (!c || i >= c->nseeds)
        return NULL;
    /* r->shown lists every cluster's seeds in order */
    for (size_t j = 0; pqri_view_conf(pqri_views_at(r->views, j)) != c; j++)
        k += pqri_view_conf(pqri_views_at(r->views, j))->nseeds;
    return r->shown[k + i];
}

pqr_topology *pqr_router_ask(pqr_router *r, const char *cluster, size_t i, char *err, size_t errlen)
{
    struct pqri_view *v = view_named(r, cluster);
    const struct pqri_cluster_conf *c = v ? pqri_view_conf(v) : NULL;
    struct pqr_topology *t;

    pqri_error_set(PQR_OK);
    if (!c || i >= c->nseeds) {
        pqri_errc(PQR_ERR_NO_SUCH, err, errlen, "no such cluster or endpoint");
        return NULL;
    }
    const struct pqr_settings *s = pqri_views_settings(r->views);
    const char *one[] = {c->seeds[i]};
    struct pqri_fetch_opts o = {s, c, one, 1, NULL};
    if ((t = pqri_patroni_fetch(&o, err, errlen)))
        pqri_topo_complete(t, s, c);
    else
        failed(PQR_ERR_UNREACHABLE);
    return t;
}

const char *pqr_router_dcs(const pqr_router *r, const char *cluster)
{
    struct pqri_view *v = view_named((pqr_router *)r, cluster);
    int kind = v ? pqri_view_conf(v)->dcs.kind : PQRI_DCS_NONE;

    return kind == PQRI_DCS_ETCD ? "etcd" : kind == PQRI_DCS_CONSUL ? "consul" : NULL;
}

pqr_topology *pqr_router_ask_dcs(pqr_router *r, const char *cluster, char *err, size_t errlen)
{
    struct pqri_view *v = view_named(r, cluster);
    const struct pqr_settings *s = v ? pqri_views_settings(r->views) : NULL;
    struct pqri_source *src;
    struct pqr_topology *t;

    pqri_error_set(PQR_OK);
    if (!v || !pqri_view_conf(v)->dcs.kind) {
        pqri_errc(PQR_ERR_NO_SUCH, err, errlen, "no DCS configured for this cluster");
        return NULL;
    }
    /* A client of its own: the refresher's may be in use by its thread. */
    if (!(src = pqri_source_open(s, pqri_view_conf(v)))) {
        pqri_errc(PQR_ERR_RESOURCE, err, errlen, "out of memory: no DCS client could be made");
        return NULL;
    }
    if ((t = pqri_source_read(src, NULL, err, errlen)))
        pqri_topo_complete(t, s, pqri_view_conf(v));
    else
        failed(PQR_ERR_UNREACHABLE);
    pqri_source_close(src);
    return t;
}

const char *pqr_router_explain(pqr_router *r, const char *conninfo)
{
    struct pqri_conninfo ci;

    if (!r)
        return "no router";
    if (pqri_conninfo_parse(&ci, conninfo) < 0) {
        pqri_decision("libpq cannot parse that connection string");
        return pqr_last_decision();
    }
    pqri_plan_free(pqri_plan_new(r->views, r->pq, ci.call_kw, ci.call_val, ci.call_expand,
                                 PQRI_BLOCKING, PQR_ROLE_AUTO));
    pqri_conninfo_release(&ci);
    return pqr_last_decision();
}

size_t pqr_stats_count(void)
{
    return PQRI_STAT_COUNT;
}

const char *pqr_stats_name(size_t i)
{
    return i < PQRI_STAT_COUNT ? pqri_stat_names[i] : NULL;
}

int pqr_router_stats(pqr_router *r, const char *cluster, unsigned long long *values, size_t n)
{
    uint64_t v[PQRI_STAT_COUNT];
    struct pqri_view *view = cluster ? view_named(r, cluster) : NULL;
    int rc;

    if (!r || (cluster && !view))
        return -1;
    rc = view ? pqri_view_stats(view, v) : pqri_views_stats_other(r->views, v);
    for (size_t i = 0; rc == 0 && i < n && i < PQRI_STAT_COUNT; i++)
        values[i] = v[i];
    return rc;
}

/* ---- the shim's table ---- */

static pqr_router *shim_router_from_env(char *err, size_t errlen)
{
    return pqr_router_open_env(err, errlen);
}

static PGconn *shim_connect(pqr_router *r, const struct pqri_libpq *pq, const char *const *kw,
                            const char *const *val, int expand, enum pqri_mode mode, bool *passed)
{
    return pqri_connect(r->views, pq, kw, val, expand, mode, PQR_ROLE_AUTO, passed);
}

static PGPing shim_ping(pqr_router *r, const struct pqri_libpq *pq, const char *const *kw,
                        const char *const *val, int expand, bool *passed)
{
    return pqri_plan_ping(r->views, pq, kw, val, expand, passed);
}

const struct pqri_shim_api *pqri_shim_api(int version)
{
    static const struct pqri_shim_api api = {
        PQRI_SHIM_API_VERSION, shim_router_from_env,  shim_connect,      shim_ping,
        pqri_conninfo_parse,   pqri_conninfo_release, pqri_asked_report, pqri_nb_poll,
        pqri_nb_socket,        pqri_nb_forget};
    return version == PQRI_SHIM_API_VERSION ? &api : NULL;
}
