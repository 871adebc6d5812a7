/*
 * rw-ro: a program linked with -lpqroute. Opens one read-write and one read-only connection to the
 * cluster configured in the environment (PQROUTE_PATRONI, PQROUTE_RW, PQROUTE_RO) and prints where
 * each landed and why.
 *
 *   cc rw-ro.c $(pkg-config --cflags --libs libpqroute) -o rw-ro
 *   PQROUTE_PATRONI=http://10.0.0.1:8008 PQROUTE_RW=db:5432 PQROUTE_RO=db:5433 ./rw-ro "dbname=app user=app"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpqroute.h>

static int show(const char *what, PGconn *conn)
{
    PGresult *res;

    printf("%s: %s\n", what, pqr_last_decision());
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "%s: %s", what, PQerrorMessage(conn));
        return 1;
    }
    res = PQexec(conn, "select pg_is_in_recovery()");
    printf("%s: connected to %s:%s, %s\n", what, PQhostaddr(conn), PQport(conn),
           PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't' ? "a replica"
                                                                                    : "the leader");
    PQclear(res);
    /* What the connection was asked for (the front door): what a reconnect should use. */
    PQconninfoOption *opts = pqr_conninfo(conn);
    printf("%s: asked for", what);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (o->val && o->val[0] && (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "port")))
            printf(" %s=%s", o->keyword, o->val);
    printf("\n");
    PQconninfoFree(opts);
    return 0;
}

int main(int argc, char **argv)
{
    char err[512];
    const char *conninfo = argc > 1 ? argv[1] : "";
    pqr_router *r = pqr_router_open_env(err, sizeof err);
    pqr_topology *t;
    int rc = 0;

    if (!r) {
        fprintf(stderr, "rw-ro: %s\n", err[0] ? err : "set PQROUTE_PATRONI and PQROUTE_RW/RO");
        return 2;
    }
    PGconn *rw = pqr_connect(r, PQR_ROLE_RW, conninfo);
    rc |= show("rw", rw); /* the decision is per thread and per connect: read it right away */
    PGconn *ro = pqr_connect(r, PQR_ROLE_RO, conninfo);
    rc |= show("ro", ro);
    if ((t = pqr_router_topology(r, NULL))) {
        printf("view: %zu members from %s, %.1f s old\n", pqr_topology_size(t),
               pqr_topology_source(t), pqr_topology_age(t));
        for (size_t i = 0; i < pqr_topology_size(t); i++) {
            /* The leader has no lag, and a replica's may be unknown (-1 for both). */
            char lag[32] = "";
            if ((int)i != pqr_topology_leader(t))
                snprintf(lag, sizeof lag, pqr_member_lag(t, i) < 0 ? " lag unknown" : " lag %lld",
                         pqr_member_lag(t, i));
            printf("  %-8s %-14s %-10s %s:%d%s\n", pqr_member_name(t, i),
                   pqr_member_role_name(pqr_member_role_of(t, i)), pqr_member_state(t, i),
                   pqr_member_addr(t, i), pqr_member_port(t, i), lag);
        }
        pqr_topology_release(t);
    }
    PQfinish(rw);
    PQfinish(ro);
    pqr_router_close(r);
    return rc;
}
