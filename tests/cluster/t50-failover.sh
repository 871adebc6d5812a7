# A switchover and a crash of the leader (kill -9 of Patroni and the postmaster), with writers
# running through the shim: new RW connections reach the new leader once it accepts writes, never
# a replica; PQreset on an old connection reaches the new leader; threads connecting at once are safe.
# Non-blocking writers of every kind (lib-nb.sh, issue 29) run through the same two events.
. "$(dirname "$0")/lib-cluster.sh"
. "$(dirname "$0")/lib-nb.sh"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -n "${NB_KEEP:-}" ] && cp -r "$tmp" "$NB_KEEP"; rm -rf "$tmp"' EXIT
DIRECT="host=127.0.0.11,127.0.0.12,127.0.0.13 target_session_attrs=read-write connect_timeout=1"

first_ok_on() { # file epoch_ms ip -> epoch ms of the first write after it that landed on ip
    awk -v t="$2" -v ip="server=$3:" '$1 > t && $2 == "OK" && index($0, ip) && !/write=FAIL/ {print $1; exit}' "$1"
}
check_writer() { # file label
    local bad
    # on a replica: the server said so, or refused the write as read-only; a write the old leader's
    # shutdown ended (57P01, or the connection lost) is reported, not counted as one
    bad=$(grep -c '^[0-9]* OK .*\(recovery=t\|write=FAIL sqlstate=25006\)' "$1")
    ok $([ "$bad" = 0 ]; echo $?) "$2: no write landed on a replica ($(grep -c ' OK ' "$1") OK, $(grep -c ' FAIL ' "$1") failed, $(grep ' OK .*recovery=f' "$1" | grep 'write=FAIL' | grep -vc 'sqlstate=25006') ended by the server)"
    grep ' FAIL ' "$1" | head -3 | sed 's/^/# failed: /'
    like "$(tail -3 "$1")" "OK .*server=$(leader_ip):.*recovery=f" "$2: writes end up on the new leader"
}

# Writers run until the test has seen what it needs (no fixed duration: a slow switchover or a
# crash's TTL would outlast it), then are stopped.
has_ok() { grep -q "^[0-9]* OK " "$1"; }
landed_on() { # file ip n: n writes on ip
    [ "$(grep -c "^[0-9]* OK .*server=$2:.*recovery=f" "$1")" -ge "$3" ] && ! grep "server=$2:" "$1" | tail -1 | grep -q write=FAIL
}
# The path: the shim's first write on the new leader went there directly, not through the proxy.
first_direct() { # file epoch ip
    awk -v t="$2" -v ip="server=$3:" '$1 > t && $2 == "OK" && index($0, ip) && !/write=FAIL/ {print; exit}' "$1" | grep -vq "client=$PROXY"
}

# ---- switchover ----
old=$(leader_ip)
LD_PRELOAD=$PRELOAD "$CLIENT" reset "$RW" "$tmp/go" >"$tmp/reset" 2>&1 &
LD_PRELOAD=$PRELOAD "$CLIENT" writer 120 100 "$RW application_name=shim" >"$tmp/sw-shim" 2>&1 &
w1=$!
"$CLIENT" writer 120 50 "$DIRECT" >"$tmp/sw-direct" 2>&1 &
w2=$!
LD_PRELOAD=$PRELOAD "$CLIENT" threads 16 25 "$RW" >"$tmp/threads" 2>&1 &
threads_pid=$!
nb_start sw
wait_for 30 has_ok "$tmp/sw-shim" && wait_for 30 has_ok "$tmp/sw-direct"
t_event=$(ms)
"$CL" switchover
wait_leader_writable 30
new=$(leader_ip)
ok $([ "$new" != "$old" ]; echo $?) "switchover: leader moved from $old to $new"
wait_for 60 landed_on "$tmp/sw-shim" "$new" 3 && wait_for 60 landed_on "$tmp/sw-direct" "$new" 1
wait_for 60 nb_landed sw "$new"
touch "$tmp/go"
kill $w1 $w2 2>/dev/null
nb_stop
wait
nb_check sw switchover "$t_event" "$new" "$tmp/sw-direct"
check_writer "$tmp/sw-shim" "switchover"
d=$(first_ok_on "$tmp/sw-direct" "$t_event" "$new"); s=$(first_ok_on "$tmp/sw-shim" "$t_event" "$new")
diag "switchover: first direct write on the new leader $((d - t_event)) ms after it began, first through the shim $((s - t_event)) ms"
ok $([ -n "$s" ] && [ -n "$d" ] && [ $((s - d)) -le 3000 ] && first_direct "$tmp/sw-shim" "$t_event" "$new"; echo $?) \
    "switchover: shim writes reach the new leader directly, right after its first direct write ($((s - d)) ms; bound 3 s)"
like "$(sed -n 2p "$tmp/reset")" "OK .*server=$new:.*recovery=f" "PQreset on a connection to the old leader reaches the new one"
like "$(cat "$tmp/threads")" 'threads=16 ok=[1-9][0-9]* fail=[0-9]+ replica=0' "16 threads connecting through the switchover: none on a replica ($(cat "$tmp/threads"))"

# ---- crash ----
"$CL" wait 60 >/dev/null
old_name=$("$CL" leader)
old=$(leader_ip)
LD_PRELOAD=$PRELOAD "$CLIENT" writer 180 100 "$RW application_name=shim" >"$tmp/kill-shim" 2>&1 &
w1=$!
"$CLIENT" writer 180 50 "$DIRECT" >"$tmp/kill-direct" 2>&1 &
w2=$!
nb_start kill
wait_for 30 has_ok "$tmp/kill-shim" && wait_for 30 has_ok "$tmp/kill-direct"
t_event=$(ms)
"$CL" kill-leader >/dev/null
wait_leader_writable 40
new=$(leader_ip)
ok $([ "$new" != "$old" ]; echo $?) "crash: leader moved from $old to $new"
wait_for 60 landed_on "$tmp/kill-shim" "$new" 3 && wait_for 60 landed_on "$tmp/kill-direct" "$new" 1
wait_for 60 nb_landed kill "$new"
kill $w1 $w2 2>/dev/null
nb_stop
wait
nb_check kill crash "$t_event" "$new" "$tmp/kill-direct"
check_writer "$tmp/kill-shim" "crash"
d=$(first_ok_on "$tmp/kill-direct" "$t_event" "$new"); s=$(first_ok_on "$tmp/kill-shim" "$t_event" "$new")
diag "crash: first direct write on the new leader $((d - t_event)) ms after the kill, first through the shim $((s - t_event)) ms"
ok $([ -n "$s" ] && [ -n "$d" ] && [ $((s - d)) -le 3000 ] && first_direct "$tmp/kill-shim" "$t_event" "$new"; echo $?) \
    "crash: shim writes resume directly on the new leader right after its first direct write ($((s - d)) ms; bound 3 s)"
"$CL" restart-node "$old_name"
"$CL" wait 120 >/dev/null
ok $? "crashed node rejoins"
done_testing
