/*
 * pqr-loadstress: the dynamic loader shared with threads the shim does not see (issue 20, rows
 * 1-3). For SECONDS, at once:
 *   - DEEPBIND loads and unloads of a tiny library (each one makes the shim patch that object);
 *   - loads and unloads of a library with many relocations;
 *   - loads and unloads of distinct libpq-linked -z now libraries (relocated while the others run);
 *   - dlsym(libpq, "PQconnectdb") in a loop (as ctypes does);
 *   - loads and unloads of a plugin whose constructor looks libpq's PQconnectdb up with dlsym();
 *   - fork()s whose child looks PQconnectdb up and exits.
 *   usage: pqr-loadstress SECONDS DIR N   (DIR holds tiny.so, heavy.so, pq0.so..pqN-1.so, plugin.so)
 * PQR_NO_DEEPBIND=1: no RTLD_DEEPBIND (the sanitizers' runtimes refuse it), for ASan/TSan builds.
 * Prints "done <loads>" and exits 0; a crash or a deadlock (the caller's timeout) is the failure.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *dir;
static int deepbind = RTLD_DEEPBIND;
static int stop; /* atomic */
static long loads[6];

static void path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

/* One library loaded and unloaded in a loop: its name, dlopen flags and counter. */
struct loop {
    const char *name;
    int flags, counter;
    bool deep;
};

static void *load_loop(void *arg)
{
    const struct loop *l = arg;
    char p[1024];
    path(p, sizeof p, l->name);
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        void *h = dlopen(p, l->flags | (l->deep ? deepbind : 0));
        if (h)
            dlclose(h), __atomic_fetch_add(&loads[l->counter], 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *pq_linked(void *arg)
{
    char p[1024], name[32];
    int n = (int)(long)arg;
    for (int i = 0; !__atomic_load_n(&stop, __ATOMIC_RELAXED); i = (i + 1) % n) {
        snprintf(name, sizeof name, "pq%d.so", i);
        path(p, sizeof p, name);
        void *h = dlopen(p, RTLD_NOW | (i % 2 ? deepbind : 0));
        if (h)
            dlclose(h), __atomic_fetch_add(&loads[2], 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *lookups(void *arg)
{
    void *pq = arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED))
        if (dlsym(pq, "PQconnectdb"))
            __atomic_fetch_add(&loads[3], 1, __ATOMIC_RELAXED);
    return NULL;
}

static void *forks(void *arg)
{
    void *pq = arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(dlsym(pq, "PQconnectdb") ? 0 : 1);
        if (pid > 0 && waitpid(pid, NULL, 0) == pid)
            __atomic_fetch_add(&loads[5], 1, __ATOMIC_RELAXED);
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t th[6];
    void *pq;

    if (argc != 4)
        return 2;
    dir = argv[2];
    if (!(pq = dlopen("libpq.so.5", RTLD_NOW | RTLD_GLOBAL))) {
        fprintf(stderr, "no libpq: %s\n", dlerror());
        return 2;
    }
    /* Once before the threads: the child of a fork() then finds this libpq known. (A child that is
     * the first to see a libpq makes the shim pin it with dlopen(), which, like any dlopen() in the
     * child of a threaded program, may meet the loader's state of the moment of the fork.) */
    if (!dlsym(pq, "PQconnectdb"))
        return 2;
    static const struct loop deep = {"tiny.so", RTLD_NOW, 0, true}, heavy = {"heavy.so", RTLD_NOW, 1, false},
                             plugin = {"plugin.so", RTLD_NOW, 4, false};
    if (getenv("PQR_NO_DEEPBIND"))
        deepbind = 0;
    pthread_create(&th[0], NULL, load_loop, (void *)&deep);
    pthread_create(&th[1], NULL, load_loop, (void *)&heavy);
    pthread_create(&th[2], NULL, pq_linked, (void *)(long)atoi(argv[3]));
    pthread_create(&th[3], NULL, lookups, pq);
    pthread_create(&th[4], NULL, load_loop, (void *)&plugin);
    pthread_create(&th[5], NULL, forks, pq);
    sleep((unsigned)atoi(argv[1]));
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    printf("done deep=%ld heavy=%ld pq_linked=%ld dlsym=%ld plugin=%ld fork=%ld\n", loads[0], loads[1],
           loads[2], loads[3], loads[4], loads[5]);
    return 0;
}
