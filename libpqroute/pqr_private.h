/* Internal declarations shared by the library and the shim. Nothing here is exported. */
#ifndef PQR_PRIVATE_H
#define PQR_PRIVATE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "libpqroute.h"

#define PQR_ADDRLEN 46 /* INET6_ADDRSTRLEN */
#define PQR_MAX_MEMBERS 64
#define PQR_MAX_ENDPOINTS 16
#define PQR_MAX_BODY (256 * 1024)
#define PQR_DEFAULT_CONFIG "/etc/libpqroute.conf"

/* Every environment variable, named once. */
#define PQR_ENV_PATRONI "PQROUTE_PATRONI"
#define PQR_ENV_CONFIG "PQROUTE_CONFIG"
#define PQR_ENV_LOG "PQROUTE_LOG"

/* ---- log.c ---- */
enum pqr_log_level { PQR_LOG_ERROR = 0, PQR_LOG_WARN, PQR_LOG_INFO, PQR_LOG_DEBUG };
int pqr__log_parse(const char *s);
void pqr__log_set(int level);
bool pqr__log_on(int level);
void pqr__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define PQR_ERROR(...) pqr__log(PQR_LOG_ERROR, __VA_ARGS__)
#define PQR_WARN(...) pqr__log(PQR_LOG_WARN, __VA_ARGS__)
#define PQR_INFO(...) pqr__log(PQR_LOG_INFO, __VA_ARGS__)
#define PQR_DEBUG(...) pqr__log(PQR_LOG_DEBUG, __VA_ARGS__)
/* Control characters as \xNN, truncated to fit; returns the length. */
size_t pqr__escape(char *dst, size_t len, const char *src);
char *pqr__escape_dup(const char *s);
/* A URL without its userinfo, for display. */
void pqr__url_display(char *out, size_t len, const char *url);
/* The kernel's secure-execution flag (setuid, setgid, file capabilities): trust no environment. */
bool pqr__privileged(void);
/* explicit_bzero and free. */
void pqr__free_secret(char *s);
void pqr__errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
long long pqr__now_ms(void);  /* CLOCK_REALTIME: comparable across processes (cache file) */
long long pqr__mono_ms(void); /* CLOCK_MONOTONIC: deadlines */

/* ---- config.c ---- */
struct pqr_cidr {
    int family;
    unsigned char addr[16];
    int bits;
};

struct pqr_cluster_conf {
    char *name;
    char **seeds; /* REST base URLs, without trailing slash */
    size_t nseeds;
    char *rw_host; /* NULL: no read-write front door */
    int rw_port;
    char *ro_host; /* NULL: no read-only front door */
    int ro_port;
    int member_port;   /* 0: the global setting */
    long long max_lag; /* bytes; -1: the global setting */
    char *key;         /* stable identity for the shared cache file */
};

struct pqr_settings {
    struct pqr_cluster_conf *clusters;
    size_t nclusters;
    int refresh_ms;
    int stale_ms;
    int rest_timeout_ms;
    int connect_timeout_s; /* added to routed connections that set none; 0: never */
    int start_wait_ms;     /* how long a non-blocking connect waits for a process's first view */
    long long max_lag;
    int member_port;
    char *rest_ca, *rest_cert, *rest_key;
    char *cache_dir; /* NULL: $XDG_RUNTIME_DIR/libpqroute, else /tmp/libpqroute-<uid> */
    struct pqr_cidr *allow;
    size_t nallow;
    int log_level;
    bool door_stale_only; /* PQROUTE_FRONT_DOOR=stale-only: the door only when the view is unusable */
    /* the settings given for the environment's own cluster, before it is appended */
    char *env_patroni, *env_rw, *env_ro;
};

void pqr__settings_init(struct pqr_settings *s);
void pqr__settings_clear(struct pqr_settings *s);
int pqr__settings_copy(struct pqr_settings *dst, const struct pqr_settings *src);
/* name: a variable name, with or without PQROUTE_. Returns 0, or -1 with a message naming it. */
int pqr__settings_set(struct pqr_settings *s, const char *name, const char *value, char *err,
                      size_t errlen);
/* Turns the PATRONI/RW/RO values into a cluster and checks the whole; 1 = nothing configured. */
int pqr__settings_finish(struct pqr_settings *s, char *err, size_t errlen);
int pqr__settings_from_env(struct pqr_settings *s, char *err, size_t errlen);
int pqr__settings_from_file(struct pqr_settings *s, const char *path, char *err, size_t errlen);
int pqr__parse_hostport(const char *v, char **host, int *port);
/* How long a fetch may take, all told (REST timeout plus scheduling slack): the wait of a blocking
 * connect and of a process that lets another one fetch. */
int pqr__rest_budget_ms(const struct pqr_settings *s);
int pqr__member_port(const struct pqr_settings *s, const struct pqr_cluster_conf *c);
long long pqr__max_lag(const struct pqr_settings *s, const struct pqr_cluster_conf *c);
bool pqr__cidr_allows(const struct pqr_cidr *list, size_t n, const char *addr);

/* ---- topology.c ---- */
struct pqr_member {
    char *name;
    char *host;
    char *api_url;
    char *state;
    pqr_member_role role;
    int patroni_port;
    int port;              /* the port connections use (member_port override applied) */
    char addr[PQR_ADDRLEN]; /* numeric address; "" when unresolved */
    long timeline;         /* -1 unknown */
    long long lag;         /* -1 unknown */
    bool noloadbalance;
    bool nofailover;
};

struct pqr_topology {
    int refs; /* atomic */
    struct pqr_member *m;
    size_t n;
    long long fetched_ms; /* CLOCK_REALTIME: what the shared cache file carries, and shows */
    long long mono_ms;    /* CLOCK_MONOTONIC of this process: every age and "newer" test */
    uint64_t seq;         /* the shared file's write sequence: newer across processes */
    char *source;
    int leader;      /* index or -1 */
    long max_tl;     /* highest timeline reported, -1 if none */
    uint64_t gen;    /* hash of what routing depends on (not lag) */
};

struct pqr_topology *pqr__topo_parse(const char *json, size_t len, char *err, size_t errlen);
struct pqr_topology *pqr__topo_ref(struct pqr_topology *t);
void pqr__topo_unref(struct pqr_topology *t);
/* After addresses are set: pick the leader, the max timeline, the generation hash. */
void pqr__topo_finish(struct pqr_topology *t);
/* The shared cache file form: Patroni's /cluster shape plus addresses, source and fetch time. */
char *pqr__topo_dump(const struct pqr_topology *t);
pqr_member_role pqr__role_parse(const char *s);
/* Better of two views of one cluster (freshest timeline, has a leader, more members). */
bool pqr__topo_better(const struct pqr_topology *a, const struct pqr_topology *b);
bool pqr__topo_leader_running(const struct pqr_topology *t);
/* A numeric IPv4 or IPv6 address: its family (AF_INET, AF_INET6) and bytes, else 0. */
int pqr__addr_parse(const char *s, unsigned char bytes[16]);
/* s is a numeric address: its normal form in out (may be NULL). */
bool pqr__numeric_addr(const char *s, char out[PQR_ADDRLEN]);

/* ---- patroni.c ---- */
struct pqr_fetch_opts {
    const struct pqr_settings *s;
    const struct pqr_cluster_conf *c;
    const char *const *urls;
    size_t nurls;
    const int *stop; /* abandons the fetch when it becomes non-zero (read atomically) */
};
/* Fetch /cluster from every URL at once: the best view, numeric addresses only. Its names are
 * resolved by pqr__topo_complete(), which the caller runs outside any lock. */
struct pqr_topology *pqr__patroni_fetch(const struct pqr_fetch_opts *o, char *err, size_t errlen);
/* Member names resolved within what is left of the REST timeout, then stamped as fetched now. */
void pqr__topo_complete(struct pqr_topology *t, const struct pqr_settings *s,
                        const struct pqr_cluster_conf *c);
/* Apply the port override and the allow-list; resolve names by dns_deadline_mono (0: numeric
 * addresses only, no DNS). */
void pqr__topo_resolve(struct pqr_topology *t, const struct pqr_settings *s,
                       const struct pqr_cluster_conf *c, long long dns_deadline_mono);

/* ---- resolve.c ---- */
extern pthread_mutex_t pqr__dns_lock;
void pqr__dns_atfork_child(void);
/* 0 with the address; -1 unresolvable or no answer yet; -2 no answer in time, first time for this
 * name (worth a warning). Never waits past deadline_mono. */
int pqr__dns_resolve(const char *host, char *addr, size_t len, long long deadline_mono);
/* REST base URL from a member's api_url ("http://h:8008/patroni" -> "http://h:8008"). */
char *pqr__api_base(const char *api_url);

/* ---- cache.c (the shared cache directory and its files) ---- */
struct stat;
struct pqr_cache_dir {
    int fd; /* held; -1: not sharing (atomic) */
    dev_t dev;
    ino_t ino;
    char *path; /* for messages only: never opened by name again */
};
int pqr__cachedir_open(struct pqr_cache_dir *d, const struct pqr_settings *s);
void pqr__cachedir_close(struct pqr_cache_dir *d);
/* The held fd if it is still the directory we opened (owned by us, closed to others), else -1: the
 * directory is then dropped with one warning, without touching the fd. */
int pqr__cachedir_fd(struct pqr_cache_dir *d);
/* openat() in the held directory, never following a symlink; files are made 0600. */
int pqr__cache_openat(struct pqr_cache_dir *d, const char *name, int flags);
bool pqr__private_dir(const struct stat *st);
bool pqr__private_file(const struct stat *st);

struct pqr_cache_file {
    struct pqr_cache_dir *dir;
    char key[96];
    int lock_fd; /* open only between trylock and unlock */
};
void pqr__cache_init(struct pqr_cache_file *f, struct pqr_cache_dir *d, const char *key);
struct pqr_topology *pqr__cache_read(const struct pqr_cache_file *f, const struct pqr_settings *s,
                                     const struct pqr_cluster_conf *c);
int pqr__cache_write(const struct pqr_cache_file *f, const struct pqr_topology *t);
/* Any process on this host failed to reach Patroni within the last within_ms / record one. */
bool pqr__cache_failed_recently(const struct pqr_cache_file *f, int within_ms);
void pqr__cache_mark_failed(const struct pqr_cache_file *f);
/* Non-blocking: 1 = this process now refreshes (until unlock), 0 = another one does, -1 = error. */
int pqr__cache_trylock(struct pqr_cache_file *f);
void pqr__cache_unlock(struct pqr_cache_file *f);

/* ---- stats.c ---- */
enum pqr_stat {
    PQR_STAT_ROUTED_RW, PQR_STAT_ROUTED_RO, PQR_STAT_FALLBACK_NO_VIEW, PQR_STAT_FALLBACK_NO_MEMBER,
    PQR_STAT_RETRIES, PQR_STAT_REFRESH_OK, PQR_STAT_REFRESH_FAILED, PQR_STAT_SHARED_CACHE_USED,
    PQR_STAT_PASSED_THROUGH, PQR_STAT_COUNT
};
extern const char *const pqr__stat_names[PQR_STAT_COUNT];
struct pqr_stats {
    struct pqr_cache_dir *dir; /* NULL: not counting */
    char name[112];
    bool off;    /* atomic: a failure stopped counting in this process */
    bool warned; /* atomic */
};
void pqr__stats_init(struct pqr_stats *st, struct pqr_cache_dir *d, const char *key);
/* Best effort: never blocks, never signals. */
void pqr__stat(struct pqr_stats *st, enum pqr_stat which);
int pqr__stats_read(struct pqr_stats *st, uint64_t out[PQR_STAT_COUNT]);

/* ---- policy.c ---- */
struct pqr_candidate {
    int member; /* index into the topology, -1 for the front door */
    char addr[PQR_ADDRLEN];
    int port;
};
struct pqr_failure {
    char addr[PQR_ADDRLEN];
    int port;
    uint64_t gen;
    long long at_ms;
};
struct pqr_policy_in {
    const struct pqr_topology *t;
    pqr_role role;
    long long max_lag;
    const struct pqr_failure *failures;
    size_t nfailures;
    unsigned spread; /* rotates the replica order (RO) */
};
/* Members in the order to try them (front door not included). Returns the count. */
size_t pqr__policy_order(const struct pqr_policy_in *in, struct pqr_candidate *out, size_t max);
bool pqr__member_ro_ok(const struct pqr_topology *t, size_t i, long long max_lag);

enum pqr_mode { PQR_BLOCKING, PQR_NONBLOCKING };
struct pqr_plan;

/* ---- the router (router.c) ---- */
/* One libpq, as the routing code calls it. A process may hold several (a wheel's bundled copy
 * beside the system's, another version under another soname): the shim hands the engine the one
 * the application's call was meant for, and every call on the connections it makes goes to that
 * same one. The first three take their own table, so that the shim knows which instance. */
struct pqr_libpq {
    PGconn *(*connectdb_params)(const struct pqr_libpq *, const char *const *, const char *const *, int);
    PGconn *(*connect_start_params)(const struct pqr_libpq *, const char *const *, const char *const *,
                                    int);
    PGPing (*ping_params)(const struct pqr_libpq *, const char *const *, const char *const *, int);
    ConnStatusType (*status)(const PGconn *);
    char *(*error_message)(const PGconn *);
    void (*finish)(PGconn *);
    PQconninfoOption *(*conninfo)(PGconn *);
    void (*conninfo_free)(PQconninfoOption *);
    char *(*pass)(const PGconn *);
    char *(*hostaddr)(const PGconn *);
    char *(*port)(const PGconn *);
};
/* The libpq this library is linked with (the API, the CLI, the tests). */
extern const struct pqr_libpq pqr__direct_libpq;

#define PQR_MAX_FAILURES 16

struct pqr_cluster {
    struct pqr_cluster_conf *conf;
    struct pqr_topology *current; /* guarded by router->lock */
    struct pqr_cache_file cache;
    long long want_after; /* a fetch newer than this (monotonic) was asked for */
    bool last_fetch_failed;
    long long failed_at_mono;  /* when the last attempt ended without a view */
    unsigned long done; /* finished refresh attempts; a waiter waits for the next one */
    long long door_failed_mono;  /* a routed connect failed at every member and the front door */
    struct pqr_stats stats;      /* shared counters (stats.c) */
    struct pqr_failure failures[PQR_MAX_FAILURES];
    size_t nfailures;
};

struct pqr_router {
    struct pqr_settings s;
    struct pqr_cluster *clusters;
    size_t nclusters;
    struct pqr_libpq pq;
    pthread_mutex_t lock; /* guards cluster state and the refresher's control fields */
    pthread_cond_t cond;  /* published a snapshot / asked the refresher to work */
    pthread_t thread;
    bool thread_running;
    int stop; /* atomic */
    unsigned spread;
    struct pqr_cache_dir dir;       /* the shared cache directory (fd -1: not sharing) */
    struct pqr_stats other_stats;   /* connections that name no front door */
    struct pqr_router *next_router; /* all routers, for fork and exit handling */
};

struct pqr_router *pqr__router_new(const struct pqr_settings *s, const struct pqr_libpq *pq,
                                   char *err, size_t errlen);
void pqr__router_free(struct pqr_router *r);
/* Stop refreshers at exit; called once libcurl is initialised (see patroni.c). */
void pqr__register_exit(void);
/* A reference to the cluster's snapshot if it is no older than stale_ms; may read the shared file,
 * and when wait_ms > 0 waits that long for the refresher's first fetch. */
struct pqr_topology *pqr__router_snapshot(struct pqr_router *r, struct pqr_cluster *c, int wait_ms);
/* Ask for a fetch newer than after_mono (CLOCK_MONOTONIC) and wait up to wait_ms for it. */
struct pqr_topology *pqr__router_refresh(struct pqr_router *r, struct pqr_cluster *c,
                                         long long after_mono, int wait_ms);
/* Make t the cluster's current snapshot if it is newer (takes its own reference). */
void pqr__router_publish(struct pqr_router *r, struct pqr_cluster *c, struct pqr_topology *t);
void pqr__router_note_failures(struct pqr_router *r, struct pqr_cluster *c, uint64_t gen,
                               const struct pqr_candidate *cands, size_t n);

/* ---- rewrite.c ---- */
struct pqr_params {
    const char **kw;
    const char **val;
    size_t n, cap;
    char **owned;
    size_t nowned;
};
void pqr__params_free(struct pqr_params *p);
/* The non-empty value of keyword kw in a PQconninfo()/PQconninfoParse() array, or NULL. */
const char *pqr__conninfo_value(const PQconninfoOption *o, const char *kw);
/* PQconninfoFree() with the password cleared first; the second form frees with a given libpq's. */
void pqr__conninfo_free(PQconninfoOption *o);
void pqr__conninfo_free_with(const struct pqr_libpq *pq, PQconninfoOption *o);
int pqr__params_add(struct pqr_params *p, const char *k, const char *v);
struct pqr_rewrite_in {
    const PQconninfoOption *effective; /* PQconninfo() of the probe */
    const char *pgpass_password;       /* PQpass() of the probe: .pgpass entry for the front door */
    const struct pqr_topology *t;
    const struct pqr_candidate *cands;
    size_t ncands;
    const char *door_host, *door_hostaddr, *door_port;
    const char *target_session_attrs;
    int connect_timeout_s;
    bool no_door; /* members only */
};
int pqr__rewrite(const struct pqr_rewrite_in *in, struct pqr_params *out);

/* ---- api.c ---- */
/* The environment and configuration file, as the shim reads them: 0 ok, 1 nothing configured. */
int pqr__settings_load(struct pqr_settings *s, char *err, size_t errlen);
struct pqr_router *pqr__router_from_env(const struct pqr_libpq *pq, char *err, size_t errlen);

/*
 * The preload shim loads libpqroute.so with dlopen() on first use and reaches the routing code
 * through this table, the one private symbol the library exports.
 */
#define PQR_SHIM_API_VERSION 3
struct pqr_shim_api {
    int version;
    struct pqr_router *(*router_from_env)(const struct pqr_libpq *pq, char *err, size_t errlen);
    PGconn *(*connect)(struct pqr_router *r, const struct pqr_libpq *pq, const char *const *kw,
                       const char *const *val, int expand, enum pqr_mode mode, pqr_role forced,
                       bool *passed);
    PGPing (*ping)(struct pqr_router *r, const struct pqr_libpq *pq, const char *const *kw,
                   const char *const *val, int expand, bool *passed);
    /* PQconninfoParse()/PQconninfoFree() of the library's own libpq */
    int (*conninfo_arrays)(const char *conninfo, PQconninfoOption **opts, const char ***kw,
                           const char ***val);
    void (*conninfo_free)(PQconninfoOption *o);
};
PQR_EXPORT const struct pqr_shim_api *pqr__shim_api(int version);

/* ---- route.c ---- */
struct pqr_plan {
    const struct pqr_libpq *pq; /* the libpq the application meant, for every call */
    struct pqr_cluster *c;
    struct pqr_topology *t;
    PQconninfoOption *eff;
    char *pgpass;
    char *door_host, *door_hostaddr, *door_port;
    char *tsa;
    pqr_role role;
    enum pqr_mode mode;
    struct pqr_candidate cands[PQR_MAX_MEMBERS];
    size_t ncands;
    struct pqr_params params; /* what libpq is handed */
    bool leave_door_out;      /* members only: no front door at the end of the list */
};

/* NULL: pass the call through to libpq unchanged (the reason is in pqr_last_decision()).
 * pq NULL: the router's default libpq. */
struct pqr_plan *pqr__route_plan(struct pqr_router *r, const struct pqr_libpq *pq,
                                 const char *const *kw, const char *const *val, int expand,
                                 enum pqr_mode mode, pqr_role forced);
PGconn *pqr__route_exec(struct pqr_router *r, struct pqr_plan *p);
/* Plan and connect: *passed says the connection is not ours to route (the caller then makes the
 * application's own call to libpq); otherwise the connection, or NULL if out of memory. */
PGconn *pqr__route_connect(struct pqr_router *r, const struct pqr_libpq *pq, const char *const *kw,
                           const char *const *val, int expand, enum pqr_mode mode, pqr_role forced,
                           bool *passed);
/* PQpingParams() of what a connection would reach; *passed as above. */
PGPing pqr__route_ping(struct pqr_router *r, const struct pqr_libpq *pq, const char *const *kw,
                       const char *const *val, int expand, bool *passed);
void pqr__route_free(struct pqr_plan *p);
/* PQconninfoParse() into NULL-terminated arrays; NULL if it does not parse. */
int pqr__conninfo_arrays(const char *conninfo, PQconninfoOption **opts, const char ***kw,
                         const char ***val);
void pqr__decision(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
