/*
 * libpqroute — leader-aware libpq connections from a cached view of a Patroni cluster (its REST API,
 * or its DCS: etcd v3 or Consul).
 *
 * A router knows one or more Patroni clusters, each reached today through a "front door" (a TCP proxy
 * such as Traefik: a read-write host:port and optionally a read-only one). A connection aimed at a
 * front door is handed to libpq as an ordered multi-host list — the leader (or healthy replicas)
 * first, the front door last — taken from a cached, refreshed view of the cluster (what Patroni's
 * /cluster endpoint shows, or the same built from Patroni's keys in its DCS).
 * Anything else is passed to libpq unchanged. When Patroni's view is unknown or stale, connections go
 * to the front door exactly as they would without libpqroute.
 *
 * All functions are thread-safe. Strings returned by accessors stay valid as long as the object they
 * were read from.
 */
#ifndef LIBPQROUTE_H
#define LIBPQROUTE_H

#include <stddef.h>
#include <libpq-fe.h>

#define PQR_VERSION_MAJOR 0
#define PQR_VERSION_MINOR 1
#define PQR_VERSION_PATCH 0
/* Bumped on every ABI break; the shared object is libpqroute.so.PQR_SONAME. */
#define PQR_SONAME 0

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(PQR_BUILDING)
#define PQR_EXPORT __attribute__((visibility("default")))
#else
#define PQR_EXPORT
#endif

/* A router: settings, per-cluster topology cache and its refresher thread. */
typedef struct pqr_router pqr_router;
/* Settings under construction for pqr_router_open(). */
typedef struct pqr_settings pqr_settings;
/* An immutable, reference-counted snapshot of one cluster as Patroni last reported it. */
typedef struct pqr_topology pqr_topology;

typedef enum {
    PQR_ROLE_AUTO = 0, /* from the front door the connection names (and target_session_attrs) */
    PQR_ROLE_RW = 1,   /* the leader */
    PQR_ROLE_RO = 2    /* a healthy replica */
} pqr_role;

typedef enum {
    PQR_MEMBER_UNKNOWN = 0,
    PQR_MEMBER_LEADER,
    PQR_MEMBER_STANDBY_LEADER,
    PQR_MEMBER_SYNC_STANDBY,
    PQR_MEMBER_QUORUM_STANDBY,
    PQR_MEMBER_REPLICA
} pqr_member_role;

/* Library version as "MAJOR.MINOR.PATCH". */
PQR_EXPORT const char *pqr_version(void);

/*
 * Why a call failed. Every function that takes an err buffer writes a one-line message there for
 * people, and sets this code for programs: read it with pqr_last_error() in the same thread, right
 * after the call (the next such call sets it again, PQR_OK when it succeeds).
 */
typedef enum {
    PQR_OK = 0,
    PQR_ERR_NOT_CONFIGURED, /* nothing configured: no PQROUTE_* variable, no configuration file */
    PQR_ERR_SETTING,        /* a setting's name or value is not valid (environment or API) */
    PQR_ERR_CONFIG_FILE, /* the configuration file cannot be read, is not private, or is invalid */
    PQR_ERR_PRIVILEGED,  /* setuid/setgid/capabilities: the environment is not trusted */
    PQR_ERR_NO_SUCH,     /* no such cluster, endpoint, or DCS */
    PQR_ERR_UNREACHABLE, /* asked, and no usable answer (refused, timed out, an error, garbage) */
    PQR_ERR_NO_SHARED_CACHE, /* the agent needs a shared cache directory it can own */
    PQR_ERR_RESOURCE,        /* out of memory, or a thread or file could not be made */
    PQR_ERR_ARGUMENT         /* a required argument is NULL */
} pqr_error;

/* The code of the calling thread's last call that takes an err buffer. */
PQR_EXPORT pqr_error pqr_last_error(void);
/* A short description of a code ("not configured", ...); never NULL. */
PQR_EXPORT const char *pqr_strerror(pqr_error code);

/*
 * Settings. Names are those of the environment variables, with or without the PQROUTE_ prefix
 * (e.g. "PATRONI", "RW", "RO", "REFRESH_MS", "MEMBER_PORT"; see README.md or libpqroute(3)).
 * pqr_settings_set() validates the value: on error it returns -1 and writes a one-line message to
 * err (if errlen > 0); the settings are unchanged.
 */
PQR_EXPORT pqr_settings *pqr_settings_new(void);
PQR_EXPORT int pqr_settings_set(pqr_settings *s, const char *name, const char *value, char *err,
                                size_t errlen);
PQR_EXPORT void pqr_settings_free(pqr_settings *s);

/*
 * Open a router from explicit settings, or from the environment and the configuration file
 * (PQROUTE_CONFIG, default /etc/libpqroute.conf when it exists) exactly as the LD_PRELOAD shim does.
 * Returns NULL with a message in err on error. pqr_router_open_env() also returns NULL, with an empty
 * message and PQR_ERR_NOT_CONFIGURED, when nothing is configured. No thread is started and no
 * network I/O is done until the first routed connection.
 */
PQR_EXPORT pqr_router *pqr_router_open(const pqr_settings *s, char *err, size_t errlen);
PQR_EXPORT pqr_router *pqr_router_open_env(char *err, size_t errlen);
/* Stops the refresher thread and frees the router. Connections it made stay open. */
PQR_EXPORT void pqr_router_close(pqr_router *r);

/*
 * The host agent (what `pqroute agent` runs): keeps the shared cache of every cluster of r fresh —
 * from a watch of Patroni's DCS when one is configured, else from its REST API — until *stop
 * becomes non-zero (set it from a signal handler; it is read every 100 ms). While it runs, the
 * processes of this host that share its cache directory take their views from the cache and ask
 * neither Patroni nor the DCS. Returns 0 once stopped, or -1 with a message when it cannot serve
 * (no shared cache directory).
 */
PQR_EXPORT int pqr_agent_run(pqr_router *r, const volatile int *stop, char *err, size_t errlen);

/*
 * Connect with a role. conninfo (a keyword/value string or a postgresql:// URI, may be "") supplies
 * dbname, user, sslmode and the rest. If it names no host, the router's first cluster is used (its
 * read-write front door for PQR_ROLE_RW, its read-only one — or the read-write one if there is none —
 * for PQR_ROLE_RO); if it names a front door, that cluster is used; any other host is connected to
 * unchanged. Like PQconnectdb(), returns a PGconn to check with PQstatus(), or NULL if out of memory.
 */
PQR_EXPORT PGconn *pqr_connect(pqr_router *r, pqr_role role, const char *conninfo);

/* PQconnectdb() / PQconnectdbParams() with the shim's rules. */
PQR_EXPORT PGconn *pqr_connectdb(pqr_router *r, const char *conninfo);
PQR_EXPORT PGconn *pqr_connectdb_params(pqr_router *r, const char *const *keywords,
                                        const char *const *values, int expand_dbname);

/*
 * PQconninfo() as the application asked: for a connection a router (or the shim) routed, the
 * options of the call that made it — the front door, its own target_session_attrs and
 * connect_timeout — not the member list libpq was handed, so that a reconnect built from them is
 * routed afresh with the live view. Any other connection: PQconninfo() itself. Free the result with
 * PQconninfoFree(). PQhost(), PQport() and PQhostaddr() describe the server actually connected.
 * (Under the preload library, PQconninfo() itself answers this way.)
 */
PQR_EXPORT PQconninfoOption *pqr_conninfo(const PGconn *conn);

/*
 * The last routing decision made by the calling thread (any router, or the shim), as one line of
 * text: routed or passed through, role, cluster, candidate list, reason, cache age. Never contains a
 * password. Valid until the thread's next connection.
 */
PQR_EXPORT const char *pqr_last_decision(void);

/*
 * The current snapshot of a cluster (NULL name: the first cluster), or NULL if the router has none
 * yet. pqr_router_refresh() first waits up to timeout_ms (negative: the router's own REST budget)
 * for a fresh fetch. Release with pqr_topology_release().
 */
PQR_EXPORT pqr_topology *pqr_router_topology(pqr_router *r, const char *cluster);
PQR_EXPORT pqr_topology *pqr_router_refresh(pqr_router *r, const char *cluster, int timeout_ms);
PQR_EXPORT void pqr_topology_release(pqr_topology *t);

/* Changes whenever anything routing depends on changes (members, roles, states, timelines,
 * addresses; not lag). */
PQR_EXPORT unsigned long long pqr_topology_generation(const pqr_topology *t);
/* Seconds since Patroni was asked, and which REST endpoint answered. */
PQR_EXPORT double pqr_topology_age(const pqr_topology *t);
PQR_EXPORT const char *pqr_topology_source(const pqr_topology *t);
PQR_EXPORT size_t pqr_topology_size(const pqr_topology *t);
/* Index of the leader (or standby leader), or -1. */
PQR_EXPORT int pqr_topology_leader(const pqr_topology *t);

/* Member i (0 <= i < pqr_topology_size()). */
PQR_EXPORT const char *pqr_member_name(const pqr_topology *t, size_t i);
PQR_EXPORT pqr_member_role pqr_member_role_of(const pqr_topology *t, size_t i);
PQR_EXPORT const char *pqr_member_role_name(pqr_member_role role);
/* Patroni's state ("running", "streaming", "stopped", ...). */
PQR_EXPORT const char *pqr_member_state(const pqr_topology *t, size_t i);
/* Patroni's host, the resolved address connections go to, and the port they use. */
PQR_EXPORT const char *pqr_member_host(const pqr_topology *t, size_t i);
PQR_EXPORT const char *pqr_member_addr(const pqr_topology *t, size_t i);
PQR_EXPORT int pqr_member_port(const pqr_topology *t, size_t i);
/* Timeline, or -1 when unknown. Replication lag in bytes, or -1 when unknown (or the leader). */
PQR_EXPORT long pqr_member_timeline(const pqr_topology *t, size_t i);
PQR_EXPORT long long pqr_member_lag(const pqr_topology *t, size_t i);
/* Non-zero when the member is tagged noloadbalance. */
PQR_EXPORT int pqr_member_noloadbalance(const pqr_topology *t, size_t i);

/*
 * For operators' tools (pqroute): the clusters a router knows (0 <= i < pqr_router_clusters()),
 * each one's front door for a role (-1: none), its configured REST endpoints as they may be shown
 * (credentials removed), and asking one of them now: its view with member names resolved, or NULL
 * with the reason in err.
 */
PQR_EXPORT size_t pqr_router_clusters(const pqr_router *r);
PQR_EXPORT const char *pqr_router_cluster_name(const pqr_router *r, size_t i);
PQR_EXPORT int pqr_router_front_door(const pqr_router *r, const char *cluster, pqr_role role,
                                     const char **host, int *port);
PQR_EXPORT size_t pqr_router_endpoints(const pqr_router *r, const char *cluster);
PQR_EXPORT const char *pqr_router_endpoint(const pqr_router *r, const char *cluster, size_t i);
PQR_EXPORT pqr_topology *pqr_router_ask(pqr_router *r, const char *cluster, size_t i, char *err,
                                        size_t errlen);
/* The cluster's DCS ("etcd", "consul", or NULL when its view comes from REST only), and one read of
 * it now (NULL with the reason in err). */
PQR_EXPORT const char *pqr_router_dcs(const pqr_router *r, const char *cluster);
PQR_EXPORT pqr_topology *pqr_router_ask_dcs(pqr_router *r, const char *cluster, char *err,
                                            size_t errlen);
/* Zones (PQROUTE_ZONE, PQROUTE_ZONE_TAG): the cluster's zone list ("b,a"; NULL when none is set);
 * member i's zone, the value of its Patroni tag that names zones (NULL when it has none); and, in
 * words, where read-only connections place member i and why, or why they leave it out ("" when it
 * is an eligible replica and no zone is set). pqr_router_read_why() returns 0, or -1 for an unknown
 * cluster or member. */
PQR_EXPORT const char *pqr_router_zone(const pqr_router *r, const char *cluster);
PQR_EXPORT const char *pqr_router_member_zone(const pqr_router *r, const char *cluster,
                                              const pqr_topology *t, size_t i);
PQR_EXPORT int pqr_router_read_why(const pqr_router *r, const char *cluster, const pqr_topology *t,
                                   size_t i, char *buf, size_t len);
/* What the router would do with a connection, without connecting: the decision line (as
 * pqr_last_decision(), which it also sets). May wait for a first view like a blocking connect. */
PQR_EXPORT const char *pqr_router_explain(pqr_router *r, const char *conninfo);
/*
 * Counters kept by every process of this user on this host (the shared cache directory): their
 * names (0 <= i < pqr_stats_count()), and their values for a cluster, or (cluster NULL) for
 * connections that named no front door. -1 when there are none (no shared directory, nothing
 * counted yet).
 */
PQR_EXPORT size_t pqr_stats_count(void);
PQR_EXPORT const char *pqr_stats_name(size_t i);
PQR_EXPORT int pqr_router_stats(pqr_router *r, const char *cluster, unsigned long long *values,
                                size_t n);

#ifdef __cplusplus
}
#endif

#endif /* LIBPQROUTE_H */
