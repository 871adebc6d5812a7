# etcd's watch stream misbehaving (a fake gateway, for the faults a real etcd rarely shows): every
# fault gets one clear line, the agent watches again, and the view it keeps stays right.
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
agent_pid=
cleanup() { [ -n "$agent_pid" ] && kill $agent_pid 2>/dev/null; stop_servers; rm -rf "$tmp"; }
trap cleanup EXIT
FAKE=127.0.0.33:12379
export PQROUTE_ETCD=http://$FAKE PQROUTE_SCOPE=fake PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp/cache \
       PQROUTE_REFRESH_MS=300 PQROUTE_REST_TIMEOUT_MS=300 PQROUTE_LOG=debug
unset PQROUTE_PATRONI PQROUTE_CONFIG
check "fake etcd $FAKE started" start_server "$tmp/fake.out" python3 "$ROOT/tests/tools/fake-etcd.py" $FAKE
fake_pid=$BG_PID
ctl() { curl -fsS "http://$FAKE/ctl/$1" >/dev/null; }
fake_stat() { # name [addr]: one of the fake's counters (what it was asked)
    curl -fsS "http://${2:-$FAKE}/ctl/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}
fake_stat_above() { [ "$(fake_stat "$1")" -gt "$2" ] 2>/dev/null; } # name value
stat_of() { "$B/pqroute" stats 2>/dev/null | awk -v k="$1" '$1==k {print $2}'; }
leader_now() { "$B/pqroute" status 2>/dev/null | sed -n 's/.*leader \([a-z0-9()]*\).*/\1/p' | head -1; }
agent_start() {
    rm -rf "$tmp/cache"
    "$B/pqroute" agent >"$tmp/agent.log" 2>&1 &
    agent_pid=$!
    for _ in $(seq 100); do grep -q 'view from etcd' "$tmp/agent.log" && return 0; sleep 0.1; done
    return 1
}
agent_stop() { kill $agent_pid 2>/dev/null; wait $agent_pid 2>/dev/null; agent_pid=; }
wait_for() { # seconds command...: true once the command succeeds
    local n=$(( $1 * 10 )); shift
    for _ in $(seq $n); do "$@" && return 0; sleep 0.1; done
    return 1
}
log_has() { grep -qE "$1" "$tmp/agent.log"; }

ctl "mode?watch=ok"
ctl "leader?name=n1"
check "the agent starts and serves a view from the watch" agent_start
like "$(leader_now)" '^n1$' "status reads the agent's view: leader n1"
like "$("$B/pqroute" status 2>&1 | grep 'view from')" 'view from etcd watch http://127.0.0.33:12379, by pqroute agent [0-9]+' \
    "status names the source: the etcd watch, by the agent"
# The path, not the speed: the proof-of-life reads are keys-only, so a new leader's name reaches the
# view through a watch event, or through a full read after a reconnect or a compaction; only the
# first may have happened.
ev0=$(stat_of watch_events) rc0=$(stat_of watch_reconnects) cp0=$(stat_of watch_compactions) rd0=$(stat_of dcs_reads)
t0=$(ms)
ctl "leader?name=n2"
wait_for 10 sh -c "\"$B/pqroute\" status 2>/dev/null | grep -q 'leader n2'"
ok $? "a leader key change reaches the cache ($(( $(ms) - t0 )) ms, refresh interval 300 ms)"
ev=$(stat_of watch_events) rc=$(stat_of watch_reconnects) cp=$(stat_of watch_compactions) rd=$(stat_of dcs_reads)
ok $([ "$ev" -gt "$ev0" ] && [ "$rc" = "$rc0" ] && [ "$cp" = "$cp0" ] && [ "$rd" = "$rd0" ]; echo $?) \
    "through the watch: watch events $ev0 -> $ev; reconnects $rc0 -> $rc, compactions $cp0 -> $cp, full reads $rd0 -> $rd"
agent_stop

# Each fault: the stream is abandoned with one line naming it, and watched again.
for fault in "truncated:watch ended" "garbage:not JSON" "error:watch error: etcdserver: no leader" \
             "huge:watch answer too long"; do
    mode=${fault%%:*} want=${fault#*:}
    ctl "mode?watch=$mode"
    agent_start >/dev/null
    wait_for 15 sh -c "[ \"\$(\"$B/pqroute\" stats 2>/dev/null | awk '\$1==\"watch_reconnects\" {print \$2}')\" -ge 2 ]"
    ok $? "$mode: the agent watches again ($(stat_of watch_reconnects) reconnects)"
    check "$mode: the reason is given ($want)" log_has "$want"
    ok $([ "$(grep -c '^libpqroute: warn' "$tmp/agent.log")" -le 2 ]; echo $?) \
        "$mode: a warning per outage, not per attempt ($(grep -c '^libpqroute: warn' "$tmp/agent.log"))"
    check "$mode: the agent is still running" kill -0 $agent_pid
    agent_stop
    ctl "mode?watch=ok"
done

# A compacted revision: the prefix is read again and watched from there.
ctl "mode?watch=canceled-once"
agent_start >/dev/null
wait_for 10 sh -c "[ \"\$(\"$B/pqroute\" stats 2>/dev/null | awk '\$1==\"watch_compactions\" {print \$2}')\" -ge 1 ]"
ok $? "compaction: counted ($(stat_of watch_compactions))"
check "compaction: said so" log_has 'revision compacted.*reading /service/fake/ again'
ctl "leader?name=n1"
check "compaction: the watch goes on after the re-read (leader n1)" wait_for 10 sh -c "\"$B/pqroute\" status 2>/dev/null | grep -q 'leader n1'"
ok $([ "$(stat_of watch_reconnects)" = 0 ]; echo $?) "compaction: no reconnect needed"
agent_stop

# A stream that stays open but delivers nothing: the proof-of-life read finds the change. The
# silence allowed is PQROUTE_WATCH_CHECK_MS, 2 s here: the bound scales with it, and waiting out the
# default 12 s would prove nothing more (test_settings checks that default).
CHECK_MS=2000
ctl "mode?watch=ok"
PQROUTE_WATCH_CHECK_MS=$CHECK_MS agent_start >/dev/null
w0=$(fake_stat watch)
ctl "mode?watch=silent"
# the ok stream ends; the agent watches again, and every stream from now on is silent
check "silent: the agent opened a silent stream" wait_for 20 fake_stat_above watch "$w0"
t0=$(ms)
ctl "leader?name=n2"
wait_for 25 sh -c "\"$B/pqroute\" status 2>/dev/null | grep -q 'leader n2'"
dt=$(( $(ms) - t0 ))
# the stated bound (README): PQROUTE_WATCH_CHECK_MS of silence, a serializable read, a second one
# 1 s later, then the new read: the check interval + 3 s (15 s with the default 12 s)
bound=$((CHECK_MS + 3000))
ok $([ $dt -lt $bound ]; echo $?) "a silent stream: the change is found by the lazy reads within the stated bound of PQROUTE_WATCH_CHECK_MS + 3 s, $bound ms (${dt} ms)"
check "silent: said so" log_has 'watch stalled'
ok $([ "$(fake_stat range_serializable)" -ge 2 ] && [ "$(fake_stat range_serializable)" = "$(fake_stat range_keys_only)" ]; echo $?) \
    "silent: found by serializable keys-only reads ($(fake_stat range_serializable) of $(fake_stat range_keys_only))"
agent_stop

# Authentication: a token, and a new one when etcd drops it.
ctl "mode?watch=ok"
ctl "auth?on=1"
printf 'pw\n' >"$tmp/pw"
chmod 0600 "$tmp/pw"
export PQROUTE_ETCD_USER=patroni-reader PQROUTE_ETCD_PASSWORD_FILE=$tmp/pw
check "auth: the agent authenticates and watches" agent_start
a0=$(fake_stat auth)
ctl expire
ctl "leader?name=n1"
# the next proof-of-life read is refused: the agent authenticates again, and goes on
renewed() { fake_stat_above auth "$a0" && [ "$(leader_now)" = n1 ]; }
wait_for 10 renewed
auths=$(fake_stat auth)
ok $([ "$a0" -ge 1 ] && [ "$auths" -gt "$a0" ]; echo $?) "auth: a dropped token is replaced ($a0 -> $auths authentications)"
like "$(leader_now)" '^n1$' "auth: the view follows after the new token"
agent_stop
chmod 0644 "$tmp/pw"
"$B/pqroute" status >"$tmp/status.out" 2>&1
like "$(cat "$tmp/status.out")" 'chmod 0600' "a password file others can read is refused with the reason"
printf 'wrong\n' >"$tmp/pw"; chmod 0600 "$tmp/pw"
"$B/pqroute" status >"$tmp/status.out" 2>&1
like "$(cat "$tmp/status.out")" 'authentication failed' "a wrong password: etcd's reason"
ctl "auth?on=0"
unset PQROUTE_ETCD_USER PQROUTE_ETCD_PASSWORD_FILE

# Endpoint failover: the first etcd endpoint refuses, or dies under the watch. The second stand-in
# has a shorter history than the first (a rebuilt etcd behind the next address): the resumed watch
# would never deliver, and the proof-of-life read notices that the store went back.
FAKE2=127.0.0.40:12379
check "fake etcd $FAKE2 started" start_server "$tmp/fake2.out" python3 "$ROOT/tests/tools/fake-etcd.py" $FAKE2
ctl2() { curl -fsS "http://$FAKE2/ctl/$1" >/dev/null; }
ctl "leader?name=n1"; ctl2 "leader?name=n1"
out=$(PQROUTE_ETCD=http://127.0.0.1:1,http://$FAKE2 "$B/pqroute" status 2>&1)
like "$out" "view from etcd read http://$FAKE2" "the first endpoint refuses: the next one answers"
export PQROUTE_ETCD=http://$FAKE,http://$FAKE2
agent_start >/dev/null
like "$("$B/pqroute" status 2>&1 | grep 'view from')" "etcd watch http://$FAKE," "the agent watches the first endpoint"
kill $fake_pid; wait $fake_pid 2>/dev/null
ctl2 "leader?name=n2"
check "the first endpoint dies under the watch: the agent goes to the next one and sees the change" \
    wait_for 20 sh -c "\"$B/pqroute\" status 2>/dev/null | grep -q 'etcd watch http://$FAKE2.*leader n2'"
check "and said why (the store's revision went back)" log_has "revision \\([0-9]+\\) is behind the watch's"
agent_stop
done_testing
