/*
 * Internal to the view part, and included only by its files: view.c, refresher.c, fetch.c,
 * failures.c and serve.c. The two structs they share, each field under the file that owns it, and
 * the few functions one of them calls in another. Every other file sees opaque types and the verbs
 * of view.h, refresher.h, fetch.h, failures.h and serve.h.
 *
 * The files call only downwards: view.c (the snapshot store) and failures.c call none of the
 * others; fetch.c calls view.c; serve.c calls fetch.c; refresher.c, on top, calls view.c, fetch.c
 * and failures.c.
 *
 * Every field "guarded by vs->lock" is read and written with vs->lock held, whichever file does it.
 */
#ifndef PQRI_VIEW_INT_H
#define PQRI_VIEW_INT_H

#include <pthread.h>
#include <time.h>

#include "log.h"
#include "view.h"

struct pqri_source;

struct pqri_view {
    /* view.c: the snapshot */
    struct pqri_views *vs;
    const struct pqri_cluster_conf *conf;
    struct pqr_topology *current; /* guarded by vs->lock */
    struct pqri_cache_file cache;
    long long file_stamp;    /* the shared file as last read by a connect (atomic) */
    struct pqri_stats stats; /* shared counters (hostcache.c) */
    /* refresher.c: requests, and their outcomes as fetch.c records them (guarded by vs->lock) */
    long long want_after; /* a fetch newer than this (monotonic) was asked for */
    bool last_fetch_failed;
    long long failed_at_mono; /* when the last attempt ended without a view */
    unsigned long done;       /* finished refresh attempts; a waiter waits for the next one */
    /* failures.c: the memory of failures under the current view */
    long long door_failed_mono; /* a routed connect failed at every member and the front door */
    long long panic_until;      /* a connect found no willing leader: refresh fast until then */
    uint64_t panic_gen;         /* ... or until a view other than this one has a running leader */
    struct pqri_failure failures[PQRI_MAX_FAILURES];
    size_t nfailures;
    /* fetch.c: where views come from */
    struct pqri_source *src; /* the DCS client (refresher or agent thread only) */
    bool dcs_failing;        /* refresher only: the last DCS read failed */
    unsigned rest_next;      /* refresher only: the REST endpoint a DCS fallback asks first */
    /* serve.c */
    uint64_t served_seq; /* agent only: the last sequence number written */
};

struct pqri_views {
    /* view.c */
    struct pqr_settings s;
    struct pqri_view *clusters;
    size_t nclusters;
    pthread_mutex_t lock;          /* guards cluster state and the refresher's control fields */
    pthread_cond_t cond;           /* published a snapshot / asked the refresher to work */
    unsigned spread;               /* atomic */
    struct pqri_cache_dir dir;     /* the shared cache directory (fd -1: not sharing) */
    struct pqri_stats other_stats; /* connections that name no front door */
    /* refresher.c */
    pthread_t thread;
    bool thread_running;
    int stop;                /* atomic */
    struct pqri_views *next; /* all view sets, for fork and exit handling */
};

/* view.c: vs->lock and vs->cond, made anew (also in a fork child). */
void pqri_views_init_sync(struct pqri_views *vs);
/* A set of views as data, no refresher yet and on no list (refresher.c's pqri_views_new adds
 * those), and freeing one whose refresher is stopped. */
struct pqri_views *pqri_views_build(const struct pqr_settings *s, char *err, size_t errlen);
void pqri_views_destroy(struct pqri_views *vs);

/* fetch.c: one refresh of v, the lock not held (want: a view newer than this was asked for). */
void pqri_view_refresh_once(struct pqri_views *vs, struct pqri_view *v, long long want);
/* The shared file, its stamp remembered. */
struct pqr_topology *pqri_view_read_shared(struct pqri_view *v);
/* A fetch's outcome, with no lock held: names resolved, shared (seq: the file's next sequence
 * number; 0: not shared) and published. Takes t's reference. */
void pqri_view_fetched(struct pqri_views *vs, struct pqri_view *v, struct pqr_topology *t,
                       const char *err, uint64_t seq);

/* failures.c: called with vs->lock held: a connect waits for a willing leader. */
bool pqri_view_panicking(const struct pqri_view *v);

static inline bool stopping(const struct pqri_views *vs)
{
    return __atomic_load_n(&vs->stop, __ATOMIC_ACQUIRE);
}

static inline long long age_ms(const struct pqr_topology *t)
{
    return pqri_mono_ms() - t->mono_ms;
}

/* Young enough to route with. An agent that cannot reach the DCS asks Patroni's REST API less
 * often than the stale limit (a fleet must not flood it, and no new leader can be elected without
 * the DCS) and vouches for its view until its next ask. */
static inline bool fresh(const struct pqri_views *vs, const struct pqr_topology *t)
{
    return t && age_ms(t) <= (t->vouch_ms > vs->s.stale_ms ? t->vouch_ms : vs->s.stale_ms);
}

/* Young enough to use without asking Patroni: someone refreshed it within two intervals, or the
 * agent vouches for it. */
static inline bool recent(const struct pqri_views *vs, const struct pqr_topology *t)
{
    return t && (age_ms(t) < 2LL * vs->s.refresh_ms || age_ms(t) < t->vouch_ms);
}

static inline bool sharing(struct pqri_views *vs)
{
    return pqri_cachedir_fd(&vs->dir) >= 0;
}

static inline void deadline_ts(clockid_t clock, struct timespec *ts, long long ms)
{
    clock_gettime(clock, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L)
        ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

#endif
