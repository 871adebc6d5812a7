/*
 * The views: per-cluster topology snapshots, and the set of them a router holds. Opaque; plan.c
 * and api.c use the verbs below. Making and freeing a set, reading the snapshot a connect uses and
 * keeping them fresh are the refresher's (refresher.h), where they come from fetch.h's, the memory
 * of failures under the current view failures.h's, and the agent's side serve.h's.
 */
#ifndef PQRI_VIEW_H
#define PQRI_VIEW_H

#include "hostcache.h"
#include "policy.h"

struct pqri_views; /* every cluster of one router, and its refresher */
struct pqri_view;  /* one cluster */

const struct pqr_settings *pqri_views_settings(const struct pqri_views *vs);
size_t pqri_views_count(const struct pqri_views *vs);
struct pqri_view *pqri_views_at(struct pqri_views *vs, size_t i);
/* NULL name: the first cluster. */
struct pqri_view *pqri_views_named(struct pqri_views *vs, const char *name);
/* The cluster whose front door is host:port (host case-insensitive), and whether it is the RO one. */
struct pqri_view *pqri_views_door(struct pqri_views *vs, const char *host, long port,
                                  bool *ro_door);
/* Rotates replica orders between connections (and processes). */
unsigned pqri_views_spread(struct pqri_views *vs);
/* Counters of connections that name no front door. */
void pqri_views_stat_other(struct pqri_views *vs, enum pqri_stat which);
int pqri_views_stats_other(struct pqri_views *vs, uint64_t out[PQRI_STAT_COUNT]);

const struct pqri_cluster_conf *pqri_view_conf(const struct pqri_view *v);
struct pqri_views *pqri_view_views(const struct pqri_view *v);
/* Make t the snapshot if it is newer (takes its own reference). */
void pqri_view_publish(struct pqri_view *v, struct pqr_topology *t);
/* Make t the snapshot whatever its age, forgetting failures (tests inject views this way). */
void pqri_view_set(struct pqri_view *v, struct pqr_topology *t);
void pqri_view_stat(struct pqri_view *v, enum pqri_stat which);
int pqri_view_stats(struct pqri_view *v, uint64_t out[PQRI_STAT_COUNT]);

/* The views of a router (api.c). */
struct pqri_views *pqri_router_views(pqr_router *r);

#endif
