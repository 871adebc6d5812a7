/* A routed connect from start to end, blocking or not (connect.c). */
#ifndef PQRI_CONNECT_H
#define PQRI_CONNECT_H

#include "plan.h"

/* Plan and connect: *passed says the connection is not ours to route (the caller then makes the
 * application's own call to libpq); otherwise the connection, or NULL if out of memory. */
PGconn *pqri_connect(struct pqri_views *vs, const struct pqri_libpq *pq, const char *const *kw,
                     const char *const *val, int expand, enum pqri_mode mode, pqr_role forced,
                     bool *passed);

#endif
