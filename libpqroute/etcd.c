/*
 * etcd v3 through its JSON gateway (what Patroni's etcd3 DCS writes): a range read of
 * <namespace>/<scope>/, then a watch from the read's revision + 1.
 *
 * The watch is one streaming POST /v3/watch; its answers are newline-delimited JSON objects. What
 * a fleet of hosts costs etcd is what each watch costs when nothing happens, so a quiet watch asks
 * for nothing more (issue 22):
 * - it asks for etcd's progress notifications (a store that sends them, see
 *   --experimental-watch-progress-notify-interval, says "nothing up to revision R" on a quiet
 *   stream) and for a member with a leader (the "hasleader" metadata: a member cut off from its
 *   cluster ends the stream instead of going quiet);
 * - only a stream silent for PQROUTE_WATCH_CHECK_MS is checked, by a keys-only range read of the
 *   same prefix on the same member, serializable (answered by that member alone: no trip through
 *   the etcd leader, which Patroni's own lease depends on). A key modified after the last revision
 *   the stream delivered, seen again by a second read a moment later, means the stream is stalled,
 *   and the watch starts again. A dead connection is found sooner, by TCP keepalive (http.c).
 * The view is re-stamped once per refresh interval while the stream stands, so the shared file
 * stays young for the host's processes; a stall is bounded by the check's interval plus two reads.
 *
 * Compaction: a watch from a revision etcd has compacted is cancelled with compact_revision; the
 * prefix is read again and watched from there.
 */
#include <resolv.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "source.h"
#include "http.h"
#include "log.h"
#include "secret.h"

#define MAX_LINE (4 * 1024 * 1024) /* one watch answer: a batch of events with their values */
#define MAX_READ (4 * 1024 * 1024)

struct pqri_etcd {
    const struct pqr_settings *s;
    const struct pqri_cluster_conf *c;
    struct pqri_tls tls;
    char prefix[400];
    size_t plen;
    char *key64, *end64; /* the prefix and its range end, base64 */
    size_t cur;          /* the endpoint in use */
    char api[16];        /* "/v3", "/v3beta" or "/v3alpha" for it; "" until asked */
    char *token;         /* authentication token (a secret) */
    char auth_hdr[600];
    struct pqri_kvset kv;
    long long rev;   /* the store revision kv reflects */
    bool resume;     /* the last watch ran and broke: watch again from rev + 1, no read */
    char shown[600]; /* the endpoint in use, without credentials */
    struct pqri_http_conn *conn; /* kept for the reads of the endpoint in use ... */
    bool keep;                   /* ... only in the agent: an application may close any fd */
    char bad[160];               /* the last key skipped and its revision: said once */
    struct pqr_topology *built;  /* the view last built from kv, which has not changed since */
};

static char *b64(const void *p, size_t n)
{
    size_t len = (n + 2) / 3 * 4 + 1;
    char *out = malloc(len);

    if (out && b64_ntop(p, n, out, len) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Decoded into a new NUL-terminated buffer (*n: its length); NULL if it is not base64, or out of
 * memory (then *oom is set). */
static char *unb64(const char *s, size_t *n, bool *oom)
{
    size_t cap = strlen(s) / 4 * 3 + 4;
    unsigned char *out = malloc(cap);
    int len;

    if (!out) {
        *oom = true;
        return NULL;
    }
    if (!*s) {
        out[0] = 0;
        *n = 0;
        return (char *)out;
    }
    if ((len = b64_pton(s, out, cap - 1)) < 0) {
        free(out);
        return NULL;
    }
    out[len] = 0;
    *n = (size_t)len;
    return (char *)out;
}

struct pqri_etcd *pqri_etcd_open(const struct pqr_settings *s, const struct pqri_cluster_conf *c)
{
    struct pqri_etcd *e = calloc(1, sizeof *e);
    char end[sizeof e->prefix];

    if (!e)
        return NULL;
    e->s = s;
    e->c = c;
    e->tls = (struct pqri_tls){c->dcs.ca, c->dcs.cert, c->dcs.key};
    if (pqri_dcs_prefix(e->prefix, sizeof e->prefix, c->dcs.ns, c->dcs.scope, c->dcs.group) < 0)
        goto fail;
    e->plen = strlen(e->prefix);
    /* The range end of a prefix: its last byte plus one ('/' + 1 = '0'). */
    memcpy(end, e->prefix, e->plen);
    end[e->plen - 1]++;
    if (!(e->key64 = b64(e->prefix, e->plen)) || !(e->end64 = b64(end, e->plen)))
        goto fail;
    return e;
fail:
    pqri_etcd_close(e);
    return NULL;
}

void pqri_etcd_close(struct pqri_etcd *e)
{
    if (!e)
        return;
    free(e->key64);
    free(e->end64);
    pqri_free_secret(e->token);
    explicit_bzero(e->auth_hdr, sizeof e->auth_hdr);
    pqri_kvset_clear(&e->kv);
    pqri_topo_unref(e->built);
    pqri_http_conn_close(&e->conn);
    free(e);
}

static const char *base(const struct pqri_etcd *e)
{
    return e->c->dcs.urls[e->cur];
}

/* A revision from etcd's JSON (a number, or a string of one), within [0, LLONG_MAX - 1]: a store
 * (or a stand-in) that sends 9223372036854775807 must not make the resumed watch's rev + 1
 * overflow. */
static long long jrev(json_t *v)
{
    long long r = 0;

    if (json_is_integer(v))
        r = json_integer_value(v);
    else if (json_is_string(v))
        r = strtoll(json_string_value(v), NULL, 10);
    return r < 0 ? 0 : r == LLONG_MAX ? LLONG_MAX - 1 : r;
}

/* One request to the endpoint in use; the parsed answer of a 200, else NULL with a message (and
 * *status, 0 when nothing answered). */
static json_t *call(struct pqri_etcd *e, const char *path, const char *body, const int *stop,
                    long *status, char *err, size_t errlen)
{
    char url[700], why[256];
    const char *hdr[1] = {e->auth_hdr};
    struct pqri_buf out = {0};
    struct pqri_http_req rq = {
        url,  body, hdr, e->token ? 1 : 0,         &e->tls, e->s->rest_timeout_ms, MAX_READ, stop,
        NULL, NULL, 0,   e->keep ? &e->conn : NULL};
    json_t *j = NULL;

    /* e->api is "" until detect() has asked /version: no special case for that path. */
    snprintf(url, sizeof url, "%s%s%s", base(e), e->api, path);
    if (pqri_http_do(&rq, &out, status, why, sizeof why) < 0) {
        pqri_errf(err, errlen, "etcd %s: %s", e->shown, why);
    } else if (*status != 200) {
        json_t *ej = json_loadb(out.p ? out.p : "", out.len, 0, NULL);
        const char *msg = json_string_value(json_object_get(ej, "message"));
        char text[200];
        if (!msg)
            msg = json_string_value(json_object_get(json_object_get(ej, "error"), "message"));
        if (!msg && out.p && !ej) { /* some gateway errors are plain text: its first line */
            snprintf(text, sizeof text, "%.*s", (int)strcspn(out.p, "\r\n"), out.p);
            msg = text;
        }
        /* The server's words are shown (pqroute check prints them): control characters escaped. */
        char shown_msg[200];
        pqri_escape(shown_msg, sizeof shown_msg, msg ? msg : "");
        pqri_errf(err, errlen, "etcd %s: HTTP status %ld%s%.160s", e->shown, *status,
                  msg ? ": " : "", shown_msg);
        json_decref(ej);
    } else if (!(j = json_loadb(out.p ? out.p : "", out.len, 0, NULL)) || !json_is_object(j)) {
        pqri_errf(err, errlen, "etcd %s: not a JSON object", e->shown);
        json_decref(j);
        j = NULL;
    }
    pqri_buf_free(&out);
    return j;
}

/* The gateway's path for this server (Patroni's rule): /v3 from 3.4, /v3beta in 3.3, else
 * /v3alpha. */
static int detect(struct pqri_etcd *e, const int *stop, char *err, size_t errlen)
{
    long st;
    json_t *j = call(e, "/version", NULL, stop, &st, err, errlen);
    const char *v = json_string_value(json_object_get(j, "etcdcluster"));
    int major = 0, minor = 0;

    if (!j)
        return -1;
    if (!v || sscanf(v, "%d.%d", &major, &minor) != 2 || major != 3) {
        pqri_errf(err, errlen, "etcd %s: /version: not an etcd v3 server", e->shown);
        json_decref(j);
        return -1;
    }
    snprintf(e->api, sizeof e->api, "%s", minor >= 4 ? "/v3" : minor == 3 ? "/v3beta" : "/v3alpha");
    json_decref(j);
    return 0;
}

/* A secret in a jansson string, cleared before jansson frees it (it frees without clearing). */
static void forget_string(json_t *s)
{
    if (json_is_string(s))
        explicit_bzero((char *)json_string_value(s), json_string_length(s));
}

static int authenticate(struct pqri_etcd *e, const int *stop, char *err, size_t errlen)
{
    char *pw, *body;
    json_t *req, *j;
    long st;
    const char *tok;

    pqri_free_secret(e->token);
    e->token = NULL;
    if (!e->c->dcs.user)
        return 0;
    if (!(pw = pqri_read_secret(e->c->dcs.password_file, err, errlen)))
        return -1;
    req = json_pack("{s:s, s:s}", "name", e->c->dcs.user, "password", pw);
    pqri_free_secret(pw);
    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    forget_string(json_object_get(req, "password")); /* jansson's copy */
    json_decref(req);
    if (!body) {
        pqri_errf(err, errlen, "out of memory");
        return -1;
    }
    j = call(e, "/auth/authenticate", body, stop, &st, err, errlen);
    pqri_free_secret(body);
    if (!j)
        return -1;
    tok = json_string_value(json_object_get(j, "token"));
    if (!tok || strlen(tok) > 500 || strpbrk(tok, "\r\n")) {
        pqri_errf(err, errlen, "etcd %s: authentication returned no token", e->shown);
        json_decref(j);
        return -1;
    }
    e->token = strdup(tok);
    snprintf(e->auth_hdr, sizeof e->auth_hdr, "Authorization: %s", tok);
    forget_string(json_object_get(j, "token"));
    json_decref(j);
    if (!e->token) {
        pqri_errf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* A request made once more after a new token when the first said the token is not (or no longer)
 * valid. */
static json_t *call_authed(struct pqri_etcd *e, const char *path, const char *body, const int *stop,
                           char *err, size_t errlen)
{
    long st = 0;
    json_t *j = call(e, path, body, stop, &st, err, errlen);

    if (!j && st == 401 && e->c->dcs.user && authenticate(e, stop, err, errlen) == 0)
        j = call(e, path, body, stop, &st, err, errlen);
    return j;
}

/* A kv object of the gateway's: its key relative to the prefix (NULL if outside or unwanted, or
 * out of memory: then *oom is set). */
static char *rel_key(const struct pqri_etcd *e, json_t *kv, size_t *klen, bool *oom)
{
    const char *k64 = json_string_value(json_object_get(kv, "key"));
    size_t n;
    char *k = k64 ? unb64(k64, &n, oom) : NULL;

    if (!k || n <= e->plen || memcmp(k, e->prefix, e->plen) != 0 ||
        !pqri_dcs_wanted(k + e->plen, n - e->plen)) {
        free(k);
        return NULL;
    }
    memmove(k, k + e->plen, n - e->plen + 1);
    *klen = n - e->plen;
    return k;
}

/* kv into set: 0, or -1 out of memory. A value routing cannot use (not base64, too large, a NUL
 * byte: any one Patroni node writes its own key) is left out with one warning, and the others
 * are used. *changed (if given) is set when the set now holds something else: not for a key
 * routing does not use, nor for a value the key already had — Patroni rewrites its status key
 * every HA loop with the same value, and a fleet's hosts need not rebuild the view each time. */
static int put_kv(struct pqri_etcd *e, struct pqri_kvset *set, json_t *kv, bool *changed)
{
    size_t klen, vlen;
    bool oom = false;
    char *k = rel_key(e, kv, &klen, &oom), *v;
    const char *v64 = json_string_value(json_object_get(kv, "value"));
    long long rev = jrev(json_object_get(kv, "mod_revision"));
    int rc = PQRI_KV_SKIPPED;

    if (!k)
        return oom ? -1 : 0; /* else not one of ours */
    if ((v = unb64(v64 ? v64 : "", &vlen, &oom))) {
        const struct pqri_kv *old = pqri_kvset_get(set, k);
        if (changed)
            *changed = !old || strlen(old->val) != vlen || memcmp(old->val, v, vlen) != 0;
        rc = pqri_kvset_put(set, k, klen, v, vlen, rev);
        free(v);
    } else if (oom) {
        free(k);
        return -1;
    } else {
        pqri_kvset_del(set, k, klen);
    }
    if (rc == PQRI_KV_SKIPPED && changed)
        *changed = true;
    if (rc == PQRI_KV_SKIPPED) {
        char bad[sizeof e->bad];
        snprintf(bad, sizeof bad, "%.120s@%lld", k, rev);
        if (strcmp(bad, e->bad) != 0) /* a watch resumed, a read again: not said again */
            PQRI_WARN(
                "etcd %s: key %s%.120s (revision %lld) left out: its value is not base64, over "
                "64 KiB, contains a NUL byte, or one key too many",
                e->shown, e->prefix, k, rev);
        memcpy(e->bad, bad, sizeof bad);
    }
    free(k);
    return rc < 0 ? -1 : 0;
}

/* The keys (or the endpoint) changed: the next view is built from them. */
static void forget_view(struct pqri_etcd *e)
{
    pqri_topo_unref(e->built);
    e->built = NULL;
}

/* A range read of the prefix into e->kv and e->rev, at the endpoint in use. */
static int read_prefix(struct pqri_etcd *e, const int *stop, char *err, size_t errlen)
{
    char body[1200];
    json_t *j, *kvs;
    struct pqri_kvset set = {0};

    if (!e->api[0] &&
        (detect(e, stop, err, errlen) < 0 ||
         (e->c->dcs.user && authenticate(e, stop, err, errlen) < 0)))
        return -1;
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"range_end\":\"%s\"}", e->key64, e->end64);
    if (!(j = call_authed(e, "/kv/range", body, stop, err, errlen)))
        return -1;
    kvs = json_object_get(j, "kvs");
    for (size_t i = 0; i < json_array_size(kvs); i++)
        if (put_kv(e, &set, json_array_get(kvs, i), NULL) < 0) {
            pqri_errf(err, errlen, "etcd %s: out of memory reading the keys under %s", e->shown,
                      e->prefix);
            pqri_kvset_clear(&set);
            json_decref(j);
            return -1;
        }
    pqri_kvset_clear(&e->kv);
    e->kv = set;
    forget_view(e);
    e->rev = jrev(json_object_get(json_object_get(j, "header"), "revision"));
    json_decref(j);
    return 0;
}

static void use_endpoint(struct pqri_etcd *e, size_t i)
{
    if (i != e->cur || !e->shown[0]) {
        forget_view(e); /* it names the endpoint */
        pqri_http_conn_close(&e->conn);
        e->cur = i;
        e->api[0] = 0;
        pqri_free_secret(e->token);
        e->token = NULL;
    }
    pqri_url_display(e->shown, sizeof e->shown, base(e));
}

/* The prefix from the endpoint in use, else the next ones in turn. */
static int read_any(struct pqri_etcd *e, const int *stop, char *err, size_t errlen)
{
    size_t n = e->c->dcs.nurls, first = e->cur;
    char why[512];

    err[0] = 0;
    for (size_t k = 0; k < n; k++) {
        use_endpoint(e, (first + k) % n);
        if (read_prefix(e, stop, why, sizeof why) == 0)
            return 0;
        pqri_errcat(err, errlen, why);
        e->api[0] = 0; /* ask its version again when it answers again */
        if (stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE))
            break;
    }
    return -1;
}

static struct pqr_topology *topology(struct pqri_etcd *e, const char *how, char *err, size_t errlen)
{
    return pqri_dcs_view(&e->kv, "etcd", how, e->shown, e->prefix, err, errlen);
}

void pqri_etcd_keep_connections(struct pqri_etcd *e)
{
    e->keep = true;
}

struct pqr_topology *pqri_etcd_read(struct pqri_etcd *e, const int *stop, char *err, size_t errlen)
{
    if (read_any(e, stop, err, errlen) < 0)
        return NULL;
    return topology(e, "read", err, errlen);
}

/* The watch: one streaming request and, once per interval, a keys-only read proving it current. */
struct watch {
    struct pqri_etcd *e;
    const struct pqri_watch_hooks *h;
    const int *stop;
    char why[1024];        /* why the stream is abandoned; "" while it is fine */
    bool compacted;        /* cancelled: the revision we asked for is compacted */
    bool changed;          /* events applied since the last view was reported */
    bool created;          /* etcd accepted the watch */
    bool distrust;         /* it missed a change: read again rather than resume */
    long long suspect;     /* a read saw this revision which the stream had not delivered */
    long long heard;       /* monotonic: the stream's last answer (events, progress, created) */
    long long proved;      /* monotonic: the last proof of life, answered or not */
    long long last_report; /* monotonic: the view last re-stamped */
    int failed_reads;      /* proofs of life that failed in a row */
};

/* A second look, soon: a read that saw a revision the stream had not delivered (it may be on its
 * way), or one that failed. */
#define RECHECK_MS 1000

/* A DELETE event's key out of e->kv: 0, or -1 out of memory. */
static int del_kv(struct pqri_etcd *e, json_t *kv)
{
    size_t klen;
    bool oom = false;
    char *k = rel_key(e, kv, &klen, &oom);

    if (k)
        pqri_kvset_del(&e->kv, k, klen);
    free(k);
    return oom ? -1 : 0;
}

static int on_line(void *arg, const char *line, size_t len)
{
    struct watch *w = arg;
    struct pqri_etcd *e = w->e;
    json_error_t jerr;
    json_t *j = json_loadb(line, len, 0, &jerr), *res, *events;

    if (len == 0)
        return 0;
    if (!j || !json_is_object(j)) {
        snprintf(w->why, sizeof w->why, "etcd %s: watch answered something that is not JSON",
                 e->shown);
        json_decref(j);
        return -1;
    }
    if (json_object_get(j, "error")) {
        const char *msg =
            json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        char m[210];
        pqri_escape(m, sizeof m, msg ? msg : "(none)"); /* the server's words, shown as text */
        snprintf(w->why, sizeof w->why, "etcd %s: watch error: %.200s", e->shown, m);
        json_decref(j);
        return -1;
    }
    res = json_object_get(j, "result");
    if (json_is_true(json_object_get(res, "canceled"))) {
        long long cr = jrev(json_object_get(res, "compact_revision"));
        const char *reason = json_string_value(json_object_get(res, "cancel_reason"));
        char r[210];
        pqri_escape(r, sizeof r, reason ? reason : "");
        w->compacted = cr > 0;
        snprintf(w->why, sizeof w->why, "etcd %s: watch cancelled%s%.200s", e->shown,
                 w->compacted ? " (revision compacted)"
                     : reason ? ": "
                              : "",
                 w->compacted || !reason ? "" : r);
        json_decref(j);
        return -1;
    }
    bool created = json_is_true(json_object_get(res, "created"));
    if (created)
        w->created = true;
    w->heard = pqri_mono_ms();
    events = json_object_get(res, "events");
    for (size_t i = 0; i < json_array_size(events); i++) {
        json_t *ev = json_array_get(events, i), *kv = json_object_get(ev, "kv");
        const char *type = json_string_value(json_object_get(ev, "type"));
        long long mr = jrev(json_object_get(kv, "mod_revision"));
        bool del = type && strcmp(type, "DELETE") == 0, changed = del;
        if ((del ? del_kv(e, kv) : put_kv(e, &e->kv, kv, &changed)) < 0) {
            snprintf(w->why, sizeof w->why,
                     "etcd %.300s: out of memory reading the keys under %.300s", e->shown,
                     e->prefix);
            json_decref(j);
            return -1;
        }
        if (mr > e->rev)
            e->rev = mr;
        if (changed) {
            forget_view(e);
            w->changed = true;
        }
        w->h->count(w->h->arg, PQRI_STAT_WATCH_EVENTS);
    }
    /* An answer with events, or a progress notification (no events, not the creation's), carries
     * the store's revision: nothing of ours changed up to there. */
    long long hr = jrev(json_object_get(json_object_get(res, "header"), "revision"));
    bool progress = !json_array_size(events) && !created && w->created;
    if ((json_array_size(events) || progress) && hr > e->rev)
        e->rev = hr;
    if (progress)
        w->h->count(w->h->arg, PQRI_STAT_WATCH_PROGRESS);
    json_decref(j);
    return 0;
}

/* Whether the keys-only read j shows a change the stream has not delivered twice in a row: 1 it
 * does, 0 not, -1 out of memory. before: the watch's revision when the read was sent (events that
 * arrived during the read may be newer than the read's own revision). */
static int stalled(struct watch *w, json_t *j, long long before)
{
    struct pqri_etcd *e = w->e;
    json_t *kvs = json_object_get(j, "kvs");
    long long newest = 0;
    size_t wanted = 0;

    for (size_t i = 0; i < json_array_size(kvs); i++) {
        json_t *kv = json_array_get(kvs, i);
        size_t klen;
        bool oom = false;
        char *k = rel_key(e, kv, &klen, &oom);
        if (oom)
            return -1;
        if (!k)
            continue;
        wanted++;
        long long mr = jrev(json_object_get(kv, "mod_revision"));
        if (mr > e->rev && mr > newest)
            newest = mr;
        free(k);
    }
    /* A store whose revision is behind ours is not the one we watched (rebuilt, or another
     * cluster behind the same address): nothing it streams would reach us. */
    long long hr = jrev(json_object_get(json_object_get(j, "header"), "revision"));
    if (hr > 0 && hr < before) {
        w->suspect = hr;
        return 1;
    }
    /* Deleted keys leave no revision behind: a count that differs counts as newer too. */
    if (!newest && wanted != e->kv.n)
        newest = jrev(json_object_get(json_object_get(j, "header"), "revision"));
    if (!newest) {
        w->suspect = 0;
        return 0;
    }
    if (w->suspect && e->rev < w->suspect)
        return 1;
    if (!w->suspect)
        w->suspect = newest;
    return 0;
}

static void report(struct watch *w)
{
    struct pqri_etcd *e = w->e;
    char why[256];
    struct pqr_topology *t = NULL;

    /* Keys unchanged since the last view (a re-stamp): the same view, copied rather than built
     * again from the keys' JSON — that rebuild, once per second per host, was a third of a
     * 2,000-host fleet's CPU (bench/RESULTS-fleet.md). */
    if (e->built && (t = pqri_topo_copy(e->built))) {
        t->mono_ms = pqri_mono_ms();
    } else if ((t = topology(e, "watch", why, sizeof why))) {
        pqri_topo_unref(e->built);
        e->built = pqri_topo_copy(t); /* NULL out of memory: built again next time */
    }
    if (t)
        w->h->view(w->h->arg, t);
    else
        PQRI_DEBUG("cluster %s: %s", e->c->name, why);
    w->changed = false;
    w->last_report = pqri_mono_ms();
}

/* When the stream is next proven: after a silence of the check interval, or soon after a read that
 * found something to look at again. */
static long long next_proof(const struct watch *w)
{
    long long last = w->heard > w->proved ? w->heard : w->proved;

    if (w->suspect || w->failed_reads)
        return w->proved + RECHECK_MS;
    return last + w->e->s->watch_check_ms;
}

/* After each round of the stream's reading: what it changed reported, the view re-stamped once per
 * interval, and the proof of life after a silence. -1 ends the stream (w->why says why). */
static int on_tick(void *arg, struct pqri_http_stream *s)
{
    struct watch *w = arg;
    struct pqri_etcd *e = w->e;
    char rb[1200], why[1024];
    json_t *j;
    int st;

    if (w->changed || pqri_mono_ms() - w->last_report >= e->s->refresh_ms)
        report(w);
    if (pqri_mono_ms() < next_proof(w))
        return 0;
    /* The proof of life: blocking, so the stream waits in the socket meanwhile (a read on
     * loopback takes about a millisecond; at most the REST timeout). */
    snprintf(rb, sizeof rb,
             "{\"key\":\"%s\",\"range_end\":\"%s\",\"keys_only\":true,\"serializable\":true}",
             e->key64, e->end64);
    w->proved = pqri_mono_ms();
    w->h->count(w->h->arg, PQRI_STAT_WATCH_CHECKS);
    long long before = e->rev;
    j = call_authed(e, "/kv/range", rb, w->stop, why, sizeof why);
    if (!j && ++w->failed_reads >= 2) {
        snprintf(w->why, sizeof w->why, "%s", why);
        return -1;
    } else if (j) {
        w->failed_reads = 0;
        /* Deliver what is already in the socket before judging the stream. */
        pqri_http_stream_pump(s);
        if ((st = stalled(w, j, before)) != 0) {
            if (st < 0)
                snprintf(w->why, sizeof w->why, "etcd %s: out of memory checking the watch",
                         e->shown);
            else if (w->suspect < e->rev)
                snprintf(w->why, sizeof w->why,
                         "etcd %s: the store's revision (%lld) is behind the "
                         "watch's (%lld): reading it again",
                         e->shown, w->suspect, e->rev);
            else
                snprintf(w->why, sizeof w->why,
                         "etcd %s: watch stalled (revision %lld not delivered)", e->shown,
                         w->suspect);
            w->distrust = st > 0;
            json_decref(j);
            return -1;
        } else if (!w->why[0]) {
            report(w);
        }
        json_decref(j);
    }
    return 0;
}

/* A new stream's request (from the revision after the last one known) and a clean slate. */
static void start_stream(struct watch *w, char *url, size_t urllen, char *body, size_t bodylen)
{
    struct pqri_etcd *e = w->e;

    snprintf(url, urllen, "%s%s/watch", base(e), e->api);
    snprintf(body, bodylen,
             "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\",\"start_revision\":\"%lld\","
             "\"progress_notify\":true}}",
             e->key64, e->end64, e->rev + 1);
    w->why[0] = 0;
    w->compacted = false;
    w->created = false;
    w->distrust = false;
    w->suspect = 0;
    w->failed_reads = 0;
    w->heard = w->proved = w->last_report = pqri_mono_ms();
}

static bool stop_now(const int *stop)
{
    return stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE);
}

int pqri_etcd_watch(struct pqri_etcd *e, const int *stop, const struct pqri_watch_hooks *h,
                    char *err, size_t errlen)
{
    struct watch w = {.e = e, .h = h, .stop = stop};
    char url[700], body[1400], why[256];
    /* A member that loses its cluster's leader ends the stream rather than going quiet (etcd's
     * own clients ask the same through this gRPC metadata). */
    const char *hdr[2] = {"Grpc-Metadata-hasleader: true", e->auth_hdr};
    struct pqri_http_req rq = {url,      body, hdr,  0,    &e->tls, e->s->rest_timeout_ms,
                               MAX_LINE, stop, NULL, NULL, 0,       NULL};
    /* Ticks often enough to re-stamp the view twice per interval; a stop is seen within 250 ms. */
    struct pqri_http_stream_opts so = {&rq, on_line, on_tick, &w,
                                       e->s->refresh_ms / 2 < 250 ? e->s->refresh_ms / 2 : 250};
    long long last_compaction = 0;

    if (pqri_http_load(err, errlen) < 0)
        return -1;
    /* After a broken stream, etcd replays what we missed from the revision we had (unless it was
     * compacted meanwhile: see below); otherwise, and after a failed resume, read first. */
    bool resumed = e->resume && e->rev > 0;
    e->resume = false;
    if (resumed && !e->api[0] &&
        (detect(e, stop, err, errlen) < 0 ||
         (e->c->dcs.user && authenticate(e, stop, err, errlen) < 0))) {
        /* Not answering: the next endpoint, still resuming (the revision is the cluster's). */
        use_endpoint(e, (e->cur + 1) % e->c->dcs.nurls);
        e->resume = true;
        return -1;
    }
    if (!resumed) {
        if (read_any(e, stop, err, errlen) < 0)
            return -1;
        h->count(h->arg, PQRI_STAT_DCS_READS);
        report(&w);
    }
    for (;;) {
        start_stream(&w, url, sizeof url, body, sizeof body);
        rq.nheaders = e->token ? 2 : 1;
        enum pqri_http_stream_end end = pqri_http_stream_run(&so, why, sizeof why);
        if (end == PQRI_STREAM_FAILED) {
            pqri_errf(err, errlen, "%s", why);
            return -1;
        }
        if (!w.why[0] && end == PQRI_STREAM_CLOSED)
            snprintf(w.why, sizeof w.why, "etcd %s: watch ended: %s", e->shown, why);
        else if (!w.why[0] && end == PQRI_STREAM_TOO_LONG)
            snprintf(w.why, sizeof w.why, "etcd %s: watch answer too long", e->shown);
        if (stop_now(stop))
            return 0;
        if (!w.compacted) {
            /* A stream that broke is resumed; one that never started is resumed elsewhere. */
            e->resume = (w.created || resumed) && !w.distrust;
            if (!w.created)
                use_endpoint(e, (e->cur + 1) % e->c->dcs.nurls);
            pqri_errf(err, errlen, "%s", w.why);
            return -1;
        }
        /* Compacted: read the prefix again and watch from there, on the same connection's terms —
         * unless it was compacted a moment ago too: a store that cancels every watch gets the
         * caller's back-off, not a read and a watch as fast as it answers. */
        h->count(h->arg, PQRI_STAT_WATCH_COMPACTIONS);
        if (last_compaction && pqri_mono_ms() - last_compaction < e->s->refresh_ms) {
            pqri_errf(err, errlen, "%s, again within %d ms", w.why, e->s->refresh_ms);
            return -1;
        }
        last_compaction = pqri_mono_ms();
        PQRI_INFO("cluster %s: %s; reading %s again", e->c->name, w.why, e->prefix);
        if (read_any(e, stop, err, errlen) < 0)
            return -1;
        h->count(h->arg, PQRI_STAT_DCS_READS);
        report(&w);
    }
}
