/* Logging: one line per message on stderr, prefixed "libpqroute:", level from PQROUTE_LOG. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "pqr_private.h"

static int log_level = PQR_LOG_WARN;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

int pqr__log_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return PQR_LOG_WARN;
    return -1;
}

void pqr__log_set(int level)
{
    __atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

bool pqr__log_on(int level)
{
    return level <= __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void pqr__log(int level, const char *fmt, ...)
{
    char line[1024];
    int n;
    va_list ap;

    if (!pqr__log_on(level))
        return;
    n = snprintf(line, sizeof line, "libpqroute: %s: ", level_names[level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    /* One write per message so lines from several threads never interleave. */
    for (char *p = line; *p; p++)
        if (*p == '\n')
            *p = ' ';
    n = (int)strlen(line);
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return; /* nowhere left to report it */
}

void pqr__errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

long long pqr__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long pqr__mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
