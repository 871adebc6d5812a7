# Non-blocking connects through a switchover and a crash (issue 29): writers that open a new
# connection for every write the way event-loop clients connect — a C epoll loop that registers
# the socket once and only modifies it, psycopg 3 (its own PQconnectPoll loop), psycopg 3 under
# asyncio, psycopg2's async mode under asyncio with the socket taken once, ruby-pg's PG.connect,
# PHP's PGSQL_CONNECT_ASYNC with pg_connect_poll and the socket taken once — each through the shim,
# beside a direct libpq writer. Each must land on the new leader directly, soon after the direct
# one, with no write on a replica, no failed connect and no connect past its budget.
. "$(dirname "$0")/lib-cluster.sh"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -n "$NB_KEEP" ] && cp -r "$tmp" "$NB_KEEP"; rm -rf "$tmp"' EXIT
DIRECT="host=127.0.0.11,127.0.0.12,127.0.0.13 target_session_attrs=read-write connect_timeout=1"
PY=/usr/bin/python3
WRITERS="epoll psycopg psycopg-async psycopg2-async ruby-pg php-async"
BUDGET_MS=${NB_BUDGET_MS:-6000} # generous: connect_timeout=3 is 3 s per host for libpq

first_ok_on() { # file epoch_ms ip -> epoch ms of the first write after it that landed on ip
    awk -v t="$2" -v ip="server=$3:" '$1 > t && $2 == "OK" && index($0, ip) && !/write=FAIL/ {print $1; exit}' "$1"
}
landed_on() { # file ip n: n writes on ip, the last one complete
    [ "$(grep -c "^[0-9]* OK .*server=$2:.*recovery=f" "$1")" -ge "$3" ] && ! grep "server=$2:" "$1" | tail -1 | grep -q write=FAIL
}
has_ok() { grep -q "^[0-9]* OK " "$1"; }
start_writers() { # tag
    local w
    for w in $WRITERS; do
        if [ "$w" = epoll ]; then
            PQROUTE_LOG=info LD_PRELOAD=$PRELOAD "$CLIENT" epollwriter 180 100 "$RW application_name=nb-$w" >"$tmp/$1-$w" 2>&1 &
        elif [ "$w" = ruby-pg ]; then
            PQROUTE_LOG=info LD_PRELOAD=$PRELOAD /usr/bin/ruby "$ROOT/tests/tools/nb-writer.rb" 180 100 "$RW application_name=nb-$w" >"$tmp/$1-$w" 2>&1 &
        elif [ "$w" = php-async ]; then
            PQROUTE_LOG=info LD_PRELOAD=$PRELOAD /usr/bin/php "$ROOT/tests/tools/nb-writer.php" 180 100 "$RW application_name=nb-$w" >"$tmp/$1-$w" 2>&1 &
        else
            PQROUTE_LOG=info LD_PRELOAD=$PRELOAD "$PY" "$ROOT/tests/tools/nb-writer.py" "$w" 180 100 "$RW application_name=nb-$w" >"$tmp/$1-$w" 2>&1 &
        fi
    done
    "$CLIENT" writer 180 50 "$DIRECT" >"$tmp/$1-direct" 2>&1 &
    for w in $WRITERS direct; do wait_for 30 has_ok "$tmp/$1-$w"; done
}
check_writers() { # tag label t_event new
    local w f d s bad fails slow
    d=$(first_ok_on "$tmp/$1-direct" "$3" "$4")
    for w in $WRITERS; do
        f=$tmp/$1-$w
        bad=$(grep -c '^[0-9]* OK .*\(recovery=t\|write=FAIL sqlstate=25006\)' "$f")
        fails=$(grep '^[0-9]* FAIL ' "$f" | grep -vc '^[0-9]* FAIL [0-9.]* query: ')
        slow=$(awk -v b="$BUDGET_MS" '$2 == "FAIL" || $2 == "OK" { if ($3 + 0 > b) n++ } END { print n + 0 }' "$f")
        s=$(first_ok_on "$f" "$3" "$4")
        ok $([ "$bad" = 0 ]; echo $?) "$2, $w: no write on a replica ($(grep -c ' OK ' "$f") OK)"
        ended=$(( $(grep -c '^[0-9]* FAIL [0-9.]* query: ' "$f") + $(grep ' OK .*recovery=f' "$f" | grep -c 'write=FAIL') ))
        if [ "$1" = sw ]; then # in a crash nothing takes writes until Patroni's TTL has passed
            ok $([ "$fails" = 0 ]; echo $?) "$2, $w: no failed connect ($fails; $ended connections or writes the server ended)"
            [ "$fails" = 0 ] || grep '^[0-9]* FAIL ' "$f" | grep -v ' query: ' | head -3 | sed 's/^/#   /'
        else
            diag "$2, $w: $fails failed connects while no leader took writes (direct writer: $(grep -c '^[0-9]* FAIL ' "$tmp/$1-direct")); $ended ended by the server"
        fi
        ok $([ "$slow" = 0 ]; echo $?) "$2, $w: no connect past its budget ($slow over $BUDGET_MS ms; longest $(awk '{ if ($3 + 0 > m) m = $3 + 0 } END { print m + 0 }' "$f") ms)"
        ok $([ -n "$s" ] && [ -n "$d" ] && [ $((s - d)) -le 3000 ] &&
            awk -v t="$3" -v ip="server=$4:" '$1 > t && $2 == "OK" && index($0, ip) && !/write=FAIL/ {print; exit}' "$f" | grep -vq "client=$PROXY"; echo $?) \
            "$2, $w: lands on the new leader directly, right after the direct writer ($((${s:-0} - ${d:-0})) ms; bound 3 s)"
        diag "$2, $w: first write on the new leader $((${s:-0} - $3)) ms after the event (direct writer: $((${d:-0} - $3)) ms)"
    done
}

# ---- the first candidate refuses: the socket libpq had is closed, the next host gets another ----
# A view whose leader is an address where nothing listens (refused at once), the real leader
# listed as a replica: each client connects while libpq walks from the refusing member to the
# next. Without the one-socket rule the epoll loop's EPOLL_CTL_MOD fails (ENOENT) and asyncio
# raises FileNotFoundError: a failed connect every time.
leader=$(leader_ip)
cat >"$tmp/ghost.json" <<J
{"members": [
 {"name": "ghost", "role": "leader", "state": "running", "host": "127.0.0.19", "port": 5432, "timeline": 1},
 {"name": "real", "role": "replica", "state": "running", "host": "$leader", "port": 5432, "timeline": 1, "lag": 0}]}
J
check "a stand-in Patroni serves that view" start_server "$tmp/ghost.out" python3 "$ROOT/tests/tools/fake-patroni.py" 127.0.0.39:18008 ok "$tmp/ghost.json"
ghost() { env -u PQROUTE_ETCD PQROUTE_PATRONI=http://127.0.0.39:18008 PQROUTE_CACHE_DIR="$tmp/ghost-cache" LD_PRELOAD=$PRELOAD timeout 60 "$@" 2>&1; }
out=$(ghost "$CLIENT" epoll "$RW")
like "$out" "OK .*server=$leader:.*recovery=f maxcall=" "first member refuses: an epoll loop that registered the socket once lands on the leader"
out=$(ghost "$PY" "$ROOT/tests/tools/nb-writer.py" psycopg2-async 0.5 100 "$RW")
ok $([ "$(grep -c '^[0-9]* OK .*recovery=f' <<<"$out")" -ge 2 ] && ! grep -q FAIL <<<"$out"; echo $?) \
    "first member refuses: psycopg2's async mode under asyncio (socket taken once) connects every time"
grep FAIL <<<"$out" | head -2 | sed 's/^/#   /'
stop_servers

# ---- switchover ----
old=$(leader_ip)
start_writers sw
t_event=$(ms)
"$CL" switchover
wait_leader_writable 30
new=$(leader_ip)
ok $([ "$new" != "$old" ]; echo $?) "switchover: leader moved from $old to $new"
for w in $WRITERS direct; do wait_for 60 landed_on "$tmp/sw-$w" "$new" 3; done
kill $(jobs -p) 2>/dev/null
wait
check_writers sw switchover "$t_event" "$new"

# ---- crash ----
"$CL" wait 60 >/dev/null
old_name=$("$CL" leader)
old=$(leader_ip)
start_writers kill
t_event=$(ms)
"$CL" kill-leader >/dev/null
wait_leader_writable 40
new=$(leader_ip)
ok $([ "$new" != "$old" ]; echo $?) "crash: leader moved from $old to $new"
for w in $WRITERS direct; do wait_for 60 landed_on "$tmp/kill-$w" "$new" 3; done
kill $(jobs -p) 2>/dev/null
wait
check_writers kill crash "$t_event" "$new"
"$CL" restart-node "$old_name"
"$CL" wait 120 >/dev/null
ok $? "crashed node rejoins"
done_testing
