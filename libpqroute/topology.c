/*
 * The topology snapshot: Patroni's /cluster JSON <-> an immutable, reference-counted struct.
 * No I/O here. The shared cache file uses the same JSON shape plus a few fields of ours, so one
 * parser (and one fuzz target) covers both.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "topology.h"
#include "addr.h"
#include "log.h"
#include "resolve.h"

static const struct {
    const char *name;
    pqr_member_role role;
} roles[] = {
    {"leader", PQR_MEMBER_LEADER},
    {"master", PQR_MEMBER_LEADER}, /* Patroni < 3 and /patroni in 3.x */
    {"primary", PQR_MEMBER_LEADER},
    {"standby_leader", PQR_MEMBER_STANDBY_LEADER},
    {"sync_standby", PQR_MEMBER_SYNC_STANDBY},
    {"quorum_standby", PQR_MEMBER_QUORUM_STANDBY},
    {"replica", PQR_MEMBER_REPLICA},
};

pqr_member_role pqri_role_parse(const char *s)
{
    for (size_t i = 0; i < sizeof roles / sizeof *roles; i++)
        if (strcmp(s, roles[i].name) == 0)
            return roles[i].role;
    return PQR_MEMBER_UNKNOWN;
}

const char *pqr_member_role_name(pqr_member_role role)
{
    switch (role) {
    case PQR_MEMBER_LEADER:
        return "leader";
    case PQR_MEMBER_STANDBY_LEADER:
        return "standby_leader";
    case PQR_MEMBER_SYNC_STANDBY:
        return "sync_standby";
    case PQR_MEMBER_QUORUM_STANDBY:
        return "quorum_standby";
    case PQR_MEMBER_REPLICA:
        return "replica";
    default:
        return "unknown";
    }
}

static void member_free(struct pqri_member *m)
{
    free(m->name);
    free(m->host);
    free(m->api_url);
    free(m->state);
    for (size_t i = 0; i < m->ntags; i++) {
        free(m->tags[i].key);
        free(m->tags[i].value);
    }
    free(m->tags);
    memset(m, 0, sizeof *m);
}

static void topo_free(struct pqr_topology *t)
{
    for (size_t i = 0; i < t->n; i++)
        member_free(&t->m[i]);
    free(t->m);
    free(t->source);
    free(t);
}

struct pqr_topology *pqri_topo_ref(struct pqr_topology *t)
{
    if (t)
        __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
    return t;
}

void pqri_topo_unref(struct pqr_topology *t)
{
    if (t && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
        topo_free(t);
}

/* A copy of src (NULL stays NULL) into *dst: false out of memory. */
static bool dup_str(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return !src || *dst;
}

struct pqr_topology *pqri_topo_copy(const struct pqr_topology *t)
{
    struct pqr_topology *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    *c = *t;
    c->refs = 1;
    c->m = NULL;
    c->n = 0;
    if (!dup_str(&c->source, t->source) || !(c->m = calloc(t->n ? t->n : 1, sizeof *c->m)))
        goto fail;
    for (; c->n < t->n; c->n++) {
        const struct pqri_member *a = &t->m[c->n];
        struct pqri_member *b = &c->m[c->n];
        *b = *a;
        b->name = b->host = b->api_url = b->state = NULL;
        b->tags = NULL;
        b->ntags = 0;
        if (!dup_str(&b->name, a->name) || !dup_str(&b->host, a->host) ||
            !dup_str(&b->api_url, a->api_url) || !dup_str(&b->state, a->state) ||
            (a->ntags && !(b->tags = calloc(a->ntags, sizeof *b->tags)))) {
            c->n++; /* freed with the others */
            goto fail;
        }
        for (; b->ntags < a->ntags; b->ntags++)
            if (!dup_str(&b->tags[b->ntags].key, a->tags[b->ntags].key) ||
                !dup_str(&b->tags[b->ntags].value, a->tags[b->ntags].value)) {
                b->ntags++;
                c->n++;
                goto fail;
            }
    }
    return c;
fail:
    topo_free(c);
    return NULL;
}

/* A string field of bounded length, or NULL. */
static const char *jstr(json_t *o, const char *key, size_t max)
{
    json_t *v = json_object_get(o, key);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    return s && strlen(s) <= max && strlen(s) == json_string_length(v) ? s : NULL;
}

static char *escaped(const char *s, size_t max)
{
    char *e = pqri_escape_dup(s);
    if (e && strlen(e) > max) {
        free(e);
        return NULL;
    }
    return e;
}

/* Tags are YAML in Patroni's config: booleans, but "true" strings are seen too. */
static bool jtag(json_t *tags, const char *key)
{
    json_t *v = json_object_get(tags, key);
    return json_is_true(v) || (json_is_string(v) && strcmp(json_string_value(v), "true") == 0);
}

#define MAX_TAGS 16

/* The text and integer tags (a zone's name is either, as YAML reads it): bounded like every other
 * field, escaped like them; booleans are read by jtag(). */
static int parse_tags(json_t *tags, struct pqri_member *m)
{
    const char *key;
    json_t *v;
    char num[32];

    if (!json_is_object(tags))
        return 0;
    json_object_foreach(tags, key, v)
    {
        const char *text = NULL;
        if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v))
            text = json_string_value(v);
        else if (json_is_integer(v))
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v)), text = num;
        if (!text || m->ntags == MAX_TAGS)
            continue;
        if (!m->tags && !(m->tags = calloc(MAX_TAGS, sizeof *m->tags)))
            return -1;
        struct pqri_tag *g = &m->tags[m->ntags];
        g->key = escaped(key, 64);
        g->value = escaped(text, 128);
        if (!g->key || !g->value) {
            free(g->key), free(g->value);
            g->key = g->value = NULL;
            continue; /* too long: as if absent */
        }
        m->ntags++;
    }
    return 0;
}

const char *pqri_member_tag(const struct pqri_member *m, const char *key)
{
    for (size_t i = 0; key && i < m->ntags; i++)
        if (strcmp(m->tags[i].key, key) == 0)
            return m->tags[i].value;
    return NULL;
}

static int parse_member(json_t *o, struct pqri_member *m)
{
    const char *name = jstr(o, "name", 128), *host = jstr(o, "host", 255),
               *role = jstr(o, "role", 64), *state = jstr(o, "state", 64),
               *api = jstr(o, "api_url", 512), *addr = jstr(o, "addr", PQRI_ADDRLEN - 1);
    json_t *port = json_object_get(o, "port"), *tl = json_object_get(o, "timeline"),
           *lag = json_object_get(o, "lag"), *tags = json_object_get(o, "tags");

    if (!json_is_object(o) || !name || !host || !*host || !json_is_integer(port) ||
        json_integer_value(port) < 1 || json_integer_value(port) > 65535)
        return -1;
    memset(m, 0, sizeof *m);
    /* Printed to terminals and logs: no control sequences from the network. The limits hold for
     * the escaped text, so that the shared cache file reads back as it was written. */
    m->name = escaped(name, 128);
    m->host = escaped(host, 255);
    m->state = escaped(state ? state : "unknown", 64);
    m->api_url = api ? strdup(api) : NULL;
    if (!m->name || !m->host || !m->state || (api && !m->api_url))
        return -1;
    m->role = role ? pqri_role_parse(role) : PQR_MEMBER_UNKNOWN;
    m->patroni_port = m->port = (int)json_integer_value(port);
    m->timeline =
        json_is_integer(tl) && json_integer_value(tl) >= 0 ? (long)json_integer_value(tl) : -1;
    /* lag is a number, "unknown", or absent (the leader, and members Patroni knows nothing of). */
    m->lag = json_is_integer(lag) && json_integer_value(lag) >= 0 ? json_integer_value(lag) : -1;
    m->noloadbalance = jtag(tags, "noloadbalance");
    m->nofailover = jtag(tags, "nofailover");
    if (parse_tags(tags, m) < 0)
        return -1;
    if (addr)
        pqri_numeric_addr(addr, m->addr);
    return 0;
}

struct pqr_topology *pqri_topo_parse(const char *json, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root, *members, *ours;
    struct pqr_topology *t = NULL;
    size_t n;

    if (len > PQRI_MAX_BODY) {
        pqri_errf(err, errlen, "response too large (%zu bytes)", len);
        return NULL;
    }
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        pqri_errf(err, errlen, "not JSON: %s (line %d)", jerr.text, jerr.line);
        return NULL;
    }
    members = json_object_get(root, "members");
    if (!json_is_array(members)) {
        pqri_errf(err, errlen, "no \"members\" array");
        goto out;
    }
    n = json_array_size(members);
    if (n > PQRI_MAX_MEMBERS) {
        pqri_errf(err, errlen, "%zu members (at most %d)", n, PQRI_MAX_MEMBERS);
        goto out;
    }
    t = calloc(1, sizeof *t);
    if (!t || !(t->m = calloc(n ? n : 1, sizeof *t->m)))
        goto oom;
    t->refs = 1;
    t->leader = -1;
    for (size_t i = 0; i < n; i++) {
        if (parse_member(json_array_get(members, i), &t->m[t->n]) < 0) {
            member_free(&t->m[t->n]);
            continue; /* a member we cannot use; the others still describe the cluster */
        }
        t->n++;
    }
    ours = json_object_get(root, "pqroute");
    if (json_is_object(ours)) {
        json_t *at = json_object_get(ours, "fetched_at_ms"), *seq = json_object_get(ours, "seq");
        json_t *vouch = json_object_get(ours, "vouch_ms");
        const char *src = jstr(ours, "source", 512);
        if (json_is_integer(at))
            t->fetched_ms = json_integer_value(at);
        if (json_is_integer(seq) && json_integer_value(seq) > 0)
            t->seq = (uint64_t)json_integer_value(seq);
        /* Bounded: a file that says "valid for a day" is not believed past an hour. */
        if (json_is_integer(vouch) && json_integer_value(vouch) > 0)
            t->vouch_ms = json_integer_value(vouch) > 3600000 ? 3600000 : json_integer_value(vouch);
        if (src && !(t->source = strdup(src)))
            goto oom;
    }
    pqri_topo_finish(t);
    json_decref(root);
    return t;
oom:
    pqri_errf(err, errlen, "out of memory");
out:
    if (t)
        topo_free(t);
    json_decref(root);
    return NULL;
}

void pqri_topo_finish(struct pqr_topology *t)
{
    uint64_t h = PQRI_FNV_SEED;
    int best = -1;

    t->max_tl = -1;
    for (size_t i = 0; i < t->n; i++) {
        const struct pqri_member *m = &t->m[i];
        if (m->timeline > t->max_tl)
            t->max_tl = m->timeline;
        if (pqri_member_leads(m)) {
            /* Two claimants (a forged or split view): the running one on the newest timeline. */
            const struct pqri_member *b = best >= 0 ? &t->m[best] : NULL;
            bool running = pqri_member_up(m), brun = b && pqri_member_up(b);
            if (!b || (running && !brun) || (running == brun && m->timeline > b->timeline))
                best = (int)i;
        }
        h = pqri_fnv(h, m->name, strlen(m->name) + 1);
        h = pqri_fnv(h, m->state, strlen(m->state) + 1);
        h = pqri_fnv(h, m->addr, strlen(m->addr) + 1);
        h = pqri_fnv(h, &m->role, sizeof m->role);
        h = pqri_fnv(h, &m->port, sizeof m->port);
        h = pqri_fnv(h, &m->timeline, sizeof m->timeline);
        h = pqri_fnv(h, &m->noloadbalance, sizeof m->noloadbalance);
        for (size_t k = 0; k < m->ntags; k++) /* a zone orders the replicas */
            h = pqri_fnv(pqri_fnv(h, m->tags[k].key, strlen(m->tags[k].key) + 1), m->tags[k].value,
                         strlen(m->tags[k].value) + 1);
    }
    t->leader = best;
    t->gen = h;
}

bool pqri_member_leads(const struct pqri_member *m)
{
    return m->role == PQR_MEMBER_LEADER || m->role == PQR_MEMBER_STANDBY_LEADER;
}

bool pqri_member_up(const struct pqri_member *m)
{
    return strcmp(m->state, "running") == 0 || strcmp(m->state, "streaming") == 0;
}

static bool has_running_leader(const struct pqr_topology *t)
{
    return t->leader >= 0 && strcmp(t->m[t->leader].state, "running") == 0;
}

bool pqri_topo_leader_running(const struct pqr_topology *t)
{
    /* A standby leader streams from its remote primary. */
    return t->leader >= 0 && pqri_member_up(&t->m[t->leader]);
}

void pqri_topo_filter(struct pqr_topology *t, const struct pqr_settings *s,
                      const struct pqri_cluster_conf *c)
{
    int override = pqri_settings_member_port(s, c);

    for (size_t i = 0; i < t->n; i++) {
        struct pqri_member *m = &t->m[i];
        m->port = override ? override : m->patroni_port;
        if (!m->addr[0])
            pqri_numeric_addr(m->host, m->addr);
        if (m->addr[0] && !pqri_cidr_allows(s->allow, s->nallow, m->addr)) {
            PQRI_DEBUG("member %s: address %s is outside PQROUTE_ALLOW", m->name, m->addr);
            m->addr[0] = 0;
        }
    }
    pqri_topo_finish(t);
}

bool pqri_topo_better(const struct pqr_topology *a, const struct pqr_topology *b)
{
    if (!b)
        return true;
    if (a->max_tl != b->max_tl)
        return a->max_tl > b->max_tl;
    if (has_running_leader(a) != has_running_leader(b))
        return has_running_leader(a);
    if (a->n != b->n)
        return a->n > b->n;
    return a->fetched_ms > b->fetched_ms;
}

char *pqri_topo_dump(const struct pqr_topology *t)
{
    json_t *root = json_object(), *arr = json_array(), *ours = json_object();
    char *out = NULL;

    if (!root || !arr || !ours)
        goto out;
    for (size_t i = 0; i < t->n; i++) {
        const struct pqri_member *m = &t->m[i];
        json_t *o = json_object(), *tags = json_object();
        if (!o || !tags) {
            json_decref(o), json_decref(tags);
            goto out;
        }
        json_object_set_new(o, "name", json_string(m->name));
        json_object_set_new(o, "role", json_string(pqr_member_role_name(m->role)));
        json_object_set_new(o, "state", json_string(m->state));
        json_object_set_new(o, "host", json_string(m->host));
        json_object_set_new(o, "port", json_integer(m->patroni_port));
        if (m->addr[0])
            json_object_set_new(o, "addr", json_string(m->addr));
        if (m->api_url)
            json_object_set_new(o, "api_url", json_string(m->api_url));
        if (m->timeline >= 0)
            json_object_set_new(o, "timeline", json_integer(m->timeline));
        json_object_set_new(o, "lag", m->lag >= 0 ? json_integer(m->lag) : json_string("unknown"));
        for (size_t k = 0; k < m->ntags; k++)
            json_object_set_new(tags, m->tags[k].key, json_string(m->tags[k].value));
        if (m->noloadbalance)
            json_object_set_new(tags, "noloadbalance", json_true());
        if (m->nofailover)
            json_object_set_new(tags, "nofailover", json_true());
        json_object_set_new(o, "tags", tags);
        json_array_append_new(arr, o);
    }
    json_object_set_new(ours, "fetched_at_ms", json_integer(t->fetched_ms));
    json_object_set_new(ours, "seq", json_integer((json_int_t)(t->seq & INT64_MAX)));
    json_object_set_new(ours, "source", json_string(t->source ? t->source : ""));
    if (t->vouch_ms > 0)
        json_object_set_new(ours, "vouch_ms", json_integer(t->vouch_ms));
    json_object_set(root, "members", arr);
    json_object_set(root, "pqroute", ours);
    out = json_dumps(root, JSON_COMPACT);
out:
    json_decref(arr);
    json_decref(ours);
    json_decref(root);
    return out;
}

/* ---- public accessors ---- */

void pqr_topology_release(pqr_topology *t)
{
    pqri_topo_unref(t);
}

unsigned long long pqr_topology_generation(const pqr_topology *t)
{
    return t ? t->gen : 0;
}

double pqr_topology_age(const pqr_topology *t)
{
    return t ? (double)(pqri_mono_ms() - t->mono_ms) / 1000.0 : -1.0;
}

const char *pqr_topology_source(const pqr_topology *t)
{
    return t && t->source ? t->source : "";
}

size_t pqr_topology_size(const pqr_topology *t)
{
    return t ? t->n : 0;
}

int pqr_topology_leader(const pqr_topology *t)
{
    return t ? t->leader : -1;
}

static const struct pqri_member *member(const pqr_topology *t, size_t i)
{
    return t && i < t->n ? &t->m[i] : NULL;
}

const char *pqr_member_name(const pqr_topology *t, size_t i)
{
    const struct pqri_member *m = member(t, i);
    return m ? m->name : NULL;
}

pqr_member_role pqr_member_role_of(const pqr_topology *t, size_t i)
{
    const struct pqri_member *m = member(t, i);
    return m ? m->role : PQR_MEMBER_UNKNOWN;
}

const char *pqr_member_state(const pqr_topology *t, size_t i)
{
    const struct pqri_member *m = member(t, i);
    return m ? m->state : NULL;
}

const char *pqr_member_host(const pqr_topology *t, size_t i)
{
    const struct pqri_member *m = member(t, i);
    return m ? m->host : NULL;
}

const char *pqr_member_addr(const pqr_topology *t, size_t i)
{
    const struct pqri_member *m = member(t, i);
    return m ? m->addr : NULL;
}

int pqr_member_port(const pqr_topology *t, size_t i)
{
    const struct pqri_member *m = member(t, i);
    return m ? m->port : -1;
}

long pqr_member_timeline(const pqr_topology *t, size_t i)
{
    const struct pqri_member *m = member(t, i);
    return m ? m->timeline : -1;
}

long long pqr_member_lag(const pqr_topology *t, size_t i)
{
    const struct pqri_member *m = member(t, i);
    return m ? m->lag : -1;
}

int pqr_member_noloadbalance(const pqr_topology *t, size_t i)
{
    const struct pqri_member *m = member(t, i);
    return m ? m->noloadbalance : 0;
}

void pqri_topo_complete(struct pqr_topology *t, const struct pqr_settings *s,
                        const struct pqri_cluster_conf *c)
{
    long long deadline = t->mono_ms + s->rest_timeout_ms, now = pqri_mono_ms();

    pqri_resolve_members(t, deadline > now ? deadline : now + 1);
    pqri_topo_filter(t, s, c);
    /* The view's age starts when it is complete. */
    t->fetched_ms = pqri_now_ms();
    t->mono_ms = pqri_mono_ms();
}
