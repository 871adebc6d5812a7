/*
 * The Patroni client: GET /cluster from every known REST endpoint at once (libcurl multi), keep the
 * best answer. Each member serves /cluster from its own view of the DCS, so asking all of them and
 * preferring the newest timeline tolerates members that are down or lagging behind an election.
 */
#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "patroni.h"
#include "log.h"
#include "resolve.h"

/*
 * libcurl is loaded on the first fetch, not linked: with its dependency chain it costs a process
 * about 5 ms and 1 MiB to load, and a process that finds a fresh shared cache never needs it.
 */
static struct {
    CURLcode (*global_init)(long);
    CURLM *(*multi_init)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    void (*easy_cleanup)(CURL *);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned, int, int *);
    CURLMcode (*multi_cleanup)(CURLM *);
} cu;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static char curl_error[256];

static void curl_load(void)
{
    static const char *const names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", NULL};
    void *h = NULL;

    for (size_t i = 0; names[i] && !h; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(curl_error, sizeof curl_error, "cannot load libcurl: %s", dlerror());
        return;
    }
#define SYM(field, name)                                                                         \
    if (!(*(void **)&cu.field = dlsym(h, name))) {                                               \
        snprintf(curl_error, sizeof curl_error, "libcurl lacks %s", name);                       \
        return;                                                                                  \
    }
    SYM(global_init, "curl_global_init")
    SYM(multi_init, "curl_multi_init")
    SYM(easy_init, "curl_easy_init")
    SYM(easy_setopt, "curl_easy_setopt")
    SYM(easy_getinfo, "curl_easy_getinfo")
    SYM(easy_strerror, "curl_easy_strerror")
    SYM(easy_cleanup, "curl_easy_cleanup")
    SYM(multi_add_handle, "curl_multi_add_handle")
    SYM(multi_remove_handle, "curl_multi_remove_handle")
    SYM(multi_perform, "curl_multi_perform")
    SYM(multi_info_read, "curl_multi_info_read")
    SYM(multi_poll, "curl_multi_poll")
    SYM(multi_cleanup, "curl_multi_cleanup")
#undef SYM
    /* OpenSSL cleans itself up from an atexit handler; if the application exits while this thread
     * is still initialising or using it, that handler pulls the library from under us (a crash at
     * exit, in the application's process). A library must not leave that behind: ask OpenSSL, before
     * libcurl initialises it, not to register the handler. Harmless when the application already
     * initialised OpenSSL itself (then its handler exists, and ours, registered after, runs first
     * and stops this thread). */
    void *ssl = dlopen("libcrypto.so.3", RTLD_LAZY | RTLD_NOLOAD);
    if (ssl) {
        int (*init)(uint64_t, const void *);
        *(void **)&init = dlsym(ssl, "OPENSSL_init_crypto");
        if (init)
            init(0x00080000L /* OPENSSL_INIT_NO_ATEXIT */, NULL);
        dlclose(ssl);
    }
    if (cu.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(curl_error, sizeof curl_error, "libcurl failed to initialise");
        cu.multi_init = NULL;
        return;
    }
}

/* Once one good view is in, wait at most this long for the others before deciding. */
#define GRACE_MS 20
#define SLICE_MS 50

struct xfer {
    CURL *h;
    char url[600];
    char shown[600]; /* url without credentials: what messages and the cache may show */
    char *buf;
    size_t len;
    bool too_big;
    bool done;
};

static size_t on_data(char *p, size_t sz, size_t nm, void *ud)
{
    struct xfer *x = ud;
    size_t n = sz * nm;
    char *nb;

    if (x->len + n > PQR_MAX_BODY) {
        x->too_big = true;
        return 0; /* aborts the transfer */
    }
    nb = realloc(x->buf, x->len + n + 1);
    if (!nb)
        return 0;
    x->buf = nb;
    memcpy(x->buf + x->len, p, n);
    x->len += n;
    x->buf[x->len] = 0;
    return n;
}

static void setup(struct xfer *x, const struct pqr_settings *s, const char *base)
{
    snprintf(x->url, sizeof x->url, "%s/cluster", base);
    pqri_url_display(x->shown, sizeof x->shown, x->url);
    cu.easy_setopt(x->h, CURLOPT_URL, x->url);
    cu.easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_data);
    cu.easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    cu.easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    cu.easy_setopt(x->h, CURLOPT_TIMEOUT_MS, (long)s->rest_timeout_ms);
    cu.easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, (long)s->rest_timeout_ms);
    cu.easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http,https");
    cu.easy_setopt(x->h, CURLOPT_FOLLOWLOCATION, 0L);
    cu.easy_setopt(x->h, CURLOPT_USERAGENT, "libpqroute/" "0.1");
    cu.easy_setopt(x->h, CURLOPT_NOPROXY, "*"); /* REST is internal; never via an http_proxy */
    if (s->rest_ca)
        cu.easy_setopt(x->h, CURLOPT_CAINFO, s->rest_ca);
    if (s->rest_cert)
        cu.easy_setopt(x->h, CURLOPT_SSLCERT, s->rest_cert);
    if (s->rest_key)
        cu.easy_setopt(x->h, CURLOPT_SSLKEY, s->rest_key);
}

static void append_err(char *err, size_t errlen, const char *url, const char *what)
{
    size_t used = err ? strlen(err) : 0;
    if (err && used < errlen)
        snprintf(err + used, errlen - used, "%s%s: %s", used ? "; " : "", url, what);
}

char *pqri_api_base(const char *api_url)
{
    const char *p = strstr(api_url, "://"), *slash;

    if (!p || !(strncasecmp(api_url, "http://", 7) == 0 || strncasecmp(api_url, "https://", 8) == 0))
        return NULL;
    slash = strchr(p + 3, '/');
    for (const char *q = api_url; *q && q != slash; q++)
        if (isspace((unsigned char)*q) || iscntrl((unsigned char)*q))
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

struct pqr_topology *pqri_patroni_fetch(const struct pqri_fetch_opts *o, char *err, size_t errlen)
{
    const struct pqr_settings *s = o->s;
    struct xfer *x = calloc(o->nurls ? o->nurls : 1, sizeof *x);
    CURLM *multi = NULL;
    struct pqr_topology *best = NULL;
    long long t0 = pqri_mono_ms(), first_good = 0;
    long long deadline = t0 + s->rest_timeout_ms + SLICE_MS;
    int running = 0;

    if (err && errlen)
        err[0] = 0;
    pthread_once(&curl_once, curl_load);
    if (!cu.multi_init) {
        pqri_errf(err, errlen, "%s", curl_error);
        free(x);
        return NULL;
    }
    multi = cu.multi_init();
    if (!x || !multi) {
        pqri_errf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < o->nurls; i++) {
        if (!(x[i].h = cu.easy_init()))
            continue;
        setup(&x[i], s, o->urls[i]);
        cu.easy_setopt(x[i].h, CURLOPT_PRIVATE, &x[i]);
        cu.multi_add_handle(multi, x[i].h);
    }
    for (;;) {
        CURLMsg *msg;
        int left;
        long long now;

        cu.multi_perform(multi, &running);
        while ((msg = cu.multi_info_read(multi, &left))) {
            struct xfer *xf;
            long code = 0;
            char why[160];
            struct pqr_topology *t;

            if (msg->msg != CURLMSG_DONE)
                continue;
            cu.easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&xf);
            xf->done = true;
            cu.easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            if (msg->data.result != CURLE_OK) {
                append_err(err, errlen, xf->shown,
                           xf->too_big ? "response too large" : cu.easy_strerror(msg->data.result));
                continue;
            }
            if (code != 200) {
                snprintf(why, sizeof why, "HTTP status %ld", code);
                append_err(err, errlen, xf->shown, why);
                continue;
            }
            t = pqri_topo_parse(xf->buf ? xf->buf : "", xf->len, why, sizeof why);
            if (!t) {
                append_err(err, errlen, xf->shown, why);
                continue;
            }
            if (t->n == 0) {
                append_err(err, errlen, xf->shown, "no usable members");
                pqri_topo_unref(t);
                continue;
            }
            free(t->source);
            t->source = strndup(xf->shown, strlen(xf->shown) - strlen("/cluster"));
            pqri_topo_filter(t, s, o->c);
            if (pqri_topo_better(t, best)) {
                pqri_topo_unref(best);
                best = t;
            } else {
                pqri_topo_unref(t);
            }
            if (!first_good)
                first_good = pqri_mono_ms();
        }
        now = pqri_mono_ms();
        if (running == 0 || (o->stop && __atomic_load_n(o->stop, __ATOMIC_ACQUIRE)) || now >= deadline ||
            (first_good && now - first_good >= GRACE_MS))
            break;
        long long wait = deadline - now;
        if (first_good && GRACE_MS - (now - first_good) < wait)
            wait = GRACE_MS - (now - first_good);
        cu.multi_poll(multi, NULL, 0, (int)(wait < SLICE_MS ? wait : SLICE_MS), NULL);
    }
    for (size_t i = 0; i < o->nurls; i++)
        if (x[i].h && !x[i].done && !best)
            append_err(err, errlen, x[i].shown, "no answer in time");
    if (best)
        best->mono_ms = t0; /* until pqri_topo_complete(): when the budget started */
out:
    for (size_t i = 0; x && i < o->nurls; i++) {
        if (x[i].h) {
            cu.multi_remove_handle(multi, x[i].h);
            cu.easy_cleanup(x[i].h);
        }
        free(x[i].buf);
    }
    free(x);
    if (multi)
        cu.multi_cleanup(multi);
    if (!best && err && errlen && !err[0])
        pqri_errf(err, errlen, "no REST endpoint answered");
    return best;
}
