/*
 * Consul's KV API (what Patroni's consul DCS writes): GET /v1/kv/<namespace>/<scope>/?recurse,
 * then blocking queries on the same path (index = the last X-Consul-Index, wait = the refresh
 * interval). A blocking query answers on a change or when its wait ends: either proves the view
 * current, so the view's age means what a poll's would. Each answer carries every key (Patroni's
 * are few), so no state is patched: the set is replaced.
 */
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "source.h"
#include "http.h"
#include "log.h"
#include "secret.h"

#define MAX_READ (4 * 1024 * 1024)

struct pqri_consul {
    const struct pqr_settings *s;
    const struct pqri_cluster_conf *c;
    struct pqri_tls tls;
    char path[400]; /* "service/<scope>/" (Patroni drops the namespace's leading slash) */
    size_t cur;
    char shown[600];
    struct pqri_kvset kv;
    unsigned long long index;
    struct pqri_http_conn *conn; /* the agent's: kept between blocking queries */
    bool keep;
    char bad[160]; /* the last key skipped and its index: said once */
};

struct pqri_consul *pqri_consul_open(const struct pqr_settings *s,
                                     const struct pqri_cluster_conf *c)
{
    struct pqri_consul *e = calloc(1, sizeof *e);
    const char *ns = c->dcs.ns;

    if (!e)
        return NULL;
    e->s = s;
    e->c = c;
    e->tls = (struct pqri_tls){c->dcs.ca, c->dcs.cert, c->dcs.key};
    while (*ns == '/')
        ns++;
    if (pqri_dcs_prefix(e->path, sizeof e->path, ns, c->dcs.scope, c->dcs.group) < 0) {
        free(e);
        return NULL;
    }
    if (e->path[0] == '/') /* an empty namespace */
        memmove(e->path, e->path + 1, strlen(e->path));
    return e;
}

void pqri_consul_close(struct pqri_consul *e)
{
    if (!e)
        return;
    pqri_kvset_clear(&e->kv);
    pqri_http_conn_close(&e->conn);
    free(e);
}

void pqri_consul_keep_connections(struct pqri_consul *e)
{
    e->keep = true;
}

/* One (blocking) query; 0 with the key set replaced and *changed, -1 with a message. */
static int query(struct pqri_consul *e, unsigned long long index, int wait_s, const int *stop,
                 bool *changed, char *err, size_t errlen)
{
    char url[900], idx[64], hdr[600], why[256], *token = NULL;
    const char *hdrs[1] = {hdr};
    struct pqri_buf out = {0};
    struct pqri_kvset set = {0};
    long st = 0;
    json_t *j = NULL;
    int rc = -1;

    pqri_url_display(e->shown, sizeof e->shown, e->c->dcs.urls[e->cur]);
    if (index)
        snprintf(url, sizeof url, "%s/v1/kv/%s?recurse=true&index=%llu&wait=%ds",
                 e->c->dcs.urls[e->cur], e->path, index, wait_s);
    else
        snprintf(url, sizeof url, "%s/v1/kv/%s?recurse=true", e->c->dcs.urls[e->cur], e->path);
    if (e->c->dcs.token_file) {
        if (!(token = pqri_read_secret(e->c->dcs.token_file, why, sizeof why))) {
            pqri_errf(err, errlen, "%s", why);
            return -1;
        }
        snprintf(hdr, sizeof hdr, "X-Consul-Token: %s", token);
        pqri_free_secret(token);
    }
    /* Consul adds up to wait/16 to a blocking query's wait. */
    long timeout = e->s->rest_timeout_ms + (index ? wait_s * 1000L + wait_s * 1000L / 16 : 0);
    struct pqri_http_req rq = {url,
                               NULL,
                               hdrs,
                               e->c->dcs.token_file ? 1 : 0,
                               &e->tls,
                               timeout,
                               MAX_READ,
                               stop,
                               "X-Consul-Index",
                               idx,
                               sizeof idx,
                               e->keep ? &e->conn : NULL};
    if (pqri_http_do(&rq, &out, &st, why, sizeof why) < 0) {
        pqri_errf(err, errlen, "consul %s: %s", e->shown, why);
        goto out;
    }
    explicit_bzero(hdr, sizeof hdr);
    if (st != 200 && st != 404) { /* 404: no key under the path (yet) */
        pqri_errf(err, errlen, "consul %s: HTTP status %ld", e->shown, st);
        goto out;
    }
    if (st == 200 &&
        (!(j = json_loadb(out.p ? out.p : "", out.len, 0, NULL)) || !json_is_array(j))) {
        pqri_errf(err, errlen, "consul %s: not a JSON array of keys", e->shown);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *o = json_array_get(j, i);
        const char *k = json_string_value(json_object_get(o, "Key")),
                   *v64 = json_string_value(json_object_get(o, "Value"));
        size_t plen = strlen(e->path), klen;
        unsigned char *v;
        int vlen;
        if (!k || strncmp(k, e->path, plen) != 0 ||
            !pqri_dcs_wanted(k + plen, klen = strlen(k + plen)))
            continue;
        if (!v64)
            v64 = ""; /* Consul's null for an empty value */
        if (!(v = malloc(strlen(v64) / 4 * 3 + 4)))
            goto oom;
        vlen = *v64 ? b64_pton(v64, v, strlen(v64) / 4 * 3 + 3) : 0;
        long long mod = json_integer_value(json_object_get(o, "ModifyIndex"));
        int put = vlen < 0 ? PQRI_KV_SKIPPED
                           : pqri_kvset_put(&set, k + plen, klen, (char *)v, (size_t)vlen, mod);
        free(v);
        if (put < 0)
            goto oom;
        if (put == PQRI_KV_SKIPPED) { /* one bad key (any node writes its own) costs only itself */
            char bad[sizeof e->bad];
            snprintf(bad, sizeof bad, "%.120s@%lld", k, mod);
            if (strcmp(bad, e->bad) != 0)
                PQRI_WARN(
                    "consul %s: key %.120s (index %lld) left out: its value is not base64, over "
                    "64 KiB, contains a NUL byte, or one key too many",
                    e->shown, k, mod);
            memcpy(e->bad, bad, sizeof bad);
        }
    }
    unsigned long long ni = strtoull(idx, NULL, 10);
    /* Consul's rule: an index that goes backwards (a restored snapshot) starts over. */
    *changed = !index || ni != e->index;
    e->index = ni < e->index ? 0 : ni;
    pqri_kvset_clear(&e->kv);
    e->kv = set;
    set = (struct pqri_kvset){0};
    rc = 0;
    goto out;
oom:
    pqri_errf(err, errlen, "out of memory");
out:
    explicit_bzero(hdr, sizeof hdr);
    pqri_kvset_clear(&set);
    json_decref(j);
    pqri_buf_free(&out);
    return rc;
}

static int query_any(struct pqri_consul *e, const int *stop, char *err, size_t errlen)
{
    size_t n = e->c->dcs.nurls, first = e->cur;
    char why[512];
    bool changed;

    err[0] = 0;
    for (size_t k = 0; k < n; k++) {
        if (e->cur != (first + k) % n)
            pqri_http_conn_close(&e->conn);
        e->cur = (first + k) % n;
        if (query(e, 0, 0, stop, &changed, why, sizeof why) == 0)
            return 0;
        pqri_errcat(err, errlen, why);
        if (stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE))
            break;
    }
    return -1;
}

static struct pqr_topology *topology(struct pqri_consul *e, const char *how, char *err,
                                     size_t errlen)
{
    return pqri_dcs_view(&e->kv, "consul", how, e->shown, e->path, err, errlen);
}

struct pqr_topology *pqri_consul_read(struct pqri_consul *e, const int *stop, char *err,
                                      size_t errlen)
{
    if (query_any(e, stop, err, errlen) < 0)
        return NULL;
    return topology(e, "read", err, errlen);
}

int pqri_consul_watch(struct pqri_consul *e, const int *stop, const struct pqri_watch_hooks *h,
                      char *err, size_t errlen)
{
    int wait_s = e->s->refresh_ms < 1000 ? 1 : e->s->refresh_ms / 1000;
    char why[256];

    if (query_any(e, stop, err, errlen) < 0)
        return -1;
    h->count(h->arg, PQRI_STAT_DCS_READS);
    int early = 0;
    while (!(stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE))) {
        struct pqr_topology *t = topology(e, "watch", why, sizeof why);
        bool changed = false;
        if (t)
            h->view(h->arg, t);
        else
            PQRI_DEBUG("cluster %s: %s", e->c->name, why);
        long long asked = pqri_mono_ms();
        if (query(e, e->index ? e->index : 1, wait_s, stop, &changed, err, errlen) < 0)
            return stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE) ? 0 : -1;
        if (changed)
            h->count(h->arg, PQRI_STAT_WATCH_EVENTS);
        /* A blocking query that keeps answering at once with nothing new (no X-Consul-Index, say)
         * is no watch: the caller's back-off, not a loop as fast as the server answers. */
        early = !changed && pqri_mono_ms() - asked < wait_s * 1000LL / 2 ? early + 1 : 0;
        if (early >= 3) {
            pqri_errf(err, errlen,
                      "consul %s: blocking queries answer at once with nothing new "
                      "(no X-Consul-Index?)",
                      e->shown);
            return -1;
        }
    }
    return 0;
}
