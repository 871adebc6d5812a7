/* libFuzzer: a conninfo string or URI -> libpq's own parsing (the probe) -> routed parameters.
 * Invariants: no crash or leak; a routed connection's host list is the front door's name only and
 * its hostaddr list holds only numeric addresses from the view, so input can never steer a
 * connection (or its password) to a host of its choosing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "direct.h"
#include "plan.h"
#include "refresher.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pqri_views *r;

static void init(void)
{
    static const char view[] =
        "{\"members\":[{\"name\":\"n1\",\"role\":\"leader\",\"state\":\"running\",\"host\":\"10.0.0.1\",\"port\":5432,\"timeline\":2},"
        "{\"name\":\"n2\",\"role\":\"replica\",\"state\":\"streaming\",\"host\":\"10.0.0.2\",\"port\":5432,\"timeline\":2,\"lag\":0}]}";
    struct pqr_settings s;
    char err[256], dir[] = "/tmp/pqr-fuzz-XXXXXX";

    pqri_settings_init(&s);
    pqri_settings_set(&s, "PATRONI", "http://127.0.0.1:9", err, sizeof err);
    pqri_settings_set(&s, "RW", "fd.example:5432", err, sizeof err);
    pqri_settings_set(&s, "RO", "fd.example:5433", err, sizeof err);
    pqri_settings_set(&s, "REFRESH_MS", "3600000", err, sizeof err);
    pqri_settings_set(&s, "STALE_MS", "86400000", err, sizeof err);
    if (mkdtemp(dir))
        pqri_settings_set(&s, "CACHE_DIR", dir, err, sizeof err);
    pqri_settings_finish(&s, err, sizeof err);
    pqri_log_set(PQRI_LOG_ERROR);
    r = pqri_views_new(&s, err, sizeof err);
    pqri_settings_clear(&s);
    struct pqr_topology *t = pqri_topo_parse(view, sizeof view - 1, NULL, 0);
    pqri_topo_filter(t, pqri_views_settings(r), pqri_view_conf(pqri_views_at(r, 0)));
    t->fetched_ms = pqri_now_ms();
    t->mono_ms = pqri_mono_ms();
    pqri_view_publish(pqri_views_at(r, 0), t);
    pqri_topo_unref(t);
}

static void check(struct pqri_plan *p)
{
    for (size_t i = 0; p && i < p->params.n; i++) {
        const char *k = p->params.kw[i], *v = p->params.val[i];
        if (strcmp(k, "host") == 0) {
            for (const char *h = v; *h;) {
                size_t len = strcspn(h, ",");
                if (len != strlen(p->door_host) || strncmp(h, p->door_host, len) != 0)
                    __builtin_trap();
                h += len + (h[len] == ',');
            }
        } else if (strcmp(k, "hostaddr") == 0) {
            /* members' addresses, then the application's own hostaddr for the front door */
            size_t members = 0;
            for (const char *h = v; members < p->ncands; members++) {
                size_t len = strcspn(h, ",");
                if (len != strlen(p->cands[members].addr) || strncmp(h, p->cands[members].addr, len) != 0)
                    __builtin_trap();
                h += len + (h[len] == ',');
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pqri_conninfo parsed;
    char *ci;

    if (!r)
        init();
    if (size > 4096 || !(ci = strndup((const char *)data, size)))
        return 0;
    if (pqri_conninfo_parse(&parsed, ci) == 0) {
        struct pqri_plan *p = pqri_plan_new(r, &pqri_direct_libpq, parsed.kw, parsed.val, 0, PQRI_NONBLOCKING, PQR_ROLE_AUTO);
        check(p);
        pqri_plan_free(p);
        pqri_conninfo_release(&parsed);
    }
    const char *k1[] = {"dbname", "user", NULL}, *v1[] = {ci, "fuzz", NULL};
    struct pqri_plan *p = pqri_plan_new(r, &pqri_direct_libpq, k1, v1, 1, PQRI_NONBLOCKING, PQR_ROLE_AUTO);
    check(p);
    pqri_plan_free(p);
    free(ci);
    return 0;
}
