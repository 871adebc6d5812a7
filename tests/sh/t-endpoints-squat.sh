# Two ways another party could redirect a host's libpqroute (issue 20, rows 7 and 9):
#  7  a member advertising a REST endpoint on another host (any node writes its own api_url): it is
#     never asked, whatever the member says; one on the member's own host is.
#  9  another local user making /tmp/libpqroute-<uid> first: the victim's processes and its agent
#     use ~/.cache/libpqroute instead, and go on sharing.
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
user=
cleanup() {
    stop_servers
    # the victim's processes first: userdel refuses a user that still runs one
    [ -n "$user" ] && { pkill -KILL -u "$user" 2>/dev/null; sleep 0.2; userdel -r "$user" >/dev/null 2>&1; }
    rm -rf "$tmp" "/tmp/libpqroute-${uid:-x}"
}
trap cleanup EXIT
chmod 755 "$tmp"

# ---- 7 ----
SEED=127.0.0.94:18008 ELSEWHERE=127.0.0.95:18008
cat >"$tmp/view.json" <<J
{"members": [
 {"name": "m1", "role": "leader", "state": "running", "host": "127.0.0.94", "port": 5432, "timeline": 1,
  "api_url": "http://127.0.0.94:18008/patroni"},
 {"name": "m2", "role": "replica", "state": "streaming", "host": "127.0.0.96", "port": 5432, "timeline": 1, "lag": 0,
  "api_url": "http://$ELSEWHERE/patroni"}]}
J
check "the seed started" start_server "$tmp/seed.out" env FAKE_LOG="$tmp/seed.log" python3 "$ROOT/tests/tools/fake-patroni.py" $SEED ok "$tmp/view.json"
check "the endpoint elsewhere started" start_server "$tmp/else.out" env FAKE_LOG="$tmp/else.log" python3 "$ROOT/tests/tools/fake-patroni.py" $ELSEWHERE ok "$tmp/view.json"
: >"$tmp/seed.log"; : >"$tmp/else.log"
export PQROUTE_PATRONI=http://$SEED PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp/c7 PQROUTE_REFRESH_MS=200 PQROUTE_LOG=debug
unset PQROUTE_ETCD PQROUTE_CONSUL PQROUTE_CONFIG
# The agent (as a long-lived process's refresher) learns the members from the seed, then polls the
# seed and the endpoints the members advertise, every interval.
"$B/pqroute" agent >"$tmp/agent7.log" 2>&1 &
agent=$!
# Waited for by its debug line: three polls that considered m2's endpoint (so the count below is not
# of polls made before the members were known).
not_asked() { [ "$(grep -c 'member m2 advertises a REST endpoint elsewhere' "$tmp/agent7.log")" -ge 3 ]; }
wait_for 30 not_asked
kill $agent 2>/dev/null; wait $agent 2>/dev/null
seed=$(wc -l <"$tmp/seed.log") elsewhere=$(wc -l <"$tmp/else.log")
check "the agent considered m2's endpoint in three polls and said why it did not ask it" not_asked
ok $([ "$seed" -ge 3 ] && [ "$elsewhere" = 0 ]; echo $?) \
    "a member's api_url on another host is never asked ($elsewhere requests there; $seed requests to the seed)"


# ---- 9 ----
if [ "$(id -u)" != 0 ] || ! command -v useradd >/dev/null; then
    diag "row 9 needs root and useradd: skipped"
    done_testing
    exit
fi
user=pqrvictim$$
useradd --create-home --home-dir "$tmp/home" --shell /bin/sh "$user" >/dev/null 2>&1
uid=$(id -u "$user")
install -d -m 0700 -o nobody "/tmp/libpqroute-$uid" # the squatter's, made first
as_victim() { setpriv --reuid="$user" --regid="$user" --init-groups env -u XDG_RUNTIME_DIR -u PQROUTE_CACHE_DIR \
    HOME="$tmp/home" PQROUTE_PATRONI=http://$SEED PQROUTE_RW=127.0.0.1:1 PQROUTE_LOG=warn "$@"; }
out=$(as_victim "$B/pqroute" status 2>&1)
like "$out" "/tmp/libpqroute-$uid is not a directory of yours .*using $tmp/home/.cache/libpqroute" \
    "squatted /tmp/libpqroute-<uid>: one warning, the home directory's cache instead"
ok $([ -n "$(ls "$tmp/home/.cache/libpqroute/"*.json 2>/dev/null)" ]; echo $?) "the view is shared there"
as_victim "$B/pqroute" agent >"$tmp/agent.log" 2>&1 &
agent=$!
wait_for 10 grep -q 'serving the shared cache' "$tmp/agent.log"
ok $(kill -0 $agent 2>/dev/null; echo $?) "the victim's agent runs (it exited with 3 before)"
# $! is the shell that runs as_victim, not the agent: stop the victim's processes themselves.
pkill -TERM -u "$user" 2>/dev/null
kill $agent 2>/dev/null; wait $agent 2>/dev/null
ok $(wait_for 10 sh -c "! pgrep -u $user >/dev/null"; echo $?) "the victim's agent stopped: nothing of the test left running"
done_testing
