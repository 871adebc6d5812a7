/* The libpq this library is linked with, as a call table. */
#ifndef PQRI_DIRECT_H
#define PQRI_DIRECT_H

#include "shim_api.h"

/* The API, the CLI, the tests. */
extern const struct pqri_libpq pqri_direct_libpq;

#endif
