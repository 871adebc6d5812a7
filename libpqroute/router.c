/*
 * The router: per-cluster topology snapshots and the one refresher thread that keeps them fresh.
 *
 * Readers take a reference to the current snapshot under a short mutex that is never held across
 * I/O; the refresher publishes a new one atomically. Blocking connects that find no fresh snapshot
 * wake the refresher and wait for it with a bound; non-blocking ones only wake it. So the fetch
 * logic lives in one place and an application thread never does REST I/O itself.
 *
 * Global locks (all taken by the fork prepare handler, in this order):
 *   routers_lock   guards the list of live routers
 *   router->lock   guards that router's cluster state and refresher control fields
 *   pqr__dns_lock  guards the name look-ups in flight and their answers (resolve.c)
 * No I/O is done under any of them: log lines are written after the lock is released.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pqr_private.h"

#define MIN_WAIT_MS 10
#define EXIT_JOIN_MS 500

static pthread_mutex_t routers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pqr_router *routers;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
    pthread_mutex_lock(&routers_lock);
    for (struct pqr_router *r = routers; r; r = r->next_router)
        pthread_mutex_lock(&r->lock);
    pthread_mutex_lock(&pqr__dns_lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&pqr__dns_lock);
    for (struct pqr_router *r = routers; r; r = r->next_router)
        pthread_mutex_unlock(&r->lock);
    pthread_mutex_unlock(&routers_lock);
}

static void init_sync(struct pqr_router *r)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
}

/* The refresher does not exist in the child: forget it, so the child's first routed connect starts
 * its own. Snapshots the child inherited stay valid until they are stale. Nothing is closed: a lock
 * file the parent's refresher had open is the parent's business (its lock is not inherited). */
static void atfork_child(void)
{
    for (struct pqr_router *r = routers; r; r = r->next_router) {
        init_sync(r);
        r->thread_running = false;
        __atomic_store_n(&r->stop, 0, __ATOMIC_RELAXED);
        for (size_t i = 0; i < r->nclusters; i++)
            r->clusters[i].cache.lock_fd = -1;
    }
    pqr__dns_atfork_child();
    pthread_mutex_init(&routers_lock, NULL);
}

static void deadline_ts(clockid_t clock, struct timespec *ts, long long ms)
{
    clock_gettime(clock, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L)
        ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

static void stop_thread(struct pqr_router *r, int join_ms)
{
    struct timespec ts;

    if (!r->thread_running)
        return;
    __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&r->cond);
    if (join_ms < 0) {
        pthread_join(r->thread, NULL);
    } else {
        deadline_ts(CLOCK_REALTIME, &ts, join_ms); /* pthread_timedjoin_np's clock */
        if (pthread_timedjoin_np(r->thread, NULL, &ts) != 0)
            return; /* it dies with the process */
    }
    r->thread_running = false;
}

/* Registered right after curl_global_init(), so it runs before the TLS library's own exit
 * cleanup: the refresher must not be inside a TLS handshake when that runs. */
static void at_exit(void)
{
    if (pthread_mutex_trylock(&routers_lock) != 0)
        return;
    for (struct pqr_router *r = routers; r; r = r->next_router)
        stop_thread(r, EXIT_JOIN_MS);
    pthread_mutex_unlock(&routers_lock);
}

static void global_init(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static void register_exit(void)
{
    atexit(at_exit);
}

void pqr__register_exit(void)
{
    pthread_once(&exit_once, register_exit);
}

static bool stopping(const struct pqr_router *r)
{
    return __atomic_load_n(&r->stop, __ATOMIC_ACQUIRE);
}

static long long age_ms(const struct pqr_topology *t)
{
    return pqr__mono_ms() - t->mono_ms;
}

static bool fresh(const struct pqr_router *r, const struct pqr_topology *t)
{
    return t && age_ms(t) <= r->s.stale_ms;
}

static bool sharing(struct pqr_router *r)
{
    return pqr__cachedir_fd(&r->dir) >= 0;
}


static void log_view(const struct pqr_cluster *c, const struct pqr_topology *t)
{
    if (pqr__log_on(PQR_LOG_INFO))
        PQR_INFO("cluster %s: view from %s: leader %s, %zu members, timeline %ld", c->conf->name,
                 t->source ? t->source : "?", t->leader >= 0 ? t->m[t->leader].name : "(none)",
                 t->n, t->max_tl);
    for (size_t i = 0; i < t->n; i++)
        if (!t->m[i].addr[0])
            PQR_WARN("cluster %s: member %s (host \"%.80s\") is not used: unresolvable or outside "
                     "PQROUTE_ALLOW",
                     c->conf->name, t->m[i].name, t->m[i].host);
}

void pqr__router_publish(struct pqr_router *r, struct pqr_cluster *c, struct pqr_topology *t)
{
    struct pqr_topology *old = NULL;
    bool changed = false;

    pthread_mutex_lock(&r->lock);
    if (!c->current || t->mono_ms > c->current->mono_ms ||
        (t->seq > c->current->seq && t->mono_ms == c->current->mono_ms)) {
        old = c->current;
        c->current = pqr__topo_ref(t);
        if (!old || old->gen != t->gen) {
            c->nfailures = 0; /* a changed view forgives members that failed under the old one */
            changed = true;
        }
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    /* t is immutable and referenced by the caller: written with no lock held, so a blocked
     * stderr can stall this thread but never a connect. */
    if (changed)
        log_view(c, t);
    pqr__topo_unref(old);
}

/* Seeds plus the REST endpoints members advertise, so a node added later is found. */
static size_t endpoints(struct pqr_cluster *c, const struct pqr_topology *t, char **urls)
{
    size_t n = 0;

    for (size_t i = 0; i < c->conf->nseeds && n < PQR_MAX_ENDPOINTS; i++)
        urls[n++] = strdup(c->conf->seeds[i]);
    for (size_t i = 0; t && i < t->n && n < PQR_MAX_ENDPOINTS; i++) {
        char *b = t->m[i].api_url ? pqr__api_base(t->m[i].api_url) : NULL;
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

static bool usable_file(const struct pqr_router *r, const struct pqr_topology *ft, long long want)
{
    return ft && ft->mono_ms > want && age_ms(ft) < r->s.refresh_ms;
}

/* Ask Patroni (under the shared lock, when the caller holds it): the view before name look-ups. */
static struct pqr_topology *fetch(struct pqr_router *r, struct pqr_cluster *c, char *err,
                                  size_t errlen)
{
    char *urls[PQR_MAX_ENDPOINTS];
    struct pqr_topology *cur, *t;
    size_t n;

    pthread_mutex_lock(&r->lock);
    cur = pqr__topo_ref(c->current);
    pthread_mutex_unlock(&r->lock);
    n = endpoints(c, cur, urls);
    pqr__topo_unref(cur);
    struct pqr_fetch_opts o = {&r->s, c->conf, (const char *const *)urls, n, &r->stop};
    t = pqr__patroni_fetch(&o, err, errlen);
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    return t;
}

/* A fetch's outcome, with no lock held: names resolved, shared (seq: the file's next sequence
 * number; 0: not shared) and published. Takes t's reference. */
static void fetched(struct pqr_router *r, struct pqr_cluster *c, struct pqr_topology *t,
                    const char *err, uint64_t seq)
{
    pthread_mutex_lock(&r->lock);
    bool was_failing = c->last_fetch_failed;
    c->last_fetch_failed = !t;
    pthread_mutex_unlock(&r->lock);
    pqr__stat(&c->stats, t ? PQR_STAT_REFRESH_OK : PQR_STAT_REFRESH_FAILED);
    if (!t) {
        if (!was_failing && !stopping(r))
            PQR_WARN("cluster %s: no usable answer from Patroni (%s); using the front door once "
                     "the cached view is older than %d ms",
                     c->conf->name, err, r->s.stale_ms);
        if (seq)
            pqr__cache_mark_failed(&c->cache);
        return;
    }
    if (was_failing)
        PQR_INFO("cluster %s: Patroni answers again (%s)", c->conf->name, t->source);
    pqr__topo_complete(t, &r->s, c->conf);
    t->seq = seq;
    if (seq && pqr__cache_write(&c->cache, t) != 0)
        PQR_DEBUG("cluster %s: could not write the shared cache file", c->conf->name);
    pqr__router_publish(r, c, t);
    pqr__topo_unref(t);
}

/* One refresh of one cluster, without the router lock: the shared file if another process fetched
 * recently enough, else a fetch by whichever process takes the lock first. */
static void refresh_cluster(struct pqr_router *r, struct pqr_cluster *c, long long want)
{
    struct pqr_topology *ft, *t;
    uint64_t seen = 0, seq;
    long long deadline;
    char err[1024];

    if (!sharing(r)) {
        t = fetch(r, c, err, sizeof err);
        fetched(r, c, t, err, 0);
        return;
    }
    ft = pqr__cache_read(&c->cache, &r->s, c->conf);
    if (usable_file(r, ft, want)) {
        pqr__router_publish(r, c, ft);
        pqr__topo_unref(ft);
        return;
    }
    if (ft)
        seen = ft->seq;
    pqr__topo_unref(ft);
    int locked = pqr__cache_trylock(&c->cache);
    PQR_DEBUG("cluster %s: shared cache %s, %s", c->conf->name, seen ? "too old" : "absent",
              locked == 1 ? "refreshing it" : locked == 0 ? "another process refreshes it" : "cannot lock it");
    switch (locked) {
    case 1:
        ft = pqr__cache_read(&c->cache, &r->s, c->conf);
        if (usable_file(r, ft, want)) {
            pqr__cache_unlock(&c->cache);
            pqr__router_publish(r, c, ft);
            pqr__topo_unref(ft);
            return;
        }
        /* Newer is decided by this sequence number, not by the writers' clocks. */
        seq = (ft && ft->seq > seen ? ft->seq : seen) + 1;
        pqr__topo_unref(ft);
        t = fetch(r, c, err, sizeof err);
        /* The lock says "one process asks Patroni"; name look-ups and the write come after it. */
        pqr__cache_unlock(&c->cache);
        fetched(r, c, t, err, seq);
        return;
    case 0: /* another process is fetching: take its answer */
        deadline = pqr__mono_ms() + pqr__rest_budget_ms(&r->s);
        while (pqr__mono_ms() < deadline && !stopping(r)) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
            ft = pqr__cache_read(&c->cache, &r->s, c->conf);
            if (ft && ft->seq > seen && ft->mono_ms > want) {
                pqr__router_publish(r, c, ft);
                pqr__topo_unref(ft);
                return;
            }
            pqr__topo_unref(ft);
        }
        return;
    default:
        t = fetch(r, c, err, sizeof err);
        fetched(r, c, t, err, 0);
    }
}

/* Young enough to use without asking Patroni: someone refreshed it within two intervals. */
static bool recent(const struct pqr_router *r, const struct pqr_topology *t)
{
    return t && age_ms(t) < 2LL * r->s.refresh_ms;
}

struct cluster_timer {
    long long last_start; /* when the last attempt started (monotonic) */
    long long next_mono;     /* when the next regular attempt is due */
};

static void *refresher_main(void *arg)
{
    struct pqr_router *r = arg;
    struct cluster_timer *tm = calloc(r->nclusters, sizeof *tm);

    if (!tm)
        return NULL;
    pthread_mutex_lock(&r->lock);
    /* A view in hand that is recent (the shared file, usually) needs no fetch for another interval:
     * a short-lived process (psql -c) then never fetches, and never loads libcurl. */
    for (size_t i = 0; i < r->nclusters; i++)
        if (recent(r, r->clusters[i].current)) {
            tm[i].next_mono = pqr__mono_ms() + r->s.refresh_ms;
            tm[i].last_start = pqr__mono_ms();
        }
    while (!stopping(r)) {
        long long now = pqr__mono_ms(), wait = r->s.refresh_ms;
        for (size_t i = 0; i < r->nclusters && !stopping(r); i++) {
            struct pqr_cluster *c = &r->clusters[i];
            long long want = c->want_after;
            if (now >= tm[i].next_mono || want >= tm[i].last_start) {
                tm[i].last_start = pqr__mono_ms();
                pthread_mutex_unlock(&r->lock);
                refresh_cluster(r, c, want);
                pthread_mutex_lock(&r->lock);
                now = pqr__mono_ms();
                c->done++;
                if (c->last_fetch_failed)
                    c->failed_at_mono = now;
                pthread_cond_broadcast(&r->cond);
                tm[i].next_mono = now + r->s.refresh_ms;
            }
            if (tm[i].next_mono - now < wait)
                wait = tm[i].next_mono - now;
        }
        if (stopping(r))
            break;
        /* A request that arrived while we were fetching is served at once. */
        bool pending = false;
        for (size_t i = 0; i < r->nclusters; i++)
            pending = pending || r->clusters[i].want_after >= tm[i].last_start;
        if (!pending) {
            struct timespec ts;
            deadline_ts(CLOCK_MONOTONIC, &ts, wait < MIN_WAIT_MS ? MIN_WAIT_MS : wait);
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
    }
    pthread_mutex_unlock(&r->lock);
    free(tm);
    return NULL;
}

/* Called with r->lock held; returns pthread_create's error, for the caller to report once the lock
 * is released. */
static int ensure_thread(struct pqr_router *r)
{
    sigset_t all, old;
    int rc;

    if (r->thread_running || stopping(r))
        return 0;
    /* Before the thread exists: an exit() from here on stops it before libraries clean up. */
    pqr__register_exit();
    /* The thread must never run the application's signal handlers. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&r->thread, NULL, refresher_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        r->thread_running = true;
    return rc;
}

static void thread_failed(int rc)
{
    if (rc)
        PQR_WARN("cannot start the refresher thread: %s; connections go to the front door",
                 strerror(rc));
}

struct pqr_topology *pqr__router_refresh(struct pqr_router *r, struct pqr_cluster *c,
                                         long long after_mono, int wait_ms)
{
    struct pqr_topology *t = NULL;
    struct timespec ts;
    int terr;

    pthread_mutex_lock(&r->lock);
    terr = ensure_thread(r);
    if (after_mono > c->want_after)
        c->want_after = after_mono;
    pthread_cond_broadcast(&r->cond);
    if (wait_ms > 0 && r->thread_running) {
        /* Until a view newer than after_mono arrives, or an attempt that started after this request
         * ends without one: no point waiting out the timeout when every endpoint refused. */
        unsigned long target = c->done + 1;
        deadline_ts(CLOCK_MONOTONIC, &ts, wait_ms);
        while (!(c->current && c->current->mono_ms > after_mono) && c->done < target && !stopping(r))
            if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT)
                break;
    }
    if (fresh(r, c->current))
        t = pqr__topo_ref(c->current);
    pthread_mutex_unlock(&r->lock);
    thread_failed(terr);
    return t;
}

/* Patroni just failed to answer: going to the front door at once beats another wait. */
static long long failure_window(const struct pqr_router *r)
{
    return 2LL * r->s.refresh_ms + r->s.rest_timeout_ms;
}

struct pqr_topology *pqr__router_snapshot(struct pqr_router *r, struct pqr_cluster *c, int wait_ms)
{
    struct pqr_topology *t = NULL, *ft;
    bool failed;
    int terr;

    pthread_mutex_lock(&r->lock);
    terr = ensure_thread(r);
    if (recent(r, c->current))
        t = pqr__topo_ref(c->current);
    failed = c->last_fetch_failed && pqr__mono_ms() - c->failed_at_mono < failure_window(r);
    pthread_mutex_unlock(&r->lock);
    thread_failed(terr);
    if (t)
        return t;
    /* A fresh process: another one on this host may have fetched recently. An older file is kept
     * as the fallback view while we ask Patroni ourselves. */
    if ((ft = pqr__cache_read(&c->cache, &r->s, c->conf))) {
        if (fresh(r, ft))
            pqr__router_publish(r, c, ft);
        if (recent(r, ft)) {
            pqr__stat(&c->stats, PQR_STAT_SHARED_CACHE_USED);
            return ft;
        }
        pqr__topo_unref(ft);
        failed = failed || pqr__cache_failed_recently(&c->cache, (int)failure_window(r));
    }
    return pqr__router_refresh(r, c, pqr__mono_ms() - 2LL * r->s.refresh_ms, failed ? 0 : wait_ms);
}

void pqr__router_note_failures(struct pqr_router *r, struct pqr_cluster *c, uint64_t gen,
                               const struct pqr_candidate *cands, size_t n)
{
    long long now = pqr__mono_ms();

    pthread_mutex_lock(&r->lock);
    if (c->current && c->current->gen == gen) {
        for (size_t i = 0; i < n; i++) {
            size_t j, oldest = 0;
            for (j = 0; j < c->nfailures; j++) {
                if (strcmp(c->failures[j].addr, cands[i].addr) == 0 &&
                    c->failures[j].port == cands[i].port)
                    break;
                if (c->failures[j].at_ms < c->failures[oldest].at_ms)
                    oldest = j;
            }
            if (j == c->nfailures) {
                if (c->nfailures < PQR_MAX_FAILURES)
                    c->nfailures++;
                else
                    j = oldest;
            }
            struct pqr_failure *f = &c->failures[j];
            snprintf(f->addr, sizeof f->addr, "%s", cands[i].addr);
            f->port = cands[i].port;
            f->gen = gen;
            f->at_ms = now;
        }
    }
    pthread_mutex_unlock(&r->lock);
}

struct pqr_router *pqr__router_new(const struct pqr_settings *s, const struct pqr_libpq *pq,
                                   char *err, size_t errlen)
{
    struct pqr_router *r;

    pthread_once(&global_once, global_init);
    if (!(r = calloc(1, sizeof *r)) || pqr__settings_copy(&r->s, s) < 0 ||
        !(r->clusters = calloc(s->nclusters, sizeof *r->clusters))) {
        if (r)
            pqr__settings_clear(&r->s);
        free(r);
        pqr__errf(err, errlen, "out of memory");
        return NULL;
    }
    r->pq = pq ? *pq : pqr__direct_libpq;
    r->nclusters = r->s.nclusters;
    /* Seeds the RO rotation: differs between processes started in a row (pids alone do not). */
    uint64_t seed = (uint64_t)getpid() << 32 ^ (uint64_t)pqr__mono_ms() ^ (uint64_t)(uintptr_t)r;
    seed ^= seed >> 33;
    seed *= 0xff51afd7ed558ccdULL;
    seed ^= seed >> 33;
    r->spread = (unsigned)seed;
    init_sync(r);
    if (pqr__cachedir_open(&r->dir, &r->s) == 0)
        pqr__stats_init(&r->other_stats, &r->dir, "other");
    for (size_t i = 0; i < r->nclusters; i++) {
        struct pqr_cluster *c = &r->clusters[i];
        c->conf = &r->s.clusters[i];
        pqr__cache_init(&c->cache, &r->dir, c->conf->key);
        if (r->dir.fd >= 0)
            pqr__stats_init(&c->stats, &r->dir, c->conf->key);
    }
    pthread_mutex_lock(&routers_lock);
    r->next_router = routers;
    routers = r;
    pthread_mutex_unlock(&routers_lock);
    return r;
}

void pqr__router_free(struct pqr_router *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&routers_lock);
    for (struct pqr_router **p = &routers; *p; p = &(*p)->next_router)
        if (*p == r) {
            *p = r->next_router;
            break;
        }
    pthread_mutex_unlock(&routers_lock);
    stop_thread(r, -1);
    for (size_t i = 0; i < r->nclusters; i++) {
        pqr__topo_unref(r->clusters[i].current);
        pqr__cache_unlock(&r->clusters[i].cache);
    }
    pqr__cachedir_close(&r->dir);
    free(r->clusters);
    pqr__settings_clear(&r->s);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}
