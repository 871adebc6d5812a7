/*
 * The routing policy: which members to try, in which order. A pure function of the snapshot, the
 * role, the settings and the members that recently failed, so that it can be tested exhaustively.
 *
 * RW: the leader first, then the other members (libpq's target_session_attrs rejects any that is not
 * writable, so listing them costs nothing while the view is right and finds a new leader the view
 * does not know yet when it is wrong). RO: only healthy replicas, rotated to spread the load; with
 * a zone list, those of the first zone (rotated among themselves), then the next zone's, then the
 * others; with RO_FALLBACK=leader, the leader when no eligible replica can be reached.
 * In both, members that just refused or timed out under this view go to the back.
 */
#include <stdio.h>
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

const char *pqri_policy_ro_refusal(const struct pqr_topology *t, size_t i, long long max_lag)
{
    const struct pqri_member *m = &t->m[i];

    if (!m->addr[0])
        return "no usable address";
    if (!is_replica_role(m->role))
        return "not a replica";
    if (m->noloadbalance)
        return "tagged noloadbalance";
    if (strcmp(m->state, "streaming") != 0 && strcmp(m->state, "running") != 0)
        return "not running";
    /* A replica on an older timeline than the newest one reported has not followed the last
     * promotion yet; unknown lag or timeline means we cannot tell how stale its data is. */
    if (m->lag < 0)
        return "lag unknown";
    if (m->lag > max_lag)
        return "lag above the maximum";
    if (m->timeline < 0 || m->timeline < t->max_tl)
        return "timeline unknown or behind";
    return NULL;
}

bool pqri_policy_ro_ok(const struct pqr_topology *t, size_t i, long long max_lag)
{
    return !pqri_policy_ro_refusal(t, i, max_lag);
}

/* Where zone z stands in the list ("b,a": b 0, a 1), else the list's length: any other zone, and
 * no zone at all, come after every listed one. */
static int zone_rank(const char *zones, const char *z, int *count)
{
    int k = 0, found = -1;

    for (const char *p = zones; p && *p; k++) {
        size_t len = strcspn(p, ",");
        if (found < 0 && z && strlen(z) == len && strncmp(p, z, len) == 0)
            found = k;
        p += len + (p[len] == ',');
    }
    if (count)
        *count = k;
    return found >= 0 ? found : k;
}

static int member_zone_rank(const struct pqri_policy_in *in, size_t i)
{
    return in->zones ? zone_rank(in->zones, pqri_member_tag(&in->t->m[i], in->zone_tag), NULL) : 0;
}

void pqri_policy_ro_why(const struct pqri_policy_in *in, size_t i, char *buf, size_t len)
{
    const char *no = pqri_policy_ro_refusal(in->t, i, in->max_lag);
    const char *z = pqri_member_tag(&in->t->m[i], in->zone_tag ? in->zone_tag : "zone");
    int count = 0, r = in->zones ? zone_rank(in->zones, z, &count) : 0;

    if (no && (int)i == in->t->leader && in->ro_leader)
        snprintf(buf, len, "reads only when no replica is eligible (RO_FALLBACK=leader)");
    else if (no)
        snprintf(buf, len, "no reads: %s", no);
    else if (!in->zones)
        buf[0] = 0;
    else if (r == 0)
        snprintf(buf, len, "same zone %s: first", z);
    else if (r < count)
        snprintf(buf, len, "zone %s: choice %d of %s", z, r + 1, in->zones);
    else
        snprintf(buf, len, "%s: after the zones %s", z ? "another zone" : "no zone tag", in->zones);
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

/* Stable (equal ranks keep their order); at most 64 entries: insertion sort. */
static void sort_by_rank(size_t *idx, int *rank, size_t n)
{
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
        rank[n] = in->role == PQR_ROLE_RO ? member_zone_rank(in, i) : rw_rank(t, i);
        n++;
    }
    /* RO: the replicas by zone, then each zone's rotated so that processes and calls spread over
     * them (without a zone list, one zone: all of them). */
    if (in->role == PQR_ROLE_RO && n > 1) {
        sort_by_rank(idx, rank, n);
        for (size_t a = 0, b; a < n; a = b) {
            size_t tmp[PQRI_MAX_MEMBERS], len, rot;
            for (b = a + 1; b < n && rank[b] == rank[a]; b++)
                ;
            len = b - a;
            rot = in->spread % len;
            for (size_t i = 0; i < len; i++)
                tmp[i] = idx[a + (i + rot) % len];
            memcpy(idx + a, tmp, len * sizeof *idx);
        }
    }
    /* Failed members last, then by rank; stable, so equal ones keep Patroni's (or the rotated)
     * order. */
    size_t up = 0;
    for (size_t i = 0; i < n; i++) {
        enum known kn = known(in, t->m[idx[i]].addr, t->m[idx[i]].port);
        rank[i] += kn >= DOWN ? 1000 : kn == FAILED ? 100 : 0;
        up += kn < DOWN;
    }
    sort_by_rank(idx, rank, n);
    /* RO_FALLBACK=leader: no replica to read from, the leader takes the reads before the front
     * door does (libpq's prefer-standby). */
    if (in->role == PQR_ROLE_RO && in->ro_leader && up == 0 && t->leader >= 0 &&
        t->m[t->leader].addr[0] && pqri_member_up(&t->m[t->leader]) && n < PQRI_MAX_MEMBERS) {
        const struct pqri_member *l = &t->m[t->leader];
        if (known(in, l->addr, l->port) < DOWN) {
            memmove(idx + 1, idx, n * sizeof *idx);
            idx[0] = (size_t)t->leader;
            up = 1;
        } else {
            idx[n] = (size_t)t->leader;
        }
        n++;
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
