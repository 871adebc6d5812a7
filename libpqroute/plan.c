/*
 * The connect flow, shared by the shim and the library API: is this connection aimed at a front
 * door? which role? which candidates? — and then the connect itself, with one refresh and one retry
 * when a blocking connect fails everywhere.
 *
 * "Aimed at a front door" is decided on the *effective* target, computed by libpq itself: a probe
 * PQconnectStartParams() with an invalid target_session_attrs runs libpq's whole option processing
 * (conninfo or URI, dbname expansion, service file, PG* environment, .pgpass look-up) and then stops
 * at that option's check, before any socket or DNS look-up. PQconninfo() and PQpass() on the probe
 * give the result. The invalid value is quoted in libpq's error in every language, which is how we
 * know the probe stopped where we meant it to.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "plan.h"
#include "log.h"

#define PROBE_VALUE "pqroute-probe-invalid"


static __thread char decision[768];

const char *pqr_last_decision(void)
{
    return decision;
}

void pqri_decision(const char *fmt, ...)
{
    char raw[sizeof decision];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    pqri_escape(decision, sizeof decision, raw);
    PQR_INFO("%s", decision);
}

/* libpq's option processing without connecting; NULL when the options themselves are invalid
 * (libpq will then report that to the application exactly as without us). */
static PGconn *probe(const struct pqri_libpq *pq, const char *const *kw, const char *const *val,
                     int expand, const char *override)
{
    size_t n = 0;
    const char **k2, **v2;
    PGconn *conn = NULL;

    while (kw[n])
        n++;
    k2 = malloc((n + 2) * sizeof *k2);
    v2 = malloc((n + 2) * sizeof *v2);
    if (k2 && v2) {
        memcpy(k2, kw, n * sizeof *k2);
        memcpy(v2, val, n * sizeof *v2);
        k2[n] = override; /* later entries override earlier ones and the expanded dbname */
        v2[n] = PROBE_VALUE;
        k2[n + 1] = v2[n + 1] = NULL;
        conn = pq->connect_start_params(pq, k2, v2, expand);
    }
    free(k2);
    free(v2);
    if (conn && (pq->status(conn) != CONNECTION_BAD || !strstr(pq->error_message(conn), PROBE_VALUE))) {
        pq->finish(conn);
        conn = NULL;
    }
    return conn;
}

void pqri_plan_free(struct pqri_plan *p)
{
    if (!p)
        return;
    pqri_topo_unref(p->t);
    if (p->eff)
        pqri_conninfo_free(p->pq, p->eff);
    pqri_free_secret(p->pgpass);
    free(p->door_host);
    free(p->door_hostaddr);
    free(p->door_port);
    free(p->tsa);
    pqri_params_free(&p->params);
    free(p);
}

/* The application's own target_session_attrs, from a second probe that leaves it alone. */
static char *app_tsa(const struct pqri_libpq *pq, const char *const *kw, const char *const *val,
                     int expand)
{
    PGconn *p2 = probe(pq, kw, val, expand, "channel_binding");
    PQconninfoOption *o2 = p2 ? pq->conninfo(p2) : NULL;
    const char *v = pqri_conninfo_value(o2, "target_session_attrs");
    char *tsa = v && strcmp(v, "any") != 0 ? strdup(v) : NULL;

    if (o2)
        pqri_conninfo_free(pq, o2);
    if (p2)
        pq->finish(p2);
    return tsa;
}

static pqr_role role_of_tsa(const char *tsa)
{
    if (!tsa)
        return PQR_ROLE_AUTO;
    if (strcmp(tsa, "read-write") == 0 || strcmp(tsa, "primary") == 0)
        return PQR_ROLE_RW;
    if (strcmp(tsa, "read-only") == 0 || strcmp(tsa, "standby") == 0 ||
        strcmp(tsa, "prefer-standby") == 0)
        return PQR_ROLE_RO;
    return PQR_ROLE_AUTO;
}

static const char *role_name(pqr_role r)
{
    return r == PQR_ROLE_RW ? "rw" : "ro";
}

/* Candidates and parameters for plan p from snapshot p->t. */
static int build(struct pqri_views *vs, struct pqri_plan *p)
{
    const struct pqr_settings *s = pqri_views_settings(vs);
    struct pqri_failure fails[PQR_MAX_FAILURES];
    struct pqri_policy_in in = {0};

    in.nfailures = pqri_view_failures(p->v, fails, PQR_MAX_FAILURES);
    in.spread = pqri_views_spread(vs);
    /* The front door failed together with every member a moment ago: the cluster is changing
     * leaders, and our view follows Patroni faster than the proxy's health checks do, while a
     * proxy whose backend is gone can hold each connect for seconds. Leave it out for a while. */
    if (pqri_view_door_resting(p->v))
        p->leave_door_out = true;
    /* No running leader in Patroni's view (a switchover or an election in progress): nothing can
     * take writes, through the proxy or not; the members are tried until one is promoted. */
    if ((p->role == PQR_ROLE_RW && !pqri_topo_leader_running(p->t)) || s->door_stale_only)
        p->leave_door_out = true;
    in.t = p->t;
    in.role = p->role;
    in.max_lag = pqri_max_lag(s, pqri_view_conf(p->v));
    in.failures = fails;
    p->ncands = pqri_policy_order(&in, p->cands, PQR_MAX_MEMBERS);
    if (p->ncands == 0)
        return -1;
    pqri_params_free(&p->params);
    struct pqri_rewrite_in rw = {
        .effective = p->eff, .pgpass_password = p->pgpass, .t = p->t, .cands = p->cands,
        .ncands = p->ncands, .door_host = p->door_host, .door_hostaddr = p->door_hostaddr,
        .door_port = p->door_port, .target_session_attrs = p->tsa,
        .connect_timeout_s = s->connect_timeout_s, .no_door = p->leave_door_out};
    return pqri_rewrite(&rw, &p->params);
}

static void describe(const struct pqri_plan *p, const char *what)
{
    char list[512], door[300] = "";
    size_t used = 0;

    list[0] = 0;
    for (size_t i = 0; i < p->ncands && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s:%d(%s)", i ? "," : "",
                                 p->cands[i].addr, p->cands[i].port,
                                 p->t->m[p->cands[i].member].name);
    snprintf(door, sizeof door, p->leave_door_out ? " (front door %s:%s left out: no running leader, it just failed, or stale-only)"
                                                   : ",%s:%s (front door)",
             p->door_host, p->door_port);
    pqri_decision("%s %s: cluster %s, front door %s:%s, candidates %s%s, target_session_attrs=%s, "
                  "leader %s, view %.1fs old from %s",
                  what, role_name(p->role), pqri_view_conf(p->v)->name, p->door_host, p->door_port, list, door,
                  p->tsa, p->t->leader >= 0 ? p->t->m[p->t->leader].name : "(none)",
                  pqr_topology_age(p->t),
                  p->t->source ? p->t->source : "?");
}

struct pqri_plan *pqri_plan_new(struct pqri_views *vs, const struct pqri_libpq *pq,
                                 const char *const *kw, const char *const *val, int expand,
                                 enum pqri_mode mode, pqr_role forced)
{
    struct pqri_plan *p;
    PGconn *p1;
    const char *host, *port;
    long portnum;
    char *end, *tsa = NULL;
    bool ro_door = false;

    const struct pqr_settings *s = pqri_views_settings(vs);

    if (!(p1 = probe(pq, kw, val, expand, "target_session_attrs"))) {
        pqri_decision("passed through: libpq rejects these connection options itself");
        return NULL;
    }
    if (!(p = calloc(1, sizeof *p))) {
        pq->finish(p1);
        return NULL;
    }
    p->pq = pq;
    p->mode = mode;
    p->eff = pq->conninfo(p1);
    p->pgpass = strdup(pq->pass(p1) ? pq->pass(p1) : "");
    pq->finish(p1);
    host = pqri_conninfo_value(p->eff, "host");
    port = pqri_conninfo_value(p->eff, "port");
    if (!host || strchr(host, ',') || host[0] == '/' || host[0] == '@' ||
        (port && strchr(port, ','))) {
        pqri_decision("passed through: not a single TCP host (host=%s)", host ? host : "(socket)");
        goto pass;
    }
    portnum = port ? strtol(port, &end, 10) : 5432;
    if (port && *end)
        portnum = -1;
    if (!(p->v = pqri_views_door(vs, host, portnum, &ro_door))) {
        pqri_decision("passed through: %s:%ld is not a configured front door", host, portnum);
        pqri_views_stat_other(vs, PQR_STAT_PASSED_THROUGH);
        goto pass;
    }
    p->door_host = strdup(host);
    p->door_port = port ? strdup(port) : strdup("5432");
    const char *hostaddr = pqri_conninfo_value(p->eff, "hostaddr");
    p->door_hostaddr = hostaddr ? strdup(hostaddr) : NULL;
    tsa = app_tsa(pq, kw, val, expand);
    if (tsa && role_of_tsa(tsa) == PQR_ROLE_AUTO) {
        /* A value libpq will reject: let libpq say so, exactly as without us. */
        pqri_decision("passed through: target_session_attrs=%.40s is not one libpq accepts", tsa);
        goto pass;
    }
    /* A forced role wins; else the application's target_session_attrs (known to libpq, checked
     * above); else the front door it named. */
    p->role = forced != PQR_ROLE_AUTO ? forced : tsa ? role_of_tsa(tsa)
                                               : ro_door ? PQR_ROLE_RO : PQR_ROLE_RW;
    if (tsa && forced == PQR_ROLE_AUTO)
        p->tsa = tsa, tsa = NULL;
    else if (!(p->tsa = strdup(p->role == PQR_ROLE_RW ? "read-write" : "prefer-standby")))
        goto pass;
    /* A non-blocking connect (an event loop's) may wait a little for a fresh process's first
     * view — Patroni answers in about a millisecond — rather than go to the front door. */
    p->t = pqri_view_snapshot(p->v, mode == PQR_BLOCKING ? pqri_rest_budget_ms(s) : s->start_wait_ms);
    if (!p->t) {
        pqri_view_stat(p->v, PQR_STAT_FALLBACK_NO_VIEW);
        pqri_decision("passed through %s: cluster %s, no fresh Patroni view (front door %s:%s)",
                      role_name(p->role), pqri_view_conf(p->v)->name, host, p->door_port);
        goto pass;
    }
    if (build(vs, p) < 0) {
        pqri_view_stat(p->v, PQR_STAT_FALLBACK_NO_MEMBER);
        pqri_decision("passed through %s: cluster %s, no eligible member in Patroni's view "
                      "(front door %s:%s)",
                      role_name(p->role), pqri_view_conf(p->v)->name, host, p->door_port);
        goto pass;
    }
    free(tsa);
    pqri_view_stat(p->v, p->role == PQR_ROLE_RW ? PQR_STAT_ROUTED_RW : PQR_STAT_ROUTED_RO);
    describe(p, "routed");
    return p;
pass:
    free(tsa);
    pqri_plan_free(p);
    return NULL;
}

/* Which candidate the connection ended on: 0..ncands-1 a member, ncands the front door. */
static size_t landing(const struct pqri_plan *p, PGconn *conn)
{
    const char *ip = p->pq->hostaddr(conn), *port = p->pq->port(conn);
    int portnum = port ? atoi(port) : -1;

    for (size_t i = 0; ip && i < p->ncands; i++)
        if (p->cands[i].port == portnum && strcmp(p->cands[i].addr, ip) == 0)
            return i;
    return p->ncands;
}

/* Members before index n that should have served this role and did not: the leader for RW
 * (a replica refusing a read-write session is working as intended), every replica for RO. */
static void note_failures(struct pqri_plan *p, size_t n)
{
    struct pqri_candidate bad[PQR_MAX_MEMBERS];
    size_t k = 0;

    for (size_t i = 0; i < n && i < p->ncands; i++) {
        if (p->role == PQR_ROLE_RO || pqri_member_leads(&p->t->m[p->cands[i].member]))
            bad[k++] = p->cands[i];
    }
    if (k)
        pqri_view_note_failures(p->v, p->t->gen, bad, k);
}

PGconn *pqri_plan_exec(struct pqri_views *vs, struct pqri_plan *p)
{
    PGconn *conn, *again;
    size_t at;
    struct pqr_topology *t;

    const struct pqri_libpq *pq = p->pq;

    if (p->mode == PQR_NONBLOCKING)
        return pq->connect_start_params(pq, p->params.kw, p->params.val, 0);
    conn = pq->connectdb_params(pq, p->params.kw, p->params.val, 0);
    if (!conn)
        return NULL;
    at = landing(p, conn);
    if (pq->status(conn) == CONNECTION_OK) {
        /* Everything before the landing place refused, timed out or had the wrong role. */
        note_failures(p, at);
        if (at == p->ncands)
            pqri_view_door_answered(p->v);
        PQR_DEBUG("landed on %s:%s", pq->hostaddr(conn), pq->port(conn));
        return conn;
    }
    /* Stopped early (authentication and the like): libpq did not try the rest; neither do we. */
    if (at < p->ncands)
        return conn;
    note_failures(p, p->ncands);
    if (!p->leave_door_out)
        pqri_view_door_failed(p->v);
    t = pqri_view_refresh(p->v, pqri_mono_ms(), pqri_rest_budget_ms(pqri_views_settings(vs)));
    if (!t)
        return conn; /* no view: the front door was already tried */
    pqri_topo_unref(p->t);
    p->t = t;
    /* The members again, in the refreshed view's order; not the front door (build() leaves it out
     * while it rests): it failed a moment ago in this same call, and a proxy whose backend is gone
     * can hold a connect for seconds. */
    if (build(vs, p) < 0)
        return conn;
    pqri_view_stat(p->v, PQR_STAT_RETRIES);
    describe(p, "retrying");
    again = pq->connectdb_params(pq, p->params.kw, p->params.val, 0);
    if (!again)
        return conn;
    pq->finish(conn);
    return again;
}

PGconn *pqri_plan_connect(struct pqri_views *vs, const struct pqri_libpq *pq, const char *const *kw,
                           const char *const *val, int expand, enum pqri_mode mode, pqr_role forced,
                           bool *passed)
{
    struct pqri_plan *p = pqri_plan_new(vs, pq, kw, val, expand, mode, forced);
    PGconn *conn;

    *passed = !p;
    if (!p)
        return NULL;
    conn = pqri_plan_exec(vs, p);
    pqri_plan_free(p);
    return conn;
}

PGPing pqri_plan_ping(struct pqri_views *vs, const struct pqri_libpq *pq, const char *const *kw,
                       const char *const *val, int expand, bool *passed)
{
    struct pqri_plan *p = pqri_plan_new(vs, pq, kw, val, expand, PQR_BLOCKING, PQR_ROLE_AUTO);
    PGPing ping;

    *passed = !p;
    if (!p)
        return PQPING_NO_ATTEMPT;
    /* The routed list, as a connection would try it: pg_isready aimed at the front door answers
     * for the leader (or a replica for the read-only door). */
    ping = p->pq->ping_params(p->pq, p->params.kw, p->params.val, 0);
    pqri_plan_free(p);
    return ping;
}
