/* The host agent (agent.c): it keeps the shared cache fresh from Patroni's REST API, the host's
 * other processes take their views from that cache without asking Patroni, and it stops when told.
 * Patroni is a loopback server of the test's own (loopback.h). */
#include <sys/stat.h>
#include <sys/wait.h>
#include "tap.h"
#include "loopback.h"
#include "libpqroute.h"

static const char *VIEWS[] = {
    "{\"members\":[{\"name\":\"n1\",\"role\":\"replica\",\"state\":\"streaming\",\"host\":\"127.0.0.1\",\"port\":15432,\"timeline\":2,\"lag\":0},"
    "{\"name\":\"n2\",\"role\":\"leader\",\"state\":\"running\",\"host\":\"127.0.0.1\",\"port\":15433,\"timeline\":2}]}",
    "{\"members\":[{\"name\":\"n1\",\"role\":\"leader\",\"state\":\"running\",\"host\":\"127.0.0.1\",\"port\":15432,\"timeline\":3},"
    "{\"name\":\"n2\",\"role\":\"replica\",\"state\":\"streaming\",\"host\":\"127.0.0.1\",\"port\":15433,\"timeline\":3,\"lag\":0}]}"};
static int which; /* the view Patroni shows; guarded by the server's mu */

static int answer(struct lb *s, int conn, const struct lb_req *rq)
{
    (void)rq;
    pthread_mutex_lock(&s->mu);
    const char *body = VIEWS[which];
    pthread_mutex_unlock(&s->mu);
    return lb_reply(conn, 200, "Content-Type: application/json\r\n", body);
}

struct agent {
    pqr_router *r;
    volatile int stop;
    int rc;
    char err[256];
};

static void *agent_main(void *arg)
{
    struct agent *a = arg;
    a->rc = pqr_agent_run(a->r, &a->stop, a->err, sizeof a->err);
    return NULL;
}

static pqr_router *router(const char *url, const char *dir, const char *refresh_ms)
{
    pqr_settings *s = pqr_settings_new();
    char err[256];
    pqr_settings_set(s, "PATRONI", url, err, sizeof err);
    pqr_settings_set(s, "RW", "127.0.0.1:5432", err, sizeof err);
    pqr_settings_set(s, "CACHE_DIR", dir, err, sizeof err);
    pqr_settings_set(s, "REFRESH_MS", refresh_ms, err, sizeof err);
    pqr_settings_set(s, "STALE_MS", "600000", err, sizeof err);
    pqr_router *r = pqr_router_open(s, err, sizeof err);
    pqr_settings_free(s);
    return r;
}

/* Another process of the host: its router's view of the cluster, leader's name as exit status
 * (1: n1, 2: n2, 9: none within 3 s; 7: a view that is not the agent's, which runs in the
 * parent: the source of a view the agent serves names it). */
static __attribute__((unused)) int app_leader(const char *url, const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        pqr_router *r = router(url, dir, "600000");
        char agent[64];
        snprintf(agent, sizeof agent, "by pqroute agent %ld", (long)getppid());
        for (int i = 0; i < 300; i++) {
            pqr_topology *t = pqr_router_topology(r, NULL);
            int l = t ? pqr_topology_leader(t) : -1;
            const char *name = l >= 0 ? pqr_member_name(t, (size_t)l) : "";
            int code = strcmp(name, "n1") == 0 ? 1 : strcmp(name, "n2") == 0 ? 2 : 0;
            if (t && !strstr(pqr_topology_source(t) ? pqr_topology_source(t) : "", agent))
                code = 7;
            pqr_topology_release(t);
            if (code)
                _exit(code);
            lb_sleep_ms(10);
        }
        _exit(9);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
    char dir[] = "/tmp/pqr-agent-XXXXXX";
    struct lb srv;
    struct agent a = {0};
    pthread_t th;

    ok(mkdtemp(dir) && chmod(dir, 0700) == 0 && lb_start(&srv, answer, NULL) == 0, "a cache directory and a Patroni");
    a.r = router(srv.url, dir, "200");
    ok(a.r != NULL, "the agent's router");
    pthread_create(&th, NULL, agent_main, &a);
    for (int i = 0; i < 300 && lb_count(&srv, &srv.requests) == 0; i++)
        lb_sleep_ms(10);
    ok(lb_count(&srv, &srv.requests) > 0, "the agent asks Patroni");

#ifdef __SANITIZE_THREAD__
    /* ThreadSanitizer cannot start threads after a multi-threaded fork(), and the host's other
     * processes are forks here; ASan and the plain build run this part. */
    printf("ok %d - other processes # SKIP under ThreadSanitizer\n", ++tap_n);
#else
    /* The agent refreshes every 200 ms: count what reaches Patroni while an application runs,
     * against the same stretch of time with none. */
    int before = lb_count(&srv, &srv.requests);
    long long t0 = lb_now_ms();
    int leader = app_leader(srv.url, dir);
    long long took = lb_now_ms() - t0;
    int during = lb_count(&srv, &srv.requests) - before;
    ok(leader == 2, "another process takes the agent's view from the cache, its source naming the agent: the leader n2 (%d)", leader);
    ok(during <= took / 200 + 2, "... and asks Patroni nothing itself (%d requests in %lld ms, the agent's alone)", during, took);

    pthread_mutex_lock(&srv.mu);
    which = 1;
    pthread_mutex_unlock(&srv.mu);
    lb_sleep_ms(700);
    leader = app_leader(srv.url, dir);
    ok(leader == 1, "the leader changes: the agent's next refresh brings it to the host's processes (%d)", leader);
#endif

    long long t1 = lb_now_ms();
    __atomic_store_n((int *)&a.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    ok(a.rc == 0 && lb_now_ms() - t1 < 2000, "stopped: pqr_agent_run returns 0 within its 100 ms check (%lld ms; %s)",
       lb_now_ms() - t1, a.err);
    int after = lb_count(&srv, &srv.requests);
    lb_sleep_ms(500);
    ok(lb_count(&srv, &srv.requests) == after, "... and asks nothing more");
    pqr_router_close(a.r);
    lb_stop(&srv);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ok(system(cmd) == 0, "clean-up");
    done_testing();
}
