/*
 * Conninfo handling: libpq's parsed options in and out, and the rewrite of an effective conninfo
 * into keyword/value arrays for a candidate list — never string concatenation. A pure core.
 */
#ifndef PQRI_REWRITE_H
#define PQRI_REWRITE_H

#include "policy.h"
#include "shim_api.h"

struct pqri_params {
    const char **kw;
    const char **val;
    size_t n, cap;
    char **owned;
    size_t nowned;
};
void pqri_params_free(struct pqri_params *p);
int pqri_params_add(struct pqri_params *p, const char *k, const char *v);
/* The non-empty value of keyword kw in a PQconninfo()/PQconninfoParse() array, or NULL. */
const char *pqri_conninfo_value(const PQconninfoOption *o, const char *kw);
/* PQconninfoFree() with the password cleared first, with a given libpq's (pq NULL: ours). */
void pqri_conninfo_free(const struct pqri_libpq *pq, PQconninfoOption *o);
/* PQconninfoParse() into NULL-terminated arrays and a call with a string's rules (-1 if it does
 * not parse), and its release. */
int pqri_conninfo_parse(struct pqri_conninfo *ci, const char *conninfo);
void pqri_conninfo_release(struct pqri_conninfo *ci);
/* The keyword of an effective option that keyword arrays cannot pass on as libpq read it (a '' from
 * a string where arrays would put the PG* variable or a non-empty built-in default), or NULL. */
const char *pqri_conninfo_unpassable(const PQconninfoOption *effective);

struct pqri_rewrite_in {
    const PQconninfoOption *effective; /* PQconninfo() of the probe */
    const char *pgpass_password;       /* PQpass() of the probe: .pgpass entry for the front door */
    const struct pqr_topology *t;
    const struct pqri_candidate *cands;
    size_t ncands;
    const char *door_host, *door_hostaddr, *door_port;
    const char *target_session_attrs;
    int connect_timeout_s;
    bool no_door; /* members only */
};
int pqri_rewrite(const struct pqri_rewrite_in *in, struct pqri_params *out);

#endif
