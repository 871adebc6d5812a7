# valgrind memcheck: the unit tests, and the shim in a real client (pass-through; a routed connect
# with a REST API that answers, in tests/cluster/t70-valgrind.sh). Zero errors, zero definite leaks.
. "$(dirname "$0")/../lib.sh"
if ! command -v valgrind >/dev/null; then echo "1..0 # SKIP valgrind not installed"; exit 0; fi
VG=(valgrind -q --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --suppressions="$ROOT/tests/valgrind.supp")
for t in "$B"/tests/test_topology "$B"/tests/test_policy "$B"/tests/test_settings "$B"/tests/test_plan "$B"/tests/test_hostcache; do
    out=$(cd "$ROOT" && "${VG[@]}" "$t" 2>&1)
    ok $([ $? = 0 ] && ! grep -q '^not ok' <<<"$out"; echo $?) "valgrind: $(basename "$t")" || diag "$(grep -m8 '==' <<<"$out")"
done
tmp=$(mktemp -d)
out=$(PQROUTE_PATRONI=http://127.0.0.1:9 PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp PQROUTE_REST_TIMEOUT_MS=200 \
      LD_PRELOAD=$PRELOAD "${VG[@]}" "$CLIENT" connectdb "host=127.0.0.1 port=1 connect_timeout=2" 2>&1)
ok $([ $? != 97 ] && ! grep -q '==[0-9]*==' <<<"$out"; echo $?) "valgrind: the shim, REST down, front door refusing" || diag "$(grep -m8 '==' <<<"$out")"
rm -rf "$tmp"
done_testing
