/*
 * What Patroni keeps in its DCS, whichever store carries it (etcd v3, Consul): the keys under
 * <namespace>/<scope>/[<citus group>/], and the topology they describe. No I/O here.
 */
#ifndef PQRI_DCS_H
#define PQRI_DCS_H

#include "topology.h"

#define PQRI_DCS_MAX_KEYS 256
#define PQRI_DCS_MAX_VALUE (64 * 1024)

/* The keys routing needs (leader, members/<name>, status, sync), by name relative to the prefix;
 * the others (config, history, ...) are not kept. */
struct pqri_kv {
    char *key;
    char *val;
    long long rev; /* the store's modification revision / index */
};
struct pqri_kvset {
    struct pqri_kv *kv;
    size_t n;
};
/* Whether routing needs a key (name relative to the prefix). */
bool pqri_dcs_wanted(const char *key, size_t len);
/* Insert or replace: 0; PQRI_KV_SKIPPED: a value routing cannot use (too large, a NUL byte, not
 * wanted, or the set is full) is left out, and so is what the key held before (any one Patroni
 * node can write its own key: one bad key must not cost the others); -1: out of memory. */
#define PQRI_KV_SKIPPED 1
int pqri_kvset_put(struct pqri_kvset *s, const char *key, size_t klen, const char *val, size_t vlen,
                   long long rev);
void pqri_kvset_del(struct pqri_kvset *s, const char *key, size_t klen);
void pqri_kvset_clear(struct pqri_kvset *s);
const struct pqri_kv *pqri_kvset_get(const struct pqri_kvset *s, const char *key);

/* "<namespace>/<scope>/" or "<namespace>/<scope>/<group>/" (group < 0: none). */
int pqri_dcs_prefix(char *out, size_t len, const char *ns, const char *scope, int group);
/* The topology the keys describe, as Patroni's GET /cluster would show it: the leader key names
 * the leader (a member still reporting the primary role without holding it is left out), lag from
 * the leader's position. Names are not resolved; source is set. NULL with a message. */
struct pqr_topology *pqri_dcs_topology(const struct pqri_kvset *s, const char *source, char *err,
                                       size_t errlen);

/* The same, as a store's client reports it: source "<store> <how> <endpoint>", a view with no
 * member refused (naming the prefix), its age starting now. */
struct pqr_topology *pqri_dcs_view(const struct pqri_kvset *s, const char *store, const char *how,
                                   const char *endpoint, const char *prefix, char *err,
                                   size_t errlen);

#endif
