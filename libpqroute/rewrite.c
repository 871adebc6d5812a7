/*
 * The rewrite: the connection's effective options (as libpq itself computed them) plus the ordered
 * candidates -> keyword/value arrays for PQconnectdbParams(expand_dbname = 0). Arrays, never string
 * concatenation: no member name, host or password can inject a parameter.
 *
 * host stays the front door's name for every entry, so TLS verify-full and SNI check the name the
 * application asked for; hostaddr carries each member's pre-resolved address, so no DNS look-up
 * happens; the front door is the last entry, with the application's own hostaddr if it had one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite.h"
#include "log.h"

void pqri_params_free(struct pqri_params *p)
{
    /* Values include the password: cleared, not just freed (core files, freed memory). */
    for (size_t i = 0; i < p->nowned; i++)
        pqri_free_secret(p->owned[i]);
    free(p->owned);
    free(p->kw);
    free(p->val);
    memset(p, 0, sizeof *p);
}

static char *own(struct pqri_params *p, const char *s)
{
    char *d = strdup(s);
    if (!d)
        return NULL;
    p->owned[p->nowned++] = d;
    return d;
}

int pqri_params_add(struct pqri_params *p, const char *k, const char *v)
{
    if (p->n + 1 >= p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        const char **nk = realloc(p->kw, cap * sizeof *nk);
        if (nk)
            p->kw = nk;
        const char **nv = realloc(p->val, cap * sizeof *nv);
        if (nv)
            p->val = nv;
        char **no = realloc(p->owned, 2 * cap * sizeof *no);
        if (no)
            p->owned = no;
        if (!nk || !nv || !no)
            return -1;
        p->cap = cap;
    }
    const char *ck = own(p, k), *cv = ck ? own(p, v) : NULL;
    if (!cv)
        return -1;
    p->kw[p->n] = ck;
    p->val[p->n] = cv;
    p->n++;
    p->kw[p->n] = p->val[p->n] = NULL;
    return 0;
}

const char *pqri_conninfo_value(const PQconninfoOption *o, const char *kw)
{
    for (; o && o->keyword; o++)
        if (strcmp(o->keyword, kw) == 0)
            return o->val && o->val[0] ? o->val : NULL;
    return NULL;
}

/* Append "item" to a comma list in buf. */
static int join(char *buf, size_t len, size_t *used, const char *item)
{
    int n = snprintf(buf + *used, len - *used, "%s%s", *used ? "," : "", item);
    if (n < 0 || (size_t)n >= len - *used)
        return -1;
    *used += (size_t)n;
    return 0;
}

/* Replaced by the rewrite whatever the application gave. */
static bool replaced(const char *keyword)
{
    static const char *const kws[] = {"host",    "hostaddr", "port", "target_session_attrs",
                                      "service", NULL};
    for (size_t i = 0; kws[i]; i++)
        if (strcmp(keyword, kws[i]) == 0)
            return true;
    return false;
}

/* Options for which libpq reads '' exactly as unset (it tests for NULL or empty before using
 * them): there '' can be left out of the arrays — while no PG* variable would step in. */
static bool empty_means_unset(const char *keyword)
{
    static const char *const kws[] = {"user",
                                      "dbname",
                                      "password",
                                      "passfile",
                                      "options",
                                      "application_name",
                                      "fallback_application_name",
                                      "sslcert",
                                      "sslkey",
                                      "sslrootcert",
                                      "sslcrl",
                                      "sslcrldir",
                                      NULL};
    for (size_t i = 0; kws[i]; i++)
        if (strcmp(keyword, kws[i]) == 0)
            return true;
    return false;
}

/* Given as '' in a string, where keyword arrays would put something else: an empty value is skipped
 * in arrays, so the PG* variable or libpq's built-in default would take its place, and libpq does
 * not read '' as unset everywhere (sslsni='' is off, its default on; libpq 18 refuses
 * min_protocol_version=''). */
static bool empty_not_passable(const PQconninfoOption *o)
{
    const char *env = o->envvar ? getenv(o->envvar) : NULL;
    /* '' is also what arrays give where '' is the built-in default itself (libpq 12's tty) */
    return o->val && !o->val[0] && !replaced(o->keyword) &&
        ((env && env[0]) || (o->compiled ? o->compiled[0] != 0 : !empty_means_unset(o->keyword)));
}

int pqri_rewrite(const struct pqri_rewrite_in *in, struct pqri_params *out)
{
    char hosts[8192], addrs[4096], ports[1024], num[16];
    size_t hl = 0, al = 0, pl = 0;

    memset(out, 0, sizeof *out);
    /* Replaced below, or (service) already applied by libpq in the effective options. An empty
     * value is left out: the caller passed the call through where that changes what libpq reads
     * (pqri_conninfo_unpassable()). */
    for (const PQconninfoOption *o = in->effective; o && o->keyword; o++)
        if (o->val && o->val[0] && !replaced(o->keyword) &&
            pqri_params_add(out, o->keyword, o->val) < 0)
            goto fail;
    hosts[0] = addrs[0] = ports[0] = 0;
    for (size_t i = 0; i < in->ncands; i++) {
        snprintf(num, sizeof num, "%d", in->cands[i].port);
        if (join(hosts, sizeof hosts, &hl, in->door_host) < 0 ||
            join(addrs, sizeof addrs, &al, in->cands[i].addr) < 0 ||
            join(ports, sizeof ports, &pl, num) < 0)
            goto fail;
    }
    /* The front door, last: an empty hostaddr element makes libpq resolve host as before. */
    if (!in->no_door) {
        if (join(hosts, sizeof hosts, &hl, in->door_host) < 0 || (al + 2 > sizeof addrs) ||
            join(ports, sizeof ports, &pl, in->door_port) < 0)
            goto fail;
        if (in->ncands)
            addrs[al++] = ',', addrs[al] = 0;
        if (in->door_hostaddr &&
            snprintf(addrs + al, sizeof addrs - al, "%s", in->door_hostaddr) >=
                (int)(sizeof addrs - al))
            goto fail;
    }
    if (pqri_params_add(out, "host", hosts) < 0 ||
        ((in->ncands || in->door_hostaddr) && pqri_params_add(out, "hostaddr", addrs) < 0) ||
        pqri_params_add(out, "port", ports) < 0 ||
        pqri_params_add(out, "target_session_attrs", in->target_session_attrs) < 0)
        goto fail;
    /* libpq looks .pgpass up by host and the port actually used: a member's port would miss an
     * entry written for the front door, so pass the password libpq found for the front door. */
    if (!pqri_conninfo_value(in->effective, "password") && in->pgpass_password &&
        in->pgpass_password[0] && pqri_params_add(out, "password", in->pgpass_password) < 0)
        goto fail;
    /* Without a timeout, a member that drops packets holds the connect for minutes. */
    if (!pqri_conninfo_value(in->effective, "connect_timeout") && in->connect_timeout_s > 0) {
        snprintf(num, sizeof num, "%d", in->connect_timeout_s);
        if (pqri_params_add(out, "connect_timeout", num) < 0)
            goto fail;
    }
    return 0;
fail:
    pqri_params_free(out);
    return -1;
}

void pqri_conninfo_free(const struct pqri_libpq *pq, PQconninfoOption *o)
{
    for (PQconninfoOption *x = o; x && x->keyword; x++)
        if (x->val && strcmp(x->keyword, "password") == 0)
            explicit_bzero(x->val, strlen(x->val));
    if (pq)
        pq->conninfo_free(o);
    else
        PQconninfoFree(o);
}

int pqri_conninfo_parse(struct pqri_conninfo *ci, const char *conninfo)
{
    char *errmsg = NULL;
    size_t n = 0, k = 0;

    memset(ci, 0, sizeof *ci);
    ci->opts = PQconninfoParse(conninfo ? conninfo : "", &errmsg);
    PQfreemem(errmsg);
    if (!ci->opts)
        return -1;
    for (PQconninfoOption *o = ci->opts; o->keyword; o++)
        n++;
    ci->kw = calloc(n + 1, sizeof *ci->kw);
    ci->val = calloc(n + 1, sizeof *ci->val);
    if (!ci->kw || !ci->val) {
        pqri_conninfo_release(ci);
        return -1;
    }
    for (PQconninfoOption *o = ci->opts; o->keyword; o++)
        if (o->val) {
            ci->kw[k] = o->keyword;
            ci->val[k++] = o->val;
        }
    /* A string that parsed and is not blank has a key=value or is a URI: libpq expands it as a
     * dbname exactly as it reads it as a string. */
    if (conninfo && conninfo[strspn(conninfo, " \t\n\r\f\v")]) {
        ci->call_kw[0] = "dbname";
        ci->call_val[0] = conninfo;
        ci->call_expand = 1;
    }
    return 0;
}

const char *pqri_conninfo_unpassable(const PQconninfoOption *effective)
{
    for (const PQconninfoOption *o = effective; o && o->keyword; o++)
        if (empty_not_passable(o))
            return o->keyword;
    return NULL;
}

void pqri_conninfo_release(struct pqri_conninfo *ci)
{
    free(ci->kw);
    free(ci->val);
    if (ci->opts)
        pqri_conninfo_free(NULL, ci->opts);
    memset(ci, 0, sizeof *ci);
}
