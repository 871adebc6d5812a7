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
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "plan.h"
#include "asked.h"
#include "failures.h"
#include "log.h"
#include "refresher.h"

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
    PQRI_INFO("%s", decision);
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
    if (conn &&
        (pq->status(conn) != CONNECTION_BAD || !strstr(pq->error_message(conn), PROBE_VALUE))) {
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
    free(p->asked_tsa);
    pqri_params_free(&p->params);
    free(p);
}

/* The application's own target_session_attrs, from a second probe that leaves it alone. */
static char *app_tsa(const struct pqri_libpq *pq, const char *const *kw, const char *const *val,
                     int expand)
{
    /* sslmode: every libpq knows it and quotes a bad value (channel_binding is 13+). */
    PGconn *p2 = probe(pq, kw, val, expand, "sslmode");
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

static const struct pqri_failure *found(const struct pqri_plan *p, const char *addr, int port)
{
    for (size_t i = 0; i < p->nfound; i++)
        if (p->found[i].port == port && strcmp(p->found[i].addr, addr) == 0)
            return &p->found[i];
    return NULL;
}

bool pqri_plan_found_silent(const struct pqri_plan *p, size_t i)
{
    const struct pqri_failure *f =
        i < p->ncands ? found(p, p->cands[i].addr, p->cands[i].port) : NULL;
    return f && f->silent;
}

/* The candidates less the members this connect found silent; the new count. */
static size_t without_silent_found(struct pqri_plan *p)
{
    size_t k = 0;

    for (size_t i = 0; i < p->ncands; i++) {
        const struct pqri_failure *f = found(p, p->cands[i].addr, p->cands[i].port);
        if (!f || !f->silent)
            p->cands[k++] = p->cands[i];
    }
    return k;
}

/* Member c was unreachable in this connect: remembered here for the rest of it, and by the view
 * (for this host, until the view changes or PQROUTE_STALE_MS passes). */
void pqri_plan_note_down(struct pqri_plan *p, const struct pqri_candidate *c, bool silent,
                         struct pqri_failure *share_later)
{
    struct pqri_failure *f = (struct pqri_failure *)found(p, c->addr, c->port);

    if (!f && p->nfound < PQRI_MAX_MEMBERS) {
        f = &p->found[p->nfound++];
        *f = (struct pqri_failure){.port = c->port, .down = true};
        snprintf(f->addr, sizeof f->addr, "%s", c->addr);
    }
    if (f) {
        f->at_ms = pqri_mono_ms();
        f->gen = p->t->gen;
        f->silent = f->silent || silent;
    }
    pqri_view_note_down(p->v, p->t->gen, c, silent, share_later);
    pqri_view_stat(p->v, PQRI_STAT_MEMBER_DOWN);
}

/* libpq's parameters for p's candidates (and the front door unless it is left out). */
static int build_params(struct pqri_plan *p)
{
    struct pqri_rewrite_in rw = {.effective = p->eff,
                                 .pgpass_password = p->pgpass,
                                 .t = p->t,
                                 .cands = p->cands,
                                 .ncands = p->ncands,
                                 .door_host = p->door_host,
                                 .door_hostaddr = p->door_hostaddr,
                                 .door_port = p->door_port,
                                 .target_session_attrs = p->tsa,
                                 .connect_timeout_s =
                                     pqri_views_settings(pqri_view_views(p->v))->connect_timeout_s,
                                 .no_door = p->leave_door_out};

    pqri_params_free(&p->params);
    return pqri_rewrite(&rw, &p->params);
}

/* Candidates and parameters for plan p from snapshot p->t; -1 when no member is eligible (the
 * caller passes the call through), unless door_only_ok: then the front door alone. */
static int build(struct pqri_views *vs, struct pqri_plan *p, bool door_only_ok)
{
    const struct pqr_settings *s = pqri_views_settings(vs);
    struct pqri_failure fails[PQRI_MAX_MEMBERS + PQRI_MAX_FAILURES];
    struct pqri_policy_in in = {0};

    /* A member found silent in this connect stays silent under whichever view it now plans
     * with (it cost a connect_timeout); one that refused is quick to ask again, and a changed view
     * forgives it (a restarted leader refuses for a moment). */
    for (size_t i = 0; i < p->nfound; i++) {
        fails[i] = p->found[i];
        if (fails[i].silent)
            fails[i].gen = p->t->gen;
    }
    in.nfailures = p->nfound + pqri_view_failures(p->v, fails + p->nfound, PQRI_MAX_FAILURES);
    in.spread = pqri_views_spread(vs);
    p->silent_left_out = false;
    for (size_t i = 0; i < in.nfailures; i++)
        p->silent_left_out = p->silent_left_out || (fails[i].silent && fails[i].gen == p->t->gen);
    /* The front door failed together with every member a moment ago: the cluster is changing
     * leaders, and our view follows Patroni faster than the proxy's health checks do, while a
     * proxy whose backend is gone can hold each connect for seconds. Leave it out for a while. */
    if (pqri_view_door_resting(p->v))
        p->leave_door_out = true;
    /* No running leader in Patroni's view (a switchover or an election in progress): nothing can
     * take writes, through the proxy or not; the members are tried until one is promoted. */
    if ((p->role == PQR_ROLE_RW && !pqri_topo_leader_running(p->t)) ||
        s->door_mode == PQRI_DOOR_STALE_ONLY)
        p->leave_door_out = true;
    in.t = p->t;
    in.role = p->role;
    in.max_lag = pqri_max_lag(s, pqri_view_conf(p->v));
    in.zones = pqri_zone(s, pqri_view_conf(p->v));
    in.zone_tag = pqri_zone_tag(s, pqri_view_conf(p->v));
    /* The leader can take reads only when the application did not ask for a standby by name. */
    in.ro_leader = pqri_ro_fallback(s, pqri_view_conf(p->v)) == PQRI_RO_LEADER && p->tsa &&
        (strcmp(p->tsa, "prefer-standby") == 0 || strcmp(p->tsa, "any") == 0);
    in.failures = fails;
    p->ncands = pqri_policy_order(&in, p->cands, PQRI_MAX_MEMBERS);
    /* A member that did not answer in this connect is not waited for twice in it. */
    size_t listed = p->ncands;
    p->ncands = without_silent_found(p);
    /* Every member left is known to be silent (a firewall between us and them, say): the front
     * door is the way, whatever else said to leave it out — never worse than without us. */
    if (p->door_host &&
        (pqri_policy_all_silent(&in, p->cands, p->ncands) || (listed > 0 && p->ncands == 0))) {
        p->ncands = 0;
        p->leave_door_out = false;
    }
    if (p->ncands == 0 && (p->leave_door_out || !door_only_ok))
        return -1;
    return build_params(p);
}

/* A read candidate's zone, and the leader taking reads, in the decision line. */
static void describe_member(const struct pqri_plan *p, size_t i, const char *zones, const char *tag,
                            char *buf, size_t len)
{
    const struct pqri_member *m = p->cands[i].member >= 0 ? &p->t->m[p->cands[i].member] : NULL;
    const char *z = m ? pqri_member_tag(m, tag) : NULL;

    if (!m)
        snprintf(buf, len, " no longer in the view");
    else if (p->role == PQR_ROLE_RO && p->cands[i].member == p->t->leader)
        snprintf(buf, len, " leader: no replica eligible, RO_FALLBACK=leader");
    else if (p->role == PQR_ROLE_RO && zones)
        snprintf(buf, len, " zone %s", z ? z : "(none)");
    else
        buf[0] = 0;
}

void pqri_plan_describe(const struct pqri_plan *p, const char *what)
{
    char list[512], door[300] = "", zone[200] = "", note[100];
    size_t used = 0;
    const struct pqr_settings *s = pqri_views_settings(pqri_view_views(p->v));
    const char *zones = pqri_zone(s, pqri_view_conf(p->v)),
               *tag = pqri_zone_tag(s, pqri_view_conf(p->v));

    snprintf(list, sizeof list, "%s", p->ncands ? "" : "(none)");
    for (size_t i = 0; i < p->ncands && used < sizeof list; i++) {
        describe_member(p, i, zones, tag, note, sizeof note);
        used +=
            (size_t)snprintf(list + used, sizeof list - used, "%s%s:%d(%s%s)", i ? "," : "",
                             p->cands[i].addr, p->cands[i].port,
                             p->cands[i].member >= 0 ? p->t->m[p->cands[i].member].name : "", note);
    }
    if (p->role == PQR_ROLE_RO && zones)
        snprintf(zone, sizeof zone, ", zone %s (tag %s)", zones, tag);
    static const char *const modes[] = {
        "adaptive: not tried when members answer and refuse the role", "last", "stale-only"};
    int mode = pqri_views_settings(pqri_view_views(p->v))->door_mode;
    if (p->leave_door_out)
        snprintf(door, sizeof door,
                 " (front door %s:%s left out: no running leader, it just failed, "
                 "every member refused, or stale-only)",
                 p->door_host, p->door_port);
    else
        snprintf(door, sizeof door, ",%s:%s (front door, %s)", p->door_host, p->door_port,
                 modes[mode >= 0 && mode <= 2 ? mode : 0]);
    pqri_decision("%s %s: cluster %s%s, front door %s:%s, candidates %s%s, "
                  "target_session_attrs=%s, leader %s, view %.1fs old from %s",
                  what, role_name(p->role), pqri_view_conf(p->v)->name, zone, p->door_host,
                  p->door_port, list, door, p->tsa,
                  p->t->leader >= 0 ? p->t->m[p->t->leader].name : "(none)", pqr_topology_age(p->t),
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
    p->full_round_ms = pqri_mono_ms(); /* the first round walks every member */
    p->pq = pq;
    p->mode = mode;
    p->eff = pq->conninfo(p1);
    p->pgpass = strdup(pq->pass(p1) ? pq->pass(p1) : "");
    pq->finish(p1);
    if (!p->pgpass) {
        pqri_decision("passed through: out of memory");
        goto pass;
    }
    const char *kw_unpassable = pqri_conninfo_unpassable(p->eff);
    if (kw_unpassable) {
        pqri_decision("passed through: %s='' cannot be passed on as libpq reads it in a string",
                      kw_unpassable);
        goto pass;
    }
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
        pqri_views_stat_other(vs, PQRI_STAT_PASSED_THROUGH);
        goto pass;
    }
    p->door_host = strdup(host);
    p->door_port = port ? strdup(port) : strdup("5432");
    const char *hostaddr = pqri_conninfo_value(p->eff, "hostaddr");
    p->door_hostaddr = hostaddr ? strdup(hostaddr) : NULL;
    if (!p->door_host || !p->door_port || (hostaddr && !p->door_hostaddr)) {
        pqri_decision("passed through: out of memory");
        goto pass;
    }
    tsa = app_tsa(pq, kw, val, expand);
    if (tsa && !(p->asked_tsa = strdup(tsa)))
        goto pass;
    if (tsa && role_of_tsa(tsa) == PQR_ROLE_AUTO) {
        /* A value libpq will reject: let libpq say so, exactly as without us. */
        pqri_decision("passed through: target_session_attrs=%.40s is not one libpq accepts", tsa);
        goto pass;
    }
    /* A forced role wins; else the application's target_session_attrs (known to libpq, checked
     * above); else the front door it named. */
    p->role = forced != PQR_ROLE_AUTO ? forced
        : tsa                         ? role_of_tsa(tsa)
        : ro_door                     ? PQR_ROLE_RO
                                      : PQR_ROLE_RW;
    if (tsa && forced == PQR_ROLE_AUTO)
        p->tsa = tsa, tsa = NULL;
    /* prefer-standby is libpq 14's: an older libpq refuses it, so reads there go down the list of
     * healthy replicas as it is, to whichever answers first. */
    else if (!(p->tsa =
                   strdup(p->role == PQR_ROLE_RW                               ? "read-write"
                              : pq->lib_version && pq->lib_version() >= 140000 ? "prefer-standby"
                                                                               : "any")))
        goto pass;
    /* A non-blocking connect (an event loop's) may wait a little for a fresh process's first
     * view — Patroni answers in about a millisecond — rather than go to the front door. */
    p->t =
        pqri_view_snapshot(p->v, mode == PQRI_BLOCKING ? pqri_rest_budget_ms(s) : s->start_wait_ms);
    if (!p->t) {
        pqri_view_stat(p->v, PQRI_STAT_FALLBACK_NO_VIEW);
        pqri_decision("passed through %s: cluster %s, no fresh Patroni view (front door %s:%s)",
                      role_name(p->role), pqri_view_conf(p->v)->name, host, p->door_port);
        goto pass;
    }
    if (build(vs, p, false) < 0) {
        pqri_view_stat(p->v, PQRI_STAT_FALLBACK_NO_MEMBER);
        pqri_decision("passed through %s: cluster %s, no eligible member in Patroni's view "
                      "(front door %s:%s)",
                      role_name(p->role), pqri_view_conf(p->v)->name, host, p->door_port);
        goto pass;
    }
    free(tsa);
    int lead = pqri_plan_leader_at(p);
    if (lead >= 0)
        p->first_leader = p->cands[lead];
    pqri_view_stat(p->v, p->role == PQR_ROLE_RW ? PQRI_STAT_ROUTED_RW : PQRI_STAT_ROUTED_RO);
    pqri_plan_describe(p, "routed");
    return p;
pass:
    free(tsa);
    pqri_plan_free(p);
    return NULL;
}

/* Members before index n that should have served this role and did not: the leader for RW
 * (a replica refusing a read-write session is working as intended), every replica for RO. */
void pqri_plan_note_failures(struct pqri_plan *p, size_t n)
{
    struct pqri_candidate bad[PQRI_MAX_MEMBERS];
    size_t k = 0;

    for (size_t i = 0; i < n && i < p->ncands; i++) {
        int m = p->cands[i].member;
        if (p->role == PQR_ROLE_RO || (m >= 0 && pqri_member_leads(&p->t->m[m])))
            bad[k++] = p->cands[i];
    }
    if (k)
        pqri_view_note_failures(p->v, p->t->gen, bad, k);
}

void pqri_plan_adopt(struct pqri_plan *p, struct pqr_topology *t)
{
    for (size_t i = 0; i < p->ncands; i++) {
        int m = -1;
        for (size_t k = 0; k < t->n && m < 0; k++)
            if (t->m[k].port == p->cands[i].port && strcmp(t->m[k].addr, p->cands[i].addr) == 0)
                m = (int)k;
        p->cands[i].member = m;
    }
    pqri_topo_unref(p->t);
    p->t = t;
}

int pqri_plan_leader_at(const struct pqri_plan *p)
{
    for (size_t i = 0; p->role != PQR_ROLE_RO && p->t->leader >= 0 && i < p->ncands; i++)
        if (p->cands[i].member == p->t->leader)
            return (int)i;
    return -1;
}

#define ROUND_MS 100          /* between rounds while a leader changes */
#define PROMOTING_ROUND_MS 20 /* ... while the view's leader is being promoted */
#define PROMOTING_MS 1000     /* ... for this long at most in one connect */

static bool same_member(const struct pqri_candidate *a, const struct pqri_candidate *b)
{
    return a->port == b->port && strcmp(a->addr, b->addr) == 0;
}

/*
 * The view's leader changed during this connect, and the new one answered and did not take the
 * connect: it holds Patroni's leader key and is being promoted, which takes a moment, and its
 * first write is what every writer is waiting for. A multi-host libpq loop asks every 20 ms,
 * and the rounds here wait 100 ms: the gap after a crash was that wait. So while it promotes it
 * is asked alone every PROMOTING_ROUND_MS (the others refused already, and each login costs both
 * sides a SCRAM exchange), with a full round every ROUND_MS as before, for PROMOTING_MS at most:
 * a view naming a replica as leader for longer is wrong, and the full rounds find the real one.
 */
int pqri_plan_next_round(struct pqri_plan *p, bool leader_refused, bool *probe)
{
    long long now = pqri_mono_ms(), full_due = p->full_round_ms + ROUND_MS, wait = ROUND_MS;
    int lead = pqri_plan_leader_at(p);
    const struct pqri_candidate *c = lead >= 0 ? &p->cands[lead] : NULL;

    /* Only a leader this connect saw the view change to: the one its first view named, when it
     * refuses, is on its way out (a switchover shuts it down), and asking it often only costs it
     * a backend per ask. */
    if (leader_refused && c && !same_member(c, &p->first_leader) &&
        (!p->promoting_since || !same_member(c, &p->promoting))) {
        p->promoting = *c;
        p->promoting_since = now;
    }
    *probe = false;
    if (p->promoting_since && c && same_member(c, &p->promoting) &&
        now - p->promoting_since < PROMOTING_MS) {
        if (now + PROMOTING_ROUND_MS < full_due) {
            *probe = true;
            return PROMOTING_ROUND_MS;
        }
        wait = full_due > now ? full_due - now : 0;
    }
    p->full_round_ms = now + wait;
    return (int)wait;
}

/*
 * One pass over the host list, driven here (PQconnectStartParams + PQconnectPoll) rather than by
 * PQconnectdbParams, to see what libpq only reports as translated text: which members answered.
 * libpq says which host it is on (PQhostaddr/PQport) and how far it got (PQstatus): a member
 * seen past CONNECTION_STARTED spoke PostgreSQL — it refused the role, or the database is
 * starting up or shutting down; one libpq left quickly in CONNECTION_STARTED refused the TCP
 * connection (or reset it); one that stays there past connect_timeout is silent.
 *
 * The front door can help only when the members are out of our reach but maybe not of the
 * proxy's: silent members (a firewall that drops), or none that spoke at all (one that rejects).
 * When a member spoke and refused the role, and none was silent, the database network is ours to
 * reach and the proxy would meet the same servers: in the adaptive mode the door is not tried.
 */
struct attempt {
    bool tried[PQRI_MAX_MEMBERS];
    bool answered[PQRI_MAX_MEMBERS];
    bool authed[PQRI_MAX_MEMBERS]; /* seen past authentication */
    int at;            /* the entry libpq was on when it stopped: a member, DOOR, or NONE */
    bool timed_out;    /* `at` did not get through within connect_timeout */
    bool door_skipped; /* given up at the door: members answered, none took the role */
};
#define DOOR PQRI_DOOR
#define NONE PQRI_NONE

int pqri_plan_entry(const struct pqri_plan *p, PGconn *conn)
{
    const char *ip = p->pq->hostaddr(conn), *port = p->pq->port(conn);
    int portnum = port ? atoi(port) : -1;

    if (!ip || !ip[0])
        return NONE;
    for (size_t i = 0; i < p->ncands; i++)
        if (p->cands[i].port == portnum && strcmp(p->cands[i].addr, ip) == 0)
            return (int)i;
    return DOOR;
}

bool pqri_plan_answered(ConnStatusType st)
{
    return st != CONNECTION_STARTED && st != CONNECTION_NEEDED && st != CONNECTION_BAD;
}

bool pqri_plan_authed(ConnStatusType st)
{
    return st == CONNECTION_AUTH_OK || st == CONNECTION_SETENV || st == CONNECTION_CHECK_WRITABLE ||
        st == CONNECTION_CONSUME || st == CONNECTION_CHECK_TARGET || st == CONNECTION_CHECK_STANDBY;
}

/* What libpq's message for the host it stopped at (the last host's part of it) says: the end was
 * the member's definite answer (a login refused, no such database or role, no room, a TLS or
 * authentication requirement not met), or a leader change (the server went away in the middle,
 * over TCP or TLS, or is shutting down or starting up: 57P03), or a refused role. libpq gives no
 * SQLSTATE for a failed connect, so the English text is read; another language reads as none. */
enum ending { UNKNOWN, DEFINITE, LEADER_CHANGE };

static bool says(const char *text, const char *const *phrases)
{
    for (size_t i = 0; phrases[i]; i++)
        if (strstr(text, phrases[i]))
            return true;
    return false;
}

static enum ending ending_of(const char *error)
{
    static const char *const definite[] = {"password authentication failed",
                                           "authentication method requirement",
                                           "require_auth",
                                           "does not exist",
                                           "no pg_hba.conf entry",
                                           "too many clients",
                                           "remaining connection slots",
                                           "certificate",
                                           "SSL is not enabled",
                                           "does not support SSL",
                                           "channel binding",
                                           "GSSAPI",
                                           NULL};
    static const char *const changing[] = {"server closed the connection unexpectedly",
                                           "the database system is",
                                           "SSL SYSCALL error",
                                           "unexpected eof",
                                           "SSL connection has been closed unexpectedly",
                                           "could not receive data from server",
                                           "terminating connection",
                                           "session is read-only",
                                           "session is not read-only",
                                           "server is in hot standby mode",
                                           "server is not in hot standby mode",
                                           NULL};
    const char *last = error, *at;

    if (!error)
        return UNKNOWN;
    while ((at = strstr(last + 1, "connection to server")))
        last = at;
    return says(last, definite) ? DEFINITE : says(last, changing) ? LEADER_CHANGE : UNKNOWN;
}

/*
 * An attempt ended at member `at`, which answered, before its login was seen through: end the
 * connect (with libpq's message), or rounds as in a leader change? A password needed and not given
 * ends it (the application may ask for one; language-independent). So does a definite answer of
 * the member's. A leader change or a refused role: rounds. A message not understood (another
 * language): rounds, except that before the end of the list — where libpq stops only when the
 * member ended the connect, not for a refused role — a sent password gets one more round, never
 * more (a refused password, or the old leader's shutdown in the middle: libpq does not say which).
 */
bool pqri_plan_login_ends(struct pqri_login *l, bool before_end, bool needs_password,
                          bool used_password, const char *error)
{
    enum ending e = ending_of(error);

    if (needs_password || e == DEFINITE)
        return true;
    if (e == UNKNOWN && used_password && before_end) {
        if (l->retried)
            return true;
        l->retried = true;
    }
    return false;
}

static bool any_answered(const struct pqri_plan *p, const struct attempt *a)
{
    for (size_t i = 0; i < p->ncands; i++)
        if (a->answered[i])
            return true;
    return false;
}

/* host_ms: libpq's connect_timeout per host (0: none); members_end: when the members' share of
 * the connect's budget runs out (a member is not waited for past it; the door has its own). */
static PGconn *attempt(const struct pqri_plan *p, int host_ms, long long members_end, bool adaptive,
                       struct attempt *a)
{
    const struct pqri_libpq *pq = p->pq;
    PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
    long long since = pqri_mono_ms();
    int cur = NONE;
    PGconn *conn = pq->connect_start_params(pq, p->params.kw, p->params.val, 0);

    memset(a, 0, sizeof *a);
    a->at = NONE;
    if (!conn || pq->status(conn) == CONNECTION_BAD)
        return conn;
    for (;;) {
        int e = pqri_plan_entry(p, conn);
        if (e != cur)
            cur = e, since = pqri_mono_ms();
        if (e >= 0) {
            a->tried[e] = true;
            a->answered[e] = a->answered[e] || pqri_plan_answered(pq->status(conn));
            a->authed[e] = a->authed[e] || pqri_plan_authed(pq->status(conn));
        }
        if (e != NONE)
            a->at = e;
        if (ps == PGRES_POLLING_OK || ps == PGRES_POLLING_FAILED)
            return conn;
        /* The door leads to the servers that just refused: do not wait on it (a proxy whose
         * backend refuses holds a connect for seconds). */
        if (e == DOOR && adaptive && any_answered(p, a) && !p->silent_left_out) {
            a->door_skipped = true;
            return conn;
        }
        struct pollfd pfd = {pq->socket(conn), ps == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0};
        long long until = since + host_ms;
        if (e != DOOR && members_end < until)
            until = members_end;
        long long left = host_ms > 0 ? until - pqri_mono_ms() : -1;
        int rc = host_ms > 0 && left <= 0 ? 0 : poll(&pfd, 1, host_ms > 0 ? (int)left : -1);
        if (rc == 0 || (rc < 0 && errno != EINTR)) {
            a->timed_out = true; /* a poll() error too: this host is not getting through */
            return conn;
        }
        if (rc > 0)
            ps = pq->connect_poll(conn);
    }
}

/* The connect_timeout the routed parameters carry, in ms (0: none). */
int pqri_plan_host_ms(const struct pqri_plan *p)
{
    for (size_t i = 0; i < p->params.n; i++)
        if (strcmp(p->params.kw[i], "connect_timeout") == 0) {
            int s = atoi(p->params.val[i]);
            return s <= 0 ? 0 : (s < 2 ? 2 : s) * 1000; /* libpq's own minimum is 2 s */
        }
    return 0;
}

#define MAX_ROUNDS 64

/* Members with an address in p's view: the hosts libpq would be given, each worth its
 * connect_timeout. */
int pqri_plan_members(const struct pqri_plan *p)
{
    int n = 0;

    for (size_t i = 0; i < p->t->n; i++)
        n += p->t->m[i].addr[0] != 0;
    return n > 0 ? n : 1;
}

/* The view's leader answered and refused the connect, not the login: libpq went on past it, or
 * said why (a refused role; starting up, shutting down). A login it refused ends the connect
 * rather than rounds (pqri_plan_login_ends); an answer in another language: full rounds. */
bool pqri_plan_leader_refused(const struct pqri_plan *p, const bool *answered, const bool *authed,
                              int at, const char *error)
{
    int lead = pqri_plan_leader_at(p);

    return lead >= 0 && answered[lead] &&
        (at != lead || authed[lead] || ending_of(error) == LEADER_CHANGE);
}

/* The view's leader alone (pqri_plan_next_round's probe); unchanged when it is not listed. */
static int only_leader(struct pqri_plan *p)
{
    int lead = pqri_plan_leader_at(p);

    if (lead < 0)
        return 0;
    p->cands[0] = p->cands[lead];
    p->ncands = 1;
    p->leave_door_out = true;
    pqri_params_free(&p->params);
    return build_params(p);
}

/* The front door alone, as the application asked: where a connect goes when the members are out
 * of reach or out of time. */
static int door_only(struct pqri_plan *p)
{
    p->ncands = 0;
    p->leave_door_out = false;
    return build_params(p);
}

/*
 * The last call, made as libpq alone would make it so that the application gets libpq's own result
 * and message: the last list of members while their share of the budget lasts (driven here, so
 * that it stops at the budget's end), then the front door alone. Whatever state the retries left,
 * a routed connect thus never takes longer than one connect_timeout per member plus the door's own
 * connect.
 */
static PGconn *last_call(struct pqri_plan *p, int host_ms, long long members_end)
{
    const struct pqri_libpq *pq = p->pq;
    struct attempt a;

    if (p->ncands > 0 && (host_ms == 0 || pqri_mono_ms() < members_end)) {
        bool door = !p->leave_door_out;
        PGconn *conn;
        if (door) { /* the door comes after, on its own */
            p->leave_door_out = true;
            pqri_params_free(&p->params);
            if (build_params(p) < 0)
                return NULL;
        }
        conn = attempt(p, host_ms, members_end, false, &a);
        if (!conn || pq->status(conn) == CONNECTION_OK ||
            (pq->status(conn) == CONNECTION_BAD && (!door || p->door_silent)))
            return conn;
        pq->finish(conn);
    }
    if (door_only(p) < 0)
        return NULL;
    pqri_plan_describe(p, "out of members or of time:");
    return pq->connectdb_params(pq, p->params.kw, p->params.val, 0);
}

static PGconn *connect_routed(struct pqri_views *vs, struct pqri_plan *p)
{
    const struct pqri_libpq *pq = p->pq;
    const struct pqr_settings *s = pqri_views_settings(vs);
    bool adaptive = s->door_mode == PQRI_DOOR_ADAPTIVE, retried = false, panicked = false,
         probed = false;
    struct pqri_login login = {0};
    int host_ms = pqri_plan_host_ms(p);
    long long start = pqri_mono_ms();
    /* The hard bound, fixed now: one connect_timeout per member, as libpq would spend it on the
     * list; then only the front door. No retry below can outlast it. */
    long long members_end =
        host_ms > 0 ? start + (long long)pqri_plan_members(p) * host_ms : LLONG_MAX;
    /* How long a connect may wait for a willing leader: its connect_timeout, or 2 s. */
    long long wait_end = start + (host_ms > 2000 ? host_ms : 2000);
    uint64_t panic_gen = 0;
    struct pqr_topology *t;
    struct attempt a;
    PGconn *conn;

    /* Rounds asking the leader alone are bounded by their own window (pqri_plan_next_round). */
    for (int round = 0, probes = 0; round - probes < MAX_ROUNDS && pqri_mono_ms() < members_end;
         round++) {
        if (!(conn = attempt(p, host_ms, members_end, adaptive, &a)))
            return NULL;
        ConnStatusType st = pq->status(conn);
        if (st == CONNECTION_OK) {
            /* Everything before the landing place refused, timed out or had the wrong role. */
            pqri_plan_note_failures(p, a.at >= 0 ? (size_t)a.at : p->ncands);
            if (a.at == DOOR)
                pqri_view_door_answered(p->v);
            PQRI_DEBUG("landed on %s:%s", pq->hostaddr(conn), pq->port(conn));
            return conn;
        }
        /* Members libpq could not reach (refused, reset, silent) are paid for once: left out for
         * every role while others remain, here and in the other processes of this host. */
        for (size_t i = 0; i < p->ncands; i++)
            if (a.tried[i] && !a.answered[i] &&
                ((int)i != a.at || a.timed_out || st == CONNECTION_BAD))
                pqri_plan_note_down(p, &p->cands[i], (int)i == a.at && a.timed_out, NULL);
        if (a.timed_out) {
            pq->finish(conn);
            if (a.at == DOOR) { /* the front door itself is silent */
                p->door_silent = true;
                pqri_view_door_failed(p->v);
                break;
            }
            if (build(vs, p, true) < 0 || pqri_mono_ms() >= members_end)
                break;
            pqri_plan_describe(p, "retrying without the member that did not answer:");
            continue;
        }
        /* Ended at a member that answered, its login not seen through: the login rule
         * (pqri_plan_login_ends), shared with non-blocking connects. */
        if (st == CONNECTION_BAD && a.at >= 0 && a.answered[a.at] && !a.authed[a.at] &&
            pqri_plan_login_ends(&login, (size_t)a.at + 1 < p->ncands + !p->leave_door_out,
                                 pq->needs_password && pq->needs_password(conn),
                                 !pq->used_password || pq->used_password(conn),
                                 pq->error_message(conn)))
            return conn;
        if (!a.door_skipped && (a.at == DOOR || !any_answered(p, &a))) {
            /* Failed everywhere, the front door included (or no member could be reached and the
             * door was left out): one refresh, one retry of the members; not the front door
             * (build() leaves it out while it rests): it failed a moment ago in this same call. */
            if (retried)
                return conn;
            retried = true;
            pqri_plan_note_failures(p, p->ncands);
            if (a.at == DOOR)
                pqri_view_door_failed(p->v);
            long long budget = pqri_rest_budget_ms(s), room = members_end - pqri_mono_ms();
            t = pqri_view_refresh(p->v, pqri_mono_ms(),
                                  (int)(room < budget ? (room > 0 ? room : 0) : budget));
            if (!t)
                return conn; /* no view: the front door was already tried */
            pqri_topo_unref(p->t);
            p->t = t;
            if (build(vs, p, true) < 0)
                return conn;
            pqri_view_stat(p->v, PQRI_STAT_RETRIES);
            pqri_plan_describe(p, "retrying");
            pq->finish(conn);
            continue;
        }
        /* Members answered and refused the role, and the front door was not tried: left out, or
         * skipped because every member answered — it leads to those same servers. A leader
         * change is in progress: ask Patroni, and try the members again, every round
         * (pqri_plan_next_round) within this connect's budget; the door stays out for it. */
        if (a.door_skipped)
            pqri_view_stat(p->v, PQRI_STAT_DOOR_SKIPPED);
        if (!panicked) {
            panicked = true;
            panic_gen = p->t->gen;
            pqri_view_panic(p->v, panic_gen);
        }
        pqri_plan_note_failures(p, p->ncands);
        p->leave_door_out = true;
        long long left = wait_end - pqri_mono_ms();
        if (left <= 0) {
            if (st == CONNECTION_BAD)
                return conn;
            pq->finish(conn);
            if (build(vs, p, true) < 0)
                break;
            /* the last list once more, as libpq alone would walk it, for libpq's own message */
            return last_call(p, host_ms, members_end);
        }
        bool probe,
            refused =
                pqri_plan_leader_refused(p, a.answered, a.authed, a.at, pq->error_message(conn));
        pq->finish(conn);
        int pause = pqri_plan_next_round(p, refused, &probe);
        t = pqri_view_await_leader(p->v, panic_gen, (int)(left < pause ? left : pause));
        bool new_leader = t && t->gen != p->t->gen;
        if (!t)
            t = pqri_view_snapshot(p->v, 0);
        if (t) {
            pqri_topo_unref(p->t);
            p->t = t;
            /* The next wait is for a view newer than this one: without it, once one view changed,
             * every later wait would return at once and the members be asked in a tight loop. */
            panic_gen = t->gen;
        }
        if (build(vs, p, true) < 0)
            break;
        probed = probe && !new_leader;
        probes += probed;
        if (probed && only_leader(p) < 0)
            break;
        if (round == 0 || new_leader) /* a line when it starts and per view change, not per try */
            pqri_plan_describe(p, "retrying while the leader changes:");
    }
    /* Out of rounds, of members or of time: the last call walks the whole list. */
    if (probed)
        (void)build(vs, p, true); /* none eligible: last_call() goes to the door alone */
    return last_call(p, host_ms, members_end);
}

/* The silent members this connect found are remembered from its end, not from each finding: a
 * connect that walked several would otherwise leave the first ones forgotten already, and the
 * next connect would pay for them again. (Never the member it connected to.) */
size_t pqri_plan_remember_silent(struct pqri_plan *p, PGconn *conn, struct pqri_failure *later)
{
    const char *at = conn && p->pq->status(conn) == CONNECTION_OK ? p->pq->hostaddr(conn) : NULL;
    const char *at_port = at ? p->pq->port(conn) : NULL;
    size_t n = 0;

    for (size_t i = 0; i < p->nfound; i++) {
        struct pqri_candidate c = {.port = p->found[i].port};
        if (!p->found[i].silent ||
            (at && strcmp(at, p->found[i].addr) == 0 && at_port &&
             atoi(at_port) == p->found[i].port))
            continue;
        snprintf(c.addr, sizeof c.addr, "%s", p->found[i].addr);
        pqri_view_note_down(p->v, p->t->gen, &c, true, later ? &later[n++] : NULL);
    }
    return n;
}

PGconn *pqri_plan_exec(struct pqri_views *vs, struct pqri_plan *p)
{
    PGconn *conn = connect_routed(vs, p);

    pqri_plan_remember_silent(p, conn, NULL);
    return conn;
}

PGPing pqri_plan_ping(struct pqri_views *vs, const struct pqri_libpq *pq, const char *const *kw,
                      const char *const *val, int expand, bool *passed)
{
    struct pqri_plan *p = pqri_plan_new(vs, pq, kw, val, expand, PQRI_BLOCKING, PQR_ROLE_AUTO);
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
