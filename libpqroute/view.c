/*
 * The views: per-cluster topology snapshots, and the set of them a router holds. This file owns
 * struct pqri_views and struct pqri_view (view_int.h, shared with the other files of the part):
 * building and destroying them as data, publishing or setting a snapshot, their settings and
 * counters. It is the part's lowest layer: it never waits and calls neither fetch.c nor
 * refresher.c; reading the snapshot a connect uses, which may start and wait for the refresher, is
 * refresher.c's.
 *
 * Readers take a reference to the current snapshot under a short mutex that is never held across
 * I/O; the refresher (refresher.c) publishes a new one atomically. No I/O is done under vs->lock:
 * log lines are written after it is released.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "view.h"
#include "view_int.h"
#include "source.h"

void pqri_views_init_sync(struct pqri_views *vs)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&vs->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&vs->cond, &ca);
    pthread_condattr_destroy(&ca);
}

static void log_view(const struct pqri_view *v, const struct pqr_topology *t)
{
    if (pqri_log_on(PQRI_LOG_INFO))
        PQRI_INFO("cluster %s: view from %s: leader %s, %zu members, timeline %ld", v->conf->name,
                  t->source ? t->source : "?", t->leader >= 0 ? t->m[t->leader].name : "(none)",
                  t->n, t->max_tl);
    for (size_t i = 0; i < t->n; i++)
        if (!t->m[i].addr[0])
            PQRI_WARN("cluster %s: member %s (host \"%.80s\") is not used: unresolvable or outside "
                      "PQROUTE_ALLOW",
                      v->conf->name, t->m[i].name, t->m[i].host);
}

void pqri_view_publish(struct pqri_view *v, struct pqr_topology *t)
{
    struct pqri_views *vs = v->vs;
    struct pqr_topology *old = NULL;
    bool changed = false;

    pthread_mutex_lock(&vs->lock);
    if (!v->current || t->mono_ms > v->current->mono_ms ||
        (t->seq > v->current->seq && t->mono_ms == v->current->mono_ms)) {
        old = v->current;
        v->current = pqri_topo_ref(t);
        if (!old || old->gen != t->gen) {
            v->nfailures = 0; /* a changed view forgives members that failed under the old one */
            changed = true;
        }
    }
    pthread_cond_broadcast(&vs->cond);
    pthread_mutex_unlock(&vs->lock);
    /* t is immutable and referenced by the caller: written with no lock held, so a blocked
     * stderr can stall this thread but never a connect. */
    if (changed)
        log_view(v, t);
    pqri_topo_unref(old);
}

struct pqri_views *pqri_views_build(const struct pqr_settings *s, char *err, size_t errlen)
{
    struct pqri_views *vs;

    if (!(vs = calloc(1, sizeof *vs)) || pqri_settings_copy(&vs->s, s) < 0 ||
        !(vs->clusters = calloc(s->nclusters ? s->nclusters : 1, sizeof *vs->clusters))) {
        if (vs)
            pqri_settings_clear(&vs->s);
        free(vs);
        pqri_errf(err, errlen, "out of memory");
        return NULL;
    }
    vs->nclusters = vs->s.nclusters;
    /* Seeds the RO rotation: differs between processes started in a row (pids alone do not). */
    uint64_t seed = (uint64_t)getpid() << 32 ^ (uint64_t)pqri_mono_ms() ^ (uint64_t)(uintptr_t)vs;
    seed ^= seed >> 33;
    seed *= 0xff51afd7ed558ccdULL;
    seed ^= seed >> 33;
    vs->spread = (unsigned)seed;
    pqri_views_init_sync(vs);
    if (pqri_cachedir_open(&vs->dir, &vs->s) == 0)
        pqri_stats_init(&vs->other_stats, &vs->dir, "other");
    for (size_t i = 0; i < vs->nclusters; i++) {
        struct pqri_view *v = &vs->clusters[i];
        v->vs = vs;
        v->conf = &vs->s.clusters[i];
        pqri_cache_init(&v->cache, &vs->dir, v->conf->key);
        v->rest_next = pqri_views_spread(vs);
        if (pqri_cachedir_fd(&vs->dir) >= 0)
            pqri_stats_init(&v->stats, &vs->dir, v->conf->key);
    }
    return vs;
}

void pqri_views_destroy(struct pqri_views *vs)
{
    for (size_t i = 0; i < vs->nclusters; i++) {
        pqri_topo_unref(vs->clusters[i].current);
        pqri_cache_unlock(&vs->clusters[i].cache);
        pqri_source_close(vs->clusters[i].src);
    }
    pqri_cachedir_close(&vs->dir);
    free(vs->clusters);
    pqri_settings_clear(&vs->s);
    pthread_mutex_destroy(&vs->lock);
    pthread_cond_destroy(&vs->cond);
    free(vs);
}

const struct pqr_settings *pqri_views_settings(const struct pqri_views *vs)
{
    return &vs->s;
}

size_t pqri_views_count(const struct pqri_views *vs)
{
    return vs->nclusters;
}

struct pqri_view *pqri_views_at(struct pqri_views *vs, size_t i)
{
    return i < vs->nclusters ? &vs->clusters[i] : NULL;
}

struct pqri_view *pqri_views_named(struct pqri_views *vs, const char *name)
{
    for (size_t i = 0; i < vs->nclusters; i++)
        if (!name || strcmp(vs->clusters[i].conf->name, name) == 0)
            return &vs->clusters[i];
    return NULL;
}

struct pqri_view *pqri_views_door(struct pqri_views *vs, const char *host, long port, bool *ro_door)
{
    for (size_t i = 0; i < vs->nclusters; i++) {
        const struct pqri_cluster_conf *cc = vs->clusters[i].conf;
        if (cc->rw_host && strcasecmp(cc->rw_host, host) == 0 && cc->rw_port == port) {
            *ro_door = false;
            return &vs->clusters[i];
        }
        if (cc->ro_host && strcasecmp(cc->ro_host, host) == 0 && cc->ro_port == port) {
            *ro_door = true;
            return &vs->clusters[i];
        }
    }
    return NULL;
}

unsigned pqri_views_spread(struct pqri_views *vs)
{
    return __atomic_fetch_add(&vs->spread, 1, __ATOMIC_RELAXED);
}

void pqri_views_stat_other(struct pqri_views *vs, enum pqri_stat which)
{
    pqri_stat(&vs->other_stats, which);
}

int pqri_views_stats_other(struct pqri_views *vs, uint64_t out[PQRI_STAT_COUNT])
{
    return pqri_stats_read(&vs->other_stats, out);
}

const struct pqri_cluster_conf *pqri_view_conf(const struct pqri_view *v)
{
    return v->conf;
}

struct pqri_views *pqri_view_views(const struct pqri_view *v)
{
    return v->vs;
}

void pqri_view_set(struct pqri_view *v, struct pqr_topology *t)
{
    struct pqr_topology *old;

    pthread_mutex_lock(&v->vs->lock);
    old = v->current;
    v->current = pqri_topo_ref(t);
    v->nfailures = 0;
    pthread_mutex_unlock(&v->vs->lock);
    pqri_topo_unref(old);
}

void pqri_view_stat(struct pqri_view *v, enum pqri_stat which)
{
    pqri_stat(&v->stats, which);
}

int pqri_view_stats(struct pqri_view *v, uint64_t out[PQRI_STAT_COUNT])
{
    return pqri_stats_read(&v->stats, out);
}
