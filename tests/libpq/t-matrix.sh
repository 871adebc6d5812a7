# make check-libpq: the routing tests with each libpq from 12 to 18 loaded (LD_LIBRARY_PATH), by
# unmodified clients, each a fresh process with the proxy stopped — only a routed connection can
# succeed then: the C client (PQconnectdb, PQconnectdbParams with a URI, PQconnectStart + poll),
# psql, psycopg 3 (pure Python, ctypes), ruby-pg PG.connect (async) and PHP pg_connect; RW on the
# leader, RO on a replica; PQconninfo as asked; REST down -> the proxy; a switchover with a writer.
# Debian's psql 15 and ruby-pg are built against libpq 15 with immediate binding: with libpq 12 or
# 13 they do not start at all (symbols those lack), with or without the shim; they are run from 14.
. "$(dirname "$0")/../cluster/lib-cluster.sh"
LIBPQ=${PQR_LIBPQ_DIR:?set PQR_LIBPQ_DIR (scripts/fetch-libpq DIR)}
tmp=$(mktemp -d)
trap '"$CL" start-proxy >/dev/null 2>&1; kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
PY=/usr/bin/python3
Q="select host(inet_server_addr()) || case when pg_is_in_recovery() then ' t' else ' f' end"
fresh() { # major client... : a fresh process, empty cache, that libpq
    local m=$1 c
    shift
    c=$(mktemp -d "$tmp/cache-XXXXXX")
    LD_LIBRARY_PATH=$LIBPQ/$m PQROUTE_CACHE_DIR=$c PQROUTE_START_WAIT_MS=1000 LD_PRELOAD=$PRELOAD "$@" 2>&1 | tail -1
}
c_connectdb() { "$CLIENT" connectdb "host=$PROXY port=$1 connect_timeout=3" | sed -n 's/.*server=\([0-9.]*\):.*recovery=\([tf]\).*/\1 \2/p'; }
c_uri() { "$CLIENT" params -x "dbname=postgresql://$PROXY:$1/app?connect_timeout=3" | sed -n 's/.*server=\([0-9.]*\):.*recovery=\([tf]\).*/\1 \2/p'; }
c_start() { "$CLIENT" start "host=$PROXY port=$1 connect_timeout=3" | sed -n 's/.*server=\([0-9.]*\):.*recovery=\([tf]\).*/\1 \2/p'; }
c_psql() { psql -X -At -h $PROXY -p "$1" -c "$Q"; }
c_psycopg3() { $PY -c 'import psycopg
print(psycopg.connect("host='$PROXY' port='"$1"' connect_timeout=3").execute("'"$Q"'").fetchone()[0])'; }
c_ruby() { ruby -rpg -e 'puts PG.connect("host='$PROXY' port='"$1"' connect_timeout=3").exec("'"$Q"'").getvalue(0, 0)'; }
c_php() { php -r '$c = pg_connect("host='$PROXY' port='"$1"' connect_timeout=3"); if (!$c) exit(1); echo pg_fetch_row(pg_query($c, "'"$Q"'"))[0], "\n";'; }
loaded() { # major: the libpq version the clients see, from psycopg (ctypes dlopen of libpq.so.5)
    LD_LIBRARY_PATH=$LIBPQ/$1 $PY -c 'import psycopg; print(psycopg.pq.version())' 2>/dev/null
}

majors=$(ls "$LIBPQ" | grep -E '^[0-9]+$' | sort -n)
"$CL" wait 60 >/dev/null
for m in $majors; do
    "$CL" start-proxy >/dev/null 2>&1
    "$CL" wait-proxy 30 >/dev/null 2>&1
    v=$(loaded $m)
    ok $([ "${v:0:2}" = "$m" ]; echo $?) "libpq $m: the clients load it (libpq $v)"
    L=$(leader_ip)
    # What a routed connection reports, and the fallback, with this libpq (the proxy running).
    out=$(LD_LIBRARY_PATH=$LIBPQ/$m PQROUTE_CACHE_DIR=$tmp/ci$m LD_PRELOAD=$PRELOAD "$CLIENT" conninfo "host=$PROXY port=5432 connect_timeout=3" 2>&1)
    like "$out" "conninfo: connect_timeout=3 host=$PROXY port=5432 target_session_attrs=any"$'\n'"reported: host=$PROXY port=5432 hostaddr=$L" \
        "libpq $m: PQconninfo as asked, PQhostaddr the leader"
    out=$(LD_LIBRARY_PATH=$LIBPQ/$m PQROUTE_CACHE_DIR=$tmp/down$m PQROUTE_PATRONI=http://127.0.0.11:18999 LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "host=$PROXY port=5432 connect_timeout=3" 2>&1 | tail -1)
    ok $([ "$(path_of "$out")" = proxy ] && [ "$(recovery_of "$out")" = f ]; echo $?) "libpq $m: REST down: through the proxy, to the leader"
    "$CL" stop-proxy >/dev/null
    clients="connectdb uri start psycopg3 php"
    [ "$m" -ge 14 ] && clients="$clients psql ruby"
    for c in $clients; do
        out=$(fresh $m c_$c 5432)
        like "$out" "^$L f$" "libpq $m, $c, proxy stopped: RW on the leader ($out)"
        out=$(fresh $m c_$c 5433)
        ok $([[ $out =~ ^127\.0\.0\.1[123]\ t$ ]] && [ "${out% *}" != "$L" ]; echo $?) "libpq $m, $c, proxy stopped: RO on a replica ($out)"
    done
    # A switchover with a writer on this libpq (a connection per write; the proxy stopped, so every
    # committed write was routed).
    LD_LIBRARY_PATH=$LIBPQ/$m PQROUTE_CACHE_DIR=$tmp/w$m LD_PRELOAD=$PRELOAD "$CLIENT" writer 120 100 "host=$PROXY port=5432 connect_timeout=3 application_name=matrix$m" >"$tmp/writer$m" 2>&1 &
    w=$!
    wait_for 30 grep -q ' OK ' "$tmp/writer$m"
    "$CL" switchover >/dev/null 2>&1
    wait_leader_writable 30
    new=$(leader_ip)
    wait_for 60 sh -c "grep ' OK .*server=$new:.*recovery=f' '$tmp/writer$m' | grep -vq write=FAIL"
    kill $w 2>/dev/null; wait $w 2>/dev/null
    bad=$(grep -c ' OK .*\(recovery=t\|write=FAIL sqlstate=25006\)' "$tmp/writer$m")
    ok $([ "$new" != "$L" ] && [ "$bad" = 0 ] && grep ' OK .*server='"$new"':' "$tmp/writer$m" | grep -vq write=FAIL; echo $?) \
        "libpq $m: a writer through a switchover ($L -> $new): on the new leader, none on a replica ($(grep -c ' OK ' "$tmp/writer$m") OK, $(grep -c ' FAIL ' "$tmp/writer$m") failed)"
    "$CL" wait 60 >/dev/null
done
"$CL" start-proxy >/dev/null 2>&1
done_testing
