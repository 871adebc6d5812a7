/* A small HTTP/1.1 server on 127.0.0.1, at a port the kernel chooses (suites never collide), for
 * the unit suites of the HTTP clients: a thread per connection, each request read whole and given
 * to the suite's handler, which answers as scripted. */
#ifndef LOOPBACK_H
#define LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LB_MAX_CONNS 64

struct lb_req {
    char head[8192]; /* request line and headers */
    char body[16384];
    size_t bodylen;
    char method[16], path[1024];
};

struct lb {
    int fd, port;
    char url[64];
    pthread_t th;
    /* Answers one request on conn: 0 to read the next one on the same connection, -1 to close. */
    int (*handle)(struct lb *s, int conn, const struct lb_req *rq);
    void *arg;
    pthread_mutex_t mu; /* guards what follows */
    int accepted, requests;
    long long accept_ms[LB_MAX_CONNS];
    int conns[LB_MAX_CONNS];
    pthread_t threads[LB_MAX_CONNS];
    bool stopping;
};

static __attribute__((unused)) long long lb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static __attribute__((unused)) void lb_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool lb_stopping(struct lb *s)
{
    pthread_mutex_lock(&s->mu);
    bool v = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static __attribute__((unused)) int lb_write(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static __attribute__((unused, format(printf, 2, 3))) int lb_printf(int fd, const char *fmt, ...)
{
    char buf[32768];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= sizeof buf ? -1 : lb_write(fd, buf, (size_t)n);
}

/* A whole answer with a Content-Length. */
static __attribute__((unused)) int lb_reply(int fd, int status, const char *headers, const char *body)
{
    return lb_printf(fd, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n%s", status, strlen(body),
                     headers ? headers : "", body);
}

/* A chunked answer: its head, then chunks ("" ends it). */
static __attribute__((unused)) int lb_chunked(int fd)
{
    return lb_printf(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n");
}

static __attribute__((unused)) int lb_chunk(int fd, const char *data)
{
    return lb_printf(fd, "%zx\r\n%s\r\n", strlen(data), data);
}

/* Waits up to ms for the peer to close conn (or the server to stop): true if it did. */
static __attribute__((unused)) bool lb_wait_closed(struct lb *s, int conn, long ms)
{
    long long until = lb_now_ms() + ms;
    while (lb_now_ms() < until && !lb_stopping(s)) {
        struct pollfd p = {conn, POLLIN | POLLRDHUP, 0};
        char c[512];
        if (poll(&p, 1, 20) > 0 && recv(conn, c, sizeof c, MSG_DONTWAIT) <= 0)
            return true;
    }
    return lb_stopping(s);
}

/* One request from conn: 0, or -1 at its end. */
static int lb_read(struct lb *s, int conn, struct lb_req *rq)
{
    size_t used = 0, want = 0;
    char *end = NULL;

    memset(rq, 0, sizeof *rq);
    while (!end) {
        struct pollfd p = {conn, POLLIN, 0};
        if (lb_stopping(s))
            return -1;
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = recv(conn, rq->head + used, sizeof rq->head - 1 - used, 0);
        if (n <= 0)
            return -1;
        used += (size_t)n;
        rq->head[used] = 0;
        end = strstr(rq->head, "\r\n\r\n");
        if (!end && used == sizeof rq->head - 1)
            return -1;
    }
    size_t hlen = (size_t)(end + 4 - rq->head);
    const char *cl = strcasestr(rq->head, "\r\nContent-Length:");
    if (cl && cl < end)
        want = strtoul(cl + 17, NULL, 10);
    if (want >= sizeof rq->body)
        return -1;
    rq->bodylen = used - hlen;
    memcpy(rq->body, rq->head + hlen, rq->bodylen);
    rq->head[hlen] = 0;
    while (rq->bodylen < want) {
        ssize_t n = recv(conn, rq->body + rq->bodylen, want - rq->bodylen, 0);
        if (n <= 0)
            return -1;
        rq->bodylen += (size_t)n;
    }
    rq->body[rq->bodylen] = 0;
    sscanf(rq->head, "%15s %1023s", rq->method, rq->path);
    return 0;
}

struct lb_conn {
    struct lb *s;
    int fd;
};

static void *lb_conn_main(void *arg)
{
    struct lb_conn *c = arg;
    struct lb_req *rq = malloc(sizeof *rq);

    while (rq && lb_read(c->s, c->fd, rq) == 0) {
        pthread_mutex_lock(&c->s->mu);
        c->s->requests++;
        pthread_mutex_unlock(&c->s->mu);
        if (c->s->handle(c->s, c->fd, rq) < 0)
            break;
    }
    shutdown(c->fd, SHUT_RDWR);
    free(rq);
    free(c);
    return NULL;
}

static void *lb_main(void *arg)
{
    struct lb *s = arg;

    for (;;) {
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0)
            return NULL; /* shut down */
        struct lb_conn *c = malloc(sizeof *c);
        pthread_mutex_lock(&s->mu);
        if (s->stopping || s->accepted == LB_MAX_CONNS || !c) {
            pthread_mutex_unlock(&s->mu);
            close(fd);
            free(c);
            continue;
        }
        int i = s->accepted++;
        s->accept_ms[i] = lb_now_ms();
        s->conns[i] = fd;
        *c = (struct lb_conn){s, fd};
        pthread_create(&s->threads[i], NULL, lb_conn_main, c);
        pthread_mutex_unlock(&s->mu);
    }
}

/* 0, or -1 (the suite then fails its first check). */
static __attribute__((unused)) int lb_start(struct lb *s, int (*handle)(struct lb *, int, const struct lb_req *),
                                            void *arg)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t alen = sizeof a;

    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->handle = handle;
    s->arg = arg;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(s->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->fd, 16) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    s->port = ntohs(a.sin_port);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
    return pthread_create(&s->th, NULL, lb_main, s) == 0 ? 0 : -1;
}

static __attribute__((unused)) void lb_stop(struct lb *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_mutex_unlock(&s->mu);
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->th, NULL);
    close(s->fd);
    for (int i = 0; i < s->accepted; i++) {
        shutdown(s->conns[i], SHUT_RDWR);
        pthread_join(s->threads[i], NULL);
        close(s->conns[i]);
    }
    pthread_mutex_destroy(&s->mu);
}

static __attribute__((unused)) int lb_count(struct lb *s, const int *what)
{
    pthread_mutex_lock(&s->mu);
    int v = *what;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static __attribute__((unused)) long long lb_accept_ms(struct lb *s, int i)
{
    pthread_mutex_lock(&s->mu);
    long long v = i < s->accepted ? s->accept_ms[i] : 0;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* A port nothing listens on (refused at once). */
static __attribute__((unused)) int lb_closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

#endif
