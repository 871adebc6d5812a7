# Consul as the DCS, against a stand-in for its KV API (Consul is not packaged for Debian, so no
# real server is run here; the same key mapping is tested against the real etcd in t95): a read, a
# blocking-query watch through the agent, a token, and the faults a Consul agent can show.
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
agent_pid=
cleanup() { [ -n "$agent_pid" ] && kill $agent_pid 2>/dev/null; stop_servers; rm -rf "$tmp"; }
trap cleanup EXIT
FAKE=127.0.0.34:18500
export PQROUTE_CONSUL=http://$FAKE PQROUTE_SCOPE=fake PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp/cache \
       PQROUTE_REFRESH_MS=1000 PQROUTE_REST_TIMEOUT_MS=300 PQROUTE_LOG=info
unset PQROUTE_PATRONI PQROUTE_ETCD PQROUTE_CONFIG
check "fake Consul $FAKE started" start_server "$tmp/fake.out" python3 "$ROOT/tests/tools/fake-consul.py" $FAKE
ctl() { curl -fsS "http://$FAKE/ctl/$1" >/dev/null; }
status() { "$B/pqroute" status 2>&1; }
wait_for() { local n=$(( $1 * 10 )); shift; for _ in $(seq $n); do "$@" && return 0; sleep 0.1; done; return 1; }

out=$(status)
like "$out" 'view from consul read http://127.0.0.34:18500, [0-9.]+ s old, leader c1' "a process reads Patroni's keys from Consul"
like "$out" 'c2 +replica +running +127.0.0.62:5432' "members from conn_url"
PQROUTE_LOG=debug "$B/pqroute" agent >"$tmp/agent.log" 2>&1 &
agent_pid=$!
check "the agent follows Consul with blocking queries" wait_for 10 sh -c "\"$B/pqroute\" status 2>/dev/null | grep -q 'consul watch.*by pqroute agent'"
stat() { curl -fsS "http://$FAKE/ctl/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
changed0=$(stat changed)
t0=$(ms)
ctl "leader?name=c2"
wait_for 10 sh -c "\"$B/pqroute\" status 2>/dev/null | grep -q 'leader c2'"
dt=$(( $(ms) - t0 ))
changed=$(( $(stat changed) - changed0 ))
# The path, not the speed: a blocking query (index=N) was answered with the change, and the cache
# has the new leader (the exact figure is the benchmark's).
ok $([ "$changed" -ge 1 ] && [ $dt -lt 10000 ]; echo $?) \
    "a leader change reaches the cache through the blocking query ($changed answered with it; ${dt} ms)"
blocking=$(stat blocking)
ok $([ "$blocking" -ge 1 ]; echo $?) "blocking queries were used ($blocking)"
ctl "mode?m=reset"
# Every query counted from now on is answered with the index gone back: one that began after the
# reset shows the agent has had such an answer (its queries go one after the other).
q0=$(stat queries)
queried_since() { [ "$(stat queries)" -gt "$1" ] 2>/dev/null; }
check "the agent queries again after the index went back" wait_for 10 queried_since "$q0"
ctl "mode?m=ok"
ctl "leader?name=c1"
check "an index that goes backwards (a restored snapshot): the watch starts over and goes on" \
    wait_for 10 sh -c "\"$B/pqroute\" status 2>/dev/null | grep -q 'leader c1'"
for m in "500:HTTP status 500" "garbage:not a JSON array"; do
    ctl "mode?m=${m%%:*}"
    check "${m%%:*}: the agent says why (${m#*:})" wait_for 10 grep -q "consul http://$FAKE: ${m#*:}" "$tmp/agent.log"
    ctl "mode?m=ok"
done
check "the agent is still running" kill -0 $agent_pid
ctl "leader?name=c2"
check "and follows Consul again" wait_for 20 sh -c "\"$B/pqroute\" status 2>/dev/null | grep -q 'consul watch.*leader c2'"
kill $agent_pid; wait $agent_pid 2>/dev/null; agent_pid=

ctl "token?t=s3cret"
out=$(status)
like "$out" 'consul.*HTTP status 403' "an ACL token is required: Consul's 403 is reported"
printf 's3cret\n' >"$tmp/token"; chmod 600 "$tmp/token"
out=$(PQROUTE_CONSUL_TOKEN_FILE=$tmp/token status)
like "$out" 'view from consul read .*leader c2' "with PQROUTE_CONSUL_TOKEN_FILE the keys are read"
done_testing
