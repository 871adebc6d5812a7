/* The small things every part uses: logging, printable text, clocks, file ownership. */
#ifndef PQRI_LOG_H
#define PQRI_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum pqri_log_level { PQRI_LOG_ERROR = 0, PQRI_LOG_WARN, PQRI_LOG_INFO, PQRI_LOG_DEBUG };
int pqri_log_parse(const char *s);
void pqri_log_set(int level);
bool pqri_log_on(int level);
/* One line on stderr, "libpqroute: <level>: ...", control characters escaped. */
void pqri_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define PQRI_ERROR(...) pqri_log(PQRI_LOG_ERROR, __VA_ARGS__)
#define PQRI_WARN(...) pqri_log(PQRI_LOG_WARN, __VA_ARGS__)
#define PQRI_INFO(...) pqri_log(PQRI_LOG_INFO, __VA_ARGS__)
#define PQRI_DEBUG(...) pqri_log(PQRI_LOG_DEBUG, __VA_ARGS__)
void pqri_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, and the calling thread's error code (pqr_last_error()): where the cause is known. */
void pqri_errc(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The calling thread's error code: set (a public call starts with PQR_OK), and read. */
void pqri_error_set(int code);
int pqri_error_get(void);
/* Appends "; what" (or what, to an empty message). */
void pqri_errcat(char *err, size_t errlen, const char *what);

/* Control characters as \xNN, truncated to fit; returns the length. */
size_t pqri_escape(char *dst, size_t len, const char *src);
char *pqri_escape_dup(const char *s);
/* A URL without its userinfo, for display. */
void pqri_url_display(char *out, size_t len, const char *url);
/* explicit_bzero and free. */
void pqri_free_secret(char *s);
/* free() of a block cleared first (jansson's and libcurl's allocation hooks: they free secrets). */
void pqri_clearing_free(void *p);
/* The kernel's secure-execution flag (setuid, setgid, file capabilities): trust no environment. */
bool pqri_privileged(void);
/* FNV-1a over a string, continuing from h (PQRI_FNV_SEED to start). */
#define PQRI_FNV_SEED 1469598103934665603ULL
unsigned long long pqri_fnv(unsigned long long h, const void *p, size_t n);

/* A configuration or secret file decides where connections and passwords go, so only its owner may
 * change it: ours or root's, and not writable by group or others. (The cache directory's files:
 * pqri_cache_trusted.) */
struct stat;
bool pqri_trusted_file(const struct stat *st);

long long pqri_now_ms(void);  /* CLOCK_REALTIME: comparable across processes (cache file) */
long long pqri_mono_ms(void); /* CLOCK_MONOTONIC: ages and deadlines */
/* ms, give or take pct %, drawn per thread: processes and agents started together (a fleet's
 * deploy) drift apart instead of polling or reconnecting in step. */
long long pqri_jitter_ms(long long ms, int pct);

#endif
