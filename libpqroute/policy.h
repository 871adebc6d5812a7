/* The routing policy: snapshot + role + settings + recent member failures -> the members to try,
 * in order. A pure function. */
#ifndef PQRI_POLICY_H
#define PQRI_POLICY_H

#include "topology.h"

#define PQRI_MAX_FAILURES 16

struct pqri_candidate {
    int member; /* index into the topology, -1 for the front door */
    char addr[PQRI_ADDRLEN];
    int port;
};
struct pqri_failure {
    char addr[PQRI_ADDRLEN];
    int port;
    uint64_t gen;
    long long at_ms; /* monotonic */
    bool down;       /* unreachable (refused, reset, timed out), not merely unwilling */
    bool silent;     /* ... and it did not answer at all (timed out): maybe the network's doing */
};
struct pqri_policy_in {
    const struct pqr_topology *t;
    pqr_role role;
    long long max_lag;
    const struct pqri_failure *failures;
    size_t nfailures;
    unsigned spread; /* rotates the replica order (RO) */
    /* RO: the zones to prefer, in order ("b,a": b's replicas, then a's, then the others), or
     * NULL; a member's zone is its Patroni tag zone_tag. */
    const char *zones;
    const char *zone_tag;
    bool ro_leader; /* RO: the leader when no eligible replica is reachable (RO_FALLBACK=leader) */
};
/* Members in the order to try them (front door not included). Returns the count. Members that
 * failed under this view go last; members that were unreachable are left out entirely while any
 * other candidate remains. */
size_t pqri_policy_order(const struct pqri_policy_in *in, struct pqri_candidate *out, size_t max);
bool pqri_policy_ro_ok(const struct pqr_topology *t, size_t i, long long max_lag);
/* Why member i may not serve reads ("lag unknown", ...), or NULL when it may. */
const char *pqri_policy_ro_refusal(const struct pqr_topology *t, size_t i, long long max_lag);
/* Member i's place among the replicas, in words: where the zone list puts it (and why), or why it
 * is not a read candidate. Empty when there is no zone list and it is eligible. */
void pqri_policy_ro_why(const struct pqri_policy_in *in, size_t i, char *buf, size_t len);
/* Every one of these candidates is known to be silent under the view (in->failures). */
bool pqri_policy_all_silent(const struct pqri_policy_in *in, const struct pqri_candidate *c,
                            size_t n);

#endif
