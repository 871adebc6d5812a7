/*
 * Addresses: numeric IPv4 and IPv6 addresses, CIDR prefixes and the allow-list match, host:port.
 * The settings (front doors, PQROUTE_ALLOW), the topology (members' addresses), the host cache (the
 * failure marker) and the resolver all read addresses by these rules, so one text means one address
 * everywhere. Nothing here allocates: the callers own the memory and the error messages.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int pqri_parse_int(const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    long long x;

    errno = 0;
    if (!*v || isspace((unsigned char)*v))
        return -1;
    x = strtoll(v, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

int pqri_parse_hostport(const char *v, const char **host, size_t *hostlen, int *port)
{
    const char *colon, *h = v;
    size_t hl;
    long long p = 5432;

    if (v[0] == '[') {
        const char *rb = strchr(v, ']');
        if (!rb)
            return -1;
        h = v + 1;
        hl = (size_t)(rb - h);
        colon = rb[1] == ':' ? rb + 1 : NULL;
        if (rb[1] && !colon)
            return -1;
    } else {
        colon = strrchr(v, ':');
        hl = colon ? (size_t)(colon - v) : strlen(v);
        if (colon && memchr(v, ':', hl))
            return -1; /* a bare IPv6 address needs brackets */
    }
    if (colon && pqri_parse_int(colon + 1, 1, 65535, &p) < 0)
        return -1;
    if (hl == 0 || hl > 255)
        return -1;
    for (size_t i = 0; i < hl; i++)
        if (isspace((unsigned char)h[i]) || h[i] == ',' || h[i] == '\'' || h[i] == '"' ||
            h[i] == '=' || h[i] == '\\' || h[i] == '/')
            return -1;
    *host = h;
    *hostlen = hl;
    *port = (int)p;
    return 0;
}

int pqri_addr_parse(const char *s, unsigned char bytes[16])
{
    if (inet_pton(AF_INET, s, bytes) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, s, bytes) == 1)
        return AF_INET6;
    return 0;
}

bool pqri_numeric_addr(const char *s, char out[PQRI_ADDRLEN])
{
    unsigned char b[16];
    char tmp[PQRI_ADDRLEN];
    int fam = pqri_addr_parse(s, b);

    if (!fam || !inet_ntop(fam, b, out ? out : tmp, PQRI_ADDRLEN))
        return false;
    return true;
}

int pqri_cidr_parse(const char *v, size_t len, struct pqri_cidr *c)
{
    char buf[64];
    const char *slash;
    long long bits;

    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, v, len);
    buf[len] = 0;
    slash = strchr(buf, '/');
    if (slash)
        buf[slash - buf] = 0;
    memset(c, 0, sizeof *c);
    if (!(c->family = pqri_addr_parse(buf, c->addr)))
        return -1;
    c->bits = c->family == AF_INET ? 32 : 128;
    if (slash) {
        if (pqri_parse_int(slash + 1, 0, c->bits, &bits) < 0)
            return -1;
        c->bits = (int)bits;
    }
    return 0;
}

bool pqri_cidr_allows(const struct pqri_cidr *list, size_t n, const char *addr)
{
    unsigned char a[16];
    int fam;

    if (n == 0)
        return true;
    if (!(fam = pqri_addr_parse(addr, a)))
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct pqri_cidr *c = &list[i];
        int full = c->bits / 8, rest = c->bits % 8;
        if (c->family != fam || memcmp(a, c->addr, (size_t)full) != 0)
            continue;
        if (rest && ((a[full] ^ c->addr[full]) & (0xff << (8 - rest)) & 0xff))
            continue;
        return true;
    }
    return false;
}
