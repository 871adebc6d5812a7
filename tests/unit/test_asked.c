/* What a routed connection reports (asked.c): PQconninfo() as the application asked, only while
 * the connection still carries what was passed; no password kept; the application's own
 * target_session_attrs, or libpq's default. Connections go to 127.0.0.1 port 1 (refused at once). */
#include "tap.h"
#include "asked.h"
#include "rewrite.h"

static const char *val_of(const PQconninfoOption *o, const char *kw)
{
    for (; o && o->keyword; o++)
        if (strcmp(o->keyword, kw) == 0)
            return o->val;
    return NULL;
}

/* The options of a call as libpq reads them (a connection started and left unpolled). */
static PQconninfoOption *effective(const char *conninfo)
{
    PGconn *c = PQconnectStart(conninfo);
    PQconninfoOption *o = PQconninfo(c);
    PQfinish(c);
    return o;
}

int main(void)
{
    struct pqri_params passed = {0};
    PQconninfoOption *asked = effective("host=door.example port=5433 dbname=app user=u password=secret "
                                        "connect_timeout=7");

    pqri_params_add(&passed, "host", "door.example,door.example");
    pqri_params_add(&passed, "hostaddr", "127.0.0.1,");
    pqri_params_add(&passed, "port", "1,5433");
    pqri_params_add(&passed, "dbname", "app");
    pqri_params_add(&passed, "user", "u");
    pqri_params_add(&passed, "password", "secret");
    pqri_params_add(&passed, "target_session_attrs", "prefer-standby");
    PGconn *routed = PQconnectStartParams(passed.kw, passed.val, 0);
    ok(routed != NULL, "a connection made from routed parameters");

    PQconninfoOption *o = PQconninfo(routed);
    pqri_asked_report(routed, o);
    is_str(val_of(o, "host"), "door.example,door.example", "not noted: PQconninfo is libpq's own");
    PQconninfoFree(o);

    pqri_asked_note(routed, asked, NULL, &passed);
    o = PQconninfo(routed);
    pqri_asked_report(routed, o);
    is_str(val_of(o, "host"), "door.example", "noted: host is the front door the application asked for");
    is_str(val_of(o, "port"), "5433", "port as asked");
    ok(val_of(o, "hostaddr") == NULL, "no hostaddr: the application gave none");
    is_str(val_of(o, "connect_timeout"), "7", "the application's connect_timeout");
    is_str(val_of(o, "target_session_attrs"), "any", "no target_session_attrs asked: libpq's default, not ours");
    is_str(val_of(o, "password"), "secret", "the password is the connection's own (none kept in the table)");
    PQconninfoFree(o);

    pqri_asked_note(routed, asked, "read-only", &passed);
    o = PQconninfo(routed);
    pqri_asked_report(routed, o);
    is_str(val_of(o, "target_session_attrs"), "read-only", "noted again: the application's own target_session_attrs");
    PQconninfoFree(o);

    /* Another connection at another address, and one that carries other options than noted (as a
     * new connection at a freed one's address would): reported as libpq reports them. */
    PGconn *other = PQconnectStart("host=127.0.0.1 port=1 dbname=app user=u");
    o = PQconninfo(other);
    pqri_asked_report(other, o);
    is_str(val_of(o, "host"), "127.0.0.1", "another connection: untouched");
    PQconninfoFree(o);
    pqri_asked_note(other, asked, NULL, &passed); /* noted with options it does not carry */
    o = PQconninfo(other);
    pqri_asked_report(other, o);
    is_str(val_of(o, "host"), "127.0.0.1", "a connection that does not carry what was noted: untouched");
    PQconninfoFree(o);

    /* A password the application did not give (.pgpass's, passed by us): reported as libpq alone
     * reports it, none. */
    PQconninfoOption *nopw = effective("host=door.example port=5433 dbname=app user=u");
    pqri_asked_note(routed, nopw, NULL, &passed);
    o = PQconninfo(routed);
    pqri_asked_report(routed, o);
    ok(val_of(o, "password") == NULL, "a password from .pgpass (passed by us) is not reported");
    PQconninfoFree(o);
    PQconninfoFree(nopw);

    /* Bounded: many more notes than the table holds, and the newest is still reported. */
    for (int i = 0; i < 2000; i++)
        pqri_asked_note((PGconn *)(uintptr_t)(0x1000 + 16 * i), asked, NULL, &passed);
    pqri_asked_note(routed, asked, NULL, &passed);
    o = PQconninfo(routed);
    pqri_asked_report(routed, o);
    is_str(val_of(o, "host"), "door.example", "after 2000 other notes, the newest is reported");
    PQconninfoFree(o);

    PQfinish(routed);
    PQfinish(other);
    PQconninfoFree(asked);
    pqri_params_free(&passed);
    return done_testing();
}
