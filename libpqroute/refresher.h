/*
 * The refresher: one thread per set of views keeps every cluster's snapshot fresh; started by the
 * first connect that needs it, forgotten in a fork child, stopped at exit. Hence also making and
 * freeing a set of views, and reading the snapshot a connect uses.
 */
#ifndef PQRI_REFRESHER_H
#define PQRI_REFRESHER_H

#include "view.h"

struct pqri_views *pqri_views_new(const struct pqr_settings *s, char *err, size_t errlen);
void pqri_views_free(struct pqri_views *vs);
/* A reference to the snapshot if it is no older than PQROUTE_STALE_MS; may read the host cache, and
 * when wait_ms > 0 waits that long for the refresher's first fetch. */
struct pqr_topology *pqri_view_snapshot(struct pqri_view *v, int wait_ms);
/* Ask for a fetch newer than after_mono (CLOCK_MONOTONIC) and wait up to wait_ms for it. */
struct pqr_topology *pqri_view_refresh(struct pqri_view *v, long long after_mono, int wait_ms);
/* The flag every fetch of this set watches, and raising it (the agent's stop). */
const int *pqri_views_stop_flag(struct pqri_views *vs);
void pqri_views_stop(struct pqri_views *vs);

#endif
