# What the DCS may contain, and stores that misbehave in ways that would make a loop (issue 20, rows
# 5, 6, 11, 14): a fake etcd gateway and a fake Consul, on addresses of this test's own.
#  5  one member key that is not base64, holds a NUL byte or is over 64 KiB (any node writes its
#     own key): that key is left out with one warning, the rest of the view is used; the watch goes
#     on (the event is not replayed for ever); the same for Consul.
#  6  an error body with terminal escapes: `pqroute check` prints them escaped.
# 11  etcd cancelling every watch as compacted, Consul answering without X-Consul-Index: the agent
#     backs off instead of asking as fast as the server answers.
# 14  a revision of 9223372036854775807: the watch goes on (no signed overflow in rev + 1).
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
agent_pid=
cleanup() { [ -n "$agent_pid" ] && kill $agent_pid 2>/dev/null; stop_servers; rm -rf "$tmp"; }
trap cleanup EXIT
ETCD=127.0.0.91:12379
CONSUL=127.0.0.92:18500
export PQROUTE_SCOPE=fake PQROUTE_RW=127.0.0.1:1 PQROUTE_REFRESH_MS=300 PQROUTE_REST_TIMEOUT_MS=1000 PQROUTE_LOG=info
unset PQROUTE_PATRONI PQROUTE_CONFIG PQROUTE_ETCD PQROUTE_CONSUL
check "fake etcd started" start_server "$tmp/etcd.out" python3 "$ROOT/tests/tools/fake-etcd.py" $ETCD
check "fake consul started" start_server "$tmp/consul.out" python3 "$ROOT/tests/tools/fake-consul.py" $CONSUL
ectl() { curl -fsS "http://$ETCD/ctl/$1" >/dev/null; }
cctl() { curl -fsS "http://$CONSUL/ctl/$1" >/dev/null; }
fstat() { curl -fsS "http://$1/ctl/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
status() { "$B/pqroute" status 2>&1; }
agent_start() { # log
    "$B/pqroute" agent >"$1" 2>&1 &
    agent_pid=$!
    wait_for 15 grep -q 'view from' "$1"
}
agent_stop() { kill $agent_pid 2>/dev/null; wait $agent_pid 2>/dev/null; agent_pid=; }

# ---- etcd: one bad key ----
export PQROUTE_ETCD=http://$ETCD PQROUTE_CACHE_DIR=$tmp/e1
for kind in nul big notb64; do
    ectl "bad?kind=$kind"
    out=$(status)
    like "$out" 'leader n1' "etcd, members/n3 $kind: the view is read, leader n1"
    like "$out" 'n2 +replica' "etcd, members/n3 $kind: the other members are used"
    like "$out" 'key /service/fake/members/n3 \(revision [0-9]+\) left out' "etcd, members/n3 $kind: one line names the key"
done
check "the agent watches with a bad key in the store" agent_start "$tmp/agent1.log"
ectl "bad?kind=nul" # an event with the bad value, then a leader change behind it
ectl "leader?name=n2"
check "etcd watch: a bad key's event is skipped and the next change followed (leader n2)" \
    wait_for 15 sh -c "\"$B/pqroute\" status 2>/dev/null | grep -q 'leader n2'"
sleep 1 # the property: nothing more happens (no reconnect loop replaying the event)
rc=$("$B/pqroute" stats 2>/dev/null | awk '$1=="watch_reconnects" {print $2}')
ok $([ "${rc:-0}" = 0 ]; echo $?) "etcd watch: no reconnect for the bad key ($rc)"
n=$(grep -c 'members/n3 .* left out' "$tmp/agent1.log")
ok $([ "$n" -le 2 ]; echo $?) "etcd watch: the bad key said once per revision, not per resume ($n lines)"

# ---- 14: the largest revision ----
ectl "maxrev"
ectl "leader?name=n1"
check "etcd watch: a change at revision 9223372036854775807 is followed (leader n1)" \
    wait_for 15 sh -c "\"$B/pqroute\" status 2>/dev/null | grep -q 'leader n1'"
ok $(kill -0 $agent_pid 2>/dev/null; echo $?) "the agent is still running after it"
agent_stop

# ---- 11: every watch cancelled as compacted ----
export PQROUTE_CACHE_DIR=$tmp/e2
ectl "mode?watch=canceled-always"
r0=$(fstat $ETCD range)
w0=$(fstat $ETCD watch)
"$B/pqroute" agent >"$tmp/agent2.log" 2>&1 &
agent_pid=$!
sleep 5 # the property is a count over a fixed time: how often the agent asked
reads=$(( $(fstat $ETCD range) - r0 )) watches=$(( $(fstat $ETCD watch) - w0 ))
ok $(kill -0 $agent_pid 2>/dev/null; echo $?) "etcd cancelling every watch: the agent runs on"
ok $([ $reads -le 25 ] && [ $watches -le 25 ]; echo $?) \
    "etcd cancelling every watch: back-off, not a loop ($reads reads, $watches watches in 5 s; before: ~100 each)"
agent_stop
ectl "mode?watch=ok"

# ---- 6: an error body with terminal escapes ----
ectl "rangeerr?on=1"
out=$(PQROUTE_CACHE_DIR=$tmp/e3 "$B/pqroute" check 2>&1)
ok $([[ $out != *$'\e'* ]] && [[ $out != *$'\a'* ]]; echo $?) "pqroute check: no raw escape from the store's error"
like "$out" '\\x1b\]0;owned' "pqroute check: the store's words shown escaped"
ectl "rangeerr?on=0"
unset PQROUTE_ETCD

# ---- Consul: one bad key; no X-Consul-Index ----
export PQROUTE_CONSUL=http://$CONSUL PQROUTE_CACHE_DIR=$tmp/c1
cctl "bad"
out=$(status)
like "$out" 'leader c1' "consul, a member value that is not base64: the view is read, leader c1"
like "$out" 'key service/fake/members/c3 \(index [0-9]+\) left out' "consul: one line names the key"
cctl "mode?m=noindex"
q0=$(fstat $CONSUL queries)
"$B/pqroute" agent >"$tmp/agent3.log" 2>&1 &
agent_pid=$!
sleep 5
q=$(( $(fstat $CONSUL queries) - q0 ))
ok $(kill -0 $agent_pid 2>/dev/null; echo $?) "consul without X-Consul-Index: the agent runs on"
ok $([ $q -le 30 ]; echo $?) "consul without X-Consul-Index: back-off, not a loop ($q queries in 5 s; before: ~110)"
like "$(cat "$tmp/agent3.log")" 'blocking queries answer at once' "consul without X-Consul-Index: one line says why"
agent_stop
done_testing
