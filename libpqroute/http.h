/*
 * HTTP for every client of ours (Patroni's REST API, etcd's JSON gateway, Consul): libcurl, loaded
 * on first use, and one request at a time with a deadline and a stop flag.
 */
#ifndef PQRI_HTTP_H
#define PQRI_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

/* The libcurl functions we call, looked up once. */
struct pqri_curl {
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
};
/* NULL with a message when libcurl cannot be loaded. */
const struct pqri_curl *pqri_curl(char *err, size_t errlen);

/* A response body, bounded: a larger one aborts the transfer. */
struct pqri_buf {
    char *p;
    size_t len, max;
    bool too_big;
};
size_t pqri_buf_write(char *p, size_t sz, size_t nm, void *ud); /* a CURLOPT_WRITEFUNCTION */
void pqri_buf_free(struct pqri_buf *b); /* its bytes cleared first */
/* curl_slist_free_all() with every header cleared first (they may carry a token). */
void pqri_http_headers_free(struct curl_slist *l);

/* TLS files for one service (any may be NULL). */
struct pqri_tls {
    const char *ca, *cert, *key;
};
/* What every handle of ours sets: the URL, no signals, http(s) only, no redirects, no proxy (these
 * are internal services), the connect timeout, TLS files. */
void pqri_http_common(CURL *h, const char *url, long connect_timeout_ms, const struct pqri_tls *tls);

/* A connection kept between requests to one server (the agent's once-per-interval reads): the
 * multi handle holds the connection cache. Zero-initialised; closed with pqri_http_conn_close(). */
struct pqri_http_conn {
    CURLM *multi;
    CURL *h;
};
void pqri_http_conn_close(struct pqri_http_conn *c);

struct pqri_http_req {
    const char *url;
    const char *body;      /* NULL: GET; else POST with this body */
    const char *const *headers;
    size_t nheaders;
    const struct pqri_tls *tls;
    long timeout_ms;
    size_t max_body;
    const int *stop;      /* abandons the request when non-zero (read atomically) */
    const char *capture;  /* a response header whose value is copied into captured */
    char *captured;
    size_t captured_len;
    struct pqri_http_conn *conn; /* NULL: a new connection for this request */
};
/* One request: 0 with *status set (any status), -1 with a message when no answer came. */
int pqri_http_do(const struct pqri_http_req *rq, struct pqri_buf *out, long *status, char *err,
                 size_t errlen);

void pqri_openssl_no_atexit(void); /* see http.c */
#endif
