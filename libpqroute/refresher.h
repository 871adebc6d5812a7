/*
 * The refresher: one thread per set of views keeps every cluster's snapshot fresh; started by the
 * first connect that needs it, forgotten in a fork child, stopped at exit.
 */
#ifndef PQRI_REFRESHER_H
#define PQRI_REFRESHER_H

#include "view.h"

/* Ask for a fetch newer than after_mono (CLOCK_MONOTONIC) and wait up to wait_ms for it. */
struct pqr_topology *pqri_view_refresh(struct pqri_view *v, long long after_mono, int wait_ms);
/* The flag every fetch of this set watches, and raising it (the agent's stop). */
const int *pqri_views_stop_flag(struct pqri_views *vs);
void pqri_views_stop(struct pqri_views *vs);

#endif
