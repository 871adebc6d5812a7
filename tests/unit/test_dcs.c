/* Patroni's DCS keys -> topology, the DCS settings, and the watch stream's framing. */
#include "tap.h"
#include "dcs.h"
#include "http.h"
#include "log.h"
#include "secret.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Values as Patroni 3.0.2 wrote them into the loopback cluster's etcd. */
#define M1 "{\"conn_url\":\"postgres://127.0.0.11:5432/postgres\",\"api_url\":\"http://127.0.0.11:8008/patroni\",\"state\":\"running\",\"role\":\"%s\",\"version\":\"3.0.2\",\"xlog_location\":%s,\"timeline\":%s}"

static void put(struct pqri_kvset *s, const char *k, const char *v)
{
    if (pqri_kvset_put(s, k, strlen(k), v, strlen(v), 1) != 0)
        printf("# put %s refused\n", k);
}

static void member(struct pqri_kvset *s, int n, const char *role, long long pos, int tl)
{
    char k[32], v[512], p[32], t[16];
    snprintf(k, sizeof k, "members/node%d", n);
    snprintf(p, sizeof p, "%lld", pos);
    snprintf(t, sizeof t, "%d", tl);
    snprintf(v, sizeof v, M1, role, p, t);
    /* each node its own address */
    char *a = strstr(v, "127.0.0.11:5432");
    a[8] = (char)('0' + n);
    a = strstr(v, "127.0.0.11:8008");
    a[8] = (char)('0' + n);
    put(s, k, v);
}

static int find(const struct pqr_topology *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->m[i].name, name) == 0)
            return (int)i;
    return -1;
}

static struct pqr_topology *topo(struct pqri_kvset *s)
{
    char err[256] = "";
    struct pqr_topology *t = pqri_dcs_topology(s, "etcd test", err, sizeof err);
    if (!t)
        printf("# %s\n", err);
    return t;
}

static void test_topology(void)
{
    struct pqri_kvset s = {0};
    struct pqr_topology *t;
    int i;

    member(&s, 1, "master", 83886896, 1);
    member(&s, 2, "replica", 83886000, 1);
    member(&s, 3, "replica", 83886896, 1);
    put(&s, "leader", "node1");
    put(&s, "status", "{\"optime\":83886896}");
    put(&s, "sync", "{\"leader\":\"node1\",\"sync_standby\":\"node3\"}");
    ok(pqri_kvset_put(&s, "config", 6, "{}", 2, 1) == PQRI_KV_SKIPPED, "keys routing does not need are not kept");
    ok(pqri_kvset_put(&s, "members/a/b", 11, "{}", 2, 1) == PQRI_KV_SKIPPED, "nor keys deeper under members/");
    t = topo(&s);
    ok(t && t->n == 3 && t->leader >= 0 && strcmp(t->m[t->leader].name, "node1") == 0,
       "three members, node1 leads (leader key)");
    ok(t && strcmp(t->m[t->leader].host, "127.0.0.11") == 0 && t->m[t->leader].port == 5432,
       "host and port from conn_url (libpq's parser)");
    i = t ? find(t, "node2") : -1;
    ok(i >= 0 && t->m[i].lag == 896 && t->m[i].role == PQR_MEMBER_REPLICA, "lag from status optime");
    i = t ? find(t, "node3") : -1;
    ok(i >= 0 && t->m[i].role == PQR_MEMBER_SYNC_STANDBY && t->m[i].lag == 0, "sync standby from sync");
    ok(t && t->m[t->leader].api_url && strstr(t->m[t->leader].api_url, "127.0.0.11:8008"),
       "api_url kept (the REST fallback learns its endpoints)");
    ok(t && strcmp(t->source, "etcd test") == 0, "source set");
    ok(t && t->m[t->leader].lag == -1, "the leader has no lag");
    pqri_topo_unref(t);

    /* No position for the leader anywhere (no status key, none in its member key): lag unknown. */
    struct pqri_kvset u = {0};
    put(&u, "members/node1", "{\"conn_url\":\"postgres://127.0.0.11:5432/x\",\"role\":\"master\",\"state\":\"running\"}");
    member(&u, 2, "replica", 100, 1);
    put(&u, "leader", "node1");
    t = topo(&u);
    i = t ? find(t, "node2") : -1;
    ok(i >= 0 && t->m[i].lag == -1, "no leader position: a replica's lag is unknown (never 0)");
    pqri_topo_unref(t);
    pqri_kvset_clear(&u);

    /* A switchover, as the watch sees it: the leader key goes first. */
    pqri_kvset_del(&s, "leader", 6);
    t = topo(&s);
    ok(t && t->leader < 0 && t->n == 2 && find(t, "node1") < 0,
       "no leader key: no leader; a member still claiming the primary role is left out");
    pqri_topo_unref(t);
    put(&s, "leader", "node3");
    t = topo(&s);
    ok(t && t->leader >= 0 && strcmp(t->m[t->leader].name, "node3") == 0 && find(t, "node1") < 0,
       "the new leader key holder leads even while its member key still says replica");
    pqri_topo_unref(t);
    member(&s, 1, "replica", 83886896, 2);
    member(&s, 3, "primary", 83887000, 2); /* Patroni 4 says primary */
    t = topo(&s);
    ok(t && t->n == 3 && t->leader >= 0 && strcmp(t->m[t->leader].name, "node3") == 0 && t->max_tl == 2,
       "Patroni 4's primary role; the old leader back as a replica; timeline 2");
    pqri_topo_unref(t);

    /* A standby cluster. */
    member(&s, 3, "standby_leader", 1, 2);
    t = topo(&s);
    ok(t && t->leader >= 0 && t->m[t->leader].role == PQR_MEMBER_STANDBY_LEADER, "standby leader");
    pqri_topo_unref(t);

    /* Garbage in member values: that member is left out, the others stay. */
    put(&s, "members/node2", "{not json");
    put(&s, "members/evil", "{\"conn_url\":\"postgres://a,b:5432/x\",\"role\":\"replica\"}");
    put(&s, "members/sock", "{\"conn_url\":\"postgres:///x?host=/tmp\",\"role\":\"replica\"}");
    put(&s, "members/esc", "{\"conn_url\":\"postgres://10.0.0.9:5432/x\",\"role\":\"replica\",\"state\":\"run\\u001b[31m\"}");
    t = topo(&s);
    i = t ? find(t, "esc") : -1;
    ok(t && find(t, "node2") < 0 && find(t, "evil") < 0 && find(t, "sock") < 0 && i >= 0,
       "unreadable members, multi-host and socket conn_urls are left out");
    ok(i >= 0 && !strchr(t->m[i].state, '\033'), "control characters from the DCS are escaped (%s)",
       i >= 0 ? t->m[i].state : "?");
    pqri_topo_unref(t);
    pqri_kvset_clear(&s);

    /* One member's key turns bad (any node writes its own): only that key is left out, and what
     * it held before goes with it; the rest of the view is used. */
    member(&s, 1, "master", 83886896, 1);
    member(&s, 2, "replica", 83886896, 1);
    member(&s, 3, "replica", 83886896, 1);
    put(&s, "leader", "node1");
    ok(pqri_kvset_put(&s, "members/node3", 13, "{\"conn_url\":\"x\0", 16, 2) == PQRI_KV_SKIPPED,
       "a value with a NUL byte is skipped, not an error");
    ok(!pqri_kvset_get(&s, "members/node3"), "and the key's earlier value is gone with it");
    put(&s, "members/nostate", "{\"conn_url\":\"postgres://127.0.0.14:5432/x\",\"role\":\"replica\"}");
    t = topo(&s);
    ok(t && t->n == 3 && t->leader >= 0, "the other members and the leader are still used (%zu members)", t ? t->n : 0);
    int ns = -1;
    for (size_t j = 0; t && j < t->n; j++)
        if (strcmp(t->m[j].name, "nostate") == 0)
            ns = (int)j;
    ok(ns >= 0 && strcmp(t->m[ns].state, "unknown") == 0, "a member without a state: \"unknown\" (and no leak: valgrind)");
    pqri_topo_unref(t);
    pqri_kvset_clear(&s);

    /* Limits */
    char big[PQRI_DCS_MAX_VALUE + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ok(pqri_kvset_put(&s, "members/x", 9, big, strlen(big), 1) == PQRI_KV_SKIPPED, "a value over 64 KiB is refused");
    int refused = 0;
    for (int k = 0; k < PQRI_DCS_MAX_KEYS + 10; k++) {
        char key[32];
        snprintf(key, sizeof key, "members/m%d", k);
        refused += pqri_kvset_put(&s, key, strlen(key), "{}", 2, 1) == PQRI_KV_SKIPPED;
    }
    ok(s.n == PQRI_DCS_MAX_KEYS && refused == 10, "at most %d keys are kept", PQRI_DCS_MAX_KEYS);
    pqri_kvset_clear(&s);

    char p[128];
    ok(pqri_dcs_prefix(p, sizeof p, "/service", "pqroute", -1) == 0 && strcmp(p, "/service/pqroute/") == 0,
       "prefix %s", p);
    ok(pqri_dcs_prefix(p, sizeof p, "/service", "citus", 2) == 0 && strcmp(p, "/service/citus/2/") == 0,
       "a Citus group's prefix %s", p);
}

struct collected {
    char lines[8][64];
    int n;
};

static int collect(void *arg, const char *line, size_t len)
{
    struct collected *c = arg;
    if (c->n < 8)
        snprintf(c->lines[c->n++], 64, "%.*s", (int)len, line);
    return 0;
}

static void test_lines(void)
{
    const char *stream = "{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":3}\n{\"partial";
    struct collected c = {0};
    struct pqri_lines l = {NULL, 0, 64, collect, &c};
    /* every split point of the stream */
    bool all = true;
    for (size_t cut = 0; cut <= strlen(stream); cut++) {
        memset(&c, 0, sizeof c);
        pqri_lines_feed(&l, stream, cut);
        pqri_lines_feed(&l, stream + cut, strlen(stream) - cut);
        all = all && c.n == 4 && strcmp(c.lines[0], "{\"a\":1}") == 0 &&
              strcmp(c.lines[1], "{\"b\":2}") == 0 && c.lines[2][0] == 0 &&
              strcmp(c.lines[3], "{\"c\":3}") == 0 && l.len == strlen("{\"partial");
        pqri_lines_free(&l);
    }
    ok(all, "lines split at any byte come out whole (CRLF too), a partial one waits");
    char longer[100];
    memset(longer, 'x', sizeof longer);
    ok(pqri_lines_feed(&l, longer, sizeof longer) < 0, "a line longer than the limit is refused");
    pqri_lines_free(&l);
}

static void test_settings(void)
{
    struct pqr_settings s;
    char err[512];

    pqri_settings_init(&s);
    ok(pqri_settings_set(&s, "ETCD", "http://127.0.0.10:2379", err, sizeof err) == 0 &&
       pqri_settings_set(&s, "RW", "db:5432", err, sizeof err) == 0 &&
       pqri_settings_finish(&s, err, sizeof err) == -1 && strstr(err, "PQROUTE_SCOPE"),
       "ETCD without SCOPE is refused (%s)", err);
    pqri_settings_clear(&s);

    pqri_settings_init(&s);
    ok(pqri_settings_set(&s, "ETCD", "http://e1:2379,https://e2:2379/", err, sizeof err) == 0 &&
       pqri_settings_set(&s, "SCOPE", "batman", err, sizeof err) == 0 &&
       pqri_settings_set(&s, "NAMESPACE", "/pg//", err, sizeof err) == 0 &&
       pqri_settings_set(&s, "RW", "db:5432", err, sizeof err) == 0 &&
       pqri_settings_finish(&s, err, sizeof err) == 0 && s.nclusters == 1 &&
       s.clusters[0].dcs.kind == PQRI_DCS_ETCD && s.clusters[0].dcs.nurls == 2 &&
       strcmp(s.clusters[0].dcs.ns, "/pg") == 0 && s.clusters[0].nseeds == 0,
       "an etcd-only cluster: two endpoints, namespace normalised, no REST seeds needed (%s)", err);
    pqri_settings_clear(&s);

    pqri_settings_init(&s);
    ok(pqri_settings_set(&s, "ETCD", "http://e1:2379", err, sizeof err) == 0 &&
       pqri_settings_set(&s, "CONSUL", "http://c1:8500", err, sizeof err) == 0 &&
       pqri_settings_set(&s, "SCOPE", "batman", err, sizeof err) == 0 &&
       pqri_settings_set(&s, "RW", "db:5432", err, sizeof err) == 0 &&
       pqri_settings_finish(&s, err, sizeof err) == -1 && strstr(err, "choose one"),
       "ETCD and CONSUL together are refused (%s)", err);
    pqri_settings_clear(&s);

    pqri_settings_init(&s);
    ok(pqri_settings_set(&s, "SCOPE", "a/b", err, sizeof err) == -1 && strstr(err, "PQROUTE_SCOPE"),
       "a scope with a slash is refused (%s)", err);
    ok(pqri_settings_set(&s, "NAMESPACE", "service", err, sizeof err) == -1,
       "a namespace must start with / (%s)", err);
    ok(pqri_settings_set(&s, "ETCD", "etcd:2379", err, sizeof err) == -1 && strstr(err, "PQROUTE_ETCD"),
       "ETCD needs URLs (%s)", err);
    ok(pqri_settings_set(&s, "CITUS_GROUP", "-1", err, sizeof err) == -1, "a negative Citus group is refused");
    pqri_settings_clear(&s);

    /* The file: per-cluster DCS settings, and the top level's as defaults. */
    char path[] = "/tmp/pqr-dcs-conf-XXXXXX";
    int fd = mkstemp(path);
    const char *text =
        "scope = \"shared\";\n"
        "clusters = (\n"
        " { name = \"a\"; etcd = [\"http://e1:2379\"]; citus_group = 1; rw = \"a:5432\"; },\n"
        " { name = \"b\"; consul = \"http://c1:8500\"; scope = \"other\"; namespace = \"/x\"; rw = \"b:5432\"; },\n"
        " { name = \"c\"; patroni = [\"http://p1:8008\"]; rw = \"c:5432\"; }\n"
        ");\n";
    (void)!write(fd, text, strlen(text));
    close(fd);
    pqri_settings_init(&s);
    int rc = pqri_settings_from_file(&s, path, err, sizeof err);
    ok(rc == 0 && s.nclusters == 3 && s.clusters[0].dcs.kind == PQRI_DCS_ETCD &&
       strcmp(s.clusters[0].dcs.scope, "shared") == 0 && s.clusters[0].dcs.group == 1 &&
       s.clusters[1].dcs.kind == PQRI_DCS_CONSUL && strcmp(s.clusters[1].dcs.scope, "other") == 0 &&
       strcmp(s.clusters[1].dcs.ns, "/x") == 0 && s.clusters[2].dcs.kind == PQRI_DCS_NONE &&
       strcmp(s.clusters[0].key, s.clusters[1].key) != 0,
       "the file: etcd with a Citus group, Consul with its own scope, REST only (%s)", rc ? err : "");
    pqri_settings_clear(&s);
    fd = open(path, O_WRONLY | O_TRUNC);
    text = "clusters = ( { name = \"a\"; etcd = [\"http://e1:2379\"]; rw = \"a:5432\"; refresh_ms = 5; } );\n";
    (void)!write(fd, text, strlen(text));
    close(fd);
    pqri_settings_init(&s);
    ok(pqri_settings_from_file(&s, path, err, sizeof err) == -1 && strstr(err, ":1:") &&
       strstr(err, "not a per-cluster setting"), "a global setting inside a cluster is refused (%s)", err);
    pqri_settings_clear(&s);
    unlink(path);
}

static void test_secret(void)
{
    char path[] = "/tmp/pqr-secret-XXXXXX", err[256];
    int fd = mkstemp(path);
    char *pw;

    (void)!write(fd, "s3cret\nignored\n", 15);
    close(fd);
    chmod(path, 0600);
    pw = pqri_read_secret(path, err, sizeof err);
    ok(pw && strcmp(pw, "s3cret") == 0, "a password file's first line");
    pqri_free_secret(pw);
    chmod(path, 0644);
    pw = pqri_read_secret(path, err, sizeof err);
    ok(!pw && strstr(err, "0600"), "a password file others can read is refused (%s)", err);
    pqri_free_secret(pw);
    unlink(path);
    /* A FIFO where the file should be: refused at once, never a blocked open() (the alarm fails
     * the test instead of hanging it). */
    if (mkfifo(path, 0600) == 0) {
        alarm(10);
        pw = pqri_read_secret(path, err, sizeof err);
        alarm(0);
        ok(!pw && strstr(err, "not a regular file"), "a FIFO as the password file: refused, no wait (%s)", err);
        pqri_free_secret(pw);
        unlink(path);
    }
}

int main(void)
{
    pqri_log_set(PQRI_LOG_ERROR);
    test_topology();
    test_lines();
    test_settings();
    test_secret();
    return done_testing();
}
