/*
 * libcurl, loaded on first use rather than linked: with its dependency chain it costs a process
 * about 5 ms and 1 MiB to load, and a process that finds a fresh shared cache never needs it.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "log.h"

#define SLICE_MS 50

static struct pqri_curl cu;
static CURLcode (*cu_global_init_mem)(long, curl_malloc_callback, curl_free_callback, curl_realloc_callback,
                                      curl_strdup_callback, curl_calloc_callback);
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
#define SYM(field, name)                                                                         \
    if (!(*(void **)&(field) = dlsym(h, name))) {                                                \
        snprintf(curl_error, sizeof curl_error, "libcurl lacks %s", name);                       \
        return;                                                                                  \
    }
    SYM(cu_global_init_mem, "curl_global_init_mem")
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
    if (cu_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, pqri_clearing_free, clearing_realloc, strdup, calloc) !=
        CURLE_OK) {
        snprintf(curl_error, sizeof curl_error, "libcurl failed to initialise");
        return;
    }
    cu_ok = true;
}

const struct pqri_curl *pqri_curl(char *err, size_t errlen)
{
    pthread_once(&curl_once, curl_load);
    if (!cu_ok) {
        pqri_errf(err, errlen, "%s", curl_error);
        return NULL;
    }
    return &cu;
}

size_t pqri_buf_write(char *p, size_t sz, size_t nm, void *ud)
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

void pqri_http_headers_free(struct curl_slist *l)
{
    /* curl copies each header: an Authorization one is cleared before it is freed. */
    for (struct curl_slist *n = l; n; n = n->next)
        if (n->data)
            explicit_bzero(n->data, strlen(n->data));
    if (l)
        cu.slist_free_all(l);
}

void pqri_http_common(CURL *h, const char *url, long connect_timeout_ms, const struct pqri_tls *tls)
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

int pqri_http_do(const struct pqri_http_req *rq, struct pqri_buf *out, long *status, char *err,
                 size_t errlen)
{
    struct curl_slist *hdrs = NULL;
    struct capture cap = {rq, rq->capture ? strlen(rq->capture) : 0};
    CURLM *multi;
    CURL *h;
    CURLcode result = CURLE_OK;
    long long deadline = pqri_mono_ms() + rq->timeout_ms + SLICE_MS;
    int running = 1, rc = -1;
    bool done = false;

    *status = 0;
    out->max = rq->max_body;
    if (rq->captured && rq->captured_len)
        rq->captured[0] = 0;
    if (!pqri_curl(err, errlen))
        return -1;
    if (rq->conn && rq->conn->multi && rq->conn->h) {
        multi = rq->conn->multi;
        h = rq->conn->h;
        cu.easy_reset(h); /* keeps the connection */
    } else {
        multi = cu.multi_init();
        h = cu.easy_init();
    }
    if (rq->conn) {
        rq->conn->multi = multi;
        rq->conn->h = h;
    }
    if (!multi || !h) {
        pqri_errf(err, errlen, "out of memory");
        goto out;
    }
    pqri_http_common(h, rq->url, rq->timeout_ms, rq->tls);
    cu.easy_setopt(h, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
    cu.easy_setopt(h, CURLOPT_WRITEFUNCTION, pqri_buf_write);
    cu.easy_setopt(h, CURLOPT_WRITEDATA, out);
    if (rq->capture) {
        cu.easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        cu.easy_setopt(h, CURLOPT_HEADERDATA, &cap);
    }
    for (size_t i = 0; i < rq->nheaders; i++)
        hdrs = cu.slist_append(hdrs, rq->headers[i]);
    if (rq->body) {
        hdrs = cu.slist_append(hdrs, "Content-Type: application/json");
        cu.easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
    }
    if (hdrs)
        cu.easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    cu.multi_add_handle(multi, h);
    while (!done) {
        CURLMsg *msg;
        int left;
        cu.multi_perform(multi, &running);
        while ((msg = cu.multi_info_read(multi, &left)))
            if (msg->msg == CURLMSG_DONE) {
                result = msg->data.result;
                done = true;
            }
        if (done || (rq->stop && __atomic_load_n(rq->stop, __ATOMIC_ACQUIRE)) ||
            pqri_mono_ms() >= deadline)
            break;
        cu.multi_poll(multi, NULL, 0, SLICE_MS, NULL);
    }
    if (!done)
        pqri_errf(err, errlen, "no answer in time");
    else if (result != CURLE_OK)
        pqri_errf(err, errlen, "%s", out->too_big ? "response too large" : cu.easy_strerror(result));
    else {
        cu.easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        rc = 0;
    }
    cu.multi_remove_handle(multi, h);
out:
    if (!rq->conn) {
        if (h)
            cu.easy_cleanup(h);
        if (multi)
            cu.multi_cleanup(multi);
    } else if (rc < 0) {
        pqri_http_conn_close(rq->conn); /* a failed connection is not kept */
    }
    pqri_http_headers_free(hdrs);
    return rc;
}

void pqri_http_conn_close(struct pqri_http_conn *c)
{
    if (c->h)
        cu.easy_cleanup(c->h);
    if (c->multi)
        cu.multi_cleanup(c->multi);
    c->h = NULL;
    c->multi = NULL;
}
