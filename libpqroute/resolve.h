/* Member host names to addresses within a deadline (look-ups in small detached threads). */
#ifndef PQRI_RESOLVE_H
#define PQRI_RESOLVE_H

#include <stddef.h>

#include "topology.h"

/* The fork handlers of this file's lock, called by the views' (refresher.c) in their lock
 * order: prepare takes it, parent releases it, child makes it (and the look-up state) anew. */
void pqri_dns_atfork_prepare(void);
void pqri_dns_atfork_parent(void);
void pqri_dns_atfork_child(void);
/* 0 with the address; -1 unresolvable or no answer yet; -2 no answer in time, first time for this
 * name (worth a warning). Never waits past deadline_mono. */
int pqri_dns_resolve(const char *host, char *addr, size_t len, long long deadline_mono);
/* Every member without an address: its host looked up, by deadline_mono. */
void pqri_resolve_members(struct pqr_topology *t, long long deadline_mono);

#endif
