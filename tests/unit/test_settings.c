/* Settings: every variable, malformed values, the configuration file, where each setting may be
 * given, and running out of memory. */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tap.h"
#include "addr.h"
#include "settings.h"
#include "log.h"

static const char *vars[] = {"PQROUTE_PATRONI", "PQROUTE_RW", "PQROUTE_RO", "PQROUTE_CONFIG",
                             "PQROUTE_LOG", "PQROUTE_REFRESH_MS", "PQROUTE_STALE_MS",
                             "PQROUTE_REST_TIMEOUT_MS", "PQROUTE_CONNECT_TIMEOUT", "PQROUTE_MAX_LAG",
                             "PQROUTE_MEMBER_PORT", "PQROUTE_REST_CA", "PQROUTE_REST_CERT",
                             "PQROUTE_REST_KEY", "PQROUTE_CACHE_DIR", "PQROUTE_ALLOW",
                             "PQROUTE_FRONT_DOOR", "PQROUTE_START_WAIT_MS", "PQROUTE_ETCD",
                             "PQROUTE_CONSUL", "PQROUTE_SCOPE", "PQROUTE_NAMESPACE",
                             "PQROUTE_CITUS_GROUP", "PQROUTE_ETCD_CA", "PQROUTE_ETCD_CERT",
                             "PQROUTE_ETCD_KEY", "PQROUTE_ETCD_USER", "PQROUTE_ETCD_PASSWORD_FILE",
                             "PQROUTE_CONSUL_TOKEN_FILE", "PQROUTE_ZONE", "PQROUTE_ZONE_TAG",
                             "PQROUTE_RO_FALLBACK", NULL};

static void clear_env(void)
{
    for (int i = 0; vars[i]; i++)
        unsetenv(vars[i]);
}

static int load(struct pqr_settings *s, char *err, size_t len)
{
    err[0] = 0;
    return pqri_settings_load(s, err, len);
}

/* One malformed value: load fails and the message names the variable. */
static void bad(const char *var, const char *value)
{
    struct pqr_settings s;
    char err[512];
    clear_env();
    setenv("PQROUTE_PATRONI", "http://127.0.0.1:8008", 1);
    setenv("PQROUTE_RW", "db:5432", 1);
    setenv(var, value, 1);
    int rc = load(&s, err, sizeof err);
    ok(rc == -1 && strstr(err, var) && !strchr(err, '\n'), "%s=\"%s\" -> %s", var, value, err);
    pqri_settings_clear(&s);
}

static const char *write_file(const char *text, mode_t mode)
{
    static char path[] = "/tmp/pqr-test-conf-XXXXXX";
    strcpy(path, "/tmp/pqr-test-conf-XXXXXX");
    int fd = mkstemp(path);
    if (write(fd, text, strlen(text)) < 0)
        return NULL;
    close(fd);
    chmod(path, mode);
    return path;
}

/* Where each setting may be given in the file: every per-cluster one in a clusters entry, and
 * exactly these; the rest refused there, with the message they always had. */
static void per_cluster(void)
{
    struct pqr_settings s;
    char err[512], text[2048], f[64], want[600];
    const char *path;
    int rc;

    snprintf(f, sizeof f, "%s", write_file("readable\n", 0600));
    snprintf(text, sizeof text,
             "clusters = (\n"
             "  { name = \"e\"; rw = \"db:5432\"; member_port = 6432; max_lag = 5;\n"
             "    zone = \"b,a\"; zone_tag = \"az\"; ro_fallback = \"leader\";\n"
             "    etcd = \"http://e1:2379\"; scope = \"batman\"; namespace = \"/pg\"; citus_group = 2;\n"
             "    etcd_ca = \"%s\"; etcd_cert = \"%s\"; etcd_key = \"%s\"; etcd_user = \"u\";\n"
             "    etcd_password_file = \"%s\"; },\n"
             "  { name = \"c\"; rw = \"db:5432\"; consul = \"http://c1:8500\"; scope = \"robin\";\n"
             "    consul_token_file = \"%s\"; }\n"
             ");\n",
             f, f, f, f, f);
    path = write_file(text, 0600);
    clear_env();
    setenv("PQROUTE_CONFIG", path, 1);
    rc = load(&s, err, sizeof err);
    ok(rc == 0 && s.nclusters == 2, "every per-cluster setting is accepted in a clusters entry (%s)",
       err);
    if (rc == 0 && s.nclusters == 2) {
        const struct pqri_cluster_conf *e = &s.clusters[0], *c = &s.clusters[1];
        ok(e->member_port == 6432 && e->max_lag == 5 && e->dcs.kind == PQRI_DCS_ETCD &&
               strcmp(e->dcs.scope, "batman") == 0 && strcmp(e->dcs.ns, "/pg") == 0 &&
               e->dcs.group == 2 && strcmp(e->dcs.ca, f) == 0 && strcmp(e->dcs.cert, f) == 0 &&
               strcmp(e->dcs.key, f) == 0 && strcmp(e->dcs.user, "u") == 0 &&
               strcmp(e->dcs.password_file, f) == 0 && strcmp(pqri_zone(&s, e), "b,a") == 0 &&
               strcmp(pqri_zone_tag(&s, e), "az") == 0 && pqri_ro_fallback(&s, e) == PQRI_RO_LEADER,
           "... and each holds for its cluster");
        ok(c->dcs.kind == PQRI_DCS_CONSUL && strcmp(c->dcs.scope, "robin") == 0 &&
               strcmp(c->dcs.token_file, f) == 0 && c->member_port == 0 && c->max_lag == -1 &&
               !pqri_zone(&s, c) && strcmp(pqri_zone_tag(&s, c), "zone") == 0 &&
               pqri_ro_fallback(&s, c) == PQRI_RO_DOOR,
           "... and only for its cluster (zone unset, tag \"zone\", fallback door)");
    }
    pqri_settings_clear(&s);
    unlink(path);

    /* every other setting, and the entry's own keys in capitals, refused in a clusters entry */
    static const char *const global_only[] = {
        "log = \"info\"", "refresh_ms = 500", "stale_ms = 5000", "rest_timeout_ms = 500",
        "connect_timeout = 3", "start_wait_ms = 50", "rest_ca = \"/dev/null\"",
        "rest_cert = \"/dev/null\"", "rest_key = \"/dev/null\"", "cache_dir = \"/tmp\"",
        "allow = \"10.0.0.0/8\"", "front_door = \"last\"", "PATRONI = \"http://a:8008\"",
        "RW = \"db:5432\"", "bogus = 1", "pqroute_member_port = 6432"};
    for (size_t i = 0; i < sizeof global_only / sizeof *global_only; i++) {
        char key[32];
        snprintf(key, sizeof key, "%.*s", (int)strcspn(global_only[i], " "), global_only[i]);
        snprintf(text, sizeof text,
                 "clusters = (\n  { patroni = \"http://a:8008\"; rw = \"db:5432\";\n    %s; }\n);\n",
                 global_only[i]);
        path = write_file(text, 0600);
        clear_env();
        setenv("PQROUTE_CONFIG", path, 1);
        rc = load(&s, err, sizeof err);
        snprintf(want, sizeof want, "PQROUTE_CONFIG: %s:3: \"%s\" is not a per-cluster setting",
                 path, key);
        ok(rc == -1 && strcmp(err, want) == 0, "%s refused in a clusters entry: %s", key, err);
        pqri_settings_clear(&s);
        unlink(path);
    }

    /* what makes a cluster belongs inside an entry, in any case; the rest is fine at the top */
    static const char *const entry_only[] = {"patroni", "rw", "ro", "Patroni"};
    for (size_t i = 0; i < sizeof entry_only / sizeof *entry_only; i++) {
        snprintf(text, sizeof text,
                 "log = \"error\";\n%s = \"db:5432\";\n"
                 "clusters = ( { patroni = \"http://a:8008\"; rw = \"db:5432\"; } );\n",
                 entry_only[i]);
        path = write_file(text, 0600);
        clear_env();
        setenv("PQROUTE_CONFIG", path, 1);
        rc = load(&s, err, sizeof err);
        snprintf(want, sizeof want, "PQROUTE_CONFIG: %s:2: \"%s\" belongs inside a clusters entry",
                 path, entry_only[i]);
        ok(rc == -1 && strcmp(err, want) == 0, "%s refused at the top level: %s", entry_only[i],
           err);
        pqri_settings_clear(&s);
        unlink(path);
    }
    snprintf(text, sizeof text,
             "member_port = 6000; max_lag = 7; scope = \"top\"; namespace = \"/ns\";\n"
             "etcd_user = \"top\"; etcd_ca = \"%s\"; citus_group = 3;\n"
             "clusters = ( { etcd = \"http://e1:2379\"; rw = \"db:5432\"; } );\n", f);
    path = write_file(text, 0600);
    clear_env();
    setenv("PQROUTE_CONFIG", path, 1);
    rc = load(&s, err, sizeof err);
    ok(rc == 0 && s.nclusters == 1 && s.member_port == 6000 && s.max_lag == 7 &&
           pqri_settings_member_port(&s, &s.clusters[0]) == 6000 && pqri_max_lag(&s, &s.clusters[0]) == 7 &&
           strcmp(s.clusters[0].dcs.scope, "top") == 0 && strcmp(s.clusters[0].dcs.ns, "/ns") == 0 &&
           strcmp(s.clusters[0].dcs.user, "top") == 0 && strcmp(s.clusters[0].dcs.ca, f) == 0 &&
           s.clusters[0].dcs.group == 3,
       "per-cluster settings at the top level are every cluster's (%s)", err);
    pqri_settings_clear(&s);
    unlink(path);
    unlink(f);
}

/* Out of memory at the n-th allocation. The allocator is glibc's own, counted: under a sanitizer
 * (which brings its own) the checks are skipped. */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define COUNTED_MALLOC 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
/* volatile: the compiler would not see them change inside strdup() and the like */
static volatile long fail_at = -1; /* allocations left before the one that fails; -1: none */
static volatile bool failed;       /* one did */

/* exported (the tests are built with hidden visibility): the C library's own strdup() and the
 * like must find these */
#define PUBLIC __attribute__((visibility("default")))

static bool fail_now(void)
{
    if (fail_at < 0 || fail_at-- > 0)
        return false;
    failed = true;
    errno = ENOMEM;
    return true;
}
PUBLIC void *malloc(size_t n)
{
    return fail_now() ? NULL : __libc_malloc(n);
}
PUBLIC void *calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : __libc_calloc(n, size);
}
PUBLIC void *realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __libc_realloc(p, n);
}
PUBLIC void free(void *p)
{
    __libc_free(p);
}

static bool same_str(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

static bool same_strv(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!same_str(a[i], b[i]))
            return false;
    return true;
}

static bool same_dcs(const struct pqri_dcs_conf *a, const struct pqri_dcs_conf *b)
{
    return a->kind == b->kind && same_strv(a->urls, a->nurls, b->urls, b->nurls) &&
           same_str(a->scope, b->scope) && same_str(a->ns, b->ns) && a->group == b->group &&
           same_str(a->ca, b->ca) && same_str(a->cert, b->cert) && same_str(a->key, b->key) &&
           same_str(a->user, b->user) && same_str(a->password_file, b->password_file) &&
           same_str(a->token_file, b->token_file);
}

/* Every setting of a is in b: nothing dropped on the way. */
static bool same_settings(const struct pqr_settings *a, const struct pqr_settings *b)
{
    if (a->nclusters != b->nclusters || a->nallow != b->nallow ||
        (a->nallow && memcmp(a->allow, b->allow, a->nallow * sizeof *a->allow) != 0) ||
        a->refresh_ms != b->refresh_ms || a->stale_ms != b->stale_ms ||
        a->rest_timeout_ms != b->rest_timeout_ms || a->connect_timeout_s != b->connect_timeout_s ||
        a->start_wait_ms != b->start_wait_ms || a->max_lag != b->max_lag ||
        a->member_port != b->member_port || a->log_level != b->log_level ||
        a->door_mode != b->door_mode || !same_str(a->rest_ca, b->rest_ca) ||
        !same_str(a->rest_cert, b->rest_cert) || !same_str(a->rest_key, b->rest_key) ||
        !same_str(a->cache_dir, b->cache_dir) || !same_str(a->env_patroni, b->env_patroni) ||
        !same_str(a->env_rw, b->env_rw) || !same_str(a->env_ro, b->env_ro) ||
        !same_str(a->etcd, b->etcd) || !same_str(a->consul, b->consul) ||
        !same_str(a->zone, b->zone) || !same_str(a->zone_tag, b->zone_tag) ||
        a->ro_fallback != b->ro_fallback || !same_dcs(&a->dcs, &b->dcs))
        return false;
    for (size_t i = 0; i < a->nclusters; i++) {
        const struct pqri_cluster_conf *x = &a->clusters[i], *y = &b->clusters[i];
        if (!same_str(x->name, y->name) || !same_strv(x->seeds, x->nseeds, y->seeds, y->nseeds) ||
            !same_str(x->rw_host, y->rw_host) || x->rw_port != y->rw_port ||
            !same_str(x->ro_host, y->ro_host) || x->ro_port != y->ro_port ||
            x->member_port != y->member_port || x->max_lag != y->max_lag ||
            !same_str(x->zone, y->zone) || !same_str(x->zone_tag, y->zone_tag) ||
            x->ro_fallback != y->ro_fallback || !same_str(x->key, y->key) ||
            !same_dcs(&x->dcs, &y->dcs))
            return false;
    }
    return true;
}

/* The environment of a cluster with every kind of setting (f: a readable file). */
static void full_env(const char *f)
{
    clear_env();
    setenv("PQROUTE_PATRONI", "http://127.0.0.11:8008,https://[::1]:8008", 1);
    setenv("PQROUTE_RW", "rw.example:5432", 1);
    setenv("PQROUTE_RO", "[fd00::1]:5433", 1);
    setenv("PQROUTE_ALLOW", "127.0.0.0/8, fd00::/8", 1);
    setenv("PQROUTE_CACHE_DIR", "/tmp/pqr-test-cache", 1);
    setenv("PQROUTE_REST_CA", f, 1);
    setenv("PQROUTE_REST_CERT", f, 1);
    setenv("PQROUTE_REST_KEY", f, 1);
    setenv("PQROUTE_ETCD", "http://e1:2379,http://e2:2379", 1);
    setenv("PQROUTE_SCOPE", "batman", 1);
    setenv("PQROUTE_NAMESPACE", "/pg/", 1);
    setenv("PQROUTE_ETCD_CA", f, 1);
    setenv("PQROUTE_ETCD_CERT", f, 1);
    setenv("PQROUTE_ETCD_KEY", f, 1);
    setenv("PQROUTE_ETCD_USER", "u", 1);
    setenv("PQROUTE_ETCD_PASSWORD_FILE", f, 1);
    setenv("PQROUTE_CONSUL_TOKEN_FILE", f, 1);
    setenv("PQROUTE_MEMBER_PORT", "6432", 1);
    setenv("PQROUTE_ZONE", "b,a", 1);
    setenv("PQROUTE_ZONE_TAG", "az", 1);
    setenv("PQROUTE_RO_FALLBACK", "leader", 1);
}
#endif

#ifdef COUNTED_MALLOC
/* pqri_settings_copy() of src with each of its allocations failing in turn: how many there are,
 * the copies short of a setting and the failures that were not reported. */
static long copies_out_of_memory(const struct pqr_settings *src, long *dropped, long *silent)
{
    struct pqr_settings got;
    long n;

    *dropped = *silent = 0;
    for (n = 0;; n++) {
        failed = false;
        fail_at = n;
        int rc = pqri_settings_copy(&got, src);
        fail_at = -1;
        if (rc == 0 && !same_settings(src, &got))
            (*dropped)++;
        if (rc < 0 && !failed)
            (*silent)++;
        pqri_settings_clear(&got);
        if (!failed)
            return n;
    }
}
#endif

/* Each allocation in turn fails: the copy and the loading either fail with an error, or hold
 * every setting. Never a setting silently left out (a TLS file, a prefix, a seed). */
static void out_of_memory(void)
{
#ifdef COUNTED_MALLOC
    struct pqr_settings want, unfinished, got;
    char err[512], f[64];
    long n, dropped = 0, silent = 0, bad_message = 0;
    int rc;

    snprintf(f, sizeof f, "%s", write_file("readable\n", 0600));
    failed = false;
    fail_at = 0;
    char *probe = strdup(f);
    fail_at = -1;
    if (probe || !failed) { /* another allocator took over (valgrind's) */
        free(probe);
        unlink(f);
        ok(1, "# SKIP out of memory: the allocator is not this test's");
        return;
    }
    full_env(f);
    rc = load(&want, err, sizeof err);
    ok(rc == 0 && want.nclusters == 1 && want.clusters[0].dcs.kind == PQRI_DCS_ETCD,
       "out of memory: the reference settings load (%s)", err);
    pqri_settings_init(&unfinished);
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && pqri_settings_set(&unfinished, vars[i], v, err, sizeof err) < 0)
            ok(0, "unfinished: %s", err);
    }

    n = copies_out_of_memory(&want, &dropped, &silent);
    ok(n > 20 && !dropped && !silent,
       "the copy of finished settings, out of memory at each of its %ld allocations: "
       "%ld copies short of a setting, %ld failures without one", n, dropped, silent);
    n = copies_out_of_memory(&unfinished, &dropped, &silent);
    ok(n > 10 && !dropped && !silent,
       "the copy of unfinished settings, out of memory at each of its %ld allocations: "
       "%ld copies short of a setting, %ld failures without one", n, dropped, silent);

    dropped = 0;
    for (n = 0;; n++) {
        failed = false;
        err[0] = 0;
        fail_at = n;
        rc = pqri_settings_load(&got, err, sizeof err);
        fail_at = -1;
        if (rc == 0 && !same_settings(&want, &got))
            dropped++;
        if (rc != 0 && !strstr(err, "out of memory") && !bad_message++)
            printf("#   at allocation %ld: \"%s\"\n", n, err);
        pqri_settings_clear(&got);
        if (!failed)
            break;
    }
    ok(n > 20 && !dropped && !bad_message,
       "the environment loaded out of memory at each of its %ld allocations: %ld loads short of "
       "a setting, %ld failures not saying \"out of memory\"", n, dropped, bad_message);
    pqri_settings_clear(&want);
    pqri_settings_clear(&unfinished);
    unlink(f);
#else
    ok(1, "# SKIP out of memory: not with this allocator");
#endif
}

int main(void)
{
    struct pqr_settings s;
    char err[512];
    int rc;

    clear_env();
    rc = load(&s, err, sizeof err);
    ok(rc == 1 && !err[0], "nothing set: disabled, silently");
    pqri_settings_clear(&s);

    setenv("PQROUTE_PATRONI", " http://127.0.0.11:8008/ ,https://[::1]:8008", 1);
    setenv("PQROUTE_RW", "traefik.example:5432", 1);
    setenv("PQROUTE_RO", "[fd00::1]:5433", 1);
    setenv("PQROUTE_MEMBER_PORT", "6432", 1);
    setenv("PQROUTE_ALLOW", "127.0.0.0/8, fd00::/8", 1);
    rc = load(&s, err, sizeof err);
    ok(rc == 0, "valid environment loads (%s)", err);
    ok(s.nclusters == 1 && s.clusters[0].nseeds == 2, "one cluster, two seeds");
    is_str(s.clusters[0].seeds[0], "http://127.0.0.11:8008", "seed trimmed, trailing slash dropped");
    is_str(s.clusters[0].rw_host, "traefik.example", "RW host");
    is_int(s.clusters[0].rw_port, 5432, "RW port");
    is_str(s.clusters[0].ro_host, "fd00::1", "RO host in brackets");
    is_int(pqri_settings_member_port(&s, &s.clusters[0]), 6432, "member port override");
    ok(pqri_cidr_allows(s.allow, s.nallow, "127.1.2.3") && pqri_cidr_allows(s.allow, s.nallow, "fd00::5") &&
       !pqri_cidr_allows(s.allow, s.nallow, "10.0.0.1") && !pqri_cidr_allows(s.allow, s.nallow, "::1"),
       "allow-list matches v4 and v6 prefixes");
    is_int(s.refresh_ms, 1000, "default refresh 1000 ms");
    is_int(s.door_mode, PQRI_DOOR_ADAPTIVE, "default front-door rule: adaptive");
    /* the README's bound for a silent watch stream (15 s) is this plus two reads */
    is_int(s.watch_check_ms, 12000, "default watch check 12000 ms");
    pqri_settings_clear(&s);

    bad("PQROUTE_PATRONI", "");
    bad("PQROUTE_PATRONI", "node1:8008");
    bad("PQROUTE_PATRONI", "ftp://node1:8008");
    bad("PQROUTE_PATRONI", "http://a:8008,");
    bad("PQROUTE_PATRONI", "http://a b:8008");
    bad("PQROUTE_RW", "");
    bad("PQROUTE_RW", "db:notaport");
    bad("PQROUTE_RW", "db:70000");
    bad("PQROUTE_RW", "db:0");
    bad("PQROUTE_RW", "db:65536");
    bad("PQROUTE_RO", "db x:5432");
    bad("PQROUTE_RO", "db\t:5432");
    bad("PQROUTE_RW", "host=evil dbname=x:5432");
    bad("PQROUTE_RW", "a,b:5432");
    bad("PQROUTE_RW", "::1:5432");
    bad("PQROUTE_RO", "db:");
    bad("PQROUTE_LOG", "verbose");
    bad("PQROUTE_REFRESH_MS", "1s");
    bad("PQROUTE_REFRESH_MS", "-5");
    bad("PQROUTE_STALE_MS", "99999999999999999999");
    bad("PQROUTE_REST_TIMEOUT_MS", "0");
    bad("PQROUTE_CONNECT_TIMEOUT", "two");
    bad("PQROUTE_MAX_LAG", "1MB");
    bad("PQROUTE_MEMBER_PORT", "0");
    bad("PQROUTE_REST_CA", "/nonexistent/ca.pem");
    bad("PQROUTE_CACHE_DIR", "relative/dir");
    bad("PQROUTE_ALLOW", "10.0.0.0/33");
    bad("PQROUTE_ALLOW", "not-an-address");
    bad("PQROUTE_FRONT_DOOR", "sometimes");
    bad("PQROUTE_ZONE", "b,");
    bad("PQROUTE_ZONE", ",b");
    bad("PQROUTE_ZONE", "b,,a");
    bad("PQROUTE_ZONE", "b,a,b");
    bad("PQROUTE_ZONE", "eu west");
    bad("PQROUTE_ZONE", "a,b,c,d,e,f,g,h,i");
    bad("PQROUTE_ZONE_TAG", "a/b");
    bad("PQROUTE_RO_FALLBACK", "primary");
    bad("PQROUTE_CONFIG", "");
    bad("PQROUTE_CONFIG", "/nonexistent/libpqroute.conf");

    clear_env();
    setenv("PQROUTE_RW", "db:5432", 1);
    rc = load(&s, err, sizeof err);
    ok(rc == -1 && strstr(err, "PQROUTE_PATRONI"), "RW without PATRONI: %s", err);
    pqri_settings_clear(&s);

    clear_env();
    setenv("PQROUTE_PATRONI", "http://a:8008", 1);
    rc = load(&s, err, sizeof err);
    ok(rc == -1 && strstr(err, "front door"), "PATRONI without a front door: %s", err);
    pqri_settings_clear(&s);

    /* The file: two clusters, globals, per-cluster overrides; the environment on top. */
    const char *path = write_file(
        "refresh_ms = 500;\nmax_lag = 1000;\nlog = \"error\";\n"
        "clusters = (\n"
        "  { name = \"main\"; patroni = [\"http://10.0.0.1:8008\", \"http://10.0.0.2:8008\"];\n"
        "    rw = \"main-db:5432\"; ro = \"main-db:5433\"; member_port = 6432; },\n"
        "  { name = \"billing\"; patroni = \"http://10.1.0.1:8008\"; rw = \"billing-db:5432\"; max_lag = 0; }\n"
        ");\n", 0600);
    clear_env();
    setenv("PQROUTE_CONFIG", path, 1);
    setenv("PQROUTE_REFRESH_MS", "250", 1);
    rc = load(&s, err, sizeof err);
    ok(rc == 0 && s.nclusters == 2, "file with two clusters loads (%s)", err);
    is_int(s.refresh_ms, 250, "environment overrides the file");
    is_int(s.log_level, PQRI_LOG_ERROR, "log level from the file");
    ok(s.nclusters == 2 && pqri_settings_member_port(&s, &s.clusters[0]) == 6432 &&
       pqri_settings_member_port(&s, &s.clusters[1]) == 0, "per-cluster member_port");
    ok(s.nclusters == 2 && pqri_max_lag(&s, &s.clusters[0]) == 1000 && pqri_max_lag(&s, &s.clusters[1]) == 0,
       "per-cluster max_lag over the global one");
    ok(s.nclusters == 2 && strcmp(s.clusters[0].key, s.clusters[1].key) != 0, "distinct cache keys");
    pqri_settings_clear(&s);
    setenv("PQROUTE_PATRONI", "http://127.0.0.1:8008", 1);
    setenv("PQROUTE_RW", "env-db:5432", 1);
    rc = load(&s, err, sizeof err);
    ok(rc == 0 && s.nclusters == 3 && strcmp(s.clusters[0].name, "env") == 0,
       "the environment's cluster comes first");
    pqri_settings_clear(&s);
    unlink(path);

    struct { const char *text; const char *want; } files[] = {
        {"clusters = ( { patroni = [\"http://a:8008\"]; rw = \"db:5432\" } ", "syntax error"},
        {"refresh_ms = 5;\nclusters = ( { patroni = [\"http://a:8008\"]; rw = \"db:5432\"; } );", "REFRESH_MS"},
        {"clusters = ( { rw = \"db:5432\"; } );", "no source"},
        {"clusters = ( { patroni = \"http://a:8008\"; } );", "front door"},
        {"clusters = ( { patroni = \"http://a:8008\"; rw = \"db:port\"; } );", "host:port"},
        {"bogus = 1;\nclusters = ( { patroni = \"http://a:8008\"; rw = \"db:5432\"; } );", "unknown setting"},
        {"rw = \"db:5432\";\n", "clusters entry"},
        {"log = \"info\";\n", "no clusters"},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        path = write_file(files[i].text, 0600);
        clear_env();
        setenv("PQROUTE_CONFIG", path, 1);
        rc = load(&s, err, sizeof err);
        ok(rc == -1 && strstr(err, files[i].want) && strstr(err, path), "bad file %zu: %s", i, err);
        pqri_settings_clear(&s);
        unlink(path);
    }
    path = write_file("clusters = ( { patroni = \"http://a:8008\"; rw = \"db:5432\"; } );", 0666);
    chmod(path, 0666);
    clear_env();
    setenv("PQROUTE_CONFIG", path, 1);
    rc = load(&s, err, sizeof err);
    ok(rc == -1 && strstr(err, "writable"), "world-writable file ignored: %s", err);
    pqri_settings_clear(&s);
    unlink(path);

    /* Comments only (the example a package installs as /etc/libpqroute.conf): no error, nothing
     * configured by it; the environment's cluster is used as without the file. */
    path = write_file("# clusters = ( { patroni = \"http://a:8008\"; rw = \"db:5432\"; } );\n// x\n", 0644);
    clear_env();
    setenv("PQROUTE_CONFIG", path, 1);
    setenv("PQROUTE_PATRONI", "http://a:8008", 1);
    setenv("PQROUTE_RW", "db:5432", 1);
    rc = load(&s, err, sizeof err);
    ok(rc == 0 && s.nclusters == 1 && strcmp(s.clusters[0].name, "env") == 0,
       "a file of comments only configures nothing, and is no error (%s)", err);
    pqri_settings_clear(&s);
    unlink(path);

    /* @include: every included file passes the main file's checks, on the descriptor parsed. */
    char inc[64], main_text[256];
    snprintf(inc, sizeof inc, "%s", write_file("clusters = ( { name = \"inc\"; patroni = \"http://a:8008\"; rw = \"db:5432\"; } );\n", 0644));
    snprintf(main_text, sizeof main_text, "log = \"error\";\n  @include \"%s\"\n", inc);
    path = write_file(main_text, 0600);
    clear_env();
    setenv("PQROUTE_CONFIG", path, 1);
    rc = load(&s, err, sizeof err);
    ok(rc == 0 && s.nclusters == 1 && strcmp(s.clusters[0].name, "inc") == 0, "@include of a safe file works (%s)", err);
    pqri_settings_clear(&s);
    chmod(inc, 0666);
    rc = load(&s, err, sizeof err);
    ok(rc == -1 && strstr(err, inc) && strstr(err, "writable"), "@include of a world-writable file is refused: %s", err);
    pqri_settings_clear(&s);
    unlink(inc);
    rc = load(&s, err, sizeof err);
    ok(rc == -1 && strstr(err, inc), "@include of a missing file names it: %s", err);
    pqri_settings_clear(&s);
    unlink(path);

    /* Credentials in a REST URL never appear in a message. */
    clear_env();
    setenv("PQROUTE_PATRONI", "http://user:hunter2@a:8008,ftp://u:hunter2@b", 1);
    setenv("PQROUTE_RW", "db:5432", 1);
    rc = load(&s, err, sizeof err);
    ok(rc == -1 && !strstr(err, "hunter2") && strstr(err, "ftp://b"), "a bad URL is quoted without its password: %s", err);
    pqri_settings_clear(&s);

    per_cluster();
    out_of_memory();
    return done_testing();
}
