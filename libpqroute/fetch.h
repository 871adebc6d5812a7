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
/* Patroni's REST API: every endpoint (starts staggered), or one at a time (the DCS fallback). */
struct pqr_topology *pqri_view_fetch_rest(struct pqri_view *v, bool one_at_a_time, char *err,
                                          size_t errlen);

#endif
