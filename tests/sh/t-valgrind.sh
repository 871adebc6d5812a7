# valgrind memcheck: the unit tests, and the shim in a real client (pass-through; a routed connect
# with a REST API that answers, in tests/cluster/t70-valgrind.sh). Zero errors, zero definite leaks.
. "$(dirname "$0")/../lib.sh"
if ! command -v valgrind >/dev/null; then echo "1..0 # SKIP valgrind not installed"; exit 0; fi
VG=(valgrind -q --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --suppressions="$ROOT/tests/valgrind.supp")
for t in "$B"/tests/test_topology "$B"/tests/test_policy "$B"/tests/test_settings "$B"/tests/test_plan "$B"/tests/test_hostcache "$B"/tests/test_dcs; do
    out=$(cd "$ROOT" && "${VG[@]}" "$t" 2>&1)
    ok $([ $? = 0 ] && ! grep -q '^not ok' <<<"$out"; echo $?) "valgrind: $(basename "$t")" || diag "$(grep -m8 '==' <<<"$out")"
done
tmp=$(mktemp -d)
out=$(PQROUTE_PATRONI=http://127.0.0.1:9 PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp PQROUTE_REST_TIMEOUT_MS=200 \
      LD_PRELOAD=$PRELOAD "${VG[@]}" "$CLIENT" connectdb "host=127.0.0.1 port=1 connect_timeout=2" 2>&1)
ok $([ $? != 97 ] && ! grep -q '==[0-9]*==' <<<"$out"; echo $?) "valgrind: the shim, REST down, front door refusing" || diag "$(grep -m8 '==' <<<"$out")"
# The agent following a (stand-in) etcd watch: a change, a compaction, a stop by SIGTERM.
FAKE=127.0.0.38:12379
start_server "$tmp/fake.out" python3 "$ROOT/tests/tools/fake-etcd.py" $FAKE
PQROUTE_ETCD=http://$FAKE PQROUTE_SCOPE=fake PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp/agent PQROUTE_REFRESH_MS=300 \
    PQROUTE_REST_TIMEOUT_MS=3000 "${VG[@]}" "$B/pqroute" agent >"$tmp/agent.out" 2>&1 &
agent=$!
for _ in $(seq 100); do ls "$tmp"/agent/*.json >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://$FAKE/ctl/leader?name=n2" >/dev/null
sleep 1
curl -fsS "http://$FAKE/ctl/mode?watch=canceled-once" >/dev/null
sleep 2
kill -TERM $agent
wait $agent
rc=$?
stop_servers
out=$(cat "$tmp/agent.out")
ok $([ $rc = 0 ] && ! grep -q '==[0-9]*==' <<<"$out" && grep -q 'n2' "$tmp"/agent/*.json; echo $?) \
    "valgrind: pqroute agent following an etcd watch (a change, a compaction, SIGTERM)" || diag "$(grep -m8 '==' <<<"$out") rc=$rc"
rm -rf "$tmp"
done_testing
