/*
 * pqr-client: an ordinary libpq program (it knows nothing of libpqroute) that the integration
 * tests, the demo and the benchmarks run with and without LD_PRELOAD. Every connection it makes
 * prints one line:
 *   OK <ms> client=<inet_client_addr> server=<inet_server_addr>:<port> recovery=<t|f>
 *   FAIL <ms> <first line of libpq's error>
 * client= is the proxy's own address when the connection went through it, so a test can tell the
 * proxy path from the direct one.
 *
 * usage:
 *   pqr-client connectdb CONNINFO              PQconnectdb
 *   pqr-client params [-x] KEY=VALUE ...       PQconnectdbParams (-x: expand_dbname)
 *   pqr-client setdblogin HOST PORT DB USER PW PQsetdbLogin
 *   pqr-client start CONNINFO                  PQconnectStart + PQconnectPoll from a poll() loop
 *   pqr-client startparams KEY=VALUE ...       PQconnectStartParams + PQconnectPoll
 *   pqr-client reset CONNINFO FILE             connect, wait for FILE to exist, PQreset
 *   pqr-client threads N ITER CONNINFO         N threads x ITER connects; summary line
 *   pqr-client prefork N ITER CONNINFO         connect, then N forked children x ITER connects
 *   pqr-client writer SECONDS INTERVAL_MS CONNINFO   new connection + INSERT every interval,
 *                                              lines "<epoch ms> OK|FAIL ...", for outage timing;
 *                                              a failed INSERT adds "write=FAIL sqlstate=S ..." 
 *   pqr-client reader SECONDS INTERVAL_MS CONNINFO   like writer, with a read instead of an INSERT
 *   pqr-client hold SECONDS CONNINFO           connect, report, sleep (for footprint checks)
 *   pqr-client conninfo CONNINFO               connect; print what PQconninfo, PQhost, PQport,
 *                                              PQhostaddr report; connect again with the options
 *                                              PQconninfo gave (as psql's \c or a pool would)
 *   pqr-client epoll CONNINFO                  PQconnectStart, then an epoll loop that registers
 *                                              PQsocket() once and only modifies it (as asyncio's
 *                                              add_reader/add_writer do); "maxcall=" the longest
 *                                              PQconnectPoll call in ms, "maxcpu=" the longest
 *                                              in CPU time, "blocked=" calls that slept
 *   pqr-client epollwriter SECONDS INTERVAL_MS CONNINFO   the writer, connecting that way
 *   pqr-client series N CONNINFO [CONNINFO2]   N connects in this one process, one line each
 *                                              (alternating with CONNINFO2 when given)
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long long epoch_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Describe a finished connect; returns 0 on OK, 1 on failure, 2 when it landed on a replica. */
static int report(PGconn *c, double t0, const char *sql, char *line, size_t len)
{
    double ms = now_ms() - t0;
    int rc = 0;

    if (!c || PQstatus(c) != CONNECTION_OK) {
        const char *e = c ? PQerrorMessage(c) : "out of memory";
        snprintf(line, len, "FAIL %.1f %.*s", ms, (int)strcspn(e, "\n"), e);
        return 1;
    }
    PGresult *res = PQexec(c, "select coalesce(host(inet_client_addr()),'local'), "
                              "coalesce(host(inet_server_addr()),'local'), "
                              "current_setting('port'), pg_is_in_recovery()");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(line, len, "FAIL %.1f query: %.*s", ms, (int)strcspn(PQerrorMessage(c), "\n"),
                 PQerrorMessage(c));
        PQclear(res);
        return 1;
    }
    if (PQgetvalue(res, 0, 3)[0] == 't')
        rc = 2;
    snprintf(line, len, "OK %.1f client=%s server=%s:%s recovery=%s", ms, PQgetvalue(res, 0, 0),
             PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
    PQclear(res);
    if (sql) {
        res = PQexec(c, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
            /* The SQLSTATE tells a read-only server (25006) from one that ended the work
             * (57P01 shutting down; none: the connection was lost). */
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            size_t n = strlen(line);
            snprintf(line + n, len - n, " write=FAIL sqlstate=%s %.*s", state ? state : "none",
                     (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
            rc = 1;
        }
        PQclear(res);
    }
    return rc;
}

static int print_conn(PGconn *c, double t0)
{
    char line[512];
    int rc = report(c, t0, NULL, line, sizeof line);
    printf("%s\n", line);
    fflush(stdout);
    return rc == 1;
}

static void split_params(int argc, char **argv, const char **kw, const char **val)
{
    int n = 0;
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq)
            continue;
        *eq = 0;
        kw[n] = argv[i];
        val[n++] = eq + 1;
    }
    kw[n] = val[n] = NULL;
}

static PGconn *poll_loop(PGconn *c)
{
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    double deadline = now_ms() + 30000;

    if (!c || PQstatus(c) == CONNECTION_BAD)
        return c;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED && now_ms() < deadline) {
        struct pollfd p = {PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0};
        if (poll(&p, 1, 100) < 0)
            break;
        st = PQconnectPoll(c);
    }
    return c;
}

/* The socket is taken once, after PQconnectStart, and registered once; each state only modifies
 * the registration. A socket libpq replaced makes EPOLL_CTL_MOD fail (ENOENT, EBADF): reported as
 * a failed connect, as such event loops fail. */
/* What the caller's loop saw of the wrapped calls: the longest PQconnectPoll call on the wall
 * clock, the longest in CPU time, and how many calls gave up the CPU of their own will (a
 * voluntary context switch: a lock or a sleep, what a loop must never meet; preemption on a
 * loaded machine is involuntary and does not count). */
struct calls {
    double maxcall, maxcpu;
    int blocked;
};

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long voluntary_switches(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nvcsw : 0;
}

static PGconn *epoll_connect(const char *conninfo, struct calls *calls, char *err, size_t errlen)
{
    PGconn *c = PQconnectStart(conninfo);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    double deadline = now_ms() + 30000;
    int fd = c ? PQsocket(c) : -1, ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLOUT};

    err[0] = 0;
    *calls = (struct calls){0};
    if (!c || PQstatus(c) == CONNECTION_BAD || fd < 0 || ep < 0) {
        if (ep >= 0)
            close(ep);
        return c;
    }
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        snprintf(err, errlen, "epoll_ctl ADD: %s", strerror(errno));
    while (!err[0] && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        struct epoll_event got;
        ev.events = st == PGRES_POLLING_READING ? EPOLLIN : EPOLLOUT;
        if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0) {
            snprintf(err, errlen, "epoll_ctl MOD of fd %d: %s", fd, strerror(errno));
            break;
        }
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            snprintf(err, errlen, "no event on fd %d for 30 s", fd);
            break;
        }
        int n = epoll_wait(ep, &got, 1, left);
        if (n < 0 && errno != EINTR) {
            snprintf(err, errlen, "epoll_wait: %s", strerror(errno));
            break;
        }
        if (n <= 0)
            continue;
        long sw = voluntary_switches();
        double t = now_ms(), cpu = thread_cpu_ms();
        st = PQconnectPoll(c);
        double took = now_ms() - t, took_cpu = thread_cpu_ms() - cpu;
        if (took > calls->maxcall)
            calls->maxcall = took;
        if (took_cpu > calls->maxcpu)
            calls->maxcpu = took_cpu;
        calls->blocked += voluntary_switches() != sw;
    }
    close(ep);
    return c;
}

static int epoll_report(const char *conninfo, const char *sql, char *line, size_t len)
{
    char err[160];
    struct calls calls;
    double t0 = now_ms();
    PGconn *c = epoll_connect(conninfo, &calls, err, sizeof err);
    int rc = report(c, t0, sql, line, len);
    size_t n = strlen(line);

    if (err[0] && rc != 1)
        rc = 1; /* cannot happen: a connect the loop gave up on is not OK */
    snprintf(line + n, len - n, " maxcall=%.1f maxcpu=%.2f blocked=%d%s%s", calls.maxcall,
             calls.maxcpu, calls.blocked, err[0] ? " loop=" : "", err);
    PQfinish(c);
    return rc;
}

struct job {
    const char *conninfo;
    int iter;
    int ok, fail, replica;
};

static void *thread_main(void *arg)
{
    struct job *j = arg;
    char line[512];
    for (int i = 0; i < j->iter; i++) {
        double t0 = now_ms();
        PGconn *c = PQconnectdb(j->conninfo);
        int rc = report(c, t0, NULL, line, sizeof line);
        j->ok += rc != 1;
        j->fail += rc == 1;
        j->replica += rc == 2;
        PQfinish(c);
    }
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: see the comment at the top of tests/tools/pqr-client.c\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *kw[64], *val[64];
    double t0 = now_ms();

    if (argc < 3)
        return usage();
    const char *mode = argv[1];
    if (strcmp(mode, "connectdb") == 0) {
        PGconn *c = PQconnectdb(argv[2]);
        int rc = print_conn(c, t0);
        PQfinish(c);
        return rc;
    }
    if (strcmp(mode, "params") == 0 || strcmp(mode, "startparams") == 0) {
        int expand = strcmp(argv[2], "-x") == 0;
        split_params(argc - 2 - expand, argv + 2 + expand, kw, val);
        PGconn *c = mode[0] == 'p' ? PQconnectdbParams(kw, val, expand)
                                   : poll_loop(PQconnectStartParams(kw, val, expand));
        int rc = print_conn(c, t0);
        PQfinish(c);
        return rc;
    }
    if (strcmp(mode, "setdblogin") == 0 && argc == 7) {
        PGconn *c = PQsetdbLogin(argv[2], argv[3], NULL, NULL, argv[4], argv[5], argv[6]);
        int rc = print_conn(c, t0);
        PQfinish(c);
        return rc;
    }
    if (strcmp(mode, "start") == 0) {
        PGconn *c = poll_loop(PQconnectStart(argv[2]));
        int rc = print_conn(c, t0);
        PQfinish(c);
        return rc;
    }
    if (strcmp(mode, "reset") == 0 && argc == 4) {
        PGconn *c = PQconnectdb(argv[2]);
        print_conn(c, t0);
        while (access(argv[3], F_OK) != 0)
            usleep(20000);
        t0 = now_ms();
        PQreset(c);
        int rc = print_conn(c, t0);
        PQfinish(c);
        return rc;
    }
    if (strcmp(mode, "threads") == 0 && argc == 5) {
        int n = atoi(argv[2]);
        pthread_t th[256];
        struct job jobs[256];
        int ok = 0, fail = 0, replica = 0;
        if (n < 1 || n > 256)
            return usage();
        for (int i = 0; i < n; i++) {
            jobs[i] = (struct job){argv[4], atoi(argv[3]), 0, 0, 0};
            pthread_create(&th[i], NULL, thread_main, &jobs[i]);
        }
        for (int i = 0; i < n; i++) {
            pthread_join(th[i], NULL);
            ok += jobs[i].ok, fail += jobs[i].fail, replica += jobs[i].replica;
        }
        printf("threads=%d ok=%d fail=%d replica=%d ms=%.0f\n", n, ok, fail, replica, now_ms() - t0);
        return fail != 0;
    }
    if (strcmp(mode, "prefork") == 0 && argc == 5) {
        int n = atoi(argv[2]), iter = atoi(argv[3]), failed = 0;
        PGconn *c = PQconnectdb(argv[4]);
        printf("parent: ");
        print_conn(c, t0);
        for (int i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                struct job j = {argv[4], iter, 0, 0, 0};
                thread_main(&j);
                printf("child %d: ok=%d fail=%d replica=%d\n", i, j.ok, j.fail, j.replica);
                fflush(stdout);
                _exit(j.fail ? 1 : 0);
            }
        }
        for (int i = 0; i < n; i++) {
            int st;
            if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
                failed++;
        }
        PQfinish(c);
        printf("children failed: %d\n", failed);
        return failed != 0;
    }
    if ((strcmp(mode, "writer") == 0 || strcmp(mode, "reader") == 0) && argc == 5) {
        const char *sql = mode[0] == 'w' ? "insert into writes(src) values (current_setting('application_name'))"
                                         : "select count(*) from pg_class";
        double end = now_ms() + atof(argv[2]) * 1000;
        int interval = atoi(argv[3]);
        char line[512];
        while (now_ms() < end) {
            double t1 = now_ms();
            PGconn *c = PQconnectdb(argv[4]);
            report(c, t1, sql, line, sizeof line);
            printf("%lld %s\n", epoch_ms(), line);
            fflush(stdout);
            PQfinish(c);
            double left = interval - (now_ms() - t1);
            if (left > 0)
                usleep((useconds_t)(left * 1000));
        }
        return 0;
    }
    if (strcmp(mode, "epoll") == 0 && argc == 3) {
        char line[640];
        int rc = epoll_report(argv[2], NULL, line, sizeof line);
        printf("%s\n", line);
        return rc == 1;
    }
    if (strcmp(mode, "epollwriter") == 0 && argc == 5) {
        double end = now_ms() + atof(argv[2]) * 1000;
        int interval = atoi(argv[3]);
        char line[640];
        while (now_ms() < end) {
            double t1 = now_ms();
            epoll_report(argv[4], "insert into writes(src) values (current_setting('application_name'))",
                         line, sizeof line);
            printf("%lld %s\n", epoch_ms(), line);
            fflush(stdout);
            double left = interval - (now_ms() - t1);
            if (left > 0)
                usleep((useconds_t)(left * 1000));
        }
        return 0;
    }
    if (strcmp(mode, "series") == 0 && (argc == 4 || argc == 5)) {
        int rc = 0;
        for (int i = 0; i < atoi(argv[2]); i++) {
            double t = now_ms();
            PGconn *c = PQconnectdb(argv[argc == 5 && i % 2 ? 4 : 3]);
            rc |= print_conn(c, t);
            PQfinish(c);
        }
        return rc;
    }
    if (strcmp(mode, "conninfo") == 0) {
        PGconn *c = PQconnectdb(argv[2]);
        int rc = print_conn(c, t0);
        PQconninfoOption *opts = PQconninfo(c);
        const char *k2[64], *v2[64];
        int n = 0;
        printf("conninfo:");
        for (PQconninfoOption *o = opts; o && o->keyword; o++) {
            if (o->val && (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0 ||
                           strcmp(o->keyword, "port") == 0 || strcmp(o->keyword, "connect_timeout") == 0 ||
                           strcmp(o->keyword, "target_session_attrs") == 0))
                printf(" %s=%s", o->keyword, o->val);
            if (o->val && o->val[0] && n < 63)
                k2[n] = o->keyword, v2[n++] = o->val;
        }
        k2[n] = v2[n] = NULL;
        printf("\nreported: host=%s port=%s hostaddr=%s\n", PQhost(c), PQport(c), PQhostaddr(c));
        double t1 = now_ms();
        PGconn *again = PQconnectdbParams(k2, v2, 0);
        printf("again: ");
        rc |= print_conn(again, t1);
        PQfinish(again);
        PQconninfoFree(opts);
        PQfinish(c);
        return rc;
    }
    if (strcmp(mode, "hold") == 0 && argc == 4) {
        PGconn *c = PQconnectdb(argv[3]);
        int rc = print_conn(c, t0);
        sleep((unsigned)atoi(argv[2]));
        PQfinish(c);
        return rc;
    }
    return usage();
}
