/*
 * pqr-ext: an "extension module" as binary wheels ship them: linked to a bundled libpq under a
 * private soname, loaded RTLD_LOCAL. Built by tests/cluster/t16-loading.sh against a renamed copy
 * of the system libpq. Prints what pqr-dlhost prints, and which libpq made the connection.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

__attribute__((visibility("default"))) int ext_query(const char *conninfo);

int ext_query(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    Dl_info info;

    if (!c || PQstatus(c) != CONNECTION_OK) {
        printf("FAIL %.*s\n", c ? (int)strcspn(PQerrorMessage(c), "\n") : 4, c ? PQerrorMessage(c) : "NULL");
        PQfinish(c);
        return 1;
    }
    PGresult *r = PQexec(c, "select concat_ws(' ', host(inet_server_addr()), pg_is_in_recovery())");
    printf("OK %s via %s\n", PQgetvalue(r, 0, 0), dladdr((void *)PQstatus, &info) ? info.dli_fname : "?");
    PQclear(r);
    PQfinish(c);
    return 0;
}
