# Every way an application reaches libpq (issue 10), judged by real, unmodified clients from
# Debian, each a fresh process with an empty cache directory and the proxy stopped — only a routed
# connection can succeed then: PHP (pg_connect, async, PDO: RTLD_DEEPBIND extensions), psycopg 3's
# pure-Python implementation and its pool (ctypes dlsym), psycopg2, ruby-pg (async PG.connect and
# sync_connect), psql, pg_isready (PQpingParams); a wheel-style bundled libpq; a host that unloads
# and reloads libpq; exits racing the refresher's start; fresh processes right after a switchover.
. "$(dirname "$0")/lib-cluster.sh"
tmp=$(mktemp -d)
trap '"$CL" start-proxy >/dev/null 2>&1; rm -rf "$tmp"' EXIT
PY=/usr/bin/python3 # Debian's, with Debian's psycopg packages
Q="select host(inet_server_addr()) || case when pg_is_in_recovery() then ' t' else ' f' end"
L=$(leader_ip)

fresh() { # client-function conninfo-port -> prints "<server ip> <true|false>" (or an error)
    local c
    c=$(mktemp -d "$tmp/cache-XXXXXX")
    # Non-blocking clients (PHP async, psycopg 3, ruby-pg PG.connect) wait PQROUTE_START_WAIT_MS
    # for a fresh process's first view (100 ms by default; the first fetch loads libcurl and asks
    # Patroni): the test is about how each client reaches libpq, so give a loaded machine the most
    # the setting allows.
    PQROUTE_CACHE_DIR=$c PQROUTE_START_WAIT_MS=1000 LD_PRELOAD=$PRELOAD "$@" 2>&1 | tail -1
}
c_psql() { psql -X -At -h 127.0.0.20 -p "$1" -c "$Q"; }
c_php() { php -r '$c = pg_connect("host=127.0.0.20 port='"$1"' connect_timeout=3"); if (!$c) exit(1); echo pg_fetch_row(pg_query($c, "'"$Q"'"))[0], "\n";'; }
c_php_async() { php -r '$c = pg_connect("host=127.0.0.20 port='"$1"' connect_timeout=3", PGSQL_CONNECT_ASYNC);
    for ($i = 0; ($s = pg_connect_poll($c)) != PGSQL_POLLING_OK; $i++) { if ($s == PGSQL_POLLING_FAILED || $i > 5000) exit(1); usleep(1000); }
    echo pg_fetch_row(pg_query($c, "'"$Q"'"))[0], "\n";'; }
c_pdo() { php -r '$d = new PDO("pgsql:host=127.0.0.20;port='"$1"';dbname=app;connect_timeout=3", "app", "app-secret"); echo $d->query("'"$Q"'")->fetchColumn(), "\n";'; }
c_psycopg3() { $PY -c 'import psycopg
assert psycopg.pq.__impl__ == "python", psycopg.pq.__impl__
print(psycopg.connect("host=127.0.0.20 port='"$1"' connect_timeout=3").execute("'"$Q"'").fetchone()[0])'; }
c_pool() { $PY -c 'import psycopg_pool
p = psycopg_pool.ConnectionPool("host=127.0.0.20 port='"$1"' connect_timeout=3", min_size=2, timeout=10)
p.wait(timeout=10)
with p.connection() as c: print(c.execute("'"$Q"'").fetchone()[0])
p.close()'; }
c_psycopg2() { $PY -c 'import psycopg2
c = psycopg2.connect("host=127.0.0.20 port='"$1"' connect_timeout=3").cursor(); c.execute("'"$Q"'"); print(c.fetchone()[0])'; }
c_ruby() { ruby -rpg -e 'puts PG.connect("host=127.0.0.20 port='"$1"' connect_timeout=3").exec("'"$Q"'").getvalue(0, 0)'; }
c_ruby_sync() { ruby -rpg -e 'puts PG::Connection.sync_connect("host=127.0.0.20 port='"$1"' connect_timeout=3").exec("'"$Q"'").getvalue(0, 0)'; }

"$CL" stop-proxy >/dev/null
for client in psql php php_async pdo psycopg3 pool psycopg2 ruby ruby_sync; do
    out=$(fresh c_$client 5432)
    like "$out" "^$L f$" "$client, proxy stopped, fresh process: RW on the leader ($out)"
    out=$(fresh c_$client 5433)
    ok $([[ $out =~ ^127\.0\.0\.1[123]\ t$ ]] && [ "${out% *}" != "$L" ]; echo $?) "$client, proxy stopped, fresh process: RO on a replica ($out)"
done
out=$(fresh pg_isready -h 127.0.0.20 -p 5432)
like "$out" 'accepting connections' "pg_isready at the RW door, proxy stopped: answers for the leader ($out)"
out=$(PQROUTE_CACHE_DIR=$tmp/pi PQROUTE_PATRONI=http://127.0.0.1:9 LD_PRELOAD=$PRELOAD pg_isready -h 127.0.0.20 -p 5432)
like "$out" 'no response' "pg_isready with no view: the front door's answer, as without the shim ($out)"

# A wheel-style bundled libpq: the system one under a private soname, an extension linked to it,
# loaded RTLD_LOCAL by a host that does not link libpq (with and without the system libpq loaded).
real=$(readlink -f "$(pkg-config --variable=libdir libpq)/libpq.so.5")
mkdir "$tmp/wheel"
cp "$real" "$tmp/wheel/libpq-a1b2c3d4.so.5.99"
patchelf --set-soname libpq-a1b2c3d4.so.5.99 "$tmp/wheel/libpq-a1b2c3d4.so.5.99"
cc -shared -fPIC -o "$tmp/wheel/ext.so" "$ROOT/tests/tools/dl/pqr-ext.c" $(pkg-config --cflags libpq) \
    "$tmp/wheel/libpq-a1b2c3d4.so.5.99" -Wl,-rpath,"$tmp/wheel"
out=$(fresh "$B/tests/pqr-dlhost" bundle "$tmp/wheel/ext.so" "host=127.0.0.20 port=5432 connect_timeout=3")
like "$out" "^OK $L f via .*/libpq-a1b2c3d4\.so\.5\.99$" "bundled libpq alone: routed, through the bundled copy ($out)"
out=$(fresh "$B/tests/pqr-dlhost" bundle "$tmp/wheel/ext.so" "host=127.0.0.20 port=5432 connect_timeout=3" system)
like "$out" "^OK $L f via " "bundled libpq beside the system one: routed ($out)"
out=$(env -u PQROUTE_PATRONI -u PQROUTE_RW -u PQROUTE_RO LD_PRELOAD=$PRELOAD "$B/tests/pqr-dlhost" bundle "$tmp/wheel/ext.so" "host=$L port=5432 connect_timeout=3" 2>&1 | tail -1)
like "$out" "^OK $L f via .*libpq-a1b2c3d4" "bundled libpq, routing not configured: the bundled libpq's own connection, never NULL ($out)"

# A host that unloads libpq, maps something where it was, and loads it again.
out=$(PQROUTE_CACHE_DIR=$tmp/reload LD_PRELOAD=$PRELOAD "$B/tests/pqr-dlhost" reload "host=127.0.0.20 port=5432 connect_timeout=3" 2>&1; echo "exit=$?")
like "$out" "OK $L f.*OK $L f.*exit=0" "reload, routing configured: both connects routed, no crash"
out=$(env -u PQROUTE_PATRONI -u PQROUTE_RW -u PQROUTE_RO LD_PRELOAD=$PRELOAD "$B/tests/pqr-dlhost" reload "host=$L port=5432 connect_timeout=3" 2>&1; echo "exit=$?")
like "$out" "OK $L f.*OK $L f.*exit=0" "reload, routing not configured: no crash"

# Exits while the refresher starts (libcurl and OpenSSL initialising): no signal, ever. Two
# processes at a time (two loops of n/2): the same number of exits, in half the time.
exits() { # n prefix command...: how many of n processes, each with a fresh cache directory, ended by a signal
    local n=$1 prefix=$2 w
    shift 2
    for w in 1 2; do
        (
            s=0
            for _ in $(seq $((n / 2))); do
                PQROUTE_START_WAIT_MS=0 PQROUTE_CACHE_DIR=$(mktemp -d "$tmp/$prefix-XXXXXX") LD_PRELOAD=$PRELOAD \
                    "$@" >/dev/null 2>&1
                [ $? -ge 128 ] && s=$((s + 1))
            done
            echo $s
        ) >"$tmp/$prefix.sig$w" &
    done
    wait
    local s1 s2 # a loop that said nothing counts as a signal
    s1=$(cat "$tmp/$prefix.sig1" 2>/dev/null) s2=$(cat "$tmp/$prefix.sig2" 2>/dev/null)
    echo $(( ${s1:-1} + ${s2:-1} ))
}
sig=$(exits 1000 x "$CLIENT" start "host=127.0.0.20 port=5432 connect_timeout=1 dbname=nosuchdb")
ok $([ "$sig" = 0 ]; echo $?) "1000 C clients exiting right after a failed non-blocking first connect: $sig signals"
sig=$(exits 200 r ruby -rpg -e 'begin; PG.connect("host=127.0.0.20 port=5432 connect_timeout=1 dbname=nosuchdb"); rescue PG::Error; end')
ok $([ "$sig" = 0 ]; echo $?) "200 ruby-pg processes exiting after a failed first PG.connect: $sig signals"
rm -rf "$tmp"/x-* "$tmp"/r-*

# The proxy running, right after a switchover: a fresh process reaches the new leader (the proxy's
# health checks still send RW to the demoted one for a few seconds).
"$CL" start-proxy >/dev/null
"$CL" wait 60 >/dev/null
old=$(leader_ip)
"$CL" switchover >/dev/null
wait_leader_writable 30
new=$(leader_ip)
for client in ruby psycopg3 php_async php; do
    out=$(fresh c_$client 5432)
    like "$out" "^$new f$" "$client right after a switchover ($old -> $new), proxy running: the new leader ($out)"
done
"$CL" wait 120 >/dev/null
"$CL" wait-proxy 60 >/dev/null # the next tests go through the proxy: its checks must have caught up
done_testing
