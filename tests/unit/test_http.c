/* http.c against loopback servers started here: one request, a race of several, a stream. */
#include "tap.h"
#include "loopback.h"
#include "http.h"
#include "log.h"

/* ---- the servers' scripts ---- */

static int answer_200(struct lb *s, int fd, const struct lb_req *rq)
{
    (void)s;
    (void)rq;
    return lb_reply(fd, 200, "X-Test-Index: 42\r\n", "{\"hello\":\"world\"}");
}

static int answer_500(struct lb *s, int fd, const struct lb_req *rq)
{
    (void)s;
    (void)rq;
    return lb_reply(fd, 500, NULL, "{\"message\":\"boom\"}");
}

static int answer_garbage(struct lb *s, int fd, const struct lb_req *rq)
{
    (void)s;
    (void)rq;
    lb_printf(fd, "this is not HTTP at all\r\n\r\n");
    return -1;
}

static int answer_nothing(struct lb *s, int fd, const struct lb_req *rq)
{
    (void)rq;
    lb_wait_closed(s, fd, 10000);
    return -1;
}

static int answer_big(struct lb *s, int fd, const struct lb_req *rq)
{
    (void)s;
    (void)rq;
    return lb_reply(fd, 200, NULL, "0123456789012345678901234567890123456789");
}

/* 200 after the delay in s->arg (ms). */
static int answer_late(struct lb *s, int fd, const struct lb_req *rq)
{
    (void)rq;
    if (lb_wait_closed(s, fd, *(const long *)s->arg))
        return -1;
    return lb_reply(fd, 200, NULL, "late");
}

/* What the last request was, for the suite to look at. */
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lb_req seen_by_server, seen_copy;

static void remember(const struct lb_req *rq)
{
    pthread_mutex_lock(&seen_mu);
    seen_by_server = *rq;
    pthread_mutex_unlock(&seen_mu);
}

static const struct lb_req *last_seen(void)
{
    pthread_mutex_lock(&seen_mu);
    seen_copy = seen_by_server;
    pthread_mutex_unlock(&seen_mu);
    return &seen_copy;
}

static int answer_echo(struct lb *s, int fd, const struct lb_req *rq)
{
    (void)s;
    remember(rq);
    return lb_reply(fd, 200, NULL, "ok");
}

/* ---- one request ---- */

static int stop_flag;
static void *stop_later(void *arg)
{
    lb_sleep_ms(*(const long *)arg);
    __atomic_store_n(&stop_flag, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int get(const char *url, long timeout_ms, size_t max, struct pqri_http_conn **conn,
               struct pqri_buf *out, long *status, char *err, size_t errlen)
{
    struct pqri_http_req rq = {url, NULL, NULL, 0, NULL, timeout_ms, max, &stop_flag, NULL, NULL, 0,
                               conn};
    return pqri_http_do(&rq, out, status, err, errlen);
}

static void test_request(void)
{
    struct lb s;
    struct pqri_buf out = {0};
    long status;
    char err[256] = "";
    int rc;

    ok(pqri_http_load(err, sizeof err) == 0, "libcurl loads (%s)", err);

    lb_start(&s, answer_200, NULL);
    char idx[16] = "";
    struct pqri_http_req rq = {s.url, NULL, NULL, 0, NULL, 2000, 1024, NULL, "X-Test-Index", idx,
                               sizeof idx, NULL};
    rc = pqri_http_do(&rq, &out, &status, err, sizeof err);
    ok(rc == 0 && status == 200 && out.p && strcmp(out.p, "{\"hello\":\"world\"}") == 0,
       "a 200 answer and its body (%s)", rc ? err : "");
    is_str(idx, "42", "the header asked for is captured");
    pqri_buf_free(&out);
    ok(!out.p && out.len == 0, "the body freed");
    lb_stop(&s);

    lb_start(&s, answer_500, NULL);
    rc = get(s.url, 2000, 1024, NULL, &out, &status, err, sizeof err);
    ok(rc == 0 && status == 500 && out.p && strstr(out.p, "boom"),
       "a 500 is an answer: its status and body (%s)", rc ? err : "");
    pqri_buf_free(&out);
    lb_stop(&s);

    lb_start(&s, answer_garbage, NULL);
    rc = get(s.url, 2000, 1024, NULL, &out, &status, err, sizeof err);
    ok(rc < 0 && err[0] && status == 0, "garbage is no answer (%s)", err);
    pqri_buf_free(&out);
    lb_stop(&s);

    lb_start(&s, answer_big, NULL);
    rc = get(s.url, 2000, 10, NULL, &out, &status, err, sizeof err);
    ok(rc < 0 && strcmp(err, "response too large") == 0, "a body over its bound is refused (%s)", err);
    pqri_buf_free(&out);
    lb_stop(&s);

    lb_start(&s, answer_nothing, NULL);
    long long t0 = lb_now_ms();
    rc = get(s.url, 300, 1024, NULL, &out, &status, err, sizeof err);
    long long took = lb_now_ms() - t0;
    ok(rc < 0 && err[0] && took >= 250 && took < 2000, "a server that never answers: given up on "
       "after the timeout (%lld ms: %s)", took, err);
    pqri_buf_free(&out);

    long after = 100;
    pthread_t th;
    pthread_create(&th, NULL, stop_later, &after);
    t0 = lb_now_ms();
    rc = get(s.url, 5000, 1024, NULL, &out, &status, err, sizeof err);
    took = lb_now_ms() - t0;
    pthread_join(th, NULL);
    stop_flag = 0;
    ok(rc < 0 && strcmp(err, "no answer in time") == 0 && took < 1000,
       "the stop flag abandons a request (%lld ms: %s)", took, err);
    pqri_buf_free(&out);
    lb_stop(&s);

    /* A POST: its body, its headers, the JSON content type. */
    lb_start(&s, answer_echo, NULL);
    const char *hdrs[] = {"Authorization: tok1", "X-Other: 2"};
    struct pqri_http_req post = {s.url, "{\"key\":\"x\"}", hdrs, 2, NULL, 2000, 1024, NULL, NULL, NULL, 0,
                                 NULL};
    rc = pqri_http_do(&post, &out, &status, err, sizeof err);
    const struct lb_req *seen = last_seen();
    ok(rc == 0 && strcmp(seen->method, "POST") == 0 && strcmp(seen->body, "{\"key\":\"x\"}") == 0 &&
       strcasestr(seen->head, "\r\nAuthorization: tok1\r\n") && strcasestr(seen->head, "\r\nX-Other: 2\r\n") &&
       strcasestr(seen->head, "\r\nContent-Type: application/json\r\n"),
       "a POST carries its body and headers");
    ok(!strcasestr(seen->head, "Proxy") && strcasestr(seen->head, "User-Agent: libpqroute/"),
       "as libpqroute, never through a proxy");
    pqri_buf_free(&out);

    /* A kept connection: the second request on the first one's connection. */
    struct pqri_http_conn *conn = NULL;
    int before = lb_count(&s, &s.accepted);
    rc = get(s.url, 2000, 1024, &conn, &out, &status, err, sizeof err);
    pqri_buf_free(&out);
    rc |= get(s.url, 2000, 1024, &conn, &out, &status, err, sizeof err);
    pqri_buf_free(&out);
    ok(rc == 0 && conn && lb_count(&s, &s.accepted) == before + 1 && strcmp(last_seen()->method, "GET") == 0,
       "a kept connection serves two requests (%d connections)", lb_count(&s, &s.accepted) - before);
    pqri_http_conn_close(&conn);
    ok(!conn, "a closed connection is forgotten");
    pqri_http_conn_close(&conn);
    before = lb_count(&s, &s.accepted);
    get(s.url, 2000, 1024, NULL, &out, &status, err, sizeof err);
    pqri_buf_free(&out);
    get(s.url, 2000, 1024, NULL, &out, &status, err, sizeof err);
    pqri_buf_free(&out);
    ok(lb_count(&s, &s.accepted) == before + 2, "without one, each request has its own");
    lb_stop(&s);

    /* A kept connection that fails is not kept. */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", lb_closed_port());
    rc = get(url, 2000, 1024, &conn, &out, &status, err, sizeof err);
    ok(rc < 0 && !conn, "a failed request drops the kept connection (%s)", err);
    pqri_buf_free(&out);
}

/* ---- the race ---- */

struct heard {
    long status[4];
    char why[4][128];
    int calls[4];
    long long at[4];
};

static bool on_answer(void *arg, size_t i, long status, const struct pqri_buf *body, const char *why)
{
    struct heard *h = arg;

    h->calls[i]++;
    h->status[i] = status;
    h->at[i] = lb_now_ms();
    snprintf(h->why[i], sizeof h->why[i], "%s", why ? why : "");
    return !why && status == 200 && body && body->p;
}

static int race(struct lb *const *srv, const char *const *urls, size_t n, long timeout_ms, int stagger,
                bool one_at_a_time, struct heard *h)
{
    struct pqri_http_req rq[4];
    char err[256] = "";

    memset(h, 0, sizeof *h);
    for (size_t i = 0; i < n; i++)
        rq[i] = (struct pqri_http_req){.url = urls ? urls[i] : srv[i]->url, .timeout_ms = timeout_ms,
                                       .max_body = 1024};
    struct pqri_http_race r = {rq, n, pqri_mono_ms(), stagger, one_at_a_time, 20, &stop_flag, on_answer, h};
    int rc = pqri_http_race(&r, err, sizeof err);
    if (err[0])
        printf("# race: %s\n", err);
    return rc;
}

static void test_race(void)
{
    struct lb a, b, c;
    struct heard h;
    long long t0, took;
    int rc;

    /* One fails at once, one answers, one never does: the good one wins within its grace. */
    lb_start(&a, answer_500, NULL);
    lb_start(&b, answer_200, NULL);
    lb_start(&c, answer_nothing, NULL);
    struct lb *abc[] = {&a, &b, &c};
    t0 = lb_now_ms();
    rc = race(abc, NULL, 3, 3000, 10, false, &h);
    took = lb_now_ms() - t0;
    ok(rc == 0 && h.status[0] == 500 && h.status[1] == 200 && h.calls[2] == 0 && took < 1000,
       "the first good answer wins, well before the timeout (%lld ms)", took);
    lb_stop(&c);

    /* Nobody answers and the stop flag comes: each started one is told "no answer in time". */
    lb_start(&c, answer_nothing, NULL);
    struct lb *cc[] = {&c, &c};
    long after = 100;
    pthread_t th;
    pthread_create(&th, NULL, stop_later, &after);
    t0 = lb_now_ms();
    rc = race(cc, NULL, 2, 5000, 10, false, &h);
    took = lb_now_ms() - t0;
    pthread_join(th, NULL);
    stop_flag = 0;
    ok(rc < 0 && took < 1000 && strcmp(h.why[0], "no answer in time") == 0 &&
       strcmp(h.why[1], "no answer in time") == 0, "the stop flag ends a race (%lld ms)", took);

    /* Nothing good before the timeout: the request's own timeout says so. */
    t0 = lb_now_ms();
    rc = race(cc, NULL, 1, 200, 10, false, &h);
    took = lb_now_ms() - t0;
    ok(rc < 0 && h.calls[0] == 1 && h.why[0][0] && took >= 150 && took < 1000,
       "a race nobody wins ends at its deadline (%lld ms: %s)", took, h.why[0]);
    lb_stop(&c);

    /* Staggered starts: each one stagger_ms after the previous one's connect. */
    long late = 300;
    lb_start(&c, answer_late, &late);
    struct lb *ccc[] = {&c, &c, &c};
    rc = race(ccc, NULL, 3, 3000, 100, false, &h);
    long long gap1 = lb_accept_ms(&c, 1) - lb_accept_ms(&c, 0), gap2 = lb_accept_ms(&c, 2) - lb_accept_ms(&c, 1);
    ok(rc == 0 && lb_count(&c, &c.accepted) == 3 && gap1 >= 80 && gap2 >= 80,
       "starts are staggered (%lld, %lld ms apart)", gap1, gap2);
    lb_stop(&c);

    /* One at a time: the next only once the one before failed, and none after a good one. */
    char refused[64];
    snprintf(refused, sizeof refused, "http://127.0.0.1:%d", lb_closed_port());
    lb_start(&c, answer_nothing, NULL);
    const char *urls[] = {refused, b.url, c.url};
    rc = race(NULL, urls, 3, 3000, 10, true, &h);
    ok(rc == 0 && h.calls[0] == 1 && h.why[0][0] && h.status[1] == 200 && lb_count(&c, &c.accepted) == 0,
       "one at a time: the second after the first failed (%s), the third never", h.why[0]);
    lb_stop(&c);
    lb_stop(&a);
    lb_stop(&b);
}

/* ---- the stream ---- */

struct lines_seen {
    char line[8][64];
    int n;
    int stop_after;  /* lines, then the stop flag (0: never) */
    int refuse_at;   /* this line (1-based) makes line() say -1 */
};

static int on_line(void *arg, const char *line, size_t len)
{
    struct lines_seen *l = arg;
    if (l->n < 8)
        snprintf(l->line[l->n], sizeof l->line[0], "%.*s", (int)len, line);
    l->n++;
    if (l->stop_after && l->n >= l->stop_after)
        __atomic_store_n(&stop_flag, 1, __ATOMIC_RELEASE);
    return l->refuse_at && l->n == l->refuse_at ? -1 : 0;
}

/* A stream in pieces cut across lines, with pauses so that they arrive in separate reads; then
 * the end of the answer. */
static int stream_split(struct lb *s, int fd, const struct lb_req *rq)
{
    (void)s;
    remember(rq);
    lb_chunked(fd);
    lb_chunk(fd, "{\"a\":1}\n{\"b\"");
    lb_sleep_ms(30);
    lb_chunk(fd, ":2}\r\n\n{\"c\":");
    lb_sleep_ms(30);
    lb_chunk(fd, "3}\n{\"partial");
    lb_sleep_ms(30);
    lb_chunk(fd, "");
    return -1;
}

/* One line, then silence until the client goes. */
static int stream_hold(struct lb *s, int fd, const struct lb_req *rq)
{
    remember(rq);
    lb_chunked(fd);
    lb_chunk(fd, "{\"first\":1}\n");
    lb_wait_closed(s, fd, 10000);
    return -1;
}

/* A line, a second one 100 ms later, then silence. */
static int stream_two(struct lb *s, int fd, const struct lb_req *rq)
{
    (void)rq;
    lb_chunked(fd);
    lb_chunk(fd, "{\"first\":1}\n");
    lb_sleep_ms(100);
    lb_chunk(fd, "{\"second\":2}\n");
    lb_wait_closed(s, fd, 10000);
    return -1;
}

static int stream_long(struct lb *s, int fd, const struct lb_req *rq)
{
    (void)rq;
    lb_chunked(fd);
    lb_chunk(fd, "{\"this line\":\"is longer than the sixty-four bytes the suite allows a line\"}\n");
    lb_wait_closed(s, fd, 10000);
    return -1;
}

struct ticker {
    struct lines_seen *l;
    int ticks;
    int end_after; /* ticks, then -1 (0: never) */
    bool pump;     /* once a line is in: wait, pump, and see the second one arrive */
    int lines_after_pump;
};

static int on_tick(void *arg, struct pqri_http_stream *s)
{
    struct ticker *t = arg;
    t->ticks++;
    if (t->pump && t->l->n == 1) {
        lb_sleep_ms(250);
        pqri_http_stream_pump(s);
        t->lines_after_pump = t->l->n;
        return -1;
    }
    return t->end_after && t->ticks >= t->end_after ? -1 : 0;
}

static int tick_line(void *arg, const char *line, size_t len)
{
    return on_line(((struct ticker *)arg)->l, line, len);
}

static enum pqri_http_stream_end stream(const char *url, const char *body, struct lines_seen *l,
                                        struct ticker *t, size_t max, char *why, size_t whylen)
{
    const char *hdrs[] = {"Authorization: tok1"};
    struct pqri_http_req rq = {url, body, hdrs, 1, NULL, 2000, max, &stop_flag, NULL, NULL, 0, NULL};
    struct pqri_http_stream_opts o = {&rq, t ? tick_line : on_line, t ? on_tick : NULL, t ? (void *)t : l};

    why[0] = 0;
    return pqri_http_stream_run(&o, why, whylen);
}

static void test_stream(void)
{
    struct lb s;
    struct lines_seen l;
    char why[256];
    enum pqri_http_stream_end end;

    lb_start(&s, stream_split, NULL);
    memset(&l, 0, sizeof l);
    end = stream(s.url, "{\"create_request\":{}}", &l, NULL, 64, why, sizeof why);
    ok(end == PQRI_STREAM_CLOSED && strcmp(why, "the server closed it") == 0,
       "a stream the server ends: closed (%s)", why);
    const struct lb_req *seen = last_seen();
    ok(l.n == 4 && strcmp(l.line[0], "{\"a\":1}") == 0 && strcmp(l.line[1], "{\"b\":2}") == 0 &&
       l.line[2][0] == 0 && strcmp(l.line[3], "{\"c\":3}") == 0,
       "lines split across reads come out whole (CRLF too), the partial last one not at all (%d)", l.n);
    ok(strcmp(seen->method, "POST") == 0 && strcmp(seen->body, "{\"create_request\":{}}") == 0 &&
       strcasestr(seen->head, "\r\nContent-Type: application/json\r\nAuthorization: tok1\r\n"),
       "the stream's request: its body, the content type, then the headers given");
    lb_stop(&s);

    lb_start(&s, stream_hold, NULL);
    memset(&l, 0, sizeof l);
    l.stop_after = 1;
    long long t0 = lb_now_ms();
    end = stream(s.url, NULL, &l, NULL, 64, why, sizeof why);
    long long took = lb_now_ms() - t0;
    stop_flag = 0;
    ok(end == PQRI_STREAM_STOPPED && l.n == 1 && took < 1000, "the stop flag ends a stream (%lld ms)", took);
    ok(strcmp(last_seen()->method, "GET") == 0 && lb_count(&s, &s.requests) == 1,
       "a stream without a body: a GET");

    memset(&l, 0, sizeof l);
    l.refuse_at = 1;
    end = stream(s.url, NULL, &l, NULL, 64, why, sizeof why);
    ok(end == PQRI_STREAM_ABANDONED && l.n == 1, "line() saying -1 abandons the stream");

    struct ticker t = {&l, 0, 3, false, 0};
    memset(&l, 0, sizeof l);
    end = stream(s.url, NULL, &l, &t, 64, why, sizeof why);
    ok(end == PQRI_STREAM_ABANDONED && t.ticks == 3, "so does tick() (after %d ticks)", t.ticks);
    lb_stop(&s);

    lb_start(&s, stream_two, NULL);
    memset(&l, 0, sizeof l);
    t = (struct ticker){&l, 0, 0, true, 0};
    end = stream(s.url, NULL, &l, &t, 64, why, sizeof why);
    ok(end == PQRI_STREAM_ABANDONED && t.lines_after_pump == 2,
       "tick() can read what arrived while it worked (%d lines after the pump)", t.lines_after_pump);
    lb_stop(&s);

    lb_start(&s, stream_long, NULL);
    memset(&l, 0, sizeof l);
    end = stream(s.url, NULL, &l, NULL, 64, why, sizeof why);
    ok(end == PQRI_STREAM_TOO_LONG && l.n == 0, "a line over the limit ends the stream");
    lb_stop(&s);

    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", lb_closed_port());
    memset(&l, 0, sizeof l);
    end = stream(url, NULL, &l, NULL, 64, why, sizeof why);
    ok(end == PQRI_STREAM_CLOSED && why[0] && strcmp(why, "the server closed it") != 0,
       "a stream that cannot connect: closed, with libcurl's words (%s)", why);
}

int main(void)
{
    pqri_log_set(PQRI_LOG_ERROR);
    test_request();
    test_race();
    test_stream();
    pqri_http_thread_done();
    return done_testing();
}
