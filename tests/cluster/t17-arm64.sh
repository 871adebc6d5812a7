# The shim on arm64 (issue 24): Debian's own arm64 clients, run under qemu-aarch64 (user mode) with
# -L an arm64 root of Debian packages (scripts/arm64-root) and the arm64 build of libpqroute
# (make arm64), against the loopback cluster. As t16: each a fresh process with an empty cache
# directory and the proxy stopped, so only a routed connection can succeed: psql, PHP pg_connect
# and PDO (RTLD_DEEPBIND extensions), psycopg 3 (ctypes dlsym), ruby-pg PG.connect, a wheel-style
# bundled libpq, RW on the leader and RO on a replica; a host that unloads and reloads libpq; the
# loader stress test; and a glibc older than 2.34 as the shim sees it (no GLIBC_2.34 dlsym).
. "$(dirname "$0")/../lib.sh"
A=${PQROUTE_ARM64_ROOT:-/var/cache/pqroute-arm64}
AB=${PQR_BUILD_ARM64:-$ROOT/build-arm64}
ACC="aarch64-linux-gnu-gcc --sysroot=$A"
for tool in qemu-aarch64 aarch64-linux-gnu-gcc patchelf; do
    command -v $tool >/dev/null || { echo "1..0 # skip $tool is not installed (scripts/install-deps installs it)"; exit 0; }
done
# With the tools there, make check builds both (its arm64 prerequisite): a missing one is a failure.
if ! [ -e "$A/.done" ] || ! [ -e "$AB/libpqroute-preload.so" ]; then
    ok 1 "an arm64 root in $A (scripts/arm64-root) and an arm64 build in $AB (make arm64)"
    done_testing
    exit
fi
. "$(dirname "$0")/lib-cluster.sh"
tmp=$(mktemp -d)
trap '"$CL" start-proxy >/dev/null 2>&1; rm -rf "$tmp"' EXIT
SHIM=$AB/libpqroute-preload.so
Q="select host(inet_server_addr()) || case when pg_is_in_recovery() then ' t' else ' f' end"
L=$(leader_ip)

# An arm64 program, its libraries from the root (the guest's own paths, then the host's), the
# arm64 shim preloaded in the guest only (qemu-aarch64 itself is an x86-64 program).
arm() { timeout -k 5 120 qemu-aarch64 -L "$A" -E LD_PRELOAD="${PRELOADS:-$SHIM}" "$@"; }
# Emulated, the first fetch of a fresh process (libcurl and OpenSSL loaded and initialised, then
# Patroni asked) takes 0.2 s on an idle machine and seconds on a busy one: a blocking connect waits
# for it up to the REST timeout, given generously here. A non-blocking one (psycopg 3, ruby-pg
# PG.connect) waits at most PQROUTE_START_WAIT_MS (1 s, the most it allows) and then takes the
# front door, stopped here: such a client is given up to three fresh processes (each with an
# empty cache; a client the shim does not reach fails all three).
export PQROUTE_REST_TIMEOUT_MS=10000
fresh() { # client-function port -> the client's last line: "<server ip> <t|f>" (or an error)
    local c out try
    for try in 1 2 3; do
        c=$(mktemp -d "$tmp/cache-XXXXXX")
        out=$(PQROUTE_CACHE_DIR=$c PQROUTE_START_WAIT_MS=1000 "$@" 2>&1 | tail -1)
        [[ $out =~ ^127\.0\.0\.1[123]\ [tf]$ ]] && break
    done
    [ $try = 1 ] || diag "$*: $try fresh processes" >&2
    echo "$out"
}
c_psql() { arm "$A/usr/lib/postgresql/15/bin/psql" -X -At -h 127.0.0.20 -p "$1" -c "$Q"; }
c_php() { arm "$A/usr/bin/php8.2" -r '$c = pg_connect("host=127.0.0.20 port='"$1"' connect_timeout=3"); if (!$c) exit(1); echo pg_fetch_row(pg_query($c, "'"$Q"'"))[0], "\n";'; }
c_pdo() { arm "$A/usr/bin/php8.2" -r '$d = new PDO("pgsql:host=127.0.0.20;port='"$1"';dbname=app;connect_timeout=3", "app", "app-secret"); echo $d->query("'"$Q"'")->fetchColumn(), "\n";'; }
# ctypes.util.find_library runs /sbin/ldconfig or gcc: a guest process cannot execute the guest's
# programs without binfmt_misc, and the host's describe the host. libpq.so.5 is what it answers on
# an arm64 machine; psycopg then loads it with dlopen() and looks every function up with dlsym().
c_psycopg3() { arm "$A/usr/bin/python3.11" -c 'import ctypes.util
find = ctypes.util.find_library
ctypes.util.find_library = lambda n: "libpq.so.5" if n == "pq" else find(n)
import psycopg
assert psycopg.pq.__impl__ == "python", psycopg.pq.__impl__
print(psycopg.connect("host=127.0.0.20 port='"$1"' connect_timeout=3").execute("'"$Q"'").fetchone()[0])'; }
c_ruby() { arm "$A/usr/bin/ruby3.1" -rpg -e 'puts PG.connect("host=127.0.0.20 port='"$1"' connect_timeout=3").exec("'"$Q"'").getvalue(0, 0)'; }
# A wheel-style bundled libpq: the root's libpq under a private soname, an extension linked to it,
# loaded RTLD_LOCAL by a host that does not link libpq.
mkdir "$tmp/wheel"
cp "$(readlink -f "$A/usr/lib/aarch64-linux-gnu/libpq.so.5")" "$tmp/wheel/libpq-a1b2c3d4.so.5.99"
patchelf --set-soname libpq-a1b2c3d4.so.5.99 "$tmp/wheel/libpq-a1b2c3d4.so.5.99"
$ACC -shared -fPIC -o "$tmp/wheel/ext.so" "$ROOT/tests/tools/dl/pqr-ext.c" -I"$A/usr/include/postgresql" \
    "$tmp/wheel/libpq-a1b2c3d4.so.5.99" -Wl,-rpath,"$tmp/wheel"
c_wheel() { arm "$AB/tests/pqr-dlhost" bundle "$tmp/wheel/ext.so" "host=127.0.0.20 port=$1 connect_timeout=3" |
    sed 's/^OK \(.*\) via .*\/libpq-a1b2c3d4\.so\.5\.99$/\1/'; } # "OK <ip> <t|f> via <libpq>": the bundled copy

"$CL" stop-proxy >/dev/null
for client in psql php pdo psycopg3 ruby wheel; do
    out=$(fresh c_$client 5432)
    like "$out" "^$L f$" "arm64 $client, proxy stopped, fresh process: RW on the leader ($out)"
    out=$(fresh c_$client 5433)
    ok $([[ $out =~ ^127\.0\.0\.1[123]\ t$ ]] && [ "${out% *}" != "$L" ]; echo $?) "arm64 $client, proxy stopped, fresh process: RO on a replica ($out)"
done

# A host that unloads libpq, maps something where it was, and loads it again.
out=$(PQROUTE_CACHE_DIR=$tmp/reload arm "$AB/tests/pqr-dlhost" reload "host=127.0.0.20 port=5432 connect_timeout=3" 2>&1; echo "exit=$?")
like "$out" "OK $L f.*OK $L f.*exit=0" "arm64 reload host, routing configured: both connects routed, no crash"

# glibc before 2.34 as the shim sees it: dlvsym finds no dlsym or dlopen at GLIBC_2.34 (a library
# after the shim in LD_PRELOAD whose dlvsym, version GLIBC_2.34, is the one the shim binds).
# The shim then takes the architecture's own version (GLIBC_2.17); before the fix it took x86-64's
# (GLIBC_2.2.5), found nothing and called NULL at the first connect. OLD_GLIBC_NONE: nothing found
# at any version (a libc the shim does not know): one line, no crash.
"$ROOT/tests/tools/oldglibc-lib.sh" "$tmp/oldglibc.so" "$ACC" GLIBC_2.17
for client in psql php; do
    out=$(PRELOADS="$SHIM $tmp/oldglibc.so" fresh c_$client 5432)
    like "$out" "^$L f$" "arm64 $client, no GLIBC_2.34 dlsym (glibc < 2.34): routed to the leader ($out)"
done
out=$(OLD_GLIBC_NONE=1 PQROUTE_CACHE_DIR=$tmp/none PRELOADS="$SHIM $tmp/oldglibc.so" \
    arm "$A/usr/lib/postgresql/15/bin/psql" -X -At -h "$L" -c "$Q" 2>&1; echo "exit=$?")
rc=${out##*exit=}
like "$out" "libpqroute: error: cannot find libc's dlsym and dlopen" "arm64 psql, no dlsym at any version: one line (${out//$'\n'/ | })"
ok $([ "$rc" -lt 128 ]; echo $?) "... and no crash (exit $rc)"

# The loader stress test (tests/sh/t-loader-stress.sh), the libraries built for arm64.
N=12
"$ROOT/tests/tools/loader-stress-libs.sh" "$tmp/ls" $N "$ACC" "$A/usr/include/postgresql"
ok $? "the arm64 libraries of the loader stress test are built"
out=$(PQROUTE_PATRONI=http://127.0.0.1:1 PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp/ls/cache PQROUTE_LOG=error \
    arm "$AB/tests/pqr-loadstress" 5 "$tmp/ls" $N 2>&1)
rc=$?
ok $([ $rc = 0 ] && [[ $out =~ ^done ]]; echo $?) "arm64 loader stress, shim preloaded: no crash, no deadlock (exit $rc: ${out:0:160})"
done_testing
