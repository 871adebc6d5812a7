/*
 * The routing decision for one connection: probe (libpq's own option processing) -> front door ->
 * role -> view -> policy -> rewrite; then the connect, with one refresh and one retry when a
 * blocking connect fails everywhere. Takes no lock of anyone else's: the views have verbs.
 */
#ifndef PQRI_PLAN_H
#define PQRI_PLAN_H

#include "rewrite.h"
#include "view.h"

struct pqri_plan {
    const struct pqri_libpq *pq; /* the libpq the application meant, for every call */
    struct pqri_view *v;
    struct pqr_topology *t;
    PQconninfoOption *eff;
    char *pgpass;
    char *door_host, *door_hostaddr, *door_port;
    char *tsa;
    char *asked_tsa; /* the application's own target_session_attrs, or NULL */
    pqr_role role;
    enum pqri_mode mode;
    struct pqri_candidate cands[PQRI_MAX_MEMBERS];
    size_t ncands;
    struct pqri_params params; /* what libpq is handed */
    bool leave_door_out;       /* members only: no front door at the end of the list */
    bool silent_left_out;      /* a member known to be silent is left out: the door may help */
    bool door_silent;          /* the front door did not answer within connect_timeout */
    /* Members this connect found unreachable: remembered for the whole connect, whatever the
     * view does meanwhile (a changed view, PQROUTE_STALE_MS passing); silent ones are not tried
     * again in it. */
    struct pqri_failure found[PQRI_MAX_MEMBERS];
    size_t nfound;
    /* Rounds while a leader changes (pqri_plan_next_round): the leader the connect's first view
     * named; the one being promoted and since when (0: none); when the last full round began. */
    struct pqri_candidate first_leader, promoting;
    long long promoting_since, full_round_ms;
};

/* NULL: pass the call through to libpq unchanged (the reason is in pqr_last_decision()). */
struct pqri_plan *pqri_plan_new(struct pqri_views *vs, const struct pqri_libpq *pq,
                                const char *const *kw, const char *const *val, int expand,
                                enum pqri_mode mode, pqr_role forced);
PGconn *pqri_plan_exec(struct pqri_views *vs, struct pqri_plan *p);
void pqri_plan_free(struct pqri_plan *p);
/* PQpingParams() of what a connection would reach; *passed as above. */
PGPing pqri_plan_ping(struct pqri_views *vs, const struct pqri_libpq *pq, const char *const *kw,
                      const char *const *val, int expand, bool *passed);
/* For the non-blocking connect (nb.c), which drives the same plan from the caller's polls. */
#define PQRI_DOOR (-1) /* pqri_plan_entry(): libpq is on the front door */
#define PQRI_NONE (-2) /* ... on no host yet */
int pqri_plan_entry(const struct pqri_plan *p,
                    PGconn *conn);          /* a candidate's index, or the above */
bool pqri_plan_answered(ConnStatusType st); /* the host spoke PostgreSQL */
bool pqri_plan_authed(ConnStatusType st);   /* ... and its login went through */
/* An attempt that ended at a member that answered before its login was seen through: true to end
 * the connect with it (see plan.c). */
struct pqri_login {
    bool retried; /* a round was given after a password was sent and not understood */
};
bool pqri_plan_login_ends(struct pqri_login *l, bool before_end, bool needs_password,
                          bool used_password, const char *error);
void pqri_plan_note_failures(struct pqri_plan *p, size_t n);
/* A newer view for a connect whose host list stays (non-blocking): candidates are matched to its
 * members by address (member -1: not in it). Takes t's reference. */
void pqri_plan_adopt(struct pqri_plan *p, struct pqr_topology *t);
/* The candidate the view names as leader, for a read-write connect; else -1. */
int pqri_plan_leader_at(const struct pqri_plan *p);
/* The view's leader answered and refused the connect, not the login (see plan.c); `at`: the
 * entry libpq stopped at, `error` its message. */
bool pqri_plan_leader_refused(const struct pqri_plan *p, const bool *answered, const bool *authed,
                              int at, const char *error);
/* The pause before the next round while a leader changes, given whether the view's leader
 * answered (and refused the connect); *probe: that round asks the leader alone. */
int pqri_plan_next_round(struct pqri_plan *p, bool leader_refused, bool *probe);
/* share_later: see pqri_view_note_down() */
void pqri_plan_note_down(struct pqri_plan *p, const struct pqri_candidate *c, bool silent,
                         struct pqri_failure *share_later);
/* The silent members found, remembered (shared now, or placed in later: PQRI_MAX_MEMBERS of
 * them, see pqri_view_note_down(); returns how many). */
size_t pqri_plan_remember_silent(struct pqri_plan *p, PGconn *conn, struct pqri_failure *later);
bool pqri_plan_found_silent(const struct pqri_plan *p, size_t i); /* candidate i, in this connect */
int pqri_plan_host_ms(
    const struct pqri_plan *p); /* libpq's connect_timeout per host, ms (0: none) */
int pqri_plan_members(const struct pqri_plan *p); /* members with an address (at least 1) */
void pqri_plan_describe(const struct pqri_plan *p, const char *what);
void pqri_decision(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
