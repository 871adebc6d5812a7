#!/usr/bin/env bash
# A stand-in for a glibc older than 2.34, as the shim sees it, for tests/sh/t-dlvsym.sh (the host's
# cc) and tests/cluster/t17-arm64.sh (the arm64 cross cc): a library, placed after the shim in
# LD_PRELOAD, whose own dlvsym (version GLIBC_2.34, the one the shim binds) finds nothing at
# GLIBC_2.34 and passes every other version to libc's dlvsym at BASE (the architecture's oldest:
# x86-64 GLIBC_2.2.5, aarch64 GLIBC_2.17). With OLD_GLIBC_NONE set it finds nothing at all.
# usage: oldglibc-lib.sh OUT.so CC BASE
set -u
out=$1 cc=$2 base=$3
src=$(mktemp -d) || exit 1
trap 'rm -rf "$src"' EXIT
cat >"$src/oldglibc.c" <<C
#include <stdlib.h>
#include <string.h>
void *libc_dlvsym(void *, const char *, const char *);
__asm__(".symver libc_dlvsym, dlvsym@$base");
void *dlvsym(void *h, const char *name, const char *version)
{
    if (getenv("OLD_GLIBC_NONE") || strcmp(version, "GLIBC_2.34") == 0)
        return NULL;
    return libc_dlvsym(h, name, version);
}
C
echo 'GLIBC_2.34 { global: dlvsym; local: *; };' >"$src/oldglibc.map"
$cc -shared -fPIC -O0 -Wl,--version-script="$src/oldglibc.map" -o "$out" "$src/oldglibc.c"
