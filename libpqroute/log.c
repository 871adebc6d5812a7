/* Logging: one line per message on stderr, prefixed "libpqroute:", level from PQROUTE_LOG. */
#include <stdarg.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_level = PQRI_LOG_WARN;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

int pqri_log_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return PQRI_LOG_WARN;
    return -1;
}

void pqri_log_set(int level)
{
    __atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

bool pqri_log_on(int level)
{
    return level <= __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void pqri_log(int level, const char *fmt, ...)
{
    char line[1024];
    int n;
    va_list ap;
    char msg[768];

    if (!pqri_log_on(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* libpq's messages end in newlines: keep them on one line */
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    /* Messages quote what REST answers, libpq and the environment said: one line, no terminal
     * control sequences. One write per message so lines from several threads never interleave. */
    n = snprintf(line, sizeof line, "libpqroute: %s: ", level_names[level]);
    pqri_escape(line + n, sizeof line - (size_t)n - 1, msg);
    n = (int)strlen(line);
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return; /* nowhere left to report it */
}

void pqri_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Per thread, like errno: the public calls that fail return NULL or -1, and a code beside the
 * message must not be another thread's. */
static __thread int error_code;

void pqri_error_set(int code)
{
    error_code = code;
}

int pqri_error_get(void)
{
    return error_code;
}

void pqri_errc(int code, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    error_code = code;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

long long pqri_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long pqri_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t pqri_escape(char *dst, size_t len, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    if (len == 0)
        return 0;
    for (; src && *src && n + 1 < len; src++) {
        unsigned char c = (unsigned char)*src;
        if (c < 0x20 || c == 0x7f) {
            if (n + 5 > len)
                break;
            dst[n++] = '\\', dst[n++] = 'x', dst[n++] = hex[c >> 4], dst[n++] = hex[c & 15];
        } else {
            dst[n++] = (char)c;
        }
    }
    dst[n] = 0;
    return n;
}

char *pqri_escape_dup(const char *s)
{
    size_t need = 1;
    char *d;

    for (const char *p = s; *p; p++)
        need += (unsigned char)*p < 0x20 || *p == 0x7f ? 4 : 1;
    if ((d = malloc(need)))
        pqri_escape(d, need, s);
    return d;
}

/* scheme://[user[:password]@]host... -> scheme://host...: credentials never reach a log line, a
 * decision, the shared cache or the CLI. */
void pqri_url_display(char *out, size_t len, const char *url)
{
    const char *p = strstr(url, "://"), *host, *at, *end;

    if (!p) {
        snprintf(out, len, "%s", url);
        return;
    }
    host = p + 3;
    end = host + strcspn(host, "/?#");
    at = memchr(host, '@', (size_t)(end - host));
    if (at) {
        /* the last '@' of the authority: a password may contain '@' itself */
        for (const char *q = at; q < end; q++)
            if (*q == '@')
                at = q;
        host = at + 1;
    }
    snprintf(out, len, "%.*s%s", (int)(p + 3 - url), url, host);
}

void pqri_free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void pqri_clearing_free(void *p)
{
    if (p)
        explicit_bzero(p, malloc_usable_size(p));
    free(p);
}

bool pqri_privileged(void)
{
    return getauxval(AT_SECURE) != 0;
}

unsigned long long pqri_fnv(unsigned long long h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 1099511628211ULL;
    return h;
}

bool pqri_trusted_file(const struct stat *st)
{
    return S_ISREG(st->st_mode) && (st->st_uid == 0 || st->st_uid == geteuid()) &&
        !(st->st_mode & (S_IWGRP | S_IWOTH));
}

void pqri_errcat(char *err, size_t errlen, const char *what)
{
    size_t used = err ? strlen(err) : 0;

    if (err && used < errlen)
        snprintf(err + used, errlen - used, "%s%s", used ? "; " : "", what);
}

long long pqri_jitter_ms(long long ms, int pct)
{
    static __thread unsigned seed;
    long long span = ms * pct / 100;

    if (!seed)
        seed = (unsigned)pqri_mono_ms() ^ (unsigned)getpid() << 16 ^ (unsigned)(uintptr_t)&seed;
    return span > 0 ? ms - span + (long long)(rand_r(&seed) % 1000) * (2 * span) / 1000 : ms;
}
