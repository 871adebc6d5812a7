# Loaded is not enabled: processes that never route are untouched (no thread, no file, no output).
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; kill $pid 2>/dev/null' EXIT
export PQROUTE_PATRONI=http://127.0.0.1:9 PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp/cache PQROUTE_LOG=debug

LD_PRELOAD=$PRELOAD sleep 2 2>"$tmp/err" &
pid=$!
sleep 0.5
ok $([ "$(ls /proc/$pid/task | wc -l)" = 1 ]; echo $?) "a program without libpq: one thread"
wait $pid
ok $([ ! -s "$tmp/err" ]; echo $?) "a program without libpq: no output"
ok $([ ! -e "$tmp/cache" ]; echo $?) "a program without libpq: no cache directory"

out=$(LD_PRELOAD=$PRELOAD bash -c 'echo hello' 2>&1)
ok $([ "$out" = hello ]; echo $?) "a shell under the shim behaves as before"

# A libpq program whose connection is not aimed at a front door: passed through, no thread.
LD_PRELOAD=$PRELOAD "$CLIENT" hold 2 "host=127.0.0.1 port=2 connect_timeout=2" >"$tmp/out" 2>&1 &
pid=$!
sleep 0.7
ok $([ "$(ls /proc/$pid/task 2>/dev/null | wc -l)" -le 1 ]; echo $?) "pass-through connect: no refresher thread"
wait $pid
like "$(cat "$tmp/out")" 'passed through: 127.0.0.1:2 is not a configured front door' "pass-through is explained at debug level"
like "$(cat "$tmp/out")" 'FAIL .*(refused|127\.0\.0\.1)' "pass-through error is libpq's own"
ok $([ -z "$(ls "$tmp"/cache/*.json 2>/dev/null)" ]; echo $?) "pass-through: no topology cache file (counters only)"

# Disabled: no PQROUTE_* at all -> identical output to running without the shim.
unset PQROUTE_PATRONI PQROUTE_RW PQROUTE_LOG
a=$("$CLIENT" connectdb "host=127.0.0.1 port=2" 2>&1 | sed 's/FAIL [0-9.]*/FAIL/')
b=$(LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "host=127.0.0.1 port=2" 2>&1 | sed 's/FAIL [0-9.]*/FAIL/')
ok $([ "$a" = "$b" ]; echo $?) "not configured: same result as without the shim"

# Malformed configuration: one clear line naming the variable, then plain libpq.
out=$(PQROUTE_PATRONI=http://127.0.0.1:9 PQROUTE_RW=nope:port LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "host=127.0.0.1 port=2" 2>&1)
like "$out" '^libpqroute: error: PQROUTE_RW: expected host:port, got "nope:port"; routing disabled' "malformed PQROUTE_RW: one line naming it"
ok $([ "$(grep -c '^libpqroute' <<<"$out")" = 1 ]; echo $?) "exactly one line"
done_testing
