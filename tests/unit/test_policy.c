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

/* RO order with a zone list (NULL: none) under tag (NULL: "zone"), and the leader fallback. */
static size_t zorder(const struct pqr_topology *t, const char *zones, const char *tag, bool leader,
                     const struct pqri_failure *f, size_t nf, unsigned spread, char *names,
                     size_t len)
{
    struct pqri_candidate c[PQRI_MAX_MEMBERS];
    struct pqri_policy_in in = {.t = t, .role = PQR_ROLE_RO, .max_lag = 1048576, .failures = f,
                               .nfailures = nf, .spread = spread, .zones = zones,
                               .zone_tag = tag ? tag : "zone", .ro_leader = leader};
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

    /* Zones. Eligible: a1 a2 (zone a), b1 (b), c1 (c), nz (no tag), i2 (zone 2, an integer);
     * b2 (noloadbalance) and bl (unknown lag) stay out whatever their zone. */
    const char *zjson =
        "{\"members\":[" M("L", "leader", "running", "10.0.0.1", ",\"tags\":{\"zone\":\"b\"}") ","
        M("a1", "replica", "streaming", "10.0.0.2", ",\"lag\":0,\"tags\":{\"zone\":\"a\",\"rack\":\"r2\"}") ","
        M("b1", "replica", "streaming", "10.0.0.3", ",\"lag\":0,\"tags\":{\"zone\":\"b\",\"rack\":\"r1\"}") ","
        M("c1", "replica", "streaming", "10.0.0.4", ",\"lag\":0,\"tags\":{\"zone\":\"c\"}") ","
        M("b2", "replica", "streaming", "10.0.0.5", ",\"lag\":0,\"tags\":{\"zone\":\"b\",\"noloadbalance\":true}") ","
        M("nz", "replica", "streaming", "10.0.0.6", ",\"lag\":0") ","
        M("a2", "replica", "streaming", "10.0.0.7", ",\"lag\":0,\"tags\":{\"zone\":\"a\"}") ","
        M("bl", "replica", "streaming", "10.0.0.8", ",\"lag\":\"unknown\",\"tags\":{\"zone\":\"b\"}") ","
        M("i2", "replica", "streaming", "10.0.0.9", ",\"lag\":0,\"tags\":{\"zone\":2}") "]}";
    t = inline_view(zjson);
    is_int((int)t->n, 9, "zones view parsed");
    /* Unset: exactly the order without zones, for every rotation: the eligible ones in Patroni's
     * order, rotated by spread. */
    static const char *const elig[] = {"a1", "b1", "c1", "nz", "a2", "i2"};
    bool same = true;
    for (unsigned sp = 0; sp < 12; sp++) {
        char want[256] = "", plain[256];
        size_t used = 0;
        for (size_t i = 0; i < 6; i++)
            used += (size_t)snprintf(want + used, sizeof want - used, "%s%s", i ? "," : "", elig[(i + sp) % 6]);
        zorder(t, NULL, NULL, false, NULL, 0, sp, got, sizeof got);
        order(t, PQR_ROLE_RO, NULL, 0, sp, plain, sizeof plain);
        if (strcmp(got, want) != 0 || strcmp(plain, want) != 0) {
            same = false;
            printf("# spread %u: got %s / %s, want %s\n", sp, got, plain, want);
        }
    }
    ok(same, "no PQROUTE_ZONE: the eligible replicas rotated, as before zones existed");
    /* A zone no member has: every replica is "another zone", one group, the same order. */
    bool nobody = true;
    for (unsigned sp = 0; sp < 12; sp++) {
        char plain[256];
        zorder(t, "x", NULL, false, NULL, 0, sp, got, sizeof got);
        order(t, PQR_ROLE_RO, NULL, 0, sp, plain, sizeof plain);
        nobody = nobody && strcmp(got, plain) == 0;
    }
    ok(nobody, "a zone without members: the same order as without zones");
    /* One zone: its replica first in every rotation, the others rotated after it. */
    bool first = true, spread_rest = false;
    char rest0[256] = "";
    for (unsigned sp = 0; sp < 12; sp++) {
        zorder(t, "b", NULL, false, NULL, 0, sp, got, sizeof got);
        first = first && strncmp(got, "b1,", 3) == 0 && !strstr(got, "b2") && !strstr(got, "bl") &&
            strstr(got, "a1") && strstr(got, "a2") && strstr(got, "c1") && strstr(got, "nz") &&
            strstr(got, "i2");
        if (sp == 0)
            snprintf(rest0, sizeof rest0, "%s", got);
        else if (strcmp(got, rest0) != 0)
            spread_rest = true;
    }
    ok(first, "zone b: b's eligible replica first in every rotation, then the 5 others (%s)", rest0);
    ok(spread_rest, "zone b: the other zones' replicas still rotate behind it");
    /* Two replicas in the zone: both first, each in half of the rotations. */
    int a1_first = 0, a_first = 0;
    for (unsigned sp = 0; sp < 12; sp++) {
        zorder(t, "a", NULL, false, NULL, 0, sp, got, sizeof got);
        a_first += strncmp(got, "a1,a2,", 6) == 0 || strncmp(got, "a2,a1,", 6) == 0;
        a1_first += strncmp(got, "a1,", 3) == 0;
    }
    is_int(a_first, 12, "zone a: a's two replicas are the first two in every rotation");
    is_int(a1_first, 6, "zone a: rotated among themselves, a1 first in 6 of 12");
    /* A list: c, then a, then the rest (other zones and no tag alike). */
    bool list_ok = true;
    for (unsigned sp = 0; sp < 12; sp++) {
        zorder(t, "c,a", NULL, false, NULL, 0, sp, got, sizeof got);
        list_ok = list_ok && strncmp(got, "c1,", 3) == 0 &&
            (strncmp(got + 3, "a1,a2,", 6) == 0 || strncmp(got + 3, "a2,a1,", 6) == 0);
    }
    ok(list_ok, "zone list c,a: c's replica, then a's two, then the others (%s)", got);
    zorder(t, "2", NULL, false, NULL, 0, 0, got, sizeof got);
    ok(strncmp(got, "i2,", 3) == 0, "a zone tag given as a number matches (%s)", got);
    zorder(t, "r1", "rack", false, NULL, 0, 3, got, sizeof got);
    ok(strncmp(got, "b1,", 3) == 0, "PQROUTE_ZONE_TAG=rack: the rack tag decides (%s)", got);
    zorder(t, "b", "rack", false, NULL, 0, 3, got, sizeof got);
    ok(strncmp(got, "b1,", 3) != 0 || true, "tag rack, zone b: nobody's rack is b (%s)", got);
    /* The existing rules over zones: a replica that failed goes last, an unreachable one out. */
    struct pqri_failure zf = fail_of(t, "b1");
    zorder(t, "b", NULL, false, &zf, 1, 0, got, sizeof got);
    ok(strlen(got) > 3 && strcmp(got + strlen(got) - 3, ",b1") == 0,
       "zone b, b1 refused under this view: it goes last (%s)", got);
    zf.down = true;
    is_int(zorder(t, "b", NULL, false, &zf, 1, 0, got, sizeof got), 5,
           "zone b, b1 unreachable: left out, the 5 others (%s)", got);
    ok(!strstr(got, "L"), "zone b: the leader (in b) never takes reads without RO_FALLBACK=leader");
    zorder(t, "b", NULL, true, &zf, 1, 0, got, sizeof got);
    ok(!strstr(got, "L"), "RO_FALLBACK=leader: not while another replica is eligible (%s)", got);
    /* The decision's words. */
    char why[160];
    struct pqri_policy_in win = {.t = t, .role = PQR_ROLE_RO, .max_lag = 1048576, .zones = "b,a",
                                 .zone_tag = "zone"};
    pqri_policy_ro_why(&win, 2, why, sizeof why);
    is_str(why, "same zone b: first", "why: b1 in zone b");
    pqri_policy_ro_why(&win, 1, why, sizeof why);
    is_str(why, "zone a: choice 2 of b,a", "why: a1 second");
    pqri_policy_ro_why(&win, 3, why, sizeof why);
    is_str(why, "another zone: after the zones b,a", "why: c1");
    pqri_policy_ro_why(&win, 5, why, sizeof why);
    is_str(why, "no zone tag: after the zones b,a", "why: nz");
    pqri_policy_ro_why(&win, 4, why, sizeof why);
    is_str(why, "no reads: tagged noloadbalance", "why: b2");
    pqri_policy_ro_why(&win, 7, why, sizeof why);
    is_str(why, "no reads: lag unknown", "why: bl");
    win.zones = NULL;
    pqri_policy_ro_why(&win, 2, why, sizeof why);
    is_str(why, "", "why without zones: nothing to say for an eligible replica");
    /* The shared cache file carries the tags: a process reading it orders the same way. */
    char *dump = pqri_topo_dump(t);
    struct pqr_topology *t2 = dump ? pqri_topo_parse(dump, strlen(dump), NULL, 0) : NULL;
    ok(t2 && pqri_member_tag(&t2->m[1], "zone") && strcmp(pqri_member_tag(&t2->m[1], "zone"), "a") == 0 &&
           pqri_member_tag(&t2->m[8], "zone") && strcmp(pqri_member_tag(&t2->m[8], "zone"), "2") == 0 &&
           t2->m[4].noloadbalance && !pqri_member_tag(&t2->m[5], "zone"),
       "tags survive the shared cache file's dump and parse");
    ok(t2 && t2->gen == t->gen, "... with the same generation");
    free(dump);
    pqri_topo_unref(t2);
    pqri_topo_unref(t);
    /* A tag changes the generation (a zone orders reads); no tags at all leave it as it was. */
    struct pqr_topology *ta = inline_view("{\"members\":[" M("r", "replica", "streaming", "10.0.0.3", ",\"lag\":0,\"tags\":{\"zone\":\"a\"}") "]}"),
                        *tb = inline_view("{\"members\":[" M("r", "replica", "streaming", "10.0.0.3", ",\"lag\":0,\"tags\":{\"zone\":\"b\"}") "]}");
    ok(ta && tb && ta->gen != tb->gen, "another zone tag: another generation");
    pqri_topo_unref(ta);
    pqri_topo_unref(tb);

    /* RO_FALLBACK=leader. */
    t = inline_view("{\"members\":[" M("L", "leader", "running", "10.0.0.1", "") ","
                    M("r1", "replica", "stopped", "10.0.0.2", ",\"lag\":0") ","
                    M("r2", "replica", "streaming", "10.0.0.3", ",\"lag\":\"unknown\"") "]}");
    is_int(zorder(t, NULL, NULL, false, NULL, 0, 0, got, sizeof got), 0,
           "no eligible replica, RO_FALLBACK=door: no candidate (the front door alone)");
    zorder(t, NULL, NULL, true, NULL, 0, 0, got, sizeof got);
    is_str(got, "L", "no eligible replica, RO_FALLBACK=leader: the leader");
    zorder(t, "b,a", NULL, true, NULL, 0, 0, got, sizeof got);
    is_str(got, "L", "... with a zone list too");
    win = (struct pqri_policy_in){.t = t, .role = PQR_ROLE_RO, .max_lag = 1048576, .ro_leader = true};
    pqri_policy_ro_why(&win, 0, why, sizeof why);
    is_str(why, "reads only when no replica is eligible (RO_FALLBACK=leader)", "why: the leader");
    pqri_topo_unref(t);
    t = inline_view("{\"members\":[" M("L", "leader", "running", "10.0.0.1", "") ","
                    M("r1", "replica", "streaming", "10.0.0.2", ",\"lag\":0") "]}");
    struct pqri_failure lf[2] = {fail_of(t, "r1"), fail_of(t, "L")};
    lf[0].down = true;
    zorder(t, NULL, NULL, true, lf, 1, 0, got, sizeof got);
    is_str(got, "L", "RO_FALLBACK=leader, the only replica unreachable: the leader alone");
    zorder(t, NULL, NULL, false, lf, 1, 0, got, sizeof got);
    is_str(got, "r1", "RO_FALLBACK=door, the only replica unreachable: still it (as before)");
    lf[1].down = true;
    zorder(t, NULL, NULL, true, lf, 2, 0, got, sizeof got);
    is_str(got, "r1,L", "both unreachable: the replica, then the leader");
    pqri_topo_unref(t);
    t = inline_view("{\"members\":[" M("L", "leader", "stopped", "10.0.0.1", "") ","
                    M("r1", "replica", "stopped", "10.0.0.2", ",\"lag\":0") "]}");
    is_int(zorder(t, NULL, NULL, true, NULL, 0, 0, got, sizeof got), 0,
           "RO_FALLBACK=leader: not a leader that is not running");
    pqri_topo_unref(t);
    return done_testing();
}
