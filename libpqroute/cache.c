/*
 * The shared cache file: one per user and cluster, so that many short-lived processes on a host
 * cost Patroni about as much REST load as one. It decides where connections (and their passwords)
 * go, so it lives in a directory only its user can write, and a file owned by someone else or
 * writable by others is ignored.
 *
 * The refresh lock is a POSIX record lock (fcntl), not flock(): record locks are not inherited by
 * fork(), so a pre-fork server's children can never keep holding the parent's lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pqr_private.h"

static int check_dir(const char *dir)
{
    struct stat st;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        PQR_WARN("cache directory %s: %s; not sharing the topology cache", dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & (S_IWGRP | S_IWOTH))) {
        PQR_WARN("cache directory %s is not a directory of yours closed to others; not sharing "
                 "the topology cache",
                 dir);
        return -1;
    }
    return 0;
}

int pqr__cache_open(struct pqr_cache_file *f, const struct pqr_settings *s,
                    const struct pqr_cluster_conf *c)
{
    char dir[512];
    const char *xdg = getenv("XDG_RUNTIME_DIR");

    memset(f, 0, sizeof *f);
    f->lock_fd = -1;
    if (s->cache_dir)
        snprintf(dir, sizeof dir, "%s", s->cache_dir);
    else if (xdg && xdg[0] == '/')
        snprintf(dir, sizeof dir, "%s/libpqroute", xdg);
    else
        snprintf(dir, sizeof dir, "/tmp/libpqroute-%u", (unsigned)geteuid());
    if (check_dir(dir) < 0)
        return -1;
    if (asprintf(&f->path, "%s/%s.json", dir, c->key) < 0) {
        f->path = NULL;
        return -1;
    }
    if (asprintf(&f->lock_path, "%s/%s.lock", dir, c->key) < 0) {
        f->lock_path = NULL;
        pqr__cache_close(f);
        return -1;
    }
    if (asprintf(&f->fail_path, "%s/%s.failed", dir, c->key) < 0) {
        f->fail_path = NULL;
        pqr__cache_close(f);
        return -1;
    }
    if (asprintf(&f->stats_path, "%s/%s.stats", dir, c->key) < 0) {
        f->stats_path = NULL;
        pqr__cache_close(f);
        return -1;
    }
    return 0;
}

void pqr__cache_close(struct pqr_cache_file *f)
{
    if (f->lock_fd >= 0)
        close(f->lock_fd);
    free(f->path);
    free(f->lock_path);
    free(f->fail_path);
    free(f->stats_path);
    memset(f, 0, sizeof *f);
    f->lock_fd = -1;
}

static bool owned_and_private(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
           !(st.st_mode & (S_IWGRP | S_IWOTH)) && st.st_size <= PQR_MAX_BODY;
}

struct pqr_topology *pqr__cache_read(const struct pqr_cache_file *f, const struct pqr_settings *s,
                                     const struct pqr_cluster_conf *c)
{
    char *buf = NULL, err[160];
    size_t len = 0;
    ssize_t n;
    struct pqr_topology *t = NULL;
    int fd;

    if (!f->path)
        return NULL;
    fd = open(f->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (!owned_and_private(fd)) {
        PQR_WARN("ignoring cache file %s: not owned by you or writable by others", f->path);
        goto out;
    }
    if (!(buf = malloc(PQR_MAX_BODY + 1)))
        goto out;
    while (len < PQR_MAX_BODY && (n = read(fd, buf + len, PQR_MAX_BODY - len)) > 0)
        len += (size_t)n;
    t = pqr__topo_parse(buf, len, err, sizeof err);
    if (!t)
        PQR_DEBUG("ignoring cache file %s: %s", f->path, err);
    else if (t->fetched_ms <= 0) {
        pqr__topo_unref(t);
        t = NULL;
    } else {
        /* Addresses were resolved by the writer; the allow-list applies again here. */
        pqr__topo_resolve(t, s, c, true);
    }
out:
    free(buf);
    close(fd);
    return t;
}

int pqr__cache_write(const struct pqr_cache_file *f, const struct pqr_topology *t)
{
    char *text = pqr__topo_dump(t), *tmp = NULL;
    size_t len, off = 0;
    int fd = -1, rc = -1;

    if (!text || !f->path || asprintf(&tmp, "%s.%ld.tmp", f->path, (long)getpid()) < 0) {
        tmp = NULL;
        goto out;
    }
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        goto out;
    len = strlen(text);
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n <= 0)
            goto out;
        off += (size_t)n;
    }
    if (close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    rc = rename(tmp, f->path); /* readers see the old file or the new one, never a torn one */
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0 && tmp)
        unlink(tmp);
    free(tmp);
    free(text);
    return rc;
}

int pqr__cache_trylock(struct pqr_cache_file *f)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

    if (f->lock_fd < 0) {
        f->lock_fd = open(f->lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (f->lock_fd < 0)
            return -1;
        if (!owned_and_private(f->lock_fd)) {
            close(f->lock_fd);
            f->lock_fd = -1;
            return -1;
        }
    }
    if (fcntl(f->lock_fd, F_SETLK, &fl) == 0)
        return 1;
    return errno == EAGAIN || errno == EACCES ? 0 : -1;
}

void pqr__cache_unlock(struct pqr_cache_file *f)
{
    struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};

    if (f->lock_fd >= 0)
        fcntl(f->lock_fd, F_SETLK, &fl);
}

/* The marker's mtime is the last failed fetch: a fresh process that sees it does not wait for the
 * REST API again, it goes to the front door at once. */
bool pqr__cache_failed_recently(const struct pqr_cache_file *f, int within_ms)
{
    struct stat st;
    long long mtime_ms;

    if (!f->fail_path || lstat(f->fail_path, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_uid != geteuid())
        return false;
    mtime_ms = (long long)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    return pqr__now_ms() - mtime_ms < within_ms;
}

void pqr__cache_mark_failed(const struct pqr_cache_file *f)
{
    int fd;

    if (!f->fail_path)
        return;
    fd = open(f->fail_path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
        futimens(fd, NULL);
        close(fd);
    }
}
