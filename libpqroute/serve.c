/*
 * The agent's side of a view (agent.c): holding the shared cache's refresh lock, and writing the
 * views the agent follows to the file, which the connects of this host read (fetch.c) instead of
 * fetching.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "serve.h"
#include "view_int.h"

int pqri_view_hold(struct pqri_view *v)
{
    struct pqr_topology *ft;
    int rc;

    if (!sharing(v->vs))
        return -1;
    if ((rc = pqri_cache_trylock(&v->cache)) != 1)
        return rc;
    /* From here on this process is the only writer: it numbers its views after the file's. */
    ft = pqri_cache_read(&v->cache, &v->vs->s, v->conf);
    v->served_seq = ft ? ft->seq : 0;
    pqri_topo_unref(ft);
    return 1;
}

void pqri_view_release(struct pqri_view *v)
{
    pqri_cache_unlock(&v->cache);
}

void pqri_view_serve(struct pqri_view *v, struct pqr_topology *t, const char *err)
{
    char *src;

    /* Not shared yet: ours to label, so that `pqroute status` tells who keeps the cache. */
    if (t &&
        asprintf(&src, "%s, by pqroute agent %ld", t->source ? t->source : "?", (long)getpid()) >
            0) {
        free(t->source);
        t->source = src;
    }
    pqri_view_fetched(v->vs, v, t, err, ++v->served_seq);
}
