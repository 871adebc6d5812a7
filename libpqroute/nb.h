/*
 * Non-blocking routed connects (PQconnectStart* + the caller's PQconnectPoll loop): the connect
 * policy of plan.c driven from the caller's polls, on the one socket the caller was given.
 */
#ifndef PQRI_NB_H
#define PQRI_NB_H

#include "plan.h"

/* Takes p: registers conn (PQconnectStart*'s result) so that the caller's PQconnectPoll() calls
 * run the connect policy on one socket; returns conn. */
PGconn *pqri_nb_start(struct pqri_views *vs, struct pqri_plan *p, PGconn *conn);
/* The caller's PQconnectPoll()/PQfinish() for conn: false if conn is not one of ours in progress. */
bool pqri_nb_poll(PGconn *conn, PostgresPollingStatusType *out);
/* The caller's PQsocket(): the number it was given for conn, while that is libpq's socket's file. */
bool pqri_nb_socket(const PGconn *conn, int libpq_fd, int *out);
void pqri_nb_forget(PGconn *conn);
/* Before a router closes: none of its views is referred to by what the waker has to write. */
void pqri_nb_drop_views(struct pqri_views *vs);

#endif
