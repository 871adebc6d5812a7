/*
 * pqr-bench: a plain libpq program (run with and without LD_PRELOAD) timing what the benchmarks
 * compare. Prints one line of microseconds: "min median max n".
 *   pqr-bench connect N CONNINFO   N x (connect + SELECT 1 + close); the first one (cache warm-up
 *                                  in a routed process) is not counted
 *   pqr-bench rtt N CONNINFO       one connection, N x SELECT 1
 *   pqr-bench loop SECONDS CONNINFO  connect + SELECT 1 + close until SECONDS pass; prints the count
 *   pqr-bench idle SECONDS CONNINFO  one connect, then SECONDS of nothing: a host whose routed
 *                                  process keeps its view fresh (the fleet simulation)
 */
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int select1(PGconn *c)
{
    PGresult *r = PQexec(c, "select 1");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
}

static int one_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    int ok = PQstatus(c) == CONNECTION_OK && select1(c);
    if (!ok)
        fprintf(stderr, "pqr-bench: %s", PQerrorMessage(c));
    PQfinish(c);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return fprintf(stderr, "usage: pqr-bench connect|rtt|loop|idle N CONNINFO\n"), 2;
    int n = atoi(argv[2]);
    const char *ci = argv[3];
    double *t = calloc((size_t)(n > 0 ? n : 1), sizeof *t);

    if (strcmp(argv[1], "loop") == 0) {
        double end = now_us() + n * 1e6;
        long count = 0, fails = 0;
        while (now_us() < end)
            one_connect(ci) ? count++ : fails++;
        printf("%ld %ld\n", count, fails);
        return 0;
    }
    if (strcmp(argv[1], "idle") == 0) {
        int ok = one_connect(ci);
        sleep((unsigned)n);
        printf("%d %d\n", ok, !ok);
        return 0;
    }
    if (strcmp(argv[1], "connect") == 0) {
        if (!one_connect(ci))
            return 1;
        for (int i = 0; i < n; i++) {
            double t0 = now_us();
            if (!one_connect(ci))
                return 1;
            t[i] = now_us() - t0;
        }
    } else if (strcmp(argv[1], "rtt") == 0) {
        PGconn *c = PQconnectdb(ci);
        if (PQstatus(c) != CONNECTION_OK)
            return fprintf(stderr, "pqr-bench: %s", PQerrorMessage(c)), 1;
        for (int i = 0; i < 50; i++)
            select1(c);
        for (int i = 0; i < n; i++) {
            double t0 = now_us();
            select1(c);
            t[i] = now_us() - t0;
        }
        PQfinish(c);
    } else {
        return 2;
    }
    qsort(t, (size_t)n, sizeof *t, cmp);
    printf("%.1f %.1f %.1f %d\n", t[0], t[n / 2], t[n - 1], n);
    free(t);
    return 0;
}
