/*
 * Conninfo -> routed parameters, through libpq's own option processing (the probe): strings, URIs,
 * keyword arrays with dbname expansion, PG* environment, service files, .pgpass, quoting and
 * passwords, target_session_attrs, injection attempts. No network: the snapshot is injected.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "tap.h"
#include "connect.h"
#include "failures.h"
#include "refresher.h"
#include "direct.h"
#include "log.h"

static const char *VIEW =
    "{\"members\":["
    "{\"name\":\"n1\",\"role\":\"replica\",\"state\":\"streaming\",\"host\":\"10.0.0.1\",\"port\":5432,\"timeline\":4,\"lag\":0},"
    "{\"name\":\"n2\",\"role\":\"leader\",\"state\":\"running\",\"host\":\"10.0.0.2\",\"port\":5432,\"timeline\":4},"
    "{\"name\":\"n3\",\"role\":\"replica\",\"state\":\"streaming\",\"host\":\"10.0.0.3\",\"port\":5433,\"timeline\":4,\"lag\":10},"
    "{\"name\":\"evil\",\"role\":\"replica\",\"state\":\"streaming\",\"host\":\"x' host=evil.example sslmode=disable\",\"port\":5432,\"timeline\":4,\"lag\":0}"
    "]}";

static struct pqri_views *r;
static char dir[] = "/tmp/pqr-route-XXXXXX";

static void inject(long long age_ms)
{
    struct pqr_topology *t = pqri_topo_parse(VIEW, strlen(VIEW), NULL, 0);
    pqri_topo_filter(t, pqri_views_settings(r), pqri_view_conf(pqri_views_at(r, 0)));
    t->fetched_ms = pqri_now_ms() - age_ms;
    t->mono_ms = pqri_mono_ms() - age_ms;
    pqri_view_set(pqri_views_at(r, 0), t);
    pqri_topo_unref(t);
}

/* A libpq stand-in for the connect itself (the probes go to the real one): each attempt follows a
 * script of (host, status, what PQconnectPoll says) steps, and its hostaddr list is recorded. */
struct step {
    const char *addr, *port;
    ConnStatusType st;
    PostgresPollingStatusType ret; /* what the PQconnectPoll that leads to this step returns */
};
#define MAXSTEPS 8
#define S(addr, port, st, ret) {addr, port, st, ret}
#define W PGRES_POLLING_WRITING
#define R PGRES_POLLING_READING
static struct {
    int calls, cur, step, blocking_calls;
    char hostaddr[4][256];
    struct step script[4][MAXSTEPS];
    PGconn *last;
    int ready_fd, silent_fd; /* always ready / never writable */
    bool silent;             /* the current attempt's socket never becomes writable */
    bool members_silent;     /* every member's socket never becomes writable; the door answers */
    bool blocking_door_only; /* the last PQconnectdbParams was given the front door alone */
    bool no_door;            /* the current attempt's list has no front door: its steps end before */
    char tail[64], tail_port[16]; /* ... at its last member */
    char first[MAXSTEPS][64], first_port[MAXSTEPS][16];
    bool needs_password, used_password; /* what libpq says of a failed attempt's login */
    bool login_fails;                   /* every attempt ends at its first entry's login */
    const char *errmsg;                 /* libpq's message for a failed attempt (NULL: the real one) */
} fake;

/* The first entry of a comma-separated list into out. */
static void first_of(const char *list, char *out, size_t len)
{
    snprintf(out, len, "%.*s", (int)strcspn(list, ","), list);
}

static bool is_probe(const char *const *v)
{
    for (size_t i = 0; v[i]; i++)
        if (strcmp(v[i], "pqroute-probe-invalid") == 0)
            return true;
    return false;
}

static PGconn *bogus_conn(void)
{
    static const char *const bk[] = {"dbname", "target_session_attrs", NULL}, *const bv[] = {"x", "bogus", NULL};
    return PQconnectStartParams(bk, bv, 0); /* a PGconn that never connects */
}

static PGconn *fake_start(const struct pqri_libpq *pq, const char *const *k, const char *const *v, int e)
{
    (void)pq;
    if (is_probe(v))
        return PQconnectStartParams(k, v, e);
    fake.no_door = false;
    for (size_t i = 0; k[i]; i++)
        if (strcmp(k[i], "hostaddr") == 0) {
            if (fake.calls < 4)
                snprintf(fake.hostaddr[fake.calls], sizeof fake.hostaddr[0], "%s", v[i]);
            fake.no_door = v[i][0] && v[i][strlen(v[i]) - 1] != ','; /* the door's entry is empty */
            snprintf(fake.tail, sizeof fake.tail, "%s", strrchr(v[i], ',') ? strrchr(v[i], ',') + 1 : v[i]);
        } else if (strcmp(k[i], "port") == 0)
            snprintf(fake.tail_port, sizeof fake.tail_port, "%s", strrchr(v[i], ',') ? strrchr(v[i], ',') + 1 : v[i]);
    fake.cur = fake.calls++ < 4 ? fake.calls - 1 : 3;
    fake.step = 0;
    if (fake.members_silent || fake.login_fails) { /* the script follows the list: its first entry */
        char *a = fake.first[fake.cur], *pt = fake.first_port[fake.cur];
        a[0] = 0, strcpy(pt, "5432");
        for (size_t i = 0; k[i]; i++)
            if (strcmp(k[i], "hostaddr") == 0)
                first_of(v[i], a, sizeof fake.first[0]);
            else if (strcmp(k[i], "port") == 0)
                first_of(v[i], pt, sizeof fake.first_port[0]);
        bool member = strncmp(a, "10.0.0.", 7) == 0;
        struct step st = {member ? a : "192.0.2.1", pt, member ? CONNECTION_STARTED : CONNECTION_OK,
                          member ? W : PGRES_POLLING_OK};
        memset(fake.script[fake.cur], 0, sizeof fake.script[0]);
        fake.script[fake.cur][0] = st;
        if (fake.login_fails) {
            struct step login[] = {S(a, pt, CONNECTION_STARTED, W), S(a, pt, CONNECTION_AWAITING_RESPONSE, R),
                                   S(a, pt, CONNECTION_BAD, PGRES_POLLING_FAILED)};
            memcpy(fake.script[fake.cur], login, sizeof login);
        }
    }
    return fake.last = bogus_conn();
}

static PGconn *fake_connectdb(const struct pqri_libpq *pq, const char *const *k, const char *const *v, int e)
{
    (void)pq, (void)e;
    fake.blocking_calls++;
    fake.blocking_door_only = true;
    for (size_t i = 0; k[i]; i++)
        if (strcmp(k[i], "hostaddr") == 0 && strstr(v[i], "10.0.0."))
            fake.blocking_door_only = false;
    return bogus_conn();
}

static const struct step *now_step(void)
{
    static struct step end;
    const struct step *st = &fake.script[fake.cur][fake.step];
    /* A list without the door: libpq fails on its last member. */
    if (fake.no_door && fake.step > 0 && st->addr && strcmp(st->addr, "192.0.2.1") == 0) {
        end = (struct step)S(fake.tail, fake.tail_port, CONNECTION_BAD, PGRES_POLLING_FAILED);
        return &end;
    }
    return st;
}

static ConnStatusType fake_status(const PGconn *c)
{
    /* an attempt with no script fails at once */
    return c == fake.last ? (now_step()->addr ? now_step()->st : CONNECTION_BAD) : PQstatus(c);
}

static char *fake_hostaddr(const PGconn *c)
{
    return c == fake.last ? (char *)(now_step()->addr ? now_step()->addr : "") : PQhostaddr(c);
}

static char *fake_port(const PGconn *c)
{
    return c == fake.last ? (char *)(now_step()->port ? now_step()->port : "5432") : PQport(c);
}

static PostgresPollingStatusType fake_poll(PGconn *c)
{
    if (c != fake.last)
        return PQconnectPoll(c);
    if (fake.step + 1 < MAXSTEPS && fake.script[fake.cur][fake.step + 1].addr)
        fake.step++;
    return now_step()->ret;
}

static int fake_needs_password(const PGconn *c)
{
    return c == fake.last ? fake.needs_password : PQconnectionNeedsPassword(c);
}

static int fake_used_password(const PGconn *c)
{
    return c == fake.last ? fake.used_password : PQconnectionUsedPassword(c);
}

static char *fake_error_message(const PGconn *c)
{
    return c == fake.last && fake.errmsg ? (char *)fake.errmsg : PQerrorMessage(c);
}

static int fake_socket(const PGconn *c)
{
    if (c != fake.last)
        return PQsocket(c);
    if (fake.members_silent)
        return now_step()->st == CONNECTION_STARTED ? fake.silent_fd : fake.ready_fd;
    return fake.silent && fake.cur == 0 ? fake.silent_fd : fake.ready_fd;
}

static struct pqri_libpq fake_libpq(void)
{
    struct pqri_libpq pq = pqri_direct_libpq;
    int fds[2];
    pq.connect_start_params = fake_start;
    pq.connectdb_params = fake_connectdb;
    pq.status = fake_status;
    pq.hostaddr = fake_hostaddr;
    pq.port = fake_port;
    pq.connect_poll = fake_poll;
    pq.socket = fake_socket;
    pq.needs_password = fake_needs_password;
    pq.used_password = fake_used_password;
    pq.error_message = fake_error_message;
    memset(&fake, 0, sizeof fake);
    fake.ready_fd = open("/dev/null", O_RDWR);
    if (pipe(fds) == 0)
        fake.silent_fd = fds[0]; /* a pipe's read end is never writable */
    return pq;
}


/* Forget what the host cache knows of members that were down. */
static void clear_down(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -f %s/*.down", dir);
    if (system(cmd) != 0)
        return;
}

static PGconn *exec_fake(const struct pqri_libpq *pq, const char *conninfo)
{
    struct pqri_conninfo ci;
    bool passed;
    PGconn *c;
    if (pqri_conninfo_parse(&ci, conninfo) < 0)
        return NULL;
    c = pqri_connect(r, pq, ci.call_kw, ci.call_val, ci.call_expand, PQRI_BLOCKING, PQR_ROLE_AUTO, &passed);
    pqri_conninfo_release(&ci);
    return c;
}

static void inject_json(const char *json, long long age_ms)
{
    struct pqr_topology *t = pqri_topo_parse(json, strlen(json), NULL, 0);
    pqri_topo_filter(t, pqri_views_settings(r), pqri_view_conf(pqri_views_at(r, 0)));
    t->fetched_ms = pqri_now_ms() - age_ms;
    t->mono_ms = pqri_mono_ms() - age_ms;
    pqri_view_set(pqri_views_at(r, 0), t);
    pqri_topo_unref(t);
}

static const char *param(const struct pqri_plan *p, const char *k)
{
    const char *v = NULL;
    for (size_t i = 0; p && i < p->params.n; i++)
        if (strcmp(p->params.kw[i], k) == 0)
            v = p->params.val[i];
    return v;
}

static struct pqri_plan *plan_str(const char *conninfo)
{
    struct pqri_conninfo ci;
    struct pqri_plan *p;
    /* as the shim hands a string over: libpq reads it by a string's rules */
    if (pqri_conninfo_parse(&ci, conninfo) < 0)
        return NULL;
    p = pqri_plan_new(r, &pqri_direct_libpq, ci.call_kw, ci.call_val, ci.call_expand, PQRI_BLOCKING, PQR_ROLE_AUTO);
    pqri_conninfo_release(&ci);
    return p;
}

static struct pqri_plan *plan_arr(const char *const *kw, const char *const *val, int expand)
{
    return pqri_plan_new(r, &pqri_direct_libpq, kw, val, expand, PQRI_BLOCKING, PQR_ROLE_AUTO);
}

static const char *write_tmp(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
    return path;
}

int main(void)
{
    struct pqr_settings s;
    char err[256];
    struct pqri_plan *p;

    if (!mkdtemp(dir))
        return 1;
    for (const char *const *v = (const char *const[]){"PGHOST", "PGPORT", "PGHOSTADDR", "PGSERVICE",
         "PGSERVICEFILE", "PGTARGETSESSIONATTRS", "PGPASSWORD", "PGCONNECT_TIMEOUT", "PGDATABASE",
         "PGUSER", NULL}; *v; v++)
        unsetenv(*v);
    setenv("PGPASSFILE", write_tmp("pgpass", "fd.example:5433:app:u:from-pgpass\n"), 1);
    pqri_settings_init(&s);
    pqri_settings_set(&s, "PATRONI", "http://127.0.0.1:9", err, sizeof err);
    pqri_settings_set(&s, "RW", "fd.example:5432", err, sizeof err);
    pqri_settings_set(&s, "RO", "fd.example:5433", err, sizeof err);
    pqri_settings_set(&s, "CACHE_DIR", dir, err, sizeof err);
    pqri_settings_set(&s, "LOG", "error", err, sizeof err);
    pqri_settings_set(&s, "REST_TIMEOUT_MS", "100", err, sizeof err);
    pqri_log_set(getenv("PLAN_DEBUG") ? PQRI_LOG_DEBUG : PQRI_LOG_ERROR);
    pqri_settings_finish(&s, err, sizeof err);
    r = pqri_views_new(&s, err, sizeof err);
    pqri_settings_clear(&s);
    ok(r != NULL, "router opens (%s)", r ? "" : err);
    inject(0);

    p = plan_str("host=fd.example port=5432 dbname=app user=u password='p w\\'q\"x'");
    ok(p && p->role == PQR_ROLE_RW, "RW front door, conninfo string: routed RW");
    is_str(param(p, "host"), "fd.example,fd.example,fd.example,fd.example", "host = front door name for every entry");
    is_str(param(p, "hostaddr"), "10.0.0.2,10.0.0.1,10.0.0.3,", "hostaddr: leader, members, then the front door (resolved by libpq)");
    is_str(param(p, "port"), "5432,5432,5433,5432", "ports follow the members, front door last");
    is_str(param(p, "target_session_attrs"), "read-write", "target_session_attrs=read-write added");
    is_str(param(p, "password"), "p w'q\"x", "password with spaces and quotes passed intact");
    is_str(param(p, "dbname"), "app", "dbname kept");
    is_str(param(p, "connect_timeout"), "2", "connect_timeout added when the application set none");
    ok(!strstr(pqr_last_decision(), "p w'q"), "the decision text carries no password");
    for (size_t i = 0; p && i < p->params.n; i++)
        if (strstr(p->params.val[i], "evil"))
            ok(0, "member host text reached parameter %s", p->params.kw[i]);
    ok(p && !strstr(param(p, "hostaddr"), "evil"), "a member host with key=value text injects nothing");
    pqri_plan_free(p);

    p = plan_str("postgresql://u:p%40ss@fd.example:5433/app?sslmode=disable&connect_timeout=7");
    ok(p && p->role == PQR_ROLE_RO, "RO front door, URI: routed RO");
    is_str(param(p, "hostaddr"), p && strcmp(param(p, "hostaddr"), "10.0.0.1,10.0.0.3,") == 0 ? "10.0.0.1,10.0.0.3," : "10.0.0.3,10.0.0.1,",
           "RO: healthy replicas only, then the front door");
    is_str(param(p, "target_session_attrs"), "prefer-standby", "RO: prefer-standby");
    is_str(param(p, "password"), "p@ss", "URI password decoded");
    is_str(param(p, "sslmode"), "disable", "URI query parameters kept");
    is_str(param(p, "connect_timeout"), "7", "the application's connect_timeout kept");
    pqri_plan_free(p);

    p = plan_str("host=FD.Example port=5433 dbname=app user=u");
    ok(p != NULL, "front door name compared case-insensitively");
    pqri_plan_free(p);
    p = plan_str("host=fd.example port=5433 dbname=app user=u");
    is_str(param(p, "password"), "from-pgpass", ".pgpass entry for the front door applies");
    pqri_plan_free(p);
    p = plan_str("host=fd.example port=5432 dbname=app user=u");
    ok(p && !param(p, "password"), "no .pgpass entry: no password invented");
    pqri_plan_free(p);

    p = plan_str("host=fd.example hostaddr=192.0.2.7 port=5432 user=u");
    is_str(param(p, "hostaddr"), "10.0.0.2,10.0.0.1,10.0.0.3,192.0.2.7", "the application's hostaddr kept for the front door");
    pqri_plan_free(p);

    {
        const char *kw[] = {"dbname", "user", NULL};
        const char *val[] = {"host=fd.example port=5432 dbname=app", "u", NULL};
        p = plan_arr(kw, val, 1);
        ok(p && p->role == PQR_ROLE_RW, "keyword arrays with an expanded dbname: routed");
        is_str(param(p, "dbname"), "app", "expanded dbname");
        pqri_plan_free(p);
        p = plan_arr(kw, val, 0);
        ok(!p, "same arrays without expand_dbname: dbname is just a name, not routed");
        pqri_plan_free(p);
        const char *val2[] = {"postgresql://fd.example:5433/app?target_session_attrs=primary", "u", NULL};
        p = plan_arr(kw, val2, 1);
        ok(p && p->role == PQR_ROLE_RW, "URI in dbname with target_session_attrs=primary on the RO door: RW");
        is_str(param(p, "target_session_attrs"), "primary", "the application's target_session_attrs kept");
        pqri_plan_free(p);
    }

    setenv("PGHOST", "fd.example", 1);
    setenv("PGPORT", "5433", 1);
    p = plan_str("dbname=app user=u");
    ok(p && p->role == PQR_ROLE_RO, "PGHOST/PGPORT name the RO front door: routed RO");
    pqri_plan_free(p);
    setenv("PGTARGETSESSIONATTRS", "read-write", 1);
    p = plan_str("dbname=app user=u");
    ok(p && p->role == PQR_ROLE_RW, "PGTARGETSESSIONATTRS=read-write wins over the RO door");
    pqri_plan_free(p);
    unsetenv("PGTARGETSESSIONATTRS");
    unsetenv("PGHOST");
    unsetenv("PGPORT");

    /* libpq's own rules, string versus arrays: where libpq alone would go decides. */
    {
        struct rule {
            const char *env, *envval, *conninfo; /* conninfo NULL: the arrays below */
            const char *kw[3], *val[3];
            int want; /* PQR_ROLE_RW, PQR_ROLE_RO, or -1: passed through */
            const char *why;
        } rules[] = {
            {"PGPORT", "5433", "host=fd.example port=''", {0}, {0}, PQR_ROLE_RW,
             "string, port='': libpq's 5432 (the RW door), PGPORT not consulted"},
            {"PGHOST", "fd.example", "host='' port=5432", {0}, {0}, -1,
             "string, host='': the Unix socket, PGHOST not consulted"},
            {"PGPORT", "5433", NULL, {"host", "port"}, {"fd.example", ""}, PQR_ROLE_RO,
             "arrays, port '': skipped, PGPORT applies (the RO door)"},
            {"PGHOST", "fd.example", NULL, {"host", "port"}, {"", "5432"}, PQR_ROLE_RW,
             "arrays, host '': skipped, PGHOST applies"},
            {"PGAPPNAME", "from-env", "host=fd.example port=5432 application_name=''", {0}, {0}, -1,
             "string, application_name='' with PGAPPNAME set: arrays cannot say it, passed through"},
            {NULL, NULL, "host=fd.example port=5432 sslsni=''", {0}, {0}, -1,
             "string, sslsni='' (off; its default is on): passed through"},
            {NULL, NULL, "host=fd.example port=5432 options=''", {0}, {0}, PQR_ROLE_RW,
             "string, options='' (its default is empty): routed"},
            {NULL, NULL, "dbname='host=fd.example port=5433'", {0}, {0}, -1,
             "string: a dbname inside a string is a name, not expanded"},
            {NULL, NULL, "postgresql://fd.example:5433/app", {0}, {0}, PQR_ROLE_RO, "URI: the RO door"},
        };
        for (size_t i = 0; i < sizeof rules / sizeof *rules; i++) {
            const struct rule *ru = &rules[i];
            if (ru->env)
                setenv(ru->env, ru->envval, 1);
            p = ru->conninfo ? plan_str(ru->conninfo) : plan_arr(ru->kw, ru->val, 0);
            int got = p ? (int)p->role : -1;
            ok(got == ru->want, "rules: %s (%s)", ru->why, p ? (p->role == PQR_ROLE_RW ? "rw" : "ro") : pqr_last_decision());
            pqri_plan_free(p);
            if (ru->env)
                unsetenv(ru->env);
        }
    }

    setenv("PGSERVICEFILE", write_tmp("services", "[mysvc]\nhost=fd.example\nport=5432\ndbname=app\n"
                                                  "target_session_attrs=read-only\n"), 1);
    p = plan_str("service=mysvc user=u");
    ok(p && p->role == PQR_ROLE_RO, "service entry: routed, its target_session_attrs=read-only wins");
    is_str(param(p, "target_session_attrs"), "read-only", "service's target_session_attrs kept");
    ok(p && !param(p, "service"), "service already applied: not passed again");
    pqri_plan_free(p);
    unsetenv("PGSERVICEFILE");

    const char *passes[] = {"host=other.example port=5432", "host=fd.example port=5999",
                            "host=/var/run/postgresql", "host=fd.example,other port=5432",
                            "dbname=app", "host=fd.example sslmode=bogus",
                            "host=fd.example port=5432,5433"};
    for (size_t i = 0; i < sizeof passes / sizeof *passes; i++) {
        p = plan_str(passes[i]);
        ok(!p && strstr(pqr_last_decision(), "passed through"), "passed through: %s (%s)", passes[i], pqr_last_decision());
        pqri_plan_free(p);
    }
    {
        const char *kw[] = {"bogus_keyword", NULL}, *val[] = {"1", NULL};
        p = plan_arr(kw, val, 0);
        ok(!p, "unknown keyword: passed through, libpq reports it");
        pqri_plan_free(p);
    }

    /* The front door, however the application spells its name. */
    inject(0);
    p = plan_str("host=FD.Example port=5432 user=u");
    ok(p && p->role == PQR_ROLE_RW, "the RW door named in other letter case: routed");
    pqri_plan_free(p);
    /* The API's forced role wins over the door the connection names. */
    {
        struct pqri_conninfo ci;
        pqri_conninfo_parse(&ci, "host=fd.example port=5432 user=u");
        p = pqri_plan_new(r, &pqri_direct_libpq, ci.kw, ci.val, 0, PQRI_BLOCKING, PQR_ROLE_RO);
        ok(p && p->role == PQR_ROLE_RO && strcmp(param(p, "target_session_attrs"), "prefer-standby") == 0,
           "a forced RO role on the RW door: routed RO (%s)", p ? param(p, "target_session_attrs") : "-");
        pqri_plan_free(p);
        pqri_conninfo_release(&ci);
    }
    /* No running leader: nothing takes writes, through the proxy or not: no front door for RW. */
    inject_json("{\"members\":[{\"name\":\"n1\",\"role\":\"leader\",\"state\":\"stopped\",\"host\":\"10.0.0.1\",\"port\":5432,\"timeline\":4},"
                "{\"name\":\"n2\",\"role\":\"replica\",\"state\":\"streaming\",\"host\":\"10.0.0.2\",\"port\":5432,\"timeline\":4,\"lag\":0}]}", 0);
    p = plan_str("host=fd.example port=5432 user=u");
    is_str(p ? param(p, "hostaddr") : NULL, "10.0.0.1,10.0.0.2", "RW without a running leader: members only, no front door");
    pqri_plan_free(p);
    p = plan_str("host=fd.example port=5433 user=u");
    ok(p && param(p, "hostaddr")[strlen(param(p, "hostaddr")) - 1] == ',', "RO then still ends with the front door");
    pqri_plan_free(p);

    /* The connect itself, with a stand-in libpq that decides, host by host, how far each gets. */
    {
        struct pqri_libpq pq = fake_libpq();
        struct pqri_failure f[PQRI_MAX_FAILURES];
        PGconn *c;

        /* A password is needed and none was given: libpq stops at the first member, so do we
         * (the application may ask for one). */
        inject(0);
        struct step auth[] = {S("10.0.0.2", "5432", CONNECTION_STARTED, W), S("10.0.0.2", "5432", CONNECTION_AWAITING_RESPONSE, R),
                              S("10.0.0.2", "5432", CONNECTION_BAD, PGRES_POLLING_FAILED)};
        memcpy(fake.script[0], auth, sizeof auth);
        fake.needs_password = true;
        c = exec_fake(&pq, "host=fd.example port=5432 user=u");
        ok(fake.calls == 1 && fake.blocking_calls == 0, "stopped at the first member, password needed: no retry (%d)", fake.calls);
        PQfinish(c);

        /* A password was sent and the attempt ended without the login going through: refused,
         * or a shutdown in the middle (libpq does not say which): one more round, never more. */
        pq = fake_libpq();
        inject(0);
        fake.login_fails = true;
        fake.used_password = true;
        c = exec_fake(&pq, "host=fd.example port=5432 user=u");
        ok(fake.calls == 2 && fake.blocking_calls == 0, "a password sent and refused: one more round, no more (%d)", fake.calls);
        PQfinish(c);

        /* The member ended the connect before its login for a reason of its own (libpq's
         * require_auth, no such database): libpq's own message, no new round. */
        pq = fake_libpq();
        inject(0);
        memcpy(fake.script[0], auth, sizeof auth);
        fake.errmsg = "connection to server at \"10.0.0.2\", port 5432 failed: authentication method requirement "
                      "\"password\" failed: server requested SASL authentication\n";
        c = exec_fake(&pq, "host=fd.example port=5432 user=u");
        ok(fake.calls == 1 && fake.blocking_calls == 0, "ended before the login by a rule (require_auth): no retry (%d)", fake.calls);
        PQfinish(c);

        /* The old leader's shutdown ends the backend in the middle of the startup, no password
         * involved: the moment of a leader change, tried again (as a non-blocking connect is). */
        pq = fake_libpq();
        inject(0);
        memcpy(fake.script[0], auth, sizeof auth);
        fake.errmsg = "connection to server at \"10.0.0.9\", port 5432 failed: FATAL:  the database system is "
                      "starting up\nconnection to server at \"10.0.0.2\", port 5432 failed: FATAL:  the database "
                      "system is shutting down\n";
        struct step lands[] = {S("10.0.0.2", "5432", CONNECTION_STARTED, W), S("10.0.0.2", "5432", CONNECTION_OK, PGRES_POLLING_OK)};
        memcpy(fake.script[1], lands, sizeof lands);
        c = exec_fake(&pq, "host=fd.example port=5432 user=u");
        ok(fake.calls == 2 && fake_status(c) == CONNECTION_OK,
           "ended mid-startup by a shutdown: another round lands (%d)", fake.calls);
        PQfinish(c);

        /* Every member refused (TCP) and so did the door: one refresh, one retry without the
         * door; the refusing members are remembered as down. */
        pq = fake_libpq();
        inject(0);
        clear_down();
        struct step refused[] = {S("10.0.0.2", "5432", CONNECTION_STARTED, W), S("10.0.0.1", "5432", CONNECTION_STARTED, W),
                                 S("10.0.0.3", "5433", CONNECTION_STARTED, W), S("192.0.2.1", "5432", CONNECTION_STARTED, W),
                                 S("192.0.2.1", "5432", CONNECTION_BAD, PGRES_POLLING_FAILED)};
        memcpy(fake.script[0], refused, sizeof refused);
        struct step again[] = {S("10.0.0.2", "5432", CONNECTION_STARTED, W), S("10.0.0.2", "5432", CONNECTION_BAD, PGRES_POLLING_FAILED)};
        memcpy(fake.script[1], again, sizeof again);
        c = exec_fake(&pq, "host=fd.example port=5432 user=u");
        is_int(fake.calls, 2, "failed at every member and the front door: one refresh, one retry");
        is_str(fake.hostaddr[0], "10.0.0.2,10.0.0.1,10.0.0.3,", "first attempt: members, then the front door");
        ok(fake.hostaddr[1][0] && fake.hostaddr[1][strlen(fake.hostaddr[1]) - 1] != ',',
           "the retry leaves the front door that just failed out (%s)", fake.hostaddr[1]);
        size_t nf = pqri_view_failures(pqri_views_at(r, 0), f, PQRI_MAX_FAILURES), down = 0;
        for (size_t i = 0; i < nf; i++)
            down += f[i].down;
        ok(down >= 3, "members that refused the connection are remembered as down (%zu)", down);
        PQfinish(c);

        /* RW lands on the third member: the leader before it failed, the replica refused writes
         * as it should (not a failure), nobody is down. */
        pq = fake_libpq();
        inject(0);
        clear_down();
        struct step third[] = {S("10.0.0.2", "5432", CONNECTION_AWAITING_RESPONSE, W), S("10.0.0.2", "5432", CONNECTION_CHECK_TARGET, R),
                               S("10.0.0.1", "5432", CONNECTION_AWAITING_RESPONSE, R), S("10.0.0.1", "5432", CONNECTION_CHECK_TARGET, R),
                               S("10.0.0.3", "5433", CONNECTION_OK, PGRES_POLLING_OK)};
        memcpy(fake.script[0], third, sizeof third);
        c = exec_fake(&pq, "host=fd.example port=5432 user=u");
        nf = pqri_view_failures(pqri_views_at(r, 0), f, PQRI_MAX_FAILURES);
        ok(nf == 1 && strcmp(f[0].addr, "10.0.0.2") == 0 && !f[0].down,
           "RW landed on the third member: only the leader before it is remembered, not the replica that refused writes (%zu)", nf);
        PQfinish(c);

        /* Every member answered and refused the role (a switchover): the front door leads to the
         * same servers, so it is not tried; Patroni is asked fast and the connect waits, within
         * its budget, for a running leader. */
        pq = fake_libpq();
        inject(0);
        clear_down();
        struct step refusing[] = {S("10.0.0.2", "5432", CONNECTION_AWAITING_RESPONSE, W), S("10.0.0.2", "5432", CONNECTION_CHECK_TARGET, R),
                                  S("10.0.0.1", "5432", CONNECTION_CHECK_TARGET, R), S("10.0.0.3", "5433", CONNECTION_CHECK_TARGET, R),
                                  S("192.0.2.1", "5432", CONNECTION_STARTED, W)};
        for (int k = 0; k < 4; k++)
            memcpy(fake.script[k], refusing, sizeof refusing);
        long long t0 = pqri_mono_ms();
        c = exec_fake(&pq, "host=fd.example port=5432 user=u");
        long long dt = pqri_mono_ms() - t0;
        ok(fake.calls > 5 && fake.blocking_calls == 0 && c && fake_status(c) == CONNECTION_BAD,
           "all members refused the role: the members are tried again every 100 ms, then walked once more (%d attempts)", fake.calls);
        ok(fake.hostaddr[1][0] && fake.hostaddr[1][strlen(fake.hostaddr[1]) - 1] != ',',
           "and the front door is never part of the retries (%s)", fake.hostaddr[1]);
        ok(dt >= 1800 && dt < 6000, "the connect gives up after its budget (2 s) (%lld ms)", dt);
        PQfinish(c);

        /* A member that does not answer at all costs its connect_timeout once: the connect goes on
         * without it, and the next plans (here and in other processes) leave it out. */
        pq = fake_libpq();
        inject(0);
        clear_down();
        fake.silent = true;
        struct step silent[] = {S("10.0.0.2", "5432", CONNECTION_STARTED, W)};
        memcpy(fake.script[0], silent, sizeof silent);
        struct step next[] = {S("10.0.0.1", "5432", CONNECTION_OK, PGRES_POLLING_OK)};
        memcpy(fake.script[1], next, sizeof next);
        c = NULL;
        {
            struct pqri_conninfo ci;
            bool passed;
            pqri_conninfo_parse(&ci, "host=fd.example port=5432 user=u");
            struct pqri_plan *pl = pqri_plan_new(r, &pq, ci.kw, ci.val, 0, PQRI_BLOCKING, PQR_ROLE_AUTO);
            (void)passed;
            t0 = pqri_mono_ms();
            if (pl)
                c = pqri_plan_exec(r, pl);
            pqri_plan_free(pl);
            pqri_conninfo_release(&ci);
        }
        dt = pqri_mono_ms() - t0;
        ok(c && fake.calls == 2 && !strstr(fake.hostaddr[1], "10.0.0.2"),
           "a silent member: connect_timeout once, then the others (%s, %lld ms)", fake.hostaddr[1], dt);
        PQfinish(c);
        struct pqri_plan *again_plan = plan_str("host=fd.example port=5433 user=u");
        ok(again_plan && !strstr(param(again_plan, "hostaddr"), "10.0.0.2"),
           "the next plan, RO too, leaves the silent member out (%s)", again_plan ? param(again_plan, "hostaddr") : "-");
        pqri_plan_free(again_plan);
        struct pqri_views *other = pqri_views_new(pqri_views_settings(r), err, sizeof err);
        struct pqri_failure g[PQRI_MAX_FAILURES];
        size_t ng = other ? pqri_view_failures(pqri_views_at(other, 0), g, PQRI_MAX_FAILURES) : 0;
        bool shared = false;
        for (size_t i = 0; i < ng; i++)
            shared = shared || (g[i].down && strcmp(g[i].addr, "10.0.0.2") == 0);
        ok(shared, "another process on this host knows it is down (the host cache)");
        pqri_views_free(other);

        /* Every member known to be silent (a firewall between us and them): the front door. */
        inject(0);
        clear_down();
        struct pqr_topology *tv = pqri_view_snapshot(pqri_views_at(r, 0), 0);
        const char *addrs[][2] = {{"10.0.0.1", "5432"}, {"10.0.0.2", "5432"}, {"10.0.0.3", "5433"}};
        for (size_t i = 0; tv && i < 3; i++) {
            struct pqri_candidate cd = {.port = atoi(addrs[i][1])};
            snprintf(cd.addr, sizeof cd.addr, "%s", addrs[i][0]);
            pqri_view_note_down(pqri_views_at(r, 0), tv->gen, &cd, true, NULL);
        }
        pqri_topo_unref(tv);
        struct pqri_plan *door = plan_str("host=fd.example port=5432 user=u");
        ok(!door && strstr(pqr_last_decision(), "no eligible member"),
           "every member silent: straight to the front door (%s)", pqr_last_decision());
        pqri_plan_free(door);
        clear_down();

        /* Every member silent and found so one by one, while the view's own memory lets go
         * between members (PQROUTE_STALE_MS shorter than a connect_timeout): each member is paid
         * once, the list shrinks, the door is reached, within members x connect_timeout. */
        ((struct pqr_settings *)pqri_views_settings(r))->stale_ms = 100;
        const char *doors[] = {"host=fd.example port=5432 user=u", "host=fd.example port=5433 user=u"};
        const int members[] = {3, 2}; /* RW: every member with an address; RO: the healthy replicas */
        for (int d = 0; d < 2; d++) {
            pq = fake_libpq();
            fake.members_silent = true;
            inject(0);
            clear_down();
            t0 = pqri_mono_ms();
            c = exec_fake(&pq, doors[d]);
            dt = pqri_mono_ms() - t0;
            bool shrinks = true, fresh = true;
            for (int k = 1; k < fake.calls && k < 4; k++) {
                shrinks = shrinks && strlen(fake.hostaddr[k]) < strlen(fake.hostaddr[k - 1]);
                for (int j = 0; j < k; j++) /* no member is waited for twice */
                    fresh = fresh && (!fake.first[k][0] || strcmp(fake.first[k], fake.first[j]) != 0);
            }
            /* The door: as one more attempt, or (the members' budget spent) libpq's own connect. */
            bool at_door = (fake.calls == members[d] + 1 && !fake.first[members[d]][0] && c &&
                         fake_status(c) == CONNECTION_OK && fake.blocking_calls == 0) ||
                        (fake.calls == members[d] && fake.blocking_calls == 1 && fake.blocking_door_only);
            ok(at_door, "%s, every member silent: each member once, then the door (%d attempts: %s | %s | %s | %s; %d blocking)",
               d ? "RO" : "RW", fake.calls, fake.hostaddr[0], fake.hostaddr[1], fake.hostaddr[2], fake.hostaddr[3],
               fake.blocking_calls);
            ok(shrinks && fresh, "%s: each retry's list is shorter and starts at a member not tried yet", d ? "RO" : "RW");
            /* the attempts above show each member once; this is the bound's order, not a speed */
            ok(dt < members[d] * 2000 * 3, "%s: within the members' connect_timeout budget (%lld ms)", d ? "RO" : "RW", dt);
            PQfinish(c);
        }
        ((struct pqr_settings *)pqri_views_settings(r))->stale_ms = 10000;
        clear_down();
    }

    inject(60000);
    p = plan_str("host=fd.example port=5432 user=u");
    ok(!p && strstr(pqr_last_decision(), "no fresh"), "stale view: front door alone (%s)", pqr_last_decision());
    pqri_plan_free(p);

    /* Non-blocking, no view at all: passes through at once, never waits for the REST API. */
    pqri_view_set(pqri_views_at(r, 0), NULL);
    {
        struct pqri_conninfo ci;
        /* a REST budget far longer than the start wait: waiting for it would show */
        ((struct pqr_settings *)pqri_views_settings(r))->rest_timeout_ms = 10000;
        long long t0 = pqri_mono_ms();
        pqri_conninfo_parse(&ci, "host=fd.example port=5432 user=u");
        p = pqri_plan_new(r, &pqri_direct_libpq, ci.kw, ci.val, 0, PQRI_NONBLOCKING, PQR_ROLE_AUTO);
        long long dt = pqri_mono_ms() - t0;
        ok(!p && dt < pqri_views_settings(r)->start_wait_ms + 2000,
           "non-blocking without a view: passed through within PQROUTE_START_WAIT_MS, not the REST timeout (%lld ms)", dt);
        pqri_conninfo_release(&ci);
    }
    pqri_views_free(r);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return done_testing();
}
