/*
 * Settings: PQROUTE_* environment variables and the libconfig file, validated into one struct.
 * Every value goes through one table (settings.c), whichever source it came from.
 */
#ifndef PQRI_SETTINGS_H
#define PQRI_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "libpqroute.h"

#define PQRI_MAX_ENDPOINTS 16
#define PQRI_ENV_LOG "PQROUTE_LOG"

/* Where Patroni's state is read first: its DCS (REST is then the fallback). */
enum pqri_dcs_kind { PQRI_DCS_NONE, PQRI_DCS_ETCD, PQRI_DCS_CONSUL };
struct pqri_dcs_conf {
    int kind;    /* enum pqri_dcs_kind */
    char **urls; /* base URLs, without trailing slash */
    size_t nurls;
    char *scope;                /* Patroni's scope */
    char *ns;                   /* Patroni's namespace, "/service" by default; no trailing slash */
    int group;                  /* Citus group, -1: none */
    char *ca, *cert, *key;      /* TLS files */
    char *user, *password_file; /* etcd authentication */
    char *token_file;           /* Consul ACL token */
};

struct pqri_cluster_conf {
    char *name;
    char **seeds; /* REST base URLs, without trailing slash */
    size_t nseeds;
    char *rw_host; /* NULL: no read-write front door */
    int rw_port;
    char *ro_host; /* NULL: no read-only front door */
    int ro_port;
    int member_port;   /* 0: the global setting */
    long long max_lag; /* bytes; -1: the global setting */
    char *zone;        /* PQROUTE_ZONE, "b,a"; NULL: the global setting */
    char *zone_tag;    /* NULL: the global setting */
    int ro_fallback;   /* enum pqri_ro_fallback; -1: the global setting */
    char *key;         /* stable identity for the shared cache file */
    struct pqri_dcs_conf dcs;
};

/* When a routed connection may fall to the front door (PQROUTE_FRONT_DOOR). */
enum pqri_door {
    PQRI_DOOR_ADAPTIVE,  /* last in the list, but not tried when every member answered and refused
                            the role (it leads to those same servers): refresh and retry instead */
    PQRI_DOOR_LAST,      /* last in every list */
    PQRI_DOOR_STALE_ONLY /* only when Patroni's view is unknown or stale */
};

/* Where reads go when no replica is eligible (PQROUTE_RO_FALLBACK). */
enum pqri_ro_fallback {
    PQRI_RO_DOOR,  /* the front door alone */
    PQRI_RO_LEADER /* the leader directly, then the front door (libpq's prefer-standby) */
};

#define PQRI_MAX_ZONES 8
#define PQRI_DEFAULT_ZONE_TAG "zone"

struct pqr_settings {
    struct pqri_cluster_conf *clusters;
    size_t nclusters;
    int refresh_ms;
    int stale_ms;
    int watch_check_ms; /* the longest a DCS watch stays silent before a read checks it */
    int fallback_ms;    /* while the DCS is unreachable: Patroni's REST API asked this often */
    int rest_timeout_ms;
    int connect_timeout_s; /* added to routed connections that set none; 0: never */
    int start_wait_ms;     /* how long a non-blocking connect waits for a process's first view */
    long long max_lag;
    int member_port;
    char *rest_ca, *rest_cert, *rest_key;
    char *cache_dir;   /* NULL: $XDG_RUNTIME_DIR/libpqroute, else /tmp/libpqroute-<uid> */
    char *cache_owner; /* the host agent's user: its cache directory is read, never written */
    struct pqri_cidr *allow;
    size_t nallow;
    int log_level;
    int door_mode;   /* PQROUTE_FRONT_DOOR: enum pqri_door */
    char *zone;      /* PQROUTE_ZONE: this process's zone, or a list in order of preference; NULL */
    char *zone_tag;  /* PQROUTE_ZONE_TAG: the Patroni tag naming a member's zone; NULL: "zone" */
    int ro_fallback; /* PQROUTE_RO_FALLBACK: enum pqri_ro_fallback */
    /* the settings given for the environment's own cluster, before it is appended */
    char *env_patroni, *env_rw, *env_ro;
    /* DCS settings: the environment's cluster's, and the defaults of the file's clusters */
    char *etcd, *consul;
    struct pqri_dcs_conf dcs; /* urls unused here */
};

void pqri_settings_init(struct pqr_settings *s);
void pqri_settings_clear(struct pqr_settings *s);
int pqri_settings_copy(struct pqr_settings *dst, const struct pqr_settings *src);
/* name: a variable name, with or without PQROUTE_. Returns 0, or -1 with a message naming it. */
int pqri_settings_set(struct pqr_settings *s, const char *name, const char *value, char *err,
                      size_t errlen);
/* Turns the PATRONI/RW/RO values into a cluster and checks the whole; 1 = nothing configured. */
int pqri_settings_finish(struct pqr_settings *s, char *err, size_t errlen);
int pqri_settings_from_env(struct pqr_settings *s, char *err, size_t errlen);
int pqri_settings_from_file(struct pqr_settings *s, const char *path, char *err, size_t errlen);
/* The configuration file (PQROUTE_CONFIG, or /etc/libpqroute.conf when it exists) and the
 * environment over it, as the shim reads them: 0 ok, 1 nothing configured, -1 error. */
int pqri_settings_load(struct pqr_settings *s, char *err, size_t errlen);
/* How long a fetch may take, all told (REST timeout plus scheduling slack): the wait of a blocking
 * connect and of a process that lets another one fetch. */
int pqri_rest_budget_ms(const struct pqr_settings *s);
int pqri_settings_member_port(const struct pqr_settings *s, const struct pqri_cluster_conf *c);
long long pqri_max_lag(const struct pqr_settings *s, const struct pqri_cluster_conf *c);
/* A cluster's own value, else the global one: zone list (NULL: none), zone tag, RO fallback. */
const char *pqri_zone(const struct pqr_settings *s, const struct pqri_cluster_conf *c);
const char *pqri_zone_tag(const struct pqr_settings *s, const struct pqri_cluster_conf *c);
int pqri_ro_fallback(const struct pqr_settings *s, const struct pqri_cluster_conf *c);

#endif
