/* The host cache: the "REST failed recently" marker, the lock, and the shared view's sequence. */
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "tap.h"
#include "hostcache.h"
#include "log.h"

int main(void)
{
    char dir[] = "/tmp/pqr-hostcache-XXXXXX", err[256], path[512];
    struct pqr_settings s;
    struct pqri_cache_dir d;
    struct pqri_cache_file f, g;

    if (!mkdtemp(dir))
        return 1;
    pqri_log_set(PQRI_LOG_ERROR);
    pqri_settings_init(&s);
    pqri_settings_set(&s, "CACHE_DIR", dir, err, sizeof err);
    ok(pqri_cachedir_open(&d, &s) == 0, "the cache directory opens");
    pqri_cache_init(&f, &d, "c1");
    pqri_cache_init(&g, &d, "c1");

    ok(!pqri_cache_failed_recently(&f, 5000), "no marker: Patroni did not fail recently");
    pqri_cache_mark_failed(&f);
    ok(pqri_cache_failed_recently(&f, 5000), "a marker made now: failed recently");
    snprintf(path, sizeof path, "%s/c1.failed", dir);
    struct timespec old[2] = {{time(NULL) - 60, 0}, {time(NULL) - 60, 0}};
    utimensat(AT_FDCWD, path, old, 0);
    ok(!pqri_cache_failed_recently(&f, 5000), "a marker a minute old: not recent");
    struct timespec future[2] = {{time(NULL) + 3600, 0}, {time(NULL) + 3600, 0}};
    utimensat(AT_FDCWD, path, future, 0);
    ok(!pqri_cache_failed_recently(&f, 5000), "a marker stamped an hour ahead: not trusted");

    is_int(pqri_cache_trylock(&f), 1, "the refresh lock is taken");
    pid_t pid = fork();
    if (pid == 0) {
        struct pqri_cache_file h;
        pqri_cache_init(&h, &d, "c1");
        _exit(pqri_cache_trylock(&h) == 0 ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "another process finds it taken");
    pqri_cache_unlock(&f);
    is_int(f.lock_fd, -1, "unlocking closes the lock file: no descriptor is kept");
    is_int(pqri_cache_trylock(&g), 1, "and it can be taken again");
    pqri_cache_unlock(&g);

    pqri_cachedir_close(&d);
    pqri_settings_clear(&s);
    snprintf(path, sizeof path, "rm -rf %s", dir);
    if (system(path) != 0)
        return 1;
    return done_testing();
}
