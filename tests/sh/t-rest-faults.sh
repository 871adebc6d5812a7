# Patroni's REST API misbehaving: every fault gets a clear message and the safe behaviour (the
# front door), within the REST timeout, never a hang or a crash.
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
fake_pid=
cleanup() { [ -n "$fake_pid" ] && kill $fake_pid 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
FAKE=127.0.0.31:18008
export PQROUTE_PATRONI=http://$FAKE PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp/cache \
       PQROUTE_REST_TIMEOUT_MS=400 PQROUTE_LOG=info
DOOR="host=127.0.0.1 port=1 user=x dbname=x connect_timeout=2"

start_fake() {
    [ -n "$fake_pid" ] && kill $fake_pid 2>/dev/null && wait $fake_pid 2>/dev/null
    rm -rf "$tmp/cache"
    python3 "$ROOT/tests/tools/fake-patroni.py" $FAKE "$@" >"$tmp/fake.out" 2>&1 &
    fake_pid=$!
    for _ in $(seq 100); do grep -q ready "$tmp/fake.out" 2>/dev/null && return 0; sleep 0.1; done
    diag "fake Patroni ($*) not ready after 10 s: $(cat "$tmp/fake.out")"
    return 1
}

for mode in 500 garbage html truncated huge redirect slow hang noaccept; do
    start_fake $mode "$ROOT/tests/fixtures/patroni-3.0.2/cluster-healthy.json"
    t0=$(ms)
    out=$(shim connectdb "$DOOR")
    dt=$(( $(ms) - t0 ))
    like "$out" "libpqroute: warn: cluster env: no usable answer from Patroni \\(http://$FAKE/cluster: [^)]+" \
        "$mode: one warning with the reason ($(grep -o 'cluster: [^;)]*' <<<"$out" | head -1))"
    like "$out" 'passed through rw: cluster env, no fresh Patroni view' "$mode: the front door alone"
    like "$out" 'FAIL .* port 1 failed' "$mode: libpq's own error from the front door"
    # 400 ms of REST timeout and a refused front door: well under the slow fake's 5 s, or a hang's.
    ok $([ "$dt" -lt 3000 ]; echo $?) "$mode: bounded by the REST timeout (${dt} ms, timeout 400 ms)"
done

# The REST API accepts and never answers: an event-loop client's PQconnectStart must not wait. A
# REST timeout of 10 s: waiting for the answer would cost that; not waiting, a few ms.
start_fake hang "$ROOT/tests/fixtures/patroni-3.0.2/cluster-healthy.json"
t0=$(ms)
out=$(PQROUTE_REST_TIMEOUT_MS=10000 shim start "$DOOR")
dt=$(( $(ms) - t0 ))
like "$out" 'passed through rw: cluster env, no fresh Patroni view' "PQconnectStart with the REST API hanging: front door at once"
ok $([ "$dt" -lt 2000 ]; echo $?) "PQconnectStart did not wait for the REST API (${dt} ms, timeout 10000 ms)"

# Unreachable REST host (nothing listening) and an unresolvable one.
for url in http://127.0.0.32:18008 http://no-such-host.invalid:8008; do
    t0=$(ms)
    out=$(PQROUTE_PATRONI=$url shim connectdb "$DOOR")
    dt=$(( $(ms) - t0 ))
    like "$out" 'no usable answer from Patroni' "$url: warned"
    ok $([ "$dt" -lt 2500 ]; echo $?) "$url: bounded (${dt} ms)"
done

# A good answer whose members are all down: routed, fails everywhere, one refresh, one retry. The
# captured members ran on 127.0.0.1:15432-15434, which a developer's own server may hold: moved to
# ports nothing listens on.
sed -E 's/"127\.0\.0\.1"/"127.0.0.47"/g; s/("port": *)1543([2-4])/\1\2/g' \
    "$ROOT/tests/fixtures/patroni-3.0.2/cluster-healthy.json" >"$tmp/down.json"
start_fake ok "$tmp/down.json"
out=$(shim connectdb "$DOOR")
like "$out" 'routed rw: cluster env, front door 127.0.0.1:1, candidates 127.0.0.47:[234]' "members of a good view are tried first"
ok $([ "$(grep -c 'retrying rw' <<<"$out")" = 1 ]; echo $?) "failed everywhere: exactly one retry"
like "$out" 'FAIL' "and the application sees libpq's failure"
ok $([ "$(grep -c '^libpqroute: warn' <<<"$out")" = 0 ]; echo $?) "no warning for a healthy REST API"

# Two members claiming leadership: both are tried, the newest timeline first.
cat >"$tmp/two.json" <<'J'
{"members":[{"name":"a","role":"leader","state":"running","host":"127.0.0.41","port":5432,"timeline":3},
            {"name":"b","role":"leader","state":"running","host":"127.0.0.42","port":5432,"timeline":4}]}
J
start_fake ok "$tmp/two.json"
out=$(shim connectdb "$DOOR")
like "$out" 'candidates 127.0.0.42:5432\(b\),127.0.0.41:5432\(a\)' "two leaders: newest timeline first, both tried"

# Member hosts that try to inject parameters are never used.
cat >"$tmp/evil.json" <<'J'
{"members":[{"name":"x","role":"leader","state":"running","host":"127.0.0.1 port=9 sslmode=disable","port":5432,"timeline":3},
            {"name":"y","role":"replica","state":"running","host":"a'b\"c","port":5432,"timeline":3,"lag":0}]}
J
start_fake ok "$tmp/evil.json"
out=$(shim connectdb "$DOOR")
like "$out" 'member x \(host "127.0.0.1 port=9 sslmode=disable"\) is not used' "host with key=value text: not used, warned"
like "$out" 'passed through rw: .*no eligible member' "no usable member: the front door alone"

# Allow-list: a member outside it is ignored.
start_fake ok "$tmp/down.json"
out=$(PQROUTE_ALLOW=10.0.0.0/8 shim connectdb "$DOOR")
like "$out" 'outside PQROUTE_ALLOW' "members outside PQROUTE_ALLOW are not used"
unlike "$out" 'routed rw' "and nothing is routed to them"

# The shared cache file is private and reused by the next process.
start_fake ok "$tmp/down.json"
shim connectdb "$DOOR" >/dev/null
f=$(ls "$tmp"/cache/*.json 2>/dev/null | head -1)
ok $([ -n "$f" ] && [ "$(stat -c %a "$f")" = 600 ] && [ "$(stat -c %a "$tmp/cache")" = 700 ]; echo $?) "cache file 0600 in a 0700 directory"
kill $fake_pid; wait $fake_pid 2>/dev/null; fake_pid=
out=$(shim connectdb "$DOOR")
like "$out" "routed rw: .*view [0-9.]+s old from http://$FAKE" "a fresh process uses the shared cache while the REST API is gone"
chmod 0666 "$f"
out=$(shim connectdb "$DOOR")
like "$out" 'ignoring cache file .*writable by others' "a cache file writable by others is ignored"
unlike "$out" 'routed rw' "and not used"
done_testing
