/*
 * pqr-cancel: a routed connection's cancel reaches its own backend, with the old API (PQcancel) and,
 * where this libpq has it (17+), the new one (PQcancelCreate + PQcancelBlocking); and the protocol
 * version it negotiated (PQfullProtocolVersion, 18+). Built against any libpq-fe.h: the newer
 * functions are looked up at run time.
 *   usage: pqr-cancel CONNINFO
 * Prints "proto N", then for each API "cancel <api>: OK <SQLSTATE>" (57014: cancelled by request)
 * or "cancel <api>: FAIL <why>" or "cancel <api>: absent".
 */
#include <dlfcn.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef void *cancel_create_fn(PGconn *);
typedef int cancel_blocking_fn(void *);
typedef void cancel_finish_fn(void *);
typedef int proto_fn(const PGconn *);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Starts a long query, cancels it with api, and reports how the query ended. */
static void one(PGconn *c, const char *api)
{
    char err[256] = "";
    int sent = 0;
    double t0 = now_s();

    if (!PQsendQuery(c, "select pg_sleep(30)")) {
        printf("cancel %s: FAIL send: %s", api, PQerrorMessage(c));
        return;
    }
    struct timespec pause = {0, 300 * 1000000L}; /* the query is running on the server */
    nanosleep(&pause, NULL);
    if (strcmp(api, "PQcancel") == 0) {
        PGcancel *k = PQgetCancel(c);
        sent = k && PQcancel(k, err, sizeof err);
        PQfreeCancel(k);
    } else {
        cancel_create_fn *create = (cancel_create_fn *)dlsym(RTLD_DEFAULT, "PQcancelCreate");
        cancel_blocking_fn *blocking = (cancel_blocking_fn *)dlsym(RTLD_DEFAULT, "PQcancelBlocking");
        cancel_finish_fn *finish = (cancel_finish_fn *)dlsym(RTLD_DEFAULT, "PQcancelFinish");
        if (!create || !blocking || !finish) {
            printf("cancel %s: absent\n", api);
            PQrequestCancel(c); /* end the query anyway */
            while (PQgetResult(c))
                ;
            return;
        }
        void *k = create(c);
        sent = k && blocking(k);
        if (k)
            finish(k);
    }
    PGresult *r = PQgetResult(c);
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    printf("cancel %s: %s %s (%.1f s)\n", api, sent && state && strcmp(state, "57014") == 0 ? "OK" : "FAIL",
           state ? state : err, now_s() - t0);
    PQclear(r);
    while ((r = PQgetResult(c)))
        PQclear(r);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    PGconn *c = PQconnectdb(argv[1]);
    if (PQstatus(c) != CONNECTION_OK) {
        printf("FAIL %s", PQerrorMessage(c));
        return 1;
    }
    proto_fn *full = (proto_fn *)dlsym(RTLD_DEFAULT, "PQfullProtocolVersion");
    printf("connected to %s:%s proto %d\n", PQhostaddr(c), PQport(c), full ? full(c) : PQprotocolVersion(c) * 10000);
    one(c, "PQcancel");
    one(c, "PQcancelBlocking");
    PQfinish(c);
    return 0;
}
