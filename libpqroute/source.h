/*
 * A DCS client for one cluster (etcd v3 through its JSON gateway, or Consul's KV API): one read of
 * Patroni's keys, or a watch that reports every change and proves itself alive once per refresh
 * interval. Endpoints are tried in turn; the client remembers which one answered.
 */
#ifndef PQRI_SOURCE_H
#define PQRI_SOURCE_H

#include "dcs.h"
#include "hostcache.h"

struct pqri_watch_hooks {
    void *arg;
    /* A complete view: after a change, and again (newly stamped) whenever the watch proved itself
     * current. Takes t's reference. */
    void (*view)(void *arg, struct pqr_topology *t);
    void (*count)(void *arg, enum pqri_stat which);
};

struct pqri_source;
struct pqri_source *pqri_source_open(const struct pqr_settings *s,
                                     const struct pqri_cluster_conf *c);
void pqri_source_close(struct pqri_source *src);
/* Keep connections between requests (the agent: it owns its fds; an application may close any). */
void pqri_source_keep_connections(struct pqri_source *src);
/* One read: the topology (names not yet resolved), or NULL with a message. */
struct pqr_topology *pqri_source_read(struct pqri_source *src, const int *stop, char *err,
                                      size_t errlen);
/* Read, then follow changes until *stop (returns 0) or the watch cannot go on (-1, a message). */
int pqri_source_watch(struct pqri_source *src, const int *stop, const struct pqri_watch_hooks *h,
                      char *err, size_t errlen);

/* The two implementations behind it. */
struct pqri_etcd;
struct pqri_etcd *pqri_etcd_open(const struct pqr_settings *s, const struct pqri_cluster_conf *c);
void pqri_etcd_close(struct pqri_etcd *e);
void pqri_etcd_keep_connections(struct pqri_etcd *e);
struct pqr_topology *pqri_etcd_read(struct pqri_etcd *e, const int *stop, char *err, size_t errlen);
int pqri_etcd_watch(struct pqri_etcd *e, const int *stop, const struct pqri_watch_hooks *h,
                    char *err, size_t errlen);
struct pqri_consul;
struct pqri_consul *pqri_consul_open(const struct pqr_settings *s,
                                     const struct pqri_cluster_conf *c);
void pqri_consul_close(struct pqri_consul *e);
void pqri_consul_keep_connections(struct pqri_consul *e);
struct pqr_topology *pqri_consul_read(struct pqri_consul *e, const int *stop, char *err,
                                      size_t errlen);
int pqri_consul_watch(struct pqri_consul *e, const int *stop, const struct pqri_watch_hooks *h,
                      char *err, size_t errlen);

/* From now on every block jansson frees is cleared first (source.c). */
void pqri_json_clear_freed(void);

#endif
