/*
 * The views: per-cluster topology snapshots and the one refresher thread (per router) that keeps
 * them fresh, from Patroni or from the host cache when another process just asked; and the memory
 * of members that failed under the current view.
 *
 * Readers take a reference to the current snapshot under a short mutex that is never held across
 * I/O; the refresher publishes a new one atomically. Blocking connects that find no fresh snapshot
 * wake the refresher and wait for it with a bound; non-blocking ones wait less (or not). So the
 * fetch logic lives in one place and an application thread never does REST I/O itself.
 *
 * Global locks (all taken by the fork prepare handler, in this order):
 *   views_lock     guards the list of live view sets
 *   vs->lock       guards that set's cluster state and the refresher's control fields
 *   pqri_dns_lock  guards the name look-ups in flight and their answers (resolve.c)
 * No I/O is done under any of them: log lines are written after the lock is released.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "view.h"
#include "http.h"
#include "log.h"
#include "patroni.h"
#include "resolve.h"
#include "source.h"

#define MIN_WAIT_MS 10
#define PANIC_INTERVAL_MS 100

struct pqri_view {
    struct pqri_views *vs;
    const struct pqri_cluster_conf *conf;
    struct pqr_topology *current; /* guarded by vs->lock */
    struct pqri_cache_file cache;
    long long want_after;     /* a fetch newer than this (monotonic) was asked for */
    bool last_fetch_failed;
    long long failed_at_mono; /* when the last attempt ended without a view */
    unsigned long done;       /* finished refresh attempts; a waiter waits for the next one */
    long long door_failed_mono; /* a routed connect failed at every member and the front door */
    long long panic_until;      /* a connect found no willing leader: refresh fast until then */
    uint64_t panic_gen;         /* ... or until a view other than this one has a running leader */
    struct pqri_stats stats;    /* shared counters (hostcache.c) */
    struct pqri_failure failures[PQR_MAX_FAILURES];
    size_t nfailures;
    struct pqri_source *src;  /* the DCS client (refresher or agent thread only) */
    bool dcs_failing;         /* refresher only: the last DCS read failed */
    unsigned rest_next;       /* refresher only: the REST endpoint a DCS fallback asks first */
    long long file_stamp;     /* the shared file as last read by a connect (atomic) */
    uint64_t served_seq;      /* agent only: the last sequence number written */
};

struct pqri_views {
    struct pqr_settings s;
    struct pqri_view *clusters;
    size_t nclusters;
    pthread_mutex_t lock; /* guards cluster state and the refresher's control fields */
    pthread_cond_t cond;  /* published a snapshot / asked the refresher to work */
    pthread_t thread;
    bool thread_running;
    int stop;        /* atomic */
    unsigned spread; /* atomic */
    struct pqri_cache_dir dir;     /* the shared cache directory (fd -1: not sharing) */
    struct pqri_stats other_stats; /* connections that name no front door */
    struct pqri_views *next;       /* all view sets, for fork and exit handling */
};

static pthread_mutex_t views_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pqri_views *all_views;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
    pthread_mutex_lock(&views_lock);
    for (struct pqri_views *vs = all_views; vs; vs = vs->next)
        pthread_mutex_lock(&vs->lock);
    pthread_mutex_lock(&pqri_dns_lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&pqri_dns_lock);
    for (struct pqri_views *vs = all_views; vs; vs = vs->next)
        pthread_mutex_unlock(&vs->lock);
    pthread_mutex_unlock(&views_lock);
}

static void init_sync(struct pqri_views *vs)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&vs->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&vs->cond, &ca);
    pthread_condattr_destroy(&ca);
}

/* The refresher does not exist in the child: forget it, so the child's first routed connect starts
 * its own. Snapshots the child inherited stay valid until they are stale. Nothing is closed: a lock
 * file the parent's refresher had open is the parent's business (its lock is not inherited). */
static void atfork_child(void)
{
    for (struct pqri_views *vs = all_views; vs; vs = vs->next) {
        init_sync(vs);
        vs->thread_running = false;
        __atomic_store_n(&vs->stop, 0, __ATOMIC_RELAXED);
        for (size_t i = 0; i < vs->nclusters; i++)
            vs->clusters[i].cache.lock_fd = -1;
    }
    pqri_dns_atfork_child();
    pthread_mutex_init(&views_lock, NULL);
}

static void deadline_ts(clockid_t clock, struct timespec *ts, long long ms)
{
    clock_gettime(clock, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L)
        ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

static void stop_thread(struct pqri_views *vs, int join_ms)
{
    struct timespec ts;

    if (!vs->thread_running)
        return;
    __atomic_store_n(&vs->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&vs->cond);
    if (join_ms < 0) {
        pthread_join(vs->thread, NULL);
    } else {
        deadline_ts(CLOCK_REALTIME, &ts, join_ms); /* pthread_timedjoin_np's clock */
        if (pthread_timedjoin_np(vs->thread, NULL, &ts) != 0)
            return; /* it dies with the process */
    }
    vs->thread_running = false;
}

/* Registered before the first refresher starts, so that it runs before the exit cleanup of
 * whatever the refresher loads afterwards (libcurl, its TLS library). */
static void at_exit(void)
{
    if (pthread_mutex_trylock(&views_lock) != 0)
        return;
    /* A fetch in flight stops at its next poll slice; starting libcurl and its TLS library cannot
     * be interrupted, so an exit waits for it, at most the REST budget. */
    for (struct pqri_views *vs = all_views; vs; vs = vs->next)
        stop_thread(vs, pqri_rest_budget_ms(&vs->s));
    pthread_mutex_unlock(&views_lock);
}

static void global_init(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    pqri_json_clear_freed(); /* before any password or token reaches jansson */
}

static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static void register_exit(void)
{
    atexit(at_exit);
}



static bool stopping(const struct pqri_views *vs)
{
    return __atomic_load_n(&vs->stop, __ATOMIC_ACQUIRE);
}

static long long age_ms(const struct pqr_topology *t)
{
    return pqri_mono_ms() - t->mono_ms;
}

static bool fresh(const struct pqri_views *vs, const struct pqr_topology *t)
{
    return t && age_ms(t) <= vs->s.stale_ms;
}

static bool sharing(struct pqri_views *vs)
{
    return pqri_cachedir_fd(&vs->dir) >= 0;
}


static void log_view(const struct pqri_view *v, const struct pqr_topology *t)
{
    if (pqri_log_on(PQR_LOG_INFO))
        PQR_INFO("cluster %s: view from %s: leader %s, %zu members, timeline %ld", v->conf->name,
                 t->source ? t->source : "?", t->leader >= 0 ? t->m[t->leader].name : "(none)",
                 t->n, t->max_tl);
    for (size_t i = 0; i < t->n; i++)
        if (!t->m[i].addr[0])
            PQR_WARN("cluster %s: member %s (host \"%.80s\") is not used: unresolvable or outside "
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
static bool advertised_ok(const struct pqri_views *vs, const struct pqri_member *m, const char *base)
{
    char host[300];
    unsigned char buf[sizeof(struct in6_addr)];

    url_host(base, host, sizeof host);
    if ((m->host && strcasecmp(host, m->host) == 0 && m->addr[0]) || (m->addr[0] && strcmp(host, m->addr) == 0))
        return true;
    return vs->s.nallow && (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) &&
           pqri_cidr_allows(vs->s.allow, vs->s.nallow, host);
}

/* Seeds plus the REST endpoints members advertise, so a node added later is found. */
static size_t endpoints(struct pqri_view *v, const struct pqr_topology *t, char **urls)
{
    size_t n = 0;

    for (size_t i = 0; i < v->conf->nseeds && n < PQR_MAX_ENDPOINTS; i++)
        urls[n++] = strdup(v->conf->seeds[i]);
    for (size_t i = 0; t && i < t->n && n < PQR_MAX_ENDPOINTS; i++) {
        char *b = t->m[i].api_url ? pqri_api_base(t->m[i].api_url) : NULL;
        if (b && !advertised_ok(v->vs, &t->m[i], b)) {
            PQR_DEBUG("cluster %s: member %s advertises a REST endpoint elsewhere than its own host "
                      "(%.200s): not asked", v->conf->name, t->m[i].name, b);
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
static struct pqr_topology *read_shared(struct pqri_view *v)
{
    long long stamp = pqri_cache_stamp(&v->cache);
    struct pqr_topology *ft = pqri_cache_read(&v->cache, &v->vs->s, v->conf);

    __atomic_store_n(&v->file_stamp, stamp, __ATOMIC_RELAXED);
    return ft;
}

static bool usable_file(const struct pqri_views *vs, const struct pqr_topology *ft, long long want)
{
    return ft && ft->mono_ms > want && age_ms(ft) < vs->s.refresh_ms;
}

/* Ask Patroni's REST API (under the shared lock, when the caller holds it): the view before name
 * look-ups. With a DCS configured this is the fallback: one endpoint at a time, starting with a
 * different one each time. */
static struct pqr_topology *fetch_rest(struct pqri_views *vs, struct pqri_view *v, bool fallback,
                                       char *err, size_t errlen)
{
    char *urls[PQR_MAX_ENDPOINTS], *order[PQR_MAX_ENDPOINTS];
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
    struct pqri_fetch_opts o = {&vs->s, v->conf, (const char *const *)order, n, &vs->stop, fallback};
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
        return fetch_rest(vs, v, false, err, errlen);
    if (!pqri_view_source(v)) {
        pqri_errf(err, errlen, "out of memory");
        return NULL;
    }
    if ((t = pqri_source_read(v->src, &vs->stop, why, sizeof why))) {
        pqri_stat(&v->stats, PQR_STAT_DCS_READS);
        if (v->dcs_failing)
            PQR_INFO("cluster %s: the DCS answers again (%s)", v->conf->name, t->source);
        v->dcs_failing = false;
        return t;
    }
    if (stopping(vs))
        return NULL;
    if (!v->dcs_failing)
        PQR_WARN("cluster %s: the DCS does not answer (%s); asking Patroni's REST API meanwhile",
                 v->conf->name, why);
    v->dcs_failing = true;
    pqri_stat(&v->stats, PQR_STAT_REST_FALLBACKS);
    t = fetch_rest(vs, v, true, err, errlen);
    if (!t)
        pqri_errcat(err, errlen, why);
    return t;
}

/* A fetch's outcome, with no lock held: names resolved, shared (seq: the file's next sequence
 * number; 0: not shared) and published. Takes t's reference. */
static void fetched(struct pqri_views *vs, struct pqri_view *v, struct pqr_topology *t,
                    const char *err, uint64_t seq)
{
    pthread_mutex_lock(&vs->lock);
    bool was_failing = v->last_fetch_failed;
    v->last_fetch_failed = !t;
    pthread_mutex_unlock(&vs->lock);
    pqri_stat(&v->stats, t ? PQR_STAT_REFRESH_OK : PQR_STAT_REFRESH_FAILED);
    if (!t) {
        if (!was_failing && !stopping(vs))
            PQR_WARN("cluster %s: no usable answer from %s (%s); using the front door once "
                     "the cached view is older than %d ms",
                     v->conf->name, v->conf->dcs.kind ? "the DCS or Patroni" : "Patroni", err,
                     vs->s.stale_ms);
        if (seq)
            pqri_cache_mark_failed(&v->cache);
        return;
    }
    if (was_failing)
        PQR_INFO("cluster %s: Patroni answers again (%s)", v->conf->name, t->source);
    pqri_topo_complete(t, &vs->s, v->conf);
    t->seq = seq;
    if (seq && pqri_cache_write(&v->cache, t) != 0)
        PQR_DEBUG("cluster %s: could not write the shared cache file", v->conf->name);
    else if (seq) /* ours, and published below: no connect needs to read it */
        __atomic_store_n(&v->file_stamp, pqri_cache_stamp(&v->cache), __ATOMIC_RELAXED);
    pqri_view_publish(v, t);
    pqri_topo_unref(t);
}

/* One refresh of one cluster, without the router lock: the shared file if another process fetched
 * recently enough, else a fetch by whichever process takes the lock first. */
static void refresh_cluster(struct pqri_views *vs, struct pqri_view *v, long long want)
{
    struct pqr_topology *ft, *t;
    uint64_t seen = 0, seq;
    long long deadline;
    char err[1024];

    if (!sharing(vs)) {
        t = fetch(vs, v, err, sizeof err);
        fetched(vs, v, t, err, 0);
        return;
    }
    ft = read_shared(v);
    if (usable_file(vs, ft, want)) {
        pqri_view_publish(v, ft);
        pqri_topo_unref(ft);
        return;
    }
    if (ft)
        seen = ft->seq;
    pqri_topo_unref(ft);
    int locked = pqri_cache_trylock(&v->cache);
    PQR_DEBUG("cluster %s: shared cache %s, %s", v->conf->name, seen ? "too old" : "absent",
              locked == 1 ? "refreshing it" : locked == 0 ? "another process refreshes it" : "cannot lock it");
    switch (locked) {
    case 1:
        ft = read_shared(v);
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
        fetched(vs, v, t, err, seq);
        return;
    case 0: /* another process is fetching: take its answer */
        deadline = pqri_mono_ms() + pqri_rest_budget_ms(&vs->s);
        while (pqri_mono_ms() < deadline && !stopping(vs)) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
            ft = read_shared(v);
            if (ft && ft->seq > seen && ft->mono_ms > want) {
                pqri_view_publish(v, ft);
                pqri_topo_unref(ft);
                return;
            }
            pqri_topo_unref(ft);
        }
        /* The holder wrote nothing within a fetch's budget and reported no failure: it hangs (a
         * stopped agent). Never worse than without it: ask ourselves. */
        if (!stopping(vs) && !pqri_cache_failed_recently(&v->cache, pqri_rest_budget_ms(&vs->s) * 2)) {
            PQR_DEBUG("cluster %s: the process holding the shared cache wrote nothing for %d ms; "
                      "asking ourselves", v->conf->name, pqri_rest_budget_ms(&vs->s));
            t = fetch(vs, v, err, sizeof err);
            fetched(vs, v, t, err, 0);
        }
        return;
    default:
        t = fetch(vs, v, err, sizeof err);
        fetched(vs, v, t, err, 0);
    }
}

/* Young enough to use without asking Patroni: someone refreshed it within two intervals. */
static bool recent(const struct pqri_views *vs, const struct pqr_topology *t)
{
    return t && age_ms(t) < 2LL * vs->s.refresh_ms;
}

/* Called with vs->lock held: while a connect waits for a willing leader, ask every 100 ms. */
static bool panicking(const struct pqri_view *v)
{
    return v->panic_until > pqri_mono_ms() &&
           !(v->current && v->current->gen != v->panic_gen && pqri_topo_leader_running(v->current));
}

static long long interval(const struct pqri_views *vs, const struct pqri_view *v)
{
    return panicking(v) && vs->s.refresh_ms > PANIC_INTERVAL_MS ? PANIC_INTERVAL_MS : vs->s.refresh_ms;
}

struct cluster_timer {
    long long last_start; /* when the last attempt started (monotonic) */
    long long next_mono;     /* when the next regular attempt is due */
};

static void *refresher_main(void *arg)
{
    struct pqri_views *vs = arg;
    struct cluster_timer *tm = calloc(vs->nclusters, sizeof *tm);

    if (!tm)
        return NULL;
    pthread_mutex_lock(&vs->lock);
    /* A view in hand that is recent (the shared file, usually) needs no fetch for another interval:
     * a short-lived process (psql -c) then never fetches, and never loads libcurl. */
    for (size_t i = 0; i < vs->nclusters; i++)
        if (recent(vs, vs->clusters[i].current)) {
            tm[i].next_mono = pqri_mono_ms() + vs->s.refresh_ms;
            tm[i].last_start = pqri_mono_ms();
        }
    while (!stopping(vs)) {
        long long now = pqri_mono_ms(), wait = vs->s.refresh_ms;
        for (size_t i = 0; i < vs->nclusters && !stopping(vs); i++) {
            struct pqri_view *v = &vs->clusters[i];
            long long want = v->want_after;
            if (now >= tm[i].next_mono || want >= tm[i].last_start) {
                tm[i].last_start = pqri_mono_ms();
                pthread_mutex_unlock(&vs->lock);
                refresh_cluster(vs, v, want);
                pthread_mutex_lock(&vs->lock);
                now = pqri_mono_ms();
                v->done++;
                if (v->last_fetch_failed)
                    v->failed_at_mono = now;
                pthread_cond_broadcast(&vs->cond);
                tm[i].next_mono = now + pqri_jitter_ms(interval(vs, v), 10);
            }
            if (tm[i].next_mono - now < wait)
                wait = tm[i].next_mono - now;
        }
        if (stopping(vs))
            break;
        /* A request that arrived while we were fetching is served at once. */
        bool pending = false;
        for (size_t i = 0; i < vs->nclusters; i++)
            pending = pending || vs->clusters[i].want_after >= tm[i].last_start;
        if (!pending) {
            struct timespec ts;
            deadline_ts(CLOCK_MONOTONIC, &ts, wait < MIN_WAIT_MS ? MIN_WAIT_MS : wait);
            pthread_cond_timedwait(&vs->cond, &vs->lock, &ts);
        }
    }
    pthread_mutex_unlock(&vs->lock);
    free(tm);
    pqri_http_thread_done();
    return NULL;
}

/* Called with vs->lock held; returns pthread_create's error, for the caller to report once the lock
 * is released. */
static int ensure_thread(struct pqri_views *vs)
{
    sigset_t all, old;
    int rc;

    if (vs->thread_running || stopping(vs))
        return 0;
    /* Before the thread exists: an exit() from here on stops it before libraries clean up. */
    pthread_once(&exit_once, register_exit);
    /* The thread must never run the application's signal handlers. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&vs->thread, NULL, refresher_main, vs);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        vs->thread_running = true;
    return rc;
}

static void thread_failed(int rc)
{
    if (rc)
        PQR_WARN("cannot start the refresher thread: %s; connections go to the front door",
                 strerror(rc));
}

struct pqr_topology *pqri_view_refresh(struct pqri_view *v, long long after_mono, int wait_ms)
{
    struct pqri_views *vs = v->vs;
    struct pqr_topology *t = NULL;
    struct timespec ts;
    int terr;

    pthread_mutex_lock(&vs->lock);
    terr = ensure_thread(vs);
    if (after_mono > v->want_after)
        v->want_after = after_mono;
    pthread_cond_broadcast(&vs->cond);
    if (wait_ms > 0 && vs->thread_running) {
        /* Until a view newer than after_mono arrives, or an attempt that started after this request
         * ends without one: no point waiting out the timeout when every endpoint refused. */
        unsigned long target = v->done + 1;
        deadline_ts(CLOCK_MONOTONIC, &ts, wait_ms);
        while (!(v->current && v->current->mono_ms > after_mono) && v->done < target && !stopping(vs))
            if (pthread_cond_timedwait(&vs->cond, &vs->lock, &ts) == ETIMEDOUT)
                break;
    }
    if (fresh(vs, v->current))
        t = pqri_topo_ref(v->current);
    pthread_mutex_unlock(&vs->lock);
    thread_failed(terr);
    return t;
}

/* Patroni just failed to answer: going to the front door at once beats another wait. */
static long long failure_window(const struct pqri_views *vs)
{
    return 2LL * vs->s.refresh_ms + vs->s.rest_timeout_ms;
}

struct pqr_topology *pqri_view_snapshot(struct pqri_view *v, int wait_ms)
{
    struct pqri_views *vs = v->vs;
    struct pqr_topology *t = NULL, *ft;
    bool failed;
    int terr;

    /* Another process (the agent, following a watch) wrote a newer view: use it now rather than
     * at the next refresh, so a leader change reaches the connects that follow within
     * milliseconds. */
    long long stamp = sharing(vs) ? pqri_cache_stamp(&v->cache) : 0;
    ft = NULL;
    if (stamp && stamp != __atomic_load_n(&v->file_stamp, __ATOMIC_RELAXED) &&
        (ft = read_shared(v)) && fresh(vs, ft))
        pqri_view_publish(v, ft);
    pthread_mutex_lock(&vs->lock);
    terr = ensure_thread(vs);
    if (recent(vs, v->current))
        t = pqri_topo_ref(v->current);
    failed = v->last_fetch_failed && pqri_mono_ms() - v->failed_at_mono < failure_window(vs);
    pthread_mutex_unlock(&vs->lock);
    thread_failed(terr);
    if (t) {
        pqri_topo_unref(ft);
        return t;
    }
    /* A fresh process: another one on this host may have fetched recently. An older file is kept
     * as the fallback view while we ask Patroni ourselves. */
    if (ft || (ft = read_shared(v))) {
        if (fresh(vs, ft))
            pqri_view_publish(v, ft);
        if (recent(vs, ft)) {
            pqri_stat(&v->stats, PQR_STAT_SHARED_CACHE_USED);
            return ft;
        }
        pqri_topo_unref(ft);
        failed = failed || pqri_cache_failed_recently(&v->cache, (int)failure_window(vs));
    }
    return pqri_view_refresh(v, pqri_mono_ms() - 2LL * vs->s.refresh_ms, failed ? 0 : wait_ms);
}

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
        if (v->nfailures < PQR_MAX_FAILURES)
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

struct pqri_views *pqri_views_new(const struct pqr_settings *s, char *err, size_t errlen)
{
    struct pqri_views *vs;

    pthread_once(&global_once, global_init);
    pqri_openssl_no_atexit(); /* before any routed connect's libpq initialises OpenSSL */
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
    init_sync(vs);
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
    pthread_mutex_lock(&views_lock);
    vs->next = all_views;
    all_views = vs;
    pthread_mutex_unlock(&views_lock);
    return vs;
}

void pqri_views_free(struct pqri_views *vs)
{
    if (!vs)
        return;
    pthread_mutex_lock(&views_lock);
    for (struct pqri_views **p = &all_views; *p; p = &(*p)->next)
        if (*p == vs) {
            *p = vs->next;
            break;
        }
    pthread_mutex_unlock(&views_lock);
    stop_thread(vs, -1);
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

int pqri_views_stats_other(struct pqri_views *vs, uint64_t out[PQR_STAT_COUNT])
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
                         bool silent)
{
    struct pqri_failure f = {.port = c->port, .gen = gen, .at_ms = pqri_mono_ms(), .down = true,
                             .silent = silent};

    snprintf(f.addr, sizeof f.addr, "%s", c->addr);
    pthread_mutex_lock(&v->vs->lock);
    remember(v, &f);
    pthread_mutex_unlock(&v->vs->lock);
    pqri_cache_note_down(&v->cache, &f, v->vs->s.stale_ms);
}

void pqri_view_panic(struct pqri_view *v, uint64_t gen)
{
    pthread_mutex_lock(&v->vs->lock);
    v->panic_until = pqri_mono_ms() + v->vs->s.stale_ms;
    v->panic_gen = gen;
    v->want_after = pqri_mono_ms(); /* and a fetch right now */
    pthread_cond_broadcast(&v->vs->cond);
    pthread_mutex_unlock(&v->vs->lock);
    pqri_stat(&v->stats, PQR_STAT_PANIC_REFRESHES);
}

struct pqr_topology *pqri_view_await_leader(struct pqri_view *v, uint64_t gen, int wait_ms)
{
    struct pqri_views *vs = v->vs;
    struct pqr_topology *t = NULL;
    struct timespec ts;

    pthread_mutex_lock(&vs->lock);
    deadline_ts(CLOCK_MONOTONIC, &ts, wait_ms);
    while (!(v->current && v->current->gen != gen && pqri_topo_leader_running(v->current)) && !stopping(vs))
        if (pthread_cond_timedwait(&vs->cond, &vs->lock, &ts) == ETIMEDOUT)
            break;
    if (v->current && v->current->gen != gen && pqri_topo_leader_running(v->current) && fresh(vs, v->current))
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

void pqri_view_stat(struct pqri_view *v, enum pqri_stat which)
{
    pqri_stat(&v->stats, which);
}

int pqri_view_stats(struct pqri_view *v, uint64_t out[PQR_STAT_COUNT])
{
    return pqri_stats_read(&v->stats, out);
}

int pqri_view_hold(struct pqri_view *v)
{
    struct pqr_topology *ft;
    int rc;

    if (!sharing(v->vs))
        return -1;
    if ((rc = pqri_cache_trylock(&v->cache)) != 1)
        return rc;
    /* From here on this process is the only writer: it numbers its views after the file's. */
    ft = pqri_cache_read(&v->cache, &v->vs->s, v->conf);
    v->served_seq = ft ? ft->seq : 0;
    pqri_topo_unref(ft);
    return 1;
}

void pqri_view_release(struct pqri_view *v)
{
    pqri_cache_unlock(&v->cache);
}

void pqri_view_serve(struct pqri_view *v, struct pqr_topology *t, const char *err)
{
    char *src;

    /* Not shared yet: ours to label, so that `pqroute status` tells who keeps the cache. */
    if (t && asprintf(&src, "%s, by pqroute agent %ld", t->source ? t->source : "?",
                      (long)getpid()) > 0) {
        free(t->source);
        t->source = src;
    }
    fetched(v->vs, v, t, err, ++v->served_seq);
}

struct pqri_source *pqri_view_source(struct pqri_view *v)
{
    if (!v->src)
        v->src = pqri_source_open(&v->vs->s, v->conf);
    return v->src;
}

struct pqr_topology *pqri_view_fetch_rest(struct pqri_view *v, bool one_at_a_time, char *err,
                                          size_t errlen)
{
    return fetch_rest(v->vs, v, one_at_a_time, err, errlen);
}

const int *pqri_views_stop_flag(struct pqri_views *vs)
{
    return &vs->stop;
}

void pqri_views_stop(struct pqri_views *vs)
{
    __atomic_store_n(&vs->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&vs->cond);
}
