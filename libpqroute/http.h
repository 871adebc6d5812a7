/*
 * HTTP for every client of ours (Patroni's REST API, etcd's JSON gateway, Consul): the one part
 * that drives libcurl (loaded on first use) and sets up and cleans up the TLS library under it.
 * Three shapes, each with a stop flag: one request with a deadline; a set of requests raced
 * against each other (the REST endpoints); a stream read line by line (etcd's watch).
 */
#ifndef PQRI_HTTP_H
#define PQRI_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* libcurl loaded and initialised (once): 0, or -1 with a message. */
int pqri_http_load(char *err, size_t errlen);

/* A response body, bounded: a larger one aborts the transfer. */
struct pqri_buf {
    char *p;
    size_t len, max;
    bool too_big;
};
void pqri_buf_free(struct pqri_buf *b); /* its bytes cleared first */

/* TLS files for one service (any may be NULL). */
struct pqri_tls {
    const char *ca, *cert, *key;
};

/* A connection kept between requests to one server (the agent's once-per-interval reads): NULL
 * until a request made with it, closed (and set to NULL) by pqri_http_conn_close(). */
struct pqri_http_conn;
void pqri_http_conn_close(struct pqri_http_conn **c);

/* Every request: the URL, no signals, http(s) only, no redirects, no proxy (these are internal
 * services), HTTP/1.1, the TLS files. */
struct pqri_http_req {
    const char *url;
    const char *body; /* NULL: GET; else POST with this (JSON) body */
    const char *const *headers;
    size_t nheaders;
    const struct pqri_tls *tls;
    long timeout_ms;     /* the whole request's; a stream's connect only */
    size_t max_body;     /* a stream: the longest line */
    const int *stop;     /* abandons the request when non-zero (read atomically) */
    const char *capture; /* a response header whose value is copied into captured */
    char *captured;
    size_t captured_len;
    struct pqri_http_conn **conn; /* NULL: a new connection for this request (always, in a race) */
};
/* One request: 0 with *status set (any status), -1 with a message when no answer came. */
int pqri_http_do(const struct pqri_http_req *rq, struct pqri_buf *out, long *status, char *err,
                 size_t errlen);

/* Requests raced against each other: each started stagger_ms after the previous one's connect was
 * made, or one at a time (the next only once every earlier one failed, with a whole budget of its
 * own). Ends when every started request has answered, on *stop, at the deadline (start_ms plus
 * the request timeout and the staggered starts), or grace_ms after a good answer (counted again
 * from each start after it). */
struct pqri_http_race {
    const struct pqri_http_req *rq; /* their own stop flags unused */
    size_t n;
    long long start_ms; /* pqri_mono_ms() when the budget started */
    int stagger_ms;
    bool one_at_a_time;
    int grace_ms;
    const int *stop;
    /* Request i's answer as it comes: its status and body, or why there is none (why non-NULL:
     * a transfer that failed, or "no answer in time" at the end when no answer was good).
     * Returns whether the answer is a good one. */
    bool (*answer)(void *arg, size_t i, long status, const struct pqri_buf *body, const char *why);
    void *arg;
};
/* 0 when an answer was good, else -1 (with a message only when nothing could be asked). */
int pqri_http_race(const struct pqri_http_race *r, char *err, size_t errlen);

/* A stream's framing: newline-delimited lines split across reads anywhere. Feeds bytes; calls
 * line() for each complete one, without its line end (LF or CRLF); -1 when a line exceeds max or
 * line() returns -1. */
struct pqri_lines {
    char *buf;
    size_t len, max;
    int (*line)(void *arg, const char *line, size_t len);
    void *arg;
};
int pqri_lines_feed(struct pqri_lines *l, const char *p, size_t n);
void pqri_lines_free(struct pqri_lines *l);

/* A long-lived request whose answer is read line by line. TCP keepalives, and a peer that stops
 * acknowledging given up on after twice rq->timeout_ms (rather than TCP's minutes). */
struct pqri_http_stream;
struct pqri_http_stream_opts {
    const struct pqri_http_req *rq;                       /* no capture, no kept connection */
    int (*line)(void *arg, const char *line, size_t len); /* -1 ends the stream */
    /* After each round of reading while the stream runs: -1 ends it. */
    int (*tick)(void *arg, struct pqri_http_stream *s);
    void *arg;
    /* The longest wait between ticks when nothing arrives (0: 50 ms). A host runs one stream, but
     * a fleet simulated in one process runs thousands: each wakes only as often as it must. */
    int tick_ms;
};
enum pqri_http_stream_end {
    PQRI_STREAM_STOPPED,   /* *rq->stop became non-zero */
    PQRI_STREAM_CLOSED,    /* the transfer ended: why says how (closed by the server, or failed) */
    PQRI_STREAM_ABANDONED, /* line() or tick() returned -1 */
    PQRI_STREAM_TOO_LONG,  /* a line longer than rq->max_body (or no memory for it) */
    PQRI_STREAM_FAILED,    /* it could not start: why */
};
enum pqri_http_stream_end pqri_http_stream_run(const struct pqri_http_stream_opts *o, char *why,
                                               size_t whylen);
/* From tick(): reads what has arrived meanwhile now (line() is called for it). */
void pqri_http_stream_pump(struct pqri_http_stream *s);

/* Before anyone in this process initialises OpenSSL: see http.c. */
void pqri_openssl_no_atexit(void);
/* Called by a thread that made requests, before it ends: frees what the TLS library keeps per
 * thread. */
void pqri_http_thread_done(void);

#endif
