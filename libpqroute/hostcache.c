/*
 * The host cache: the shared cache directory and every file in it — one topology file per user and
 * cluster, so that many short-lived processes on a host cost Patroni about as much REST load as
 * one, the refresh lock, the "REST failed recently" marker and the counters.
 *
 * The files decide where connections (and their passwords) go, so the directory is *held*, not
 * named: it is opened once (O_DIRECTORY|O_NOFOLLOW), its owner and mode are checked on that fd, and
 * every later open, rename and unlink is relative to it. Renaming the directory and putting a
 * symlink in its place changes nothing for us.
 *
 * We live in other people's processes, and daemons close every fd they did not open. So the held
 * directory fd is checked (st_dev/st_ino) before every use — an fd number the application now uses
 * for something else is dropped without being touched — and every other fd is opened and closed
 * around its use. The refresh lock is a POSIX record lock (fcntl), not flock(): record locks are not
 * inherited by fork(), so a pre-fork server's children can never keep holding the parent's lock.
 *
 * A host agent running as its own user (PQROUTE_CACHE_OWNER; the Debian package's /run/pqroute)
 * serves the processes of every user from its directory: they read it and never write it, trust
 * only its owner's files there, and see its lock with F_GETLK (a lock they cannot take).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostcache.h"
#include "addr.h"
#include "log.h"

/* A shared view stamped further in the future than this came from a clock that has since been
 * corrected (or a forged file): it is stale, whatever its stamp says. */
#define FUTURE_SKEW_MS 1000

/* The directory's owner, if we may use it: ours (read and written), or the host agent's
 * (PQROUTE_CACHE_OWNER) or root's, read only — a user can make neither, so no other user of the
 * host can write what our connections follow. Never writable by group or others. */
static bool trusted_dir(const struct pqri_cache_dir *d, const struct stat *st, bool *readonly)
{
    if (!S_ISDIR(st->st_mode) || (st->st_mode & (S_IWGRP | S_IWOTH)))
        return false;
    *readonly = st->st_uid != geteuid();
    return !*readonly || st->st_uid == 0 || st->st_uid == d->agent;
}

/* The directory at path, made if missing, held and checked; NULL with one warning (none if
 * quiet). */
static struct pqri_dir_id *hold(const struct pqri_cache_dir *d, const char *dir, bool quiet)
{
    struct pqri_dir_id *id;
    struct stat st;
    bool readonly = false;
    int fd;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        if (!quiet)
            PQRI_WARN("cache directory %s: %s; not sharing the topology cache", dir,
                      strerror(errno));
        return NULL;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !trusted_dir(d, &st, &readonly)) {
        if (!quiet)
            PQRI_WARN(
                "cache directory %s is not a directory of yours closed to others (nor of root "
                "or PQROUTE_CACHE_OWNER); not sharing the topology cache",
                dir);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (!(id = malloc(sizeof *id))) {
        close(fd);
        return NULL;
    }
    *id = (struct pqri_dir_id){
        fd, st.st_dev, st.st_ino, st.st_uid, st.st_mode & 0044 ? 0644 : 0600, readonly, NULL};
    return id;
}

/* id's fd if it is still that directory (a daemon may have closed it and reused the number). */
static void close_held(const struct pqri_dir_id *id)
{
    struct stat st;
    if (fstat(id->fd, &st) == 0 && st.st_dev == id->dev && st.st_ino == id->ino)
        close(id->fd);
}

/* Without PQROUTE_CACHE_DIR and XDG_RUNTIME_DIR: /tmp/libpqroute-<uid>, unless another user made
 * that name first (anyone can, in /tmp); then the home directory's ~/.cache/libpqroute, which
 * nobody else can, and which every process of this user then finds the same way. */
static struct pqri_dir_id *hold_default(const struct pqri_cache_dir *d, char *dir, size_t len)
{
    struct pqri_dir_id *id;
    const struct passwd *pw;
    char home[400];

    snprintf(dir, len, "/tmp/libpqroute-%u", (unsigned)geteuid());
    if ((id = hold(d, dir, true)))
        return id;
    /* getpwuid, not $HOME: a privileged process does not take its caller's directory */
    if (!(pw = getpwuid(geteuid())) || !pw->pw_dir || pw->pw_dir[0] != '/') {
        PQRI_WARN(
            "cache directory %s is not a directory of yours closed to others, and there is no "
            "home directory to use instead; not sharing the topology cache",
            dir);
        return NULL;
    }
    snprintf(home, sizeof home, "%s/.cache", pw->pw_dir);
    mkdir(home, 0700);
    PQRI_WARN("cache directory %s is not a directory of yours closed to others (made by another "
              "user?); using %s/libpqroute",
              dir, home);
    snprintf(dir, len, "%s/libpqroute", home);
    return hold(d, dir, false);
}

int pqri_cachedir_open(struct pqri_cache_dir *d, const struct pqr_settings *s)
{
    char dir[512];
    struct pqri_dir_id *id;

    memset(d, 0, sizeof *d);
    if (s->cache_owner) {
        const struct passwd *pw = getpwnam(s->cache_owner);
        if (pw)
            d->agent = pw->pw_uid;
        else
            PQRI_WARN("PQROUTE_CACHE_OWNER: no user %s; trusting only your own or root's cache "
                      "directory",
                      s->cache_owner);
    }
    /* secure_getenv: a privileged process does not take its caller's directory */
    const char *xdg = secure_getenv("XDG_RUNTIME_DIR");
    if (s->cache_dir) {
        snprintf(dir, sizeof dir, "%s", s->cache_dir);
        id = hold(d, dir, false);
    } else if (xdg && xdg[0] == '/') {
        snprintf(dir, sizeof dir, "%s/libpqroute", xdg);
        id = hold(d, dir, false);
    } else {
        id = hold_default(d, dir, sizeof dir);
    }
    if (!id)
        return -1;
    if (!(d->path = strdup(dir))) {
        close_held(id);
        free(id);
        return -1;
    }
    d->id = id;
    return 0;
}

/* The held directory was removed: the one now at its path, held with the same checks. The old
 * descriptor stays open (another thread may be using it this instant; one per replacement). */
static int replaced(struct pqri_cache_dir *d, struct pqri_dir_id *old)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    struct pqri_dir_id *id;

    pthread_mutex_lock(&lock);
    id = __atomic_load_n(&d->id, __ATOMIC_ACQUIRE);
    if (id == old) { /* not replaced by another thread meanwhile */
        PQRI_WARN(
            "cache directory %s was removed (the agent's service stopped?); using the one now "
            "at its path",
            d->path);
        if ((id = hold(d, d->path, false)))
            id->prev = old;
        else
            __atomic_store_n(&d->retired, old, __ATOMIC_RELEASE); /* not sharing: freed at close */
        __atomic_store_n(&d->id, id, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&lock);
    return id ? id->fd : -1;
}

int pqri_cachedir_fd(struct pqri_cache_dir *d)
{
    struct pqri_dir_id *id = __atomic_load_n(&d->id, __ATOMIC_ACQUIRE);
    struct stat st;

    if (!id)
        return -1;
    if (fstat(id->fd, &st) == 0 && st.st_dev == id->dev && st.st_ino == id->ino &&
        st.st_uid == id->owner && !(st.st_mode & (S_IWGRP | S_IWOTH)))
        return st.st_nlink > 0 ? id->fd : replaced(d, id);
    /* Closed by the application (the number may be its own file now), or the directory was made
     * accessible to others: stop sharing, and leave the fd alone. */
    if (__atomic_compare_exchange_n(&d->id, &id, NULL, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&d->retired, id, __ATOMIC_RELEASE); /* freed at close, fd left alone */
        PQRI_WARN(
            "cache directory %s changed under this process (its descriptor was closed, or its "
            "owner or mode changed); not sharing the topology cache any more",
            d->path);
    }
    return -1;
}

void pqri_cachedir_close(struct pqri_cache_dir *d)
{
    struct pqri_dir_id *id = d->id ? d->id : d->retired;

    /* Closed only if still ours; the ones it replaced too. */
    while (id) {
        struct pqri_dir_id *prev = id->prev;
        close_held(id);
        free(id);
        id = prev;
    }
    free(d->path);
    memset(d, 0, sizeof *d);
}

int pqri_cache_openat(struct pqri_cache_dir *d, const char *name, int flags)
{
    int dfd = pqri_cachedir_fd(d);
    const struct pqri_dir_id *id = __atomic_load_n(&d->id, __ATOMIC_ACQUIRE);

    if (dfd < 0 || !id) /* id: dropped by another thread since */
        return -1;
    if (id->readonly && (flags & (O_WRONLY | O_RDWR | O_CREAT))) {
        errno = EACCES;
        return -1;
    }
    return openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, id->mode);
}

/* st is a file of the held directory's owner, closed to others. */
static bool cache_trusted(const struct pqri_cache_dir *d, const struct stat *st)
{
    const struct pqri_dir_id *id = __atomic_load_n(&d->id, __ATOMIC_ACQUIRE);
    return id && S_ISREG(st->st_mode) && st->st_uid == id->owner &&
        !(st->st_mode & (S_IWGRP | S_IWOTH));
}

static mode_t file_mode(struct pqri_cache_dir *d)
{
    const struct pqri_dir_id *id = __atomic_load_n(&d->id, __ATOMIC_ACQUIRE);
    return id ? id->mode : 0600;
}

/* The held directory's descriptor, for a write; -1 in a read-only (the agent's) directory. */
static int writable_fd(struct pqri_cache_dir *d)
{
    int dfd = pqri_cachedir_fd(d);
    const struct pqri_dir_id *id = __atomic_load_n(&d->id, __ATOMIC_ACQUIRE);
    return dfd >= 0 && id && !id->readonly ? dfd : -1;
}

void pqri_cache_init(struct pqri_cache_file *f, struct pqri_cache_dir *d, const char *key)
{
    memset(f, 0, sizeof *f);
    f->dir = d;
    f->lock_fd = -1;
    snprintf(f->key, sizeof f->key, "%s", key);
}

static void file_name(char *out, size_t len, const struct pqri_cache_file *f, const char *ext)
{
    snprintf(out, len, "%s.%s", f->key, ext);
}

struct pqr_topology *pqri_cache_read(const struct pqri_cache_file *f, const struct pqr_settings *s,
                                     const struct pqri_cluster_conf *c)
{
    char *buf = NULL, err[160], name[128];
    size_t len = 0;
    ssize_t n;
    struct stat st;
    struct pqr_topology *t = NULL;
    long long age;
    int fd;

    file_name(name, sizeof name, f, "json");
    if ((fd = pqri_cache_openat(f->dir, name, O_RDONLY)) < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || !cache_trusted(f->dir, &st) || st.st_size > PQRI_MAX_BODY) {
        PQRI_WARN("ignoring cache file %s/%s: not owned by the directory's owner, or writable by "
                  "others",
                  f->dir->path, name);
        goto out;
    }
    if (!(buf = malloc(PQRI_MAX_BODY + 1)))
        goto out;
    while (len < PQRI_MAX_BODY && (n = read(fd, buf + len, PQRI_MAX_BODY - len)) > 0)
        len += (size_t)n;
    t = pqri_topo_parse(buf, len, err, sizeof err);
    if (!t) {
        PQRI_DEBUG("ignoring cache file %s/%s: %s", f->dir->path, name, err);
        goto out;
    }
    age = pqri_now_ms() - t->fetched_ms;
    if (t->fetched_ms <= 0 || age < -FUTURE_SKEW_MS) {
        PQRI_DEBUG("ignoring cache file %s/%s: stamped %lld ms in the future", f->dir->path, name,
                   -age);
        pqri_topo_unref(t);
        t = NULL;
        goto out;
    }
    /* Its age, carried over to this process's monotonic clock. */
    t->mono_ms = pqri_mono_ms() - (age > 0 ? age : 0);
    /* Addresses were resolved by the writer; the port override and the allow-list are ours. */
    pqri_topo_filter(t, s, c);
out:
    free(buf);
    close(fd);
    return t;
}

long long pqri_cache_stamp(const struct pqri_cache_file *f)
{
    char name[128];
    struct stat st;
    int dfd = pqri_cachedir_fd(f->dir);

    file_name(name, sizeof name, f, "json");
    if (dfd < 0 || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return 0;
    /* Every write is a rename of a new file: a new inode, whatever the clock does. */
    return (long long)st.st_ino ^
        ((long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
}

int pqri_cache_write(const struct pqri_cache_file *f, const struct pqr_topology *t)
{
    char *text = pqri_topo_dump(t), tmp[160], name[128];
    size_t len, off = 0;
    int dfd = writable_fd(f->dir), fd = -1, rc = -1;

    file_name(name, sizeof name, f, "json");
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", name, (long)getpid());
    if (!text || dfd < 0)
        goto out;
    unlinkat(dfd, tmp, 0);
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, file_mode(f->dir));
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
    rc = renameat(dfd, tmp, dfd,
                  name); /* readers see the old file or the new one, never a torn one */
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0 && dfd >= 0)
        unlinkat(dfd, tmp, 0);
    free(text);
    return rc;
}

int pqri_cache_trylock(struct pqri_cache_file *f)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    char name[128];
    struct stat st;

    file_name(name, sizeof name, f, "lock");
    if (writable_fd(f->dir) < 0) {
        /* The agent's directory: its lock held means it serves the file (0, wait for it); else
         * this process asks for itself (-1), as without a shared cache. */
        int fd = pqri_cache_openat(f->dir, name, O_RDONLY), rc = -1;
        if (fd >= 0 && fstat(fd, &st) == 0 && cache_trusted(f->dir, &st) &&
            fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
            rc = 0;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    f->lock_fd = pqri_cache_openat(f->dir, name, O_RDWR | O_CREAT);
    if (f->lock_fd < 0)
        return -1;
    if (fstat(f->lock_fd, &st) != 0 || !cache_trusted(f->dir, &st)) {
        pqri_cache_unlock(f);
        return -1;
    }
    if (fcntl(f->lock_fd, F_SETLK, &fl) == 0)
        return 1;
    int rc = errno == EAGAIN || errno == EACCES ? 0 : -1;
    pqri_cache_unlock(f);
    return rc;
}

/* Closing the file releases the lock: the fd is never kept past the refresh it serves. */
void pqri_cache_unlock(struct pqri_cache_file *f)
{
    if (f->lock_fd >= 0)
        close(f->lock_fd);
    f->lock_fd = -1;
}

/* The marker's mtime is the last failed fetch: a fresh process that sees it does not wait for the
 * REST API again, it goes to the front door at once. */
bool pqri_cache_failed_recently(const struct pqri_cache_file *f, int within_ms)
{
    struct stat st;
    char name[128];
    long long age;
    int dfd = pqri_cachedir_fd(f->dir);

    file_name(name, sizeof name, f, "failed");
    if (dfd < 0 || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !cache_trusted(f->dir, &st))
        return false;
    age = pqri_now_ms() - ((long long)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000);
    return age >= -FUTURE_SKEW_MS && age < within_ms;
}

void pqri_cache_mark_failed(const struct pqri_cache_file *f)
{
    char name[128];
    int fd;

    file_name(name, sizeof name, f, "failed");
    if ((fd = pqri_cache_openat(f->dir, name, O_WRONLY | O_CREAT)) >= 0) {
        futimens(fd, NULL);
        close(fd);
    }
}
/* "addr port gen realtime_ms silent" per line: small, rewritten whole (temp file + rename). Two processes
 * writing at once may lose one entry: the next connect that meets the member writes it again. */
size_t pqri_cache_read_down(const struct pqri_cache_file *f, struct pqri_failure *out, size_t max,
                            long long max_age_ms)
{
    char name[128], line[160];
    struct stat st;
    FILE *in;
    size_t n = 0;
    int fd;

    file_name(name, sizeof name, f, "down");
    if ((fd = pqri_cache_openat(f->dir, name, O_RDONLY)) < 0)
        return 0;
    if (fstat(fd, &st) != 0 || !cache_trusted(f->dir, &st) || !(in = fdopen(fd, "r"))) {
        close(fd);
        return 0;
    }
    long long now = pqri_now_ms();
    while (n < max && fgets(line, sizeof line, in)) {
        struct pqri_failure d = {.down = true};
        unsigned long long gen;
        long long at;
        int silent = 0;
        if (sscanf(line, "%45s %d %llu %lld %d", d.addr, &d.port, &gen, &at, &silent) < 4 ||
            !pqri_numeric_addr(d.addr, NULL) || d.port < 1 || d.port > 65535)
            continue;
        if (now - at > max_age_ms || at - now > FUTURE_SKEW_MS)
            continue;
        d.gen = gen;
        d.at_ms = at;
        d.silent = silent == 1;
        out[n++] = d;
    }
    fclose(in);
    return n;
}

void pqri_cache_note_down(const struct pqri_cache_file *f, const struct pqri_failure *down,
                          long long max_age_ms)
{
    struct pqri_failure cur[PQRI_MAX_FAILURES];
    size_t n = pqri_cache_read_down(f, cur, PQRI_MAX_FAILURES, max_age_ms);
    char name[128], tmp[160];
    int dfd = writable_fd(f->dir), fd;
    FILE *out;

    file_name(name, sizeof name, f, "down");
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", name, (long)getpid());
    if (dfd < 0 ||
        (fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                     file_mode(f->dir))) < 0)
        return;
    if (!(out = fdopen(fd, "w"))) {
        close(fd);
        unlinkat(dfd, tmp, 0);
        return;
    }
    fprintf(out, "%s %d %llu %lld %d\n", down->addr, down->port, (unsigned long long)down->gen,
            pqri_now_ms(), down->silent);
    for (size_t i = 0, k = 1; i < n && k < PQRI_MAX_FAILURES; i++)
        if (strcmp(cur[i].addr, down->addr) != 0 || cur[i].port != down->port) {
            fprintf(out, "%s %d %llu %lld %d\n", cur[i].addr, cur[i].port,
                    (unsigned long long)cur[i].gen, cur[i].at_ms, cur[i].silent);
            k++;
        }
    if (fclose(out) != 0 || renameat(dfd, tmp, dfd, name) != 0)
        unlinkat(dfd, tmp, 0);
}

/*
 * ---- Counters ----
 *
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

#define STATS_MAGIC 0x7071727374617431ULL /* "pqrstat1" */
#define STATS_SIZE ((off_t)sizeof(uint64_t) * (1 + PQRI_STAT_COUNT))
#define LOCK_TRIES 64

const char *const pqri_stat_names[PQRI_STAT_COUNT] = {
    "routed_rw",         "routed_ro",       "fallback_no_view", "fallback_no_member",
    "retries",           "refresh_ok",      "refresh_failed",   "shared_cache_used",
    "passed_through",    "panic_refreshes", "door_skipped",     "member_down",
    "dcs_reads",         "rest_fallbacks",  "watch_events",     "watch_reconnects",
    "watch_compactions", "watch_progress",  "watch_checks",
};

void pqri_stats_init(struct pqri_stats *st, struct pqri_cache_dir *d, const char *key)
{
    memset(st, 0, sizeof *st);
    st->dir = d;
    snprintf(st->name, sizeof st->name, "%s.stats", key);
}

/* The file, made (zeroed, space reserved, magic written) if it does not exist; -1 if it is not a
 * counters file of ours. Warnings once per process and file. */
static int stats_open(struct pqri_stats *st, bool create)
{
    struct stat sb;
    uint64_t magic = 0;
    int fd, err;

    if (!st->dir ||
        (fd = pqri_cache_openat(st->dir, st->name, create ? O_RDWR | O_CREAT : O_RDONLY)) < 0)
        return -1;
    if (fstat(fd, &sb) != 0 || !cache_trusted(st->dir, &sb) || sb.st_size > STATS_SIZE)
        goto bad;
    if (create && sb.st_size < STATS_SIZE) {
        /* New, or truncated by someone: (re)made with its space reserved. */
        if ((err = posix_fallocate(fd, 0, STATS_SIZE)) != 0) {
            if (!__atomic_exchange_n(&st->warned, true, __ATOMIC_RELAXED))
                PQRI_WARN("counters file %s/%s: cannot reserve space (%s); not counting in this "
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
        PQRI_WARN("counters file %s/%s is not a counters file of yours (truncated?); not counting "
                  "in this process",
                  st->dir->path, st->name);
    if (create)
        __atomic_store_n(&st->off, true, __ATOMIC_RELAXED);
    close(fd);
    return -1;
}

void pqri_stat(struct pqri_stats *st, enum pqri_stat which)
{
    off_t at = (off_t)sizeof(uint64_t) * (1 + which);
    struct flock fl = {
        .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = at, .l_len = sizeof(uint64_t)};
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

int pqri_stats_read(struct pqri_stats *st, uint64_t out[PQRI_STAT_COUNT])
{
    int fd = stats_open(st, false);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = pread(fd, out, sizeof(uint64_t) * PQRI_STAT_COUNT, sizeof(uint64_t));
    close(fd);
    return n == (ssize_t)(sizeof(uint64_t) * PQRI_STAT_COUNT) ? 0 : -1;
}
