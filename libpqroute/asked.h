/*
 * What the application asked for, for each connection we routed: PQconninfo() on a routed
 * connection reports the application's own options (the front door), not the member list it was
 * handed, so that a reconnect built from it (psql's \c, a pool cloning a connection, a driver's
 * conn.info.dsn) is routed afresh with the live view. PQhost, PQport and PQhostaddr go on
 * describing the server actually connected.
 */
#ifndef PQRI_ASKED_H
#define PQRI_ASKED_H

#include <libpq-fe.h>

#include "rewrite.h"

/* conn was made by the routed parameters `passed` for a call whose effective options were
 * `asked` (the probe's, with target_session_attrs the application's own: asked_tsa, or NULL). The
 * password is not kept. */
void pqri_asked_note(const PGconn *conn, const PQconninfoOption *asked, const char *asked_tsa,
                     const struct pqri_params *passed);
/* opts: PQconninfo(conn), from the libpq that made conn. When conn is one we routed and opts
 * still carry what we passed (a freed PGconn's address reused by another connection does not),
 * its values become the application's. */
void pqri_asked_report(const PGconn *conn, PQconninfoOption *opts);

#endif
