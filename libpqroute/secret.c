/* Secrets read from files: a DCS password or token, refused unless the file is one we may trust. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secret.h"
#include "log.h"

char *pqri_read_secret(const char *path, char *err, size_t errlen)
{
    char buf[1024];
    struct stat st;
    ssize_t n;
    /* O_NONBLOCK: a FIFO (or a device) put there would block open() for ever, in the refresher
     * or the agent; only a regular file is read. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0) {
        pqri_errf(err, errlen, "cannot open \"%.200s\": %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        pqri_errf(err, errlen, "\"%.200s\" is not a regular file", path);
        return NULL;
    }
    /* Like libpq's .pgpass: a secret others can read or change is refused. */
    if (!pqri_trusted_file(&st) || (st.st_mode & (S_IRWXG | S_IRWXO))) {
        close(fd);
        pqri_errf(err, errlen,
                  "\"%.200s\" must be a file of yours (or root's) with no access for "
                  "group or others (chmod 0600)",
                  path);
        return NULL;
    }
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        pqri_errf(err, errlen, "cannot read \"%.200s\"", path);
        return NULL;
    }
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
    char *s = strdup(buf);
    explicit_bzero(buf, sizeof buf);
    if (!s)
        pqri_errf(err, errlen, "out of memory");
    return s;
}
