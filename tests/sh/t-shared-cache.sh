# A host agent running as its own user serves the applications of other users (issue 25): they
# read its cache directory (owned by the agent's user, PQROUTE_CACHE_OWNER, mode 0755) and write
# nothing there. No other ordinary user can put a view in front of them: a file of another user in
# that directory, or a directory another user made at the configured path, is refused with one
# line, and the process asks Patroni itself (the true leader, never the forged one).
. "$(dirname "$0")/../lib.sh"
if [ "$(id -u)" != 0 ] || ! command -v useradd >/dev/null; then
    echo "1..0 # SKIP needs root and useradd"
    exit 0
fi
tmp=$(mktemp -d)
agent_user=pqrag$$ app=pqrapp$$ other=pqrother$$
cleanup() {
    stop_servers
    for u in $agent_user $app $other; do
        id "$u" >/dev/null 2>&1 || continue
        pkill -KILL -u "$u" 2>/dev/null
        sleep 0.2
        userdel "$u" >/dev/null 2>&1
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
chmod 755 "$tmp"
for u in $agent_user $app $other; do useradd --no-create-home --home-dir /nonexistent --shell /bin/sh "$u"; done

SEED=127.0.0.94:18008
cat >"$tmp/view.json" <<J
{"members": [
 {"name": "m1", "role": "leader", "state": "running", "host": "127.0.0.94", "port": 5432, "timeline": 1,
  "api_url": "http://127.0.0.94:18008/patroni"},
 {"name": "m2", "role": "replica", "state": "streaming", "host": "127.0.0.96", "port": 5432, "timeline": 1, "lag": 0}]}
J
check "a Patroni answering with leader 127.0.0.94 started" start_server "$tmp/seed.out" \
    python3 "$ROOT/tests/tools/fake-patroni.py" $SEED ok "$tmp/view.json"
# What systemd's RuntimeDirectory= makes for the agent: root creates it, the agent's user owns it.
install -d -m 0755 -o $agent_user -g $agent_user "$tmp/run"
as() { # user command...: the user's own environment, nothing of ours
    local u=$1
    shift
    setpriv --reuid="$u" --regid="$u" --init-groups env -i PATH=/usr/bin:/bin HOME=/nonexistent \
        PQROUTE_PATRONI=http://$SEED PQROUTE_RW=127.0.0.1:1 PQROUTE_REFRESH_MS=200 "$@"
}

as $agent_user PQROUTE_CACHE_DIR="$tmp/run" "$B/pqroute" agent >"$tmp/agent.log" 2>&1 &
check "the agent serves its directory" wait_for 10 grep -q "serving 1 cluster" "$tmp/agent.log"
json=$(wait_for 10 sh -c "ls $tmp/run/*.json" >/dev/null && ls "$tmp/run/"*.json)
ok $([ "$(stat -c %a "$json")" = 644 ]; echo $?) "its view file is readable by the applications (mode $(stat -c %a "$json"))"

out=$(as $app PQROUTE_CACHE_DIR="$tmp/run" PQROUTE_CACHE_OWNER=$agent_user "$B/pqroute" status 2>&1)
like "$out" "by pqroute agent [0-9]+" "another user's process uses the agent's view"
unlike "$out" "libpqroute:" "... without a warning"
ok $([ -z "$(find "$tmp/run" ! -user $agent_user)" ]; echo $?) "... and wrote nothing in its directory"
out=$(as $other PQROUTE_CACHE_DIR="$tmp/run" PQROUTE_CACHE_OWNER=$agent_user "$B/pqroute" status 2>&1)
like "$out" "by pqroute agent [0-9]+" "a second user's process uses it too"
out=$(as $app PQROUTE_CACHE_DIR="$tmp/run" "$B/pqroute" status 2>&1)
like "$out" "^libpqroute: warn: cache directory $tmp/run is not a directory of yours closed to others" \
    "without PQROUTE_CACHE_OWNER the agent's directory is not trusted (one line)"

# A stopped agent keeps its lock: the readers see it (F_GETLK, a lock they cannot take) and wait
# for its file, as processes of the agent's own user do; with no agent at all they ask at once.
agent_pid=$(pgrep -u $agent_user -x pqroute)
kill -STOP $agent_pid
sleep 0.5
out=$(as $app PQROUTE_CACHE_DIR="$tmp/run" PQROUTE_CACHE_OWNER=$agent_user PQROUTE_LOG=debug "$B/pqroute" status 2>&1)
like "$out" "another process refreshes it" "a reader sees the stopped agent's lock and waits for its file"
kill -CONT $agent_pid
pkill -TERM -u $agent_user
wait_for 10 sh -c "! pgrep -u $agent_user >/dev/null"
sleep 0.5
out=$(as $app PQROUTE_CACHE_DIR="$tmp/run" PQROUTE_CACHE_OWNER=$agent_user PQROUTE_LOG=debug "$B/pqroute" status 2>&1)
like "$out" "cannot lock it" "without an agent a reader asks for itself at once"
# A view naming 127.0.0.66 the leader, as another ordinary user's file in the agent's directory
# (what a directory that was writable for a moment could leave behind).
sed 's/127\.0\.0\.94/127.0.0.66/g' "$json" >"$json.new"
chown $other "$json.new" && chmod 644 "$json.new" && mv "$json.new" "$json"
out=$(as $app PQROUTE_CACHE_DIR="$tmp/run" PQROUTE_CACHE_OWNER=$agent_user PQROUTE_LOG=warn "$B/pqroute" status 2>&1)
ok $([ "$(grep -c '^libpqroute:' <<<"$out")" = 1 ]; echo $?) "another user's file in the agent's directory: one line"
like "$out" "^libpqroute: warn: ignoring cache file $json: not owned by the directory's owner" "... saying why"
like "$out" "127\.0\.0\.94" "... and the process asked Patroni itself: the true leader"
unlike "$out" "127\.0\.0\.66" "... never the forged one"

# The configured path made by another user first (in a world-writable place).
install -d -m 0755 -o $other "$tmp/squat"
cp "$json" "$tmp/squat/" && chown -R $other "$tmp/squat"
out=$(as $app PQROUTE_CACHE_DIR="$tmp/squat" PQROUTE_CACHE_OWNER=$agent_user "$B/pqroute" status 2>&1)
ok $([ "$(grep -c '^libpqroute:' <<<"$out")" = 1 ]; echo $?) "a directory another user made at that path: one line"
like "$out" "^libpqroute: warn: cache directory $tmp/squat is not a directory of yours closed to others" "... saying why"
like "$out" "127\.0\.0\.94" "... and the true leader, asked for itself"
unlike "$out" "127\.0\.0\.66" "... never the forged one"
done_testing
