# Issue 13: Patroni's state from its DCS (the loopback cluster's real etcd), and the host agent.
# The application runs as nobody with every Patroni REST port dropped for that user and the proxy
# stopped: only a connection routed from etcd's view can succeed.
. "$(dirname "$0")/lib-cluster.sh"
if ! command -v iptables >/dev/null || [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP needs iptables and root"; exit 0; fi
ETCD=http://127.0.0.10:2379
rules=()
block() { iptables -I OUTPUT -m owner --uid-owner nobody -p tcp --dport "$1" -j DROP; rules+=("$1"); }
unblock() { iptables -D OUTPUT -m owner --uid-owner nobody -p tcp --dport "$1" -j DROP 2>/dev/null; }
cache=$(mktemp -d)
chown nobody "$cache"
agent_pid=
cleanup() {
    [ -n "$agent_pid" ] && kill -CONT $agent_pid 2>/dev/null && kill $agent_pid 2>/dev/null
    for p in "${rules[@]}"; do unblock "$p"; done
    "$CL" start-proxy >/dev/null 2>&1
    rm -rf "$cache"
}
trap cleanup EXIT
export PQROUTE_CACHE_DIR=$cache PQROUTE_ETCD=$ETCD PQROUTE_SCOPE=pqroute PQROUTE_LOG=info
unset PQROUTE_PATRONI
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
app() { as_nobody env LD_PRELOAD=$PRELOAD "$CLIENT" "$@" 2>&1; }
stat_of() { as_nobody "$B/pqroute" stats 2>/dev/null | awk -v k="$1" '$1==k {print $2}'; }
status_line() { as_nobody "$B/pqroute" status 2>/dev/null | grep 'view from'; }
agent_start() {
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$B/pqroute" agent >>"$cache/agent.log" 2>&1 &
    agent_pid=$!
    for _ in $(seq 150); do status_line | grep -q 'by pqroute agent' && return 0; sleep 0.1; done
    return 1
}
wait_for() { local n=$(( $1 * 10 )); shift; for _ in $(seq $n); do "$@" && return 0; sleep 0.1; done; return 1; }
check_rw() {
    ok $([ "$(server_of "$2")" = "$(leader_ip)" ] && [ "$(recovery_of "$2")" = f ]; echo $?) "RW $1: on the leader"
    [[ $2 =~ OK ]] || diag "$2"
}
check_ro() {
    ok $([ "$(server_of "$2")" != "$(leader_ip)" ] && [ "$(recovery_of "$2")" = t ]; echo $?) "RO $1: on a replica"
    [[ $2 =~ OK ]] || diag "$2"
}

block 8008
"$CL" stop-proxy

# 1. Without an agent: each process reads etcd itself (one range read), REST unreachable.
check_rw "from etcd, REST ports dropped, proxy stopped" "$(app connectdb "$RW")"
check_ro "from etcd, REST ports dropped, proxy stopped" "$(app connectdb "$RO")"
out=$(as_nobody env LD_PRELOAD=$PRELOAD PQROUTE_LOG=warn psql -X -h $PROXY -p 5432 -tAc "select pg_is_in_recovery()" 2>&1)
ok $([ "$out" = f ]; echo $?) "psql RW from etcd's view ($out)"
like "$(status_line)" "view from etcd read $ETCD" "status: the source is an etcd read"

# 2. The agent: one watch stream for the host, and applications ask nothing.
check "the agent starts and serves from the watch" agent_start
like "$(status_line)" "view from etcd watch $ETCD, by pqroute agent $agent_pid" "status: the etcd watch, by the agent"
streams=$(ss -Htnp state established dst 127.0.0.10:2379 | grep -c "pid=$agent_pid,")
ok $([ "$streams" -ge 1 ] && [ "$streams" -le 2 ]; echo $?) "one host, one watch: the agent holds $streams connection(s) to etcd (the stream, and its reads)"
trace=$cache/strace
strace -f -qq -e trace=connect -o "$trace" setpriv --reuid=nobody --regid=nogroup --clear-groups \
    sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do LD_PRELOAD='"$PRELOAD $CLIENT"' connectdb "'"$RW"'"; LD_PRELOAD='"$PRELOAD $CLIENT"' connectdb "'"$RO"'"; done' >"$cache/apps.out" 2>&1
n_ok=$(grep -c '^OK' "$cache/apps.out")
n_dcs=$(grep -cE 'htons\((2379|8008)\)' "$trace")
ok $([ "$n_ok" = 20 ]; echo $?) "20 application processes connect while the agent runs ($n_ok OK)"
ok $([ "$n_dcs" = 0 ]; echo $?) "and open 0 connections to etcd or Patroni (strace: $n_dcs)"

# 3. Switchover and crash, followed through the watch.
lag=$(mktemp)
python3 "$ROOT/tests/tools/leader-lag.py" $ETCD /service/pqroute/leader "$cache" 60 >"$lag" &
lag_pid=$!
check "switchover: leader-lag watches etcd" wait_for 30 grep -q ready "$lag"
# The agent's own path. The counters file is shared by every process of the host: rest_fallbacks
# also counts a process that asked REST itself (a connect's panic refresh under load, while the
# leader moves), so it says nothing about the agent and is only shown. The watch counters are the
# agent's alone, and the agent asks REST only after its watch failed: counted as a reconnect first,
# the first of an outage also logged as a warning in its own log.
counters() { echo "$(stat_of watch_events) $(stat_of watch_reconnects) $(stat_of watch_compactions)"; }
shown() { echo "$1; the host's REST fallbacks, processes' included: $(stat_of rest_fallbacks)"; }
mark() { echo "$(counters) $(wc -l <"$cache/agent.log")"; }
agent_said() { tail -n +$(($1 + 1)) "$cache/agent.log" | grep -E '^libpqroute: (warn|error)' | head -3; } # from line
before=$(mark)
"$CL" switchover >/dev/null
wait $lag_pid
l=$(sed -n 's/lag_ms \([0-9.]*\).*/\1/p' "$lag")
# The path: the change came as watch events, with no reconnect, re-read or REST fallback of the
# agent's; the figure (tens of ms) is the benchmark's, the bound here only says it came with the event.
followed() { # mark-before counters-after
    local b=($1) a=($2)
    [ "${a[0]:-0}" -gt "${b[0]:-0}" ] && [ "${a[1]}" = "${b[1]}" ] && [ "${a[2]}" = "${b[2]}" ] &&
        [ -z "$(agent_said "${b[3]}")" ]
}
after=$(counters)
ok $(followed "$before" "$after"; echo $?) "switchover: the agent followed through the watch (events, reconnects, compactions: ${before% *} -> $after; the agent warned: $(agent_said "${before##* }" | wc -l))"
diag "$(shown "switchover")"
agent_said "${before##* }" | sed 's/^/#   /'
ok $([ -n "$l" ] && [ "${l%.*}" -lt 5000 ]; echo $?) "switchover: the new leader key reached the shared cache ${l:-?} ms after etcd announced it"
wait_leader_writable 30
check_rw "after the switchover, a fresh process" "$(app connectdb "$RW")"
"$CL" wait 90 >/dev/null # every replica streaming again before the crash
python3 "$ROOT/tests/tools/leader-lag.py" $ETCD /service/pqroute/leader "$cache" 60 >"$lag" &
lag_pid=$!
check "crash: leader-lag watches etcd" wait_for 30 grep -q ready "$lag"
before=$(mark)
killed=$("$CL" kill-leader)
wait $lag_pid
l=$(sed -n 's/lag_ms \([0-9.]*\).*/\1/p' "$lag")
after=$(counters)
ok $(followed "$before" "$after"; echo $?) "crash: the agent followed through the watch (${before% *} -> $after; the agent warned: $(agent_said "${before##* }" | wc -l))"
diag "$(shown "crash")"
agent_said "${before##* }" | sed 's/^/#   /'
ok $([ -n "$l" ] && [ "${l%.*}" -lt 5000 ]; echo $?) "crash: the new leader reached the shared cache ${l:-?} ms after etcd announced it"
wait_leader_writable 60
check_rw "after the crash, a fresh process" "$(app connectdb "$RW")"
"$CL" restart-node "$killed" >/dev/null
"$CL" wait 90 >/dev/null

# 4. etcd restarted under the watch: the agent watches again from where it was.
before=$(stat_of watch_reconnects)
"$CL" restart-etcd >/dev/null
wait_for 20 sh -c "[ \"\$(setpriv --reuid=nobody --regid=nogroup --clear-groups \"$B/pqroute\" stats 2>/dev/null | awk '\$1==\"watch_reconnects\" {print \$2}')\" -gt ${before:-0} ]"
ok $? "etcd restart: the agent reconnected ($(stat_of watch_reconnects) reconnects)"
"$CL" wait 90 >/dev/null
wait_for 30 sh -c "setpriv --reuid=nobody --regid=nogroup --clear-groups \"$B/pqroute\" status 2>/dev/null | grep -q 'etcd watch'"
check_rw "after the etcd restart" "$(app connectdb "$RW")"

# 5. etcd unreachable for the agent: REST fallback; a switchover and a compaction meanwhile; back.
unblock 8008
block 2379
wait_for 30 sh -c "setpriv --reuid=nobody --regid=nogroup --clear-groups \"$B/pqroute\" status 2>/dev/null | grep -q 'view from http://127.0.0.1[123]:8008, by pqroute agent'"
ok $? "etcd unreachable: the agent falls back to Patroni's REST API ($(status_line | cut -c1-90))"
ok $([ "$(stat_of rest_fallbacks)" -ge 1 ]; echo $?) "REST fallbacks counted ($(stat_of rest_fallbacks))"
"$CL" switchover >/dev/null
wait_leader_writable 30
check_rw "during the etcd outage, after a switchover (REST fallback)" "$(app connectdb "$RW")"
rev=$(ETCDCTL_API=3 etcdctl --endpoints=$ETCD endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
ETCDCTL_API=3 etcdctl --endpoints=$ETCD compact "$rev" >/dev/null
unblock 2379
wait_for 30 sh -c "[ \"\$(setpriv --reuid=nobody --regid=nogroup --clear-groups \"$B/pqroute\" stats 2>/dev/null | awk '\$1==\"watch_compactions\" {print \$2}')\" -ge 1 ]"
ok $? "etcd back, revision compacted meanwhile: the agent read again ($(stat_of watch_compactions) compactions)"
wait_for 30 sh -c "setpriv --reuid=nobody --regid=nogroup --clear-groups \"$B/pqroute\" status 2>/dev/null | grep -q 'etcd watch'"
ok $? "and watches etcd again ($(status_line | cut -c1-90))"
block 8008
check_rw "back on the watch, REST dropped again" "$(app connectdb "$RW")"

# 6. The agent stopped (SIGSTOP: holds its lock, writes nothing), then killed: processes go back
# to refreshing for themselves.
kill -STOP $agent_pid
sleep 2.5 # the file is now older than what processes accept (refresh interval)
t0=$(ms)
out=$(PQROUTE_LOG=debug app connectdb "$RW")
dt=$(( $(ms) - t0 ))
check_rw "agent stopped: a process asks etcd itself (${dt} ms)" "$out"
like "$out" 'holding the shared cache wrote nothing for [0-9]+ ms; asking ourselves' "agent stopped: it waited for the lock holder's write, then asked itself"
kill -KILL $agent_pid; kill -CONT $agent_pid 2>/dev/null; wait $agent_pid 2>/dev/null; agent_pid=
sleep 2.5
t0=$(ms)
out=$(PQROUTE_LOG=debug app connectdb "$RW")
dt=$(( $(ms) - t0 ))
check_rw "agent killed: a process asks etcd itself (${dt} ms)" "$out"
# the dead agent's lock went with it: the process takes the lock and reads, never waits for a write
ok $([[ $out =~ "shared cache "(too old|absent) ]] && ! [[ $out =~ "wrote nothing for" ]]; echo $?) "without waiting for the dead agent (${dt} ms)"
like "$(status_line)" "view from etcd read $ETCD" "status: a process's own etcd read again"
done_testing
