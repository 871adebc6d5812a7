/* The DCS client behind one interface, and what its implementations share. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source.h"
#include "log.h"

struct pqri_source {
    int kind;
    struct pqri_etcd *etcd;
    struct pqri_consul *consul;
};

struct pqri_source *pqri_source_open(const struct pqr_settings *s, const struct pqri_cluster_conf *c)
{
    struct pqri_source *src;

    if (!c->dcs.kind || !(src = calloc(1, sizeof *src)))
        return NULL;
    src->kind = c->dcs.kind;
    if (src->kind == PQRI_DCS_ETCD)
        src->etcd = pqri_etcd_open(s, c);
    else
        src->consul = pqri_consul_open(s, c);
    if (!src->etcd && !src->consul) {
        free(src);
        return NULL;
    }
    return src;
}

void pqri_source_close(struct pqri_source *src)
{
    if (!src)
        return;
    pqri_etcd_close(src->etcd);
    pqri_consul_close(src->consul);
    free(src);
}

void pqri_source_keep_connections(struct pqri_source *src)
{
    if (src->etcd)
        pqri_etcd_keep_connections(src->etcd);
    else
        pqri_consul_keep_connections(src->consul);
}

struct pqr_topology *pqri_source_read(struct pqri_source *src, const int *stop, char *err,
                                      size_t errlen)
{
    return src->etcd ? pqri_etcd_read(src->etcd, stop, err, errlen)
                     : pqri_consul_read(src->consul, stop, err, errlen);
}

int pqri_source_watch(struct pqri_source *src, const int *stop, const struct pqri_watch_hooks *h,
                      char *err, size_t errlen)
{
    return src->etcd ? pqri_etcd_watch(src->etcd, stop, h, err, errlen)
                     : pqri_consul_watch(src->consul, stop, h, err, errlen);
}

int pqri_lines_feed(struct pqri_lines *l, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (l->len + take > l->max)
            return -1;
        if (take) {
            char *nb = realloc(l->buf, l->len + take + 1);
            if (!nb)
                return -1;
            l->buf = nb;
            memcpy(l->buf + l->len, p, take);
            l->len += take;
            l->buf[l->len] = 0;
        }
        if (!nl)
            break;
        size_t len = l->len;
        while (len && l->buf[len - 1] == '\r')
            len--;
        int rc = l->line(l->arg, l->buf ? l->buf : "", len);
        l->len = 0;
        if (rc < 0)
            return -1;
        p = nl + 1;
        n -= take + 1;
    }
    return 0;
}

void pqri_lines_free(struct pqri_lines *l)
{
    free(l->buf);
    l->buf = NULL;
    l->len = 0;
}

/* jansson frees what it allocated without clearing it: the strings it copies, and the buffers
 * json_dumps() grows (each intermediate one held part of a request with the etcd password or a
 * token in it) go back to the allocator as they were. Every block jansson frees in this process is
 * cleared first (the application's own jansson use included: clearing freed memory changes
 * nothing it can observe). Called once, before the first secret reaches jansson. */
static void json_alloc_init(void)
{
    json_set_alloc_funcs(malloc, pqri_clearing_free);
}

void pqri_json_clear_freed(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, json_alloc_init);
}

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
        pqri_errf(err, errlen, "\"%.200s\" must be a file of yours (or root's) with no access for "
                  "group or others (chmod 0600)", path);
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
