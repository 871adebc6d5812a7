/*
 * The host cache: every file in the shared cache directory — the topology file per cluster, the
 * refresh lock, the "REST failed recently" marker and the counters — shared by every process of a
 * user on a host.
 */
#ifndef PQRI_HOSTCACHE_H
#define PQRI_HOSTCACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h"

/* The directory held: its descriptor and identity, replaced together (atomically) when the
 * directory was removed and made again. */
struct pqri_dir_id {
    int fd;
    dev_t dev;
    ino_t ino;
    uid_t owner;   /* every file in it must be this user's */
    mode_t mode;   /* files are made readable by whoever may read the directory */
    bool readonly; /* the host agent's (PQROUTE_CACHE_OWNER) or root's: read, never written */
    struct pqri_dir_id *prev; /* the one it replaced (its fd kept open until close) */
};
struct pqri_cache_dir {
    struct pqri_dir_id *id;      /* NULL: not sharing (atomic) */
    char *path;                  /* for messages, and to open it again once it was removed */
    uid_t agent;                 /* PQROUTE_CACHE_OWNER's uid; 0 (root) when none */
    struct pqri_dir_id *retired; /* removed and not made again: kept for close */
};
int pqri_cachedir_open(struct pqri_cache_dir *d, const struct pqr_settings *s);
void pqri_cachedir_close(struct pqri_cache_dir *d);
/* The held fd if it is still the directory we opened (owned by us, closed to others), else -1: the
 * directory is then dropped with one warning, without touching the fd. A directory that was
 * removed (st_nlink 0: systemd's RuntimeDirectory= after the agent stopped) is opened again by its
 * path with the same checks, with one warning. */
int pqri_cachedir_fd(struct pqri_cache_dir *d);
/* openat() in the held directory, never following a symlink; files are made 0600, 0644 in a
 * directory others may read (the host agent's). */
int pqri_cache_openat(struct pqri_cache_dir *d, const char *name, int flags);

struct pqri_cache_file {
    struct pqri_cache_dir *dir;
    char key[96];
    int lock_fd; /* open only between trylock and unlock */
};
void pqri_cache_init(struct pqri_cache_file *f, struct pqri_cache_dir *d, const char *key);
struct pqr_topology *pqri_cache_read(const struct pqri_cache_file *f, const struct pqr_settings *s,
                                     const struct pqri_cluster_conf *c);
int pqri_cache_write(const struct pqri_cache_file *f, const struct pqr_topology *t);
/* Changes whenever the topology file is written (0: none): one fstatat(), cheap enough for every
 * connect. */
long long pqri_cache_stamp(const struct pqri_cache_file *f);
/* Any process on this host failed to reach Patroni within the last within_ms / record one. */
bool pqri_cache_failed_recently(const struct pqri_cache_file *f, int within_ms);
void pqri_cache_mark_failed(const struct pqri_cache_file *f);
/* Members some process of this host found unreachable: the entries younger than max_age_ms (their
 * at_ms is realtime here), and recording one (replacing an older entry for the same member). */
struct pqri_failure;
size_t pqri_cache_read_down(const struct pqri_cache_file *f, struct pqri_failure *out, size_t max,
                            long long max_age_ms);
void pqri_cache_note_down(const struct pqri_cache_file *f, const struct pqri_failure *down,
                          long long max_age_ms);
/* Non-blocking: 1 = this process now refreshes (until unlock), 0 = another one does, -1 = error. */
int pqri_cache_trylock(struct pqri_cache_file *f);
void pqri_cache_unlock(struct pqri_cache_file *f);

enum pqri_stat {
    PQRI_STAT_ROUTED_RW,
    PQRI_STAT_ROUTED_RO,
    PQRI_STAT_FALLBACK_NO_VIEW,
    PQRI_STAT_FALLBACK_NO_MEMBER,
    PQRI_STAT_RETRIES,
    PQRI_STAT_REFRESH_OK,
    PQRI_STAT_REFRESH_FAILED,
    PQRI_STAT_SHARED_CACHE_USED,
    PQRI_STAT_PASSED_THROUGH,
    PQRI_STAT_PANIC_REFRESHES,
    PQRI_STAT_DOOR_SKIPPED,
    PQRI_STAT_MEMBER_DOWN,
    PQRI_STAT_DCS_READS,
    PQRI_STAT_REST_FALLBACKS,
    PQRI_STAT_WATCH_EVENTS,
    PQRI_STAT_WATCH_RECONNECTS,
    PQRI_STAT_WATCH_COMPACTIONS,
    PQRI_STAT_WATCH_PROGRESS, /* progress notifications: the stream said "nothing new" */
    PQRI_STAT_WATCH_CHECKS,   /* reads proving a silent stream */
    PQRI_STAT_COUNT
};
extern const char *const pqri_stat_names[PQRI_STAT_COUNT];
struct pqri_stats {
    struct pqri_cache_dir *dir; /* NULL: not counting */
    char name[112];
    bool off;    /* atomic: a failure stopped counting in this process */
    bool warned; /* atomic */
};
void pqri_stats_init(struct pqri_stats *st, struct pqri_cache_dir *d, const char *key);
/* Best effort: never blocks, never signals. */
void pqri_stat(struct pqri_stats *st, enum pqri_stat which);
int pqri_stats_read(struct pqri_stats *st, uint64_t out[PQRI_STAT_COUNT]);

#endif
