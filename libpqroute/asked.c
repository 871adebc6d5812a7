/*
 * The routed connections' own options, in a small table keyed by the PGconn's address. PQfinish
 * is not wrapped, so an address may be reused by a later connection: an entry is used only while
 * the connection still carries every option we passed it (but the password), which a connection
 * made otherwise — another user, another database, or a plain connection to the front door —
 * does not. The table is bounded (the oldest entry makes room); a connection whose entry was
 * dropped reports what libpq reports, as before.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "asked.h"
#include "log.h"

#define ASKED_MAX 512
#define ASKED_OPTS 64

struct asked {
    const PGconn *conn;
    unsigned long long seq;                   /* 0: free; else the order of noting */
    char *pkw[ASKED_OPTS], *pval[ASKED_OPTS]; /* what we passed (no password): the fingerprint */
    size_t np;
    char *kw[ASKED_OPTS], *val[ASKED_OPTS]; /* what the application asked; val NULL: not set */
    size_t n;
    bool password; /* the application gave one (not .pgpass's) */
};

static struct asked table[ASKED_MAX];
static unsigned long long noted;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void clear(struct asked *a)
{
    for (size_t i = 0; i < a->np; i++)
        free(a->pkw[i]), free(a->pval[i]);
    for (size_t i = 0; i < a->n; i++)
        free(a->kw[i]), free(a->val[i]);
    memset(a, 0, sizeof *a);
}

/* A fork while another thread holds the lock: the child's first PQconninfo would wait for ever. */
static void prepare(void)
{
    pthread_mutex_lock(&lock);
}
static void parent(void)
{
    pthread_mutex_unlock(&lock);
}
static void child(void)
{
    pthread_mutex_init(&lock, NULL);
}
static void register_fork(void)
{
    pthread_atfork(prepare, parent, child);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Both NULL, or equal. */
static bool same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

void pqri_asked_note(const PGconn *conn, const PQconninfoOption *asked, const char *asked_tsa,
                     const struct pqri_params *passed)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    struct asked e = {.conn = conn};
    bool oom = false;

    if (!conn)
        return;
    pthread_once(&once, register_fork);
    for (size_t i = 0; i < passed->n && e.np < ASKED_OPTS; i++) {
        if (strcmp(passed->kw[i], "password") == 0)
            continue; /* no copy of a secret here */
        e.pkw[e.np] = strdup(passed->kw[i]);
        e.pval[e.np] = strdup(passed->val[i]);
        oom = oom || !e.pkw[e.np] || !e.pval[e.np];
        e.np++;
    }
    for (const PQconninfoOption *o = asked; o && o->keyword && e.n < ASKED_OPTS; o++) {
        const char *v = o->val;
        if (strcmp(o->keyword, "password") == 0) {
            e.password =
                v && v[0]; /* the connection's own is reported, if the application gave one */
            continue;
        }
        if (strcmp(o->keyword, "target_session_attrs") == 0)
            v = asked_tsa; /* the probe's value is ours: the application's own, or its default */
        e.kw[e.n] = strdup(o->keyword);
        e.val[e.n] = dup_or_null(v);
        oom = oom || !e.kw[e.n] || (v && !e.val[e.n]);
        e.n++;
    }
    /* This address's entry, else a free one, else the oldest. */
    pthread_mutex_lock(&lock);
    size_t slot = ASKED_MAX, oldest = 0;
    for (size_t i = 0; i < ASKED_MAX && slot == ASKED_MAX; i++)
        if (table[i].seq && table[i].conn == conn)
            slot = i;
    for (size_t i = 0; i < ASKED_MAX && slot == ASKED_MAX; i++)
        if (!table[i].seq)
            slot = i;
        else if (table[i].seq < table[oldest].seq)
            oldest = i;
    if (slot == ASKED_MAX)
        slot = oldest;
    struct asked old = {0};
    bool place = !oom;
    if (place || table[slot].conn == conn) { /* out of memory: at least no stale entry for conn */
        old = table[slot];
        memset(&table[slot], 0, sizeof table[slot]);
        if (place) {
            e.seq = ++noted;
            table[slot] = e;
        }
    }
    pthread_mutex_unlock(&lock);
    clear(&old); /* freed outside the lock */
    if (!place)
        clear(&e);
}

/* The value of kw in opts, or NULL. */
static const char *value_of(const PQconninfoOption *opts, const char *kw)
{
    for (const PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, kw) == 0)
            return o->val;
    return NULL;
}

void pqri_asked_report(const PGconn *conn, PQconninfoOption *opts)
{
    if (!conn || !opts)
        return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < ASKED_MAX; i++) {
        struct asked *a = &table[i];
        if (a->conn != conn || !a->seq)
            continue;
        bool carries = true;
        for (size_t k = 0; carries && k < a->np; k++)
            carries = same(value_of(opts, a->pkw[k]), a->pval[k]);
        if (!carries)
            break; /* another connection at this address now */
        for (PQconninfoOption *o = opts; o->keyword; o++) {
            /* A password libpq found in .pgpass for the front door, passed by us: libpq alone
             * reports none. */
            if (!a->password && strcmp(o->keyword, "password") == 0 && o->val) {
                explicit_bzero(o->val, strlen(o->val));
                free(o->val);
                o->val = NULL;
            }
            for (size_t k = 0; k < a->n; k++) {
                if (strcmp(o->keyword, a->kw[k]) != 0)
                    continue;
                /* The connection's values are freed by PQconninfoFree(): the same free(). */
                char *v = a->val[k] ? strdup(a->val[k]) : NULL;
                if (a->val[k] && !v)
                    break;
                free(o->val);
                o->val = v;
                if (!v && o->compiled && strcmp(o->keyword, "target_session_attrs") == 0)
                    o->val = strdup(o->compiled); /* libpq shows its default, "any" */
                break;
            }
        }
        break;
    }
    pthread_mutex_unlock(&lock);
}
