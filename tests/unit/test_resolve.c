/* Member names to addresses within a deadline (resolve.c), with a resolver of the test's own: this
 * executable's getaddrinfo() comes before libc's, so names can answer at once, late, or never. */
#include <dlfcn.h>
#include <netdb.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "tap.h"
#include "resolve.h"
#include "topology.h"
#include "log.h"
#include "libpqroute.h"

static atomic_int slow_calls;

static int answer(const char *ip, struct addrinfo **res)
{
    struct addrinfo *ai = calloc(1, sizeof *ai + sizeof(struct sockaddr_in));
    struct sockaddr_in *sin = (struct sockaddr_in *)(ai + 1);
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &sin->sin_addr);
    ai->ai_family = AF_INET;
    ai->ai_socktype = SOCK_STREAM;
    ai->ai_addr = (struct sockaddr *)sin;
    ai->ai_addrlen = sizeof *sin;
    *res = ai;
    return 0;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    if (node && strcmp(node, "fast.test") == 0)
        return answer("127.0.0.8", res);
    if (node && strcmp(node, "slow.test") == 0) {
        atomic_fetch_add(&slow_calls, 1);
        usleep(1500 * 1000);
        return answer("127.0.0.7", res);
    }
    if (node && strstr(node, ".test"))
        return EAI_NONAME;
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
        (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))dlsym(RTLD_NEXT, "getaddrinfo");
    return real(node, service, hints, res);
}

void freeaddrinfo(struct addrinfo *ai)
{
    free(ai); /* every answer above is one block; the real resolver is not asked for .test */
}

int main(void)
{
    char addr[PQRI_ADDRLEN];
    long long t0;
    int rc;

    ok(pqri_dns_resolve("fast.test", addr, sizeof addr, pqri_mono_ms() + 2000) == 0 &&
       strcmp(addr, "127.0.0.8") == 0, "a name that answers: its address (%s)", addr);
    ok(pqri_dns_resolve("nowhere.test", addr, sizeof addr, pqri_mono_ms() + 2000) == -1,
       "a name that does not exist: -1");

    t0 = pqri_mono_ms();
    rc = pqri_dns_resolve("slow.test", addr, sizeof addr, t0 + 200);
    long long took = pqri_mono_ms() - t0;
    ok(rc == -2 && took < 1200, "a resolver slower than the deadline: -2 (worth a warning) at the deadline, not after it (%lld ms)", took);
    ok(pqri_dns_resolve("slow.test", addr, sizeof addr, pqri_mono_ms() + 50) == -1,
       "... asked again while the look-up goes on: -1, the warning not repeated");
    for (int i = 0; i < 5; i++)
        pqri_dns_resolve("slow.test", addr, sizeof addr, pqri_mono_ms());
    ok(atomic_load(&slow_calls) == 1, "one look-up in flight per name, however often it is asked (%d)", atomic_load(&slow_calls));

    /* A fork while that look-up runs: the child has no look-up thread; its own asking works. The
     * fork handlers are the views' (a process resolves only for its views): a router has them. */
    pqr_settings *set = pqr_settings_new();
    char err[256];
    pqr_settings_set(set, "PATRONI", "http://127.0.0.1:1", err, sizeof err);
    pqr_settings_set(set, "RW", "127.0.0.1:5432", err, sizeof err);
    pqr_router *r = pqr_router_open(set, err, sizeof err);
#ifdef __SANITIZE_THREAD__
    /* ThreadSanitizer cannot start threads after a multi-threaded fork(); ASan runs this part. */
    printf("ok %d - fork # SKIP under ThreadSanitizer\n", ++tap_n);
#else
    pid_t pid = fork();
    if (pid == 0) {
        char a[PQRI_ADDRLEN];
        _exit(pqri_dns_resolve("fast.test", a, sizeof a, pqri_mono_ms() + 2000) == 0 &&
              pqri_dns_resolve("slow.test", a, sizeof a, pqri_mono_ms() + 3000) == 0 ? 0 : 1);
    }
    int st = -1;
    waitpid(pid, &st, 0);
    ok(r && WIFEXITED(st) && WEXITSTATUS(st) == 0, "a fork child resolves on its own (its parent's look-up is not its own)");
#endif
    pqr_router_close(r);
    pqr_settings_free(set);

    usleep(1600 * 1000);
    ok(pqri_dns_resolve("slow.test", addr, sizeof addr, pqri_mono_ms() + 100) == 0 && strcmp(addr, "127.0.0.7") == 0,
       "the late answer is kept and serves the next view (%s)", addr);

    /* Members: numeric hosts as they are, names looked up, the unresolvable left without one. */
    char n[3][2] = {"a", "b", "c"}, h0[] = "10.1.2.3", h1[] = "fast.test", h2[] = "nowhere.test";
    struct pqri_member m[3] = {{.name = n[0], .host = h0}, {.name = n[1], .host = h1}, {.name = n[2], .host = h2}};
    struct pqr_topology t = {.m = m, .n = 3};
    pqri_resolve_members(&t, pqri_mono_ms() + 1000);
    ok(strcmp(m[0].addr, "10.1.2.3") == 0 && strcmp(m[1].addr, "127.0.0.8") == 0 && m[2].addr[0] == 0,
       "members: literal kept, name resolved, unresolvable left out (%s, %s, \"%s\")", m[0].addr, m[1].addr, m[2].addr);
    char longname[400];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    ok(pqri_dns_resolve(longname, addr, sizeof addr, pqri_mono_ms() + 100) == -1, "a name too long for a slot: -1, nothing asked");
    done_testing();
}
