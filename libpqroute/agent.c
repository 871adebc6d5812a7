/*
 * The host agent (pqroute agent): one thread per cluster holds the shared cache's refresh lock for
 * good and keeps the cache file fresh — from a DCS watch when one is configured, else by polling
 * Patroni's REST API — so that the other processes of the host read the file and ask nothing.
 *
 * They need no word from the agent: while the lock is held they wait for the file instead of
 * fetching (hostcache.c), and a newer file is read by the next connect (view.c). A dead agent's
 * lock goes with it (the kernel drops an fcntl lock with its process), and a stopped one's file
 * stops changing: either way the processes go back to refreshing for themselves.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpqroute.h"
#include "fetch.h"
#include "http.h"
#include "patroni.h"
#include "log.h"
#include "refresher.h"
#include "serve.h"
#include "source.h"
#include "view.h"

/* How late a stop may be noticed while the agent sleeps. */
#define STOP_CHECK_MS 250 /* a host's agent wakes rarely: one in a fleet of thousands in a test */
#define BACKOFF_MIN_MS 100
/* A fleet's agents that lost the DCS try again every 5-10 s each at random, so that its return is
 * met by their reconnects spread over seconds, not all at once. */
#define BACKOFF_MAX_MS 10000

struct agent_cluster {
    struct pqri_view *v;
    const int *stop;
    long long last_view; /* monotonic: the last view served from the DCS */
    pthread_t thread;
    bool started;
};

static bool stopping(const int *stop)
{
    return __atomic_load_n(stop, __ATOMIC_ACQUIRE);
}

static void sleep_ms(const int *stop, long long ms)
{
    long long until = pqri_mono_ms() + ms;
    while (!stopping(stop) && pqri_mono_ms() < until) {
        long long left = until - pqri_mono_ms();
        struct timespec ts = {
            0, (left < STOP_CHECK_MS ? (left > 0 ? left : 1) : STOP_CHECK_MS) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void on_view(void *arg, struct pqr_topology *t)
{
    struct agent_cluster *ac = arg;

    ac->last_view = pqri_mono_ms();
    pqri_view_serve(ac->v, t, NULL);
}

static void on_count(void *arg, enum pqri_stat which)
{
    pqri_view_stat(((struct agent_cluster *)arg)->v, which);
}

/* vouch_ms: 0, or how long the view is good for (the next ask is due within it). */
static void serve_rest(struct agent_cluster *ac, bool fallback, long long vouch_ms)
{
    char err[2048];
    struct pqr_topology *t = pqri_view_fetch_rest(ac->v, fallback, err, sizeof err);

    if (fallback)
        pqri_view_stat(ac->v, PQRI_STAT_REST_FALLBACKS);
    if (t)
        t->vouch_ms = vouch_ms;
    pqri_view_serve(ac->v, t, err);
}

static void follow_dcs(struct agent_cluster *ac, struct pqri_source *src)
{
    const struct pqr_settings *s = pqri_views_settings(pqri_view_views(ac->v));
    const char *name = pqri_view_conf(ac->v)->name;
    struct pqri_watch_hooks hooks = {ac, on_view, on_count};
    long long backoff = BACKOFF_MIN_MS, next_rest = 0;
    /* While the DCS is unreachable, Patroni's REST API is asked once per PQROUTE_FALLBACK_MS (at
     * least 5 s), jittered, one node at a time: 2,000 hosts at 15 s are ~45 requests/s per node of
     * three, where Patroni's API serves its own members too. The view is vouched for until the
     * next ask, plus one ask's budget. */
    long long every = s->fallback_ms > s->refresh_ms ? s->fallback_ms : s->refresh_ms;
    long long vouch = every * 4 / 3 + pqri_rest_budget_ms(s);
    bool warned = false;
    char err[2048];

    while (!stopping(ac->stop)) {
        long long started = pqri_mono_ms();
        if (pqri_source_watch(src, ac->stop, &hooks, err, sizeof err) == 0 || stopping(ac->stop))
            break;
        if (pqri_mono_ms() - started > 10LL * s->refresh_ms) {
            backoff = BACKOFF_MIN_MS; /* it had been working: a new outage */
            warned = false;
            /* The watch's view stays good for the usual interval: the first ask is then. */
            next_rest = ac->last_view + s->refresh_ms;
        }
        pqri_view_stat(ac->v, PQRI_STAT_WATCH_RECONNECTS);
        if (!warned)
            PQRI_WARN("cluster %s: %s; asking Patroni's REST API until the watch is back", name,
                      err);
        else
            PQRI_DEBUG("cluster %s: %s", name, err);
        warned = true;
        /* Until the next try, the REST API (one node at a time) keeps the file from going stale —
         * unless the DCS read that began the failed watch just did. */
        long long retry_at = pqri_mono_ms() + pqri_jitter_ms(backoff * 3 / 4, 33); /* ~ms/2..ms */
        do {
            if (pqri_mono_ms() - ac->last_view >= s->refresh_ms && pqri_mono_ms() >= next_rest) {
                serve_rest(ac, true, vouch);
                next_rest = pqri_mono_ms() + pqri_jitter_ms(every, 33);
            }
            long long next =
                next_rest > pqri_mono_ms() ? next_rest : pqri_mono_ms() + STOP_CHECK_MS;
            sleep_ms(ac->stop, (next < retry_at ? next : retry_at) - pqri_mono_ms());
        } while (!stopping(ac->stop) && pqri_mono_ms() < retry_at);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

static void *cluster_main(void *arg)
{
    struct agent_cluster *ac = arg;
    const struct pqr_settings *s = pqri_views_settings(pqri_view_views(ac->v));
    const char *name = pqri_view_conf(ac->v)->name;
    struct pqri_source *src;
    bool told = false;
    int rc;

    while ((rc = pqri_view_hold(ac->v)) != 1 && !stopping(ac->stop)) {
        if (rc < 0) {
            PQRI_ERROR("cluster %s: cannot lock the shared cache; not serving it", name);
            return NULL;
        }
        if (!told)
            PQRI_WARN("cluster %s: another process holds the shared cache's lock (another agent?); "
                      "waiting for it",
                      name);
        told = true;
        sleep_ms(ac->stop, 200);
    }
    if (stopping(ac->stop))
        goto out;
    src = pqri_view_source(ac->v);
    PQRI_INFO("cluster %s: serving the shared cache from %s", name,
              src ? "a DCS watch" : "Patroni's REST API");
    if (src) {
        pqri_source_keep_connections(src);
        follow_dcs(ac, src);
    } else {
        /* Once per interval, as one process would: the processes of the host wait for the file
         * while the agent holds the lock, so it need not be younger than that. */
        while (!stopping(ac->stop)) {
            serve_rest(ac, false, 0);
            sleep_ms(ac->stop, pqri_jitter_ms(s->refresh_ms, 10));
        }
    }
out:
    pqri_view_release(ac->v);
    pqri_http_thread_done();
    return NULL;
}

int pqr_agent_run(pqr_router *r, const volatile int *stop, char *err, size_t errlen)
{
    struct pqri_views *vs;
    size_t n, started = 0;
    struct agent_cluster *acs;
    sigset_t all, old;

    pqri_error_set(PQR_OK);
    if (!r || !stop) {
        pqri_errc(PQR_ERR_ARGUMENT, err, errlen, "no router or no stop flag");
        return -1;
    }
    vs = pqri_router_views(r);
    n = pqri_views_count(vs);
    if (!(acs = calloc(n ? n : 1, sizeof *acs))) {
        pqri_errc(PQR_ERR_RESOURCE, err, errlen, "out of memory");
        return -1;
    }
    if (pqri_view_hold(pqri_views_at(vs, 0)) < 0) {
        pqri_errc(PQR_ERR_NO_SHARED_CACHE, err, errlen,
                  "no shared cache directory (see PQROUTE_CACHE_DIR): an agent serves nothing "
                  "without one");
        free(acs);
        return -1;
    }
    pqri_view_release(pqri_views_at(vs, 0));
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the caller's thread's */
    for (size_t i = 0; i < n; i++) {
        acs[i].v = pqri_views_at(vs, i);
        acs[i].stop = pqri_views_stop_flag(vs);
        if (pthread_create(&acs[i].thread, NULL, cluster_main, &acs[i]) == 0) {
            acs[i].started = true;
            started++;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* Atomic: a signal handler sets it, or another thread. */
    while (started && !__atomic_load_n((const int *)stop, __ATOMIC_ACQUIRE))
        sleep_ms(pqri_views_stop_flag(vs), 250);
    pqri_views_stop(vs);
    for (size_t i = 0; i < n; i++)
        if (acs[i].started)
            pthread_join(acs[i].thread, NULL);
    free(acs);
    if (!started) {
        pqri_errc(PQR_ERR_RESOURCE, err, errlen, "cannot start threads");
        return -1;
    }
    return 0;
}
