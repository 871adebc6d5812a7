/* The etcd client (etcd.c) against a scripted stand-in for etcd's v3 JSON gateway on loopback:
 * reads, the gateway's path per version, errors, authentication, and the watch (events,
 * compaction, a broken or garbled stream, a stalled one, its proof of life). */
#include <fcntl.h>
#include <resolv.h>
#include <sys/stat.h>

#include <jansson.h>

#include "tap.h"
#include "loopback.h"
#include "http.h"
#include "log.h"
#include "source.h"

#define PFX "/service/fake/"

/* ---- the stand-in ---- */

struct fake_kv {
    char key[128];
    char val[1024];
    long long mod;
    bool gone; /* deleted at mod */
    bool raw;  /* the value sent as it is, not base64 */
};

static struct {
    pthread_mutex_t mu; /* guards all of this */
    pthread_cond_t cv;  /* a change */
    struct fake_kv kv[16];
    int nkv;
    long long rev;
    char version[16];    /* what /version says */
    char watch_mode[16]; /* ok | cancel-once | garbage | error | close */
    bool hidden;         /* changes are not streamed (a stalled watch) */
    bool progress;       /* a quiet stream that asked for it gets progress notifications */
    bool auth;           /* a token is required */
    bool range_500;
    bool cancelled;
    char token[32];
    int ntoken, ranges, keys_only, watches, auths, versions, unauth;
    int serializable;          /* reads that asked for it */
    int asked_progress;        /* the last watch asked for progress notifications (FAKE reads ints) */
    int asked_leader;          /* the last watch sent the hasleader metadata */
    long long watch_from;
    char last_path[1024];
} F = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static char *b64(const char *s)
{
    static __thread char out[2048];
    b64_ntop((const unsigned char *)s, strlen(s), out, sizeof out);
    return out;
}

static char *unb64(const char *s)
{
    static __thread char out[1024];
    int n = s ? b64_pton(s, (unsigned char *)out, sizeof out - 1) : -1;
    out[n < 0 ? 0 : n] = 0;
    return out;
}

static struct fake_kv *fake_find(const char *key)
{
    for (int i = 0; i < F.nkv; i++)
        if (strcmp(F.kv[i].key, key) == 0)
            return &F.kv[i];
    return NULL;
}

static void fake_put_locked(const char *key, const char *val, bool raw)
{
    struct fake_kv *kv = fake_find(key);
    if (!kv)
        kv = &F.kv[F.nkv++];
    snprintf(kv->key, sizeof kv->key, "%s", key);
    snprintf(kv->val, sizeof kv->val, "%s", val);
    kv->mod = ++F.rev;
    kv->gone = false;
    kv->raw = raw;
    pthread_cond_broadcast(&F.cv);
}

static void fake_put(const char *key, const char *val, bool raw)
{
    pthread_mutex_lock(&F.mu);
    fake_put_locked(key, val, raw);
    pthread_mutex_unlock(&F.mu);
}

static void fake_del(const char *key)
{
    pthread_mutex_lock(&F.mu);
    struct fake_kv *kv = fake_find(key);
    if (kv) {
        kv->gone = true;
        kv->mod = ++F.rev;
        pthread_cond_broadcast(&F.cv);
    }
    pthread_mutex_unlock(&F.mu);
}

static void member_value(char *out, size_t len, int n, const char *role)
{
    snprintf(out, len, "{\"conn_url\":\"postgres://127.0.0.%d:5432/postgres\",\"api_url\":"
             "\"http://127.0.0.1:1/patroni\",\"state\":\"running\",\"role\":\"%s\","
             "\"xlog_location\":100,\"timeline\":1}", 50 + n, role);
}

/* The loopback cluster's keys as Patroni writes them, and every knob back to normal. */
static void fake_reset(void)
{
    char v[512];

    pthread_mutex_lock(&F.mu);
    F.nkv = 0;
    F.rev = 1;
    snprintf(F.version, sizeof F.version, "3.4.0");
    snprintf(F.watch_mode, sizeof F.watch_mode, "ok");
    F.hidden = F.auth = F.range_500 = F.cancelled = false;
    F.ranges = F.keys_only = F.watches = F.auths = F.versions = F.unauth = F.serializable = 0;
    F.progress = false;
    F.asked_progress = F.asked_leader = 0;
    member_value(v, sizeof v, 1, "master");
    fake_put_locked(PFX "members/n1", v, false);
    member_value(v, sizeof v, 2, "replica");
    fake_put_locked(PFX "members/n2", v, false);
    fake_put_locked(PFX "leader", "n1", false);
    fake_put_locked(PFX "config", "{}", false);
    pthread_mutex_unlock(&F.mu);
}

static void fake_set(const char *what, const char *value)
{
    pthread_mutex_lock(&F.mu);
    if (strcmp(what, "version") == 0)
        snprintf(F.version, sizeof F.version, "%s", value);
    else if (strcmp(what, "watch") == 0)
        snprintf(F.watch_mode, sizeof F.watch_mode, "%s", value);
    else if (strcmp(what, "hidden") == 0)
        F.hidden = *value == '1';
    else if (strcmp(what, "progress") == 0)
        F.progress = *value == '1';
    else if (strcmp(what, "auth") == 0)
        F.auth = *value == '1';
    else if (strcmp(what, "range_500") == 0)
        F.range_500 = *value == '1';
    else if (strcmp(what, "token") == 0)
        snprintf(F.token, sizeof F.token, "%s", value);
    pthread_mutex_unlock(&F.mu);
}

static long long fake_get(const void *field, size_t size)
{
    pthread_mutex_lock(&F.mu);
    long long v = size == sizeof(int) ? *(const int *)field : *(const long long *)field;
    pthread_mutex_unlock(&F.mu);
    return v;
}
#define FAKE(field) fake_get(&F.field, sizeof F.field)

static void fake_path(char *out, size_t len)
{
    pthread_mutex_lock(&F.mu);
    snprintf(out, len, "%s", F.last_path);
    pthread_mutex_unlock(&F.mu);
}

static const char *api_locked(void)
{
    int major = 0, minor = 0;
    sscanf(F.version, "%d.%d", &major, &minor);
    return minor >= 4 ? "/v3" : minor == 3 ? "/v3beta" : "/v3alpha";
}

static int reply_json(int fd, int status, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    int rc = lb_reply(fd, status, "Content-Type: application/json\r\n", text ? text : "{}");
    free(text);
    json_decref(j);
    return rc;
}

static json_t *header_locked(void)
{
    char r[32];
    snprintf(r, sizeof r, "%lld", F.rev);
    return json_pack("{s:s, s:s}", "cluster_id", "1", "revision", r);
}

static json_t *kv_json(const struct fake_kv *kv, bool keys_only)
{
    char m[32];
    snprintf(m, sizeof m, "%lld", kv->mod);
    json_t *j = json_pack("{s:s, s:s}", "key", b64(kv->key), "mod_revision", m);
    if (!keys_only)
        json_object_set_new(j, "value", json_string(kv->raw ? kv->val : b64(kv->val)));
    return j;
}

static int range_locked(int fd, json_t *body)
{
    bool keys_only = json_is_true(json_object_get(body, "keys_only"));
    char start[1024], end[1024];
    json_t *kvs;

    if (F.range_500)
        return reply_json(fd, 500, json_pack("{s:s, s:i, s:s}", "error", "boom", "code", 2, "message",
                                             "etcdserver: \x1b]0;owned\x07\x1b[31mred"));
    keys_only ? F.keys_only++ : F.ranges++;
    F.serializable += json_is_true(json_object_get(body, "serializable"));
    snprintf(start, sizeof start, "%s", unb64(json_string_value(json_object_get(body, "key"))));
    snprintf(end, sizeof end, "%s", unb64(json_string_value(json_object_get(body, "range_end"))));
    kvs = json_array();
    for (int i = 0; i < F.nkv; i++)
        if (!F.kv[i].gone && strcmp(F.kv[i].key, start) >= 0 && strcmp(F.kv[i].key, end) < 0)
            json_array_append_new(kvs, kv_json(&F.kv[i], keys_only));
    return reply_json(fd, 200, json_pack("{s:o, s:o}", "header", header_locked(), "kvs", kvs));
}

/* One answer line of the watch stream, built under the lock, written outside it. */
static char *line_locked(json_t *result)
{
    json_t *j = json_pack("{s:o}", "result", result);
    char *text = json_dumps(j, JSON_COMPACT), *line = NULL;
    json_decref(j);
    if (text && asprintf(&line, "%s\n", text) < 0)
        line = NULL;
    free(text);
    return line;
}

static int send_line(int fd, char *line)
{
    int rc = line ? lb_chunk(fd, line) : -1;
    free(line);
    return rc;
}

/* The watch: created, then every change after since, as it happens, until the client goes. */
static int watch(struct lb *s, int fd, long long since)
{
    char mode[16];
    long long sent = since - 1, quiet_since = lb_now_ms();

    pthread_mutex_lock(&F.mu);
    snprintf(mode, sizeof mode, "%s", F.watch_mode);
    bool cancel = strcmp(mode, "cancel-once") == 0 && !F.cancelled;
    F.cancelled = F.cancelled || cancel;
    char *created = line_locked(json_pack("{s:o, s:b}", "header", header_locked(), "created", 1));
    char *cancelled = cancel ? line_locked(json_pack("{s:o, s:b, s:s}", "header", header_locked(), "canceled", 1,
                                                     "compact_revision", "3"))
                             : NULL;
    pthread_mutex_unlock(&F.mu);
    lb_chunked(fd);
    send_line(fd, created);
    if (cancel || strcmp(mode, "close") == 0) {
        send_line(fd, cancelled);
        lb_chunk(fd, "");
        return -1;
    }
    if (strcmp(mode, "garbage") == 0 || strcmp(mode, "error") == 0) {
        lb_chunk(fd, strcmp(mode, "garbage") == 0
                         ? "\x01not json at all\n"
                         : "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no "
                           "\\u001b[31mleader\"}}\n");
        lb_wait_closed(s, fd, 10000);
        return -1;
    }
    for (;;) {
        char *line = NULL;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&F.mu);
        pthread_cond_timedwait(&F.cv, &F.mu, &ts);
        if (!F.hidden && F.rev > sent) {
            json_t *events = json_array();
            for (int i = 0; i < F.nkv; i++)
                if (F.kv[i].mod > sent) {
                    json_t *ev = json_pack("{s:o}", "kv", kv_json(&F.kv[i], F.kv[i].gone));
                    if (F.kv[i].gone)
                        json_object_set_new(ev, "type", json_string("DELETE"));
                    json_array_append_new(events, ev);
                }
            sent = F.rev;
            line = line_locked(json_pack("{s:o, s:o}", "header", header_locked(), "events", events));
        } else if (F.progress && F.asked_progress && lb_now_ms() - quiet_since >= 200) {
            /* etcd's progress notification: a header, no events */
            line = line_locked(json_pack("{s:o}", "header", header_locked()));
        }
        if (line)
            quiet_since = lb_now_ms();
        pthread_mutex_unlock(&F.mu);
        if ((line && send_line(fd, line) < 0) || lb_stopping(s))
            return -1;
        struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
        char c[64];
        if (poll(&p, 1, 0) > 0 && recv(fd, c, sizeof c, MSG_DONTWAIT) <= 0)
            return -1;
    }
}

static int etcd(struct lb *s, int fd, const struct lb_req *rq)
{
    json_t *body = json_loads(rq->body[0] ? rq->body : "{}", 0, NULL);
    const char *path = rq->path;
    int rc;

    pthread_mutex_lock(&F.mu);
    snprintf(F.last_path, sizeof F.last_path, "%s", path);
    size_t alen = strlen(api_locked());
    if (strcmp(path, "/version") == 0) {
        F.versions++;
        rc = reply_json(fd, 200, json_pack("{s:s, s:s}", "etcdserver", F.version, "etcdcluster", F.version));
    } else if (strncmp(path, api_locked(), alen) != 0 || path[alen] != '/') {
        rc = reply_json(fd, 404, json_pack("{s:s}", "message", "Not Found"));
    } else if (strcmp(path + alen, "/auth/authenticate") == 0) {
        const char *name = json_string_value(json_object_get(body, "name")),
                   *pw = json_string_value(json_object_get(body, "password"));
        F.auths++;
        if (name && pw && strcmp(name, "reader") == 0 && strcmp(pw, "pw") == 0) {
            snprintf(F.token, sizeof F.token, "tok%d", ++F.ntoken);
            rc = reply_json(fd, 200, json_pack("{s:o, s:s}", "header", header_locked(), "token", F.token));
        } else {
            rc = reply_json(fd, 400, json_pack("{s:s, s:i, s:s}", "error", "authentication failed", "code", 3,
                                               "message", "etcdserver: authentication failed"));
        }
    } else if (F.auth && !(strstr(rq->head, "\r\nAuthorization: ") &&
                           strncmp(strstr(rq->head, "\r\nAuthorization: ") + 17, F.token, strlen(F.token)) == 0)) {
        F.unauth++;
        rc = reply_json(fd, 401, json_pack("{s:s, s:i, s:s}", "error", "etcdserver: invalid auth token", "code",
                                           16, "message", "etcdserver: invalid auth token"));
    } else if (strcmp(path + alen, "/kv/range") == 0) {
        rc = range_locked(fd, body);
    } else if (strcmp(path + alen, "/watch") == 0) {
        const char *from = json_string_value(json_object_get(json_object_get(body, "create_request"),
                                                             "start_revision"));
        F.watches++;
        F.watch_from = from ? strtoll(from, NULL, 10) : 0;
        F.asked_progress =
            json_is_true(json_object_get(json_object_get(body, "create_request"), "progress_notify"));
        F.asked_leader = strcasestr(rq->head, "\r\nGrpc-Metadata-hasleader: true\r\n") != NULL;
        long long since = F.watch_from;
        pthread_mutex_unlock(&F.mu);
        json_decref(body);
        return watch(s, fd, since);
    } else {
        rc = reply_json(fd, 404, json_pack("{s:s}", "message", "Not Found"));
    }
    pthread_mutex_unlock(&F.mu);
    json_decref(body);
    return rc;
}

/* ---- the client's side ---- */

static struct pqr_settings S;
static bool S_set;

static const char *watch_check_ms = "12000";

static const struct pqri_cluster_conf *conf(const char *url, int refresh_ms, const char *user,
                                            const char *pwfile)
{
    char err[512] = "", ms[16];

    if (S_set)
        pqri_settings_clear(&S);
    pqri_settings_init(&S);
    S_set = true;
    snprintf(ms, sizeof ms, "%d", refresh_ms);
    if (pqri_settings_set(&S, "ETCD", url, err, sizeof err) < 0 ||
        pqri_settings_set(&S, "SCOPE", "fake", err, sizeof err) < 0 ||
        pqri_settings_set(&S, "RW", "db:5432", err, sizeof err) < 0 ||
        pqri_settings_set(&S, "REFRESH_MS", ms, err, sizeof err) < 0 ||
        pqri_settings_set(&S, "REST_TIMEOUT_MS", "1000", err, sizeof err) < 0 ||
        pqri_settings_set(&S, "WATCH_CHECK_MS", watch_check_ms, err, sizeof err) < 0 ||
        (user && pqri_settings_set(&S, "ETCD_USER", user, err, sizeof err) < 0) ||
        (pwfile && pqri_settings_set(&S, "ETCD_PASSWORD_FILE", pwfile, err, sizeof err) < 0) ||
        pqri_settings_finish(&S, err, sizeof err) != 0 || S.nclusters != 1) {
        printf("# settings: %s\n", err);
        return NULL;
    }
    return &S.clusters[0];
}

static int find(const struct pqr_topology *t, const char *name)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (strcmp(t->m[i].name, name) == 0)
            return (int)i;
    return -1;
}

static const char *leader(const struct pqr_topology *t)
{
    return t && t->leader >= 0 ? t->m[t->leader].name : "";
}

/* What a watch reported, and its thread. */
struct watcher {
    struct pqri_etcd *e;
    int stop;
    int rc;
    char err[1024];
    pthread_t th;
    pthread_mutex_t mu; /* guards what follows */
    int views, members, counts[64];
    char leader[32];
};

static void on_view(void *arg, struct pqr_topology *t)
{
    struct watcher *w = arg;
    pthread_mutex_lock(&w->mu);
    w->views++;
    w->members = (int)t->n;
    snprintf(w->leader, sizeof w->leader, "%s", leader(t));
    pthread_mutex_unlock(&w->mu);
    pqri_topo_unref(t);
}

static void on_count(void *arg, enum pqri_stat which)
{
    struct watcher *w = arg;
    pthread_mutex_lock(&w->mu);
    if ((int)which >= 0 && (int)which < 64)
        w->counts[which]++;
    pthread_mutex_unlock(&w->mu);
}

static void *watch_main(void *arg)
{
    struct watcher *w = arg;
    struct pqri_watch_hooks h = {w, on_view, on_count};
    w->rc = pqri_etcd_watch(w->e, &w->stop, &h, w->err, sizeof w->err);
    pqri_http_thread_done();
    return NULL;
}

static void watch_start(struct watcher *w, struct pqri_etcd *e)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    w->e = e;
    pthread_create(&w->th, NULL, watch_main, w);
}

/* Waits up to 5 s for the watch thread to end: whether it did. */
static bool watch_end(struct watcher *w, bool stop)
{
    long long until = lb_now_ms() + 5000;
    if (stop)
        __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
    while (pthread_tryjoin_np(w->th, NULL) != 0) {
        if (lb_now_ms() > until) {
            __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
            pthread_join(w->th, NULL);
            return false;
        }
        lb_sleep_ms(10);
    }
    pthread_mutex_destroy(&w->mu);
    return true;
}

static int w_views(struct watcher *w, char *lead, int *members)
{
    pthread_mutex_lock(&w->mu);
    int v = w->views;
    if (lead)
        snprintf(lead, 32, "%s", w->leader);
    if (members)
        *members = w->members;
    pthread_mutex_unlock(&w->mu);
    return v;
}

static int w_count(struct watcher *w, enum pqri_stat which)
{
    pthread_mutex_lock(&w->mu);
    int v = w->counts[which];
    pthread_mutex_unlock(&w->mu);
    return v;
}

/* Waits up to 5 s for a view led by name (and with members, when > 0). */
static bool wait_view(struct watcher *w, const char *name, int members)
{
    long long until = lb_now_ms() + 5000;
    char lead[32];
    int m;
    while (lb_now_ms() < until) {
        if (w_views(w, lead, &m) && strcmp(lead, name) == 0 && (members <= 0 || m == members))
            return true;
        lb_sleep_ms(10);
    }
    return false;
}

static bool wait_fake(const int *field, int at_least)
{
    long long until = lb_now_ms() + 5000;
    while (lb_now_ms() < until) {
        if (fake_get(field, sizeof *field) >= at_least)
            return true;
        lb_sleep_ms(10);
    }
    return false;
}

/* ---- the suites ---- */

static void test_read(struct lb *srv)
{
    const struct pqri_cluster_conf *c;
    struct pqri_etcd *e;
    struct pqr_topology *t;
    char err[1024] = "", path[1024], want[128];

    fake_reset();
    c = conf(srv->url, 1000, NULL, NULL);
    e = c ? pqri_etcd_open(&S, c) : NULL;
    ok(e != NULL, "an etcd client opens");
    if (!e)
        return;
    t = pqri_etcd_read(e, NULL, err, sizeof err);
    snprintf(want, sizeof want, "etcd read %s", srv->url);
    ok(t && t->n == 2 && strcmp(leader(t), "n1") == 0 && find(t, "n2") >= 0 && strcmp(t->source, want) == 0,
       "a read: two members, n1 leads, the source says where from (%s)", t ? t->source : err);
    ok(t && find(t, "n1") >= 0 && strcmp(t->m[find(t, "n1")].host, "127.0.0.51") == 0 &&
       t->m[find(t, "n1")].port == 5432, "hosts and ports from the members' conn_url");
    pqri_topo_unref(t);
    fake_path(path, sizeof path);
    ok(FAKE(versions) == 1 && FAKE(ranges) == 1 && strcmp(path, "/v3/kv/range") == 0,
       "etcd 3.4: /version asked once, then /v3 (%s)", path);
    t = pqri_etcd_read(e, NULL, err, sizeof err);
    ok(t && FAKE(versions) == 1 && FAKE(ranges) == 2, "the version is remembered for the next read");
    pqri_topo_unref(t);

    /* A key routing cannot use costs only itself. */
    fake_put(PFX "members/n3", "not base64 at all!", true);
    t = pqri_etcd_read(e, NULL, err, sizeof err);
    ok(t && t->n == 2 && find(t, "n3") < 0, "a value that is not base64 is left out, the rest used");
    pqri_topo_unref(t);
    fake_del(PFX "members/n3");

    /* An error's message is the server's, shown as text. */
    fake_set("range_500", "1");
    t = pqri_etcd_read(e, NULL, err, sizeof err);
    ok(!t && strstr(err, "HTTP status 500: etcdserver: ") && !strchr(err, '\x1b') && strstr(err, "\\x1b"),
       "a 500's message, control characters escaped (%s)", err);
    fake_set("range_500", "0");
    pqri_etcd_close(e);

    /* The gateway's path follows the server's version (Patroni's rule). */
    fake_set("version", "3.3.9");
    e = pqri_etcd_open(&S, c);
    t = pqri_etcd_read(e, NULL, err, sizeof err);
    fake_path(path, sizeof path);
    ok(t && strcmp(path, "/v3beta/kv/range") == 0, "etcd 3.3: /v3beta (%s)", t ? path : err);
    pqri_topo_unref(t);
    pqri_etcd_close(e);
    fake_set("version", "3.2.0");
    e = pqri_etcd_open(&S, c);
    t = pqri_etcd_read(e, NULL, err, sizeof err);
    fake_path(path, sizeof path);
    ok(t && strcmp(path, "/v3alpha/kv/range") == 0, "etcd 3.2: /v3alpha (%s)", t ? path : err);
    pqri_topo_unref(t);
    pqri_etcd_close(e);
    fake_set("version", "2.3.8");
    e = pqri_etcd_open(&S, c);
    t = pqri_etcd_read(e, NULL, err, sizeof err);
    ok(!t && strstr(err, "not an etcd v3 server"), "etcd 2: refused (%s)", err);
    pqri_etcd_close(e);
}

static void test_auth(struct lb *srv)
{
    char pwfile[] = "/tmp/pqr-etcd-pw-XXXXXX", err[1024] = "";
    int fd = mkstemp(pwfile);
    const struct pqri_cluster_conf *c;
    struct pqri_etcd *e;
    struct pqr_topology *t;

    (void)!write(fd, "pw\n", 3);
    close(fd);
    fake_reset();
    fake_set("auth", "1");
    c = conf(srv->url, 1000, "reader", pwfile);
    e = c ? pqri_etcd_open(&S, c) : NULL;
    t = e ? pqri_etcd_read(e, NULL, err, sizeof err) : NULL;
    ok(t && t->n == 2 && FAKE(auths) == 1 && FAKE(unauth) == 0, "authenticated, then read (%s)", t ? "" : err);
    pqri_topo_unref(t);
    fake_set("token", "expired");
    t = e ? pqri_etcd_read(e, NULL, err, sizeof err) : NULL;
    ok(t && FAKE(auths) == 2 && FAKE(unauth) == 1, "a token no longer valid: a new one, and the read again");
    pqri_topo_unref(t);
    pqri_etcd_close(e);

    fd = open(pwfile, O_WRONLY | O_TRUNC);
    (void)!write(fd, "wrong\n", 6);
    close(fd);
    e = c ? pqri_etcd_open(&S, c) : NULL;
    t = e ? pqri_etcd_read(e, NULL, err, sizeof err) : NULL;
    ok(!t && strstr(err, "authentication failed"), "a wrong password: the server's words (%s)", err);
    pqri_etcd_close(e);
    unlink(pwfile);
}

static void test_watch(struct lb *srv)
{
    const struct pqri_cluster_conf *c;
    struct pqri_etcd *e;
    struct watcher w;
    long long t0;

    fake_reset();
    c = conf(srv->url, 5000, NULL, NULL);
    e = c ? pqri_etcd_open(&S, c) : NULL;
    if (!e) {
        ok(0, "an etcd client opens");
        return;
    }
    long long rev = FAKE(rev);
    watch_start(&w, e);
    ok(wait_view(&w, "n1", 2), "a watch reports the view it read first");
    bool watching = wait_fake(&F.watches, 1);
    long long from = FAKE(watch_from);
    ok(watching && from == rev + 1, "then watches from the revision after it (%lld)", from);
    /* A switchover as Patroni writes it: the leader key first (the old leader, still claiming the
     * role, is left out meanwhile), then the old leader's member key. */
    fake_put(PFX "leader", "n2", false);
    ok(wait_view(&w, "n2", 1), "a change is reported as it comes");
    char v[512];
    member_value(v, sizeof v, 1, "replica");
    fake_put(PFX "members/n1", v, false);
    ok(wait_view(&w, "n2", 2), "and the next one");
    fake_del(PFX "members/n2");
    ok(wait_view(&w, "", 1), "so is a key deleted");
    int events = w_count(&w, PQRI_STAT_WATCH_EVENTS), reads = w_count(&w, PQRI_STAT_DCS_READS);
    ok(events == 3 && reads == 1 && FAKE(ranges) == 1, "three events counted, one read (%d, %d)", events, reads);
    t0 = lb_now_ms();
    ok(watch_end(&w, true) && w.rc == 0 && lb_now_ms() - t0 < 1000, "the stop flag ends it: 0 (%s)", w.err);

    /* Compaction: the watch is cancelled; read again, watch again. */
    fake_reset();
    fake_set("watch", "cancel-once");
    watch_start(&w, e);
    ok(wait_fake(&F.watches, 2) && wait_view(&w, "n1", 2), "a compacted watch: read again, watched again");
    ok(w_count(&w, PQRI_STAT_WATCH_COMPACTIONS) == 1 && w_count(&w, PQRI_STAT_DCS_READS) == 2 && FAKE(ranges) == 2,
       "one compaction, two reads counted");
    ok(watch_end(&w, true) && w.rc == 0, "and stopped");

    /* A stream the server ends: -1, and the next watch resumes from where it was, with no read. */
    fake_reset();
    fake_set("watch", "close");
    watch_start(&w, e);
    ok(watch_end(&w, false) && w.rc == -1 && strstr(w.err, "watch ended: the server closed it"),
       "a stream the server closes ends the watch (%s)", w.err);
    fake_set("watch", "ok");
    int ranges = (int)FAKE(ranges);
    rev = FAKE(rev);
    watch_start(&w, e);
    ok(wait_fake(&F.watches, 2) && FAKE(ranges) == ranges && FAKE(watch_from) == rev + 1,
       "the next one resumes from the revision after the last one known, without a read");
    ok(watch_end(&w, true) && w.rc == 0, "and stopped");

    fake_set("watch", "garbage");
    watch_start(&w, e);
    ok(watch_end(&w, false) && w.rc == -1 && strstr(w.err, "not JSON"), "garbage on the stream (%s)", w.err);
    fake_set("watch", "error");
    watch_start(&w, e);
    ok(watch_end(&w, false) && w.rc == -1 && strstr(w.err, "watch error: etcdserver: no \\x1b[31mleader"),
       "an error on the stream, its words escaped (%s)", w.err);
    pqri_etcd_close(e);

    /* A quiet stream costs etcd nothing until it has been silent for the check interval: the
     * view is re-stamped once per refresh interval without a read; then one serializable
     * keys-only read; one that shows a change the stream has not delivered, twice, ends it. */
    fake_reset();
    fake_set("hidden", "1");
    watch_check_ms = "1500";
    c = conf(srv->url, 100, NULL, NULL);
    e = c ? pqri_etcd_open(&S, c) : NULL;
    long long q0 = lb_now_ms();
    watch_start(&w, e);
    ok(wait_view(&w, "n1", 2) && wait_fake(&F.watches, 1) && FAKE(asked_progress) &&
           FAKE(asked_leader),
       "the watch asks for progress notifications and for a member with a leader");
    lb_sleep_ms(700);
    int views = w_views(&w, NULL, NULL), checks = (int)FAKE(keys_only);
    ok(views >= 4 && (checks == 0 || lb_now_ms() - q0 >= 1400),
       "a quiet stream: the view re-stamped each interval (%d views) without a read (%d)", views,
       checks);
    bool read = wait_fake(&F.keys_only, 1);
    ok(read && FAKE(serializable) == FAKE(keys_only) && FAKE(ranges) == 1,
       "after the check interval of silence: a serializable keys-only read (%d of %d)",
       (int)FAKE(serializable), (int)FAKE(keys_only));
    lb_sleep_ms(600);
    checks = (int)FAKE(keys_only);
    ok(checks == 1, "and no other before the next interval (%d reads)", checks);
    long long t1 = lb_now_ms();
    fake_put(PFX "leader", "n2", false);
    bool ended = watch_end(&w, false);
    long long took = lb_now_ms() - t1;
    ok(ended && w.rc == -1 && strstr(w.err, "watch stalled (revision"),
       "a change the stream does not deliver ends it (%s)", w.err);
    /* the bound: the rest of a check interval, then a read and a second look a moment later */
    ok(took < 1500 + 1000 + 2 * 1000 + 1000, "within the check interval and two reads (%lld ms)",
       took);
    pqri_etcd_close(e);

    /* etcd's progress notifications on a quiet stream stand for the reads: none at all. */
    fake_reset();
    fake_set("progress", "1");
    c = conf(srv->url, 100, NULL, NULL);
    e = c ? pqri_etcd_open(&S, c) : NULL;
    watch_start(&w, e);
    ok(wait_view(&w, "n1", 2), "a watch with progress notifications");
    lb_sleep_ms(3200);
    int progress = w_count(&w, PQRI_STAT_WATCH_PROGRESS);
    ok(progress >= 5 && FAKE(keys_only) == 0 && FAKE(ranges) == 1,
       "progress notifications (%d) prove it: no read in twice the check interval (%d)", progress,
       (int)FAKE(keys_only));
    fake_put(PFX "leader", "n2", false);
    bool arrived = wait_view(&w, "n2", 0);
    char lead[32];
    int nviews = w_views(&w, lead, NULL);
    ok(arrived, "and changes still arrive (%d views, leader %s, events %d)", nviews, lead,
       w_count(&w, PQRI_STAT_WATCH_EVENTS));
    ok(watch_end(&w, true) && w.rc == 0, "and stopped");
    watch_check_ms = "12000";
    pqri_etcd_close(e);
}

int main(void)
{
    struct lb srv;

    pqri_log_set(PQRI_LOG_ERROR);
    if (lb_start(&srv, etcd, NULL) != 0) {
        ok(0, "the stand-in starts");
        return done_testing();
    }
    test_read(&srv);
    test_auth(&srv);
    test_watch(&srv);
    lb_stop(&srv);
    if (S_set)
        pqri_settings_clear(&S);
    pqri_http_thread_done();
    return done_testing();
}
