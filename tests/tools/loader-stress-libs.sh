#!/usr/bin/env bash
# The libraries tests/tools/dl/pqr-loadstress loads and unloads, written and built into DIR, for
# tests/sh/t-loader-stress.sh (the host's cc) and tests/cluster/t17-arm64.sh (the arm64 cross cc).
# usage: loader-stress-libs.sh DIR N CC PG_INCLUDEDIR
#   DIR/tiny.so, DIR/heavy.so (~200k symbol relocations: the loader spends a while relocating it),
#   DIR/plugin.so (its constructor calls dlopen and dlsym), DIR/pq0.so .. pq<N-1>.so (libpq-linked,
#   bound at load time and RELRO-protected, as Debian builds Python extensions).
# Exit status 0 only if every library was built.
set -u
dir=$1 n=$2 cc=$3 inc=$4
cfl="-shared -fPIC -O0 -w"
mkdir -p "$dir" && cd "$dir" || exit 1
echo 'int tiny(void) { return 1; }' >tiny.c
python3 -c '
n = 200000
print("extern int tiny_x; int tiny_x;")
print("int *table[%d] = {" % n + ",".join(["&tiny_x"] * n) + "};")' >heavy.c
cat >plugin.c <<'C'
#include <dlfcn.h>
static void *found;
__attribute__((constructor)) static void init(void)
{
    void *pq = dlopen("libpq.so.5", RTLD_NOW | RTLD_NOLOAD);
    if (pq) {
        found = dlsym(pq, "PQconnectdb");
        dlclose(pq);
    }
}
C
for i in $(seq 0 $((n - 1))); do
    printf '#include <libpq-fe.h>\nvoid *pq%d_use(void) { return (void *)PQconnectdb; }\nPGconn *pq%d_call(void) { return PQconnectdb("host=/nonexistent"); }\n' "$i" "$i" >"pq$i.c"
done
# $cc unquoted: it may carry options (--sysroot=...)
$cc $cfl -o tiny.so tiny.c &
$cc $cfl -o heavy.so heavy.c &
$cc $cfl -o plugin.so plugin.c -ldl &
for i in $(seq 0 $((n - 1))); do
    $cc $cfl -Wl,-z,now -Wl,-z,relro -I"$inc" -o "pq$i.so" "pq$i.c" -lpq &
done
wait
for f in tiny heavy plugin $(seq -f 'pq%g' 0 $((n - 1))); do
    [ -s "$f.so" ] || { echo "loader-stress-libs: $dir/$f.so was not built" >&2; exit 1; }
done
