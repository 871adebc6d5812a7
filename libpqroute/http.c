/*
 * HTTP, the one part that drives libcurl: loaded on first use rather than linked (with its
 * dependency chain it costs a process about 5 ms and 1 MiB to load, and a process that finds a
 * fresh shared cache never needs it); the TLS library under it set up and cleaned up here too.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "http.h"
#include "log.h"

/* The longest wait in one poll: how late a stop flag or a deadline may be noticed. */
#define SLICE_MS 50

/* The libcurl functions we call, looked up once. */
static struct {
    CURLcode (*global_init_mem)(long, curl_malloc_callback, curl_free_callback,
                                curl_realloc_callback, curl_strdup_callback, curl_calloc_callback);
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
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    void (*easy_reset)(CURL *);
} cu;
static bool cu_ok;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static char curl_error[256];

/* OpenSSL cleans itself up from an atexit handler; if the application exits while our thread is
 * still initialising or using it, that handler pulls the library from under us (a crash at exit, in
 * the application's process). A library must not leave that behind: ask OpenSSL, before anyone in
 * this process initialises it, not to register the handler. Called when a router opens — before
 * its first routed connect, whose libpq would otherwise initialise OpenSSL (TLS is tried by
 * default) while the refresher thread is still starting — and again before libcurl initialises it.
 * Harmless when the application already initialised OpenSSL itself (then its handler exists, and
 * ours, registered after, runs first and stops the thread). */
void pqri_openssl_no_atexit(void)
{
    void *ssl = dlopen("libcrypto.so.3", RTLD_LAZY | RTLD_NOLOAD);
    if (ssl) {
        int (*init)(uint64_t, const void *);
        *(void **)&init = dlsym(ssl, "OPENSSL_init_crypto");
        if (init)
            init(0x00080000L /* OPENSSL_INIT_NO_ATEXIT */, NULL);
        dlclose(ssl);
    }
}

void pqri_http_thread_done(void)
{
    /* OpenSSL keeps per-thread state (its error queue) that its exit handler would have freed;
     * we asked it not to register that handler, so a thread that made requests frees its own. */
    void *ssl = dlopen("libcrypto.so.3", RTLD_LAZY | RTLD_NOLOAD);
    if (ssl) {
        void (*stop)(void);
        *(void **)&stop = dlsym(ssl, "OPENSSL_thread_stop");
        if (stop)
            stop();
        dlclose(ssl);
    }
}

/* realloc() would free the old block as it was: a new one, the old cleared. */
static void *clearing_realloc(void *p, size_t n)
{
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q;

    if (!p)
        return malloc(n);
    if (n == 0) {
        pqri_clearing_free(p);
        return NULL;
    }
    if (!(q = malloc(n)))
        return NULL;
    memcpy(q, p, old < n ? old : n);
    pqri_clearing_free(p);
    return q;
}

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
#define SYM(field, name)                                                                           \
    if (!(*(void **)&(field) = dlsym(h, name))) {                                                  \
        snprintf(curl_error, sizeof curl_error, "libcurl lacks %s", name);                         \
        return;                                                                                    \
    }
    SYM(cu.global_init_mem, "curl_global_init_mem")
    SYM(cu.multi_init, "curl_multi_init")
    SYM(cu.easy_init, "curl_easy_init")
    SYM(cu.easy_setopt, "curl_easy_setopt")
    SYM(cu.easy_getinfo, "curl_easy_getinfo")
    SYM(cu.easy_strerror, "curl_easy_strerror")
    SYM(cu.easy_cleanup, "curl_easy_cleanup")
    SYM(cu.multi_add_handle, "curl_multi_add_handle")
    SYM(cu.multi_remove_handle, "curl_multi_remove_handle")
    SYM(cu.multi_perform, "curl_multi_perform")
    SYM(cu.multi_info_read, "curl_multi_info_read")
    SYM(cu.multi_poll, "curl_multi_poll")
    SYM(cu.multi_cleanup, "curl_multi_cleanup")
    SYM(cu.slist_append, "curl_slist_append")
    SYM(cu.slist_free_all, "curl_slist_free_all")
    SYM(cu.easy_reset, "curl_easy_reset")
#undef SYM
    pqri_openssl_no_atexit();
    /* libcurl frees its request buffers (an etcd authentication body with the password, every
     * header with a token) without clearing them: its allocator clears every block first. A
     * process that initialised libcurl itself keeps its own (this call then changes nothing). */
    if (cu.global_init_mem(CURL_GLOBAL_DEFAULT, malloc, pqri_clearing_free, clearing_realloc,
                           strdup, calloc) != CURLE_OK) {
        snprintf(curl_error, sizeof curl_error, "libcurl failed to initialise");
        return;
    }
    cu_ok = true;
}

int pqri_http_load(char *err, size_t errlen)
{
    pthread_once(&curl_once, curl_load);
    if (!cu_ok) {
        pqri_errf(err, errlen, "%s", curl_error);
        return -1;
    }
    return 0;
}

static bool stop_now(const int *stop)
{
    return stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE);
}

static size_t buf_write(char *p, size_t sz, size_t nm, void *ud)
{
    struct pqri_buf *b = ud;
    size_t n = sz * nm;
    char *nb;

    if (b->len + n > b->max) {
        b->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (!(nb = realloc(b->p, b->len + n + 1)))
        return 0;
    b->p = nb;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return n;
}

void pqri_buf_free(struct pqri_buf *b)
{
    /* An answer may hold a token (etcd's /auth/authenticate): cleared, not just freed. */
    if (b->p)
        explicit_bzero(b->p, b->len);
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->too_big = false;
}

static void headers_free(struct curl_slist *l)
{
    /* curl copies each header: an Authorization one is cleared before it is freed. */
    for (struct curl_slist *n = l; n; n = n->next)
        if (n->data)
            explicit_bzero(n->data, strlen(n->data));
    if (l)
        cu.slist_free_all(l);
}

/* Appends a copy of header to *l: 0, or -1 out of memory (*l unchanged). */
static int header_add(struct curl_slist **l, const char *header)
{
    struct curl_slist *n = cu.slist_append(*l, header);

    if (!n)
        return -1;
    *l = n;
    return 0;
}

/* What every handle of ours sets: the URL, no signals, http(s) only, no redirects, no proxy (these
 * are internal services), the connect timeout, TLS files. */
static void common(CURL *h, const char *url, long connect_timeout_ms, const struct pqri_tls *tls)
{
    cu.easy_setopt(h, CURLOPT_URL, url);
    cu.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    cu.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    cu.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    cu.easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    cu.easy_setopt(h, CURLOPT_USERAGENT, "libpqroute/0.1");
    cu.easy_setopt(h, CURLOPT_NOPROXY, "*"); /* internal services: never via an http_proxy */
    /* HTTP/1.1: small requests to Patroni and etcd gain nothing from HTTP/2, and nghttp2 frees
     * its frame buffers (an authentication body, a token header) without clearing them. */
    cu.easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (tls && tls->ca) {
        /* The CA given is the only one trusted (pinned): CAINFO replaces the default bundle, and
         * the default directory (/etc/ssl/certs) is switched off too. */
        cu.easy_setopt(h, CURLOPT_CAINFO, tls->ca);
        cu.easy_setopt(h, CURLOPT_CAPATH, (char *)NULL);
    }
    if (tls && tls->cert)
        cu.easy_setopt(h, CURLOPT_SSLCERT, tls->cert);
    if (tls && tls->key)
        cu.easy_setopt(h, CURLOPT_SSLKEY, tls->key);
}

struct capture {
    const struct pqri_http_req *rq;
    size_t namelen;
};

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    struct capture *c = ud;
    size_t n = sz * nm, k = c->namelen;

    if (n > k + 1 && p[k] == ':' && strncasecmp(p, c->rq->capture, k) == 0) {
        const char *v = p + k + 1, *end = p + n;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        snprintf(c->rq->captured, c->rq->captured_len, "%.*s", (int)(end - v), v);
    }
    return n;
}

/* A request's handle set up to answer into out (within the request's timeout), its headers in
 * *hdrs (to free after the transfer): 0, or -1 out of memory. */
static int prepare(CURL *h, const struct pqri_http_req *rq, struct pqri_buf *out,
                   struct capture *cap, struct curl_slist **hdrs)
{
    *cap = (struct capture){rq, rq->capture ? strlen(rq->capture) : 0};
    out->max = rq->max_body;
    if (rq->captured && rq->captured_len)
        rq->captured[0] = 0;
    common(h, rq->url, rq->timeout_ms, rq->tls);
    cu.easy_setopt(h, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
    cu.easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
    cu.easy_setopt(h, CURLOPT_WRITEDATA, out);
    if (rq->capture) {
        cu.easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        cu.easy_setopt(h, CURLOPT_HEADERDATA, cap);
    }
    for (size_t i = 0; i < rq->nheaders; i++)
        if (header_add(hdrs, rq->headers[i]) < 0)
            return -1;
    if (rq->body) {
        if (header_add(hdrs, "Content-Type: application/json") < 0)
            return -1;
        cu.easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
    }
    if (*hdrs)
        cu.easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
    return 0;
}

struct pqri_http_conn {
    CURLM *multi; /* holds the connection cache */
    CURL *h;
};

static void conn_release(struct pqri_http_conn *c)
{
    if (c->h)
        cu.easy_cleanup(c->h);
    if (c->multi)
        cu.multi_cleanup(c->multi);
    c->h = NULL;
    c->multi = NULL;
}

void pqri_http_conn_close(struct pqri_http_conn **c)
{
    if (!*c)
        return;
    conn_release(*c);
    free(*c);
    *c = NULL;
}

int pqri_http_do(const struct pqri_http_req *rq, struct pqri_buf *out, long *status, char *err,
                 size_t errlen)
{
    struct curl_slist *hdrs = NULL;
    struct capture cap;
    struct pqri_http_conn one = {NULL, NULL}, *c = &one;
    CURLcode result = CURLE_OK;
    long long deadline = pqri_mono_ms() + rq->timeout_ms + SLICE_MS;
    int running = 1, rc = -1;
    bool done = false;

    *status = 0;
    if (pqri_http_load(err, errlen) < 0)
        return -1;
    if (rq->conn && !*rq->conn && !(*rq->conn = calloc(1, sizeof **rq->conn))) {
        pqri_errf(err, errlen, "out of memory");
        return -1;
    }
    if (rq->conn)
        c = *rq->conn;
    if (c->multi && c->h) {
        cu.easy_reset(c->h); /* keeps the connection */
    } else {
        c->multi = cu.multi_init();
        c->h = cu.easy_init();
    }
    if (!c->multi || !c->h || prepare(c->h, rq, out, &cap, &hdrs) < 0) {
        pqri_errf(err, errlen, "out of memory");
        goto out;
    }
    cu.multi_add_handle(c->multi, c->h);
    while (!done) {
        CURLMsg *msg;
        int left;
        cu.multi_perform(c->multi, &running);
        while ((msg = cu.multi_info_read(c->multi, &left)))
            if (msg->msg == CURLMSG_DONE) {
                result = msg->data.result;
                done = true;
            }
        if (done || stop_now(rq->stop) || pqri_mono_ms() >= deadline)
            break;
        cu.multi_poll(c->multi, NULL, 0, SLICE_MS, NULL);
    }
    if (!done)
        pqri_errf(err, errlen, "no answer in time");
    else if (result != CURLE_OK)
        pqri_errf(err, errlen, "%s",
                  out->too_big ? "response too large" : cu.easy_strerror(result));
    else {
        cu.easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, status);
        rc = 0;
    }
    cu.multi_remove_handle(c->multi, c->h);
out:
    if (!rq->conn)
        conn_release(&one);
    else if (rc < 0)
        pqri_http_conn_close(rq->conn); /* a failed connection is not kept */
    headers_free(hdrs);
    return rc;
}

/* ---- the race ---- */

struct xfer {
    CURL *h;
    struct pqri_buf body;
    struct capture cap;
    struct curl_slist *hdrs;
    bool started, done, good;
};

struct race {
    const struct pqri_http_race *r;
    struct xfer *x;
    CURLM *multi;
    size_t started;
    long long deadline, last_start, settle;
    bool good; /* an answer was */
};

/* Whether request i may start now: one after another (the next only once every earlier one
 * failed), or all of them, stagger_ms apart, so that no poll reaches every node in the same
 * instant. "Apart" counts from when the previous one's connect was made (last_start), not from a
 * schedule: a process that lost its core, or took long to set up the first transfer, does not then
 * start the rest together. */
static bool may_start(const struct race *rc, size_t i, long long now)
{
    if (!rc->r->one_at_a_time)
        return i == 0 || now >= rc->last_start + rc->r->stagger_ms;
    for (size_t j = 0; j < i; j++)
        if (!rc->x[j].done || rc->x[j].good)
            return false;
    return true;
}

/* Starts what may start now (all at once, at most one at a time): whether any did. */
static bool start_due(struct race *rc)
{
    const struct pqri_http_race *r = rc->r;
    long long now = pqri_mono_ms();
    bool added = false;

    while (rc->started < r->n && may_start(rc, rc->started, now) && (r->one_at_a_time || !added)) {
        size_t i = rc->started++;
        struct xfer *xs = &rc->x[i];
        added = true;
        xs->started = true;
        if (!(xs->h = cu.easy_init()) ||
            prepare(xs->h, &r->rq[i], &xs->body, &xs->cap, &xs->hdrs) < 0) {
            xs->done = true;
            r->answer(r->arg, i, 0, NULL, "out of memory");
            continue;
        }
        cu.easy_setopt(xs->h, CURLOPT_PRIVATE, xs);
        cu.multi_add_handle(rc->multi, xs->h);
        if (r->one_at_a_time && rc->started > 1) /* a later request gets what is left */
            rc->deadline = pqri_mono_ms() + r->rq[i].timeout_ms + SLICE_MS;
    }
    return added;
}

/* Every answer in, each to answer(). */
static void collect(struct race *rc)
{
    const struct pqri_http_race *r = rc->r;
    CURLMsg *msg;
    int left;

    while ((msg = cu.multi_info_read(rc->multi, &left))) {
        struct xfer *xf;
        long code = 0;
        const char *why = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        cu.easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&xf);
        xf->done = true;
        cu.easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
        if (msg->data.result != CURLE_OK)
            why = xf->body.too_big ? "response too large" : cu.easy_strerror(msg->data.result);
        if (r->answer(r->arg, (size_t)(xf - rc->x), code, &xf->body, why)) {
            xf->good = true;
            rc->good = true;
        }
    }
}

/* How long to wait for the next event, or -1 when the race is over. */
static long long race_wait(struct race *rc, bool added)
{
    const struct pqri_http_race *r = rc->r;
    long long now = pqri_mono_ms(), wait;
    bool all_started, all_done = true;

    /* The grace for the others runs from the good answer, or from the last start after it. */
    if (rc->good && (!rc->settle || (added && rc->last_start > rc->settle)))
        rc->settle = added ? rc->last_start : now;
    all_started = rc->started == r->n || (r->one_at_a_time && rc->good);
    for (size_t i = 0; i < rc->started; i++)
        all_done = all_done && rc->x[i].done;
    if ((all_started && all_done) || stop_now(r->stop) || now >= rc->deadline ||
        (rc->good && all_started && now - rc->settle >= r->grace_ms))
        return -1;
    wait = rc->deadline - now;
    if (rc->good && r->grace_ms - (now - rc->settle) < wait)
        wait = r->grace_ms - (now - rc->settle);
    if (!all_started && !r->one_at_a_time && rc->last_start + r->stagger_ms - now < wait)
        wait = rc->last_start + r->stagger_ms - now;
    return wait < 1 ? 1 : wait;
}

int pqri_http_race(const struct pqri_http_race *r, char *err, size_t errlen)
{
    struct race rc = {.r = r};
    long long wait;
    int running = 0;

    if (pqri_http_load(err, errlen) < 0)
        return -1;
    /* One request at a time gets the whole budget, as it would have alone. */
    rc.deadline = r->start_ms + (r->n ? r->rq[0].timeout_ms : 0) + SLICE_MS +
        (r->one_at_a_time ? 0 : (long long)(r->n ? r->n - 1 : 0) * r->stagger_ms);
    rc.x = calloc(r->n ? r->n : 1, sizeof *rc.x);
    rc.multi = cu.multi_init();
    if (!rc.x || !rc.multi) {
        pqri_errf(err, errlen, "out of memory");
        goto out;
    }
    for (;;) {
        bool added = start_due(&rc);
        cu.multi_perform(rc.multi, &running); /* a new transfer's connect(2) is made here */
        if (added)
            rc.last_start = pqri_mono_ms();
        collect(&rc);
        if ((wait = race_wait(&rc, added)) < 0)
            break;
        cu.multi_poll(rc.multi, NULL, 0, (int)(wait < SLICE_MS ? wait : SLICE_MS), NULL);
    }
    for (size_t i = 0; i < r->n; i++)
        if (rc.x[i].started && rc.x[i].h && !rc.x[i].done && !rc.good)
            r->answer(r->arg, i, 0, NULL, "no answer in time");
out:
    for (size_t i = 0; rc.x && i < r->n; i++) {
        if (rc.x[i].h) {
            cu.multi_remove_handle(rc.multi, rc.x[i].h);
            cu.easy_cleanup(rc.x[i].h);
        }
        headers_free(rc.x[i].hdrs);
        pqri_buf_free(&rc.x[i].body);
    }
    free(rc.x);
    if (rc.multi)
        cu.multi_cleanup(rc.multi);
    return rc.good ? 0 : -1;
}

/* ---- the stream ---- */

int pqri_lines_feed(struct pqri_lines *l, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (l->len + take > l->max)
            return -1;
        if (take) {
            char *nb = realloc(l->buf, l->len + take + 1);
            if (!nb)
                return -1;
            l->buf = nb;
            memcpy(l->buf + l->len, p, take);
            l->len += take;
            l->buf[l->len] = 0;
        }
        if (!nl)
            break;
        size_t len = l->len;
        while (len && l->buf[len - 1] == '\r')
            len--;
        int rc = l->line(l->arg, l->buf ? l->buf : "", len);
        l->len = 0;
        if (rc < 0)
            return -1;
        p = nl + 1;
        n -= take + 1;
    }
    return 0;
}

void pqri_lines_free(struct pqri_lines *l)
{
    free(l->buf);
    l->buf = NULL;
    l->len = 0;
}

struct pqri_http_stream {
    const struct pqri_http_stream_opts *o;
    CURLM *multi;
    CURL *h;
    struct pqri_lines lines;
    bool abandoned, too_long;
};

static int stream_line(void *arg, const char *line, size_t len)
{
    struct pqri_http_stream *s = arg;

    if (s->o->line(s->o->arg, line, len) < 0) {
        s->abandoned = true;
        return -1;
    }
    return 0;
}

static size_t stream_write(char *p, size_t sz, size_t nm, void *ud)
{
    struct pqri_http_stream *s = ud;

    if (s->abandoned || s->too_long || pqri_lines_feed(&s->lines, p, sz * nm) < 0) {
        if (!s->abandoned)
            s->too_long = true;
        return 0; /* abandons the stream */
    }
    return sz * nm;
}

static int keepalive(void *ud, curl_socket_t fd, curlsocktype purpose)
{
    const struct pqri_http_stream *s = ud;
    /* As Patroni sets its own etcd sockets: a peer that stops acknowledging is given up on within
     * about the request timeout, rather than TCP's minutes. */
    unsigned int ms = (unsigned int)(s->o->rq->timeout_ms * 2);

    (void)purpose;
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
    return CURL_SOCKOPT_OK;
}

/* The stream's handle: the body and the headers (to free after the transfer, in *hdrs), no
 * timeout but the connect's, every byte to the line splitter. 0, or -1 out of memory. */
static int stream_prepare(struct pqri_http_stream *s, struct curl_slist **hdrs)
{
    const struct pqri_http_req *rq = s->o->rq;

    common(s->h, rq->url, rq->timeout_ms, rq->tls);
    if (rq->body) {
        cu.easy_setopt(s->h, CURLOPT_POSTFIELDS, rq->body);
        if (header_add(hdrs, "Content-Type: application/json") < 0)
            return -1;
    }
    for (size_t i = 0; i < rq->nheaders; i++)
        if (header_add(hdrs, rq->headers[i]) < 0)
            return -1;
    if (*hdrs)
        cu.easy_setopt(s->h, CURLOPT_HTTPHEADER, *hdrs);
    cu.easy_setopt(s->h, CURLOPT_WRITEFUNCTION, stream_write);
    cu.easy_setopt(s->h, CURLOPT_WRITEDATA, s);
    cu.easy_setopt(s->h, CURLOPT_TCP_KEEPALIVE, 1L);
    cu.easy_setopt(s->h, CURLOPT_TCP_KEEPIDLE, 1L);
    cu.easy_setopt(s->h, CURLOPT_TCP_KEEPINTVL, 1L);
    cu.easy_setopt(s->h, CURLOPT_SOCKOPTFUNCTION, keepalive);
    cu.easy_setopt(s->h, CURLOPT_SOCKOPTDATA, s);
    return 0;
}

void pqri_http_stream_pump(struct pqri_http_stream *s)
{
    int running;

    cu.multi_perform(s->multi, &running);
}

/* After a round of reading: how the stream ended, or -1 while it runs. */
static int stream_ended(struct pqri_http_stream *s, char *why, size_t whylen)
{
    CURLMsg *msg;
    int left, end = -1;

    while ((msg = cu.multi_info_read(s->multi, &left)))
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == s->h) {
            pqri_errf(why, whylen, "%s",
                      msg->data.result == CURLE_OK ? "the server closed it"
                                                   : cu.easy_strerror(msg->data.result));
            end = PQRI_STREAM_CLOSED;
        }
    /* What the callbacks said comes first: the transfer ended because they did. */
    if (s->abandoned)
        return PQRI_STREAM_ABANDONED;
    if (s->too_long)
        return PQRI_STREAM_TOO_LONG;
    return end;
}

enum pqri_http_stream_end pqri_http_stream_run(const struct pqri_http_stream_opts *o, char *why,
                                               size_t whylen)
{
    struct pqri_http_stream s = {.o = o};
    struct curl_slist *hdrs = NULL;
    int end = PQRI_STREAM_STOPPED;

    s.lines = (struct pqri_lines){NULL, 0, o->rq->max_body, stream_line, &s};
    if (pqri_http_load(why, whylen) < 0)
        return PQRI_STREAM_FAILED;
    if (!(s.multi = cu.multi_init()) || !(s.h = cu.easy_init()) || stream_prepare(&s, &hdrs) < 0) {
        pqri_errf(why, whylen, "out of memory");
        end = PQRI_STREAM_FAILED;
        goto out;
    }
    cu.multi_add_handle(s.multi, s.h);
    while (!stop_now(o->rq->stop)) {
        int ended;
        pqri_http_stream_pump(&s);
        if ((ended = stream_ended(&s, why, whylen)) >= 0) {
            end = ended;
            break;
        }
        if (o->tick && o->tick(o->arg, &s) < 0) {
            end = PQRI_STREAM_ABANDONED;
            break;
        }
        cu.multi_poll(s.multi, NULL, 0, o->tick_ms > 0 ? o->tick_ms : SLICE_MS, NULL);
    }
    cu.multi_remove_handle(s.multi, s.h);
out:
    if (s.h)
        cu.easy_cleanup(s.h);
    headers_free(hdrs);
    pqri_lines_free(&s.lines);
    if (s.multi)
        cu.multi_cleanup(s.multi);
    return end;
}
