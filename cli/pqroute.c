/*
 * pqroute: what libpqroute sees and what it would do, for operators. Reads the same environment and
 * configuration file as the shim (PQROUTE_*, PQROUTE_CONFIG).
 *
 *   pqroute status [--json]          the cluster as the library sees it; exit 1 no leader, 2 no view
 *   pqroute resolve [--connect] CONNINFO   what the shim would do with this connection, and why
 *   pqroute exec -- COMMAND [ARG...] run COMMAND with the shim preloaded
 *   pqroute check                    validate the configuration, reach every REST endpoint and door
 *   pqroute watch [--count N]        print topology changes as they happen
 *   pqroute stats [--prometheus]     counters of every process on this host (shared cache dir)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pqr_private.h"

#ifndef PQR_LIBDIR
#define PQR_LIBDIR "/usr/local/lib"
#endif


static int usage(void)
{
    fprintf(stderr, "usage: pqroute status [--json] | resolve [--connect] CONNINFO | exec -- COMMAND [ARG...]\n"
                    "               | check | watch [--count N] | stats [--prometheus]   (see pqroute(1))\n");
    return 64;
}

static struct pqr_router *open_router(int *rc)
{
    struct pqr_settings s;
    char err[1024];
    int st = pqr__settings_load(&s, err, sizeof err);
    struct pqr_router *r = NULL;

    if (st == 1)
        fprintf(stderr, "pqroute: nothing configured: set PQROUTE_PATRONI and PQROUTE_RW/PQROUTE_RO, or PQROUTE_CONFIG\n");
    else if (st < 0)
        fprintf(stderr, "pqroute: %s\n", err);
    else if (!(r = pqr__router_new(&s, &pqr__direct_libpq, err, sizeof err)))
        fprintf(stderr, "pqroute: %s\n", err);
    pqr__settings_clear(&s);
    *rc = r ? 0 : 3;
    return r;
}

static const char *lag_text(const struct pqr_member *m, char *buf, size_t len)
{
    if (m->role == PQR_MEMBER_LEADER || m->role == PQR_MEMBER_STANDBY_LEADER)
        return "";
    if (m->lag < 0)
        return "unknown";
    snprintf(buf, len, "%lld", m->lag);
    return buf;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static int cmd_status(int argc, char **argv)
{
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
    int rc;
    struct pqr_router *r = open_router(&rc);

    if (!r)
        return rc;
    if (json)
        printf("{\"clusters\": [");
    for (size_t k = 0; k < r->nclusters; k++) {
        struct pqr_cluster *c = &r->clusters[k];
        struct pqr_topology *t = pqr__router_refresh(r, c, pqr__mono_ms() - 1, pqr__rest_budget_ms(&r->s) + 300);
        double age = pqr_topology_age(t);
        int crc = !t ? 2 : t->leader < 0 ? 1 : 0;
        if (crc > rc)
            rc = crc;
        if (json) {
            printf("%s{\"name\": ", k ? ", " : "");
            json_str(c->conf->name);
            printf(", \"source\": ");
            json_str(t && t->source ? t->source : "");
            printf(", \"age_s\": %.3f, \"leader\": ", age);
            if (t && t->leader >= 0)
                json_str(t->m[t->leader].name);
            else
                printf("null");
            printf(", \"members\": [");
            for (size_t i = 0; t && i < t->n; i++) {
                const struct pqr_member *m = &t->m[i];
                printf("%s{\"name\": ", i ? ", " : "");
                json_str(m->name);
                printf(", \"role\": \"%s\", \"state\": ", pqr_member_role_name(m->role));
                json_str(m->state);
                printf(", \"host\": ");
                json_str(m->host);
                printf(", \"addr\": ");
                json_str(m->addr);
                printf(", \"port\": %d, \"timeline\": %ld, \"lag\": %lld, \"noloadbalance\": %s}", m->port,
                       m->timeline, m->lag, m->noloadbalance ? "true" : "false");
            }
            printf("]}");
        } else {
            printf("cluster %s: ", c->conf->name);
            if (!t) {
                printf("no view (Patroni did not answer; connections go to the front door)\n");
                continue;
            }
            printf("view from %s, %.1f s old, leader %s\n", t->source ? t->source : "?", age,
                   t->leader >= 0 ? t->m[t->leader].name : "(none)");
            printf("  %-12s %-15s %-10s %-22s %4s %10s  %s\n", "MEMBER", "ROLE", "STATE", "ADDRESS", "TL", "LAG", "NOTE");
            for (size_t i = 0; i < t->n; i++) {
                const struct pqr_member *m = &t->m[i];
                char addr[80], lag[32], tl[16];
                snprintf(addr, sizeof addr, "%s:%d", m->addr[0] ? m->addr : "-", m->port);
                snprintf(tl, sizeof tl, "%ld", m->timeline);
                printf("  %-12s %-15s %-10s %-22s %4s %10s  %s%s\n", m->name, pqr_member_role_name(m->role),
                       m->state, addr, m->timeline >= 0 ? tl : "-", lag_text(m, lag, sizeof lag),
                       !m->addr[0] ? "not used (unresolvable or outside PQROUTE_ALLOW) " : "",
                       m->noloadbalance ? "noloadbalance" : "");
            }
        }
        pqr__topo_unref(t);
    }
    if (json)
        printf("]}\n");
    pqr__router_free(r);
    return rc;
}

static int cmd_resolve(int argc, char **argv)
{
    bool connect = argc > 2 && strcmp(argv[1], "--connect") == 0;
    const char *conninfo = argv[connect ? 2 : 1];
    PQconninfoOption *o;
    const char **kw, **val;
    int rc;
    struct pqr_router *r;

    if (argc < 2 || (connect && argc < 3))
        return usage();
    if (pqr__conninfo_arrays(conninfo, &o, &kw, &val) < 0) {
        fprintf(stderr, "pqroute: libpq cannot parse that connection string\n");
        return 64;
    }
    if (!(r = open_router(&rc)))
        return rc;
    struct pqr_plan *p = pqr__route_plan(r, NULL, kw, val, 0, PQR_BLOCKING, PQR_ROLE_AUTO);
    printf("%s\n", pqr_last_decision());
    if (connect) {
        PGconn *conn = p ? pqr__route_exec(r, p) : PQconnectdbParams(kw, val, 0);
        if (PQstatus(conn) == CONNECTION_OK) {
            PGresult *res = PQexec(conn, "select pg_is_in_recovery()");
            printf("connected to %s:%s (%s)\n", PQhostaddr(conn)[0] ? PQhostaddr(conn) : PQhost(conn),
                   PQport(conn),
                   PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't' ? "a replica" : "read-write");
            PQclear(res);
        } else {
            printf("connection failed: %s", PQerrorMessage(conn));
            rc = 1;
        }
        PQfinish(conn);
    }
    pqr__route_free(p);
    free(kw), free(val);
    pqr__conninfo_free(o);
    pqr__router_free(r);
    return rc;
}

/* The shim beside this program (build tree), in ../lib (installed), or in the configured libdir. */
static int find_preload(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *dir;

    if (n > 0) {
        exe[n] = 0;
        dir = dirname(exe);
        snprintf(out, len, "%s/libpqroute-preload.so", dir);
        if (access(out, R_OK) == 0)
            return 0;
        snprintf(out, len, "%s/../lib/libpqroute-preload.so", dir);
        if (access(out, R_OK) == 0)
            return 0;
    }
    snprintf(out, len, "%s/libpqroute-preload.so", PQR_LIBDIR);
    return access(out, R_OK);
}

static int cmd_exec(int argc, char **argv)
{
    char preload[PATH_MAX], *merged;
    const char *old = getenv("LD_PRELOAD");
    int i = 1;

    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    if (i >= argc)
        return usage();
    if (find_preload(preload, sizeof preload) != 0) {
        fprintf(stderr, "pqroute: cannot find libpqroute-preload.so (looked beside pqroute and in %s)\n", PQR_LIBDIR);
        return 69;
    }
    if (asprintf(&merged, "%s%s%s", preload, old && *old ? " " : "", old ? old : "") < 0)
        return 71;
    setenv("LD_PRELOAD", merged, 1);
    execvp(argv[i], argv + i);
    fprintf(stderr, "pqroute: %s: %s\n", argv[i], strerror(errno));
    return 127;
}

/* TCP connect with a deadline: is the front door listening? */
static const char *tcp_check(const char *host, int port, int timeout_ms)
{
    static char why[256];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    char p[16];
    int rc, fd;

    snprintf(p, sizeof p, "%d", port);
    if ((rc = getaddrinfo(host, p, &hints, &ai)) != 0) {
        snprintf(why, sizeof why, "cannot resolve: %s", gai_strerror(rc));
        return why;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd pf = {fd, POLLOUT, 0};
        int err = 0;
        socklen_t l = sizeof err;
        rc = poll(&pf, 1, timeout_ms);
        if (rc == 0) {
            close(fd);
            return "no answer (timed out)";
        }
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
        errno = err;
        rc = err ? -1 : 0;
    }
    close(fd);
    if (rc < 0) {
        snprintf(why, sizeof why, "%s", strerror(errno));
        return why;
    }
    return NULL;
}

static int cmd_check(void)
{
    int rc, problems = 0;
    struct pqr_router *r = open_router(&rc);

    if (!r) {
        printf("configuration: ERROR (see above); hint: every variable is described in pqroute(1)\n");
        return rc;
    }
    printf("configuration: ok (%zu cluster%s)\n", r->nclusters, r->nclusters > 1 ? "s" : "");
    for (size_t k = 0; k < r->nclusters; k++) {
        const struct pqr_cluster_conf *c = r->clusters[k].conf;
        printf("cluster %s:\n", c->name);
        for (size_t i = 0; i < c->nseeds; i++) {
            char err[512];
            const char *one[] = {c->seeds[i]};
            char shown[600];
            pqr__url_display(shown, sizeof shown, c->seeds[i]);
            struct pqr_fetch_opts o = {&r->s, c, one, 1, NULL};
            struct pqr_topology *t = pqr__patroni_fetch(&o, err, sizeof err);
            if (t)
                pqr__topo_complete(t, &r->s, c);
            if (t) {
                size_t unused = 0;
                for (size_t m = 0; m < t->n; m++)
                    unused += !t->m[m].addr[0];
                printf("  REST %-32s ok: %zu members, leader %s%s\n", shown, t->n,
                       t->leader >= 0 ? t->m[t->leader].name : "(none)",
                       unused ? "; some members not usable (unresolvable or outside PQROUTE_ALLOW)" : "");
                problems += t->leader < 0;
                pqr__topo_unref(t);
            } else {
                printf("  REST %-32s ERROR: %s\n       hint: is Patroni's restapi.listen reachable from here? "
                       "https needs PQROUTE_REST_CA (and a client certificate if Patroni requires one)\n",
                       shown, err);
                problems++;
            }
        }
        for (int d = 0; d < 2; d++) {
            const char *h = d ? c->ro_host : c->rw_host;
            int port = d ? c->ro_port : c->rw_port;
            if (!h)
                continue;
            const char *why = tcp_check(h, port, 2000);
            printf("  front door %-3s %s:%d %s%s\n", d ? "ro" : "rw", h, port, why ? "ERROR: " : "ok", why ? why : "");
            if (why) {
                printf("       hint: connections fall back to this address when Patroni cannot be asked\n");
                problems++;
            }
        }
    }
    pqr__router_free(r);
    printf("%d problem%s\n", problems, problems == 1 ? "" : "s");
    return problems ? 1 : 0;
}

static void print_counters(const char *cluster, const uint64_t *v, bool prom)
{
    for (int i = 0; i < PQR_STAT_COUNT; i++) {
        if (prom)
            printf("libpqroute_events_total{cluster=\"%s\",event=\"%s\"} %llu\n", cluster,
                   pqr__stat_names[i], (unsigned long long)v[i]);
        else if (v[i] || i != PQR_STAT_PASSED_THROUGH)
            printf("  %-20s %llu\n", pqr__stat_names[i], (unsigned long long)v[i]);
    }
}

static int cmd_stats(int argc, char **argv)
{
    bool prom = argc > 1 && strcmp(argv[1], "--prometheus") == 0;
    int rc;
    struct pqr_router *r = open_router(&rc);

    if (!r)
        return rc;
    if (prom)
        printf("# HELP libpqroute_events_total Connections and refreshes counted by every libpqroute process of this user on this host.\n"
               "# TYPE libpqroute_events_total counter\n");
    for (size_t k = 0; k < r->nclusters; k++) {
        uint64_t v[PQR_STAT_COUNT];
        if (!prom)
            printf("cluster %s:\n", r->clusters[k].conf->name);
        if (pqr__stats_read(&r->clusters[k].stats, v) == 0)
            print_counters(r->clusters[k].conf->name, v, prom);
        else if (!prom)
            printf("  (no counters yet, or no shared cache directory)\n");
    }
    uint64_t o[PQR_STAT_COUNT];
    if (pqr__stats_read(&r->other_stats, o) == 0) {
        if (!prom)
            printf("connections to no front door:\n  passed_through       %llu\n",
                   (unsigned long long)o[PQR_STAT_PASSED_THROUGH]);
        else
            printf("libpqroute_events_total{cluster=\"\",event=\"passed_through\"} %llu\n",
                   (unsigned long long)o[PQR_STAT_PASSED_THROUGH]);
    }
    pqr__router_free(r);
    return 0;
}

static volatile sig_atomic_t interrupted;
static void on_int(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int cmd_watch(int argc, char **argv)
{
    long count = argc > 2 && strcmp(argv[1], "--count") == 0 ? atol(argv[2]) : -1;
    int rc;
    struct pqr_router *r = open_router(&rc);
    uint64_t *last;

    if (!r)
        return rc;
    last = calloc(r->nclusters, sizeof *last);
    signal(SIGINT, on_int);
    signal(SIGTERM, on_int);
    while (!interrupted && count != 0) {
        for (size_t k = 0; k < r->nclusters && count != 0; k++) {
            struct pqr_topology *t = pqr__router_refresh(r, &r->clusters[k], pqr__mono_ms() - 1, r->s.refresh_ms + r->s.rest_timeout_ms);
            uint64_t gen = t ? t->gen : 1;
            if (gen != last[k]) {
                char when[32];
                time_t now = time(NULL);
                struct tm tmv;
                strftime(when, sizeof when, "%H:%M:%S", localtime_r(&now, &tmv));
                printf("%s.%03lld cluster %s: ", when, pqr__now_ms() % 1000, r->clusters[k].conf->name);
                if (!t)
                    printf("no view (Patroni does not answer)");
                else {
                    printf("leader %s;", t->leader >= 0 ? t->m[t->leader].name : "(none)");
                    for (size_t i = 0; i < t->n; i++)
                        printf(" %s=%s/%s/tl%ld", t->m[i].name, pqr_member_role_name(t->m[i].role), t->m[i].state, t->m[i].timeline);
                }
                printf("\n");
                fflush(stdout);
                last[k] = gen;
                if (count > 0)
                    count--;
            }
            pqr__topo_unref(t);
        }
        usleep((useconds_t)r->s.refresh_ms * 500);
    }
    free(last);
    pqr__router_free(r);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(argv[1], "resolve") == 0)
        return cmd_resolve(argc - 1, argv + 1);
    if (strcmp(argv[1], "exec") == 0)
        return cmd_exec(argc - 1, argv + 1);
    if (strcmp(argv[1], "check") == 0)
        return cmd_check();
    if (strcmp(argv[1], "watch") == 0)
        return cmd_watch(argc - 1, argv + 1);
    if (strcmp(argv[1], "stats") == 0)
        return cmd_stats(argc - 1, argv + 1);
    if (strcmp(argv[1], "--version") == 0)
        return printf("pqroute %s\n", pqr_version()), 0;
    return usage();
}
