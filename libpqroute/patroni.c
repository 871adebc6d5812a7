/*
 * The Patroni client: GET /cluster from every known REST endpoint at once (http.c's race), keep
 * the best answer. Each member serves /cluster from its own view of the DCS, so asking all of them
 * and preferring the newest timeline tolerates members that are down or lagging behind an
 * election.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "patroni.h"
#include "http.h"
#include "log.h"

/* Once one good view is in, wait at most this long for the others before deciding. */
#define GRACE_MS 20
/* Starts this far apart, so that no poll reaches every node in the same instant. */
#define STAGGER_MS 10

struct endpoint {
    char url[600];
    char shown[600]; /* url without credentials: what messages and the cache may show */
};

struct fetch {
    const struct pqri_fetch_opts *o;
    const struct endpoint *ep;
    struct pqr_topology *best;
    char *err;
    size_t errlen;
};

static void append_err(char *err, size_t errlen, const char *url, const char *what)
{
    char one[800];

    snprintf(one, sizeof one, "%s: %s", url, what);
    pqri_errcat(err, errlen, one);
}

char *pqri_api_base(const char *api_url)
{
    const char *p = strstr(api_url, "://"), *slash;

    if (!p ||
        !(strncasecmp(api_url, "http://", 7) == 0 || strncasecmp(api_url, "https://", 8) == 0))
        return NULL;
    slash = strchr(p + 3, '/');
    /* No user info, query, fragment or backslash in the authority: "http://node1:x@evil:8008" is
     * evil's, whatever its first letters say (any one node writes its own api_url). */
    for (const char *q = api_url; *q && q != slash; q++)
        if (isspace((unsigned char)*q) || iscntrl((unsigned char)*q) ||
            (q > p && strchr("@?#\\", *q)))
            return NULL;
    return slash ? strndup(api_url, (size_t)(slash - api_url)) : strdup(api_url);
}

/* One endpoint's answer: a good one is a view with members, kept if it is the best so far. */
static bool on_answer(void *arg, size_t i, long status, const struct pqri_buf *body,
                      const char *why)
{
    struct fetch *f = arg;
    const char *shown = f->ep[i].shown;
    char what[160];
    struct pqr_topology *t;

    if (why) {
        append_err(f->err, f->errlen, shown, why);
        return false;
    }
    if (status != 200) {
        snprintf(what, sizeof what, "HTTP status %ld", status);
        append_err(f->err, f->errlen, shown, what);
        return false;
    }
    t = pqri_topo_parse(body->p ? body->p : "", body->len, what, sizeof what);
    if (!t) {
        append_err(f->err, f->errlen, shown, what);
        return false;
    }
    if (t->n == 0) {
        append_err(f->err, f->errlen, shown, "no usable members");
        pqri_topo_unref(t);
        return false;
    }
    free(t->source);
    if (!(t->source = strndup(shown, strlen(shown) - strlen("/cluster")))) {
        append_err(f->err, f->errlen, shown, "out of memory");
        pqri_topo_unref(t);
        return false;
    }
    pqri_topo_filter(t, f->o->s, f->o->c);
    if (pqri_topo_better(t, f->best)) {
        pqri_topo_unref(f->best);
        f->best = t;
    } else {
        pqri_topo_unref(t);
    }
    return true;
}

struct pqr_topology *pqri_patroni_fetch(const struct pqri_fetch_opts *o, char *err, size_t errlen)
{
    const struct pqr_settings *s = o->s;
    long long t0 = pqri_mono_ms();
    size_t n = o->nurls;
    struct endpoint *ep = calloc(n ? n : 1, sizeof *ep);
    struct pqri_http_req *rq = calloc(n ? n : 1, sizeof *rq);
    struct pqri_tls tls = {s->rest_ca, s->rest_cert, s->rest_key};
    struct fetch f = {o, ep, NULL, err, errlen};
    struct pqri_http_race r = {rq,       n,       t0,        STAGGER_MS, o->one_at_a_time,
                               GRACE_MS, o->stop, on_answer, &f};

    if (err && errlen)
        err[0] = 0;
    if (!ep || !rq) {
        pqri_errf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(ep[i].url, sizeof ep[i].url, "%s/cluster", o->urls[i]);
        pqri_url_display(ep[i].shown, sizeof ep[i].shown, ep[i].url);
        rq[i] = (struct pqri_http_req){.url = ep[i].url,
                                       .tls = &tls,
                                       .timeout_ms = s->rest_timeout_ms,
                                       .max_body = PQRI_MAX_BODY};
    }
    pqri_http_race(&r, err, errlen);
    if (f.best)
        f.best->mono_ms = t0; /* until pqri_topo_complete(): when the budget started */
out:
    free(ep);
    free(rq);
    if (!f.best && err && errlen && !err[0])
        pqri_errf(err, errlen, "no REST endpoint answered");
    return f.best;
}
