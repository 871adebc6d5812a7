/* The DCS client behind one interface (etcd.c, consul.c), and jansson made to clear what it frees
 * before a DCS secret reaches it. */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>

#include "source.h"
#include "log.h"

struct pqri_source {
    int kind;
    struct pqri_etcd *etcd;
    struct pqri_consul *consul;
};

struct pqri_source *pqri_source_open(const struct pqr_settings *s,
                                     const struct pqri_cluster_conf *c)
{
    struct pqri_source *src;

    if (!c->dcs.kind || !(src = calloc(1, sizeof *src)))
        return NULL;
    src->kind = c->dcs.kind;
    if (src->kind == PQRI_DCS_ETCD)
        src->etcd = pqri_etcd_open(s, c);
    else
        src->consul = pqri_consul_open(s, c);
    if (!src->etcd && !src->consul) {
        free(src);
        return NULL;
    }
    return src;
}

void pqri_source_close(struct pqri_source *src)
{
    if (!src)
        return;
    pqri_etcd_close(src->etcd);
    pqri_consul_close(src->consul);
    free(src);
}

void pqri_source_keep_connections(struct pqri_source *src)
{
    if (src->etcd)
        pqri_etcd_keep_connections(src->etcd);
    else
        pqri_consul_keep_connections(src->consul);
}

struct pqr_topology *pqri_source_read(struct pqri_source *src, const int *stop, char *err,
                                      size_t errlen)
{
    return src->etcd ? pqri_etcd_read(src->etcd, stop, err, errlen)
                     : pqri_consul_read(src->consul, stop, err, errlen);
}

int pqri_source_watch(struct pqri_source *src, const int *stop, const struct pqri_watch_hooks *h,
                      char *err, size_t errlen)
{
    return src->etcd ? pqri_etcd_watch(src->etcd, stop, h, err, errlen)
                     : pqri_consul_watch(src->consul, stop, h, err, errlen);
}

/* jansson frees what it allocated without clearing it: the strings it copies, and the buffers
 * json_dumps() grows (each intermediate one held part of a request with the etcd password or a
 * token in it) go back to the allocator as they were. Every block jansson frees in this process is
 * cleared first (the application's own jansson use included: clearing freed memory changes
 * nothing it can observe). Called once, before the first secret reaches jansson. */
static void json_alloc_init(void)
{
    json_set_alloc_funcs(malloc, pqri_clearing_free);
}

void pqri_json_clear_freed(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, json_alloc_init);
}
