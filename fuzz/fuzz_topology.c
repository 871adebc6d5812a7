/* libFuzzer: Patroni /cluster JSON (or a cache file) -> topology -> dump round trip -> policy.
 * Invariants: no crash or leak; the dump parses back to the same members; every candidate the
 * policy returns is a member with an address, listed once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pqr_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pqr_settings s;
    static struct pqr_cluster_conf c = {.max_lag = -1};
    static int init;
    struct pqr_candidate cands[PQR_MAX_MEMBERS];
    char err[128];

    if (!init) {
        pqr__settings_init(&s);
        pqr__log_set(PQR_LOG_ERROR);
        init = 1;
    }
    struct pqr_topology *t = pqr__topo_parse((const char *)data, size, err, sizeof err);
    if (!t)
        return 0;
    pqr__topo_resolve(t, &s, &c, 0); /* numeric only: no DNS while fuzzing */
    char *d = pqr__topo_dump(t);
    if (d) {
        struct pqr_topology *u = pqr__topo_parse(d, strlen(d), NULL, 0);
        if (!u || u->n != t->n)
            __builtin_trap();
        pqr__topo_unref(u);
        free(d);
    }
    for (int role = PQR_ROLE_RW; role <= PQR_ROLE_RO; role++) {
        struct pqr_policy_in in = {.t = t, .role = (pqr_role)role, .max_lag = 1 << 20, .spread = (unsigned)size};
        size_t n = pqr__policy_order(&in, cands, PQR_MAX_MEMBERS);
        uint64_t seen = 0;
        for (size_t i = 0; i < n; i++) {
            int m = cands[i].member;
            if (m < 0 || (size_t)m >= t->n || !t->m[m].addr[0] || (seen >> m & 1))
                __builtin_trap();
            seen |= 1ULL << m;
        }
    }
    pqr__topo_unref(t);
    return 0;
}
