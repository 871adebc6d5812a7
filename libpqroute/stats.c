/*
 * Counters, shared by every process of a user on a host: one small file per cluster in the cache
 * directory, mapped MAP_SHARED and updated with atomic adds — no lock, a few nanoseconds each, and
 * still right across fork(). `pqroute stats` reads them (also in Prometheus text format).
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pqr_private.h"

#define STATS_MAGIC 0x7071727374617431ULL /* "pqrstat1" */

const char *const pqr__stat_names[PQR_STAT_COUNT] = {
    "routed_rw", "routed_ro", "fallback_no_view", "fallback_no_member", "retries",
    "refresh_ok", "refresh_failed", "shared_cache_used", "passed_through",
};

struct stats_file {
    uint64_t magic;
    uint64_t v[PQR_STAT_COUNT];
};

uint64_t *pqr__stats_map(const char *path)
{
    struct stat st;
    struct stats_file *f;
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & (S_IWGRP | S_IWOTH)) ||
        (st.st_size != (off_t)sizeof *f && (st.st_size != 0 || ftruncate(fd, sizeof *f) != 0))) {
        close(fd);
        return NULL;
    }
    f = mmap(NULL, sizeof *f, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (f == MAP_FAILED)
        return NULL;
    /* A new (zeroed) file gets its magic; any other content is not ours to count into. */
    uint64_t zero = 0;
    __atomic_compare_exchange_n(&f->magic, &zero, STATS_MAGIC, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&f->magic, __ATOMIC_ACQUIRE) != STATS_MAGIC) {
        munmap(f, sizeof *f);
        return NULL;
    }
    return f->v;
}

void pqr__stat(uint64_t *counters, enum pqr_stat which)
{
    if (counters)
        __atomic_fetch_add(&counters[which], 1, __ATOMIC_RELAXED);
}

void pqr__stats_unmap(uint64_t *counters)
{
    if (counters)
        munmap((char *)counters - offsetof(struct stats_file, v), sizeof(struct stats_file));
}
