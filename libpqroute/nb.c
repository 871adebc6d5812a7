/*
 * Non-blocking routed connects (PQconnectStart* and the caller's own PQconnectPoll loop) under the
 * connect policy of blocking ones, on one socket.
 *
 * One socket. Event loops take the socket PQsocket() returns after PQconnectStart* and register it
 * once; epoll keys a registration on the open file and the number. A routed connect is a
 * multi-host connect: libpq closes the socket of each host that fails and opens another, and such a
 * caller would wait on a registration that no longer exists. So the caller is given a number of
 * our own (`fd`, PQsocket() is wrapped), a second reference to the first socket's open file, and
 * that file is the connection's for its whole life. Whenever libpq has opened a new socket for its
 * next host — always still in CONNECTION_STARTED: a TCP connect in progress, nothing sent — the
 * file is disconnected (connect() with AF_UNSPEC, which Linux supports for TCP), connected to the
 * same address, and put under libpq's new number with dup3(), which closes libpq's fresh socket.
 * libpq goes on with its number and never notices; the caller's number never changes and is never
 * released while the connection lives, so no other thread can take it in between. (Only a host of
 * another address family cannot be joined this way: the caller's number is then made to follow
 * libpq's new socket, and a caller that registered the old one once sees that fail at once.)
 *
 * Time of our own. The caller runs libpq only when the socket is ready, and the policy needs time:
 * a member silent past connect_timeout (libpq's non-blocking connect has no timeout of its own) and
 * the pause between rounds while a leader changes. The waker thread keeps those deadlines. During a
 * pause the caller's file is connected to a listening socket of ours on loopback, where nothing
 * arrives; at the deadline, or as soon as the view changes, the waker makes it ready with
 * shutdown(2). The same call ends a connect in progress to a silent member (SYN_SENT: the next poll
 * reads ECONNRESET and libpq moves to its next host, as its own connect_timeout would make it).
 * A round after a pause is PQresetStart(): the same list of hosts, from the first, on the same
 * PGconn the caller holds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nb.h"
#include "failures.h"
#include "refresher.h"
#include "log.h"

#define TICK_MS 5 /* how often the waker looks at the views while a connect pauses */
#define MIN_WAIT_MS 2000
#define BUCKETS 256

enum wake { WAKE_NONE, WAKE_PAUSE, WAKE_TIMEOUT };

struct nb {
    struct nb *next;
    PGconn *conn;
    struct pqri_plan *p; /* NULL once landed: only the caller's number is kept */
    const struct pqri_libpq *pq;
    int fd;    /* the caller's number: ours, a reference to the connection's file */
    int old;   /* a file the caller's number named before libpq left its family (or -1) */
    dev_t dev; /* that file's identity */
    ino_t ino;
    int family;
    bool busy;      /* a poll of it is running: the waker leaves it alone */
    bool paused;    /* connected to our listener, waiting for the next round */
    bool landed;    /* CONNECTION_OK: only the caller's number is kept, until PQfinish */
    bool woken;     /* the waker made the socket ready */
    bool timed_out; /* ... ending the attempt at `cur` */
    bool tcp;       /* `cur`'s TCP connect is in progress (CONNECTION_STARTED) */
    enum wake wake;
    long long due;
    uint64_t pause_gen; /* a pause ends early when the view is no longer this one */
    long long members_end, wait_end, since;
    int host_ms;
    int cur; /* the entry libpq is on: a candidate, PQRI_DOOR or PQRI_NONE */
    bool panicked, retried;
    /* This round asks the view's leader alone (pqri_plan_next_round): it ends once libpq has
     * left that candidate (`probe_lead`) without landing. */
    bool probe, probe_next, at_lead, probe_over;
    int probe_lead;
    struct pqri_login login; /* the login rule's memory (pqri_plan_login_ends) */
    bool answered[PQRI_MAX_MEMBERS];
    bool authed[PQRI_MAX_MEMBERS]; /* seen past authentication in this connect */
    /* Members found down in the caller's poll, for the waker to write to the host cache (the
     * caller's thread does no file I/O: a rename can wait on the disk for seconds). */
    struct pqri_view *later_v;
    struct pqri_failure later[2 * PQRI_MAX_MEMBERS];
    size_t nlater;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static struct nb *table[BUCKETS];
static int live; /* entries: the fast path of PQconnectPoll, PQsocket and PQfinish */
static int npaused;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static pid_t waker_pid; /* the process whose waker runs (a fork child has none) */
static bool waker_running;
/* When the waker, waiting, will look next (LLONG_MIN while it is looking): a poll wakes it only
 * when it needs it sooner. Each wake takes the lock, and a waker preempted while it holds the lock
 * (a busy machine) makes the caller's next PQconnectPoll wait for it. */
static long long waker_due = LLONG_MIN;
/* Members found down, waiting for the waker to share them through the host cache (under lock). A
 * full queue drops the newest: sharing is a courtesy to the other processes; this process already
 * remembers them. */
#define DOWNQ 64
static struct down {
    struct pqri_view *v;
    struct pqri_failure f;
} downq[DOWNQ];
static size_t ndownq;
#define SHARE_PER_ROUND 4
/* The waker is out of the lock with views in hand (reading paused connects' views, or writing
 * members found down): a router's close waits for it to come back (`shared`). */
static bool outside;
static pthread_cond_t shared = PTHREAD_COND_INITIALIZER;
/* The listening sockets a paused connect is connected to: 127.0.0.1 and ::1, made on first need. */
static struct {
    int fd;
    dev_t dev;
    ino_t ino;
    struct sockaddr_storage addr;
    socklen_t len;
} listeners[2] = {{.fd = -1}, {.fd = -1}};

static unsigned bucket(const PGconn *conn)
{
    uintptr_t h = (uintptr_t)conn;
    return (unsigned)((h >> 4) ^ (h >> 12)) % BUCKETS;
}

static bool same_file(int fd, dev_t dev, ino_t ino)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

/* A daemon that closes every descriptor may have closed ours: never act on a number blindly. */
static bool fd_ok(const struct nb *nb)
{
    return same_file(nb->fd, nb->dev, nb->ino);
}

static void disconnect(int fd)
{
    struct sockaddr sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNSPEC;
    (void)connect(fd, &sa, sizeof sa);
}

static long long min_ll(long long a, long long b)
{
    return a < b ? a : b;
}

/* ---- the waker ---- */

static void *waker(void *arg);

static void nb_prepare(void)
{
    pthread_mutex_lock(&lock);
}
static void nb_parent(void)
{
    pthread_mutex_unlock(&lock);
}
/* A fork child has no waker, and the connects in progress are the parent's: it starts afresh
 * (the entries are left, not freed: their PGconns are the parent's business). */
static void nb_child(void)
{
    ndownq = 0; /* the parent's to write */
    outside = false;
    pthread_cond_init(&shared, NULL);
    /* Not the child's to keep: the parent's listeners (the child's waker would accept the
     * parent's paused connects) and its references to the parent's connections. */
    for (int i = 0; i < 2; i++)
        if (listeners[i].fd >= 0 && same_file(listeners[i].fd, listeners[i].dev, listeners[i].ino))
            close(listeners[i].fd), listeners[i].fd = -1;
    for (unsigned b = 0; b < BUCKETS; b++)
        for (struct nb *nb = table[b]; nb; nb = nb->next) {
            if (fd_ok(nb))
                close(nb->fd);
            if (nb->old >= 0)
                close(nb->old);
        }
    pthread_mutex_init(&lock, NULL);
    memset(table, 0, sizeof table);
    live = npaused = 0;
    waker_running = false;
    waker_pid = 0;
}
static void register_atfork(void)
{
    pthread_atfork(nb_prepare, nb_parent, nb_child);
}

/* Under lock. */
static void waker_start(void)
{
    pthread_condattr_t ca;
    pthread_attr_t ta;
    pthread_t th;

    if (waker_pid == getpid())
        return;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the application's signals are not the waker's */
    waker_running = pthread_create(&th, &ta, waker, NULL) == 0;
    if (waker_running) /* a failed start is tried again by the next connect */
        waker_pid = getpid();
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&ta);
    static bool warned;
    if (!waker_running && !warned) {
        warned = true;
        PQRI_WARN("cannot start the thread that keeps non-blocking connects' deadlines: they go "
                  "through libpq's own host list (tried again at the next one)");
    }
}

/* The listener for family, made if needed; -1 if none can be (no loopback here). Under lock. */
static int listener_for(int family)
{
    int i = family == AF_INET6, fd;
    struct sockaddr_storage ss;
    struct stat st;
    socklen_t len;

    if (listeners[i].fd >= 0 && same_file(listeners[i].fd, listeners[i].dev, listeners[i].ino))
        return listeners[i].fd;
    listeners[i].fd = -1;
    if ((fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    /* Not accepted while anything pauses: a connect beyond the backlog waits in SYN_SENT, which
     * is as idle as an established one. */
    listeners[i].len = sizeof listeners[i].addr;
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&listeners[i].addr, &listeners[i].len) < 0 ||
        fstat(fd, &st) < 0) {
        close(fd);
        return -1;
    }
    listeners[i].fd = fd;
    listeners[i].dev = st.st_dev;
    listeners[i].ino = st.st_ino;
    return fd;
}

/* With nothing paused, the connects queued on the listeners are all over: accept and close them. */
static void drain_listeners(void)
{
    for (int i = 0; i < 2; i++) {
        int c;
        if (listeners[i].fd < 0 || !same_file(listeners[i].fd, listeners[i].dev, listeners[i].ino))
            continue;
        while ((c = accept4(listeners[i].fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
            close(c);
    }
}

/* A member's connect still waiting for its SYN to be answered: the only state in which ending it
 * makes libpq move on (ECONNRESET); past it, libpq would fail the whole connect. */
static bool syn_sent(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_SYN_SENT;
}

#define MAX_VIEWS 16
static void *waker(void *arg)
{
    struct {
        struct pqri_view *v;
        uint64_t gen;
    } views[MAX_VIEWS];
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        /* The views of paused connects, looked at without our lock held (a view may read the
         * host cache or log): a pause ends as soon as its view changes. */
        size_t nv = 0;
        for (unsigned b = 0; npaused && b < BUCKETS; b++)
            for (struct nb *nb = table[b]; nb; nb = nb->next) {
                if (nb->busy || nb->wake != WAKE_PAUSE || !nb->p)
                    continue;
                size_t k = 0;
                while (k < nv && views[k].v != nb->p->v)
                    k++;
                if (k == nv && nv < MAX_VIEWS)
                    views[nv++].v = nb->p->v;
            }
        outside = true;
        pthread_mutex_unlock(&lock);
        for (size_t k = 0; k < nv; k++) {
            struct pqr_topology *t = pqri_view_snapshot(views[k].v, 0);
            views[k].gen = t ? t->gen : 0;
            pqri_topo_unref(t);
        }
        pthread_mutex_lock(&lock);
        outside = false;
        pthread_cond_broadcast(&shared);
        long long now = pqri_mono_ms(), next = LLONG_MAX;
        for (unsigned b = 0; live && b < BUCKETS; b++)
            for (struct nb *nb = table[b]; nb; nb = nb->next) {
                if (nb->busy || nb->wake == WAKE_NONE || !nb->p)
                    continue;
                bool fire = now >= nb->due;
                for (size_t k = 0; !fire && nb->wake == WAKE_PAUSE && k < nv; k++)
                    fire = views[k].v == nb->p->v && views[k].gen && views[k].gen != nb->pause_gen;
                if (!fire) {
                    next = min_ll(next, nb->wake == WAKE_PAUSE ? now + TICK_MS : nb->due);
                    continue;
                }
                if (nb->wake == WAKE_PAUSE && fd_ok(nb)) {
                    (void)shutdown(nb->fd, SHUT_RD);
                    nb->woken = true;
                } else if (nb->wake == WAKE_TIMEOUT && fd_ok(nb) && syn_sent(nb->fd)) {
                    (void)shutdown(nb->fd, SHUT_RDWR);
                    nb->timed_out = nb->woken = true;
                }
                nb->wake = WAKE_NONE;
            }
        if (!npaused)
            drain_listeners();
        /* The host cache, after the deadlines (a write may wait on the disk): a few of the
         * members found down per round, one router's at a time, the rest left queued. */
        struct down downs[SHARE_PER_ROUND];
        size_t nd = 0, k = 0;
        struct pqri_views *owner = ndownq ? pqri_view_views(downq[0].v) : NULL;
        for (size_t i = 0; i < ndownq; i++)
            if (nd < SHARE_PER_ROUND && pqri_view_views(downq[i].v) == owner)
                downs[nd++] = downq[i];
            else
                downq[k++] = downq[i];
        ndownq = k;
        if (nd) {
            outside = true;
            pthread_mutex_unlock(&lock);
            for (size_t i = 0; i < nd; i++)
                pqri_view_share_down(downs[i].v, &downs[i].f);
            pthread_mutex_lock(&lock);
            outside = false;
            pthread_cond_broadcast(&shared);
            continue; /* the table may have changed meanwhile: look again before waiting */
        }
        waker_due = next;
        if (next == LLONG_MAX) {
            pthread_cond_wait(&cond, &lock);
        } else {
            struct timespec ts = {.tv_sec = next / 1000, .tv_nsec = (next % 1000) * 1000000L};
            pthread_cond_timedwait(&cond, &lock, &ts);
        }
        waker_due = LLONG_MIN;
    }
    return NULL;
}

/* ---- one connect ---- */

/* The address libpq is connecting to now, in the file's family (scoped IPv6 literals too). */
static bool target(const struct nb *nb, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *ip = nb->pq->hostaddr(nb->conn), *port = nb->pq->port(nb->conn);
    struct addrinfo hints, *ai = NULL;
    bool found;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = nb->family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (!ip || !ip[0] || !port || !port[0] || getaddrinfo(ip, port, &hints, &ai) != 0)
        return false;
    found = ai && ai->ai_addrlen <= sizeof *ss;
    if (found) {
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        *len = ai->ai_addrlen;
    }
    freeaddrinfo(ai);
    return found;
}

/* After every call into libpq: libpq's socket is the connection's file. false: our number is
 * gone (a program that closed it), nothing more can be done on it. */
static bool keep_socket(struct nb *nb)
{
    int s = nb->pq->socket(nb->conn);
    struct sockaddr_storage ss;
    socklen_t len;
    struct stat st;

    if (!fd_ok(nb))
        return false;
    if (s < 0 || same_file(s, nb->dev, nb->ino))
        return true; /* libpq let go of it (its walk failed), or it is the same */
    if (nb->pq->status(nb->conn) == CONNECTION_STARTED && target(nb, &ss, &len)) {
        disconnect(nb->fd);
        if (connect(nb->fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS)
            PQRI_DEBUG("non-blocking connect: %s",
                       strerror(errno)); /* libpq's next step reports it */
        return dup3(nb->fd, s, O_CLOEXEC) == s;
    }
    /* Another family (or already past the TCP connect): our number follows libpq's socket. The
     * file it named is kept, shut down, so that a registration of it reports an error (EPOLLHUP)
     * rather than nothing ever again. */
    if (fstat(s, &st) < 0)
        return false;
    if (nb->old < 0 && (nb->old = fcntl(nb->fd, F_DUPFD_CLOEXEC, 0)) >= 0)
        (void)shutdown(nb->old, SHUT_RDWR);
    if (dup3(s, nb->fd, O_CLOEXEC) != nb->fd)
        return false;
    nb->dev = st.st_dev;
    nb->ino = st.st_ino;
    len = sizeof ss;
    if (getsockname(nb->fd, (struct sockaddr *)&ss, &len) == 0)
        nb->family = ss.ss_family;
    PQRI_INFO(
        "a non-blocking connect moved to a socket of another kind: the caller's fd %d follows it "
        "(an event loop that registered it once must register it again)",
        nb->fd);
    return true;
}

static bool any_answered(const struct nb *nb)
{
    for (size_t i = 0; i < nb->p->ncands; i++)
        if (nb->answered[i])
            return true;
    return false;
}

/* Where libpq is now; what the entry it left did: refused or reset (down), ended by the waker past
 * connect_timeout (silent), or answered. */
static void observe(struct nb *nb)
{
    struct pqri_plan *p = nb->p;
    int e = pqri_plan_entry(p, nb->conn);
    ConnStatusType st = nb->pq->status(nb->conn);

    nb->tcp = e != PQRI_NONE && st == CONNECTION_STARTED;
    if (e == PQRI_NONE)
        return;
    if (e != nb->cur) {
        if (nb->cur >= 0 && !nb->answered[nb->cur])
            pqri_plan_note_down(p, &p->cands[nb->cur], nb->timed_out,
                                nb->nlater < PQRI_MAX_MEMBERS ? &nb->later[nb->nlater++] : NULL);
        nb->cur = e;
        nb->since = pqri_mono_ms();
        nb->timed_out = false;
    }
    if (nb->probe) {
        nb->probe_over = nb->probe_over || (nb->at_lead && e != nb->probe_lead);
        nb->at_lead = e == nb->probe_lead;
    }
    if (e >= 0) {
        nb->answered[e] = nb->answered[e] || pqri_plan_answered(st);
        nb->authed[e] = nb->authed[e] || pqri_plan_authed(st);
    }
}

/* The waker's deadline for the attempt at a member: its connect_timeout, within the members' share
 * of the budget. (The front door has its own: the caller's.) Under lock. */
static void arm(struct nb *nb)
{
    /* Only a TCP connect in progress: past it, the waker could not end the attempt anyway (see
     * the waker), and a deadline already past would wake it at every poll of a slow login. */
    if (!nb->p || nb->landed || nb->paused || nb->host_ms <= 0 || nb->cur < 0 || !nb->tcp)
        return;
    nb->wake = WAKE_TIMEOUT;
    nb->due = min_ll(nb->since + nb->host_ms, nb->members_end);
    if (pqri_plan_found_silent(nb->p, (size_t)nb->cur))
        nb->due = nb->since; /* found silent earlier in this connect: not waited for twice */
}

/* Under lock: nb's deadline (or its pause, looked at every TICK_MS) comes before the waker will
 * look again, or a resume left listeners to drain: wake it. */
static void wake_waker_if_needed(const struct nb *nb, bool drain)
{
    long long when = LLONG_MAX;

    if (nb && nb->wake == WAKE_PAUSE)
        when = pqri_mono_ms() + TICK_MS;
    else if (nb && nb->wake == WAKE_TIMEOUT)
        when = nb->due;
    if (when < waker_due || ((drain || ndownq) && waker_due != LLONG_MIN))
        pthread_cond_signal(&cond);
}

/* Wait for the next round (a new view, or pqri_plan_next_round()'s pause) without blocking the
 * caller: the connection's file goes idle on our listener. `otherwise` if that cannot be. */
static PostgresPollingStatusType pause_connect(struct nb *nb, PostgresPollingStatusType otherwise)
{
    struct pqri_plan *p = nb->p;
    struct sockaddr_storage addr;
    socklen_t len = 0;
    int l;

    pthread_mutex_lock(&lock);
    l = waker_running && nb->pq->reset_start ? listener_for(nb->family) : -1;
    if (l >= 0) {
        addr = listeners[nb->family == AF_INET6].addr;
        len = listeners[nb->family == AF_INET6].len;
    }
    pthread_mutex_unlock(&lock);
    /* A walk that failed leaves the PGconn CONNECTION_BAD, which callers check between polls
     * (psycopg 3 raises at once): the next round is started now, and its socket taken over. */
    if (l < 0 ||
        (nb->pq->status(nb->conn) == CONNECTION_BAD && !nb->pq->reset_start(nb->pq, nb->conn)))
        return otherwise;
    if (!nb->panicked) {
        nb->panicked = true;
        pqri_view_panic(p->v, p->t->gen);
    }
    pqri_plan_note_failures(p, p->ncands);
    disconnect(nb->fd);
    if (connect(nb->fd, (struct sockaddr *)&addr, len) < 0 && errno != EINPROGRESS)
        return PGRES_POLLING_FAILED; /* the file is no longer libpq's connect */
    int s = nb->pq->socket(nb->conn);
    if (s >= 0 && !same_file(s, nb->dev, nb->ino) && dup3(nb->fd, s, O_CLOEXEC) != s)
        return PGRES_POLLING_FAILED;
    nb->paused = true;
    nb->woken = false;
    nb->wake = WAKE_PAUSE;
    nb->pause_gen = p->t->gen;
    bool refused = pqri_plan_leader_refused(p, nb->answered, nb->authed, nb->cur,
                                            nb->pq->error_message(nb->conn));
    nb->due =
        min_ll(pqri_mono_ms() + pqri_plan_next_round(p, refused, &nb->probe_next), nb->wait_end);
    return PGRES_POLLING_READING;
}

/* The next round, on the same PGconn and the same file: libpq's list again from its first host. */
static PostgresPollingStatusType resume(struct nb *nb)
{
    struct pqri_plan *p = nb->p;
    struct pqr_topology *t = pqri_view_snapshot(p->v, 0);
    bool new_view = t && t->gen != p->t->gen;

    if (t)
        pqri_plan_adopt(p, t); /* the host list stays: its members are matched to the new view */
    nb->probe = nb->probe_next && !new_view;
    nb->probe_lead = pqri_plan_leader_at(p);
    nb->at_lead = nb->probe_over = false;
    nb->paused = false;
    nb->cur = PQRI_NONE; /* a new walk: each member's deadline from its own start */
    nb->timed_out = false;
    disconnect(nb->fd);
    pqri_view_stat(p->v, PQRI_STAT_RETRIES);
    if (new_view || !nb->retried)
        pqri_plan_describe(
            p, "retrying (non-blocking, on the caller's socket) while the leader changes:");
    nb->retried = true;
    return nb->pq->reset_start(nb->pq, nb->conn) ? PGRES_POLLING_WRITING : PGRES_POLLING_FAILED;
}

/* The policy, after libpq's step: done, go on, or pause for another round. */
static PostgresPollingStatusType decide(struct nb *nb, PostgresPollingStatusType ps, bool *done)
{
    struct pqri_plan *p = nb->p;
    const struct pqr_settings *s = pqri_views_settings(pqri_view_views(p->v));
    ConnStatusType st = nb->pq->status(nb->conn);
    long long now = pqri_mono_ms();
    bool any = any_answered(nb), in_time = now < nb->wait_end && now < nb->members_end;

    if (ps == PGRES_POLLING_OK) {
        pqri_plan_note_failures(p, nb->cur >= 0 ? (size_t)nb->cur : p->ncands);
        if (nb->cur == PQRI_DOOR)
            pqri_view_door_answered(p->v);
        PQRI_DEBUG("landed on %s:%s (non-blocking)", nb->pq->hostaddr(nb->conn),
                   nb->pq->port(nb->conn));
        *done = true;
        return ps;
    }
    /* A probe of a promoting leader: it refused again; the others refused a moment ago. */
    if (nb->probe_over && ps != PGRES_POLLING_FAILED && in_time) {
        ps = pause_connect(nb, ps);
        *done = ps == PGRES_POLLING_FAILED;
        return ps;
    }
    /* At the front door after members answered and refused the role: a leader change. The door
     * leads to the same servers, and a proxy whose backend refuses holds a connect for seconds. */
    if (nb->cur == PQRI_DOOR && st == CONNECTION_STARTED && any && in_time && !p->silent_left_out &&
        s->door_mode == PQRI_DOOR_ADAPTIVE) {
        pqri_view_stat(p->v, PQRI_STAT_DOOR_SKIPPED);
        ps = pause_connect(nb, ps);
        *done = ps == PGRES_POLLING_FAILED;
        return ps;
    }
    /* Ended at a member that answered, its login not seen through: the login rule, shared with
     * blocking connects (pqri_plan_login_ends in plan.c). */
    if (ps == PGRES_POLLING_FAILED && nb->cur >= 0 && nb->answered[nb->cur] &&
        !nb->authed[nb->cur] &&
        pqri_plan_login_ends(&nb->login, (size_t)nb->cur + 1 < p->ncands + !p->leave_door_out,
                             nb->pq->needs_password && nb->pq->needs_password(nb->conn),
                             !nb->pq->used_password || nb->pq->used_password(nb->conn),
                             nb->pq->error_message(nb->conn))) {
        PQRI_DEBUG("non-blocking connect: ended at a member that refused the login (%s:%s)",
                   nb->pq->hostaddr(nb->conn), nb->pq->port(nb->conn));
        *done = true;
        return ps;
    }
    if (ps == PGRES_POLLING_FAILED) {
        /* Members refused the role (and the door, if listed, failed): a leader change, retried
         * within the budget; none answered: one more round after a refresh. */
        if ((any && in_time) || (!nb->retried && now < nb->members_end)) {
            ps = pause_connect(nb, ps);
            if (ps != PGRES_POLLING_FAILED)
                return ps;
        }
        PQRI_DEBUG("non-blocking connect: failed (%s; budget %s)",
                   any ? "members answered" : "no member answered", in_time ? "left" : "spent");
        *done = true;
    }
    return ps;
}

/* Under lock: the entry for conn, or NULL. */
static struct nb **find_locked(const PGconn *conn)
{
    struct nb **pp = &table[bucket(conn)];
    while (*pp && (*pp)->conn != conn)
        pp = &(*pp)->next;
    return *pp ? pp : NULL;
}

static void count_paused_locked(void)
{
    npaused = 0;
    for (unsigned b = 0; b < BUCKETS; b++)
        for (struct nb *o = table[b]; o; o = o->next)
            npaused += o->busy || o->paused; /* a busy one's fields are its poller's */
}

/* The connect is over: what it learned goes to the view; the plan goes. */
static void finish_plan(struct nb *nb, PGconn *landed)
{
    nb->nlater += pqri_plan_remember_silent(nb->p, landed, nb->later + nb->nlater);
    pqri_plan_free(nb->p);
    nb->p = NULL;
}

/* Under lock: nb's members found down, to the waker's queue. */
static void queue_downs_locked(struct nb *nb)
{
    for (size_t i = 0; i < nb->nlater && ndownq < DOWNQ; i++)
        downq[ndownq++] = (struct down){nb->later_v, nb->later[i]};
    nb->nlater = 0;
}

/* Before a router's views go: nothing of theirs is left to write, nor being written. */
void pqri_nb_drop_views(struct pqri_views *vs)
{
    size_t k = 0;

    pthread_mutex_lock(&lock);
    while (outside) /* it may hold views of vs */
        pthread_cond_wait(&shared, &lock);
    for (size_t i = 0; i < ndownq; i++)
        if (pqri_view_views(downq[i].v) != vs)
            downq[k++] = downq[i];
    ndownq = k;
    pthread_mutex_unlock(&lock);
}

PGconn *pqri_nb_start(struct pqri_views *vs, struct pqri_plan *p, PGconn *conn)
{
    const struct pqri_libpq *pq = p->pq;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    struct stat st;
    struct nb *nb = NULL;
    bool running;
    int s;

    (void)vs;
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&lock);
    waker_start();
    running = waker_running;
    pthread_mutex_unlock(&lock);
    if (!running || !conn || pq->status(conn) == CONNECTION_BAD || (s = pq->socket(conn)) < 0 ||
        fstat(s, &st) < 0 || getsockname(s, (struct sockaddr *)&ss, &len) < 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) || !(nb = calloc(1, sizeof *nb))) {
        pqri_plan_free(p);
        return conn;
    }
    nb->conn = conn;
    nb->p = p;
    nb->later_v = p->v;
    nb->pq = pq;
    nb->old = -1;
    nb->dev = st.st_dev;
    nb->ino = st.st_ino;
    nb->family = ss.ss_family;
    if ((nb->fd = fcntl(s, F_DUPFD_CLOEXEC, 0)) < 0) {
        free(nb);
        pqri_plan_free(p);
        return conn;
    }
    nb->host_ms = pqri_plan_host_ms(p);
    long long now = pqri_mono_ms();
    nb->members_end =
        nb->host_ms > 0 ? now + (long long)pqri_plan_members(p) * nb->host_ms : LLONG_MAX;
    nb->wait_end = now + (nb->host_ms > MIN_WAIT_MS ? nb->host_ms : MIN_WAIT_MS);
    nb->cur = PQRI_NONE;
    observe(nb);
    pthread_mutex_lock(&lock);
    nb->next = table[bucket(conn)];
    table[bucket(conn)] = nb;
    __atomic_store_n(&live, live + 1, __ATOMIC_RELEASE);
    arm(nb);
    wake_waker_if_needed(nb, false);
    pthread_mutex_unlock(&lock);
    return conn;
}

/* Under lock: out of the table, its descriptors closed; the caller frees it. */
static struct nb *drop_locked(struct nb **pp)
{
    struct nb *nb = *pp;
    *pp = nb->next;
    __atomic_store_n(&live, live - 1, __ATOMIC_RELEASE);
    if (fd_ok(nb))
        close(nb->fd);
    if (nb->old >= 0)
        close(nb->old);
    count_paused_locked();
    return nb;
}

bool pqri_nb_poll(PGconn *conn, PostgresPollingStatusType *out)
{
    struct nb **pp, *nb = NULL, *gone = NULL;
    bool woken = false, done = false, was_paused = false;
    PostgresPollingStatusType ps;

    if (!__atomic_load_n(&live, __ATOMIC_ACQUIRE))
        return false;
    pthread_mutex_lock(&lock);
    if ((pp = find_locked(conn)) && (*pp)->landed) {
        /* A PQreset* of a connection we routed: libpq opened another socket, ours is done. */
        int s = (*pp)->pq->socket(conn);
        if (s >= 0 && !same_file(s, (*pp)->dev, (*pp)->ino))
            gone = drop_locked(pp);
    } else if (pp && !(*pp)->busy) {
        nb = *pp;
        nb->busy = true;
        was_paused = nb->paused;
        woken = nb->woken;
        nb->woken = false;
        if (woken || !nb->paused)
            nb->wake = WAKE_NONE;
    }
    pthread_mutex_unlock(&lock);
    free(gone);
    if (!nb)
        return false; /* not ours, or landed: libpq's own answer */
    if (nb->paused && !woken) {
        ps = PGRES_POLLING_READING; /* polled before the pause is over: still idle */
    } else {
        ps = nb->paused ? resume(nb) : nb->pq->connect_poll(nb->conn);
        if (!keep_socket(nb)) {
            PQRI_WARN("a non-blocking connect lost the socket it gave the caller (fd %d closed by "
                      "the program?); libpq goes on with its own",
                      nb->fd);
            done = true;
        } else {
            observe(nb);
            ps = decide(nb, ps, &done);
        }
    }
    if (done)
        finish_plan(nb, ps == PGRES_POLLING_OK ? conn : NULL);
    pthread_mutex_lock(&lock);
    nb->busy = false;
    queue_downs_locked(nb);
    if (done && ps == PGRES_POLLING_OK && fd_ok(nb)) {
        nb->landed = true; /* the caller's number stays the connection's until PQfinish */
        if (nb->old >= 0)
            close(nb->old), nb->old = -1;
    } else if (done) {
        gone = drop_locked(find_locked(conn)); /* failed: libpq has no socket; neither do we */
    }
    if (!gone)
        arm(nb);
    count_paused_locked();
    wake_waker_if_needed(gone ? NULL : nb, was_paused && (gone || !nb->paused) && !npaused);
    pthread_mutex_unlock(&lock);
    free(gone);
    *out = ps;
    return true;
}

/* The caller's number for conn while its file is libpq's socket's (the number libpq returned is
 * `libpq_fd`); after a failed connect, or a PQreset that opened another socket, libpq's own. One
 * fstat: drivers call PQsocket() for every query. */
bool pqri_nb_socket(const PGconn *conn, int libpq_fd, int *out)
{
    struct nb **pp;
    bool ours = false;

    if (!__atomic_load_n(&live, __ATOMIC_ACQUIRE))
        return false;
    pthread_mutex_lock(&lock);
    if ((pp = find_locked(conn))) {
        struct nb *nb = *pp;
        ours = libpq_fd < 0 ? !nb->landed && fd_ok(nb) : same_file(libpq_fd, nb->dev, nb->ino);
        if (ours)
            *out = nb->fd;
    }
    pthread_mutex_unlock(&lock);
    return ours;
}

void pqri_nb_forget(PGconn *conn)
{
    struct nb **pp, *nb = NULL;

    if (!__atomic_load_n(&live, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&lock);
    if ((pp = find_locked(conn)))
        nb = drop_locked(pp);
    pthread_mutex_unlock(&lock);
    if (!nb)
        return;
    if (nb->p) {
        finish_plan(nb, NULL);
        pthread_mutex_lock(&lock);
        queue_downs_locked(nb);
        wake_waker_if_needed(NULL, false);
        pthread_mutex_unlock(&lock);
    }
    free(nb);
}
