/*
 * The Patroni client: GET /cluster from every known REST endpoint at once (libcurl multi), keep the
 * best answer. Each member serves /cluster from its own view of the DCS, so asking all of them and
 * preferring the newest timeline tolerates members that are down or lagging behind an election.
 */
#include <ctype.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "patroni.h"
#include "http.h"
#include "log.h"
#include "resolve.h"

/* Once one good view is in, wait at most this long for the others before deciding. */
#define GRACE_MS 20
#define SLICE_MS 50
#define STAGGER_MS 10

struct xfer {
    CURL *h;
    char url[600];
    char shown[600]; /* url without credentials: what messages and the cache may show */
    struct pqri_buf body;
    bool started, done, good;
};

static void setup(const struct pqri_curl *cu, struct xfer *x, const struct pqr_settings *s,
                  const char *base)
{
    struct pqri_tls tls = {s->rest_ca, s->rest_cert, s->rest_key};

    snprintf(x->url, sizeof x->url, "%s/cluster", base);
    pqri_url_display(x->shown, sizeof x->shown, x->url);
    pqri_http_common(x->h, x->url, (long)s->rest_timeout_ms, &tls);
    x->body.max = PQR_MAX_BODY;
    cu->easy_setopt(x->h, CURLOPT_WRITEFUNCTION, pqri_buf_write);
    cu->easy_setopt(x->h, CURLOPT_WRITEDATA, &x->body);
    cu->easy_setopt(x->h, CURLOPT_TIMEOUT_MS, (long)s->rest_timeout_ms);
}

static void append_err(char *err, size_t errlen, const char *url, const char *what)
{
    char one[800];

    snprintf(one, sizeof one, "%s: %s", url, what);
    pqri_errcat(err, errlen, one);
}

char *pqri_api_base(const char *api_url)
{
    const char *p = strstr(api_url, "://"), *slash;

    if (!p || !(strncasecmp(api_url, "http://", 7) == 0 || strncasecmp(api_url, "https://", 8) == 0))
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

void pqri_patroni_thread_done(void)
{
    /* OpenSSL keeps per-thread state (its error queue) that its exit handler would have freed;
     * we asked it not to register that handler, so a thread that asked Patroni frees its own. */
    void *ssl = dlopen("libcrypto.so.3", RTLD_LAZY | RTLD_NOLOAD);
    if (ssl) {
        void (*stop)(void);
        *(void **)&stop = dlsym(ssl, "OPENSSL_thread_stop");
        if (stop)
            stop();
        dlclose(ssl);
    }
}

/* Whether endpoint i may start now: one after another (the DCS fallback: the next only once every
 * earlier one failed), or all of them, STAGGER_MS apart, so that no poll reaches every node in the
 * same instant. "Apart" counts from when the previous one's connect was made (last_start), not
 * from a schedule: a process that lost its core, or took long to set up the first transfer, does
 * not then start the rest together. */
static bool may_start(const struct pqri_fetch_opts *o, const struct xfer *x, size_t i,
                      long long last_start, long long now)
{
    if (!o->one_at_a_time)
        return i == 0 || now >= last_start + STAGGER_MS;
    for (size_t j = 0; j < i; j++)
        if (!x[j].done || x[j].good)
            return false;
    return true;
}

struct pqr_topology *pqri_patroni_fetch(const struct pqri_fetch_opts *o, char *err, size_t errlen)
{
    const struct pqr_settings *s = o->s;
    const struct pqri_curl *cu;
    struct xfer *x = calloc(o->nurls ? o->nurls : 1, sizeof *x);
    CURLM *multi = NULL;
    struct pqr_topology *best = NULL;
    long long t0 = pqri_mono_ms(), settle = 0, deadline, now, last_start = 0;
    size_t started = 0;
    int running = 0;

    if (err && errlen)
        err[0] = 0;
    if (!(cu = pqri_curl(err, errlen))) {
        free(x);
        return NULL;
    }
    /* One endpoint at a time gets the whole budget, as it would have alone. */
    deadline = t0 + s->rest_timeout_ms + SLICE_MS +
               (o->one_at_a_time ? 0 : (long long)(o->nurls ? o->nurls - 1 : 0) * STAGGER_MS);
    multi = cu->multi_init();
    if (!x || !multi) {
        pqri_errf(err, errlen, "out of memory");
        goto out;
    }
    for (;;) {
        CURLMsg *msg;
        int left;

        now = pqri_mono_ms();
        bool added = false;
        while (started < o->nurls && may_start(o, x, started, last_start, now) &&
               (o->one_at_a_time || !added)) {
            added = true;
            struct xfer *xs = &x[started++];
            xs->started = true;
            if (!(xs->h = cu->easy_init())) {
                xs->done = true;
                continue;
            }
            setup(cu, xs, s, o->urls[started - 1]);
            cu->easy_setopt(xs->h, CURLOPT_PRIVATE, xs);
            cu->multi_add_handle(multi, xs->h);
            running++;
            if (o->one_at_a_time && started > 1) /* a later endpoint gets what is left */
                deadline = pqri_mono_ms() + s->rest_timeout_ms + SLICE_MS;
        }
        cu->multi_perform(multi, &running); /* a new transfer's connect(2) is made here */
        if (added)
            last_start = pqri_mono_ms();
        while ((msg = cu->multi_info_read(multi, &left))) {
            struct xfer *xf;
            long code = 0;
            char why[160];
            struct pqr_topology *t;

            if (msg->msg != CURLMSG_DONE)
                continue;
            cu->easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&xf);
            xf->done = true;
            cu->easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            if (msg->data.result != CURLE_OK) {
                append_err(err, errlen, xf->shown,
                           xf->body.too_big ? "response too large" : cu->easy_strerror(msg->data.result));
                continue;
            }
            if (code != 200) {
                snprintf(why, sizeof why, "HTTP status %ld", code);
                append_err(err, errlen, xf->shown, why);
                continue;
            }
            t = pqri_topo_parse(xf->body.p ? xf->body.p : "", xf->body.len, why, sizeof why);
            if (!t) {
                append_err(err, errlen, xf->shown, why);
                continue;
            }
            if (t->n == 0) {
                append_err(err, errlen, xf->shown, "no usable members");
                pqri_topo_unref(t);
                continue;
            }
            xf->good = true;
            free(t->source);
            t->source = strndup(xf->shown, strlen(xf->shown) - strlen("/cluster"));
            pqri_topo_filter(t, s, o->c);
            if (pqri_topo_better(t, best)) {
                pqri_topo_unref(best);
                best = t;
            } else {
                pqri_topo_unref(t);
            }
        }
        now = pqri_mono_ms();
        /* The grace for the others runs from the good view, or from the last start after it. */
        if (best && (!settle || (added && last_start > settle)))
            settle = added ? last_start : now;
        bool all_started = started == o->nurls || (o->one_at_a_time && best);
        bool all_done = true;
        for (size_t i = 0; i < started; i++)
            all_done = all_done && x[i].done;
        if ((all_started && all_done) || (o->stop && __atomic_load_n(o->stop, __ATOMIC_ACQUIRE)) ||
            now >= deadline || (best && all_started && now - settle >= GRACE_MS))
            break;
        long long wait = deadline - now;
        if (best && GRACE_MS - (now - settle) < wait)
            wait = GRACE_MS - (now - settle);
        if (!all_started && !o->one_at_a_time && last_start + STAGGER_MS - now < wait)
            wait = last_start + STAGGER_MS - now;
        if (wait < 1)
            wait = 1;
        cu->multi_poll(multi, NULL, 0, (int)(wait < SLICE_MS ? wait : SLICE_MS), NULL);
    }
    for (size_t i = 0; i < o->nurls; i++)
        if (x[i].started && x[i].h && !x[i].done && !best)
            append_err(err, errlen, x[i].shown, "no answer in time");
    if (best)
        best->mono_ms = t0; /* until pqri_topo_complete(): when the budget started */
out:
    for (size_t i = 0; x && i < o->nurls; i++) {
        if (x[i].h) {
            cu->multi_remove_handle(multi, x[i].h);
            cu->easy_cleanup(x[i].h);
        }
        pqri_buf_free(&x[i].body);
    }
    free(x);
    if (multi)
        cu->multi_cleanup(multi);
    if (!best && err && errlen && !err[0])
        pqri_errf(err, errlen, "no REST endpoint answered");
    return best;
}
