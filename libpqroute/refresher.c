/*
 * The refresher and the process around it: one thread per set of views (per router) keeps every
 * cluster's snapshot fresh, started by the first connect that needs it; fork handlers that leave a
 * child every lock usable and no refresher; an exit handler that stops it before libraries clean
 * up. The top layer of the view part (fetch.c below it, view.c at the bottom), so whatever may
 * start or stop the thread is here: making and freeing a set of views (which joins and leaves the
 * list those handlers walk), and the snapshot a connect reads and the refresh it asks for (both
 * start the thread on first need and may wait for its fetch).
 *
 * Blocking connects that find no fresh snapshot wake the refresher and wait for it with a bound;
 * non-blocking ones wait less (or not). So the fetch logic lives in one place and an application
 * thread never does REST I/O itself.
 *
 * Global locks (all taken by the fork prepare handler, in this order):
 *   views_lock     guards the list of live view sets
 *   vs->lock       guards that set's cluster state and the refresher's control fields (view_int.h)
 *   resolve.c's    guards the name look-ups in flight and their answers (its atfork trio)
 * No I/O is done under any of them: log lines are written after the lock is released.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "refresher.h"
#include "view_int.h"
#include "http.h"
#include "patroni.h"
#include "resolve.h"
#include "source.h"

#define MIN_WAIT_MS 10
#define PANIC_INTERVAL_MS 100

static pthread_mutex_t views_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pqri_views *all_views;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
    pthread_mutex_lock(&views_lock);
    for (struct pqri_views *vs = all_views; vs; vs = vs->next)
        pthread_mutex_lock(&vs->lock);
    pqri_dns_atfork_prepare();
}

static void atfork_parent(void)
{
    pqri_dns_atfork_parent();
    for (struct pqri_views *vs = all_views; vs; vs = vs->next)
        pthread_mutex_unlock(&vs->lock);
    pthread_mutex_unlock(&views_lock);
}

/* The refresher does not exist in the child: forget it, so the child's first routed connect starts
 * its own. Snapshots the child inherited stay valid until they are stale. Nothing is closed: a lock
 * file the parent's refresher had open is the parent's business (its lock is not inherited). */
static void atfork_child(void)
{
    for (struct pqri_views *vs = all_views; vs; vs = vs->next) {
        pqri_views_init_sync(vs);
        vs->thread_running = false;
        __atomic_store_n(&vs->stop, 0, __ATOMIC_RELAXED);
        for (size_t i = 0; i < vs->nclusters; i++)
            vs->clusters[i].cache.lock_fd = -1;
    }
    pqri_dns_atfork_child();
    pthread_mutex_init(&views_lock, NULL);
}

/* Stop the refresher and join it, waiting at most join_ms (-1: for good). */
static void refresher_stop(struct pqri_views *vs, int join_ms)
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
        refresher_stop(vs, pqri_rest_budget_ms(&vs->s));
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

/* Once per process, before the first set of views: the fork handlers. */
static void process_init(void)
{
    pthread_once(&global_once, global_init);
}

/* vs joins / leaves the list the fork and exit handlers walk. */
static void views_join(struct pqri_views *vs)
{
    pthread_mutex_lock(&views_lock);
    vs->next = all_views;
    all_views = vs;
    pthread_mutex_unlock(&views_lock);
}

static void views_leave(struct pqri_views *vs)
{
    pthread_mutex_lock(&views_lock);
    for (struct pqri_views **p = &all_views; *p; p = &(*p)->next)
        if (*p == vs) {
            *p = vs->next;
            break;
        }
    pthread_mutex_unlock(&views_lock);
}

static long long interval(const struct pqri_views *vs, const struct pqri_view *v)
{
    return pqri_view_panicking(v) && vs->s.refresh_ms > PANIC_INTERVAL_MS ? PANIC_INTERVAL_MS
                                                                          : vs->s.refresh_ms;
}

struct cluster_timer {
    long long last_start; /* when the last attempt started (monotonic) */
    long long next_mono;  /* when the next regular attempt is due */
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
                pqri_view_refresh_once(vs, v, want);
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

/* Called with vs->lock held: start the refresher unless it runs (or vs stops); pthread_create's
 * error, to hand to refresher_report() once the lock is released. */
static int refresher_start(struct pqri_views *vs)
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

static void refresher_report(int rc)
{
    if (rc)
        PQRI_WARN("cannot start the refresher thread: %s; connections go to the front door",
                  strerror(rc));
}

struct pqr_topology *pqri_view_refresh(struct pqri_view *v, long long after_mono, int wait_ms)
{
    struct pqri_views *vs = v->vs;
    struct pqr_topology *t = NULL;
    struct timespec ts;
    int terr;

    pthread_mutex_lock(&vs->lock);
    terr = refresher_start(vs);
    if (after_mono > v->want_after)
        v->want_after = after_mono;
    pthread_cond_broadcast(&vs->cond);
    if (wait_ms > 0 && vs->thread_running) {
        /* Until a view newer than after_mono arrives, or an attempt that started after this request
         * ends without one: no point waiting out the timeout when every endpoint refused. */
        unsigned long target = v->done + 1;
        deadline_ts(CLOCK_MONOTONIC, &ts, wait_ms);
        while (!(v->current && v->current->mono_ms > after_mono) && v->done < target &&
               !stopping(vs))
            if (pthread_cond_timedwait(&vs->cond, &vs->lock, &ts) == ETIMEDOUT)
                break;
    }
    if (fresh(vs, v->current))
        t = pqri_topo_ref(v->current);
    pthread_mutex_unlock(&vs->lock);
    refresher_report(terr);
    return t;
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
        (ft = pqri_view_read_shared(v)) && fresh(vs, ft))
        pqri_view_publish(v, ft);
    pthread_mutex_lock(&vs->lock);
    terr = refresher_start(vs);
    if (recent(vs, v->current))
        t = pqri_topo_ref(v->current);
    failed = v->last_fetch_failed && pqri_mono_ms() - v->failed_at_mono < failure_window(vs);
    pthread_mutex_unlock(&vs->lock);
    refresher_report(terr);
    if (t) {
        pqri_topo_unref(ft);
        return t;
    }
    /* A fresh process: another one on this host may have fetched recently. An older file is kept
     * as the fallback view while we ask Patroni ourselves. */
    if (ft || (ft = pqri_view_read_shared(v))) {
        if (fresh(vs, ft))
            pqri_view_publish(v, ft);
        if (recent(vs, ft)) {
            pqri_stat(&v->stats, PQRI_STAT_SHARED_CACHE_USED);
            return ft;
        }
        pqri_topo_unref(ft);
        failed = failed || pqri_cache_failed_recently(&v->cache, (int)failure_window(vs));
    }
    return pqri_view_refresh(v, pqri_mono_ms() - 2LL * vs->s.refresh_ms, failed ? 0 : wait_ms);
}

struct pqri_views *pqri_views_new(const struct pqr_settings *s, char *err, size_t errlen)
{
    struct pqri_views *vs;

    process_init();
    pqri_openssl_no_atexit(); /* before any routed connect's libpq initialises OpenSSL */
    if (!(vs = pqri_views_build(s, err, errlen)))
        return NULL;
    views_join(vs);
    return vs;
}

void pqri_views_free(struct pqri_views *vs)
{
    if (!vs)
        return;
    views_leave(vs);
    refresher_stop(vs, -1);
    pqri_views_destroy(vs);
}
