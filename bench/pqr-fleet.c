/*
 * A fleet of hosts in one process (issue 22): N routers, each with its own cache directory, each
 * run by pqr_agent_run() — the agent's real watch, proof-of-life, REST-fallback and back-off code,
 * the same as `pqroute agent` on N hosts — against the cluster the PQROUTE_* environment names.
 *
 * It prints, for every host, each change of the leader written to that host's shared cache file,
 * as seen by inotify on the directory: "LEADER <host> <name> <CLOCK_REALTIME ms>", so the caller
 * can compare the moment each host's file named the new leader with the moment etcd announced it.
 *
 * usage: pqr-fleet HOSTS SECONDS DIR   (DIR/h<i> is host i's cache directory; made if absent)
 * PQR_FLEET_RATE: hosts started per second (default 100: a fleet's agents do not all start in the
 * same millisecond, and 2,000 at once would measure this machine's two cores, not the design).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libpqroute.h"

extern char **environ;

struct host {
    pqr_router *r;
    pthread_t th;
    int wd;
    char dir[512];
    int dirfd;
    char leader[64];
};

static volatile int stop_flag;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void *host_main(void *arg)
{
    struct host *h = arg;
    char err[512];

    if (pqr_agent_run(h->r, &stop_flag, err, sizeof err) != 0)
        fprintf(stderr, "pqr-fleet: %s: %s\n", h->dir, err);
    return NULL;
}

/* The leader a cache file names, or "" (a file being replaced, or another file). Scanned, not
 * parsed: 2,000 hosts' files on every change are the simulator's own cost, which must stay small
 * beside the hosts' (a parse with jansson's file reader took a core). The file is the library's
 * compact JSON: each member an object with "name" before "role". */
static void file_leader(int dirfd, const char *name, char *out, size_t len)
{
    char buf[64 * 1024];
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;

    out[0] = 0;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    const char *role = strstr(buf, "\"role\":\"leader\"");
    if (!role)
        return;
    const char *obj = role;
    while (obj > buf && *obj != '{')
        obj--;
    const char *nm = strstr(obj, "\"name\":\"");
    if (!nm || nm > role)
        return;
    nm += 8;
    size_t k = strcspn(nm, "\"");
    snprintf(out, len, "%.*s", (int)(k < len ? k : len - 1), nm);
}

/* Every PQROUTE_* variable of the environment, as the router's setting of that name. */
static pqr_settings *host_settings(const char *dir)
{
    pqr_settings *s = pqr_settings_new();
    char err[512];

    for (char **e = environ; s && *e; e++) {
        char name[128];
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, "PQROUTE_", 8) || !eq || eq - *e - 8 >= (long)sizeof name ||
            !strncmp(*e, "PQROUTE_CACHE_DIR=", 18) || !strncmp(*e, "PQROUTE_LOG=", 12))
            continue;
        snprintf(name, sizeof name, "%.*s", (int)(eq - *e - 8), *e + 8);
        if (pqr_settings_set(s, name, eq + 1, err, sizeof err) != 0) {
            fprintf(stderr, "pqr-fleet: %s\n", err);
            pqr_settings_free(s);
            return NULL;
        }
    }
    if (s && pqr_settings_set(s, "CACHE_DIR", dir, err, sizeof err) != 0) {
        fprintf(stderr, "pqr-fleet: %s\n", err);
        pqr_settings_free(s);
        return NULL;
    }
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: pqr-fleet HOSTS SECONDS DIR\n");
        return 2;
    }
    int n = atoi(argv[1]);
    long long until = now_ms() + (long long)(atof(argv[2]) * 1000);
    struct host *hosts = calloc(n > 0 ? n : 1, sizeof *hosts);
    struct rlimit fds = {65536, 65536};
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), started = 0;
    char err[512];
    const char *rate_env = getenv("PQR_FLEET_RATE");
    double rate = rate_env ? atof(rate_env) : 100;

    /* about 10 per host: the watch and the proof of life (each a socket and curl's wake-up
     * pair), the directories, the lock; a machine that caps them lower gets its cap */
    if (setrlimit(RLIMIT_NOFILE, &fds) != 0 && getrlimit(RLIMIT_NOFILE, &fds) == 0) {
        fds.rlim_cur = fds.rlim_max;
        setrlimit(RLIMIT_NOFILE, &fds);
    }
    if (!hosts || in < 0 || n <= 0)
        return 1;
    mkdir(argv[3], 0700);
    for (int i = 0; i < n; i++) {
        struct host *h = &hosts[i];
        snprintf(h->dir, sizeof h->dir, "%s/h%d", argv[3], i);
        if (mkdir(h->dir, 0700) != 0 && errno != EEXIST)
            return 1;
        pqr_settings *s = host_settings(h->dir);
        if (!s || !(h->r = pqr_router_open(s, err, sizeof err))) {
            fprintf(stderr, "pqr-fleet: host %d: %s\n", i, s ? err : "bad settings");
            return 1;
        }
        pqr_settings_free(s);
        h->wd = inotify_add_watch(in, h->dir, IN_MOVED_TO);
        h->dirfd = open(h->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pthread_create(&h->th, NULL, host_main, h) == 0)
            started++;
        else
            h->r = NULL; /* not started: not stopped either */
        if (rate > 0)
            usleep((useconds_t)(1e6 / rate));
    }
    fprintf(stderr, "pqr-fleet: %d hosts started\n", started);
    fflush(stderr);
    while (now_ms() < until) {
        char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
        ssize_t len = read(in, buf, sizeof buf);
        if (len <= 0) {
            usleep(2000);
            continue;
        }
        long long at = now_ms();
        for (char *p = buf; p < buf + len;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            size_t nl = ev->len ? strlen(ev->name) : 0;
            if (nl < 6 || strcmp(ev->name + nl - 5, ".json") != 0) /* the view, not its temp */
                continue;
            /* inotify numbers one instance's watches from 1, in the order they were added */
            int first =
                ev->wd >= 1 && ev->wd <= n && hosts[ev->wd - 1].wd == ev->wd ? ev->wd - 1 : 0;
            for (int i = first; i < n; i++) {
                struct host *h = &hosts[i];
                char lead[64];
                if (h->wd != ev->wd)
                    continue;
                file_leader(h->dirfd, ev->name, lead, sizeof lead);
                if (lead[0] && strcmp(lead, h->leader) != 0) {
                    printf("LEADER %d %s %lld\n", i, lead, at);
                    snprintf(h->leader, sizeof h->leader, "%s", lead);
                }
                break;
            }
        }
        fflush(stdout);
    }
    stop_flag = 1;
    for (int i = 0; i < n; i++)
        if (hosts[i].r)
            pthread_join(hosts[i].th, NULL);
    for (int i = 0; i < n; i++)
        if (hosts[i].r)
            pqr_router_close(hosts[i].r);
    free(hosts);
    return 0;
}
