# valgrind memcheck on a routed connect through the shim against the real cluster: the REST fetch
# (libcurl), the shared cache, the probe and the rewrite. Zero errors, zero definite leaks.
. "$(dirname "$0")/lib-cluster.sh"
if ! command -v valgrind >/dev/null; then echo "1..0 # SKIP valgrind not installed"; exit 0; fi
VG=(valgrind -q --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --suppressions="$ROOT/tests/valgrind.supp")
export PQROUTE_CACHE_DIR=$(mktemp -d)
# Everything runs ~30x slower under valgrind: give the first fetch the time it needs there, so that
# a connect does not go on without it (what is checked is the routed path).
export PQROUTE_REST_TIMEOUT_MS=10000
for ci in "host=$PROXY port=5432 connect_timeout=10" "host=$PROXY port=5433 connect_timeout=10"; do
    out=$(LD_PRELOAD=$PRELOAD "${VG[@]}" "$CLIENT" connectdb "$ci" 2>&1)
    rc=$?
    ok $([ $rc = 0 ] && grep -q '^OK' <<<"$out" && ! grep -q '==[0-9]*==' <<<"$out"; echo $?) "valgrind: routed connect ($ci)" || diag "$(grep -m8 '==\|FAIL' <<<"$out")"
    # non-blocking: the caller's PQconnectPoll loop (nb.c), its own socket number, PQfinish
    out=$(LD_PRELOAD=$PRELOAD "${VG[@]}" "$CLIENT" epoll "$ci" 2>&1)
    rc=$?
    ok $([ $rc = 0 ] && grep -q '^OK' <<<"$out" && ! grep -q '==[0-9]*==' <<<"$out"; echo $?) "valgrind: routed non-blocking connect, epoll ($ci)" || diag "$(grep -m8 '==\|FAIL' <<<"$out")"
done
# Under valgrind on a busy machine a connect takes seconds: connect_timeout 10 s (libpq's own, per
# host), so that a slow one is not counted as a failure of the code under test.
out=$(LD_PRELOAD=$PRELOAD "${VG[@]}" "$CLIENT" threads 4 3 "host=$PROXY port=5432 connect_timeout=10" 2>&1)
rc=$?
ok $([ $rc = 0 ] && ! grep -q '==[0-9]*==' <<<"$out"; echo $?) "valgrind: 4 threads routing at once" ||
    diag "exit $rc: $(grep -m8 '==\|threads=' <<<"$out")"
rm -rf "$PQROUTE_CACHE_DIR"
done_testing
