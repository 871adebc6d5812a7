/*
 * freescan.so: an LD_PRELOAD test helper (issue 20, row 15). Every free() of a block that still
 * holds the string in FREESCAN_SECRET is counted; the count and the first caller's address are
 * printed at exit ("freescan: N freed blocks held the secret"). A secret must be cleared before
 * the memory that held it goes back to the allocator, where the next malloc() hands it to anyone.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void __libc_free(void *);
static const char *secret;
static size_t slen;
static int found;
static void *first_caller;

__attribute__((constructor)) static void init(void)
{
    secret = getenv("FREESCAN_SECRET");
    slen = secret ? strlen(secret) : 0;
}

void free(void *p)
{
    if (p && slen) {
        size_t n = malloc_usable_size(p);
        if (n >= slen && memmem(p, n, secret, slen) && !found++)
            first_caller = __builtin_return_address(0);
    }
    __libc_free(p);
}

__attribute__((destructor)) static void report(void)
{
    char line[512];
    Dl_info info;
    int n;

    if (!slen)
        return;
    if (found && first_caller && dladdr(first_caller, &info) && info.dli_fname)
        n = snprintf(line, sizeof line, "freescan: %d freed blocks held the secret (first freed from %s %s)\n",
                     found, info.dli_fname, info.dli_sname ? info.dli_sname : "?");
    else
        n = snprintf(line, sizeof line, "freescan: %d freed blocks held the secret\n", found);
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}
