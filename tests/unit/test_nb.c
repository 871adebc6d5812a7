/*
 * The non-blocking connect (nb.c) against a scripted libpq over real sockets: members on loopback
 * ports that take the role (a leader), answer and refuse it (a standby), refuse TCP, stay silent
 * (a listener whose backlog is full drops the SYN), or hold the connection without a word (a proxy
 * whose backend is gone). The caller is an epoll loop that registers the socket it was given once
 * and only modifies it, as asyncio's add_reader/add_writer do.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tap.h"
#include "connect.h"
#include "nb.h"
#include "failures.h"
#include "refresher.h"
#include "direct.h"
#include "log.h"

enum kind { NONE, LEADER, STANDBY, REFUSE, SILENT, HELD, AUTHFAIL, SHUTDOWN };
#define NPORTS 6
static struct {
    int port;
    int lfd;
    int kind; /* enum kind; read by the server thread, set by the cases: atomics */
    int answers; /* startups it answered (the caller's thread counts them) */
} srv[NPORTS];
#define KIND(i) ((enum kind)__atomic_load_n(&srv[i].kind, __ATOMIC_RELAXED))
#define SETK(i, k) __atomic_store_n(&srv[i].kind, (int)(k), __ATOMIC_RELAXED)
static int held_open; /* connections the held door keeps open (not the connects' own) */
static struct pqri_views *r;
static char dir[] = "/tmp/pqr-nb-XXXXXX";

/* ---- the servers: one thread accepting; a leader or a standby says one byte, a held one nothing ---- */

static void *serve(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p[NPORTS];
        int n = 0;
        for (int i = 0; i < NPORTS; i++)
            if (srv[i].lfd >= 0 && KIND(i) != SILENT)
                p[n++] = (struct pollfd){srv[i].lfd, POLLIN, 0};
        if (poll(p, (nfds_t)n, 50) <= 0)
            continue;
        for (int j = 0; j < n; j++) {
            if (!(p[j].revents & POLLIN))
                continue;
            int c = accept(p[j].fd, NULL, NULL);
            for (int i = 0; c >= 0 && i < NPORTS; i++)
                if (srv[i].lfd == p[j].fd && (KIND(i) == LEADER || KIND(i) == STANDBY || KIND(i) == AUTHFAIL)) {
                    (void)!write(c, "x", 1);
                    close(c); /* the client reads the byte before the end */
                } else if (srv[i].lfd == p[j].fd && KIND(i) == SHUTDOWN) {
                    close(c); /* a server shutting down: the connection ends before any word */
                } else if (srv[i].lfd == p[j].fd) {
                    __atomic_add_fetch(&held_open, 1, __ATOMIC_RELAXED); /* a held one never ends */
                }
        }
    }
    return NULL;
}

static int listen_on(int backlog, int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, backlog) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

/* A port nothing listens on: bound, never listening (refused). */
static int refusing_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    return ntohs(a.sin_port); /* fd kept: the port stays ours and refuses */
}

static enum kind kind_of(int port)
{
    for (int i = 0; i < NPORTS; i++)
        if (srv[i].port == port)
            return KIND(i);
    return REFUSE;
}

/* ---- the scripted libpq ---- */

#define MAGIC 0x6e62636fu
static const char *auth_message; /* a refused password's message, when not libpq's English one */
struct fconn {
    unsigned magic;
    char addr[8][64], portstr[8][8];
    int port[8], n, idx, sock;
    ConnStatusType st;
    int resets;
    int password_tries; /* startups that reached a member refusing the password */
    const char *error;  /* what libpq would say of the end */
};

static struct fconn *fake(const PGconn *c)
{
    struct fconn *f = (struct fconn *)c;
    return f && f->magic == MAGIC ? f : NULL;
}

static bool is_probe(const char *const *v)
{
    for (size_t i = 0; v[i]; i++)
        if (strcmp(v[i], "pqroute-probe-invalid") == 0)
            return true;
    return false;
}

static void start_host(struct fconn *f)
{
    for (; f->idx < f->n; f->idx++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port[f->idx])};
        inet_pton(AF_INET, f->addr[f->idx], &a.sin_addr);
        f->sock = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (connect(f->sock, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
            close(f->sock);
            continue;
        }
        f->st = CONNECTION_STARTED;
        return;
    }
    f->sock = -1;
    f->st = CONNECTION_BAD;
}

static void next_host(struct fconn *f)
{
    close(f->sock);
    f->idx++;
    start_host(f);
}

static PGconn *f_start(const struct pqri_libpq *pq, const char *const *k, const char *const *v, int e)
{
    (void)pq;
    if (is_probe(v))
        return PQconnectStartParams(k, v, e);
    struct fconn *f = calloc(1, sizeof *f);
    const char *host = "", *ha = "", *port = "";
    f->magic = MAGIC;
    for (size_t i = 0; k[i]; i++)
        if (strcmp(k[i], "hostaddr") == 0)
            ha = v[i];
        else if (strcmp(k[i], "host") == 0)
            host = v[i];
        else if (strcmp(k[i], "port") == 0)
            port = v[i];
    /* entry i: hostaddr[i] if given, else host[i] (the door is named by its host) */
    for (f->n = 0; f->n < 8; f->n++) {
        size_t la = strcspn(ha, ","), lh = strcspn(host, ","), lp = strcspn(port, ",");
        snprintf(f->addr[f->n], 64, "%.*s", (int)(la ? la : lh), la ? ha : host);
        snprintf(f->portstr[f->n], 8, "%.*s", (int)lp, port);
        f->port[f->n] = atoi(f->portstr[f->n]);
        if (!ha[la] && !host[lh])
            break;
        ha += ha[la] ? la + 1 : la, host += host[lh] ? lh + 1 : lh, port += port[lp] ? lp + 1 : lp;
    }
    f->n++;
    start_host(f);
    return (PGconn *)f;
}

static PostgresPollingStatusType f_poll(PGconn *c)
{
    struct fconn *f = fake(c);
    if (!f)
        return PQconnectPoll(c);
    for (;;) {
        if (f->st == CONNECTION_BAD)
            return PGRES_POLLING_FAILED;
        if (f->st == CONNECTION_OK)
            return PGRES_POLLING_OK;
        struct pollfd p = {f->sock, f->st == CONNECTION_STARTED ? POLLOUT : POLLIN, 0};
        if (poll(&p, 1, 0) == 0)
            return f->st == CONNECTION_STARTED ? PGRES_POLLING_WRITING : PGRES_POLLING_READING;
        if (f->st == CONNECTION_STARTED) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(f->sock, SOL_SOCKET, SO_ERROR, &err, &len);
            struct sockaddr_in peer;
            socklen_t pl = sizeof peer;
            if (err || getpeername(f->sock, (struct sockaddr *)&peer, &pl) < 0) {
                next_host(f); /* refused, reset, or ended by the waker */
                goto next;
            }
            f->st = CONNECTION_AWAITING_RESPONSE;
            return PGRES_POLLING_READING;
        }
        char b;
        ssize_t got = read(f->sock, &b, 1);
        if (got == 1 && kind_of(f->port[f->idx]) == AUTHFAIL)
            f->password_tries++;
        for (int i = 0; got == 1 && i < NPORTS; i++)
            srv[i].answers += srv[i].port == f->port[f->idx];
        if (got == 0 || (got == 1 && kind_of(f->port[f->idx]) == AUTHFAIL)) {
            f->error = got == 0        ? "server closed the connection unexpectedly"
                       : auth_message ? auth_message
                                      : "FATAL:  password authentication failed for user \"u\"";
            close(f->sock); /* as libpq after an error or an end during the startup: no other host */
            f->sock = -1;
            f->st = CONNECTION_BAD;
            return PGRES_POLLING_FAILED;
        }
        if (kind_of(f->port[f->idx]) != LEADER) {
            next_host(f); /* a standby refusing read-write, or a connection that ended */
            goto next;
        }
        f->st = CONNECTION_OK;
        return PGRES_POLLING_OK;
    next: /* as libpq: the next host's connect is started, and the call returns */
        if (f->st == CONNECTION_STARTED)
            return PGRES_POLLING_WRITING;
    }
}

static ConnStatusType f_status(const PGconn *c)
{
    return fake(c) ? fake(c)->st : PQstatus(c);
}
static int f_socket(const PGconn *c)
{
    return fake(c) ? fake(c)->sock : PQsocket(c);
}
static char *f_hostaddr(const PGconn *c)
{
    struct fconn *f = fake(c);
    return f ? (f->idx < f->n ? f->addr[f->idx] : (char *)"") : PQhostaddr(c);
}
static char *f_port(const PGconn *c)
{
    struct fconn *f = fake(c);
    return f ? (f->idx < f->n ? f->portstr[f->idx] : (char *)"") : PQport(c);
}
static void f_finish(PGconn *c)
{
    struct fconn *f = fake(c);
    if (!f) {
        PQfinish(c);
        return;
    }
    if (f->sock >= 0)
        close(f->sock);
    f->magic = 0;
    free(f);
}
static int f_reset_start(const struct pqri_libpq *pq, PGconn *c)
{
    struct fconn *f = fake(c);
    (void)pq;
    if (f->sock >= 0)
        close(f->sock);
    f->idx = 0;
    f->resets++;
    start_host(f);
    return f->st != CONNECTION_BAD;
}
static int f_used_password(const PGconn *c)
{
    struct fconn *f = fake(c);
    return f ? f->idx < f->n && kind_of(f->port[f->idx]) == AUTHFAIL : PQconnectionUsedPassword(c);
}
static int f_needs_password(const PGconn *c)
{
    return fake(c) ? 0 : PQconnectionNeedsPassword(c);
}
static PQconninfoOption *f_conninfo(PGconn *c)
{
    return fake(c) ? NULL : PQconninfo(c);
}

static char *f_error_message(const PGconn *c)
{
    struct fconn *f = fake(c);
    return f ? (char *)(f->error ? f->error : "") : PQerrorMessage(c);
}

static struct pqri_libpq fake_libpq(void)
{
    struct pqri_libpq pq = pqri_direct_libpq;
    pq.connect_start_params = f_start;
    pq.connect_poll = f_poll;
    pq.status = f_status;
    pq.socket = f_socket;
    pq.hostaddr = f_hostaddr;
    pq.port = f_port;
    pq.finish = f_finish;
    pq.reset_start = f_reset_start;
    pq.conninfo = f_conninfo;
    pq.used_password = f_used_password;
    pq.needs_password = f_needs_password;
    pq.error_message = f_error_message;
    return pq;
}

/* ---- the caller ---- */

static uint64_t generation = 100;
static void inject(int leader_port, const int *ports, int n)
{
    char json[2048];
    size_t used = (size_t)snprintf(json, sizeof json, "{\"members\":[");
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(json + used, sizeof json - used,
                                 "%s{\"name\":\"m%d\",\"role\":\"%s\",\"state\":\"%s\",\"host\":\"127.0.0.1\","
                                 "\"port\":%d,\"timeline\":1,\"lag\":0}",
                                 i ? "," : "", ports[i], ports[i] == leader_port ? "leader" : "replica",
                                 ports[i] == leader_port ? "running" : "streaming", ports[i]);
    snprintf(json + used, sizeof json - used, "]}");
    struct pqr_topology *t = pqri_topo_parse(json, strlen(json), NULL, 0);
    pqri_topo_filter(t, pqri_views_settings(r), pqri_view_conf(pqri_views_at(r, 0)));
    t->fetched_ms = pqri_now_ms();
    t->mono_ms = pqri_mono_ms();
    t->gen = ++generation;
    pqri_view_set(pqri_views_at(r, 0), t);
    pqri_topo_unref(t);
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

/* Descriptors open now, less those the held door keeps on its side since `held0`. */
static int ours_open(int held0)
{
    usleep(150000); /* the server thread and the waker catch up */
    return open_fds() - (__atomic_load_n(&held_open, __ATOMIC_RELAXED) - held0);
}

struct run {
    PGconn *conn;
    int fd;            /* the number the caller was given, registered once */
    bool mod_failed;   /* EPOLL_CTL_MOD failed: the registration was lost */
    bool bad_between;  /* PQstatus() read CONNECTION_BAD while the poll said to go on */
    double longest_ms; /* the longest single PQconnectPoll call */
    PostgresPollingStatusType ps;
    long long took_ms;
};

static const struct pqri_libpq *PQ;

static PostgresPollingStatusType caller_poll(PGconn *c)
{
    PostgresPollingStatusType ps;
    return pqri_nb_poll(c, &ps) ? ps : PQ->connect_poll(c);
}

static int caller_socket(PGconn *c)
{
    int fd = PQ->socket(c);
    return pqri_nb_socket(c, fd, &fd), fd;
}

static PGconn *start(const char *conninfo)
{
    struct pqri_conninfo ci;
    bool passed;
    PGconn *c;
    if (pqri_conninfo_parse(&ci, conninfo) < 0)
        return NULL;
    c = pqri_connect(r, PQ, ci.call_kw, ci.call_val, ci.call_expand, PQRI_NONBLOCKING, PQR_ROLE_AUTO, &passed);
    pqri_conninfo_release(&ci);
    return passed ? NULL : c;
}

/* Poll until done, or for at most ms; then `hook` once when `at_ms` has passed. */
static void drive(struct run *u, int ms, int at_ms, void (*hook)(void))
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLOUT};
    long long t0 = pqri_mono_ms();

    u->ps = PGRES_POLLING_WRITING;
    epoll_ctl(ep, EPOLL_CTL_ADD, u->fd, &ev);
    while (u->ps != PGRES_POLLING_OK && u->ps != PGRES_POLLING_FAILED && pqri_mono_ms() - t0 < ms) {
        struct epoll_event got;
        ev.events = u->ps == PGRES_POLLING_READING ? EPOLLIN : EPOLLOUT;
        if (epoll_ctl(ep, EPOLL_CTL_MOD, u->fd, &ev) < 0) {
            u->mod_failed = true;
            break;
        }
        if (hook && at_ms >= 0 && pqri_mono_ms() - t0 >= at_ms) {
            hook();
            hook = NULL;
        }
        if (epoll_wait(ep, &got, 1, 20) <= 0)
            continue;
        long long c0 = pqri_mono_ms();
        u->ps = caller_poll(u->conn);
        if (pqri_mono_ms() - c0 > u->longest_ms)
            u->longest_ms = (double)(pqri_mono_ms() - c0);
        if (u->ps != PGRES_POLLING_FAILED && PQ->status(u->conn) == CONNECTION_BAD)
            u->bad_between = true;
    }
    u->took_ms = pqri_mono_ms() - t0;
    close(ep);
}

static bool same_file(int a, int b)
{
    struct stat x, y;
    return a >= 0 && b >= 0 && fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

static int P[NPORTS]; /* the members' ports */
static void promote_second(void)
{
    SETK(1, LEADER);
    SETK(0, STANDBY);
    inject(P[1], P, 3);
}

static void finish(struct run *u)
{
    pqri_nb_forget(u->conn);
    PQ->finish(u->conn);
}

int main(void)
{
    struct pqr_settings s;
    char err[256], door[64], ci[160];
    pthread_t th;
    struct pqri_libpq pq = fake_libpq();
    int refused;

    PQ = &pq;
    if (!mkdtemp(dir))
        return 1;
    for (int i = 0; i < NPORTS; i++)
        srv[i].lfd = -1;
    /* three members (their kind set per case), a door that holds, a silent one */
    for (int i = 0; i < 3; i++)
        srv[i].lfd = listen_on(64, &srv[i].port), P[i] = srv[i].port;
    srv[3].lfd = listen_on(64, &srv[3].port), SETK(3, HELD);
    srv[4].lfd = listen_on(0, &srv[4].port), SETK(4, SILENT);
    { /* fill the silent one's backlog: further SYNs are dropped */
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv[4].port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        for (int i = 0; i < 2; i++) {
            int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            (void)!connect(c, (struct sockaddr *)&a, sizeof a);
        }
        usleep(100000);
    }
    refused = refusing_port();
    pthread_create(&th, NULL, serve, NULL);
    snprintf(door, sizeof door, "127.0.0.1:%d", srv[3].port);

    pqri_settings_init(&s);
    pqri_settings_set(&s, "PATRONI", "http://127.0.0.1:9", err, sizeof err);
    pqri_settings_set(&s, "RW", door, err, sizeof err);
    pqri_settings_set(&s, "CACHE_DIR", dir, err, sizeof err);
    pqri_settings_set(&s, "REST_TIMEOUT_MS", "100", err, sizeof err);
    pqri_log_set(getenv("NB_DEBUG") ? PQRI_LOG_DEBUG : PQRI_LOG_ERROR);
    pqri_settings_finish(&s, err, sizeof err);
    r = pqri_views_new(&s, err, sizeof err);
    struct pqri_views *other = pqri_views_new(&s, err, sizeof err); /* another process of the host */
    pqri_settings_clear(&s);
    ok(r != NULL, "router opens (%s)", r ? "" : err);
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=app user=u connect_timeout=2", srv[3].port);

    /* 1. the first member answers and refuses the role; the second leads */
    SETK(0, STANDBY), SETK(1, LEADER), SETK(2, STANDBY);
    inject(P[0], P, 3); /* a view a moment old: it still names the first as leader */
    usleep(150000);
    int before = open_fds(), held0 = __atomic_load_n(&held_open, __ATOMIC_RELAXED);
    struct run u = {.conn = start(ci)};
    ok(u.conn != NULL, "a non-blocking connect to the front door is routed");
    u.fd = caller_socket(u.conn);
    int first_sock = PQ->socket(u.conn);
    ok(u.fd >= 0 && u.fd != first_sock && same_file(u.fd, first_sock),
       "the caller is given a number of its own for the connection's socket (%d, libpq's %d)", u.fd, first_sock);
    drive(&u, 5000, -1, NULL);
    ok(u.ps == PGRES_POLLING_OK && fake(u.conn)->idx == 1, "first member refuses the role: lands on the second");
    ok(!u.mod_failed, "the caller's registration of the socket held throughout (EPOLL_CTL_MOD never failed)");
    ok(same_file(u.fd, PQ->socket(u.conn)), "the caller's number is libpq's socket's file at the end");
    ok(caller_socket(u.conn) == u.fd, "PQsocket() keeps giving the caller's number after CONNECTION_OK");
    finish(&u);
    is_int(ours_open(held0), before, "PQfinish: no descriptor left behind");

    /* 2. the first member refuses TCP */
    int ports2[3] = {refused, P[1], P[2]};
    inject(refused, ports2, 3);
    u = (struct run){.conn = start(ci)};
    u.fd = caller_socket(u.conn);
    drive(&u, 5000, -1, NULL);
    ok(u.ps == PGRES_POLLING_OK && PQ->port(u.conn) && atoi(PQ->port(u.conn)) == P[1] && !u.mod_failed,
       "first member refuses TCP: lands on the leader, the registration held");
    finish(&u);
    { /* ... and the host's other processes learn it: written by the waker, not the caller's poll */
        struct pqr_topology *cur = pqri_view_snapshot(pqri_views_at(r, 0), 0);
        struct pqri_failure fo[16];
        bool shared = false;
        pqri_view_set(pqri_views_at(other, 0), cur);
        pqri_topo_unref(cur);
        for (int i = 0; i < 300 && !shared; i++) {
            size_t n = pqri_view_failures(pqri_views_at(other, 0), fo, 16);
            for (size_t k = 0; k < n; k++)
                shared = shared || (fo[k].port == refused && fo[k].down);
            if (!shared)
                usleep(10000);
        }
        ok(shared, "the member that refused is shared with the host's other processes");
    }

    /* 3. the first member is silent: ended at connect_timeout by the waker, remembered */
    int ports3[3] = {srv[4].port, P[1], P[2]};
    inject(srv[4].port, ports3, 3);
    u = (struct run){.conn = start(ci)};
    u.fd = caller_socket(u.conn);
    drive(&u, 10000, -1, NULL);
    ok(u.ps == PGRES_POLLING_OK && atoi(PQ->port(u.conn)) == P[1] && u.took_ms >= 1800 && u.took_ms < 6000,
       "first member silent: ended at its connect_timeout (2 s), lands on the leader (%lld ms)", u.took_ms);
    finish(&u);
    struct pqri_failure fl[16];
    size_t nf = pqri_view_failures(pqri_views_at(r, 0), fl, 16);
    bool silent_noted = false;
    for (size_t i = 0; i < nf; i++)
        silent_noted = silent_noted || (fl[i].port == srv[4].port && fl[i].silent);
    ok(silent_noted, "the silent member is remembered as silent for this host (%zu failures noted)", nf);
    u = (struct run){.conn = start(ci)};
    u.fd = caller_socket(u.conn);
    drive(&u, 10000, -1, NULL);
    ok(u.ps == PGRES_POLLING_OK && u.took_ms < 1000, "the next connect does not wait for it again (%lld ms)", u.took_ms);
    finish(&u);

    /* 4. a switchover: every member refuses read-write, the door holds; the view changes */
    SETK(0, STANDBY), SETK(1, STANDBY), SETK(2, STANDBY);
    inject(P[0], P, 3);
    uint64_t st0[PQRI_STAT_COUNT], st1[PQRI_STAT_COUNT];
    pqri_view_stats(pqri_views_at(r, 0), st0);
    u = (struct run){.conn = start(ci)};
    u.fd = caller_socket(u.conn);
    long long t_change = 0;
    drive(&u, 600, -1, NULL);
    ok(u.ps != PGRES_POLLING_FAILED && u.ps != PGRES_POLLING_OK && fake(u.conn)->resets >= 2 &&
       fake(u.conn)->resets <= 8,
       "no member takes the role: the connect pauses and tries again every 100 ms, not waiting on the door "
       "(%d rounds in 600 ms; the leader it started with is not asked more often)",
       fake(u.conn)->resets);
    t_change = pqri_mono_ms();
    promote_second();
    drive(&u, 5000, -1, NULL);
    long long after = pqri_mono_ms() - t_change;
    ok(u.ps == PGRES_POLLING_OK && atoi(PQ->port(u.conn)) == P[1], "the new leader is found on the same PGconn");
    ok(after < 1000, "within a round of the view change (%lld ms; rounds every 100 ms)", after);
    ok(!u.mod_failed && !u.bad_between, "one registration throughout; PQstatus() never read BAD between polls");
    ok(u.longest_ms < 200, "no PQconnectPoll call waited (longest %.0f ms)", u.longest_ms);
    pqri_view_stats(pqri_views_at(r, 0), st1);
    ok(st1[PQRI_STAT_DOOR_SKIPPED] > st0[PQRI_STAT_DOOR_SKIPPED] && st1[PQRI_STAT_RETRIES] > st0[PQRI_STAT_RETRIES],
       "counted: door_skipped +%llu, retries +%llu",
       (unsigned long long)(st1[PQRI_STAT_DOOR_SKIPPED] - st0[PQRI_STAT_DOOR_SKIPPED]),
       (unsigned long long)(st1[PQRI_STAT_RETRIES] - st0[PQRI_STAT_RETRIES]));
    finish(&u);

    /* 4b. a crash: the old leader refuses TCP, then leaves the view, which names a replica that
     * holds the leader key and refuses writes while it is promoted */
    int crash[3] = {refused, P[1], P[2]};
    SETK(1, STANDBY), SETK(2, STANDBY);
    inject(refused, crash, 3);
    u = (struct run){.conn = start(ci)};
    u.fd = caller_socket(u.conn);
    drive(&u, 300, -1, NULL);
    ok(u.ps != PGRES_POLLING_FAILED && u.ps != PGRES_POLLING_OK, "crash: no leader, the connect pauses between rounds");
    int a1 = srv[1].answers, a2 = srv[2].answers;
    inject(P[1], crash + 1, 2); /* the old leader's keys expired: a smaller view than the connect's list */
    drive(&u, 500, -1, NULL);
    int n1 = srv[1].answers - a1, n2 = srv[2].answers - a2;
    ok(u.ps != PGRES_POLLING_FAILED && u.ps != PGRES_POLLING_OK, "... the new leader refuses writes while promoted");
    /* Asked alone between the full rounds: a ratio, which a slow machine slows on both sides
     * (rounds of 100 ms that walk both ask each as often). */
    ok(n1 >= 2 * n2 && n2 >= 1,
       "... and is asked alone between the full rounds (%d times in 500 ms, the other replica %d times)", n1, n2);
    ok(n2 <= 7, "... the other replica, which refused, only in the full rounds (%d times)", n2);
    SETK(1, LEADER);
    long long t_lead = pqri_mono_ms();
    drive(&u, 3000, -1, NULL);
    ok(u.ps == PGRES_POLLING_OK && atoi(PQ->port(u.conn)) == P[1] && !u.mod_failed,
       "... and takes the connect once it takes writes (%lld ms later), on the caller's one registration",
       pqri_mono_ms() - t_lead);
    finish(&u);

    /* 5. the budget: no leader ever: after connect_timeout (2 s) the door is left to answer */
    SETK(0, STANDBY), SETK(1, STANDBY);
    inject(P[0], P, 3);
    u = (struct run){.conn = start(ci)};
    u.fd = caller_socket(u.conn);
    drive(&u, 4000, -1, NULL);
    ok(u.ps == PGRES_POLLING_READING && fake(u.conn)->idx == 3 && fake(u.conn)->st == CONNECTION_AWAITING_RESPONSE,
       "no leader within the budget: the connect goes on to the front door (entry %d)", fake(u.conn)->idx);
    finish(&u);

    /* 6. a password refused by the first member: libpq stops there, and so does the connect */
    SETK(0, AUTHFAIL), SETK(1, LEADER);
    inject(P[0], P, 3);
    u = (struct run){.conn = start(ci)};
    u.fd = caller_socket(u.conn);
    drive(&u, 4000, -1, NULL);
    ok(u.ps == PGRES_POLLING_FAILED && fake(u.conn)->password_tries == 1 && u.took_ms < 1000,
       "a member that refuses the password (libpq says so) ends the connect at once (%d tries, %lld ms)",
       fake(u.conn)->password_tries, u.took_ms);
    finish(&u);
    /* ... in a language the rule does not read: one more round, never more */
    auth_message = "FATAL:  Passwort-Authentifizierung f\xc3\xbcr Benutzer \"u\" fehlgeschlagen";
    u = (struct run){.conn = start(ci)};
    u.fd = caller_socket(u.conn);
    drive(&u, 4000, -1, NULL);
    ok(u.ps == PGRES_POLLING_FAILED && fake(u.conn)->password_tries == 2 && u.took_ms < 1000,
       "... in another language: tried twice at most, not for the budget (%d tries, %lld ms)",
       fake(u.conn)->password_tries, u.took_ms);
    finish(&u);
    auth_message = NULL;

    /* 6b. the old leader shutting down ends the connection before authentication: that is a leader
     * change, not a refusal; rounds until the new leader takes the connect */
    SETK(0, SHUTDOWN), SETK(1, STANDBY);
    inject(P[0], P, 3);
    u = (struct run){.conn = start(ci)};
    u.fd = caller_socket(u.conn);
    drive(&u, 300, -1, NULL);
    ok(u.ps != PGRES_POLLING_FAILED && fake(u.conn)->resets >= 1, "the first member ends the startup (shutting down): rounds (%d)",
       fake(u.conn)->resets);
    promote_second();
    drive(&u, 4000, -1, NULL);
    ok(u.ps == PGRES_POLLING_OK && atoi(PQ->port(u.conn)) == P[1] && !u.bad_between,
       "... and the new leader takes the connect: no failed connect in the switchover");
    finish(&u);

    /* 7. a member that accepts TCP and then says nothing is not ended by us (libpq would fail the
     * whole connect on it): the caller's own timeout applies, as without the shim */
    SETK(0, HELD), SETK(1, LEADER);
    inject(P[0], P, 3);
    u = (struct run){.conn = start(ci)};
    u.fd = caller_socket(u.conn);
    drive(&u, 2800, -1, NULL);
    ok(u.ps == PGRES_POLLING_READING && fake(u.conn)->idx == 0, "a member hung after the TCP connect is left to the caller's timeout");
    finish(&u);
    SETK(0, STANDBY), SETK(1, STANDBY);

    /* 8. PQfinish in the middle of a pause; 9. a caller that never polls again */
    inject(P[0], P, 3);
    usleep(300000);
    before = open_fds(), held0 = __atomic_load_n(&held_open, __ATOMIC_RELAXED);
    u = (struct run){.conn = start(ci)};
    u.fd = caller_socket(u.conn);
    drive(&u, 300, -1, NULL);
    ok(fake(u.conn)->resets >= 1, "(in its rounds: %d)", fake(u.conn)->resets);
    finish(&u);
    is_int(ours_open(held0), before, "PQfinish during a pause: every descriptor released");
    u = (struct run){.conn = start(ci)};
    u.fd = caller_socket(u.conn);
    drive(&u, 300, -1, NULL);
    usleep(500000); /* the waker ends the pause meanwhile; nobody polls */
    struct pollfd pf = {u.fd, POLLIN, 0};
    ok(poll(&pf, 1, 0) == 1, "a paused connect nobody polls: its socket is made ready at the pause's end");
    finish(&u);
    is_int(ours_open(held0), before, "... and PQfinish releases everything");

    pqri_nb_drop_views(r);
    pqri_views_free(r);
    pqri_views_free(other);
    return done_testing();
}
