/* libFuzzer: Patroni /cluster JSON (or a cache file) -> topology -> dump round trip -> policy.
 * Invariants: no crash or leak; the dump parses back to the same members; every candidate the
 * policy returns is a member with an address, listed once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pqr_settings s;
    static struct pqri_cluster_conf c = {.max_lag = -1};
    static int init;
    struct pqri_candidate cands[PQRI_MAX_MEMBERS];
    char err[128];

    if (!init) {
        pqri_settings_init(&s);
        pqri_log_set(PQRI_LOG_ERROR);
        init = 1;
    }
    struct pqr_topology *t = pqri_topo_parse((const char *)data, size, err, sizeof err);
    if (!t)
        return 0;
    pqri_topo_filter(t, &s, &c); /* numeric only: no DNS while fuzzing */
    char *d = pqri_topo_dump(t);
    if (d) {
        struct pqr_topology *u = pqri_topo_parse(d, strlen(d), NULL, 0);
        if (!u || u->n != t->n)
            __builtin_trap();
        pqri_topo_unref(u);
        free(d);
    }
    for (int role = PQR_ROLE_RW; role <= PQR_ROLE_RO; role++) {
        struct pqri_policy_in in = {.t = t, .role = (pqr_role)role, .max_lag = 1 << 20, .spread = (unsigned)size};
        size_t n = pqri_policy_order(&in, cands, PQRI_MAX_MEMBERS);
        uint64_t seen = 0;
        for (size_t i = 0; i < n; i++) {
            int m = cands[i].member;
            if (m < 0 || (size_t)m >= t->n || !t->m[m].addr[0] || (seen >> m & 1))
                __builtin_trap();
            seen |= 1ULL << m;
        }
    }
    pqri_topo_unref(t);
    return 0;
}
