# The security audit's rows that need whole processes (issue 9): a setuid program, a full disk, a
# daemon that closes every fd, a slow resolver, a wall clock that jumped, a relative LD_PRELOAD and
# chdir, credentials in the REST URL, control characters in a REST answer. The rest are in
# tests/unit/test_security.c and test_settings.c.
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
mounted=
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    [ -n "$mounted" ] && umount "$mounted" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
FAKE=127.0.0.41:18008 PG=127.0.0.42:15432 DOOR=127.0.0.43:15432
CONN="host=127.0.0.43 port=15432 user=app dbname=app connect_timeout=2 sslmode=disable gssencmode=disable"

start_bg() { # readyfile command...
    local ready=$1
    shift
    "$@" >"$ready" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do grep -q ready "$ready" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
view() { # member JSON objects...
    local IFS=,
    printf '{"members": [%s]}' "$*"
}
member() { # name role host port
    printf '{"name": "%s", "role": "%s", "state": "%s", "host": "%s", "port": %s, "api_url": "http://%s/patroni", "timeline": 3}' \
        "$1" "$2" "$([ "$2" = leader ] && echo running || echo streaming)" "$3" "$4" "$FAKE"
}
view "$(member n1 leader 127.0.0.42 15432)" >"$tmp/healthy.json"
start_bg "$tmp/fake.out" env FAKE_LOG="$tmp/rest.log" python3 "$ROOT/tests/tools/fake-patroni.py" $FAKE ok "$tmp/healthy.json" || diag "fake Patroni did not start"
rest_requests() { cat "$tmp/rest.log" 2>/dev/null | wc -l; } # each request the fake Patroni answered
start_bg "$tmp/pg.out" python3 "$ROOT/tests/tools/fake-pg.py" $PG "$tmp/got-passwords" || diag "fake PostgreSQL did not start"

# The hostile caller's settings route to the fake server, which records passwords. First, as a
# baseline, an ordinary process: routed, so the password does reach the member.
echo "s3cret-root-only" >"$tmp/secret"
chmod 600 "$tmp/secret"
PQROUTE_PATRONI=http://$FAKE PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c0 \
    LD_PRELOAD=$PRELOAD "$B/tests/pqr-secret-client" "$tmp/secret" "$CONN" >/dev/null 2>&1
like "$(cat "$tmp/got-passwords" 2>/dev/null)" 's3cret-root-only' "baseline: an ordinary process under these settings is routed to the member"
rm -f "$tmp/got-passwords"

# 1. A setuid-root program run by nobody, the shim linked ahead of libpq (as /etc/ld.so.preload
#    would load it; LD_PRELOAD paths are not honoured for setuid programs).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    mkdir "$tmp/suid" "$tmp/rootonly"
    chmod 755 "$tmp/suid"
    chmod 700 "$tmp/rootonly"
    cp "$B/libpqroute-preload.so" "$B"/libpqroute.so.0 "$tmp/suid/"
    cc -std=gnu11 -o "$tmp/suid/prog" "$ROOT/tests/tools/pqr-secret-client.c" $(pkg-config --cflags libpq) \
        -Wl,--no-as-needed "$tmp/suid/libpqroute-preload.so" $(pkg-config --libs libpq) -Wl,-rpath,"$tmp/suid"
    chmod 4755 "$tmp/suid/prog"
    hostile() { setpriv --reuid=nobody --regid=nogroup --clear-groups env PQROUTE_PATRONI=http://$FAKE \
                PQROUTE_RW=$DOOR PQROUTE_LOG=debug "$@" "$tmp/suid/prog" "$tmp/secret" "$CONN" 2>&1; }
    out=$(hostile PQROUTE_CACHE_DIR=$tmp/rootonly/cache)
    if [[ $out =~ secure=1 ]]; then
        ok $([ ! -s "$tmp/got-passwords" ]; echo $?) "setuid: the root-only password never reaches the caller's server"
        ok $([ ! -e "$tmp/rootonly/cache" ]; echo $?) "setuid: no file made in the caller's PQROUTE_CACHE_DIR"
        like "$out" '^secure=1 FAIL$' "setuid: nothing said, and the connection went where libpq alone sends it ($out)"
        out=$(hostile PQROUTE_CONFIG=/etc/shadow)
        unlike "$out" 'libpqroute|shadow|root:' "setuid: PQROUTE_CONFIG=/etc/shadow is not read ($out)"
        # The library API refuses the environment the same way.
        cat >"$tmp/api.c" <<'EOC'
#include <stdio.h>
#include <libpqroute.h>
int main(void)
{
    char err[512] = "";
    pqr_router *r = pqr_router_open_env(err, sizeof err);
    printf("%s %s\n", r ? "opened" : "refused", err);
    return 0;
}
EOC
        cp "$B/libpqroute.so.0" "$tmp/suid/" 2>/dev/null
        cc -o "$tmp/suid/api" "$tmp/api.c" -I"$ROOT/libpqroute" $(pkg-config --cflags libpq) \
            "$tmp/suid/libpqroute.so.0" $(pkg-config --libs libpq) -Wl,-rpath,"$tmp/suid"
        chmod 4755 "$tmp/suid/api"
        out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups env PQROUTE_PATRONI=http://$FAKE \
              PQROUTE_RW=$DOOR "$tmp/suid/api" 2>&1)
        like "$out" '^refused .*elevated privileges' "setuid: pqr_router_open_env() refuses the environment ($out)"
    else
        ok 0 "# SKIP setuid programs do not run setuid here ($out)"
    fi
else
    ok 0 "# SKIP setuid test needs root and setpriv"
fi

# 4. A full disk under the cache directory, and counters that cannot be reserved.
if [ "$(id -u)" = 0 ] && mkdir "$tmp/full" && mount -t tmpfs -o size=16k tmpfs "$tmp/full" 2>/dev/null; then
    mounted=$tmp/full
    mkdir -m 700 "$tmp/full/cache"
    dd if=/dev/zero of="$tmp/full/filler" bs=4k count=64 2>/dev/null
    out=$(PQROUTE_PATRONI=http://$FAKE PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/full/cache \
          LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "$CONN password=x" 2>&1; echo "exit=$?")
    like "$out" 'exit=[01]$' "full tmpfs: the application is not killed by a signal"
    like "$out" 'FAIL .*password authentication failed' "full tmpfs: still routed to the member"
    ok $([ "$(grep -c 'cannot reserve space' <<<"$out")" -le 1 ]; echo $?) "full tmpfs: at most one warning about the counters"
    umount "$tmp/full" && mounted=
else
    ok 0 "# SKIP tmpfs test needs root"
fi

# 3. A daemon that closes every fd after a routed connect and reuses the numbers for its own
#    locked files: its fds and locks stay intact over several refresh periods and across fork().
mkdir "$tmp/app"
# (what the daemon's first connect alone asks Patroni, before it closes its fds)
r0=$(rest_requests)
PQROUTE_PATRONI=http://$FAKE PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c3a PQROUTE_REFRESH_MS=100 \
    LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "$CONN" >/dev/null 2>&1
r1=$(rest_requests)
out=$(PQROUTE_PATRONI=http://$FAKE PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c3 PQROUTE_REFRESH_MS=100 \
      LD_PRELOAD=$PRELOAD "$B/tests/pqr-fdclose" "$CONN" "$tmp/app" 1200 2>&1)
r2=$(rest_requests)
like "$out" 'intact$' "closed fds reused by the application: its descriptors and locks survive refreshes and fork ($(tail -1 <<<"$out"))"
# The refreshes did happen in that window (every 100 ms, and on the retries, over 1.2 s at least).
# Counted by the fake: the library's own counters stop being shared once its fds were closed.
ok $([ $(( (r2 - r1) - (r1 - r0) )) -ge 3 ]; echo $?) \
    "the refresher asked Patroni while the application held its files ($((r2 - r1)) requests; $((r1 - r0)) for a first connect alone)"

# 5. A resolver that takes 2 s: members named by DNS are left out of a view they would make late;
#    pqroute check and a first connect stay within the REST timeout plus a small margin.
view "$(member n1 leader node42.slow.test 15432)" >"$tmp/dns.json"
FAKE2=127.0.0.41:18009
start_bg "$tmp/fake2.out" python3 "$ROOT/tests/tools/fake-patroni.py" $FAKE2 ok "$tmp/dns.json"
# For the two bounds, a look-up of 10 s: waiting for it would cost that, not answering a few
# hundred ms after the REST timeout.
export SLOW_RESOLVER_MS=10000
t0=$(ms)
out=$(PQROUTE_PATRONI=http://$FAKE2 PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c5 PQROUTE_REST_TIMEOUT_MS=500 \
      LD_PRELOAD=$B/tests/slow-resolver.so "$B/pqroute" check 2>&1)
dt=$(( $(ms) - t0 ))
ok $([ "$dt" -lt 3000 ]; echo $?) "slow resolver: pqroute check within the REST timeout plus a margin (${dt} ms, timeout 500 ms, look-up 10 s)"
like "$out" 'not resolved in time' "slow resolver: the member is reported as not resolved in time"
t0=$(ms)
out=$(PQROUTE_PATRONI=http://$FAKE2 PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c5b PQROUTE_REST_TIMEOUT_MS=500 \
      LD_PRELOAD="$B/tests/slow-resolver.so $PRELOAD" "$CLIENT" connectdb "$CONN" 2>&1)
dt=$(( $(ms) - t0 ))
ok $([ "$dt" -lt 3000 ]; echo $?) "slow resolver: a first connect is bounded too (${dt} ms, look-up 10 s)"
# The look-up goes on; its answer serves the next view, which is fresh when published. A look-up of
# 2 s, and connects for 10 s.
export SLOW_RESOLVER_MS=2000
out=$(PQROUTE_PATRONI=http://$FAKE2 PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c5c PQROUTE_REST_TIMEOUT_MS=500 \
      PQROUTE_REFRESH_MS=200 PQROUTE_LOG=info LD_PRELOAD="$B/tests/slow-resolver.so $PRELOAD" \
      "$CLIENT" writer 10 300 "$CONN" 2>&1)
like "$out" 'routed rw: cluster env, front door [^,]*, candidates 127\.0\.0\.42:15432\(n1\)' \
    "slow resolver: once the answer is in, the member is routed to ($(grep -c 'routed rw' <<<"$out") routed)"
unset SLOW_RESOLVER_MS

# 6. The shared view was written by a process whose clock was an hour ahead; the clock is right
#    again: new processes do not trust it, they ask Patroni.
mkdir -m 700 "$tmp/c6"
PQROUTE_PATRONI=http://$FAKE PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c6 LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "$CONN" >/dev/null 2>&1
f=$(ls "$tmp"/c6/*.json | head -1)
future=$(( $(date +%s%3N) + 3600000 ))
sed -i "s/\"fetched_at_ms\": *[0-9]*/\"fetched_at_ms\":$future/" "$f"
out=$(PQROUTE_PATRONI=http://$FAKE PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c6 PQROUTE_LOG=debug \
      LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "$CONN" 2>&1)
like "$out" 'stamped [0-9]+ ms in the future' "clock corrected: a view stamped an hour ahead is ignored"
like "$out" 'shared cache (absent|too old), refreshing it' "clock corrected: Patroni is asked again"

# 7. LD_PRELOAD with a relative path, and an application that changes directory before its first
#    connect: the engine is never loaded from the application's current directory.
rm -f "$tmp/got-passwords"
# (a view in the shared cache first: ctypes reaches the shim through libpq's non-blocking path)
PQROUTE_PATRONI=http://$FAKE PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c7 LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "$CONN" >/dev/null 2>&1
mkdir -p "$tmp/evil/build"
printf '#include <stdio.h>\n__attribute__((constructor)) static void planted(void) { FILE *f = fopen("%s/planted-ran", "w"); if (f) fclose(f); }\n' "$tmp" >"$tmp/planted.c"
cc -shared -fPIC -o "$tmp/evil/build/libpqroute.so.0" "$tmp/planted.c"
out=$(cd "$ROOT" && PQROUTE_PATRONI=http://$FAKE PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c7 \
      LD_PRELOAD=build/libpqroute-preload.so python3 -c '
import ctypes, os, sys
os.chdir(sys.argv[1])
pq = ctypes.CDLL("libpq.so.5")
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQconnectdb(sys.argv[2].encode())
print("done")' "$tmp/evil" "$CONN password=x" 2>&1)
ok $([ ! -e "$tmp/planted-ran" ]; echo $?) "relative LD_PRELOAD + chdir: no library loaded from the current directory"
like "$(cat "$tmp/got-passwords" 2>/dev/null)" 'x' "relative LD_PRELOAD + chdir: the real engine was loaded and routed"

# 9. Credentials in the REST URL are never printed or stored.
out=$(PQROUTE_PATRONI=http://user:hunter2@$FAKE PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c9 PQROUTE_LOG=debug \
      LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "$CONN password=x" 2>&1)
like "$out" 'routed rw' "userinfo in PQROUTE_PATRONI: routed"
unlike "$out" 'hunter2' "userinfo: not in any log line or decision"
unlike "$(cat "$tmp"/c9/*.json)" 'hunter2' "userinfo: not in the shared cache"
out=$(PQROUTE_PATRONI=http://user:hunter2@$FAKE PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c9 "$B/pqroute" status 2>&1;
      PQROUTE_PATRONI=http://user:hunter2@$FAKE PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c9 "$B/pqroute" status --json 2>&1;
      PQROUTE_PATRONI=http://user:hunter2@$FAKE PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c9 "$B/pqroute" check 2>&1)
like "$out" "view from http://$FAKE" "userinfo: pqroute shows the endpoint"
unlike "$out" 'hunter2' "userinfo: not in pqroute status, status --json or check"

# 10. Control sequences in a REST answer never reach a terminal raw.
printf '{"members": [{"name": "n1\\u001b]0;owned\\u0007\\u001b[2J", "role": "leader", "state": "running\\r", "host": "127.0.0.42", "port": 15432}, {"name": "n2", "role": "replica", "state": "streaming", "host": "bad\\u001b[31mhost", "port": 15432}]}' >"$tmp/esc.json"
FAKE3=127.0.0.41:18010
start_bg "$tmp/fake3.out" python3 "$ROOT/tests/tools/fake-patroni.py" $FAKE3 ok "$tmp/esc.json"
out=$(PQROUTE_PATRONI=http://$FAKE3 PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c10 PQROUTE_LOG=debug \
      LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "$CONN" 2>&1
      PQROUTE_PATRONI=http://$FAKE3 PQROUTE_RW=$DOOR PQROUTE_CACHE_DIR=$tmp/c10 "$B/pqroute" status 2>&1)
like "$out" 'n1\\x1b\]0;owned\\x07' "control characters in member names are shown as \\xNN"
ok $(! LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' <<<"$out"; echo $?) "no raw control character reaches stderr or pqroute status"
done_testing
