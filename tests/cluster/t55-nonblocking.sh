# Non-blocking connects whose first candidate refuses (issue 29): the socket an event loop
# registered once stays the connection's while libpq moves to the next host. (The switchover and
# the crash with non-blocking writers of every kind: t50-failover.sh, lib-nb.sh.)
. "$(dirname "$0")/lib-cluster.sh"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
PY=/usr/bin/python3

# ---- the first candidate refuses: the socket libpq had is closed, the next host gets another ----
# A view whose leader is an address where nothing listens (refused at once), the real leader
# listed as a replica: each client connects while libpq walks from the refusing member to the
# next. Without the one-socket rule the epoll loop's EPOLL_CTL_MOD fails (ENOENT) and asyncio
# raises FileNotFoundError: a failed connect every time.
leader=$(leader_ip)
ghost_view "$tmp/ghost.json" "$leader"
check "a stand-in Patroni serves that view" start_server "$tmp/ghost.out" python3 "$ROOT/tests/tools/fake-patroni.py" 127.0.0.39:18008 ok "$tmp/ghost.json"
ghost() { env -u PQROUTE_ETCD PQROUTE_PATRONI=http://127.0.0.39:18008 PQROUTE_CACHE_DIR="$tmp/ghost-cache" LD_PRELOAD=$PRELOAD timeout 60 "$@" 2>&1; }
out=$(ghost "$CLIENT" epoll "$RW")
like "$out" "OK .*server=$leader:.*recovery=f maxcall=" "first member refuses: an epoll loop that registered the socket once lands on the leader"
out=$(ghost "$PY" "$ROOT/tests/tools/nb-writer.py" psycopg2-async 0.5 100 "$RW")
ok $([ "$(grep -c '^[0-9]* OK .*recovery=f' <<<"$out")" -ge 2 ] && ! grep -q FAIL <<<"$out"; echo $?) \
    "first member refuses: psycopg2's async mode under asyncio (socket taken once) connects every time"
grep FAIL <<<"$out" | head -2 | sed 's/^/#   /'
stop_servers

done_testing
