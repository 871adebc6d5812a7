/* The routing policy: orders for RW and RO over real Patroni views, failures, filters. */
#include "tap.h"
#include "policy.h"
#include "log.h"

static struct pqr_topology *view(const char *name)
{
    char path[256];
    size_t len;
    char *buf;
    struct pqr_topology *t;
    struct pqr_settings s;
    struct pqri_cluster_conf c = {.max_lag = -1};

    snprintf(path, sizeof path, "tests/fixtures/%s", name);
    buf = slurp(path, &len);
    t = buf ? pqri_topo_parse(buf, len, NULL, 0) : NULL;
    free(buf);
    pqri_settings_init(&s);
    if (t) {
        /* The captures ran every node on 127.0.0.1 with its own port. */
        pqri_topo_filter(t, &s, &c);
    }
    return t;
}

/* A view from inline JSON; members on 10.0.0.<n>. */
static struct pqr_topology *inline_view(const char *json)
{
    struct pqr_settings s;
    struct pqri_cluster_conf c = {.max_lag = -1};
    struct pqr_topology *t = pqri_topo_parse(json, strlen(json), NULL, 0);

    pqri_settings_init(&s);
    if (t)
        pqri_topo_filter(t, &s, &c);
    return t;
}

#define M(name, role, state, host, extra)                                                          \
    "{\"name\":\"" name "\",\"role\":\"" role "\",\"state\":\"" state "\",\"host\":\"" host        \
    "\",\"port\":5432,\"timeline\":3" extra "}"

static size_t order(const struct pqr_topology *t, pqr_role role, const struct pqri_failure *f,
                    size_t nf, unsigned spread, char *names, size_t len)
{
    struct pqri_candidate c[PQRI_MAX_MEMBERS];
    struct pqri_policy_in in = {.t = t, .role = role, .max_lag = 1048576, .failures = f,
                               .nfailures = nf, .spread = spread};
    size_t n = pqri_policy_order(&in, c, PQRI_MAX_MEMBERS), used = 0;

    names[0] = 0;
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(names + used, len - used, "%s%s", i ? "," : "", t->m[c[i].member].name);
    return n;
}

static struct pqri_failure fail_of(const struct pqr_topology *t, const char *name)
{
    struct pqri_failure f = {.gen = t->gen};
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->m[i].name, name) == 0) {
            memcpy(f.addr, t->m[i].addr, sizeof f.addr);
            f.port = t->m[i].port;
        }
    return f;
}

int main(void)
{
    char got[256];
    struct pqr_topology *t;
    struct pqri_failure f[2];

    t = view("patroni-3.0.2/cluster-healthy.json");
    order(t, PQR_ROLE_RW, NULL, 0, 0, got, sizeof got);
    ok(strncmp(got, t->m[t->leader].name, strlen(t->m[t->leader].name)) == 0, "RW: leader first (%s)", got);
    is_int(order(t, PQR_ROLE_RO, NULL, 0, 0, got, sizeof got), 2, "RO: the two replicas only (%s)", got);
    ok(!strstr(got, t->m[t->leader].name), "RO: never the leader");
    char a[64], b[64];
    order(t, PQR_ROLE_RO, NULL, 0, 0, a, sizeof a);
    order(t, PQR_ROLE_RO, NULL, 0, 1, b, sizeof b);
    ok(strcmp(a, b) != 0, "RO: spread rotates the replicas (%s / %s)", a, b);
    pqri_topo_unref(t);

    /* Crash: Patroni keeps listing the dead leader; once it failed it goes to the back. */
    t = view("patroni-3.0.2/cluster-failover-0-dead-leader-still-listed-until-ttl.json");
    f[0] = fail_of(t, "node2");
    order(t, PQR_ROLE_RW, f, 1, 0, got, sizeof got);
    is_str(got, "node1,node3,node2", "RW: a failed leader goes last");
    f[0].gen ^= 1;
    order(t, PQR_ROLE_RW, f, 1, 0, got, sizeof got);
    is_str(got, "node2,node1,node3", "RW: a failure under another view is forgotten");
    pqri_topo_unref(t);

    t = view("patroni-3.0.2/cluster-failover-4-replica-still-on-old-timeline-lag-growing.json");
    is_int(order(t, PQR_ROLE_RO, NULL, 0, 0, got, sizeof got), 0, "RO: replica on an older timeline is not used");
    order(t, PQR_ROLE_RW, NULL, 0, 0, got, sizeof got);
    is_str(got, "node3,node1", "RW: new leader first, old-timeline replica after it");
    pqri_topo_unref(t);

    t = view("patroni-3.0.2/cluster-switchover-5-new-timeline-old-leader-stopping.json");
    is_int(order(t, PQR_ROLE_RO, NULL, 0, 0, got, sizeof got), 0,
           "RO: during a switchover, no replica on the new timeline yet -> none");
    pqri_topo_unref(t);

    t = view("patroni-3.0.2/cluster-switchover-7-old-leader-rejoined-other-replica-old-timeline.json");
    order(t, PQR_ROLE_RO, NULL, 0, 0, got, sizeof got);
    is_str(got, "node3", "RO: only the replica that follows the new timeline");
    pqri_topo_unref(t);

    t = view("patroni-3.0.2/cluster-switchover-3-no-leader.json");
    order(t, PQR_ROLE_RW, NULL, 0, 0, got, sizeof got);
    is_str(got, "node1,node2,node3", "RW without a leader: every member, libpq checks writability");
    pqri_topo_unref(t);

    t = view("patroni-3.0.2/cluster-synchronous-mode.json");
    order(t, PQR_ROLE_RW, NULL, 0, 0, got, sizeof got);
    is_str(got, "node3,node2,node1", "RW: sync standby before other replicas");
    pqri_topo_unref(t);

    t = view("patroni-4.x/cluster-quorum-4.1.json");
    order(t, PQR_ROLE_RO, NULL, 0, 0, got, sizeof got);
    is_str(got, "pg2", "RO: noloadbalance and unknown lag excluded, quorum standby used");
    pqri_topo_unref(t);

    t = view("patroni-4.x/cluster-standby-cluster-4.0.json");
    struct pqri_candidate c[8];
    struct pqri_policy_in in = {.t = t, .role = PQR_ROLE_RO, .max_lag = 1048575};
    is_int(pqri_policy_order(&in, c, 8), 0, "RO: lag above the limit excluded");
    in.max_lag = 1048576;
    is_int(pqri_policy_order(&in, c, 8), 1, "RO: lag at the limit allowed");
    in.role = PQR_ROLE_RW;
    pqri_policy_order(&in, c, 8);
    ok(strcmp(t->m[c[0].member].name, "dr1") == 0, "RW in a standby cluster: standby leader first");
    pqri_topo_unref(t);

    /* Members without a usable address (unresolvable, outside the allow-list) are never used. */
    t = view("patroni-3.0.2/cluster-healthy.json");
    for (size_t i = 0; i < t->n; i++)
        if ((int)i != t->leader)
            t->m[i].addr[0] = 0;
    is_int(order(t, PQR_ROLE_RW, NULL, 0, 0, got, sizeof got), 1, "unaddressed members skipped (%s)", got);
    is_int(order(t, PQR_ROLE_RO, NULL, 0, 0, got, sizeof got), 0, "RO: nothing left");
    pqri_topo_unref(t);

    /* Each filter alone, on a view where nothing else excludes the member. */
    t = inline_view("{\"members\":[" M("L", "leader", "running", "10.0.0.1", "") ","
                    M("a", "replica", "streaming", "10.0.0.2", ",\"lag\":0") ","
                    M("nlb", "replica", "streaming", "10.0.0.3", ",\"lag\":0,\"tags\":{\"noloadbalance\":true}") ","
                    M("unk", "replica", "streaming", "10.0.0.4", ",\"lag\":\"unknown\"") "]}");
    order(t, PQR_ROLE_RO, NULL, 0, 0, got, sizeof got);
    is_str(got, "a", "RO: a noloadbalance replica and one with unknown lag are left out, nothing else");
    pqri_topo_unref(t);

    t = inline_view("{\"members\":[" M("nf", "replica", "streaming", "10.0.0.1", ",\"lag\":0,\"tags\":{\"nofailover\":true}") ","
                    M("L", "leader", "running", "10.0.0.2", "") ","
                    M("r", "replica", "streaming", "10.0.0.3", ",\"lag\":0") "]}");
    order(t, PQR_ROLE_RW, NULL, 0, 0, got, sizeof got);
    is_str(got, "L,r,nf", "RW: a nofailover member (never promoted) comes last, after plain replicas");
    /* Unreachable members: left out while any other candidate remains, for every role. */
    struct pqri_failure d[3] = {fail_of(t, "L"), fail_of(t, "r"), fail_of(t, "nf")};
    d[0].down = true;
    order(t, PQR_ROLE_RW, d, 1, 0, got, sizeof got);
    is_str(got, "r,nf", "RW: an unreachable leader is left out while others remain");
    d[1].down = d[2].down = true;
    order(t, PQR_ROLE_RW, d, 3, 0, got, sizeof got);
    is_str(got, "L,r,nf", "RW: all unreachable: all kept, in order (nothing better to try)");
    order(t, PQR_ROLE_RO, d + 1, 1, 0, got, sizeof got);
    is_str(got, "nf", "RO: an unreachable replica is left out too");
    pqri_topo_unref(t);
    return done_testing();
}
