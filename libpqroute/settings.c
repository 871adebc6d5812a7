/*
 * Settings: PQROUTE_* environment variables and the libconfig file, validated into one struct.
 * Every value goes through pqri_settings_set(), whichever source it came from, so the file and the
 * environment accept exactly the same syntax and report errors the same way.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "settings.h"
#include "addr.h"
#include "log.h"
#include "shim_api.h"

#define ENV_PREFIX "PQROUTE_"

void pqri_settings_init(struct pqr_settings *s)
{
    memset(s, 0, sizeof *s);
    s->refresh_ms = 1000;
    s->stale_ms = 10000;
    s->watch_check_ms = 12000;
    s->fallback_ms = 15000;
    s->rest_timeout_ms = 1000;
    s->connect_timeout_s = 2;
    s->start_wait_ms = 100;
    s->max_lag = 1048576; /* Patroni's default maximum_lag_on_failover */
    s->log_level = PQRI_LOG_WARN;
    s->dcs.group = -1;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void dcs_clear(struct pqri_dcs_conf *d)
{
    free_strv(d->urls, d->nurls);
    free(d->scope);
    free(d->ns);
    free(d->ca);
    free(d->cert);
    free(d->key);
    free(d->user);
    free(d->password_file);
    free(d->token_file);
    memset(d, 0, sizeof *d);
    d->group = -1;
}

static void cluster_clear(struct pqri_cluster_conf *c)
{
    dcs_clear(&c->dcs);
    free(c->name);
    free_strv(c->seeds, c->nseeds);
    free(c->rw_host);
    free(c->ro_host);
    free(c->zone);
    free(c->zone_tag);
    free(c->key);
    memset(c, 0, sizeof *c);
}

void pqri_settings_clear(struct pqr_settings *s)
{
    for (size_t i = 0; i < s->nclusters; i++)
        cluster_clear(&s->clusters[i]);
    free(s->clusters);
    free(s->rest_ca);
    free(s->rest_cert);
    free(s->rest_key);
    free(s->cache_dir);
    free(s->cache_owner);
    free(s->zone);
    free(s->zone_tag);
    free(s->allow);
    free(s->env_patroni);
    free(s->env_rw);
    free(s->env_ro);
    free(s->etcd);
    free(s->consul);
    dcs_clear(&s->dcs);
    memset(s, 0, sizeof *s);
}

/* *dst = a copy of src (NULL stays NULL): 0, or -1 out of memory with *dst NULL. */
static int dup_str(char **dst, const char *src)
{
    *dst = NULL;
    return src && !(*dst = strdup(src)) ? -1 : 0;
}

/* The copies below fail as a whole (-1: out of memory), never by leaving a setting out. Even then
 * every pointer in the copy is its own or NULL, so clearing it is right: the strings are copied
 * with | (each one tried, none left pointing into the original), lists counted as they are filled. */
static int copy_dcs(struct pqri_dcs_conf *d, const struct pqri_dcs_conf *c)
{
    *d = *c;
    d->urls = NULL;
    d->nurls = 0;
    if ((dup_str(&d->scope, c->scope) | dup_str(&d->ns, c->ns) | dup_str(&d->ca, c->ca) |
         dup_str(&d->cert, c->cert) | dup_str(&d->key, c->key) | dup_str(&d->user, c->user) |
         dup_str(&d->password_file, c->password_file) | dup_str(&d->token_file, c->token_file)) !=
        0)
        return -1;
    if (c->nurls) {
        if (!(d->urls = calloc(c->nurls, sizeof(char *))))
            return -1;
        for (; d->nurls < c->nurls; d->nurls++)
            if (!(d->urls[d->nurls] = strdup(c->urls[d->nurls])))
                return -1;
    }
    return 0;
}

static int copy_cluster(struct pqri_cluster_conf *d, const struct pqri_cluster_conf *c)
{
    *d = *c;
    d->seeds = NULL;
    d->nseeds = 0;
    if ((copy_dcs(&d->dcs, &c->dcs) | dup_str(&d->name, c->name) |
         dup_str(&d->rw_host, c->rw_host) | dup_str(&d->ro_host, c->ro_host) |
         dup_str(&d->zone, c->zone) | dup_str(&d->zone_tag, c->zone_tag) |
         dup_str(&d->key, c->key)) != 0)
        return -1;
    if (!(d->seeds = calloc(c->nseeds ? c->nseeds : 1, sizeof(char *))))
        return -1;
    for (; d->nseeds < c->nseeds; d->nseeds++)
        if (!(d->seeds[d->nseeds] = strdup(c->seeds[d->nseeds])))
            return -1;
    return 0;
}

int pqri_settings_copy(struct pqr_settings *d, const struct pqr_settings *s)
{
    *d = *s;
    d->clusters = NULL;
    d->nclusters = 0;
    d->allow = NULL;
    d->nallow = 0;
    if ((dup_str(&d->rest_ca, s->rest_ca) | dup_str(&d->rest_cert, s->rest_cert) |
         dup_str(&d->rest_key, s->rest_key) | dup_str(&d->cache_dir, s->cache_dir) |
         dup_str(&d->cache_owner, s->cache_owner) | dup_str(&d->zone, s->zone) |
         dup_str(&d->zone_tag, s->zone_tag) | dup_str(&d->env_patroni, s->env_patroni) |
         dup_str(&d->env_rw, s->env_rw) | dup_str(&d->env_ro, s->env_ro) |
         dup_str(&d->etcd, s->etcd) | dup_str(&d->consul, s->consul) |
         copy_dcs(&d->dcs, &s->dcs)) != 0)
        return -1;
    if (s->nallow) {
        if (!(d->allow = malloc(s->nallow * sizeof *s->allow)))
            return -1;
        memcpy(d->allow, s->allow, s->nallow * sizeof *s->allow);
        d->nallow = s->nallow;
    }
    if (s->nclusters) {
        d->clusters = calloc(s->nclusters, sizeof *d->clusters);
        if (!d->clusters)
            return -1;
        for (size_t i = 0; i < s->nclusters; i++) {
            d->nclusters = i + 1; /* counted first: a half copy is cleared with the rest */
            if (copy_cluster(&d->clusters[i], &s->clusters[i]) < 0)
                return -1;
        }
    }
    return 0;
}

/* An allocation failed: the setting is refused, with a message, never silently left out. */
static int no_memory(char *err, size_t errlen, const char *name)
{
    pqri_errc(PQR_ERR_RESOURCE, err, errlen, "%s%s: out of memory", ENV_PREFIX, name);
    return -1;
}

/* Comma-separated http(s) base URLs. */
static int parse_urls(const char *v, char ***out, size_t *nout, char *err, size_t errlen,
                      const char *name)
{
    char **urls = calloc(PQRI_MAX_ENDPOINTS, sizeof(char *));
    size_t n = 0;
    const char *p = v;

    if (!urls)
        return no_memory(err, errlen, name);
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && isspace((unsigned char)*p))
            p++, len--;
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        while (len > 1 && p[len - 1] == '/')
            len--;
        if (len == 0 || len > 512 ||
            !(strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) ||
            len <= (strncasecmp(p, "https://", 8) == 0 ? 8u : 7u)) {
            char seg[600], shown[600];
            snprintf(seg, sizeof seg, "%.*s", (int)(len > 512 ? 512 : len), p);
            pqri_url_display(shown, sizeof shown, seg);
            pqri_errf(err, errlen, "%s%s: expected http(s)://host:port[,...], got \"%.80s\"",
                      ENV_PREFIX, name, shown);
            goto fail;
        }
        for (size_t i = 0; i < len; i++)
            if (isspace((unsigned char)p[i]) || iscntrl((unsigned char)p[i])) {
                pqri_errf(err, errlen, "%s%s: URL contains white space", ENV_PREFIX, name);
                goto fail;
            }
        if (n == PQRI_MAX_ENDPOINTS) {
            pqri_errf(err, errlen, "%s%s: more than %d URLs", ENV_PREFIX, name, PQRI_MAX_ENDPOINTS);
            goto fail;
        }
        if (!(urls[n++] = strndup(p, len))) {
            no_memory(err, errlen, name);
            goto fail;
        }
        p += e ? (size_t)(e - p) + 1 : strlen(p);
        if (e && !*p) {
            pqri_errf(err, errlen, "%s%s: trailing comma", ENV_PREFIX, name);
            goto fail;
        }
    }
    if (n == 0) {
        pqri_errf(err, errlen, "%s%s: no URL", ENV_PREFIX, name);
        goto fail;
    }
    *out = urls;
    *nout = n;
    return 0;
fail:
    free_strv(urls, n);
    return -1;
}

/* The first len bytes of v as the setting's text; the old text is kept when there is no memory. */
static int set_str(char **dst, const char *v, size_t len, char *err, size_t errlen,
                   const char *name)
{
    char *d = strndup(v, len);
    if (!d)
        return no_memory(err, errlen, name);
    free(*dst);
    *dst = d;
    return 0;
}

/* Comma-separated prefixes: 0, -1 malformed, -2 out of memory. */
static int parse_cidrs(const char *value, struct pqri_cidr **out, size_t *nout)
{
    struct pqri_cidr *list = NULL;
    size_t n = 0;
    const char *p = value;

    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        struct pqri_cidr *nl;
        while (len && *p == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        if (!(nl = realloc(list, (n + 1) * sizeof *list))) {
            free(list);
            return -2;
        }
        list = nl;
        if (pqri_cidr_parse(p, len, &list[n]) < 0) {
            free(list);
            return -1;
        }
        n++;
        p += e ? (size_t)(e - p) + 1 : strlen(p);
    }
    *out = list;
    *nout = n;
    return 0;
}

/* Every setting, once: its name (PQROUTE_ + name in the environment, lower case in the file), what
 * it takes, where it goes, and where it may be given — the environment takes every one. */
enum kind {
    K_INT,
    K_URLS,
    K_HOSTPORT,
    K_FRONT_DOOR,
    K_LOG,
    K_READABLE,
    K_ABSPATH,
    K_CIDRS,
    K_NAME,
    K_NAMESPACE,
    K_ZONES,
    K_RO_FALLBACK
};
/* Like the properties libpq's PQconninfoOptions carries per option: said here, once, and not in a
 * list of names elsewhere that could drift from the table. */
enum where {
    W_TOP,     /* the file's top level: every cluster */
    W_CLUSTER, /* ... or a clusters entry: that cluster's own value */
    W_ENTRY    /* what makes a cluster, the environment's or a clusters entry's own key: never the
                  file's top level */
};
static const struct setting {
    const char *name;
    enum kind kind;
    size_t off, size;
    long long lo, hi;
    const char *what; /* "expected ..." */
    enum where where;
} settings_table[] = {
#define AT(field) offsetof(struct pqr_settings, field), sizeof(((struct pqr_settings *)0)->field)
    {"PATRONI", K_URLS, AT(env_patroni), 0, 0, "http(s)://host:port[,...]", W_ENTRY},
    {"RW", K_HOSTPORT, AT(env_rw), 0, 0, "host:port", W_ENTRY},
    {"RO", K_HOSTPORT, AT(env_ro), 0, 0, "host:port", W_ENTRY},
    {"LOG", K_LOG, AT(log_level), 0, 0, "error, warn, info or debug", W_TOP},
    {"REFRESH_MS", K_INT, AT(refresh_ms), 50, 3600000, "milliseconds from 50 to 3600000", W_TOP},
    {"STALE_MS", K_INT, AT(stale_ms), 100, 86400000, "milliseconds from 100 to 86400000", W_TOP},
    {"WATCH_CHECK_MS", K_INT, AT(watch_check_ms), 1000, 3600000,
     "milliseconds from 1000 to 3600000", W_TOP},
    {"FALLBACK_MS", K_INT, AT(fallback_ms), 5000, 3600000, "milliseconds from 5000 to 3600000",
     W_TOP},
    {"REST_TIMEOUT_MS", K_INT, AT(rest_timeout_ms), 10, 60000, "milliseconds from 10 to 60000",
     W_TOP},
    {"CONNECT_TIMEOUT", K_INT, AT(connect_timeout_s), 0, 3600, "seconds from 0 to 3600", W_TOP},
    {"START_WAIT_MS", K_INT, AT(start_wait_ms), 0, 1000, "milliseconds from 0 to 1000", W_TOP},
    {"MAX_LAG", K_INT, AT(max_lag), 0, LLONG_MAX, "a number of bytes", W_CLUSTER},
    {"MEMBER_PORT", K_INT, AT(member_port), 1, 65535, "a port number", W_CLUSTER},
    {"REST_CA", K_READABLE, AT(rest_ca), 0, 0, "a readable file", W_TOP},
    {"REST_CERT", K_READABLE, AT(rest_cert), 0, 0, "a readable file", W_TOP},
    {"REST_KEY", K_READABLE, AT(rest_key), 0, 0, "a readable file", W_TOP},
    {"CACHE_DIR", K_ABSPATH, AT(cache_dir), 0, 0, "an absolute path", W_TOP},
    {"CACHE_OWNER", K_NAME, AT(cache_owner), 0, 0, "a user name", W_TOP},
    {"ALLOW", K_CIDRS, AT(allow), 0, 0, "address/bits[,...]", W_TOP},
    {"FRONT_DOOR", K_FRONT_DOOR, AT(door_mode), 0, 0, "adaptive, last or stale-only", W_TOP},
    {"ZONE", K_ZONES, AT(zone), 0, 0, "a zone name or a list (b,a) of at most 8", W_CLUSTER},
    {"ZONE_TAG", K_NAME, AT(zone_tag), 0, 0, "a Patroni tag name", W_CLUSTER},
    {"RO_FALLBACK", K_RO_FALLBACK, AT(ro_fallback), 0, 0, "door or leader", W_CLUSTER},
    {"ETCD", K_URLS, AT(etcd), 0, 0, "http(s)://host:port[,...]", W_CLUSTER},
    {"CONSUL", K_URLS, AT(consul), 0, 0, "http(s)://host:port[,...]", W_CLUSTER},
    {"SCOPE", K_NAME, AT(dcs.scope), 0, 0, "Patroni's scope (no '/')", W_CLUSTER},
    {"NAMESPACE", K_NAMESPACE, AT(dcs.ns), 0, 0, "a path such as /service", W_CLUSTER},
    {"CITUS_GROUP", K_INT, AT(dcs.group), 0, 1000000, "a Citus group number", W_CLUSTER},
    {"ETCD_CA", K_READABLE, AT(dcs.ca), 0, 0, "a readable file", W_CLUSTER},
    {"ETCD_CERT", K_READABLE, AT(dcs.cert), 0, 0, "a readable file", W_CLUSTER},
    {"ETCD_KEY", K_READABLE, AT(dcs.key), 0, 0, "a readable file", W_CLUSTER},
    {"ETCD_USER", K_NAME, AT(dcs.user), 0, 0, "a user name", W_CLUSTER},
    {"ETCD_PASSWORD_FILE", K_READABLE, AT(dcs.password_file), 0, 0, "a readable file", W_CLUSTER},
    {"CONSUL_TOKEN_FILE", K_READABLE, AT(dcs.token_file), 0, 0, "a readable file", W_CLUSTER},
#undef AT
};
#define NSETTINGS (sizeof settings_table / sizeof *settings_table)

/* name exactly as the table spells it (no PQROUTE_), else NULL. */
static const struct setting *find_setting(const char *name)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(name, settings_table[i].name) == 0)
            return &settings_table[i];
    return NULL;
}

int pqri_settings_set(struct pqr_settings *s, const char *name, const char *value, char *err,
                      size_t errlen)
{
    const struct setting *st;
    char *field;
    const char *host;
    size_t hostlen;
    long long x;
    int port;

    if (strncmp(name, ENV_PREFIX, strlen(ENV_PREFIX)) == 0)
        name += strlen(ENV_PREFIX);
    if (!(st = find_setting(name))) {
        pqri_errf(err, errlen, "unknown setting %s%s", ENV_PREFIX, name);
        return -1;
    }
    if (!value || !*value) {
        pqri_errf(err, errlen, "%s%s is set but empty", ENV_PREFIX, name);
        return -1;
    }
    field = (char *)s + st->off;
    switch (st->kind) {
    case K_INT:
        if (pqri_parse_int(value, st->lo, st->hi, &x) < 0)
            break;
        if (st->size == sizeof(int))
            *(int *)field = (int)x;
        else
            *(long long *)field = x;
        return 0;
    case K_URLS: {
        char **urls;
        size_t n;
        if (parse_urls(value, &urls, &n, err, errlen, name) < 0)
            return -1; /* its own message: which URL, without its credentials */
        free_strv(urls, n);
        return set_str((char **)field, value, strlen(value), err, errlen, name);
    }
    case K_HOSTPORT:
        if (pqri_parse_hostport(value, &host, &hostlen, &port) < 0)
            break;
        return set_str((char **)field, value, strlen(value), err, errlen, name);
    case K_FRONT_DOOR:
        if (strcmp(value, "adaptive") == 0)
            *(int *)field = PQRI_DOOR_ADAPTIVE;
        else if (strcmp(value, "last") == 0)
            *(int *)field = PQRI_DOOR_LAST;
        else if (strcmp(value, "stale-only") == 0)
            *(int *)field = PQRI_DOOR_STALE_ONLY;
        else
            break;
        return 0;
    case K_LOG:
        if ((port = pqri_log_parse(value)) < 0)
            break;
        *(int *)field = port;
        return 0;
    case K_READABLE:
        if (access(value, R_OK) != 0) {
            pqri_errf(err, errlen, "%s%s: cannot read \"%.200s\": %s", ENV_PREFIX, name, value,
                      strerror(errno));
            return -1;
        }
        return set_str((char **)field, value, strlen(value), err, errlen, name);
    case K_ABSPATH:
        if (value[0] != '/')
            break;
        return set_str((char **)field, value, strlen(value), err, errlen, name);
    case K_NAME:
        if (strlen(value) > 128 || strchr(value, '/'))
            break;
        for (const char *q = value; *q; q++)
            if (iscntrl((unsigned char)*q) || isspace((unsigned char)*q))
                goto bad;
        return set_str((char **)field, value, strlen(value), err, errlen, name);
    case K_NAMESPACE: {
        size_t len = strlen(value);
        while (len > 1 && value[len - 1] == '/')
            len--;
        if (value[0] != '/' || len > 128)
            break;
        for (size_t i = 0; i < len; i++)
            if (iscntrl((unsigned char)value[i]) || isspace((unsigned char)value[i]))
                goto bad;
        /* "/" is the root: no prefix */
        return set_str((char **)field, value, len == 1 ? 0 : len, err, errlen, name);
    }
    case K_ZONES: {
        /* names as Patroni's tags carry them: no space, no control character, none twice */
        size_t n = 0, len = strlen(value);
        for (const char *p = value, *e; *p; p = *e ? e + 1 : e) {
            e = p + strcspn(p, ",");
            if (e == p || e - p > 64 || ++n > PQRI_MAX_ZONES || (*e && !e[1]))
                goto bad;
            for (const char *q = p; q < e; q++)
                if (iscntrl((unsigned char)*q) || isspace((unsigned char)*q))
                    goto bad;
            for (const char *o = value; o < p; o += strcspn(o, ",") + 1)
                if (strcspn(o, ",") == (size_t)(e - p) && strncmp(o, p, (size_t)(e - p)) == 0)
                    goto bad;
        }
        return set_str((char **)field, value, len, err, errlen, name);
    }
    case K_RO_FALLBACK:
        if (strcmp(value, "door") == 0)
            *(int *)field = PQRI_RO_DOOR;
        else if (strcmp(value, "leader") == 0)
            *(int *)field = PQRI_RO_LEADER;
        else
            break;
        return 0;
    case K_CIDRS: {
        struct pqri_cidr *list;
        size_t n;
        int rc = parse_cidrs(value, &list, &n);
        if (rc == -2)
            return no_memory(err, errlen, name);
        if (rc < 0)
            break;
        free(s->allow);
        s->allow = list;
        s->nallow = n;
        return 0;
    }
    }
bad:
    pqri_errf(err, errlen, "%s%s: expected %s, got \"%.80s\"", ENV_PREFIX, name, st->what, value);
    return -1;
}

/* What a cluster entry (or the environment) gave: its REST seeds, DCS and front doors. */
struct cluster_src {
    const char *name, *patroni, *etcd, *consul, *rw, *ro;
    const struct pqri_dcs_conf *dcs; /* scope, namespace, group, TLS, authentication */
    int member_port;
    long long max_lag;
    const char *zone, *zone_tag; /* NULL: the global setting */
    int ro_fallback;             /* -1: the global setting */
};

/* A cluster's DCS settings, each taken from the entry or else from the defaults d. */
static int dcs_take(struct pqri_dcs_conf *c, const struct cluster_src *src,
                    const struct pqri_dcs_conf *d, char *err, size_t errlen)
{
    const struct pqri_dcs_conf *e = src->dcs;
    const char *urls = src->etcd ? src->etcd : src->consul;

#define TAKE(f) (dup_str(&c->f, e && e->f ? e->f : d->f) < 0)
    if (TAKE(scope) || TAKE(ns) || TAKE(ca) || TAKE(cert) || TAKE(key) || TAKE(user) ||
        TAKE(password_file) || TAKE(token_file)) {
        pqri_errc(PQR_ERR_RESOURCE, err, errlen, "out of memory");
        return -1;
    }
#undef TAKE
    c->group = e && e->group >= 0 ? e->group : d->group;
    if (!urls)
        return 0;
    if (src->etcd && src->consul) {
        pqri_errf(err, errlen, "cluster %s: both %sETCD and %sCONSUL: choose one", src->name,
                  ENV_PREFIX, ENV_PREFIX);
        return -1;
    }
    c->kind = src->etcd ? PQRI_DCS_ETCD : PQRI_DCS_CONSUL;
    if (parse_urls(urls, &c->urls, &c->nurls, err, errlen, src->etcd ? "ETCD" : "CONSUL") < 0)
        return -1;
    if (!c->scope) {
        pqri_errf(err, errlen, "cluster %s: %s%s needs %sSCOPE (Patroni's scope)", src->name,
                  ENV_PREFIX, src->etcd ? "ETCD" : "CONSUL", ENV_PREFIX);
        return -1;
    }
    if (!c->ns && !(c->ns = strdup("/service"))) {
        pqri_errc(PQR_ERR_RESOURCE, err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* A cluster's front door, host:port, with its host copied out: 0, or -1 with a message. */
static int door_take(const char *cluster, const char *v, char **host, int *port, char *err,
                     size_t errlen)
{
    const char *h;
    size_t hl;

    if (pqri_parse_hostport(v, &h, &hl, port) < 0) {
        pqri_errf(err, errlen, "cluster %s: expected host:port, got \"%.80s\"", cluster, v);
        return -1;
    }
    if (!(*host = strndup(h, hl))) {
        pqri_errc(PQR_ERR_RESOURCE, err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int add_cluster(struct pqr_settings *s, const struct cluster_src *src, bool first, char *err,
                       size_t errlen)
{
    struct pqri_cluster_conf c = {0}, *nc;
    unsigned long long h = PQRI_FNV_SEED;
    char key[80], grp[16];

    c.dcs.group = -1;
    if (!src->patroni && !src->etcd && !src->consul) {
        pqri_errf(err, errlen, "cluster %s: no source: set %sPATRONI, %sETCD or %sCONSUL",
                  src->name, ENV_PREFIX, ENV_PREFIX, ENV_PREFIX);
        return -1;
    }
    if (src->patroni && parse_urls(src->patroni, &c.seeds, &c.nseeds, err, errlen, "PATRONI") < 0)
        return -1;
    if (dcs_take(&c.dcs, src, &s->dcs, err, errlen) < 0) {
        cluster_clear(&c);
        return -1;
    }
    if ((src->rw && door_take(src->name, src->rw, &c.rw_host, &c.rw_port, err, errlen) < 0) ||
        (src->ro && door_take(src->name, src->ro, &c.ro_host, &c.ro_port, err, errlen) < 0)) {
        cluster_clear(&c);
        return -1;
    }
    if (!c.rw_host && !c.ro_host) {
        pqri_errf(err, errlen, "cluster %s: no front door: set %sRW and/or %sRO", src->name,
                  ENV_PREFIX, ENV_PREFIX);
        cluster_clear(&c);
        return -1;
    }
    c.name = strdup(src->name);
    c.member_port = src->member_port;
    c.max_lag = src->max_lag;
    c.ro_fallback = src->ro_fallback;
    if (dup_str(&c.zone, src->zone) < 0 || dup_str(&c.zone_tag, src->zone_tag) < 0) {
        cluster_clear(&c);
        pqri_errc(PQR_ERR_RESOURCE, err, errlen, "out of memory");
        return -1;
    }
    /* The cache file's identity: where its views come from. */
    for (size_t i = 0; i < c.nseeds; i++)
        h = pqri_fnv(pqri_fnv(h, c.seeds[i], strlen(c.seeds[i])), "\xff", 1);
    for (size_t i = 0; i < c.dcs.nurls; i++)
        h = pqri_fnv(pqri_fnv(h, c.dcs.urls[i], strlen(c.dcs.urls[i])), "\xfe", 1);
    if (c.dcs.kind) {
        snprintf(grp, sizeof grp, "%d", c.dcs.group);
        h = pqri_fnv(
            pqri_fnv(pqri_fnv(h, c.dcs.ns, strlen(c.dcs.ns)), c.dcs.scope, strlen(c.dcs.scope)),
            grp, strlen(grp));
    }
    snprintf(key, sizeof key, "%.40s-%016llx", src->name, (unsigned long long)h);
    for (char *p = key; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            *p = '_';
    c.key = strdup(key);
    /* s->clusters is replaced only once nothing can fail */
    if (!c.name || !c.key || !(nc = realloc(s->clusters, (s->nclusters + 1) * sizeof *nc))) {
        cluster_clear(&c);
        pqri_errc(PQR_ERR_RESOURCE, err, errlen, "out of memory");
        return -1;
    }
    s->clusters = nc;
    if (first) {
        memmove(&s->clusters[1], &s->clusters[0], s->nclusters * sizeof *nc);
        s->clusters[0] = c;
    } else {
        s->clusters[s->nclusters] = c;
    }
    s->nclusters++;
    return 0;
}

int pqri_settings_finish(struct pqr_settings *s, char *err, size_t errlen)
{
    if (s->env_patroni || s->etcd || s->consul) {
        struct cluster_src src = {"env",     s->env_patroni, s->etcd, s->consul,
                                  s->env_rw, s->env_ro,      NULL,    0,
                                  -1,        NULL,           NULL,    -1};
        if (add_cluster(s, &src, true, err, errlen) < 0)
            return -1;
    } else if (s->env_rw || s->env_ro) {
        pqri_errf(err, errlen, "%s%s is set but %sPATRONI (or %sETCD, %sCONSUL) is not", ENV_PREFIX,
                  s->env_rw ? "RW" : "RO", ENV_PREFIX, ENV_PREFIX, ENV_PREFIX);
        return -1;
    }
    free(s->env_patroni);
    free(s->env_rw);
    free(s->env_ro);
    free(s->etcd);
    free(s->consul);
    s->env_patroni = s->env_rw = s->env_ro = s->etcd = s->consul = NULL;
    return s->nclusters ? 0 : 1;
}

int pqri_settings_from_env(struct pqr_settings *s, char *err, size_t errlen)
{
    char var[64];

    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v;
        snprintf(var, sizeof var, ENV_PREFIX "%s", settings_table[i].name);
        if ((v = getenv(var)) && pqri_settings_set(s, var, v, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* A scalar libconfig value as the string the environment would carry. */
static const char *setting_text(const config_setting_t *st, char *buf, size_t len)
{
    switch (config_setting_type(st)) {
    case CONFIG_TYPE_STRING:
        return config_setting_get_string(st);
    case CONFIG_TYPE_INT:
        snprintf(buf, len, "%d", config_setting_get_int(st));
        return buf;
    case CONFIG_TYPE_INT64:
        snprintf(buf, len, "%lld", config_setting_get_int64(st));
        return buf;
    case CONFIG_TYPE_ARRAY:
    case CONFIG_TYPE_LIST: {
        size_t off = 0;
        buf[0] = 0;
        for (int i = 0; i < config_setting_length(st); i++) {
            const char *e = config_setting_get_string_elem(st, i);
            if (!e)
                return NULL;
            off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%s", i ? "," : "", e);
        }
        return off < len ? buf : NULL;
    }
    default:
        return NULL;
    }
}

#define MAX_CONFIG_BYTES (1 << 20)
#define MAX_INCLUDE_DEPTH 8

/* The text of a configuration file, read from the descriptor whose owner and mode were checked —
 * it decides where connections (and their passwords) go, so only root or you may be able to change
 * it. libconfig's @include lines are expanded here, each included file read and checked the same
 * way, so libconfig never opens a file by name. Relative includes are relative to the including
 * file's directory. */
static char *read_checked(const char *path, int depth, char *err, size_t errlen)
{
    struct stat st;
    char *text = NULL, *out = NULL;
    size_t len = 0, outlen = 0;
    ssize_t n;
    FILE *mem = NULL;
    bool short_of_memory;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        pqri_errf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !pqri_trusted_file(&st)) {
        pqri_errf(err, errlen,
                  "%s: ignored: must be a regular file owned by root or you and not writable by "
                  "group or others",
                  path);
        goto out;
    }
    if (st.st_size > MAX_CONFIG_BYTES) {
        pqri_errf(err, errlen, "%s: too large", path);
        goto out;
    }
    if (!(text = malloc((size_t)st.st_size + 1)))
        goto no_memory;
    while (len < (size_t)st.st_size && (n = read(fd, text + len, (size_t)st.st_size - len)) > 0)
        len += (size_t)n;
    text[len] = 0;
    if (!(mem = open_memstream(&out, &outlen)))
        goto no_memory;
    for (char *line = text, *next; line && *line; line = next) {
        char *nl = strchr(line, '\n'), *p = line, *q;
        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = 0;
        p += strspn(p, " \t");
        if (strncmp(p, "@include", 8) != 0 || !strchr(" \t", p[8])) {
            fprintf(mem, "%s\n", line);
            continue;
        }
        p += 8 + strspn(p + 8, " \t");
        if (*p != '"' || !(q = strchr(p + 1, '"'))) {
            pqri_errf(err, errlen, "%s: malformed @include line", path);
            goto fail;
        }
        if (depth >= MAX_INCLUDE_DEPTH) {
            pqri_errf(err, errlen, "%s: @include nested more than %d deep", path,
                      MAX_INCLUDE_DEPTH);
            goto fail;
        }
        char inc[PATH_MAX], dir[PATH_MAX], *sub;
        *q = 0;
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (p[1] == '/' || !slash)
            snprintf(inc, sizeof inc, "%s", p + 1);
        else
            snprintf(inc, sizeof inc, "%.*s/%s", (int)(slash - dir), dir, p + 1);
        if (!(sub = read_checked(inc, depth + 1, err, errlen)))
            goto fail;
        fprintf(mem, "%s\n", sub);
        free(sub);
    }
    /* a write that found no memory shows in the stream's error flag, or when fclose writes */
    short_of_memory = ferror(mem);
    if (fclose(mem) != 0)
        short_of_memory = true;
    mem = NULL;
    if (!short_of_memory)
        goto out;
no_memory:
    pqri_errc(PQR_ERR_RESOURCE, err, errlen, "%s: out of memory", path);
fail:
    if (mem)
        fclose(mem);
    free(out);
    out = NULL;
out:
    free(text);
    close(fd);
    return out;
}

int pqri_settings_from_file(struct pqr_settings *s, const char *path, char *err, size_t errlen)
{
    config_t cfg;
    config_setting_t *root, *clusters;
    char buf[8192], name[64], *text;
    int rc = -1;

    if (!(text = read_checked(path, 0, err, errlen)))
        return -1;
    config_init(&cfg);
    if (!config_read_string(&cfg, text)) {
        pqri_errf(err, errlen, "%s:%d: %s", path, config_error_line(&cfg), config_error_text(&cfg));
        goto out;
    }
    root = config_root_setting(&cfg);
    /* Nothing but comments (the commented example a package installs): nothing configured, as
     * without the file, rather than an error in every process that reads it. */
    if (config_setting_length(root) == 0) {
        rc = 0;
        goto out;
    }
    for (int i = 0; i < config_setting_length(root); i++) {
        config_setting_t *st = config_setting_get_elem(root, (unsigned)i);
        const char *key = config_setting_name(st), *v;
        const struct setting *t;
        if (strcmp(key, "clusters") == 0)
            continue;
        snprintf(name, sizeof name, "%s", key);
        for (char *p = name; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        if ((t = find_setting(name)) && t->where == W_ENTRY) {
            pqri_errf(err, errlen, "%s:%d: \"%s\" belongs inside a clusters entry", path,
                      config_setting_source_line(st), key);
            goto out;
        }
        if (!(v = setting_text(st, buf, sizeof buf))) {
            pqri_errf(err, errlen, "%s:%d: %s: unsupported value type", path,
                      config_setting_source_line(st), key);
            goto out;
        }
        char why[512]; /* not buf: v may point into it */
        if (pqri_settings_set(s, name, v, why, sizeof why) < 0) {
            pqri_errf(err, errlen, "%s:%d: %s", path, config_setting_source_line(st), why);
            goto out;
        }
    }
    clusters = config_lookup(&cfg, "clusters");
    if (!clusters || !config_setting_is_aggregate(clusters) ||
        config_setting_length(clusters) == 0) {
        pqri_errf(err, errlen, "%s: no clusters = ( { ... } ) list", path);
        goto out;
    }
    for (int i = 0; i < config_setting_length(clusters); i++) {
        config_setting_t *c = config_setting_get_elem(clusters, (unsigned)i);
        const char *cname = NULL, *patroni = NULL, *rw = NULL, *ro = NULL;
        char pbuf[4096], cbuf[64], why[512];
        struct pqr_settings tmp;
        int line = config_setting_source_line(c), bad_line = 0;

        if (!config_setting_is_group(c)) {
            pqri_errf(err, errlen, "%s:%d: clusters entries must be groups { ... }", path, line);
            goto out;
        }
        snprintf(cbuf, sizeof cbuf, "cluster%d", i + 1);
        config_setting_lookup_string(c, "name", &cname);
        config_setting_lookup_string(c, "rw", &rw);
        config_setting_lookup_string(c, "ro", &ro);
        /* Every other entry is a per-cluster setting, checked by the same table as the globals. */
        pqri_settings_init(&tmp);
        tmp.member_port = 0;
        tmp.max_lag = -1;
        tmp.ro_fallback = -1;
        for (int k = 0; k < config_setting_length(c) && !bad_line; k++) {
            config_setting_t *st = config_setting_get_elem(c, (unsigned)k);
            const char *key = config_setting_name(st), *v;
            const struct setting *t;
            if (strcmp(key, "name") == 0 || strcmp(key, "rw") == 0 || strcmp(key, "ro") == 0)
                continue;
            if (strcmp(key, "patroni") == 0) {
                if (!(patroni = setting_text(st, pbuf, sizeof pbuf)))
                    bad_line = config_setting_source_line(st),
                    snprintf(why, sizeof why, "patroni: expected a list of URLs");
                continue;
            }
            snprintf(name, sizeof name, "%s", key);
            for (char *p = name; *p; p++)
                *p = (char)toupper((unsigned char)*p);
            if (!(t = find_setting(name)) || t->where != W_CLUSTER) {
                bad_line = config_setting_source_line(st);
                snprintf(why, sizeof why, "\"%.60s\" is not a per-cluster setting", key);
            } else if (!(v = setting_text(st, buf, sizeof buf)) ||
                       pqri_settings_set(&tmp, name, v, why, sizeof why) < 0) {
                bad_line = config_setting_source_line(st);
                if (!v)
                    snprintf(why, sizeof why, "%s: unsupported value type", key);
            }
        }
        if (!bad_line) {
            struct cluster_src src = {cname ? cname : cbuf,
                                      patroni,
                                      tmp.etcd,
                                      tmp.consul,
                                      rw,
                                      ro,
                                      &tmp.dcs,
                                      tmp.member_port,
                                      tmp.max_lag,
                                      tmp.zone,
                                      tmp.zone_tag,
                                      tmp.ro_fallback};
            if (add_cluster(s, &src, false, why, sizeof why) < 0)
                bad_line = line;
        }
        pqri_settings_clear(&tmp);
        if (bad_line) {
            pqri_errf(err, errlen, "%s:%d: %s", path, bad_line, why);
            goto out;
        }
    }
    rc = 0;
out:
    config_destroy(&cfg);
    free(text);
    return rc;
}

int pqri_settings_member_port(const struct pqr_settings *s, const struct pqri_cluster_conf *c)
{
    return c->member_port ? c->member_port : s->member_port;
}

long long pqri_max_lag(const struct pqr_settings *s, const struct pqri_cluster_conf *c)
{
    return c->max_lag >= 0 ? c->max_lag : s->max_lag;
}

const char *pqri_zone(const struct pqr_settings *s, const struct pqri_cluster_conf *c)
{
    return c->zone ? c->zone : s->zone;
}

const char *pqri_zone_tag(const struct pqr_settings *s, const struct pqri_cluster_conf *c)
{
    return c->zone_tag ? c->zone_tag : s->zone_tag ? s->zone_tag : PQRI_DEFAULT_ZONE_TAG;
}

int pqri_ro_fallback(const struct pqr_settings *s, const struct pqri_cluster_conf *c)
{
    return c->ro_fallback >= 0 ? c->ro_fallback : s->ro_fallback;
}

int pqri_rest_budget_ms(const struct pqr_settings *s)
{
    return s->rest_timeout_ms + 200;
}

int pqri_settings_load(struct pqr_settings *s, char *err, size_t errlen)
{
    const char *path = getenv(PQRI_ENV_CONFIG), *lvl = getenv(PQRI_ENV_LOG);
    int level;

    pqri_settings_init(s);
    if (lvl && (level = pqri_log_parse(lvl)) >= 0)
        pqri_log_set(level);
    if (path && !*path) {
        pqri_errf(err, errlen, "%s is set but empty", PQRI_ENV_CONFIG);
        return -1;
    }
    if (path) {
        char ferr[512];
        if (pqri_settings_from_file(s, path, ferr, sizeof ferr) < 0) {
            pqri_errc(PQR_ERR_CONFIG_FILE, err, errlen, "%s: %s", PQRI_ENV_CONFIG, ferr);
            return -1;
        }
    } else if (access(PQRI_DEFAULT_CONFIG, F_OK) == 0 &&
               pqri_settings_from_file(s, PQRI_DEFAULT_CONFIG, err, errlen) < 0) {
        pqri_error_set(PQR_ERR_CONFIG_FILE);
        return -1;
    }
    if (pqri_settings_from_env(s, err, errlen) < 0)
        return -1;
    pqri_log_set(s->log_level);
    return pqri_settings_finish(s, err, errlen);
}
