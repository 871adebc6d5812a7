/*
 * The memory of failures under a cluster's current view: members that failed or were unreachable,
 * the front door that failed with them, and the panic when no member would take the leader's role.
 */
#ifndef PQRI_FAILURES_H
#define PQRI_FAILURES_H

#include "view.h"

/* Members that failed under the current view, and recording more (only while gen is current). */
size_t pqri_view_failures(struct pqri_view *v, struct pqri_failure *out, size_t max);
void pqri_view_note_failures(struct pqri_view *v, uint64_t gen, const struct pqri_candidate *cands,
                             size_t n);
/* A member was unreachable (refused, reset, timed out) under view gen: left out of every role's
 * list while others remain, for PQROUTE_STALE_MS or until the view changes; shared with the other
 * processes of this host — now, or (share_later not NULL) by whoever calls pqri_view_share_down()
 * with what it is given there: writing the host cache may wait on the disk, which a
 * non-blocking connect's caller must not. */
void pqri_view_note_down(struct pqri_view *v, uint64_t gen, const struct pqri_candidate *c,
                         bool silent, struct pqri_failure *share_later);
void pqri_view_share_down(struct pqri_view *v, const struct pqri_failure *f);
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

#endif
