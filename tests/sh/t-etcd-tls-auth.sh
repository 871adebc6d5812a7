# A real etcd (its own instance, started here) with TLS, client certificates and RBAC, set up as
# README "DCS setup" says: a read-only user for <namespace>/<scope>/. Patroni's keys are written
# with etcdctl in the shape Patroni 3 leaves them (the loopback cluster's own etcd is plain HTTP).
. "$(dirname "$0")/../lib.sh"
for c in etcd etcdctl openssl; do
    command -v $c >/dev/null || { echo "1..0 # SKIP $c not installed"; exit 0; }
done
tmp=$(mktemp -d)
IP=127.0.0.39
etcd_pid= agent_pid=
cleanup() {
    [ -n "$agent_pid" ] && kill $agent_pid 2>/dev/null
    [ -n "$etcd_pid" ] && kill $etcd_pid 2>/dev/null && wait $etcd_pid 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
make_ca "$tmp" ca
make_cert "$tmp" server "/CN=$IP" "IP:$IP" ca
make_cert "$tmp" client "/CN=pqroute" "DNS:pqroute" ca
# Once authentication is on, etcd's gateway refuses a client certificate that has a Common Name
# (CVE-2018-16886: CN authentication is not offered through it): ours has none, SAN only.
make_cert "$tmp" nocn "/O=pqroute" "DNS:pqroute" ca
etcd --name t1 --data-dir "$tmp/data" --listen-client-urls "https://$IP:22379" --advertise-client-urls "https://$IP:22379" \
     --listen-peer-urls "http://$IP:22380" --initial-advertise-peer-urls "http://$IP:22380" --initial-cluster "t1=http://$IP:22380" \
     --cert-file "$tmp/server.crt" --key-file "$tmp/server.key" --trusted-ca-file "$tmp/ca.crt" --client-cert-auth \
     --logger zap --log-level error >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!
E=(env ETCDCTL_API=3 etcdctl --endpoints "https://$IP:22379" --cacert "$tmp/ca.crt" --cert "$tmp/client.crt" --key "$tmp/client.key")
for _ in $(seq 100); do "${E[@]}" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
ok $("${E[@]}" endpoint health >/dev/null 2>&1; echo $?) "etcd with TLS and client certificates is up"

member() { # name ip role
    printf '{"conn_url":"postgres://%s:5432/postgres","api_url":"http://%s:8008/patroni","state":"running","role":"%s","version":"3.0.2","xlog_location":100,"timeline":1}' "$2" "$2" "$3"
}
"${E[@]}" put /service/tls/members/a "$(member a 127.0.0.71 master)" >/dev/null
"${E[@]}" put /service/tls/members/b "$(member b 127.0.0.72 replica)" >/dev/null
"${E[@]}" put /service/tls/leader a >/dev/null
"${E[@]}" put /service/other/leader secret-cluster >/dev/null
# RBAC as README "DCS setup" says: root for the administrator, a reader for the prefix only.
"${E[@]}" user add root:rootpw >/dev/null
"${E[@]}" user grant-role root root >/dev/null
"${E[@]}" role add pqroute-reader >/dev/null
"${E[@]}" role grant-permission pqroute-reader --prefix=true read /service/tls/ >/dev/null
"${E[@]}" user add pqroute-reader:readerpw >/dev/null
"${E[@]}" user grant-role pqroute-reader pqroute-reader >/dev/null
"${E[@]}" auth enable >/dev/null
ok $("${E[@]}" get /service/tls/leader >/dev/null 2>&1; [ $? != 0 ]; echo $?) "authentication enabled: an anonymous read is refused"

printf 'readerpw\n' >"$tmp/pw"; chmod 600 "$tmp/pw"
export PQROUTE_ETCD=https://$IP:22379 PQROUTE_SCOPE=tls PQROUTE_RW=127.0.0.1:1 PQROUTE_CACHE_DIR=$tmp/cache \
       PQROUTE_ETCD_CA=$tmp/ca.crt PQROUTE_ETCD_CERT=$tmp/nocn.crt PQROUTE_ETCD_KEY=$tmp/nocn.key \
       PQROUTE_ETCD_USER=pqroute-reader PQROUTE_ETCD_PASSWORD_FILE=$tmp/pw PQROUTE_LOG=warn \
       PQROUTE_REST_TIMEOUT_MS=10000
# (a generous timeout: the checks are about etcd's reasons, and a TLS handshake plus etcd's bcrypt
# check of the password took over the default 1 s on a busy machine: "no view" without the reason)
unset PQROUTE_PATRONI PQROUTE_CONFIG PQROUTE_CONSUL
out=$("$B/pqroute" status 2>&1)
like "$out" "view from etcd read https://$IP:22379, [0-9.]+ s old, leader a" "TLS + client certificate + a read-only user: the view is read"
# Row 15 of issue 20: the password (and etcd's token, the request and the answer that carry it)
# is cleared before its memory is freed: no block free() gets back holds it (tests/tools/preload/
# freescan.c counts them, at the process's exit).
out=$(FREESCAN_SECRET=readerpw LD_PRELOAD=$B/tests/freescan.so "$B/pqroute" status 2>&1)
like "$out" "freescan: 0 freed blocks held the secret" "no freed block held the etcd password (the view read: $(grep -c 'view from etcd read' <<<"$out"))"
out=$(PQROUTE_ETCD_CERT=$tmp/client.crt PQROUTE_ETCD_KEY=$tmp/client.key "$B/pqroute" status 2>&1)
like "$out" 'HTTP status 400: CommonName of client sending a request against gateway will be ignored' \
    "a client certificate with a Common Name: etcd's own reason is shown (README: use one without)"
out=$(PQROUTE_ETCD_CA= "$B/pqroute" status 2>&1)
like "$out" 'PQROUTE_ETCD_CA is set but empty' "an empty CA setting is refused"
out=$(env -u PQROUTE_ETCD_CA "$B/pqroute" status 2>&1)
like "$out" "etcd https://$IP:22379: .*(certificate|SSL)" "system CAs only: etcd's certificate is rejected (verification is never turned off)"
out=$(env -u PQROUTE_ETCD_CERT -u PQROUTE_ETCD_KEY "$B/pqroute" status 2>&1)
like "$out" "etcd https://$IP:22379: " "no client certificate: refused by etcd, with the reason"
printf 'wrong\n' >"$tmp/pw"
out=$("$B/pqroute" status 2>&1)
like "$out" 'authentication failed' "a wrong password: etcd's reason"
printf 'readerpw\n' >"$tmp/pw"
out=$(PQROUTE_SCOPE=other "$B/pqroute" status 2>&1)
like "$out" 'permission denied' "the reader cannot read another scope's keys (RBAC), and says so"

# The agent with TLS and a token: a change arrives through the watch.
"$B/pqroute" agent >"$tmp/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 150); do "$B/pqroute" status 2>/dev/null | grep -q 'etcd watch' && break; sleep 0.1; done
like "$("$B/pqroute" status 2>&1)" "view from etcd watch https://$IP:22379, by pqroute agent $agent_pid" "the agent watches over TLS with a token"
"${E[@]}" --user root:rootpw put /service/tls/leader b >/dev/null
"${E[@]}" --user root:rootpw put /service/tls/members/a "$(member a 127.0.0.71 replica)" >/dev/null
for _ in $(seq 150); do "$B/pqroute" status 2>/dev/null | grep -q 'leader b' && break; sleep 0.1; done
like "$("$B/pqroute" status 2>&1)" 'leader b' "a leader change reaches the cache through the TLS watch"
kill $agent_pid; wait $agent_pid 2>/dev/null; agent_pid=
ok $(! grep -q 'readerpw' "$tmp"/cache/* "$tmp/agent.log" 2>/dev/null; echo $?) "the password is in no cache file or log line"
done_testing
