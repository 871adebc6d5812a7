/*
 * Counters, shared by every process of a user on a host: one small file per cluster in the cache
 * directory. `pqroute stats` reads them (also in Prometheus text format).
 *
 * Not mmap()ed: a mapped file that someone truncates raises SIGBUS in whoever touches it next, and
 * that would be the application. Each event is one read-modify-write of 8 bytes under an
 * open-file-description lock on that counter's range (pread/pwrite fail with an error, never with a
 * signal). The lock is taken without waiting: under contention the event is retried a few times
 * and then not counted — counting is best effort, a connect never waits for it. The space is
 * reserved with posix_fallocate() when the file is made, so a full disk is found then, once.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pqr_private.h"

#define STATS_MAGIC 0x7071727374617431ULL /* "pqrstat1" */
#define STATS_SIZE ((off_t)sizeof(uint64_t) * (1 + PQR_STAT_COUNT))
#define LOCK_TRIES 64

const char *const pqr__stat_names[PQR_STAT_COUNT] = {
    "routed_rw", "routed_ro", "fallback_no_view", "fallback_no_member", "retries",
    "refresh_ok", "refresh_failed", "shared_cache_used", "passed_through",
};

void pqr__stats_init(struct pqr_stats *st, struct pqr_cache_dir *d, const char *key)
{
    memset(st, 0, sizeof *st);
    st->dir = d;
    snprintf(st->name, sizeof st->name, "%s.stats", key);
}

/* The file, made (zeroed, space reserved, magic written) if it does not exist; -1 if it is not a
 * counters file of ours. Warnings once per process and file. */
static int stats_open(struct pqr_stats *st, bool create)
{
    struct stat sb;
    uint64_t magic = 0;
    int fd, err;

    if (!st->dir || (fd = pqr__cache_openat(st->dir, st->name, create ? O_RDWR | O_CREAT : O_RDONLY)) < 0)
        return -1;
    if (fstat(fd, &sb) != 0 || !pqr__private_file(&sb) || sb.st_size > STATS_SIZE)
        goto bad;
    if (create && sb.st_size < STATS_SIZE) {
        /* New, or truncated by someone: (re)made with its space reserved. */
        if ((err = posix_fallocate(fd, 0, STATS_SIZE)) != 0) {
            if (!__atomic_exchange_n(&st->warned, true, __ATOMIC_RELAXED))
                PQR_WARN("counters file %s/%s: cannot reserve space (%s); not counting in this "
                         "process",
                         st->dir->path, st->name, strerror(err));
            __atomic_store_n(&st->off, true, __ATOMIC_RELAXED);
            close(fd);
            return -1;
        }
        sb.st_size = STATS_SIZE;
    }
    if (create) {
        /* Several processes may make it at once: the magic is written once, under the lock. */
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = sizeof magic};
        for (int i = 0; i < LOCK_TRIES && fcntl(fd, F_OFD_SETLK, &fl) != 0; i++)
            sched_yield();
        if (pread(fd, &magic, sizeof magic, 0) == sizeof magic && magic == 0) {
            magic = STATS_MAGIC;
            (void)!pwrite(fd, &magic, sizeof magic, 0);
        }
        fl.l_type = F_UNLCK;
        fcntl(fd, F_OFD_SETLK, &fl);
    }
    if (sb.st_size != STATS_SIZE || pread(fd, &magic, sizeof magic, 0) != sizeof magic ||
        magic != STATS_MAGIC)
        goto bad;
    return fd;
bad:
    if (create && !__atomic_exchange_n(&st->warned, true, __ATOMIC_RELAXED))
        PQR_WARN("counters file %s/%s is not a counters file of yours (truncated?); not counting "
                 "in this process",
                 st->dir->path, st->name);
    if (create)
        __atomic_store_n(&st->off, true, __ATOMIC_RELAXED);
    close(fd);
    return -1;
}

void pqr__stat(struct pqr_stats *st, enum pqr_stat which)
{
    off_t at = (off_t)sizeof(uint64_t) * (1 + which);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = at,
                       .l_len = sizeof(uint64_t)};
    uint64_t v;
    int fd;

    if (!st || __atomic_load_n(&st->off, __ATOMIC_RELAXED) || (fd = stats_open(st, true)) < 0)
        return;
    for (int i = 0; i < LOCK_TRIES; i++) {
        if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
            if (pread(fd, &v, sizeof v, at) == sizeof v) {
                v++;
                (void)!pwrite(fd, &v, sizeof v, at);
            }
            fl.l_type = F_UNLCK;
            fcntl(fd, F_OFD_SETLK, &fl);
            break;
        }
        sched_yield();
    }
    close(fd);
}

int pqr__stats_read(struct pqr_stats *st, uint64_t out[PQR_STAT_COUNT])
{
    int fd = stats_open(st, false);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = pread(fd, out, sizeof(uint64_t) * PQR_STAT_COUNT, sizeof(uint64_t));
    close(fd);
    return n == (ssize_t)(sizeof(uint64_t) * PQR_STAT_COUNT) ? 0 : -1;
}
