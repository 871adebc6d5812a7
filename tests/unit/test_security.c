/*
 * What an attacker or an unlucky operator can do to the pieces that need no server: the allow-list's
 * prefix arithmetic, the cache directory held by fd, borrowed descriptors, truncated counters,
 * clocks, forged views, credentials and control characters in what is printed, log I/O under the
 * router lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include "tap.h"
#include "plan.h"
#include "refresher.h"
#include "log.h"
#include "patroni.h"

static char base[] = "/tmp/pqr-sec-XXXXXX";

static void set_or_die(struct pqr_settings *s, const char *k, const char *v)
{
    char err[256];
    if (pqri_settings_set(s, k, v, err, sizeof err) < 0) {
        printf("Bail out! %s\n", err);
        exit(1);
    }
}

static struct pqr_settings settings(const char *cache_dir, const char *allow, const char *mport)
{
    struct pqr_settings s;
    char err[256];
    pqri_settings_init(&s);
    set_or_die(&s, "PATRONI", "http://127.0.0.1:9");
    set_or_die(&s, "RW", "door:5432");
    set_or_die(&s, "CACHE_DIR", cache_dir);
    if (allow)
        set_or_die(&s, "ALLOW", allow);
    if (mport)
        set_or_die(&s, "MEMBER_PORT", mport);
    if (pqri_settings_finish(&s, err, sizeof err) != 0) {
        printf("Bail out! %s\n", err);
        exit(1);
    }
    return s;
}

static void allow_list(void)
{
    struct pqr_settings s;
    pqri_settings_init(&s);
    set_or_die(&s, "ALLOW", "10.0.0.0/12");
    ok(pqri_cidr_allows(s.allow, s.nallow, "10.15.255.255"), "/12: the last address inside");
    ok(!pqri_cidr_allows(s.allow, s.nallow, "10.16.0.0"), "/12: the first address outside (partial byte masked)");
    ok(!pqri_cidr_allows(s.allow, s.nallow, "10.128.0.1"), "/12: high bit of the partial byte outside");
    set_or_die(&s, "ALLOW", "192.168.1.128/25");
    ok(pqri_cidr_allows(s.allow, s.nallow, "192.168.1.200") && !pqri_cidr_allows(s.allow, s.nallow, "192.168.1.127"),
       "/25: one bit of the last byte");
    set_or_die(&s, "ALLOW", "10.0.0.0/8");
    ok(!pqri_cidr_allows(s.allow, s.nallow, "a00::1"), "an IPv6 address whose first byte is 10 is not in 10.0.0.0/8");
    set_or_die(&s, "ALLOW", "::/0");
    ok(!pqri_cidr_allows(s.allow, s.nallow, "1.2.3.4"), "::/0 allows no IPv4 address");
    set_or_die(&s, "ALLOW", "0.0.0.0/0");
    ok(!pqri_cidr_allows(s.allow, s.nallow, "::1") && pqri_cidr_allows(s.allow, s.nallow, "8.8.8.8"),
       "0.0.0.0/0 allows every IPv4 address and no IPv6 one");
    pqri_settings_clear(&s);
}

static struct pqr_topology *view(const char *json)
{
    char err[200];
    struct pqr_topology *t = pqri_topo_parse(json, strlen(json), err, sizeof err);
    if (!t)
        printf("# parse: %s\n", err);
    return t;
}

static void forged_views(void)
{
    struct pqr_topology *t = view(
        "{\"members\":[{\"name\":\"n\\u001b]0;pwned\\u0007\",\"role\":\"leader\",\"state\":\"running\\r\","
        "\"host\":\"db1\",\"addr\":\"10.0.0.1,10.0.0.9\",\"port\":5432},"
        "{\"name\":\"ok\",\"role\":\"replica\",\"state\":\"streaming\",\"host\":\"h\",\"addr\":\"::ffff:10.0.0.2\",\"port\":5432}]}");
    ok(t && t->n == 2, "forged view parses");
    if (!t)
        return;
    is_str(t->m[0].addr, "", "an addr that is not one numeric address (\"10.0.0.1,10.0.0.9\") is not taken");
    ok(t->m[1].addr[0] != 0, "a numeric addr is taken (%s)", t->m[1].addr);
    is_str(t->m[0].name, "n\\x1b]0;pwned\\x07", "control characters in a member name are escaped");
    is_str(t->m[0].state, "running\\x0d", "and in its state");
    char *dump = pqri_topo_dump(t);
    bool clean = dump != NULL;
    for (const char *q = dump; q && *q; q++)
        clean = clean && (unsigned char)*q >= 0x20;
    ok(clean, "the dump carries no control character");
    free(dump);
    pqri_topo_unref(t);
    char big[1024] = "{\"members\":[{\"name\":\"x\",\"role\":\"leader\",\"port\":5432,\"host\":\"";
    for (int i = 0; i < 100; i++)
        strcat(big, "\\u007f");
    strcat(big, "\"}]}");
    t = view(big);
    ok(t && t->n == 0, "a host whose escaped form is too long is not used (round trip stays exact)");
    pqri_topo_unref(t);

    char out[128];
    pqri_url_display(out, sizeof out, "http://user:s3cr@t@10.0.0.1:8008/cluster");
    is_str(out, "http://10.0.0.1:8008/cluster", "userinfo (with an @ in the password) is dropped for display");
    pqri_url_display(out, sizeof out, "https://10.0.0.1:8008/x@y");
    is_str(out, "https://10.0.0.1:8008/x@y", "an @ in the path is not userinfo");
    char esc[64];
    pqri_escape(esc, sizeof esc, "a\x1b[2Jb\nc\x7f");
    is_str(esc, "a\\x1b[2Jb\\x0ac\\x7f", "escape: ESC, newline and DEL as \\xNN");
}

static char *tmpdir(const char *name, mode_t mode)
{
    static char p[4][256];
    static int i;
    char *d = p[i++ % 4];
    snprintf(d, 256, "%s/%s", base, name);
    mkdir(d, 0700);
    chmod(d, mode);
    return d;
}

/* The directory removed under a running process (systemd's RuntimeDirectory= when the agent's
 * service stops) and made again: noticed (st_nlink 0), and the new one is used, with one warning. */
static void directory_removed(void)
{
    struct pqr_settings s = settings(tmpdir("removed", 0700), NULL, NULL);
    struct pqri_cache_dir d;
    struct pqri_cache_file f;
    char cmd[700], path[400];

    ok(pqri_cachedir_open(&d, &s) == 0, "removed: the directory is held");
    pqri_cache_init(&f, &d, "k");
    struct pqr_topology *t = view("{\"members\":[{\"name\":\"a\",\"role\":\"leader\",\"state\":\"running\",\"host\":\"10.0.0.1\",\"port\":5432}]}");
    t->fetched_ms = pqri_now_ms();
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -m 0700 '%s'", d.path, d.path);
    ok(system(cmd) == 0, "removed: the directory removed and made again (an agent restart)");
    ok(pqri_cache_write(&f, t) == 0, "removed: a write goes on");
    snprintf(path, sizeof path, "%s/k.json", d.path);
    ok(access(path, F_OK) == 0, "removed: into the directory now at the path, which the agent serves");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d.path);
    ok(system(cmd) == 0 && pqri_cache_write(&f, t) == 0 && access(path, F_OK) == 0,
       "removed and not made again: made by this process (0700), as at start");
    pqri_topo_unref(t);
    pqri_cachedir_close(&d);
    pqri_settings_clear(&s);
}

static void cache_directory(void)
{
    struct pqr_settings s = settings(tmpdir("open", 0777), NULL, NULL);
    struct pqri_cache_dir d;
    ok(pqri_cachedir_open(&d, &s) < 0, "a cache directory writable by others is refused");
    pqri_settings_clear(&s);

    s = settings(tmpdir("held", 0700), NULL, NULL);
    ok(pqri_cachedir_open(&d, &s) == 0, "a private cache directory is held");
    char moved[300];
    snprintf(moved, sizeof moved, "%s/held-moved", base);
    rename(d.path, moved);
    ok(symlink("/nonexistent-root-only", d.path) == 0, "the directory renamed, a symlink in its place");
    struct pqri_cache_file f;
    pqri_cache_init(&f, &d, "k");
    struct pqr_topology *t = view("{\"members\":[{\"name\":\"a\",\"role\":\"leader\",\"state\":\"running\",\"host\":\"10.0.0.1\",\"port\":5432}]}");
    t->fetched_ms = pqri_now_ms();
    t->seq = 7;
    ok(pqri_cache_write(&f, t) == 0, "write goes on");
    char path[400];
    snprintf(path, sizeof path, "%s/k.json", moved);
    ok(access(path, F_OK) == 0, "into the directory that was opened, not through the symlink");
    struct pqr_topology *u = pqri_cache_read(&f, &s, &s.clusters[0]);
    ok(u && u->seq == 7, "the sequence number travels through the file");
    pqri_topo_unref(u);

    /* A daemon closes every fd, then the number is reused for the application's own locked file. */
    int dfd = d.id->fd;
    close(dfd);
    snprintf(path, sizeof path, "%s/app-file", base);
    int app = open(path, O_RDWR | O_CREAT, 0600);
    if (app != dfd) {
        dup2(app, dfd);
        close(app);
        app = dfd;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    ok(fcntl(app, F_SETLK, &fl) == 0, "the application locks its own file on the reused number");
    ok(pqri_cache_trylock(&f) == -1 && pqri_cache_write(&f, t) != 0 && !pqri_cache_read(&f, &s, &s.clusters[0]),
       "the cache notices the fd is not its directory any more and stops sharing");
    pqri_cache_unlock(&f);
    pqri_cache_mark_failed(&f);
    pqri_cachedir_close(&d);
    ok(fcntl(app, F_GETFD) >= 0, "the application's fd is still open after the cache is closed");
    pid_t pid = fork();
    if (pid == 0) {
        struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        int fd = open(path, O_RDWR);
        _exit(fd >= 0 && fcntl(fd, F_GETLK, &q) == 0 && q.l_type == F_WRLCK && q.l_pid == getppid() ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the application's lock is intact");
    close(app);
    pqri_topo_unref(t);
    pqri_settings_clear(&s);
}

static void shared_view_rules(void)
{
    struct pqr_settings s = settings(tmpdir("rules", 0700), "127.0.0.0/8", "6432");
    struct pqri_cache_dir d;
    struct pqri_cache_file f;
    pqri_cachedir_open(&d, &s);
    pqri_cache_init(&f, &d, "r");
    struct pqr_topology *t = view("{\"members\":["
        "{\"name\":\"in\",\"role\":\"leader\",\"state\":\"running\",\"host\":\"127.0.0.11\",\"port\":5432},"
        "{\"name\":\"out\",\"role\":\"replica\",\"state\":\"streaming\",\"host\":\"10.9.9.9\",\"port\":5432}]}");
    /* written by a process with other settings: addresses resolved, nothing filtered */
    pqri_numeric_addr("127.0.0.11", t->m[0].addr);
    pqri_numeric_addr("10.9.9.9", t->m[1].addr);
    t->fetched_ms = pqri_now_ms();
    pqri_cache_write(&f, t);
    struct pqr_topology *u = pqri_cache_read(&f, &s, &s.clusters[0]);
    ok(u && u->n == 2, "read back");
    if (u) {
        is_str(u->m[1].addr, "", "the allow-list is applied again to a view read from the shared file");
        is_int(u->m[0].port, 6432, "and the member port override");
        is_str(u->m[0].addr, "127.0.0.11", "an allowed member keeps its address");
    }
    pqri_topo_unref(u);

    /* A writer whose clock was an hour ahead. */
    t->fetched_ms = pqri_now_ms() + 3600 * 1000LL;
    pqri_cache_write(&f, t);
    ok(!pqri_cache_read(&f, &s, &s.clusters[0]), "a view stamped an hour in the future is not used");
    t->fetched_ms = pqri_now_ms() - 1500;
    pqri_cache_write(&f, t);
    u = pqri_cache_read(&f, &s, &s.clusters[0]);
    long long age = u ? pqri_mono_ms() - u->mono_ms : -1;
    ok(u && age >= 1500 && age < 11500, "a file's age carries over to the monotonic clock (%lld ms)", age);
    pqri_topo_unref(u);

    /* Counters: a truncated file must not raise SIGBUS, a full disk is found once. */
    struct pqri_stats st;
    uint64_t v[PQRI_STAT_COUNT];
    pqri_stats_init(&st, &d, "r");
    pqri_stat(&st, PQRI_STAT_ROUTED_RW);
    pqri_stat(&st, PQRI_STAT_ROUTED_RW);
    ok(pqri_stats_read(&st, v) == 0 && v[PQRI_STAT_ROUTED_RW] == 2, "counters count");
    char path[400];
    snprintf(path, sizeof path, "%s/r.stats", d.path);
    ok(truncate(path, 0) == 0, "someone truncates the counters file");
    pqri_stat(&st, PQRI_STAT_ROUTED_RO);
    ok(pqri_stats_read(&st, v) == 0 && v[PQRI_STAT_ROUTED_RO] == 1, "no signal; the file is made again and counts");
    ok(truncate(path, 4) == 0, "truncated inside the magic");
    pqri_stat(&st, PQRI_STAT_ROUTED_RO);
    ok(1, "no signal on a torn file");
    pqri_topo_unref(t);
    pqri_cachedir_close(&d);
    pqri_settings_clear(&s);
}

/* stderr is a pipe nobody reads: a warning written while publishing must not hold the router lock. */
static struct pqri_views *blocked_router;
static pid_t publisher_tid;

static void *publish_unresolved(void *arg)
{
    struct pqr_topology *t = arg;
    __atomic_store_n(&publisher_tid, gettid(), __ATOMIC_RELEASE);
    pqri_view_publish(pqri_views_at(blocked_router, 0), t);
    return NULL;
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "not ok - the router lock was held across a blocked write (deadlock)\n";
    (void)!write(STDOUT_FILENO, msg, sizeof msg - 1);
    _exit(1);
}

static void no_io_under_lock(void)
{
    struct pqr_settings s = settings(tmpdir("io", 0700), NULL, NULL);
    char err[200];
    int p[2], saved = dup(STDERR_FILENO);
    pthread_t th;

    blocked_router = pqri_views_new(&s, err, sizeof err);
    struct pqr_topology *t = view("{\"members\":[{\"name\":\"unresolved\",\"role\":\"leader\",\"state\":\"running\",\"host\":\"no-such-host.invalid\",\"port\":5432}]}");
    t->mono_ms = pqri_mono_ms();
    t->fetched_ms = pqri_now_ms();
    if (pipe(p) != 0)
        return;
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    while (write(p[1], "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 64) > 0)
        ;
    fcntl(p[1], F_SETFL, 0); /* full, and writes now block */
    dup2(p[1], STDERR_FILENO);
    pthread_create(&th, NULL, publish_unresolved, t);
    /* until the publisher is stuck writing its warning (in write(2), says /proc), 10 s at most */
    for (int i = 0; i < 1000; i++) {
        char path[64], call[32] = "";
        pid_t tid = __atomic_load_n(&publisher_tid, __ATOMIC_ACQUIRE);
        snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
        FILE *f = tid ? fopen(path, "r") : NULL;
        if (f) {
            (void)!fgets(call, sizeof call, f);
            fclose(f);
        }
        if (atoi(call) == SYS_write)
            break;
        usleep(10 * 1000);
    }
    signal(SIGALRM, on_alarm);
    alarm(5);
    struct pqr_topology *got = pqri_view_snapshot(pqri_views_at(blocked_router, 0), 0);
    alarm(0);
    ok(got != NULL, "a connect takes the view while a warning is stuck on a full stderr");
    pqri_topo_unref(got);
    char drain[65536];
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    while (read(p[0], drain, sizeof drain) > 0)
        ;
    pthread_join(th, NULL);
    dup2(saved, STDERR_FILENO);
    close(p[0]), close(p[1]), close(saved);
    pqri_views_free(blocked_router);
    pqri_topo_unref(t);
    pqri_settings_clear(&s);
}

/* A member's api_url decides where a REST request (and our credentials) go: the base is taken
 * only from a plain authority. */
static void api_base(void)
{
    char *b = pqri_api_base("http://10.0.0.1:8008/patroni");
    is_str(b, "http://10.0.0.1:8008", "api_url: the base of a plain URL");
    free(b);
    const char *bad[] = {"http://node1:x@evil.example:8008/patroni", "http://node1@evil/patroni",
                         "http://node1?@evil/", "http://node1#@evil/", "http://node1\\@evil/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        b = pqri_api_base(bad[i]);
        ok(!b, "api_url with user info, a query or a fragment in the authority refused (%s)", bad[i]);
        free(b);
    }
}

int main(void)
{
    if (!mkdtemp(base))
        return 1;
    api_base();
    allow_list();
    forged_views();
    cache_directory();
    directory_removed();
    shared_view_rules();
    no_io_under_lock();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    (void)!system(cmd);
    return done_testing();
}
