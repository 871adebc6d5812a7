/*
 * Where a cluster's views come from, one refresh at a time: the shared cache file when another
 * process of the host fetched recently enough, else a fetch by whichever process takes the file's
 * lock first — from the cluster's DCS client, with Patroni's REST API as the fallback, or from the
 * REST API alone — and the outcome: names resolved, shared, published.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fetch.h"
#include "view_int.h"
#include "patroni.h"
#include "source.h"

/* The host of an http(s)://host[:port] base, brackets of an IPv6 literal removed. */
static void url_host(const char *base, char *out, size_t len)
{
    const char *h = strstr(base, "://");
    size_t n;

    h = h ? h + 3 : base;
    if (h[0] == '[')
        h++, n = strcspn(h, "]");
    else
        n = strcspn(h, ":/");
    snprintf(out, len, "%.*s", (int)n, h);
}

/* An endpoint a member advertises is asked only where that member lives: its own host name or
 * address (which PQROUTE_ALLOW vetted), or an address PQROUTE_ALLOW names. Any one node writes its
 * own api_url: it must not send us, our credentials or our client certificate elsewhere. */
static bool advertised_ok(const struct pqri_views *vs, const struct pqri_member *m,
                          const char *base)
{
    char host[300];
    unsigned char buf[sizeof(struct in6_addr)];

    url_host(base, host, sizeof host);
    if ((m->host && strcasecmp(host, m->host) == 0 && m->addr[0]) ||
        (m->addr[0] && strcmp(host, m->addr) == 0))
        return true;
    return vs->s.nallow &&
        (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) &&
        pqri_cidr_allows(vs->s.allow, vs->s.nallow, host);
}

/* Seeds plus the REST endpoints members advertise, so a node added later is found. */
static size_t endpoints(struct pqri_view *v, const struct pqr_topology *t, char **urls)
{
    size_t n = 0;

    for (size_t i = 0; i < v->conf->nseeds && n < PQRI_MAX_ENDPOINTS; i++)
        if ((urls[n] = strdup(v->conf->seeds[i]))) /* out of memory: that seed not asked now */
            n++;
    for (size_t i = 0; t && i < t->n && n < PQRI_MAX_ENDPOINTS; i++) {
        char *b = t->m[i].api_url ? pqri_api_base(t->m[i].api_url) : NULL;
        if (b && !advertised_ok(v->vs, &t->m[i], b)) {
            PQRI_DEBUG(
                "cluster %s: member %s advertises a REST endpoint elsewhere than its own host "
                "(%.200s): not asked",
                v->conf->name, t->m[i].name, b);
            free(b);
            b = NULL;
        }
        bool dup = !b;
        for (size_t j = 0; b && j < n; j++)
            dup = dup || (urls[j] && strcasecmp(urls[j], b) == 0);
        if (dup)
            free(b);
        else
            urls[n++] = b;
    }
    return n;
}

/* The shared file, remembering which version was read (its stamp, taken before the read: a file
 * replaced in between is read again by the next connect), so that connects do not read it again. */
struct pqr_topology *pqri_view_read_shared(struct pqri_view *v)
{
    long long stamp = pqri_cache_stamp(&v->cache);
    struct pqr_topology *ft = pqri_cache_read(&v->cache, &v->vs->s, v->conf);

    __atomic_store_n(&v->file_stamp, stamp, __ATOMIC_RELAXED);
    return ft;
}

static bool usable_file(const struct pqri_views *vs, const struct pqr_topology *ft, long long want)
{
    return ft && ft->mono_ms > want && (age_ms(ft) < vs->s.refresh_ms || age_ms(ft) < ft->vouch_ms);
}

/* Ask Patroni's REST API (under the shared lock, when the caller holds it): the view before name
 * look-ups. With a DCS configured this is the fallback: one endpoint at a time, starting with a
 * different one each time — and in the agent, only that one (see pqri_view_fetch_rest). */
static struct pqr_topology *fetch_rest(struct pqri_views *vs, struct pqri_view *v, bool fallback,
                                       bool only_one, char *err, size_t errlen)
{
    char *urls[PQRI_MAX_ENDPOINTS], *order[PQRI_MAX_ENDPOINTS];
    struct pqr_topology *cur, *t;
    size_t n;

    pthread_mutex_lock(&vs->lock);
    cur = pqri_topo_ref(v->current);
    pthread_mutex_unlock(&vs->lock);
    n = endpoints(v, cur, urls);
    pqri_topo_unref(cur);
    if (n == 0) {
        pqri_errf(err, errlen, "no Patroni REST endpoint known");
        return NULL;
    }
    /* Each process (and each fallback) starts somewhere else, so that no node is everyone's first. */
    unsigned first = fallback ? v->rest_next++ : pqri_views_spread(vs);
    for (size_t i = 0; i < n; i++)
        order[i] = urls[(first + i) % n];
    struct pqri_fetch_opts o = {&vs->s,           v->conf,   (const char *const *)order,
                                only_one ? 1 : n, &vs->stop, fallback};
    t = pqri_patroni_fetch(&o, err, errlen);
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    return t;
}

static struct pqr_topology *fetch(struct pqri_views *vs, struct pqri_view *v, char *err,
                                  size_t errlen)
{
    char why[1024];
    struct pqr_topology *t;

    if (!v->conf->dcs.kind)
        return fetch_rest(vs, v, false, false, err, errlen);
    if (!pqri_view_source(v)) {
        pqri_errf(err, errlen, "out of memory");
        return NULL;
    }
    if ((t = pqri_source_read(v->src, &vs->stop, why, sizeof why))) {
        pqri_stat(&v->stats, PQRI_STAT_DCS_READS);
        if (v->dcs_failing)
            PQRI_INFO("cluster %s: the DCS answers again (%s)", v->conf->name, t->source);
        v->dcs_failing = false;
        return t;
    }
    if (stopping(vs))
        return NULL;
    if (!v->dcs_failing)
        PQRI_WARN("cluster %s: the DCS does not answer (%s); asking Patroni's REST API meanwhile",
                  v->conf->name, why);
    v->dcs_failing = true;
    pqri_stat(&v->stats, PQRI_STAT_REST_FALLBACKS);
    t = fetch_rest(vs, v, true, false, err, errlen);
    if (!t)
        pqri_errcat(err, errlen, why);
    return t;
}

void pqri_view_fetched(struct pqri_views *vs, struct pqri_view *v, struct pqr_topology *t,
                       const char *err, uint64_t seq)
{
    pthread_mutex_lock(&vs->lock);
    bool was_failing = v->last_fetch_failed;
    v->last_fetch_failed = !t;
    pthread_mutex_unlock(&vs->lock);
    pqri_stat(&v->stats, t ? PQRI_STAT_REFRESH_OK : PQRI_STAT_REFRESH_FAILED);
    if (!t) {
        if (!was_failing && !stopping(vs))
            PQRI_WARN("cluster %s: no usable answer from %s (%s); using the front door once "
                      "the cached view is older than %d ms",
                      v->conf->name, v->conf->dcs.kind ? "the DCS or Patroni" : "Patroni", err,
                      vs->s.stale_ms);
        if (seq)
            pqri_cache_mark_failed(&v->cache);
        return;
    }
    if (was_failing)
        PQRI_INFO("cluster %s: Patroni answers again (%s)", v->conf->name, t->source);
    pqri_topo_complete(t, &vs->s, v->conf);
    t->seq = seq;
    if (seq && pqri_cache_write(&v->cache, t) != 0)
        PQRI_DEBUG("cluster %s: could not write the shared cache file", v->conf->name);
    else if (seq) /* ours, and published below: no connect needs to read it */
        __atomic_store_n(&v->file_stamp, pqri_cache_stamp(&v->cache), __ATOMIC_RELAXED);
    pqri_view_publish(v, t);
    pqri_topo_unref(t);
}

/* One refresh of one cluster, without the router lock: the shared file if another process fetched
 * recently enough, else a fetch by whichever process takes the lock first. */
void pqri_view_refresh_once(struct pqri_views *vs, struct pqri_view *v, long long want)
{
    struct pqr_topology *ft, *t;
    uint64_t seen = 0, seq;
    long long deadline;
    char err[1024];

    if (!sharing(vs)) {
        t = fetch(vs, v, err, sizeof err);
        pqri_view_fetched(vs, v, t, err, 0);
        return;
    }
    ft = pqri_view_read_shared(v);
    if (usable_file(vs, ft, want)) {
        pqri_view_publish(v, ft);
        pqri_topo_unref(ft);
        return;
    }
    if (ft)
        seen = ft->seq;
    pqri_topo_unref(ft);
    int locked = pqri_cache_trylock(&v->cache);
    PQRI_DEBUG("cluster %s: shared cache %s, %s", v->conf->name, seen ? "too old" : "absent",
               locked == 1       ? "refreshing it"
                   : locked == 0 ? "another process refreshes it"
                                 : "cannot lock it");
    switch (locked) {
    case 1:
        ft = pqri_view_read_shared(v);
        if (usable_file(vs, ft, want)) {
            pqri_cache_unlock(&v->cache);
            pqri_view_publish(v, ft);
            pqri_topo_unref(ft);
            return;
        }
        /* Newer is decided by this sequence number, not by the writers' clocks. */
        seq = (ft && ft->seq > seen ? ft->seq : seen) + 1;
        pqri_topo_unref(ft);
        t = fetch(vs, v, err, sizeof err);
        /* The lock says "one process asks Patroni"; name look-ups and the write come after it. */
        pqri_cache_unlock(&v->cache);
        pqri_view_fetched(vs, v, t, err, seq);
        return;
    case 0: /* another process is fetching: take its answer */
        deadline = pqri_mono_ms() + pqri_rest_budget_ms(&vs->s);
        while (pqri_mono_ms() < deadline && !stopping(vs)) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
            ft = pqri_view_read_shared(v);
            if (ft && ft->seq > seen && ft->mono_ms > want) {
                pqri_view_publish(v, ft);
                pqri_topo_unref(ft);
                return;
            }
            pqri_topo_unref(ft);
        }
        /* The holder wrote nothing within a fetch's budget and reported no failure: it hangs (a
         * stopped agent). Never worse than without it: ask ourselves. */
        if (!stopping(vs) &&
            !pqri_cache_failed_recently(&v->cache, pqri_rest_budget_ms(&vs->s) * 2)) {
            PQRI_DEBUG("cluster %s: the process holding the shared cache wrote nothing for %d ms; "
                       "asking ourselves",
                       v->conf->name, pqri_rest_budget_ms(&vs->s));
            t = fetch(vs, v, err, sizeof err);
            pqri_view_fetched(vs, v, t, err, 0);
        }
        return;
    default:
        t = fetch(vs, v, err, sizeof err);
        pqri_view_fetched(vs, v, t, err, 0);
    }
}

struct pqri_source *pqri_view_source(struct pqri_view *v)
{
    if (!v->src)
        v->src = pqri_source_open(&v->vs->s, v->conf);
    return v->src;
}

struct pqr_topology *pqri_view_fetch_rest(struct pqri_view *v, bool dcs_down, char *err,
                                          size_t errlen)
{
    return fetch_rest(v->vs, v, dcs_down, dcs_down, err, errlen);
}
