/* Addresses: numeric IPv4/IPv6, CIDR prefixes and the allow-list match, host:port, and the bounds. */
#include <arpa/inet.h>
#include <limits.h>
#include "tap.h"
#include "addr.h"

static void addr_ok(const char *s, int family, const char *normal)
{
    unsigned char b[16], want[16];
    char out[PQRI_ADDRLEN] = "";
    int fam = pqri_addr_parse(s, b);

    inet_pton(family, normal, want);
    ok(fam == family && memcmp(b, want, family == AF_INET ? 4 : 16) == 0, "address \"%s\"", s);
    ok(pqri_numeric_addr(s, out) && strcmp(out, normal) == 0, "\"%s\" -> \"%s\" (%s)", s, normal,
       out);
}

static void addr_bad(const char *s)
{
    unsigned char b[16];
    char out[PQRI_ADDRLEN] = "";

    ok(pqri_addr_parse(s, b) == 0 && !pqri_numeric_addr(s, out) && !pqri_numeric_addr(s, NULL),
       "not a numeric address: \"%s\"", s);
}

static void cidr_ok(const char *s, int family, int bits)
{
    struct pqri_cidr c;
    int rc = pqri_cidr_parse(s, strlen(s), &c);
    ok(rc == 0 && c.family == family && c.bits == bits, "prefix \"%s\": family %d, /%d", s, family,
       bits);
}

static void cidr_bad(const char *s)
{
    struct pqri_cidr c;
    ok(pqri_cidr_parse(s, strlen(s), &c) < 0, "not a prefix: \"%s\"", s);
}

static void hostport_ok(const char *v, const char *host, int port)
{
    const char *h = NULL;
    size_t hl = 0;
    int p = -1;
    int rc = pqri_parse_hostport(v, &h, &hl, &p);
    ok(rc == 0 && hl == strlen(host) && strncmp(h, host, hl) == 0 && p == port &&
           h >= v && h + hl <= v + strlen(v),
       "host:port \"%s\" -> \"%s\" %d (got \"%.*s\" %d)", v, host, port, rc ? 0 : (int)hl,
       rc ? "" : h, p);
}

static void hostport_bad(const char *v)
{
    const char *h = NULL;
    size_t hl = 0;
    int p = -1;
    ok(pqri_parse_hostport(v, &h, &hl, &p) < 0 && p == -1, "not host:port: \"%s\"", v);
}

/* Whether addr is allowed by the one prefix text. */
static bool allows(const char *prefix, const char *addr)
{
    struct pqri_cidr c;
    if (pqri_cidr_parse(prefix, strlen(prefix), &c) < 0)
        return false;
    return pqri_cidr_allows(&c, 1, addr);
}

int main(void)
{
    char buf[512];
    long long x;

    /* numbers: the one rule for ports, prefix lengths and numeric settings */
    ok(pqri_parse_int("5432", 1, 65535, &x) == 0 && x == 5432, "a number");
    ok(pqri_parse_int("1", 1, 65535, &x) == 0 && pqri_parse_int("65535", 1, 65535, &x) == 0 &&
           x == 65535,
       "both bounds are inside");
    x = 7;
    ok(pqri_parse_int("0", 1, 65535, &x) < 0 && pqri_parse_int("65536", 1, 65535, &x) < 0 && x == 7,
       "one past either bound is not, and leaves the result alone");
    ok(pqri_parse_int("", 0, 10, &x) < 0 && pqri_parse_int(" 5", 0, 10, &x) < 0 &&
           pqri_parse_int("5 ", 0, 10, &x) < 0 && pqri_parse_int("5x", 0, 10, &x) < 0 &&
           pqri_parse_int("0x5", 0, 10, &x) < 0,
       "nothing around the digits");
    ok(pqri_parse_int("99999999999999999999", 0, LLONG_MAX, &x) < 0, "overflow refused");

    /* numeric addresses, and their normal form */
    addr_ok("127.0.0.1", AF_INET, "127.0.0.1");
    addr_ok("0.0.0.0", AF_INET, "0.0.0.0");
    addr_ok("255.255.255.255", AF_INET, "255.255.255.255");
    addr_ok("::1", AF_INET6, "::1");
    addr_ok("0:0:0:0:0:0:0:1", AF_INET6, "::1");
    addr_ok("FD00:0:0::0001", AF_INET6, "fd00::1");
    addr_ok("::ffff:10.0.0.1", AF_INET6, "::ffff:10.0.0.1");
    addr_ok("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", AF_INET6,
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    addr_bad("");
    addr_bad("256.0.0.1");
    addr_bad("1.2.3");
    addr_bad("1.2.3.4.5");
    addr_bad(" 1.2.3.4");
    addr_bad("1.2.3.4 ");
    addr_bad("[::1]");
    addr_bad("1::2::3");
    addr_bad("12345::");
    addr_bad("fe80::1%eth0");
    addr_bad("db.example");
    addr_bad("10.0.0.0/8");

    /* prefixes */
    cidr_ok("10.0.0.0/8", AF_INET, 8);
    cidr_ok("10.1.2.3", AF_INET, 32);
    cidr_ok("0.0.0.0/0", AF_INET, 0);
    cidr_ok("10.1.2.3/32", AF_INET, 32);
    cidr_ok("fd00::/8", AF_INET6, 8);
    cidr_ok("::1", AF_INET6, 128);
    cidr_ok("::/0", AF_INET6, 0);
    cidr_ok("::1/128", AF_INET6, 128);
    cidr_bad("");
    cidr_bad("/8");
    cidr_bad("10.0.0.0/");
    cidr_bad("10.0.0.0/33");
    cidr_bad("::/129");
    cidr_bad("10.0.0.0/-1");
    cidr_bad("10.0.0.0/ 8");
    cidr_bad("10.0.0.0/8x");
    cidr_bad("10.0.0.0/8/8");
    cidr_bad("10.0.0.0 /8");
    cidr_bad("not-an-address/8");
    {
        struct pqri_cidr c;
        ok(pqri_cidr_parse("10.0.0.0/8,junk", 10, &c) == 0 && c.bits == 8,
           "only the len bytes given are read");
    }
    /* the longest prefix text read is 63 bytes */
    snprintf(buf, sizeof buf, "::/%0*d", 60, 8);
    cidr_ok(buf, AF_INET6, 8);
    snprintf(buf, sizeof buf, "::/%0*d", 61, 8);
    cidr_bad(buf);

    /* the allow-list match */
    ok(pqri_cidr_allows(NULL, 0, "10.0.0.1") && pqri_cidr_allows(NULL, 0, "db.example"),
       "no allow-list: every address (and name) allowed");
    ok(allows("10.0.0.0/8", "10.255.255.255") && !allows("10.0.0.0/8", "11.0.0.0"),
       "/8: last address inside, first outside");
    ok(allows("10.0.0.0/9", "10.127.0.1") && !allows("10.0.0.0/9", "10.128.0.1"),
       "/9: the partial byte's high bit counts");
    ok(allows("192.168.1.128/25", "192.168.1.255") && !allows("192.168.1.128/25", "192.168.1.127"),
       "/25");
    ok(allows("10.1.2.3", "10.1.2.3") && !allows("10.1.2.3", "10.1.2.4"), "a bare address is /32");
    ok(allows("0.0.0.0/0", "1.2.3.4") && !allows("0.0.0.0/0", "::1"),
       "0.0.0.0/0: every IPv4 address, no IPv6 one");
    ok(allows("::/0", "fd00::1") && !allows("::/0", "1.2.3.4"), "::/0: every IPv6 address, no IPv4");
    ok(!allows("10.0.0.0/8", "::ffff:10.0.0.1") && !allows("::ffff:10.0.0.0/104", "10.0.0.1"),
       "an IPv4-mapped IPv6 address is IPv6");
    ok(allows("fd00::/8", "fdff::1") && !allows("fd00::/8", "fe00::1"), "IPv6 /8");
    ok(allows("2001:db8::/33", "2001:db8:7fff::1") && !allows("2001:db8::/33", "2001:db8:8000::1"),
       "IPv6 partial byte (/33)");
    ok(allows("::1", "0:0:0:0:0:0:0:1") && !allows("::1", "::2"), "a bare IPv6 address is /128");
    ok(!allows("10.0.0.0/8", "db.example") && !allows("10.0.0.0/8", ""),
       "a name or nothing is never inside a list");
    {
        struct pqri_cidr two[2];
        pqri_cidr_parse("10.0.0.0/8", 10, &two[0]);
        pqri_cidr_parse("fd00::/8", 8, &two[1]);
        ok(pqri_cidr_allows(two, 2, "10.9.9.9") && pqri_cidr_allows(two, 2, "fd00::9") &&
               !pqri_cidr_allows(two, 2, "192.168.0.1") && !pqri_cidr_allows(two, 1, "fd00::9"),
           "any prefix of the list, and only the first n");
    }

    /* host:port */
    hostport_ok("db:5432", "db", 5432);
    hostport_ok("db", "db", 5432);
    hostport_ok("db.example:6432", "db.example", 6432);
    hostport_ok("10.0.0.1:1", "10.0.0.1", 1);
    hostport_ok("db:65535", "db", 65535);
    hostport_ok("[::1]:6432", "::1", 6432);
    hostport_ok("[fd00::1]", "fd00::1", 5432);
    hostport_ok("[db]:5433", "db", 5433);
    hostport_bad("");
    hostport_bad(":5432");
    hostport_bad("db:");
    hostport_bad("db:0");
    hostport_bad("db:65536");
    hostport_bad("db:port");
    hostport_bad("db: 5432");
    hostport_bad("db:5432 ");
    hostport_bad("::1");
    hostport_bad("::1:5432");
    hostport_bad("a:b:5432");
    hostport_bad("[::1");
    hostport_bad("[::1]x");
    hostport_bad("[::1]:");
    hostport_bad("[::1]:0");
    hostport_bad("[]:5432");
    hostport_bad("[]");
    {
        static const char bad_chars[] = " \t\n,'\"=\\/";
        char v[16];
        int refused = 0;
        for (const char *c = bad_chars; *c; c++) {
            const char *h;
            size_t hl;
            int p;
            snprintf(v, sizeof v, "d%cb:5432", *c);
            refused += pqri_parse_hostport(v, &h, &hl, &p) < 0;
        }
        is_int(refused, (int)strlen(bad_chars),
               "white space, commas, quotes, =, \\ and / refused in a host (it becomes a libpq host)");
    }
    memset(buf, 'h', 255);
    snprintf(buf + 255, sizeof buf - 255, ":5432");
    {
        const char *h;
        size_t hl;
        int p;
        ok(pqri_parse_hostport(buf, &h, &hl, &p) == 0 && hl == 255, "a host of 255 bytes");
        memset(buf, 'h', 256);
        snprintf(buf + 256, sizeof buf - 256, ":5432");
        ok(pqri_parse_hostport(buf, &h, &hl, &p) < 0, "a host of 256 bytes refused");
        buf[0] = '[';
        memset(buf + 1, 'h', 255);
        snprintf(buf + 256, sizeof buf - 256, "]:5432");
        ok(pqri_parse_hostport(buf, &h, &hl, &p) == 0 && hl == 255 && h == buf + 1,
           "255 bytes in brackets");
        memset(buf + 1, 'h', 256);
        snprintf(buf + 257, sizeof buf - 257, "]:5432");
        ok(pqri_parse_hostport(buf, &h, &hl, &p) < 0, "256 bytes in brackets refused");
    }
    return done_testing();
}
