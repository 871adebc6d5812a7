/*
 * pqr-secret-client: a libpq program that connects with a password read from a file, as a
 * privileged program would (the security tests make it setuid root). Prints "secure=<AT_SECURE>"
 * and the outcome.  usage: pqr-secret-client PASSWORD_FILE CONNINFO
 */
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>

#include <libpq-fe.h>

int main(int argc, char **argv)
{
    char pw[128] = "";
    FILE *f;

    if (argc < 3 || !(f = fopen(argv[1], "r")))
        return 2;
    if (!fgets(pw, sizeof pw, f))
        pw[0] = 0;
    fclose(f);
    pw[strcspn(pw, "\n")] = 0;
    const char *kw[] = {"dbname", "password", NULL}, *val[] = {argv[2], pw, NULL};
    PGconn *c = PQconnectdbParams(kw, val, 1);
    printf("secure=%lu %s\n", getauxval(AT_SECURE), c && PQstatus(c) == CONNECTION_OK ? "OK" : "FAIL");
    PQfinish(c);
    return 0;
}
