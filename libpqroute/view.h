/*
 * The views: per-cluster topology snapshots, the one refresher thread that keeps them fresh (from
 * Patroni, or the host cache when another process just asked), and the memory of members that
 * failed under the current view. Opaque; plan.c and api.c use the verbs below.
 */
#ifndef PQRI_VIEW_H
#define PQRI_VIEW_H

#include "hostcache.h"
#include "policy.h"

struct pqri_views; /* every cluster of one router, and its refresher */
struct pqri_view;  /* one cluster */

struct pqri_views *pqri_views_new(const struct pqr_settings *s, char *err, size_t errlen);
void pqri_views_free(struct pqri_views *vs);
const struct pqr_settings *pqri_views_settings(const struct pqri_views *vs);
size_t pqri_views_count(const struct pqri_views *vs);
struct pqri_view *pqri_views_at(struct pqri_views *vs, size_t i);
/* NULL name: the first cluster. */
struct pqri_view *pqri_views_named(struct pqri_views *vs, const char *name);
/* The cluster whose front door is host:port (host case-insensitive), and whether it is the RO one. */
struct pqri_view *pqri_views_door(struct pqri_views *vs, const char *host, long port, bool *ro_door);
/* Rotates replica orders between connections (and processes). */
unsigned pqri_views_spread(struct pqri_views *vs);
/* Counters of connections that name no front door. */
void pqri_views_stat_other(struct pqri_views *vs, enum pqri_stat which);
int pqri_views_stats_other(struct pqri_views *vs, uint64_t out[PQR_STAT_COUNT]);

const struct pqri_cluster_conf *pqri_view_conf(const struct pqri_view *v);
struct pqri_views *pqri_view_views(const struct pqri_view *v);
/* A reference to the snapshot if it is no older than PQROUTE_STALE_MS; may read the host cache, and
 * when wait_ms > 0 waits that long for the refresher's first fetch. */
struct pqr_topology *pqri_view_snapshot(struct pqri_view *v, int wait_ms);
/* Ask for a fetch newer than after_mono (CLOCK_MONOTONIC) and wait up to wait_ms for it. */
struct pqr_topology *pqri_view_refresh(struct pqri_view *v, long long after_mono, int wait_ms);
/* Make t the snapshot if it is newer (takes its own reference). */
void pqri_view_publish(struct pqri_view *v, struct pqr_topology *t);
/* Make t the snapshot whatever its age, forgetting failures (tests inject views this way). */
void pqri_view_set(struct pqri_view *v, struct pqr_topology *t);
/* Members that failed under the current view, and recording more (only while gen is current). */
size_t pqri_view_failures(struct pqri_view *v, struct pqri_failure *out, size_t max);
void pqri_view_note_failures(struct pqri_view *v, uint64_t gen, const struct pqri_candidate *cands,
                             size_t n);
/* A member was unreachable (refused, reset, timed out) under view gen: left out of every role's
 * list while others remain, for PQROUTE_STALE_MS or until the view changes; shared with the other
 * processes of this host. */
void pqri_view_note_down(struct pqri_view *v, uint64_t gen, const struct pqri_candidate *c,
                         bool silent);
/* Every member answered and none would take the role (a leader change in progress): refresh every
 * 100 ms until a view other than gen shows a running leader (or PQROUTE_STALE_MS passes), and wait
 * up to wait_ms for such a view. */
void pqri_view_panic(struct pqri_view *v, uint64_t gen);
struct pqr_topology *pqri_view_await_leader(struct pqri_view *v, uint64_t gen, int wait_ms);
/* The front door failed together with every member just now / it answered again / whether it is
 * still resting (left out of routed lists for PQROUTE_STALE_MS). */
void pqri_view_door_failed(struct pqri_view *v);
void pqri_view_door_answered(struct pqri_view *v);
bool pqri_view_door_resting(struct pqri_view *v);
void pqri_view_stat(struct pqri_view *v, enum pqri_stat which);
int pqri_view_stats(struct pqri_view *v, uint64_t out[PQR_STAT_COUNT]);

/* The views of a router (api.c). */
struct pqri_views *pqri_router_views(pqr_router *r);

/* The agent's side (agent.c): hold the shared refresh lock of v's cache for good, so that the
 * processes of this host take their views from the file (1; 0: another process holds it; -1: no
 * shared cache), and let it go. */
int pqri_view_hold(struct pqri_view *v);
void pqri_view_release(struct pqri_view *v);
/* A view from the agent's source (NULL, with err: none could be had): names resolved, written to
 * the shared cache as the next version, published. Takes t's reference. */
void pqri_view_serve(struct pqri_view *v, struct pqr_topology *t, const char *err);
/* v's DCS client (NULL if none is configured), kept for the view's life. */
struct pqri_source *pqri_view_source(struct pqri_view *v);
/* Patroni's REST API: every endpoint (starts staggered), or one at a time (the DCS fallback). */
struct pqr_topology *pqri_view_fetch_rest(struct pqri_view *v, bool one_at_a_time, char *err,
                                          size_t errlen);
/* The flag every fetch of this set watches, and raising it (the agent's stop). */
const int *pqri_views_stop_flag(struct pqri_views *vs);
void pqri_views_stop(struct pqri_views *vs);

#endif
