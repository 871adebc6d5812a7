/*
 * Patroni's DCS keys -> a topology. The keys are turned into the JSON shape of GET /cluster and
 * parsed by topology.c, so one validating parser (with its limits and escaping) sees everything
 * that came from the network, whichever way it came.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dcs.h"
#include "log.h"
#include "rewrite.h"

bool pqri_dcs_wanted(const char *key, size_t len)
{
    static const char *const single[] = {"leader", "status", "sync", "failsafe"};

    for (size_t i = 0; i < sizeof single / sizeof *single; i++)
        if (len == strlen(single[i]) && memcmp(key, single[i], len) == 0)
            return true;
    /* members/<name>, one level deep */
    return len > 8 && len <= 8 + 128 && memcmp(key, "members/", 8) == 0 &&
        !memchr(key + 8, '/', len - 8) && !memchr(key, 0, len);
}

static struct pqri_kv *find(const struct pqri_kvset *s, const char *key, size_t klen)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->kv[i].key) == klen && memcmp(s->kv[i].key, key, klen) == 0)
            return &s->kv[i];
    return NULL;
}

const struct pqri_kv *pqri_kvset_get(const struct pqri_kvset *s, const char *key)
{
    return find(s, key, strlen(key));
}

int pqri_kvset_put(struct pqri_kvset *s, const char *key, size_t klen, const char *val, size_t vlen,
                   long long rev)
{
    struct pqri_kv *kv;
    char *v;

    if (!pqri_dcs_wanted(key, klen) || vlen > PQRI_DCS_MAX_VALUE || memchr(val, 0, vlen)) {
        pqri_kvset_del(s, key, klen);
        return PQRI_KV_SKIPPED;
    }
    if (!(v = strndup(val, vlen)))
        return -1;
    if ((kv = find(s, key, klen))) {
        free(kv->val);
        kv->val = v;
        kv->rev = rev;
        return 0;
    }
    if (s->n == PQRI_DCS_MAX_KEYS) {
        free(v);
        return PQRI_KV_SKIPPED;
    }
    kv = realloc(s->kv, (s->n + 1) * sizeof *kv);
    if (!kv || !(kv[s->n].key = strndup(key, klen))) {
        if (kv)
            s->kv = kv;
        free(v);
        return -1;
    }
    s->kv = kv;
    kv[s->n].val = v;
    kv[s->n].rev = rev;
    s->n++;
    return 0;
}

void pqri_kvset_del(struct pqri_kvset *s, const char *key, size_t klen)
{
    struct pqri_kv *kv = find(s, key, klen);

    if (!kv)
        return;
    free(kv->key);
    free(kv->val);
    *kv = s->kv[--s->n];
}

void pqri_kvset_clear(struct pqri_kvset *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->kv[i].key);
        free(s->kv[i].val);
    }
    free(s->kv);
    s->kv = NULL;
    s->n = 0;
}

int pqri_dcs_prefix(char *out, size_t len, const char *ns, const char *scope, int group)
{
    int n = group >= 0 ? snprintf(out, len, "%s/%s/%d/", ns, scope, group)
                       : snprintf(out, len, "%s/%s/", ns, scope);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* A number that may come as a JSON integer or a decimal string. */
static long long jnum(json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_string(v)) {
        char *end;
        long long x = strtoll(json_string_value(v), &end, 10);
        if (!*end && end != json_string_value(v))
            return x;
    }
    return -1;
}

/* Host and port from a member's conn_url (a libpq URI), through libpq's own parser. */
static int conn_host_port(const char *url, json_t *m)
{
    struct pqri_conninfo ci;
    const char *host, *port;
    char *end;
    long p = 5432;
    int rc = -1;

    if (pqri_conninfo_parse(&ci, url) < 0)
        return -1;
    host = pqri_conninfo_value(ci.opts, "host");
    port = pqri_conninfo_value(ci.opts, "port");
    if (port)
        p = strtol(port, &end, 10);
    if (host && !strchr(host, ',') && host[0] != '/' && (!port || (!*end && p > 0 && p < 65536))) {
        json_object_set_new(m, "host", json_string(host));
        json_object_set_new(m, "port", json_integer(p));
        rc = 0;
    }
    pqri_conninfo_release(&ci);
    return rc;
}

static bool in_sync(json_t *sync, const char *name)
{
    const char *list = json_is_string(json_object_get(sync, "sync_standby"))
        ? json_string_value(json_object_get(sync, "sync_standby"))
        : NULL;
    size_t n = strlen(name);

    /* "a,b" since Patroni 2.1 (synchronous_node_count > 1), a single name before */
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, name, n) == 0)
            return true;
        p = e ? e + 1 : p + l;
    }
    return false;
}

struct pqr_topology *pqri_dcs_topology(const struct pqri_kvset *s, const char *source, char *err,
                                       size_t errlen)
{
    const struct pqri_kv *lk = pqri_kvset_get(s, "leader"), *st = pqri_kvset_get(s, "status"),
                         *sy = pqri_kvset_get(s, "sync");
    json_t *root = json_object(), *members = json_array(), *sync = NULL, *status = NULL;
    const char *leader = lk ? lk->val : NULL;
    long long last_lsn = -1;
    struct pqr_topology *t = NULL;
    char *text = NULL;

    if (!root || !members) {
        pqri_errf(err, errlen, "out of memory");
        goto out;
    }
    if (sy)
        sync = json_loads(sy->val, 0, NULL);
    if (st && (status = json_loads(st->val, 0, NULL)))
        last_lsn = jnum(json_object_get(status, "optime"));
    /* The leader's position when status has none (Patroni before 2.1 wrote /optime/leader). */
    for (size_t i = 0; leader && last_lsn < 0 && i < s->n; i++)
        if (strncmp(s->kv[i].key, "members/", 8) == 0 && strcmp(s->kv[i].key + 8, leader) == 0) {
            json_t *d = json_loads(s->kv[i].val, 0, NULL);
            last_lsn = jnum(json_object_get(d, "xlog_location"));
            json_decref(d);
        }
    for (size_t i = 0; i < s->n; i++) {
        const char *name = s->kv[i].key + 8, *role, *url;
        json_t *d, *m;
        long long pos;

        if (strncmp(s->kv[i].key, "members/", 8) != 0)
            continue;
        if (!(d = json_loads(s->kv[i].val, JSON_REJECT_DUPLICATES, NULL)) || !json_is_object(d)) {
            json_decref(d);
            continue; /* one unreadable member; the others still describe the cluster */
        }
        role = json_string_value(json_object_get(d, "role"));
        url = json_string_value(json_object_get(d, "conn_url"));
        m = json_object();
        if (!role || !url || !m || conn_host_port(url, m) < 0) {
            json_decref(m);
            json_decref(d);
            continue;
        }
        bool leads = leader && strcmp(name, leader) == 0;
        bool claims = strcmp(role, "master") == 0 || strcmp(role, "primary") == 0;
        if (!leads && claims) {
            /* Says it is the primary without holding the leader key: demoting, or cut off from the
             * DCS. Never a place for writes, not yet a replica. */
            json_decref(m);
            json_decref(d);
            continue;
        }
        json_object_set_new(m, "name", json_string(name));
        json_object_set_new(
            m, "role",
            json_string(leads ? (strcmp(role, "standby_leader") == 0 ? "standby_leader" : "leader")
                            : in_sync(sync, name) ? "sync_standby"
                                                  : "replica"));
        if (json_object_get(d, "state")) /* borrowed: set takes its own reference */
            json_object_set(m, "state", json_object_get(d, "state"));
        else /* new: set_new takes ours (set would leak it, 40 bytes a member a view) */
            json_object_set_new(m, "state", json_string("unknown"));
        if (json_is_string(json_object_get(d, "api_url")))
            json_object_set(m, "api_url", json_object_get(d, "api_url"));
        if (json_is_integer(json_object_get(d, "timeline")))
            json_object_set(m, "timeline", json_object_get(d, "timeline"));
        if (json_is_object(json_object_get(d, "tags")))
            json_object_set(m, "tags", json_object_get(d, "tags"));
        pos = jnum(json_object_get(d, "xlog_location"));
        if (!leads && pos >= 0 && last_lsn >= 0)
            json_object_set_new(m, "lag", json_integer(last_lsn > pos ? last_lsn - pos : 0));
        json_array_append_new(members, m);
        json_decref(d);
    }
    json_object_set_new(root, "members", members);
    members = NULL;
    if (!(text = json_dumps(root, JSON_COMPACT))) {
        pqri_errf(err, errlen, "out of memory");
        goto out;
    }
    if ((t = pqri_topo_parse(text, strlen(text), err, errlen))) {
        free(t->source);
        if (!(t->source = strdup(source))) {
            pqri_errf(err, errlen, "out of memory");
            pqri_topo_unref(t);
            t = NULL;
        }
    }
out:
    free(text);
    json_decref(members);
    json_decref(root);
    json_decref(sync);
    json_decref(status);
    return t;
}

struct pqr_topology *pqri_dcs_view(const struct pqri_kvset *s, const char *store, const char *how,
                                   const char *endpoint, const char *prefix, char *err,
                                   size_t errlen)
{
    char source[700];
    struct pqr_topology *t;

    snprintf(source, sizeof source, "%s %s %s", store, how, endpoint);
    if (!(t = pqri_dcs_topology(s, source, err, errlen)))
        return NULL;
    if (t->n == 0) {
        pqri_errf(err, errlen, "%s %s: no members under %s", store, endpoint, prefix);
        pqri_topo_unref(t);
        return NULL;
    }
    t->mono_ms = pqri_mono_ms();
    return t;
}
