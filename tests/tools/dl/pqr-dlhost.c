/*
 * pqr-dlhost: a program that does not link libpq and reaches it the ways plugin hosts and FFI
 * layers do, for the interception tests.
 *   pqr-dlhost reload CONNINFO         dlopen libpq RTLD_LOCAL, connect (dlsym), dlclose it, map
 *                                      something at its old address, load it again, connect
 *   pqr-dlhost bundle EXT.so CONNINFO [SYSTEM]   dlopen an extension linked to a bundled libpq
 *                                      (private soname) RTLD_LOCAL and connect through it; SYSTEM:
 *                                      load the system libpq RTLD_GLOBAL first
 * Each connection prints "OK <server address> <in recovery>" or "FAIL <libpq's message>".
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

typedef void *connectdb_fn(const char *);
typedef int status_fn(const void *);
typedef void *exec_fn(void *, const char *);
typedef char *getvalue_fn(const void *, int, int);
typedef char *errmsg_fn(const void *);
typedef void finish_fn(void *);

static int query(void *h, const char *conninfo)
{
    connectdb_fn *connectdb;
    status_fn *status;
    exec_fn *exec;
    getvalue_fn *getvalue;
    errmsg_fn *errmsg;
    finish_fn *finish;

    *(void **)&connectdb = dlsym(h, "PQconnectdb");
    *(void **)&status = dlsym(h, "PQstatus");
    *(void **)&exec = dlsym(h, "PQexec");
    *(void **)&getvalue = dlsym(h, "PQgetvalue");
    *(void **)&errmsg = dlsym(h, "PQerrorMessage");
    *(void **)&finish = dlsym(h, "PQfinish");
    if (!connectdb || !status || !exec || !getvalue || !errmsg || !finish) {
        printf("FAIL missing symbols\n");
        return 1;
    }
    void *c = connectdb(conninfo);
    if (!c || status(c) != 0) {
        printf("FAIL %.*s\n", c ? (int)strcspn(errmsg(c), "\n") : 4, c ? errmsg(c) : "NULL");
        if (c)
            finish(c);
        return 1;
    }
    void *r = exec(c, "select concat_ws(' ', host(inet_server_addr()), pg_is_in_recovery())");
    printf("OK %s\n", getvalue(r, 0, 0));
    finish(c);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 0;

    if (argc >= 3 && strcmp(argv[1], "reload") == 0) {
        for (int round = 0; round < 2; round++) {
            void *h = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
            Dl_info info;
            if (!h)
                return printf("FAIL dlopen: %s\n", dlerror()), 1;
            rc |= query(h, argv[2]);
            if (!dladdr(dlsym(h, "PQstatus"), &info))
                return 1;
            dlclose(h);
            if (round == 0) {
                /* one page where libpq's code began: a stale pointer into it now faults */
                void *m = mmap(info.dli_fbase, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
                printf("%s\n", m == info.dli_fbase ? "unloaded; its old address is mapped to something else" : "still loaded");
            }
        }
        return rc;
    }
    if (argc >= 4 && strcmp(argv[1], "bundle") == 0) {
        if (argc > 4 && !dlopen("libpq.so.5", RTLD_NOW | RTLD_GLOBAL))
            return printf("FAIL system libpq: %s\n", dlerror()), 1;
        void *ext = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
        int (*run)(const char *);
        if (!ext)
            return printf("FAIL dlopen: %s\n", dlerror()), 1;
        *(void **)&run = dlsym(ext, "ext_query");
        return run ? run(argv[3]) : 1;
    }
    fprintf(stderr, "usage: pqr-dlhost reload CONNINFO | bundle EXT.so CONNINFO [SYSTEM]\n");
    return 64;
}
