/* Topology parsing against real Patroni 3.0.2 responses and Patroni 4.x shapes. */
#include "tap.h"
#include "topology.h"
#include "log.h"

#define FX "tests/fixtures/"

static struct pqr_topology *load(const char *name)
{
    char err[256], path[256];
    size_t len;
    char *buf;
    struct pqr_topology *t;

    snprintf(path, sizeof path, FX "%s", name);
    buf = slurp(path, &len);
    if (!buf) {
        printf("# cannot read %s\n", path);
        return NULL;
    }
    t = pqri_topo_parse(buf, len, err, sizeof err);
    if (!t)
        printf("# %s: %s\n", name, err);
    free(buf);
    return t;
}

static int find(const struct pqr_topology *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->m[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void parse_bad(const char *json, const char *want_err, const char *what)
{
    char err[256] = "";
    struct pqr_topology *t = pqri_topo_parse(json, strlen(json), err, sizeof err);
    ok(!t && strstr(err, want_err), "%s is rejected (%s)", what, err);
    pqri_topo_unref(t);
}

int main(void)
{
    struct pqr_topology *t;
    int i;

    t = load("patroni-3.0.2/cluster-healthy.json");
    ok(t && t->n == 3, "healthy: three members");
    ok(t && t->leader >= 0 && t->m[t->leader].role == PQR_MEMBER_LEADER, "healthy: a leader");
    ok(t && t->m[t->leader].lag == -1, "healthy: the leader has no lag");
    for (size_t k = 0; t && k < t->n; k++)
        if ((int)k != t->leader)
            ok(t->m[k].lag == 0 && t->m[k].timeline > 0, "healthy: replica %s lag 0, timeline known",
               t->m[k].name);
    /* A copy (an agent's re-stamp of a view whose keys did not change) is the same view, and its
     * own: it outlives the original, and the shared file written from it says the same. */
    struct pqr_topology *c = t ? pqri_topo_copy(t) : NULL;
    char *da = t ? pqri_topo_dump(t) : NULL;
    pqri_topo_unref(t);
    char *db = c ? pqri_topo_dump(c) : NULL;
    ok(c && c->refs == 1 && c->n == 3 && c->leader >= 0 && da && db && strcmp(da, db) == 0,
       "a copy is the same view, with its own reference");
    free(da);
    free(db);
    pqri_topo_unref(c);

    t = load("patroni-3.0.2/cluster-switchover-1-old-leader-demoting-timeline-null.json");
    ok(t && t->leader >= 0 && t->m[t->leader].timeline == -1, "timeline missing -> -1");
    pqri_topo_unref(t);

    t = load("patroni-3.0.2/cluster-switchover-3-no-leader.json");
    ok(t && t->leader == -1, "no leader during a switchover");
    i = t ? find(t, "node3") : -1;
    ok(i >= 0 && t->m[i].lag == -1 && strcmp(t->m[i].state, "stopping") == 0,
       "lag \"unknown\" -> -1, state kept");
    pqri_topo_unref(t);

    t = load("patroni-3.0.2/cluster-switchover-5-new-timeline-old-leader-stopping.json");
    ok(t && t->max_tl == 4, "max timeline is the newest reported");
    pqri_topo_unref(t);

    t = load("patroni-3.0.2/cluster-synchronous-mode.json");
    i = t ? find(t, "node2") : -1;
    ok(i >= 0 && t->m[i].role == PQR_MEMBER_SYNC_STANDBY, "sync_standby role");
    pqri_topo_unref(t);

    t = load("patroni-4.x/cluster-quorum-4.1.json");
    ok(t && t->n == 3, "4.1 quorum: three members");
    i = t ? find(t, "pg2") : -1;
    ok(i >= 0 && t->m[i].role == PQR_MEMBER_QUORUM_STANDBY, "quorum_standby role");
    i = t ? find(t, "pg3") : -1;
    ok(i >= 0 && t->m[i].noloadbalance && t->m[i].lag == -1 && strcmp(t->m[i].host, "pg3.db.internal") == 0,
       "noloadbalance tag, lag unknown, DNS host kept");
    pqri_topo_unref(t);

    t = load("patroni-4.x/cluster-standby-cluster-4.0.json");
    ok(t && t->leader >= 0 && t->m[t->leader].role == PQR_MEMBER_STANDBY_LEADER,
       "standby_leader is the cluster's leader");
    pqri_topo_unref(t);

    /* Every capture of both sequences parses. */
    const char *seqs[] = {"switchover", "failover"};
    int parsed = 0, total = 0;
    for (int s = 0; s < 2; s++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "ls " FX "patroni-3.0.2/sequences/%s", seqs[s]);
        FILE *ls = popen(cmd, "r");
        char name[256];
        while (ls && fgets(name, sizeof name, ls)) {
            char rel[512];
            name[strcspn(name, "\n")] = 0;
            snprintf(rel, sizeof rel, "patroni-3.0.2/sequences/%s/%s", seqs[s], name);
            t = load(rel);
            total++;
            parsed += t && t->n > 0;
            pqri_topo_unref(t);
        }
        if (ls)
            pclose(ls);
    }
    ok(total > 100 && parsed == total, "all %d sequence captures parse (%d)", total, parsed);

    /* Two claimants: the running one on the newest timeline wins. */
    const char *two = "{\"members\":[{\"name\":\"a\",\"role\":\"leader\",\"state\":\"running\",\"host\":\"10.0.0.1\",\"port\":5432,\"timeline\":3},"
                      "{\"name\":\"b\",\"role\":\"leader\",\"state\":\"running\",\"host\":\"10.0.0.2\",\"port\":5432,\"timeline\":4}]}";
    t = pqri_topo_parse(two, strlen(two), NULL, 0);
    ok(t && t->leader == 1, "two leaders: the newer timeline is taken");
    pqri_topo_unref(t);

    /* Bad members are skipped, the rest is kept. */
    const char *mixed = "{\"members\":[{\"name\":\"ok\",\"role\":\"replica\",\"host\":\"10.0.0.1\",\"port\":5432},"
                        "{\"name\":\"noport\",\"role\":\"replica\",\"host\":\"10.0.0.2\"},"
                        "{\"name\":\"badport\",\"host\":\"10.0.0.3\",\"port\":70000},"
                        "{\"role\":\"leader\",\"host\":\"10.0.0.4\",\"port\":5432},"
                        "{\"name\":\"strport\",\"host\":\"10.0.0.5\",\"port\":\"5432\"}, 17, null]}";
    t = pqri_topo_parse(mixed, strlen(mixed), NULL, 0);
    ok(t && t->n == 1 && strcmp(t->m[0].name, "ok") == 0, "members without name/host/valid port are skipped");
    ok(t && t->m[0].state && strcmp(t->m[0].state, "unknown") == 0, "missing state -> \"unknown\"");
    pqri_topo_unref(t);

    parse_bad("", "not JSON", "empty body");
    parse_bad("<html>502 Bad Gateway</html>", "not JSON", "HTML");
    parse_bad("{\"members\": [", "not JSON", "truncated JSON");
    parse_bad("{\"members\": {}}", "no \"members\"", "members not an array");
    parse_bad("[1,2,3]", "no \"members\"", "top-level array");
    parse_bad("{\"members\":[], \"members\":[]}", "not JSON", "duplicate keys");
    {
        char *big = malloc(PQRI_MAX_BODY + 10);
        memset(big, ' ', PQRI_MAX_BODY + 9);
        big[PQRI_MAX_BODY + 9] = 0;
        char err[128];
        t = pqri_topo_parse(big, PQRI_MAX_BODY + 9, err, sizeof err);
        ok(!t && strstr(err, "too large"), "oversized body rejected");
        free(big);
    }
    {
        /* A member name with NUL inside is not taken as a shorter string. */
        const char nul[] = "{\"members\":[{\"name\":\"a\\u0000b\",\"host\":\"1.2.3.4\",\"port\":1}]}";
        t = pqri_topo_parse(nul, sizeof nul - 1, NULL, 0);
        ok(!t || t->n == 0, "embedded NUL in a string: never taken as a shorter name");
        pqri_topo_unref(t);
    }

    /* The cache-file form round-trips what routing needs. */
    t = load("patroni-4.x/cluster-quorum-4.1.json");
    snprintf(t->m[0].addr, sizeof t->m[0].addr, "10.0.0.1");
    pqri_topo_finish(t);
    t->fetched_ms = 1234567;
    t->source = strdup("http://x:8008");
    char *dump = pqri_topo_dump(t);
    struct pqr_topology *u = dump ? pqri_topo_parse(dump, strlen(dump), NULL, 0) : NULL;
    ok(u && u->n == t->n && u->fetched_ms == 1234567 && strcmp(u->source, "http://x:8008") == 0,
       "dump/parse keeps members, fetch time and source");
    ok(u && strcmp(u->m[0].addr, "10.0.0.1") == 0 && u->m[2].noloadbalance && u->m[2].lag == -1 &&
       u->m[1].role == PQR_MEMBER_QUORUM_STANDBY && u->gen == t->gen,
       "dump/parse keeps address, tags, unknown lag, role, generation");
    ok(u && u->vouch_ms == 0 && !strstr(dump, "vouch_ms"), "no vouch unless an agent gives one");
    free(dump);
    pqri_topo_unref(u);
    /* An agent without its DCS vouches for its REST view until its next ask; a file cannot claim
     * more than an hour. */
    t->vouch_ms = 21000;
    dump = pqri_topo_dump(t);
    u = dump ? pqri_topo_parse(dump, strlen(dump), NULL, 0) : NULL;
    ok(u && u->vouch_ms == 21000, "dump/parse keeps the agent's vouch (%lld)", u ? u->vouch_ms : -1);
    free(dump);
    pqri_topo_unref(u);
    {
        const char *j = "{\"members\":[],\"pqroute\":{\"vouch_ms\":86400000}}";
        u = pqri_topo_parse(j, strlen(j), NULL, 0);
        ok(u && u->vouch_ms == 3600000, "a vouch of a day is read as an hour (%lld)", u ? u->vouch_ms : -1);
        pqri_topo_unref(u);
    }
    pqri_topo_unref(t);

    /* Ports: 1..65535 only. */
    {
        const char *j = "{\"members\":[{\"name\":\"a\",\"host\":\"10.0.0.1\",\"port\":65536},"
                        "{\"name\":\"b\",\"host\":\"10.0.0.2\",\"port\":65535},"
                        "{\"name\":\"c\",\"host\":\"10.0.0.3\",\"port\":0}]}";
        t = pqri_topo_parse(j, strlen(j), NULL, 0);
        ok(t && t->n == 1 && strcmp(t->m[0].name, "b") == 0, "member ports 0 and 65536 are not taken, 65535 is");
        pqri_topo_unref(t);
    }
    /* Two claimants: the running one wins, even on an older timeline. */
    {
        const char *j = "{\"members\":[{\"name\":\"new\",\"role\":\"leader\",\"state\":\"stopped\",\"host\":\"10.0.0.1\",\"port\":5432,\"timeline\":5},"
                        "{\"name\":\"old\",\"role\":\"leader\",\"state\":\"running\",\"host\":\"10.0.0.2\",\"port\":5432,\"timeline\":4}]}";
        t = pqri_topo_parse(j, strlen(j), NULL, 0);
        ok(t && t->leader == 1, "two leaders: the running one is the leader (%d)", t ? t->leader : -2);
        ok(t && pqri_topo_leader_running(t), "and it is running");
        pqri_topo_unref(t);
    }
    /* A standby cluster's leader streams from its remote primary: that is running. */
    {
        const char *j = "{\"members\":[{\"name\":\"dr\",\"role\":\"standby_leader\",\"state\":\"streaming\",\"host\":\"10.0.0.1\",\"port\":5432}]}";
        t = pqri_topo_parse(j, strlen(j), NULL, 0);
        ok(t && pqri_topo_leader_running(t), "a streaming standby leader counts as running");
        pqri_topo_unref(t);
    }
    /* Tags are YAML in Patroni's configuration: a "true" string means true. */
    {
        const char *j = "{\"members\":[{\"name\":\"a\",\"host\":\"10.0.0.1\",\"port\":5432,\"tags\":{\"noloadbalance\":\"true\",\"nofailover\":\"true\"}},"
                        "{\"name\":\"b\",\"host\":\"10.0.0.2\",\"port\":5432,\"tags\":{\"noloadbalance\":\"false\"}}]}";
        t = pqri_topo_parse(j, strlen(j), NULL, 0);
        ok(t && t->m[0].noloadbalance && t->m[0].nofailover && !t->m[1].noloadbalance,
           "tags given as the string \"true\" count, \"false\" does not");
        pqri_topo_unref(t);
    }
    return done_testing();
}
