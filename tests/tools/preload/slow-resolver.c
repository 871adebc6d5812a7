/*
 * slow-resolver.so: fault injection for the name look-up budget. Preloaded, it makes getaddrinfo()
 * take SLOW_RESOLVER_MS (default 2000) for names ending in ".slow.test", which then resolve to
 * 127.0.0.<N> for a name "nodeN.slow.test". Every other name goes to the real getaddrinfo().
 */
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

__attribute__((visibility("default"))) int getaddrinfo(const char *node, const char *service,
                                                       const struct addrinfo *hints,
                                                       struct addrinfo **res)
{
    static int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    size_t n = node ? strlen(node) : 0;

    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
    if (n > 10 && strcmp(node + n - 10, ".slow.test") == 0) {
        const char *ms = getenv("SLOW_RESOLVER_MS");
        long d = ms ? atol(ms) : 2000;
        struct timespec ts = {d / 1000, (d % 1000) * 1000000L};
        char ip[32];
        nanosleep(&ts, NULL);
        snprintf(ip, sizeof ip, "127.0.0.%d", atoi(node + 4));
        struct addrinfo h = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM};
        return real(ip, service, &h, res);
    }
    return real(node, service, hints, res);
}
