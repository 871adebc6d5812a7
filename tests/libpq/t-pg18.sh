# A PostgreSQL 18 server (from the same packages as the libpq builds) as the member a Patroni view
# names, the front door a closed port (only a routed connection can succeed), with libpq 17 and 18:
# routed connects with max_protocol_version=latest (protocol 3.2, 18), sslnegotiation=direct (17+),
# require_auth (the server's SCRAM accepted, a demand for a password refused as libpq alone would),
# and cancels — PQcancel and PQcancelBlocking (17+) — that reach the routed connection's own backend.
. "$(dirname "$0")/../lib.sh"
LIBPQ=${PQR_LIBPQ_DIR:?set PQR_LIBPQ_DIR (scripts/fetch-libpq DIR)}
SRV=$LIBPQ/18/server
if [ "$(id -u)" != 0 ] || ! id postgres >/dev/null 2>&1; then echo "1..0 # SKIP needs root and the postgres user"; exit 0; fi
tmp=$(mktemp -d)
chmod 755 "$tmp"
pg() { setpriv --reuid=postgres --regid=postgres --init-groups env LD_LIBRARY_PATH="$SRV/lib" "$@"; }
cleanup() { pg "$SRV/bin/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1; stop_servers; rm -rf "$tmp"; }
trap cleanup EXIT
IP=127.0.0.85
install -d -o postgres -m 0700 "$tmp/data" "$tmp/sock"
echo app-secret >"$tmp/pw"; chown postgres "$tmp/pw"
pg "$SRV/bin/initdb" -D "$tmp/data" -U postgres -A scram-sha-256 --pwfile="$tmp/pw" >"$tmp/initdb.log" 2>&1
ok $? "PostgreSQL 18's initdb"
make_ca "$tmp" ca
make_cert "$tmp" server "/CN=$IP" "IP:$IP" ca
cp "$tmp/server.crt" "$tmp/server.key" "$tmp/data/"; chown postgres "$tmp/data/server.crt" "$tmp/data/server.key"
cat >>"$tmp/data/postgresql.conf" <<C
listen_addresses = '$IP'
port = 5432
unix_socket_directories = '$tmp/sock'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
C
pg "$SRV/bin/pg_ctl" -D "$tmp/data" -l "$tmp/sock/pg.log" -w -t 60 start >/dev/null 2>&1
ok $? "PostgreSQL 18 started on $IP:5432"
cat >"$tmp/view.json" <<J
{"members": [{"name": "pg18", "role": "leader", "state": "running", "host": "$IP", "port": 5432, "timeline": 1}]}
J
check "its Patroni view" start_server "$tmp/fake.out" python3 "$ROOT/tests/tools/fake-patroni.py" 127.0.0.86:18008 ok "$tmp/view.json"
export PQROUTE_PATRONI=http://127.0.0.86:18008 PQROUTE_RW=127.0.0.87:5432 PQROUTE_CACHE_DIR=$tmp/cache
unset PQROUTE_ETCD PQROUTE_CONSUL PQROUTE_CONFIG PQROUTE_RO
DOOR="host=127.0.0.87 port=5432 user=postgres password=app-secret dbname=postgres connect_timeout=3"
run() { LD_LIBRARY_PATH=$LIBPQ/$1 LD_PRELOAD=$PRELOAD "${@:2}" 2>&1; }

for m in 17 18; do
    [ -d "$LIBPQ/$m" ] || continue
    out=$(run $m "$B/tests/pqr-cancel" "$DOOR sslmode=require sslnegotiation=direct")
    like "$out" "^connected to $IP:5432" "libpq $m: sslnegotiation=direct, routed to the member"
    like "$out" "cancel PQcancel: OK 57014" "libpq $m: PQcancel on the routed connection cancels its own query"
    like "$out" "cancel PQcancelBlocking: OK 57014" "libpq $m: PQcancelBlocking too"
    out=$(run $m "$CLIENT" connectdb "$DOOR require_auth=scram-sha-256")
    like "$out" "^OK .*server=$IP:5432" "libpq $m: require_auth=scram-sha-256, routed"
    out=$(run $m "$CLIENT" connectdb "$DOOR require_auth=password")
    like "$out" '^FAIL .*(authentication method requirement|require_auth)' "libpq $m: require_auth=password refused by libpq itself, as without the shim"
done
if [ -d "$LIBPQ/18" ]; then
    out=$(run 18 "$B/tests/pqr-cancel" "$DOOR max_protocol_version=latest")
    like "$out" "^connected to $IP:5432 proto 30002" "libpq 18: max_protocol_version=latest, routed: protocol 3.2"
    like "$out" "cancel PQcancel: OK 57014" "libpq 18, protocol 3.2 (longer cancel keys): PQcancel reaches its backend"
    like "$out" "cancel PQcancelBlocking: OK 57014" "libpq 18, protocol 3.2: PQcancelBlocking too"
fi
done_testing
