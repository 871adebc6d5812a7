/*
 * The agent's side of a view (agent.c): holding the shared cache's refresh lock, and writing the
 * views the agent follows to the shared cache file.
 */
#ifndef PQRI_SERVE_H
#define PQRI_SERVE_H

#include "view.h"

/* Hold the shared refresh lock of v's cache for good, so that the processes of this host take
 * their views from the file (1; 0: another process holds it; -1: no shared cache), and let it
 * go. */
int pqri_view_hold(struct pqri_view *v);
void pqri_view_release(struct pqri_view *v);
/* A view from the agent's source (NULL, with err: none could be had): names resolved, written to
 * the shared cache as the next version, published. Takes t's reference. */
void pqri_view_serve(struct pqri_view *v, struct pqr_topology *t, const char *err);

#endif
