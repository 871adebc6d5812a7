# valgrind memcheck: the unit tests, and the shim in a real client (pass-through; a routed connect
# with a REST API that answers, in tests/cluster/t70-valgrind.sh). Zero errors, zero definite leaks.
. "$(dirname "$0")/../lib.sh"
if ! command -v valgrind >/dev/null; then echo "1..0 # SKIP valgrind not installed"; exit 0; fi
VG=(valgrind -q --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --suppressions="$ROOT/tests/valgrind.supp")
tmp=$(mktemp -d)
# The unit suites under valgrind (one core) beside the shim and the agent below (the other): a line
# per suite, "status|name|diagnosis", reported at the end.
UNITS="test_topology test_policy test_settings test_plan test_hostcache test_dcs"
for t in $UNITS; do
    out=$(cd "$ROOT" && "${VG[@]}" "$B/tests/$t" 2>&1)
    st=$([ $? = 0 ] && ! grep -q '^not ok' <<<"$out"; echo $?)
    printf '%s|%s|%s\n' "$st" "$t" "$([ "$st" = 0 ] || grep -m8 '==' <<<"$out" | tr '\n' ' ')"
done >"$tmp/units" &
units_pid=$!
out=$(PQROUTE_PATRONI=http://127.0.0.1:9 PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp PQROUTE_REST_TIMEOUT_MS=200 \
      LD_PRELOAD=$PRELOAD "${VG[@]}" "$CLIENT" connectdb "host=127.0.0.1 port=1 connect_timeout=2" 2>&1)
ok $([ $? != 97 ] && ! grep -q '==[0-9]*==' <<<"$out"; echo $?) "valgrind: the shim, REST down, front door refusing" || diag "$(grep -m8 '==' <<<"$out")"
# The agent following a (stand-in) etcd watch: a change, a compaction, a stop by SIGTERM. Each
# step is waited for (valgrind makes the agent some 20 times slower), and counted.
FAKE=127.0.0.38:12379
wait_for() { local n=$(( $1 * 10 )); shift; for _ in $(seq $n); do "$@" && return 0; sleep 0.1; done; return 1; }
check "fake etcd $FAKE started" start_server "$tmp/fake.out" python3 "$ROOT/tests/tools/fake-etcd.py" $FAKE
AGENV=(env PQROUTE_ETCD=http://$FAKE PQROUTE_SCOPE=fake PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp/agent
       PQROUTE_REFRESH_MS=300 PQROUTE_REST_TIMEOUT_MS=3000)
"${AGENV[@]}" "${VG[@]}" "$B/pqroute" agent >"$tmp/agent.out" 2>&1 &
agent=$!
agent_stat() { "${AGENV[@]}" "$B/pqroute" stats 2>/dev/null | awk -v k="$1" '$1==k {print $2}'; }
leader_is() { grep -q "\"name\":\"$1\",\"role\":\"leader\"" "$tmp"/agent/*.json 2>/dev/null; }
check "valgrind agent: its first view is in the shared cache" wait_for 60 leader_is n1
curl -fsS "http://$FAKE/ctl/leader?name=n2" >/dev/null
check "valgrind agent: a leader change reaches the shared cache (leader n2)" wait_for 60 leader_is n2
ev=$(agent_stat watch_events)
ok $([ "${ev:-0}" -ge 1 ]; echo $?) "valgrind agent: through the watch (${ev:-no} watch events)"
curl -fsS "http://$FAKE/ctl/mode?watch=canceled-once" >/dev/null
compacted() { [ "$(agent_stat watch_compactions)" -ge 1 ] 2>/dev/null; }
check "valgrind agent: a compaction is counted" wait_for 60 compacted
curl -fsS "http://$FAKE/ctl/leader?name=n1" >/dev/null
check "valgrind agent: and the watch goes on after it (leader n1)" wait_for 60 leader_is n1
kill -TERM $agent
# SIGTERM stops it within a slice of its loops; valgrind's leak check takes a few seconds more.
if ! wait_for 60 sh -c "! kill -0 $agent 2>/dev/null"; then
    diag "the agent did not stop within 60 s of SIGTERM: killed"
    kill -KILL $agent 2>/dev/null
fi
wait $agent
rc=$?
stop_servers
out=$(cat "$tmp/agent.out")
ok $([ $rc = 0 ] && ! grep -q '==[0-9]*==' <<<"$out"; echo $?) \
    "valgrind: pqroute agent following an etcd watch (a change, a compaction, SIGTERM)" || diag "$(grep -m8 '==' <<<"$out") rc=$rc"
wait $units_pid
for t in $UNITS; do
    IFS='|' read -r st _ why < <(grep "^[01]|$t|" "$tmp/units")
    ok "${st:-1}" "valgrind: $t" || diag "${why:-did not run}"
done
rm -rf "$tmp"
done_testing
