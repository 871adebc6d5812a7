/* Secrets read from files (a DCS password or token). */
#ifndef PQRI_SECRET_H
#define PQRI_SECRET_H

#include <stddef.h>

/* A secret read from a file we may trust (ours or root's, not writable by others): its first
 * line, or NULL with a message. Free with pqri_free_secret(). */
char *pqri_read_secret(const char *path, char *err, size_t errlen);

#endif
