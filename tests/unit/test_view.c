/*
 * The views (view.c, refresher.c, fetch.c, failures.c, serve.c): snapshots set, published and read
 * by reference, and their staleness; the memory of failures, forgiven by a changed view; the front
 * door's rest; the panic and the wait for a willing leader; a fork child, which keeps the snapshots
 * but starts its own refresher. No Patroni: views are injected, and the one REST endpoint refuses
 * (127.0.0.1:9), so every fetch fails at once and is counted.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "tap.h"
#include "failures.h"
#include "refresher.h"
#include "resolve.h"
#include "log.h"

#define MEMBER(name, role, state, host)                                                            \
    "{\"name\":\"" name "\",\"role\":\"" role "\",\"state\":\"" state "\",\"host\":\"" host        \
    "\",\"port\":5432,\"timeline\":4,\"lag\":0}"
/* Three views with three generations: n1 leads, n2 leads, nobody leads. */
#define VIEW(role1, state1, role2, state2)                                                         \
    "{\"members\":[" MEMBER("n1", role1, state1, "10.0.0.1") ","                                   \
    MEMBER("n2", role2, state2, "10.0.0.2") "]}"
static const char *const N1_LEADS = VIEW("leader", "running", "replica", "streaming");
static const char *const N2_LEADS = VIEW("replica", "streaming", "leader", "running");
static const char *const NO_LEADER = VIEW("replica", "streaming", "replica", "streaming");

static char base[] = "/tmp/pqr-view-XXXXXX";

/* A set of views of one cluster, its cache in its own directory under base (mode: 0700 shares,
 * 0777 is refused, so the set shares nothing). */
static struct pqri_views *views(const char *name, mode_t mode, const char *stale,
                                 const char *refresh)
{
    struct pqr_settings s;
    struct pqri_views *vs;
    char err[256], dir[128];

    snprintf(dir, sizeof dir, "%s/%s", base, name);
    mkdir(dir, 0700);
    chmod(dir, mode);
    pqri_settings_init(&s);
    pqri_settings_set(&s, "PATRONI", "http://127.0.0.1:9", err, sizeof err);
    pqri_settings_set(&s, "RW", "fd.example:5432", err, sizeof err);
    pqri_settings_set(&s, "CACHE_DIR", dir, err, sizeof err);
    pqri_settings_set(&s, "STALE_MS", stale, err, sizeof err);
    pqri_settings_set(&s, "REFRESH_MS", refresh, err, sizeof err);
    pqri_settings_set(&s, "REST_TIMEOUT_MS", "500", err, sizeof err);
    pqri_settings_finish(&s, err, sizeof err);
    vs = pqri_views_new(&s, err, sizeof err);
    pqri_settings_clear(&s);
    if (!vs) {
        printf("Bail out! views: %s\n", err);
        exit(1);
    }
    return vs;
}

/* A view of vs's cluster, age_ms old (negative: newer than now). */
static struct pqr_topology *topo(struct pqri_views *vs, const char *json, long long age_ms)
{
    struct pqr_topology *t = pqri_topo_parse(json, strlen(json), NULL, 0);
    pqri_topo_filter(t, pqri_views_settings(vs), pqri_view_conf(pqri_views_at(vs, 0)));
    t->fetched_ms = pqri_now_ms() - age_ms;
    t->mono_ms = pqri_mono_ms() - age_ms;
    return t;
}

static void set(struct pqri_views *vs, const char *json, long long age_ms)
{
    struct pqr_topology *t = topo(vs, json, age_ms);
    pqri_view_set(pqri_views_at(vs, 0), t);
    pqri_topo_unref(t);
}

static void publish(struct pqri_views *vs, const char *json, long long age_ms, uint64_t seq)
{
    struct pqr_topology *t = topo(vs, json, age_ms);
    t->seq = seq;
    pqri_view_publish(pqri_views_at(vs, 0), t);
    pqri_topo_unref(t);
}

/* The generation of the snapshot (0: none). */
static uint64_t gen_now(struct pqri_view *v)
{
    struct pqr_topology *t = pqri_view_snapshot(v, 0);
    uint64_t g = t ? t->gen : 0;
    pqri_topo_unref(t);
    return g;
}

static uint64_t gen_of(struct pqri_views *vs, const char *json)
{
    struct pqr_topology *t = topo(vs, json, 0);
    uint64_t g = t->gen;
    pqri_topo_unref(t);
    return g;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t counter(struct pqri_view *v, enum pqri_stat which)
{
    uint64_t c[PQRI_STAT_COUNT] = {0};
    pqri_view_stats(v, c);
    return c[which];
}

static struct pqri_candidate cand(const char *addr, int port)
{
    struct pqri_candidate c = {.member = 0, .port = port};
    snprintf(c.addr, sizeof c.addr, "%s", addr);
    return c;
}

static bool has(const struct pqri_failure *f, size_t n, const char *addr, int port)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].addr, addr) == 0 && f[i].port == port)
            return true;
    return false;
}

static size_t failures(struct pqri_view *v)
{
    struct pqri_failure f[PQRI_MAX_FAILURES * 2];
    return pqri_view_failures(v, f, PQRI_MAX_FAILURES * 2);
}

static void test_snapshot(void)
{
    struct pqri_views *vs = views("snap", 0700, "30000", "1000");
    struct pqri_view *v = pqri_views_at(vs, 0);
    struct pqr_topology *t, *got;

    ok(pqri_view_snapshot(v, 0) == NULL, "no view yet and Patroni refusing: no snapshot");

    t = topo(vs, N1_LEADS, 0);
    pqri_view_set(v, t);
    got = pqri_view_snapshot(v, 0);
    ok(got == t, "the snapshot is the view set");
    is_int(__atomic_load_n(&t->refs, __ATOMIC_RELAXED), 3,
           "a reference for the caller, the view and the reader");
    pqri_topo_unref(got);
    is_int(__atomic_load_n(&t->refs, __ATOMIC_RELAXED), 2, "the reader's reference is its own");
    pqri_topo_unref(t);

    set(vs, N1_LEADS, 5000);
    got = pqri_view_snapshot(v, 0);
    ok(got && pqri_mono_ms() - got->mono_ms >= 5000,
       "a view older than two refresh intervals, younger than STALE_MS, still served");
    pqri_topo_unref(got);
    set(vs, N1_LEADS, 31000);
    ok(pqri_view_snapshot(v, 0) == NULL, "a view older than STALE_MS is not served");
    ok(pqri_view_refresh(v, 0, 0) == NULL, "nor by a refresh that does not wait");

    set(vs, N1_LEADS, 100);
    publish(vs, N2_LEADS, 200, 0);
    is_int(gen_now(v), gen_of(vs, N1_LEADS),
           "an older view published does not replace the snapshot");
    publish(vs, N2_LEADS, 0, 0);
    is_int(gen_now(v), gen_of(vs, N2_LEADS), "a newer one does");
    got = pqri_view_snapshot(v, 0);
    t = topo(vs, N1_LEADS, 0);
    t->mono_ms = got->mono_ms; /* the same age */
    pqri_topo_unref(got);
    pqri_view_publish(v, t);
    is_int(gen_now(v), gen_of(vs, N2_LEADS),
           "a view as old, without a higher sequence number, does not");
    t->seq = 7;
    pqri_view_publish(v, t);
    is_int(gen_now(v), gen_of(vs, N1_LEADS),
           "a view as old with a higher sequence number (the shared file's) does");
    pqri_topo_unref(t);
    pqri_views_free(vs);

    vs = views("stale", 0700, "300", "100");
    v = pqri_views_at(vs, 0);
    set(vs, N1_LEADS, 0);
    ok((got = pqri_view_snapshot(v, 0)) != NULL, "STALE_MS 300: a new view is served");
    pqri_topo_unref(got);
    sleep_ms(450);
    ok(pqri_view_snapshot(v, 0) == NULL, "STALE_MS 300: 450 ms later it is not");
    pqri_views_free(vs);
}

static void test_failures(void)
{
    struct pqri_views *vs = views("unshared", 0777, "30000", "1000");
    struct pqri_view *v = pqri_views_at(vs, 0);
    struct pqri_candidate c[PQRI_MAX_FAILURES + 3];
    struct pqri_failure f[PQRI_MAX_FAILURES * 2];
    uint64_t g = gen_of(vs, N1_LEADS);
    size_t n;
    char addr[32];

    c[0] = cand("10.0.0.1", 5432);
    c[1] = cand("10.0.0.2", 5432);
    set(vs, N1_LEADS, 0);
    is_int(failures(v), 0, "a new view: no failures");
    pqri_view_note_failures(v, g, c, 2);
    n = pqri_view_failures(v, f, PQRI_MAX_FAILURES * 2);
    ok(n == 2 && has(f, n, "10.0.0.1", 5432) && has(f, n, "10.0.0.2", 5432) && !f[0].down &&
           f[0].gen == g,
       "two members failed under the view: both remembered, with the view's generation");
    pqri_view_note_failures(v, g, c, 1);
    is_int(failures(v), 2, "a member failing again is remembered once");
    c[2] = cand("10.0.0.3", 5432);
    pqri_view_note_failures(v, g + 1, &c[2], 1);
    is_int(failures(v), 2, "a failure under another view than the current one is not remembered");
    publish(vs, N1_LEADS, -10, 0);
    is_int(failures(v), 2, "a newer view with the same generation keeps them");
    publish(vs, N2_LEADS, -20, 0);
    is_int(failures(v), 0, "a changed view forgives them");
    pqri_view_note_failures(v, gen_of(vs, N2_LEADS), c, 2);
    set(vs, N2_LEADS, 0);
    is_int(failures(v), 0, "a view set (injected) forgets them too");

    for (size_t i = 0; i < PQRI_MAX_FAILURES + 3; i++) {
        snprintf(addr, sizeof addr, "10.0.1.%zu", i + 1);
        c[i] = cand(addr, 5432);
    }
    pqri_view_note_failures(v, gen_of(vs, N2_LEADS), c, PQRI_MAX_FAILURES + 3);
    n = pqri_view_failures(v, f, PQRI_MAX_FAILURES * 2);
    snprintf(addr, sizeof addr, "10.0.1.%d", PQRI_MAX_FAILURES + 3);
    ok(n == PQRI_MAX_FAILURES && has(f, n, addr, 5432),
       "more failures than PQRI_MAX_FAILURES: the newest replaces an older one (%zu kept)", n);
    is_int(pqri_view_failures(v, f, 3), 3, "the caller's room is respected");

    set(vs, N1_LEADS, 0);
    c[0] = cand("10.0.0.1", 5432);
    pqri_view_note_down(v, g, &c[0], true, NULL);
    n = pqri_view_failures(v, f, PQRI_MAX_FAILURES * 2);
    ok(n == 1 && f[0].down && f[0].silent && f[0].gen == g && strcmp(f[0].addr, "10.0.0.1") == 0,
       "a member down (silent) is remembered as down and silent");
    pqri_views_free(vs);

    /* Another process of the host (a second set of views on the same directory) learns of a member
     * down, not of one that merely failed. */
    struct pqri_views *a = views("shared", 0700, "30000", "1000");
    struct pqri_views *b = views("shared", 0700, "30000", "1000");
    set(a, N1_LEADS, 0);
    set(b, N1_LEADS, 0);
    pqri_view_note_failures(pqri_views_at(a, 0), g, &c[1], 1);
    is_int(failures(pqri_views_at(b, 0)), 0,
           "a failure is not shared with the host's other processes");
    pqri_view_note_down(pqri_views_at(a, 0), g, &c[0], false, NULL);
    n = pqri_view_failures(pqri_views_at(b, 0), f, PQRI_MAX_FAILURES * 2);
    ok(n == 1 && f[0].down && !f[0].silent && strcmp(f[0].addr, "10.0.0.1") == 0,
       "a member down is shared with the host's other processes");
    pqri_views_free(a);
    pqri_views_free(b);

    vs = views("short", 0777, "300", "100");
    v = pqri_views_at(vs, 0);
    set(vs, N1_LEADS, 0);
    pqri_view_note_failures(v, g, c, 1);
    is_int(failures(v), 1, "STALE_MS 300: a failure is remembered");
    sleep_ms(450);
    is_int(failures(v), 0, "STALE_MS 300: 450 ms later it is not");
    pqri_views_free(vs);
}

static void test_door(void)
{
    struct pqri_views *vs = views("door", 0777, "300", "100");
    struct pqri_view *v = pqri_views_at(vs, 0);

    ok(!pqri_view_door_resting(v), "the front door is not resting before it failed");
    pqri_view_door_failed(v);
    ok(pqri_view_door_resting(v), "after it failed with every member, it rests");
    pqri_view_door_answered(v);
    ok(!pqri_view_door_resting(v), "once it answers again, it does not");
    pqri_view_door_failed(v);
    sleep_ms(450);
    ok(!pqri_view_door_resting(v), "STALE_MS 300: 450 ms after it failed, it rests no more");
    pqri_views_free(vs);
}

struct later {
    struct pqri_views *vs;
    const char *json;
    long after_ms;
};

static void *publish_later(void *arg)
{
    struct later *l = arg;
    sleep_ms(l->after_ms);
    publish(l->vs, l->json, 0, 0);
    return NULL;
}

/* Refresh attempts (all failing) within ms. */
static uint64_t attempts(struct pqri_view *v, long ms)
{
    uint64_t before = counter(v, PQRI_STAT_REFRESH_FAILED);
    sleep_ms(ms);
    return counter(v, PQRI_STAT_REFRESH_FAILED) - before;
}

static void test_panic(void)
{
    struct pqri_views *vs = views("panic", 0700, "30000", "3000");
    struct pqri_view *v = pqri_views_at(vs, 0);
    uint64_t g = gen_of(vs, N1_LEADS), n;
    struct pqr_topology *t;
    struct later l = {vs, N2_LEADS, 100};
    pthread_t th;

    set(vs, N1_LEADS, 0);
    long long t0 = pqri_mono_ms();
    t = pqri_view_await_leader(v, g, 150);
    ok(!t && pqri_mono_ms() - t0 >= 140,
       "await_leader: no other view with a running leader within 150 ms: none");
    pthread_create(&th, NULL, publish_later, &l);
    t0 = pqri_mono_ms();
    t = pqri_view_await_leader(v, g, 5000);
    ok(t && t->gen == gen_of(vs, N2_LEADS) && pqri_mono_ms() - t0 < 4000,
       "await_leader: a view with another leader, published 100 ms later, ends the wait (%lld ms)",
       pqri_mono_ms() - t0);
    pqri_topo_unref(t);
    pthread_join(th, NULL);
    set(vs, N1_LEADS, 0);
    publish(vs, NO_LEADER, -10, 0);
    ok(!pqri_view_await_leader(v, g, 100),
       "await_leader: another view without a running leader does not do");
    set(vs, N2_LEADS, 31000);
    ok(!pqri_view_await_leader(v, g, 100), "await_leader: nor one older than STALE_MS");

    /* The refresher: REFRESH_MS 3000, and a recent view in hand, so no attempt for 3 s unless a
     * panic asks every 100 ms. */
    set(vs, N1_LEADS, 0);
    pqri_topo_unref(pqri_view_refresh(v, 0, 0));
    n = attempts(v, 800);
    ok(n <= 1, "no panic: at most one refresh attempt in 800 ms (%llu)", (unsigned long long)n);
    pqri_view_panic(v, g);
    is_int(counter(v, PQRI_STAT_PANIC_REFRESHES), 1, "a panic is counted");
    n = attempts(v, 800);
    ok(n >= 4, "a panic: refresh attempts every 100 ms (%llu in 800 ms)", (unsigned long long)n);
    publish(vs, NO_LEADER, -10, 0);
    n = attempts(v, 800);
    ok(n >= 4, "a view without a running leader does not end it (%llu in 800 ms)",
       (unsigned long long)n);
    publish(vs, N2_LEADS, -20, 0);
    sleep_ms(200); /* an attempt under way ends */
    n = attempts(v, 800);
    ok(n <= 1, "a view with another running leader ends it (%llu in 800 ms)",
       (unsigned long long)n);
    pqri_views_free(vs);
}

/* In a child: its first snapshot is the inherited view, and a refresh that waits returns as soon as
 * the child's own refresher made an attempt (counted): exit status 0, else which check failed. */
static int child_checks(struct pqri_view *v, uint64_t gen)
{
    struct pqr_topology *t;
    uint64_t before = counter(v, PQRI_STAT_REFRESH_FAILED);

    alarm(10); /* a lock the fork left held hangs the child: it dies of SIGALRM */
    if (!(t = pqri_view_snapshot(v, 0)) || t->gen != gen)
        return 1;
    pqri_topo_unref(t);
    long long t0 = pqri_mono_ms();
    pqri_topo_unref(pqri_view_refresh(v, pqri_mono_ms(), 6000));
    if (pqri_mono_ms() - t0 >= 5000)
        return 2;
    if (counter(v, PQRI_STAT_REFRESH_FAILED) <= before)
        return 3;
    return 0;
}

static int run_child(struct pqri_view *v, uint64_t gen)
{
    int st;
    pid_t pid = fork();

    if (pid == 0)
        _exit(child_checks(v, gen));
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static int stop_flag;

static void *churn(void *arg)
{
    struct pqri_views *vs = arg;
    for (long i = 0; !__atomic_load_n(&stop_flag, __ATOMIC_RELAXED); i++)
        publish(vs, i % 2 ? N1_LEADS : N2_LEADS, -i, 0);
    return NULL;
}

static void *resolving(void *arg)
{
    char addr[64];
    (void)arg;
    while (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED))
        pqri_dns_resolve("localhost", addr, sizeof addr, pqri_mono_ms() + 50);
    return NULL;
}

static void test_fork(void)
{
#ifdef __SANITIZE_THREAD__
    /* ThreadSanitizer cannot start threads after a multi-threaded fork(); ASan runs this part. */
    printf("ok %d - fork # SKIP under ThreadSanitizer\n", ++tap_n);
    return;
#endif
    struct pqri_views *vs = views("fork", 0700, "30000", "200");
    struct pqri_view *v = pqri_views_at(vs, 0);
    uint64_t g = gen_of(vs, N1_LEADS);
    pthread_t th[2];
    char addr[64];
    int bad = 0;

    /* A view a second old: not recent with REFRESH_MS 200, so every refresher asks at once. */
    set(vs, N1_LEADS, 1000);
    pqri_topo_unref(pqri_view_snapshot(v, 0));
    is_int(run_child(v, g), 0,
           "fork with the refresher running: the child's first snapshot is the inherited view, "
           "and its own refresher answers its refresh");
    pqri_views_stop(vs);
    sleep_ms(300);
    is_int(run_child(v, g), 0,
           "fork after the refresher was stopped: the child's starts all the same");
    pqri_views_free(vs);

    /* Forks while other threads take the views' lock and the resolver's. */
    vs = views("forks", 0700, "30000", "200");
    v = pqri_views_at(vs, 0);
    set(vs, N1_LEADS, 0);
    pqri_topo_unref(pqri_view_snapshot(v, 0));
    pthread_create(&th[0], NULL, churn, vs);
    pthread_create(&th[1], NULL, resolving, NULL);
    for (int i = 0; i < 20 && !bad; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            struct pqr_topology *t;
            alarm(5);
            if (!(t = pqri_view_snapshot(v, 0)))
                _exit(1);
            pqri_topo_unref(t);
            pqri_dns_resolve("localhost", addr, sizeof addr, pqri_mono_ms() + 100);
            _exit(0);
        }
        int st;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    __atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    is_int(bad, 0,
           "20 forks while threads publish views and resolve names: every child snapshots and "
           "resolves");
    pqri_dns_resolve("localhost", addr, sizeof addr, pqri_mono_ms() + 100);
    ok(1, "and the parent resolves afterwards");
    pqri_views_free(vs);
}

int main(void)
{
    alarm(60); /* a lock left held by a fork handler hangs: the test dies instead */
    if (!mkdtemp(base))
        return 1;
    pqri_log_set(PQRI_LOG_ERROR);
    test_snapshot();
    test_failures();
    test_door();
    test_panic();
    test_fork();
    return done_testing();
}
