/* The public API's error codes: the code beside each message (pqr_last_error), per thread. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include "tap.h"
#include "libpqroute.h"

static void clear_env(void)
{
    extern char **environ;
    for (int again = 1; again;) { /* unsetenv changes environ: start over after each */
        again = 0;
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "PQROUTE_", 8) == 0) {
                char name[128];
                snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
                unsetenv(name);
                again = 1;
                break;
            }
    }
}

static void *other_thread(void *arg)
{
    (void)arg;
    return (void *)(long)pqr_last_error();
}

int main(void)
{
    char err[512];
    pqr_settings *s = pqr_settings_new();
    pqr_router *r;

    ok(pqr_settings_set(NULL, "RW", "x:1", err, sizeof err) == -1 && pqr_last_error() == PQR_ERR_ARGUMENT,
       "no settings: PQR_ERR_ARGUMENT (%s)", err);
    ok(pqr_settings_set(s, "NO_SUCH_SETTING", "1", err, sizeof err) == -1 && pqr_last_error() == PQR_ERR_SETTING,
       "an unknown name: PQR_ERR_SETTING (%s)", err);
    ok(pqr_settings_set(s, "REFRESH_MS", "soon", err, sizeof err) == -1 && pqr_last_error() == PQR_ERR_SETTING,
       "an invalid value: PQR_ERR_SETTING (%s)", err);
    ok(pqr_settings_set(s, "REFRESH_MS", "500", err, sizeof err) == 0 && pqr_last_error() == PQR_OK,
       "a valid value: PQR_OK again");

    /* Per thread: a failure here is not another thread's. */
    pqr_settings_set(s, "REFRESH_MS", "soon", err, sizeof err);
    pthread_t th;
    void *theirs = NULL;
    pthread_create(&th, NULL, other_thread, NULL);
    pthread_join(th, &theirs);
    ok(pqr_last_error() == PQR_ERR_SETTING && (long)theirs == PQR_OK, "the code is the calling thread's");

    r = pqr_router_open(s, err, sizeof err);
    ok(!r && pqr_last_error() == PQR_ERR_NOT_CONFIGURED, "settings that name no cluster: PQR_ERR_NOT_CONFIGURED (%s)", err);
    ok(!pqr_router_open(NULL, err, sizeof err) && pqr_last_error() == PQR_ERR_ARGUMENT, "no settings: PQR_ERR_ARGUMENT");

    pqr_settings_set(s, "PATRONI", "http://127.0.0.1:1", err, sizeof err);
    pqr_settings_set(s, "RW", "127.0.0.1:5432", err, sizeof err);
    pqr_settings_set(s, "REST_TIMEOUT_MS", "300", err, sizeof err);
    /* a directory open to others is never shared (a warning says so) */
    ok(pqr_settings_set(s, "CACHE_DIR", "/tmp", err, sizeof err) == 0, "a cache directory the router will refuse");
    r = pqr_router_open(s, err, sizeof err);
    ok(r && pqr_last_error() == PQR_OK, "a router: PQR_OK (%s)", r ? "" : err);
    ok(!pqr_router_ask(r, "no-such-cluster", 0, err, sizeof err) && pqr_last_error() == PQR_ERR_NO_SUCH,
       "asking a cluster that does not exist: PQR_ERR_NO_SUCH (%s)", err);
    ok(!pqr_router_ask(r, NULL, 0, err, sizeof err) && pqr_last_error() == PQR_ERR_UNREACHABLE,
       "asking an endpoint nothing listens on: PQR_ERR_UNREACHABLE (%s)", err);
    ok(!pqr_router_ask_dcs(r, NULL, err, sizeof err) && pqr_last_error() == PQR_ERR_NO_SUCH,
       "asking the DCS of a cluster that has none: PQR_ERR_NO_SUCH (%s)", err);
    ok(!pqr_router_ask_dcs(NULL, NULL, err, sizeof err) && pqr_last_error() == PQR_ERR_NO_SUCH,
       "no router: PQR_ERR_NO_SUCH, no crash");
    int stop = 1;
    ok(pqr_agent_run(r, &stop, err, sizeof err) == -1 && pqr_last_error() == PQR_ERR_NO_SHARED_CACHE,
       "an agent without a shared cache: PQR_ERR_NO_SHARED_CACHE (%s)", err);
    ok(pqr_agent_run(NULL, &stop, err, sizeof err) == -1 && pqr_last_error() == PQR_ERR_ARGUMENT,
       "an agent without a router: PQR_ERR_ARGUMENT");
    pqr_router_close(r);

    /* The environment: nothing configured is not an error message, but it has a code. */
    clear_env();
    strcpy(err, "x");
    r = access("/etc/libpqroute.conf", F_OK) == 0 ? NULL : pqr_router_open_env(err, sizeof err);
    ok(!r && pqr_last_error() == PQR_ERR_NOT_CONFIGURED && err[0] == 0,
       "nothing in the environment: NULL, an empty message, PQR_ERR_NOT_CONFIGURED (%d)", pqr_last_error());
    setenv("PQROUTE_PATRONI", "http://127.0.0.1:8008", 1);
    setenv("PQROUTE_RW", "127.0.0.1:5432", 1);
    setenv("PQROUTE_REFRESH_MS", "soon", 1);
    r = pqr_router_open_env(err, sizeof err);
    ok(!r && pqr_last_error() == PQR_ERR_SETTING, "a malformed variable: PQR_ERR_SETTING (%s)", err);
    unsetenv("PQROUTE_REFRESH_MS");
    char path[] = "/tmp/pqr-errors-XXXXXX";
    int fd = mkstemp(path);
    ok(fd >= 0 && write(fd, "clusters = ( { name = ", 22) == 22, "a broken configuration file");
    close(fd);
    setenv("PQROUTE_CONFIG", path, 1);
    r = pqr_router_open_env(err, sizeof err);
    ok(!r && pqr_last_error() == PQR_ERR_CONFIG_FILE, "a broken configuration file: PQR_ERR_CONFIG_FILE (%s)", err);
    unlink(path);

    for (int c = PQR_OK; c <= PQR_ERR_ARGUMENT; c++)
        if (!pqr_strerror((pqr_error)c) || !pqr_strerror((pqr_error)c)[0])
            ok(0, "pqr_strerror(%d) has a text", c);
    ok(strcmp(pqr_strerror((pqr_error)999), "unknown error code") == 0, "pqr_strerror: every code has a text, an unknown one too");
    pqr_settings_free(s);
    done_testing();
}
