/*
 * Threads and processes: many threads planning routed connections while another publishes new
 * views and failures are noted; fork() in a loop, with a timer signal firing, while the refresher
 * runs. Run under ThreadSanitizer by `make check-tsan` to prove the locking, under ASan by
 * `make check-asan`; here it proves there is no deadlock, crash or corrupted candidate list.
 */
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pthread.h>
#include "tap.h"
#include "direct.h"
#include "plan.h"
#include "failures.h"
#include "refresher.h"
#include "log.h"

#define VIEW(leader, other)                                                                        \
    "{\"members\":["                                                                               \
    "{\"name\":\"n1\",\"role\":\"" leader "\",\"state\":\"running\",\"host\":\"10.0.0.1\",\"port\":5432,\"timeline\":4,\"lag\":0},"   \
    "{\"name\":\"n2\",\"role\":\"" other "\",\"state\":\"running\",\"host\":\"10.0.0.2\",\"port\":5432,\"timeline\":4,\"lag\":0},"    \
    "{\"name\":\"n3\",\"role\":\"replica\",\"state\":\"streaming\",\"host\":\"10.0.0.3\",\"port\":5432,\"timeline\":4,\"lag\":0}]}"

static struct pqri_views *r;
static int stop;
static long planned[8], bad[8];

static long planned_so_far(void)
{
    long n = 0;
    for (int i = 0; i < 8; i++)
        n += __atomic_load_n(&planned[i], __ATOMIC_RELAXED);
    return n;
}

static void publish_view(int i)
{
    const char *v = i % 2 ? VIEW("replica", "leader") : VIEW("leader", "replica");
    struct pqr_topology *t = pqri_topo_parse(v, strlen(v), NULL, 0);
    pqri_topo_filter(t, pqri_views_settings(r), pqri_view_conf(pqri_views_at(r, 0)));
    t->fetched_ms = pqri_now_ms() + i;
    t->mono_ms = pqri_mono_ms() + i; /* strictly newer each time */
    pqri_view_publish(pqri_views_at(r, 0), t);
    pqri_topo_unref(t);
}

static void *planner(void *arg)
{
    long id = (long)arg;
    const char *kw[] = {"host", "port", "user", NULL}, *val[] = {"fd.example", "5432", "u", NULL};
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        struct pqri_plan *p = pqri_plan_new(r, &pqri_direct_libpq, kw, val, 0, PQRI_NONBLOCKING, PQR_ROLE_AUTO);
        if (!p)
            continue;
        __atomic_fetch_add(&planned[id], 1, __ATOMIC_RELAXED);
        unsigned seen = 0;
        for (size_t i = 0; i < p->ncands; i++)
            seen |= 1u << p->cands[i].member;
        if (p->ncands != 3 || seen != 7)
            bad[id]++;
        pqri_view_note_failures(p->v, p->t->gen, p->cands, 1);
        pqri_plan_free(p);
    }
    return NULL;
}

static void on_alarm(int sig)
{
    (void)sig;
}

int main(void)
{
    struct pqr_settings s;
    char err[256], dir[] = "/tmp/pqr-conc-XXXXXX";
    pthread_t th[8], pub;
    long total = 0, nbad = 0;

    if (!mkdtemp(dir))
        return 1;
    pqri_settings_init(&s);
    pqri_settings_set(&s, "PATRONI", "http://127.0.0.1:9", err, sizeof err);
    pqri_settings_set(&s, "RW", "fd.example:5432", err, sizeof err);
    pqri_settings_set(&s, "CACHE_DIR", dir, err, sizeof err);
    pqri_settings_set(&s, "STALE_MS", "86400000", err, sizeof err);
    pqri_settings_finish(&s, err, sizeof err);
    pqri_log_set(PQRI_LOG_ERROR);
    r = pqri_views_new(&s, err, sizeof err);
    pqri_settings_clear(&s);
    publish_view(0);

    for (long i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, planner, (void *)i);
    /* 400 views at least, and on until the planners have planned 1000 connects (a count, not a
     * rate: a loaded machine only takes longer), 60 s at most */
    long long until = pqri_mono_ms() + 60000;
    for (int i = 1; i < 400 || (planned_so_far() <= 1000 && pqri_mono_ms() < until); i++) {
        publish_view(i);
        usleep(1000);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += planned[i];
        nbad += bad[i];
    }
    (void)pub;
    ok(total > 1000, "8 threads planned %ld routed connections while 400 views or more were published", total);
    is_int(nbad, 0, "every candidate list held each member exactly once");

    /* fork() in a loop with a 1 kHz timer signal, while the refresher thread runs: every child
     * plans a connection from its inherited snapshot and exits cleanly; nothing deadlocks. */
#ifdef __SANITIZE_THREAD__
    /* ThreadSanitizer cannot start threads after a multi-threaded fork(); ASan runs this part. */
    printf("ok %d - fork loop # SKIP under ThreadSanitizer\n", ++tap_n);
    pqri_views_free(r);
    return done_testing();
#endif
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    int children_ok = 0, n = 100;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            const char *kw[] = {"host", "port", "user", NULL}, *val[] = {"fd.example", "5432", "u", NULL};
            struct pqri_plan *p = pqri_plan_new(r, &pqri_direct_libpq, kw, val, 0, PQRI_NONBLOCKING, PQR_ROLE_AUTO);
            _exit(p && p->ncands == 3 ? 0 : 3);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
            ;
        children_ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    is_int(children_ok, n, "%d forked children under a 1 kHz signal each planned a routed connection", n);

    pqri_views_free(r);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return done_testing();
}
