/*
 * A routed connect from start to end: the plan (plan.c), then either the blocking walk of its list
 * (plan.c) or, for PQconnectStart*, the same policy driven by the caller's polls (nb.c). Above both,
 * so that neither calls the other.
 */
#include "connect.h"
#include "asked.h"
#include "nb.h"

PGconn *pqri_connect(struct pqri_views *vs, const struct pqri_libpq *pq, const char *const *kw,
                     const char *const *val, int expand, enum pqri_mode mode, pqr_role forced,
                     bool *passed)
{
    struct pqri_plan *p = pqri_plan_new(vs, pq, kw, val, expand, mode, forced);
    PGconn *conn;

    *passed = !p;
    if (!p)
        return NULL;
    if (p->mode == PQRI_NONBLOCKING) {
        /* The plan goes with the connection: the caller's PQconnectPoll() drives it (nb.c). */
        conn = p->pq->connect_start_params(p->pq, p->params.kw, p->params.val, 0);
        pqri_asked_note(conn, p->eff, p->asked_tsa, &p->params);
        return pqri_nb_start(vs, p, conn);
    }
    conn = pqri_plan_exec(vs, p);
    pqri_asked_note(conn, p->eff, p->asked_tsa, &p->params);
    pqri_plan_free(p);
    return conn;
}
