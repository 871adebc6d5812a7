/* The Patroni client: HTTP only — GET /cluster from REST endpoints in, a topology out. */
#ifndef PQRI_PATRONI_H
#define PQRI_PATRONI_H

#include "topology.h"

struct pqri_fetch_opts {
    const struct pqr_settings *s;
    const struct pqri_cluster_conf *c;
    const char *const *urls;
    size_t nurls;
    const int *stop;    /* abandons the fetch when it becomes non-zero (read atomically) */
    bool one_at_a_time; /* the next URL only once the previous failed (a DCS is the source) */
};
/* Fetch /cluster from every URL, starts 10 ms apart (or one at a time): the best view, numeric
 * addresses only. Its names are resolved by pqri_topo_complete(), which the caller runs outside
 * any lock. */
struct pqr_topology *pqri_patroni_fetch(const struct pqri_fetch_opts *o, char *err, size_t errlen);
/* REST base URL from a member's api_url ("http://h:8008/patroni" -> "http://h:8008"); NULL when
 * it is not one we may ask (or out of memory). */
char *pqri_api_base(const char *api_url);

#endif
