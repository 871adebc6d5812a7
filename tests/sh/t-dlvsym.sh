# The shim finds libc's own dlsym and dlopen with dlvsym(): GLIBC_2.34, else the architecture's
# base version (x86-64 GLIBC_2.2.5, aarch64 GLIBC_2.17: all a glibc older than 2.34 has). A library
# after the shim in LD_PRELOAD stands in for libc's dlvsym (its own dlvsym, version GLIBC_2.34, is
# the one the shim binds) and finds nothing at GLIBC_2.34 (an old glibc), or nothing at all (a libc
# the shim does not know). Never a NULL call: the shim passes through, or says why it cannot.
# (tests/cluster/t17-arm64.sh does the same for aarch64 under emulation, with routed connects.)
. "$(dirname "$0")/../lib.sh"
case $(uname -m) in
x86_64) base=GLIBC_2.2.5 ;;
aarch64) base=GLIBC_2.17 ;;
*) echo "1..0 # skip no interception on $(uname -m)"; exit 0 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$ROOT/tests/tools/oldglibc-lib.sh" "$tmp/oldglibc.so" cc "$base"
ok $? "a dlvsym without GLIBC_2.34 is built"

# Routing configured, Patroni and the server absent: libpq's own answer is the pass-through.
export PQROUTE_PATRONI=http://127.0.0.1:9 PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp/cache
py='import ctypes
pq = ctypes.CDLL("libpq.so.5")
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQstatus.argtypes = [ctypes.c_void_p]
print("status", pq.PQstatus(pq.PQconnectdb(b"host=127.0.0.1 port=1 connect_timeout=1")))'
run() { LD_PRELOAD="$PRELOAD $tmp/oldglibc.so" "$@" 2>&1 | tr -d "\\0"; echo "exit=${PIPESTATUS[0]}"; }

out=$(run "$CLIENT" connectdb "host=127.0.0.1 port=1 connect_timeout=1")
like "$out" "Connection refused.*exit=[0-9]+$" "a C client, no GLIBC_2.34 dlsym: libpq's own connection error, no crash (${out//$'\n'/ | })"
unlike "$out" "libpqroute: error" "... and no complaint: $base was found"
out=$(run python3 -c "$py")
like "$out" "status 1.exit=0$" "ctypes (dlopen, dlsym), no GLIBC_2.34: libpq loaded and called (${out//$'\n'/ | })"

export OLD_GLIBC_NONE=1
out=$(run "$CLIENT" connectdb "host=127.0.0.1 port=1 connect_timeout=1")
like "$out" "libpqroute: error: cannot find libc's dlsym and dlopen" "a C client, no dlsym at any version: one line (${out//$'\n'/ | })"
rc=${out##*exit=}
ok $([ "$rc" -lt 128 ]; echo $?) "... and no crash (exit $rc)"
out=$(run python3 -c "$py")
rc=${out##*exit=}
ok $([ "$rc" -lt 128 ]; echo $?) "ctypes, no dlsym at any version: dlopen fails, no crash (exit $rc: $(grep -m1 -E 'Error|libpqroute' <<<"$out"))"
done_testing
