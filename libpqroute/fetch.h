/*
 * Where a cluster's views come from: its DCS client, with Patroni's REST API as the fallback (or
 * the REST API alone), and the shared cache file when another process just fetched.
 */
#ifndef PQRI_FETCH_H
#define PQRI_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "view.h"

struct pqri_source;

/* v's DCS client (NULL if none is configured), kept for the view's life. */
struct pqri_source *pqri_view_source(struct pqri_view *v);
/* Patroni's REST API: every endpoint (starts staggered); or, while the DCS is down, one endpoint
 * only, the next one each time: then Patroni's /cluster waits on the DCS itself, and a fleet whose
 * every ask walked all nodes through their timeouts would hold three of their threads each. */
struct pqr_topology *pqri_view_fetch_rest(struct pqri_view *v, bool dcs_down, char *err,
                                          size_t errlen);

#endif
