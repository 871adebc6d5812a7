# pqroute: every subcommand against the loopback cluster.
. "$(dirname "$0")/lib-cluster.sh"
PQ=$B/pqroute
L=$(leader_ip)
out=$("$PQ" status 2>&1); rc=$?
ok $([ $rc = 0 ]; echo $?) "status: exit 0 with a leader"
like "$out" "cluster env: view from http://127\\.0\\.0\\.1[123]:8008, [0-9.]+ s old, leader node[123]" "status: view, age and leader"
ok $([ "$(grep -cE '^  node[123] +(leader|replica)' <<<"$out")" = 3 ]; echo $?) "status: one line per member"
out=$("$PQ" status --json)
check "status --json parses and names the leader's address" python3 -c "
import json,sys; d=json.loads(sys.argv[1]); c=d['clusters'][0]; m=[x for x in c['members'] if x['role']=='leader']
assert len(c['members'])==3 and m[0]['addr']=='$L' and c['leader']==m[0]['name']" "$out"
out=$(PQROUTE_PATRONI=http://127.0.0.11:18999 PQROUTE_CACHE_DIR=$(mktemp -d) "$PQ" status 2>&1); rc=$?
ok $([ $rc = 2 ]; echo $?) "status: exit 2 when Patroni does not answer ($rc)"
like "$out" 'no view' "status: says there is no view"
out=$(PQROUTE_RW=bad:port "$PQ" status 2>&1); rc=$?
ok $([ $rc = 3 ] && [[ $out =~ PQROUTE_RW ]]; echo $?) "status: exit 3 naming a malformed variable"

out=$("$PQ" resolve "$RW")
like "$out" "^routed rw: cluster env, front door $PROXY:5432, candidates $L:5432" "resolve: routed, leader first"
out=$("$PQ" resolve --connect "$RO")
like "$out" 'connected to 127\.0\.0\.1[123]:5432 \(a replica\)' "resolve --connect: RO lands on a replica"
out=$("$PQ" resolve "host=$L port=5432")
like "$out" "^passed through: $L:5432 is not a configured front door" "resolve: pass-through explained"

out=$("$PQ" exec -- psql -X -h $PROXY -p 5432 -tAc "select host(inet_client_addr())" 2>&1)
ok $([ "$out" = 127.0.0.1 ]; echo $?) "exec: an unmodified psql is routed directly ($out)"

out=$("$PQ" check 2>&1); rc=$?
ok $([ $rc = 0 ] && [ "$(grep -c ' ok: 3 members' <<<"$out")" = 3 ] && [[ $out =~ "front door rw  $PROXY:5432 ok" ]]; echo $?) "check: every endpoint and door ok"
out=$(PQROUTE_PATRONI=http://127.0.0.11:8008,http://127.0.0.14:18999 PQROUTE_RO=$PROXY:5999 "$PQ" check 2>&1); rc=$?
ok $([ $rc = 1 ] && [[ $out =~ "127.0.0.14:18999".*ERROR ]] && [[ $out =~ "front door ro  $PROXY:5999 ERROR" ]] && [[ $out =~ hint ]]; echo $?) "check: a dead endpoint and a dead door, each with a hint"

"$PQ" watch --count 2 >"$B/watch.out" 2>&1 &
w=$!
wait_for 15 grep -q 'cluster env: leader' "$B/watch.out" # its first view is printed
"$CL" switchover >/dev/null 2>&1
for _ in $(seq 300); do kill -0 $w 2>/dev/null || break; sleep 0.2; done
kill $w 2>/dev/null
like "$(cat "$B/watch.out")" '^[0-9:.]+ cluster env: leader node[123];.*'$'\n''[0-9:.]+ cluster env: ' "watch: prints the view, then its change during a switchover"
"$CL" wait 60 >/dev/null

# Counters are shared by every process of the host (the cache directory).
export PQROUTE_CACHE_DIR=$(mktemp -d)
for i in 1 2 3; do shim connectdb "$RW" >/dev/null; done
shim connectdb "$RO" >/dev/null
shim connectdb "host=$L port=5432" >/dev/null
out=$("$PQ" stats)
like "$out" 'routed_rw +3' "stats: 3 routed RW connections from 3 processes"
like "$out" 'routed_ro +1' "stats: 1 routed RO connection"
like "$out" 'passed_through +1' "stats: 1 connection to no front door"
like "$out" 'refresh_ok +[1-9]' "stats: refreshes counted"
out=$("$PQ" stats --prometheus)
like "$out" 'libpqroute_events_total\{cluster="env",event="routed_rw"\} 3' "stats --prometheus: node_exporter textfile format"
rm -rf "$PQROUTE_CACHE_DIR"
done_testing
