/*
 * pqroute: what libpqroute sees and what it would do, for operators. Reads the same environment and
 * configuration file as the shim (PQROUTE_*, PQROUTE_CONFIG). A client of the public API only.
 *
 *   pqroute status [--json]          the cluster as the library sees it; exit 1 no leader, 2 no view
 *   pqroute resolve [--connect] CONNINFO   what the shim would do with this connection, and why
 *   pqroute exec -- COMMAND [ARG...] run COMMAND with the shim preloaded
 *   pqroute check                    validate the configuration, reach every REST endpoint and door
 *   pqroute watch [--count N]        print topology changes as they happen
 *   pqroute stats [--prometheus]     counters of every process on this host (shared cache dir)
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "libpqroute.h"

#ifndef PQRI_LIBDIR
#define PQRI_LIBDIR "/usr/local/lib"
#endif

static int usage(void)
{
    fprintf(
        stderr,
        "usage: pqroute status [--json] | resolve [--connect] CONNINFO | exec -- COMMAND [ARG...]\n"
        "               | check | watch [--count N] | stats [--prometheus] | agent "
        "[--check-config]   (see "
        "pqroute(1))\n");
    return 64;
}

static pqr_router *open_router(int *rc)
{
    char err[1024] = "";
    pqr_router *r = pqr_router_open_env(err, sizeof err);

    if (!r && pqr_last_error() == PQR_ERR_NOT_CONFIGURED)
        fprintf(stderr,
                "pqroute: nothing configured: set PQROUTE_PATRONI (or PQROUTE_ETCD/PQROUTE_CONSUL "
                "with PQROUTE_SCOPE) and PQROUTE_RW/PQROUTE_RO, or PQROUTE_CONFIG\n");
    else if (!r)
        fprintf(stderr, "pqroute: %s\n", err);
    *rc = r ? 0 : 3;
    return r;
}

static bool leads(const pqr_topology *t, size_t i)
{
    pqr_member_role role = pqr_member_role_of(t, i);
    return role == PQR_MEMBER_LEADER || role == PQR_MEMBER_STANDBY_LEADER;
}

static json_t *cluster_json(const pqr_router *r, const char *name, const pqr_topology *t)
{
    const char *zone = pqr_router_zone(r, name);
    char why[160];

    json_t *c = json_object(), *members = json_array();
    int leader = pqr_topology_leader(t);

    json_object_set_new(c, "name", json_string(name));
    json_object_set_new(c, "zone", zone ? json_string(zone) : json_null());
    json_object_set_new(c, "source", json_string(pqr_topology_source(t)));
    json_object_set_new(c, "age_s", json_real(pqr_topology_age(t)));
    json_object_set_new(
        c, "leader", leader >= 0 ? json_string(pqr_member_name(t, (size_t)leader)) : json_null());
    for (size_t i = 0; i < pqr_topology_size(t); i++) {
        json_t *m = json_object();
        json_object_set_new(m, "name", json_string(pqr_member_name(t, i)));
        json_object_set_new(m, "role", json_string(pqr_member_role_name(pqr_member_role_of(t, i))));
        json_object_set_new(m, "state", json_string(pqr_member_state(t, i)));
        json_object_set_new(m, "host", json_string(pqr_member_host(t, i)));
        json_object_set_new(m, "addr", json_string(pqr_member_addr(t, i)));
        json_object_set_new(m, "port", json_integer(pqr_member_port(t, i)));
        json_object_set_new(m, "timeline", json_integer(pqr_member_timeline(t, i)));
        json_object_set_new(m, "lag", json_integer(pqr_member_lag(t, i)));
        json_object_set_new(m, "noloadbalance", json_boolean(pqr_member_noloadbalance(t, i)));
        zone = pqr_router_member_zone(r, name, t, i);
        json_object_set_new(m, "zone", zone ? json_string(zone) : json_null());
        if (pqr_router_read_why(r, name, t, i, why, sizeof why) == 0)
            json_object_set_new(m, "reads", json_string(why));
        json_array_append_new(members, m);
    }
    json_object_set_new(c, "members", members);
    return c;
}

static void cluster_text(const pqr_router *r, const char *name, const pqr_topology *t)
{
    int leader = pqr_topology_leader(t);
    const char *zones = pqr_router_zone(r, name);

    printf("cluster %s: ", name);
    if (!t) {
        printf("no view (Patroni did not answer; connections go to the front door)\n");
        return;
    }
    printf("view from %s, %.1f s old, leader %s%s%s\n",
           pqr_topology_source(t)[0] ? pqr_topology_source(t) : "?", pqr_topology_age(t),
           leader >= 0 ? pqr_member_name(t, (size_t)leader) : "(none)",
           zones ? ", reads prefer zone " : "", zones ? zones : "");
    printf("  %-12s %-15s %-10s %-22s %4s %10s %-8s  %s\n", "MEMBER", "ROLE", "STATE", "ADDRESS",
           "TL", "LAG", "ZONE", "NOTE");
    for (size_t i = 0; i < pqr_topology_size(t); i++) {
        const char *a = pqr_member_addr(t, i);
        const char *zone = pqr_router_member_zone(r, name, t, i);
        char addr[80], lag[32] = "", tl[16] = "-", why[160] = "";
        snprintf(addr, sizeof addr, "%s:%d", a[0] ? a : "-", pqr_member_port(t, i));
        if (pqr_member_timeline(t, i) >= 0)
            snprintf(tl, sizeof tl, "%ld", pqr_member_timeline(t, i));
        if (!leads(t, i))
            snprintf(lag, sizeof lag, pqr_member_lag(t, i) < 0 ? "unknown" : "%lld",
                     pqr_member_lag(t, i));
        pqr_router_read_why(r, name, t, i, why, sizeof why);
        printf("  %-12s %-15s %-10s %-22s %4s %10s %-8s  %s%s%s\n", pqr_member_name(t, i),
               pqr_member_role_name(pqr_member_role_of(t, i)), pqr_member_state(t, i), addr, tl,
               lag, zone ? zone : "-",
               !a[0] ? "not used (unresolvable or outside PQROUTE_ALLOW) " : "",
               pqr_member_noloadbalance(t, i) ? "noloadbalance " : "",
               /* the leader's "not a replica" says nothing an operator needs */
               leads(t, i) && strstr(why, "not a replica") ? "" : why);
    }
}

static int cmd_status(int argc, char **argv)
{
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
    json_t *all = json_array();
    int rc;
    pqr_router *r = open_router(&rc);

    if (!r)
        return rc;
    for (size_t k = 0; k < pqr_router_clusters(r); k++) {
        const char *name = pqr_router_cluster_name(r, k);
        pqr_topology *t = pqr_router_refresh(r, name, -1);
        int crc = !t ? 2 : pqr_topology_leader(t) < 0 ? 1 : 0;
        if (crc > rc)
            rc = crc;
        if (json)
            json_array_append_new(all, cluster_json(r, name, t));
        else
            cluster_text(r, name, t);
        pqr_topology_release(t);
    }
    if (json) {
        json_t *root = json_pack("{s:o}", "clusters", all);
        char *text = json_dumps(root, 0);
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(root);
    } else {
        json_decref(all);
    }
    pqr_router_close(r);
    return rc;
}

static int cmd_resolve(int argc, char **argv)
{
    bool connect = argc > 2 && strcmp(argv[1], "--connect") == 0;
    const char *conninfo = argv[connect ? 2 : 1];
    PQconninfoOption *o;
    char *perr = NULL;
    int rc;
    pqr_router *r;

    if (argc < 2 || (connect && argc < 3))
        return usage();
    if (!(o = PQconninfoParse(conninfo, &perr))) {
        fprintf(stderr, "pqroute: libpq cannot parse that connection string\n");
        PQfreemem(perr);
        return 64;
    }
    PQconninfoFree(o);
    if (!(r = open_router(&rc)))
        return rc;
    printf("%s\n", pqr_router_explain(r, conninfo));
    if (connect) {
        PGconn *conn = pqr_connectdb(r, conninfo);
        if (PQstatus(conn) == CONNECTION_OK) {
            PGresult *res = PQexec(conn, "select pg_is_in_recovery()");
            printf("connected to %s:%s (%s)\n",
                   PQhostaddr(conn)[0] ? PQhostaddr(conn) : PQhost(conn), PQport(conn),
                   PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't'
                       ? "a replica"
                       : "read-write");
            PQclear(res);
        } else {
            printf("connection failed: %s", PQerrorMessage(conn));
            rc = 1;
        }
        PQfinish(conn);
    }
    pqr_router_close(r);
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
    snprintf(out, len, "%s/libpqroute-preload.so", PQRI_LIBDIR);
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
        fprintf(stderr,
                "pqroute: cannot find libpqroute-preload.so (looked beside pqroute and in %s)\n",
                PQRI_LIBDIR);
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
    pqr_router *r = open_router(&rc);

    if (!r) {
        printf(
            "configuration: ERROR (see above); hint: every variable is described in pqroute(1)\n");
        return rc;
    }
    printf("configuration: ok (%zu cluster%s)\n", pqr_router_clusters(r),
           pqr_router_clusters(r) > 1 ? "s" : "");
    for (size_t k = 0; k < pqr_router_clusters(r); k++) {
        const char *name = pqr_router_cluster_name(r, k);
        printf("cluster %s:\n", name);
        const char *dcs = pqr_router_dcs(r, name);
        if (dcs) {
            char err[1024];
            pqr_topology *t = pqr_router_ask_dcs(r, name, err, sizeof err);
            if (t) {
                int leader = pqr_topology_leader(t);
                printf("  DCS  %-32s ok: %zu members, leader %s\n", pqr_topology_source(t),
                       pqr_topology_size(t),
                       leader >= 0 ? pqr_member_name(t, (size_t)leader) : "(none)");
                problems += leader < 0;
                pqr_topology_release(t);
            } else {
                printf("  DCS  %-32s ERROR: %s\n       hint: PQROUTE_SCOPE and PQROUTE_NAMESPACE "
                       "must be "
                       "Patroni's scope and namespace; https needs PQROUTE_ETCD_CA; a user needs "
                       "read access "
                       "to <namespace>/<scope>/\n",
                       dcs, err);
                problems++;
            }
        }
        for (size_t i = 0; i < pqr_router_endpoints(r, name); i++) {
            char err[512];
            const char *shown = pqr_router_endpoint(r, name, i);
            pqr_topology *t = pqr_router_ask(r, name, i, err, sizeof err);
            if (t) {
                size_t unused = 0;
                int leader = pqr_topology_leader(t);
                for (size_t m = 0; m < pqr_topology_size(t); m++)
                    unused += !pqr_member_addr(t, m)[0];
                printf("  REST %-32s ok: %zu members, leader %s%s\n", shown, pqr_topology_size(t),
                       leader >= 0 ? pqr_member_name(t, (size_t)leader) : "(none)",
                       unused ? "; some members not usable (unresolvable or outside PQROUTE_ALLOW)"
                              : "");
                problems += leader < 0;
                pqr_topology_release(t);
            } else {
                printf("  REST %-32s ERROR: %s\n       hint: is Patroni's restapi.listen reachable "
                       "from here? "
                       "https needs PQROUTE_REST_CA (and a client certificate if Patroni requires "
                       "one)\n",
                       shown, err);
                problems++;
            }
        }
        for (int d = 0; d < 2; d++) {
            const char *h;
            int port;
            if (pqr_router_front_door(r, name, d ? PQR_ROLE_RO : PQR_ROLE_RW, &h, &port) < 0)
                continue;
            const char *why = tcp_check(h, port, 2000);
            printf("  front door %-3s %s:%d %s%s\n", d ? "ro" : "rw", h, port,
                   why ? "ERROR: " : "ok", why ? why : "");
            if (why) {
                printf("       hint: connections fall back to this address when Patroni cannot be "
                       "asked\n");
                problems++;
            }
        }
    }
    pqr_router_close(r);
    printf("%d problem%s\n", problems, problems == 1 ? "" : "s");
    return problems ? 1 : 0;
}

static void print_counters(const char *cluster, const unsigned long long *v, bool prom)
{
    for (size_t i = 0; i < pqr_stats_count(); i++) {
        if (prom)
            printf("libpqroute_events_total{cluster=\"%s\",event=\"%s\"} %llu\n", cluster,
                   pqr_stats_name(i), v[i]);
        else if (v[i] || strcmp(pqr_stats_name(i), "passed_through") != 0)
            printf("  %-20s %llu\n", pqr_stats_name(i), v[i]);
    }
}

static int cmd_stats(int argc, char **argv)
{
    bool prom = argc > 1 && strcmp(argv[1], "--prometheus") == 0;
    unsigned long long v[64];
    int rc;
    pqr_router *r = open_router(&rc);

    if (!r)
        return rc;
    if (prom)
        printf("# HELP libpqroute_events_total Connections and refreshes counted by every "
               "libpqroute process of this user on this host.\n"
               "# TYPE libpqroute_events_total counter\n");
    for (size_t k = 0; k < pqr_router_clusters(r); k++) {
        const char *name = pqr_router_cluster_name(r, k);
        if (!prom)
            printf("cluster %s:\n", name);
        if (pqr_router_stats(r, name, v, 64) == 0)
            print_counters(name, v, prom);
        else if (!prom)
            printf("  (no counters yet, or no shared cache directory)\n");
    }
    if (pqr_router_stats(r, NULL, v, 64) == 0) {
        for (size_t i = 0; i < pqr_stats_count(); i++) {
            if (strcmp(pqr_stats_name(i), "passed_through") != 0)
                continue;
            if (prom)
                printf("libpqroute_events_total{cluster=\"\",event=\"passed_through\"} %llu\n",
                       v[i]);
            else
                printf("connections to no front door:\n  passed_through       %llu\n", v[i]);
        }
    }
    pqr_router_close(r);
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
    pqr_router *r = open_router(&rc);
    unsigned long long *last;

    if (!r)
        return rc;
    last = calloc(pqr_router_clusters(r), sizeof *last);
    signal(SIGINT, on_int);
    signal(SIGTERM, on_int);
    while (last && !interrupted && count != 0) {
        for (size_t k = 0; k < pqr_router_clusters(r) && count != 0; k++) {
            const char *name = pqr_router_cluster_name(r, k);
            pqr_topology *t = pqr_router_refresh(r, name, -1);
            unsigned long long gen = t ? pqr_topology_generation(t) : 1;
            if (gen != last[k]) {
                char when[32];
                struct timespec now;
                struct tm tmv;
                clock_gettime(CLOCK_REALTIME, &now);
                strftime(when, sizeof when, "%H:%M:%S", localtime_r(&now.tv_sec, &tmv));
                printf("%s.%03ld cluster %s: ", when, now.tv_nsec / 1000000, name);
                if (!t)
                    printf("no view (Patroni does not answer)");
                else {
                    int leader = pqr_topology_leader(t);
                    printf("leader %s;",
                           leader >= 0 ? pqr_member_name(t, (size_t)leader) : "(none)");
                    for (size_t i = 0; i < pqr_topology_size(t); i++)
                        printf(" %s=%s/%s/tl%ld", pqr_member_name(t, i),
                               pqr_member_role_name(pqr_member_role_of(t, i)),
                               pqr_member_state(t, i), pqr_member_timeline(t, i));
                }
                printf("\n");
                fflush(stdout);
                last[k] = gen;
                if (count > 0)
                    count--;
            }
            pqr_topology_release(t);
        }
        usleep(500 * 1000);
    }
    free(last);
    pqr_router_close(r);
    return 0;
}

static volatile int agent_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    agent_stop = 1;
}

/* Whether the agent has anything to serve (its unit's ExecCondition=): 0 yes; 1 nothing is
 * configured (the unit is skipped, not failed); 255 a configuration error (the unit fails). */
static int check_config(void)
{
    char err[1024] = "";
    pqr_router *r = pqr_router_open_env(err, sizeof err);

    if (!r && pqr_last_error() == PQR_ERR_NOT_CONFIGURED) {
        fprintf(stderr,
                "pqroute agent: no cluster configured (PQROUTE_CONFIG, PQROUTE_PATRONI, "
                "PQROUTE_ETCD, PQROUTE_CONSUL): nothing to serve\n");
        return 1;
    }
    if (!r) {
        fprintf(stderr, "pqroute agent: %s\n", err);
        return 255;
    }
    printf("pqroute agent: %zu cluster(s) configured\n", pqr_router_clusters(r));
    pqr_router_close(r);
    return 0;
}

/* The host agent, in the foreground (systemd, runit, a container's init run it). */
static int cmd_agent(int argc, char **argv)
{
    struct sigaction sa = {0};
    char err[1024] = "";
    int rc;

    if (argc == 2 && strcmp(argv[1], "--check-config") == 0)
        return check_config();
    if (argc != 1)
        return usage();
    pqr_router *r = open_router(&rc);
    if (!r)
        return rc;
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    fprintf(stderr, "pqroute agent %s: serving %zu cluster(s); stop with SIGTERM\n", pqr_version(),
            pqr_router_clusters(r));
    rc = pqr_agent_run(r, &agent_stop, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "pqroute agent: %s\n", err);
    pqr_router_close(r);
    return rc < 0 ? 3 : 0;
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
    if (strcmp(argv[1], "agent") == 0)
        return cmd_agent(argc - 1, argv + 1);
    if (strcmp(argv[1], "--version") == 0)
        return printf("pqroute %s\n", pqr_version()), 0;
    return usage();
}
