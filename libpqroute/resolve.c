/*
 * Member host names to addresses, within a deadline.
 *
 * getaddrinfo() cannot be given a timeout, and a slow resolver would otherwise hold the refresher —
 * and, worse, make every view older than PQROUTE_STALE_MS by the time it is complete. So each name
 * is looked up in a small detached thread, and the refresher waits for the answers only until its
 * deadline (what is left of PQROUTE_REST_TIMEOUT_MS). A member whose name is not resolved in time
 * is left out of that view; the look-up goes on, and its answer, remembered here, serves the next
 * view. At most one look-up per name is in flight, so a resolver that hangs costs one thread per
 * name, not one per refresh.
 */
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "resolve.h"
#include "addr.h"
#include "log.h"

#define SLOTS 64
#define ANSWER_TTL_MS 60000 /* an answer older than this is asked again before it is used */

struct slot {
    char host[256];
    char addr[PQRI_ADDRLEN]; /* "" unresolvable (or not yet) */
    long long at_mono;       /* when the last answer came; 0 none yet */
    bool busy;               /* a look-up thread is running */
    bool warned;
};

/* Guards slots[]; taken before fork() by pqri_dns_atfork_prepare(). Never held across a look-up. */
static pthread_mutex_t dns_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dns_cond = PTHREAD_COND_INITIALIZER;
static bool cond_ready;
static struct slot slots[SLOTS];

static void cond_init(void)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&dns_cond, &ca);
    pthread_condattr_destroy(&ca);
    cond_ready = true;
}

/* Called by the views' fork handlers (refresher.c), not registered here: pthread_atfork() runs
 * prepare handlers in the reverse order of registration, and this lock is taken last, after the
 * views' locks, in the one order listed there. */
void pqri_dns_atfork_prepare(void)
{
    pthread_mutex_lock(&dns_lock);
}

void pqri_dns_atfork_parent(void)
{
    pthread_mutex_unlock(&dns_lock);
}

void pqri_dns_atfork_child(void)
{
    pthread_mutex_init(&dns_lock, NULL);
    cond_init();
    /* The look-up threads do not exist in the child. */
    for (size_t i = 0; i < SLOTS; i++)
        slots[i].busy = false;
}

static void *lookup_main(void *arg)
{
    struct slot *sl = arg;
    char host[256], addr[PQRI_ADDRLEN] = "";
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *ai;

    pthread_mutex_lock(&dns_lock);
    memcpy(host, sl->host, sizeof host);
    pthread_mutex_unlock(&dns_lock);
    if (getaddrinfo(host, NULL, &hints, &ai) == 0) {
        void *a = ai->ai_family == AF_INET
            ? (void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
            : (void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if (!inet_ntop(ai->ai_family, a, addr, sizeof addr))
            addr[0] = 0;
        freeaddrinfo(ai);
    }
    pthread_mutex_lock(&dns_lock);
    if (strcmp(sl->host, host) == 0) {
        memcpy(sl->addr, addr, sizeof addr);
        sl->at_mono = pqri_mono_ms();
    }
    sl->busy = false;
    pthread_cond_broadcast(&dns_cond);
    pthread_mutex_unlock(&dns_lock);
    return NULL;
}

/* The slot of host, claimed (oldest idle one) if it has none. Called with the lock held. */
static struct slot *slot_of(const char *host)
{
    struct slot *victim = NULL;

    for (size_t i = 0; i < SLOTS; i++) {
        if (strcmp(slots[i].host, host) == 0)
            return &slots[i];
        if (!slots[i].busy && (!victim || slots[i].at_mono < victim->at_mono))
            victim = &slots[i];
    }
    if (victim) {
        memset(victim, 0, sizeof *victim);
        snprintf(victim->host, sizeof victim->host, "%s", host);
    }
    return victim;
}

static void start_lookup(struct slot *sl)
{
    pthread_attr_t at;
    pthread_t th;
    sigset_t all, old;

    sl->busy = true;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* never the application's signal handlers */
    if (pthread_create(&th, &at, lookup_main, sl) != 0)
        sl->busy = false;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
}

int pqri_dns_resolve(const char *host, char *addr, size_t len, long long deadline_mono)
{
    struct slot *sl;
    struct timespec ts;
    int rc = -1;

    if (strlen(host) >= sizeof sl->host)
        return -1;
    pthread_mutex_lock(&dns_lock);
    if (!cond_ready)
        cond_init();
    if (!(sl = slot_of(host)))
        goto out;
    /* Asked again each view, as the system resolver would be; the answer in hand serves while
     * that look-up is slower than the deadline. */
    if (!sl->busy)
        start_lookup(sl);
    ts.tv_sec = deadline_mono / 1000;
    ts.tv_nsec = (deadline_mono % 1000) * 1000000L;
    while (sl->busy && pqri_mono_ms() < deadline_mono &&
           pthread_cond_timedwait(&dns_cond, &dns_lock, &ts) == 0)
        ;
    if (strcmp(sl->host, host) != 0)
        goto out; /* the slot was reused meanwhile */
    if (sl->at_mono && sl->addr[0] && pqri_mono_ms() - sl->at_mono < ANSWER_TTL_MS) {
        snprintf(addr, len, "%s", sl->addr);
        rc = 0;
        sl->warned = false;
    } else if (sl->busy && !sl->warned) {
        sl->warned = true;
        rc = -2; /* not in time: the caller says so, once per name */
    }
out:
    pthread_mutex_unlock(&dns_lock);
    return rc;
}

void pqri_resolve_members(struct pqr_topology *t, long long deadline_mono)
{
    for (size_t i = 0; i < t->n; i++) {
        struct pqri_member *m = &t->m[i];
        int rc;
        if (m->addr[0] || pqri_numeric_addr(m->host, m->addr))
            continue;
        if ((rc = pqri_dns_resolve(m->host, m->addr, sizeof m->addr, deadline_mono)) == -2)
            PQRI_WARN("member %s: host \"%.80s\" was not resolved in time; left out of this view",
                      m->name, m->host);
        else if (rc < 0)
            PQRI_DEBUG("member %s: cannot resolve host \"%.80s\"", m->name, m->host);
    }
}
