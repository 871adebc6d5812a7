/*
 * Addresses: numeric IPv4 and IPv6 addresses, CIDR prefixes and the allow-list match, host:port.
 * Parsing and matching only: nothing here allocates, logs or knows about settings.
 */
#ifndef PQRI_ADDR_H
#define PQRI_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define PQRI_ADDRLEN 46 /* INET6_ADDRSTRLEN */

struct pqri_cidr {
    int family;
    unsigned char addr[16];
    int bits;
};

/* A decimal number from lo to hi with nothing around it: 0 with *out, else -1. One rule for ports,
 * prefix lengths and every numeric setting (settings.c). */
int pqri_parse_int(const char *v, long long lo, long long hi, long long *out);
/* "host:port", "[v6]:port" or "host" (port 5432), no spaces or commas in the host: it becomes a
 * libpq host. 0 with the host (in v, without brackets: hostlen bytes) and the port, else -1. */
int pqri_parse_hostport(const char *v, const char **host, size_t *hostlen, int *port);
/* A numeric IPv4 or IPv6 address: its family (AF_INET, AF_INET6) and bytes, else 0. */
int pqri_addr_parse(const char *s, unsigned char bytes[16]);
/* s is a numeric address: its normal form in out (may be NULL). */
bool pqri_numeric_addr(const char *s, char out[PQRI_ADDRLEN]);
/* The len bytes at v are "address" or "address/bits": 0 with *c, else -1. */
int pqri_cidr_parse(const char *v, size_t len, struct pqri_cidr *c);
/* addr is a numeric address inside one of the n prefixes; any address when n is 0. */
bool pqri_cidr_allows(const struct pqri_cidr *list, size_t n, const char *addr);

#endif
