/*
 * The topology snapshot: Patroni's /cluster JSON <-> an immutable, reference-counted struct, and
 * the role and state predicates every other part uses. No I/O here.
 */
#ifndef PQRI_TOPOLOGY_H
#define PQRI_TOPOLOGY_H

#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "settings.h"

#define PQRI_MAX_MEMBERS 64
#define PQRI_MAX_BODY (256 * 1024)

/* A Patroni tag with a text or integer value (a zone's name, say), as text. */
struct pqri_tag {
    char *key, *value;
};

struct pqri_member {
    char *name;
    char *host;
    char *api_url;
    char *state;
    pqr_member_role role;
    int patroni_port;
    int port;                /* the port connections use (member_port override applied) */
    char addr[PQRI_ADDRLEN]; /* numeric address; "" when unresolved */
    long timeline;           /* -1 unknown */
    long long lag;           /* -1 unknown */
    bool noloadbalance;
    bool nofailover;
    struct pqri_tag *tags;
    size_t ntags;
};

struct pqr_topology {
    int refs; /* atomic */
    struct pqri_member *m;
    size_t n;
    long long fetched_ms; /* CLOCK_REALTIME: what the shared cache file carries, and shows */
    long long mono_ms;    /* CLOCK_MONOTONIC of this process: every age and "newer" test */
    uint64_t seq;         /* the shared file's write sequence: newer across processes */
    long long vouch_ms;   /* the agent asks again within this long (0: the usual intervals) */
    char *source;
    int leader;   /* index or -1 */
    long max_tl;  /* highest timeline reported, -1 if none */
    uint64_t gen; /* hash of what routing depends on (not lag) */
};

struct pqr_topology *pqri_topo_parse(const char *json, size_t len, char *err, size_t errlen);
struct pqr_topology *pqri_topo_ref(struct pqr_topology *t);
/* A new topology with t's content (its own reference), or NULL out of memory. */
struct pqr_topology *pqri_topo_copy(const struct pqr_topology *t);
void pqri_topo_unref(struct pqr_topology *t);
/* After addresses are set: pick the leader, the max timeline, the generation hash. */
void pqri_topo_finish(struct pqr_topology *t);
/* Numeric member hosts as addresses, this process's port override and allow-list, then finish:
 * what every view goes through, whoever fetched it. */
void pqri_topo_filter(struct pqr_topology *t, const struct pqr_settings *s,
                      const struct pqri_cluster_conf *c);
/* The shared cache file form: Patroni's /cluster shape plus addresses, source and fetch time. */
char *pqri_topo_dump(const struct pqr_topology *t);
/* Better of two views of one cluster (freshest timeline, has a leader, more members). */
bool pqri_topo_better(const struct pqr_topology *a, const struct pqr_topology *b);
/* The leader (or standby leader) is there and running (streaming, for a standby leader). */
bool pqri_topo_leader_running(const struct pqr_topology *t);

pqr_member_role pqri_role_parse(const char *s);
/* The leader or a standby leader: what takes the cluster's writes (or would). */
bool pqri_member_leads(const struct pqri_member *m);
/* The member's tag key as text, or NULL when it has none (or one of another type). */
const char *pqri_member_tag(const struct pqri_member *m, const char *key);
/* Patroni says PostgreSQL runs there ("running", or "streaming" for a replica or standby leader). */
bool pqri_member_up(const struct pqri_member *m);

/* A fetched view (Patroni's REST API or a DCS) made ready for use, the one step here that waits:
 * member names resolved (resolve.c) within what is left of the REST timeout since t->mono_ms,
 * filtered, then stamped as fetched now. Run outside any lock. */
void pqri_topo_complete(struct pqr_topology *t, const struct pqr_settings *s,
                        const struct pqri_cluster_conf *c);

#endif
