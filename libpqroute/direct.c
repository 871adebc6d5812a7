/* The libpq this library is linked with, as a call table: what the public API and the tests
 * connect through (the shim brings the table of the libpq its application's call was meant for). */
#include "direct.h"

static PGconn *direct_connectdb_params(const struct pqri_libpq *pq, const char *const *k,
                                       const char *const *v, int e)
{
    (void)pq;
    return PQconnectdbParams(k, v, e);
}

static PGconn *direct_connect_start_params(const struct pqri_libpq *pq, const char *const *k,
                                           const char *const *v, int e)
{
    (void)pq;
    return PQconnectStartParams(k, v, e);
}

static PGPing direct_ping_params(const struct pqri_libpq *pq, const char *const *k,
                                 const char *const *v, int e)
{
    (void)pq;
    return PQpingParams(k, v, e);
}

static int direct_reset_start(const struct pqri_libpq *pq, PGconn *conn)
{
    (void)pq;
    return PQresetStart(conn);
}

const struct pqri_libpq pqri_direct_libpq = {
    direct_connectdb_params,
    direct_connect_start_params,
    direct_ping_params,
    PQstatus,
    PQerrorMessage,
    PQfinish,
    PQconninfo,
    PQconninfoFree,
    PQpass,
    PQhostaddr,
    PQport,
    PQconnectPoll,
    PQsocket,
    PQlibVersion,
    direct_reset_start,
    PQconnectionUsedPassword,
    PQconnectionNeedsPassword,
};
