/*
 * The memory of failures under a cluster's current view: members that failed or were unreachable
 * (the host's other processes share the unreachable ones, hostcache.c), the front door that failed
 * with them, and the panic when every member answered and none would lead. A changed view forgives
 * the members (view.c empties the list when it publishes one).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "failures.h"
#include "view_int.h"

/* Called with vs->lock held: f replaces what was known of its member, else takes a free slot, else
 * the oldest one. Only while f's view is the current one: a changed view forgives. */
static void remember(struct pqri_view *v, const struct pqri_failure *f)
{
    size_t j, oldest = 0;

    if (!v->current || v->current->gen != f->gen)
        return;
    for (j = 0; j < v->nfailures; j++) {
        if (strcmp(v->failures[j].addr, f->addr) == 0 && v->failures[j].port == f->port)
            break;
        if (v->failures[j].at_ms < v->failures[oldest].at_ms)
            oldest = j;
    }
    if (j == v->nfailures) {
        if (v->nfailures < PQRI_MAX_FAILURES)
            v->nfailures++;
        else
            j = oldest;
    }
    v->failures[j] = *f;
}

void pqri_view_note_failures(struct pqri_view *v, uint64_t gen, const struct pqri_candidate *cands,
                             size_t n)
{
    struct pqri_failure f = {.gen = gen, .at_ms = pqri_mono_ms()};

    pthread_mutex_lock(&v->vs->lock);
    for (size_t i = 0; i < n; i++) {
        snprintf(f.addr, sizeof f.addr, "%s", cands[i].addr);
        f.port = cands[i].port;
        remember(v, &f);
    }
    pthread_mutex_unlock(&v->vs->lock);
}

size_t pqri_view_failures(struct pqri_view *v, struct pqri_failure *out, size_t max)
{
    long long now = pqri_mono_ms(), stale = v->vs->s.stale_ms;
    size_t n = 0, nd;

    pthread_mutex_lock(&v->vs->lock);
    for (size_t i = 0; i < v->nfailures && n < max; i++)
        if (now - v->failures[i].at_ms <= stale)
            out[n++] = v->failures[i];
    pthread_mutex_unlock(&v->vs->lock);
    /* What other processes on this host found unreachable (the host cache). */
    nd = pqri_cache_read_down(&v->cache, out + n, max - n, stale);
    for (size_t i = n; i < n + nd; i++)
        out[i].at_ms = now;
    return n + nd;
}

void pqri_view_note_down(struct pqri_view *v, uint64_t gen, const struct pqri_candidate *c,
                         bool silent, struct pqri_failure *share_later)
{
    struct pqri_failure f = {
        .port = c->port, .gen = gen, .at_ms = pqri_mono_ms(), .down = true, .silent = silent};

    snprintf(f.addr, sizeof f.addr, "%s", c->addr);
    pthread_mutex_lock(&v->vs->lock);
    remember(v, &f);
    pthread_mutex_unlock(&v->vs->lock);
    if (share_later)
        *share_later = f;
    else
        pqri_view_share_down(v, &f);
}

void pqri_view_share_down(struct pqri_view *v, const struct pqri_failure *f)
{
    pqri_cache_note_down(&v->cache, f, v->vs->s.stale_ms);
}

void pqri_view_panic(struct pqri_view *v, uint64_t gen)
{
    pthread_mutex_lock(&v->vs->lock);
    v->panic_until = pqri_mono_ms() + v->vs->s.stale_ms;
    v->panic_gen = gen;
    v->want_after = pqri_mono_ms(); /* and a fetch right now */
    pthread_cond_broadcast(&v->vs->cond);
    pthread_mutex_unlock(&v->vs->lock);
    pqri_stat(&v->stats, PQRI_STAT_PANIC_REFRESHES);
}

/* While a connect waits for a willing leader, the refresher asks every 100 ms. */
bool pqri_view_panicking(const struct pqri_view *v)
{
    return v->panic_until > pqri_mono_ms() &&
        !(v->current && v->current->gen != v->panic_gen && pqri_topo_leader_running(v->current));
}

struct pqr_topology *pqri_view_await_leader(struct pqri_view *v, uint64_t gen, int wait_ms)
{
    struct pqri_views *vs = v->vs;
    struct pqr_topology *t = NULL;
    struct timespec ts;

    pthread_mutex_lock(&vs->lock);
    deadline_ts(CLOCK_MONOTONIC, &ts, wait_ms);
    while (!(v->current && v->current->gen != gen && pqri_topo_leader_running(v->current)) &&
           !stopping(vs))
        if (pthread_cond_timedwait(&vs->cond, &vs->lock, &ts) == ETIMEDOUT)
            break;
    if (v->current && v->current->gen != gen && pqri_topo_leader_running(v->current) &&
        fresh(vs, v->current))
        t = pqri_topo_ref(v->current);
    pthread_mutex_unlock(&vs->lock);
    return t;
}

void pqri_view_door_failed(struct pqri_view *v)
{
    __atomic_store_n(&v->door_failed_mono, pqri_mono_ms(), __ATOMIC_RELAXED);
}

void pqri_view_door_answered(struct pqri_view *v)
{
    __atomic_store_n(&v->door_failed_mono, 0, __ATOMIC_RELAXED);
}

bool pqri_view_door_resting(struct pqri_view *v)
{
    long long at = __atomic_load_n(&v->door_failed_mono, __ATOMIC_RELAXED);
    return at && pqri_mono_ms() - at < v->vs->s.stale_ms;
}
