# Patroni's REST API over HTTPS with CA verification and a client certificate, against Patroni
# itself: node3's REST API is switched to TLS (verify_client: required) for this test only.
. "$(dirname "$0")/lib-cluster.sh"
if ! command -v openssl >/dev/null; then echo "1..0 # SKIP openssl not installed"; exit 0; fi
tmp=$(mktemp -d)
node=node3
ip=$("$CL" ip $node)
# Back to plain HTTP, and a restart: a Patroni that only reloaded keeps failing the checks a leader
# makes of switchover candidates ("no good candidates have been found"; seen in t95 whenever node3
# led after this test).
restore() {
    "$CL" rest-plain $node
    "$CL" stop-node $node >/dev/null 2>&1
    "$CL" restart-node $node >/dev/null 2>&1
    "$CL" wait 90 >/dev/null
    for _ in $(seq 50); do curl -s -o /dev/null "http://$ip:8008/cluster" && break; sleep 0.2; done
    rm -rf "$tmp"
}
trap restore EXIT
for ca in ca other-ca; do make_ca "$tmp" $ca; done
make_cert "$tmp" server "/CN=$ip" "IP:$ip" ca
make_cert "$tmp" client "/CN=libpqroute" "DNS:libpqroute" ca
"$CL" rest-tls $node "$tmp/server.crt" "$tmp/server.key" "$tmp/ca.crt"
for _ in $(seq 75); do
    curl -s -o /dev/null --cacert "$tmp/ca.crt" --cert "$tmp/client.crt" --key "$tmp/client.key" "https://$ip:8008/cluster" && break
    sleep 0.2
done
check "$node's REST API answers over HTTPS with a client certificate" \
    curl -sf -o /dev/null --cacert "$tmp/ca.crt" --cert "$tmp/client.crt" --key "$tmp/client.key" "https://$ip:8008/cluster"

run() { # extra env... ; routes through node3's HTTPS REST API only
    env PQROUTE_PATRONI="https://$ip:8008" PQROUTE_CACHE_DIR="$(mktemp -d)" PQROUTE_LOG=info "$@" \
        LD_PRELOAD=$PRELOAD "$CLIENT" connectdb "$RW" 2>&1
}
out=$(run PQROUTE_REST_CA="$tmp/ca.crt" PQROUTE_REST_CERT="$tmp/client.crt" PQROUTE_REST_KEY="$tmp/client.key")
like "$out" "routed rw: .*view [0-9.]+s old from https://$ip:8008" "CA + client certificate: the view comes over HTTPS, connection routed"
ok $([ "$(path_of "$(grep '^OK' <<<"$out")")" = direct ]; echo $?) "and connects directly"
out=$(run PQROUTE_REST_CERT="$tmp/client.crt" PQROUTE_REST_KEY="$tmp/client.key")
like "$out" "no usable answer from Patroni \\(https://$ip:8008/cluster: [^)]*(certificate|SSL)" "system CAs only: the server certificate is rejected, one warning"
like "$out" 'passed through rw: .*no fresh Patroni view' "and the front door is used (verification is never turned off)"
out=$(run PQROUTE_REST_CA="$tmp/other-ca.crt" PQROUTE_REST_CERT="$tmp/client.crt" PQROUTE_REST_KEY="$tmp/client.key")
like "$out" "no usable answer from Patroni .*(certificate|SSL)" "a CA that did not sign the server: rejected"
out=$(run PQROUTE_REST_CA="$tmp/ca.crt")
like "$out" "no usable answer from Patroni \\(https://$ip:8008/cluster: " "no client certificate where Patroni requires one: rejected ($(grep -o 'cluster: [^)]*' <<<"$out" | head -1))"
unlike "$out" 'routed rw' "and nothing is routed"
done_testing
