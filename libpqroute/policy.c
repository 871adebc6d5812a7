/*
 * The routing policy: which members to try, in which order. A pure function of the snapshot, the
 * role, the settings and the members that recently failed, so that it can be tested exhaustively.
 *
 * RW: the leader first, then the other members (libpq's target_session_attrs rejects any that is not
 * writable, so listing them costs nothing while the view is right and finds a new leader the view
 * does not know yet when it is wrong). RO: only healthy replicas, rotated to spread the load.
 * In both, members that just refused or timed out under this view go to the back.
 */
#include <string.h>

#include "policy.h"

/* What is known of the member at addr:port under this view, worst first. */
enum known { FINE, FAILED, DOWN, SILENT };

static enum known known(const struct pqri_policy_in *in, const char *addr, int port)
{
    enum known worst = FINE;
    for (size_t i = 0; i < in->nfailures; i++) {
        const struct pqri_failure *f = &in->failures[i];
        enum known k = f->silent ? SILENT : f->down ? DOWN : FAILED;
        if (f->gen == in->t->gen && f->port == port && strcmp(f->addr, addr) == 0 && k > worst)
            worst = k;
    }
    return worst;
}

bool pqri_policy_all_silent(const struct pqri_policy_in *in, const struct pqri_candidate *c,
                            size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (known(in, c[i].addr, c[i].port) != SILENT)
            return false;
    return n > 0;
}

static bool is_replica_role(pqr_member_role r)
{
    return r == PQR_MEMBER_REPLICA || r == PQR_MEMBER_SYNC_STANDBY ||
        r == PQR_MEMBER_QUORUM_STANDBY;
}

bool pqri_policy_ro_ok(const struct pqr_topology *t, size_t i, long long max_lag)
{
    const struct pqri_member *m = &t->m[i];

    if (!m->addr[0] || !is_replica_role(m->role) || m->noloadbalance)
        return false;
    if (strcmp(m->state, "streaming") != 0 && strcmp(m->state, "running") != 0)
        return false;
    /* A replica on an older timeline than the newest one reported has not followed the last
     * promotion yet; unknown lag or timeline means we cannot tell how stale its data is. */
    if (m->lag < 0 || m->lag > max_lag || m->timeline < 0 || m->timeline < t->max_tl)
        return false;
    return true;
}

/* Rank for RW: lower first. */
static int rw_rank(const struct pqr_topology *t, size_t i)
{
    const struct pqri_member *m = &t->m[i];

    if ((int)i == t->leader)
        return 0;
    if (pqri_member_leads(m))
        return 1; /* a second claimant */
    if (m->nofailover)
        return 4; /* cannot be promoted: last */
    if (m->role == PQR_MEMBER_SYNC_STANDBY || m->role == PQR_MEMBER_QUORUM_STANDBY)
        return 2; /* promoted first in synchronous mode */
    return 3;
}

size_t pqri_policy_order(const struct pqri_policy_in *in, struct pqri_candidate *out, size_t max)
{
    const struct pqr_topology *t = in->t;
    size_t idx[PQRI_MAX_MEMBERS], n = 0, k = 0;
    int rank[PQRI_MAX_MEMBERS];

    for (size_t i = 0; i < t->n && n < PQRI_MAX_MEMBERS; i++) {
        if (!t->m[i].addr[0])
            continue;
        if (in->role == PQR_ROLE_RO && !pqri_policy_ro_ok(t, i, in->max_lag))
            continue;
        idx[n] = i;
        rank[n] = in->role == PQR_ROLE_RO ? 0 : rw_rank(t, i);
        n++;
    }
    /* RO: rotate the eligible replicas so that processes and calls spread over them. */
    if (in->role == PQR_ROLE_RO && n > 1) {
        size_t rot = in->spread % n, tmp[PQRI_MAX_MEMBERS];
        for (size_t i = 0; i < n; i++)
            tmp[i] = idx[(i + rot) % n];
        memcpy(idx, tmp, n * sizeof *idx);
    }
    /* Failed members last, then by rank; stable, so equal ones keep Patroni's (or the rotated)
     * order. At most 64 entries: insertion sort. */
    size_t up = 0;
    for (size_t i = 0; i < n; i++) {
        enum known kn = known(in, t->m[idx[i]].addr, t->m[idx[i]].port);
        rank[i] += kn >= DOWN ? 1000 : kn == FAILED ? 100 : 0;
        up += kn < DOWN;
    }
    for (size_t i = 1; i < n; i++) {
        size_t xi = idx[i];
        int xr = rank[i];
        size_t j = i;
        while (j > 0 && rank[j - 1] > xr) {
            idx[j] = idx[j - 1];
            rank[j] = rank[j - 1];
            j--;
        }
        idx[j] = xi;
        rank[j] = xr;
    }
    /* Unreachable members cost a connect timeout each: only when nothing else is left. */
    if (up)
        n = up;
    for (size_t i = 0; i < n && k < max; i++) {
        const struct pqri_member *m = &t->m[idx[i]];
        out[k].member = (int)idx[i];
        memcpy(out[k].addr, m->addr, sizeof out[k].addr);
        out[k].port = m->port;
        k++;
    }
    return k;
}
