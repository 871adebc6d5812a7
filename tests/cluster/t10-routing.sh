# RW lands on the leader and RO on a replica, directly, for every way a client names the front door.
. "$(dirname "$0")/lib-cluster.sh"
L=$(leader_ip)
diag "leader $L"

check_rw() { # description output
    ok $([ "$(path_of "$2")" = direct ] && [ "$(server_of "$2")" = "$L" ] && [ "$(recovery_of "$2")" = f ]; echo $?) "RW $1: direct to the leader"
    [[ $2 =~ OK ]] || diag "$2"
}
check_ro() {
    ok $([ "$(path_of "$2")" = direct ] && [ "$(server_of "$2")" != "$L" ] && [ "$(recovery_of "$2")" = t ]; echo $?) "RO $1: direct to a replica"
    [[ $2 =~ OK ]] || diag "$2"
}

check_rw "conninfo string" "$(shim connectdb "$RW")"
check_ro "conninfo string" "$(shim connectdb "$RO")"
check_rw "URI" "$(shim connectdb "postgresql://app:app-secret@$PROXY:5432/app")"
check_ro "URI" "$(shim connectdb "postgresql://app:app-secret@$PROXY:5433/app")"
check_rw "keyword arrays" "$(shim params host=$PROXY port=5432 dbname=app)"
check_ro "keyword arrays, expanded dbname URI" "$(shim params -x "dbname=postgresql://$PROXY:5433/app")"
check_rw "PQsetdbLogin" "$(shim setdblogin $PROXY 5432 app app app-secret)"
check_rw "PQconnectStart + poll" "$(shim start "$RW")"
check_ro "PQconnectStartParams + poll" "$(shim startparams host=$PROXY port=5433)"
check_rw "PGHOST/PGPORT" "$(PGHOST=$PROXY PGPORT=5432 shim connectdb "dbname=app")"
check_ro "PGHOST/PGPORT" "$(PGHOST=$PROXY PGPORT=5433 shim connectdb "dbname=app")"
check_rw "target_session_attrs=read-write on the RO door" "$(shim connectdb "$RO target_session_attrs=read-write")"
check_ro "target_session_attrs=read-only on the RW door" "$(shim connectdb "$RW target_session_attrs=read-only")"

# .pgpass written for the front door still applies (the member port equals the door port here
# for RW; RO's door port 5433 differs from the members' 5432).
pgpass=$(mktemp)
printf '%s:5433:app:app:app-secret\n' $PROXY >"$pgpass"
chmod 600 "$pgpass"
check_ro ".pgpass entry for the RO front door" "$(PGPASSWORD= PGPASSFILE=$pgpass shim connectdb "host=$PROXY port=5433 dbname=app user=app")"
rm -f "$pgpass"

# Unmodified psql and pgbench.
out=$(LD_PRELOAD=$PRELOAD psql -X -h $PROXY -p 5432 -tAc "select host(inet_client_addr()) || ' ' || host(inet_server_addr()) || ' ' || pg_is_in_recovery()" 2>&1)
ok $([ "$out" = "127.0.0.1 $L false" ]; echo $?) "psql RW: direct to the leader ($out)"
out=$(LD_PRELOAD=$PRELOAD psql -X "postgresql://$PROXY:5433/app" -tAc "select host(inet_client_addr()) || ' ' || pg_is_in_recovery()" 2>&1)
ok $([ "$out" = "127.0.0.1 true" ]; echo $?) "psql RO: direct to a replica ($out)"
out=$(LD_PRELOAD=$PRELOAD pgbench -n -h $PROXY -p 5432 -c 2 -t 20 -f <(echo "insert into writes(src) values ('pgbench')") app 2>&1)
like "$out" 'number of failed transactions: 0' "pgbench writes through the shim"
out=$(LD_PRELOAD=$PRELOAD PQROUTE_LOG=info pgbench -n -h $PROXY -p 5432 -c 2 -t 5 -f <(echo "select 1") app 2>&1)
ok $([ "$(grep -c 'routed rw' <<<"$out")" = 3 ]; echo $?) "pgbench: its 3 connections (setup + 2 clients) routed once each"

# Routed once: libpq's internal PQconnectStart call is not routed again.
out=$(PQROUTE_LOG=info shim connectdb "$RW")
ok $([ "$(grep -c 'routed' <<<"$out")" = 1 ]; echo $?) "PQconnectdb is routed exactly once (re-entry guarded)"

# Anything else passes through untouched.
out=$(PQROUTE_LOG=debug shim connectdb "host=$L port=5432")
like "$out" "passed through: $L:5432 is not a configured front door" "a direct member address passes through"
like "$out" "OK .*server=$L" "and connects as asked"

# REST load: the shared cache file means back-to-back processes mostly do not fetch.
c=$(mktemp -d)
for i in $(seq 20); do PQROUTE_CACHE_DIR=$c shim connectdb "$RW" >/dev/null; done
st=$(PQROUTE_CACHE_DIR=$c "$B/pqroute" stats 2>/dev/null)
routed=$(awk '$1=="routed_rw" {print $2}' <<<"$st")
fetches=$(awk '$1=="refresh_ok" || $1=="refresh_failed" {s += $2} END {print s + 0}' <<<"$st")
ok $([ "$routed" = 20 ] && [ "$fetches" -le 10 ]; echo $?) "20 short-lived processes connect routed ($routed), asking Patroni $fetches times (the shared cache)"
rm -rf "$c"

# What a routed connection reports (issue 30): PQconninfo as the application asked — the same as
# without the shim — PQhost the door's name, PQhostaddr the member it reached; a reconnect built
# from PQconninfo (psql's \c, a pool) is routed afresh, directly.
for ci in "$RW" "$RO"; do
    with=$(shim conninfo "$ci")
    without=$("$CLIENT" conninfo "$ci" 2>&1)
    ok $([ "$(grep '^conninfo:' <<<"$with")" = "$(grep '^conninfo:' <<<"$without")" ]; echo $?) \
        "${ci%% connect*}: PQconninfo reports what the application asked ($(grep '^conninfo:' <<<"$with"))"
    like "$(grep '^reported:' <<<"$with")" "host=$PROXY port=[0-9]+ hostaddr=127\.0\.0\.1[123]$" \
        "${ci%% connect*}: PQhost the door, PQhostaddr the member ($(grep '^reported:' <<<"$with"))"
    ok $([ "$(path_of "$(grep '^again:' <<<"$with")")" = direct ]; echo $?) "${ci%% connect*}: a reconnect from PQconninfo is routed afresh"
done
# The same through the library API: pqr_conninfo() (examples/rw-ro.c).
out=$("$B/examples/rw-ro" 2>&1)
like "$out" "rw: connected to 127\.0\.0\.1[123]:5432, the leader"$'\n'"rw: asked for host=$PROXY port=5432" \
    "library: pqr_conninfo() reports the front door the connection was asked for"
# libpq's string rules: port='' in a string is libpq's 5432 (the RW door), PGPORT is not
# consulted — not the RO door PGPORT names; host='' is the Unix socket, whatever PGHOST says.
with=$(PGPORT=5433 shim connectdb "host=$PROXY port='' connect_timeout=3")
without=$(PGPORT=5433 "$CLIENT" connectdb "host=$PROXY port='' connect_timeout=3" 2>&1)
ok $([ "$(recovery_of "$with")" = f ] && [ "$(recovery_of "$without")" = f ] && [ "$(path_of "$with")" = direct ]; echo $?) \
    "port='' with PGPORT=5433: the leader, as libpq alone (routed: $with | alone: $without)"
with=$(PGHOST=$PROXY PQROUTE_LOG=debug shim connectdb "host='' port=5432 connect_timeout=3")
without=$(PGHOST=$PROXY "$CLIENT" connectdb "host='' port=5432 connect_timeout=3" 2>&1)
like "$with" 'passed through: not a single TCP host' "host='' with PGHOST=the door: not routed (the socket)"
ok $([ "${with##*$'\n'}" = "${without##*$'\n'}" ] || { [[ ${with##*$'\n'} =~ ^FAIL ]] && [[ $without =~ ^FAIL ]]; }; echo $?) \
    "host='': the same outcome as libpq alone (${without:0:80})"
done_testing
