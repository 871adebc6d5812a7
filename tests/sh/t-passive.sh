# Loaded is not enabled: processes that never route are untouched (no thread, no file, no output).
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PQROUTE_PATRONI=http://127.0.0.1:9 PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp/cache PQROUTE_LOG=debug
# Every clone(2) over the program's whole life, traced (the shim is preloaded into the program, not
# into strace): "no thread" is no clone with CLONE_THREAD, whenever it would have come.
traced() { # tracefile command...
    local f=$1
    shift
    strace -f -qq -e trace=clone,clone3 -E LD_PRELOAD="$PRELOAD" -o "$f" "$@"
}
threads() { grep -c 'CLONE_THREAD' "$1"; }

traced "$tmp/clones1" sleep 2 2>"$tmp/err"
ok $([ -e "$tmp/clones1" ] && [ "$(threads "$tmp/clones1")" = 0 ]; echo $?) \
    "a program without libpq: no thread started ($(threads "$tmp/clones1") clone(CLONE_THREAD) in its life)"
ok $([ ! -s "$tmp/err" ]; echo $?) "a program without libpq: no output"
ok $([ ! -e "$tmp/cache" ]; echo $?) "a program without libpq: no cache directory"

out=$(LD_PRELOAD=$PRELOAD bash -c 'echo hello' 2>&1)
ok $([ "$out" = hello ]; echo $?) "a shell under the shim behaves as before"

# A libpq program whose connection is not aimed at a front door: passed through, no thread.
traced "$tmp/clones2" "$CLIENT" hold 2 "host=127.0.0.1 port=2 connect_timeout=2" >"$tmp/out" 2>&1
ok $([ -e "$tmp/clones2" ] && [ "$(threads "$tmp/clones2")" = 0 ]; echo $?) \
    "pass-through connect: no refresher thread ($(threads "$tmp/clones2") clone(CLONE_THREAD) in its life)"
like "$(cat "$tmp/out")" 'passed through: 127.0.0.1:2 is not a configured front door' "pass-through is explained at debug level"
like "$(cat "$tmp/out")" 'FAIL .*(refused|127\.0\.0\.1)' "pass-through error is libpq's own"
ok $([ -z "$(ls "$tmp"/cache/*.json 2>/dev/null)" ]; echo $?) "pass-through: no topology cache file (counters only)"
# (the control: the same trace does see the refresher of a connect aimed at the front door)
PQROUTE_CACHE_DIR=$tmp/cache-control traced "$tmp/clones3" "$CLIENT" connectdb "host=127.0.0.1 port=1 connect_timeout=2" >/dev/null 2>&1
ok $([ "$(threads "$tmp/clones3")" -ge 1 ]; echo $?) \
    "control: a routed connect's refresher is seen by that trace ($(threads "$tmp/clones3") clone(CLONE_THREAD))"

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
