# A CA given is the only one trusted (issue 20, row 8): PQROUTE_REST_CA=A and a REST endpoint whose
# certificate another CA signed — one the system trusts — is refused. (Before: curl's default CA
# directory stayed on beside the given file, so any system-trusted CA was accepted.)
. "$(dirname "$0")/../lib.sh"
if [ "$(id -u)" != 0 ] || [ ! -d /etc/ssl/certs ]; then echo "1..0 # SKIP needs root and /etc/ssl/certs"; exit 0; fi
tmp=$(mktemp -d)
trusted=
cleanup() { stop_servers; [ -n "$trusted" ] && rm -f "$trusted"; rm -rf "$tmp"; }
trap cleanup EXIT
IP=127.0.0.97 PORT=18443
make_ca "$tmp" caA
make_ca "$tmp" caB
make_cert "$tmp" server "/CN=$IP" "IP:$IP" caB
# caB becomes system-trusted for the length of this test: a hashed entry in the CA directory.
h=$(openssl x509 -hash -noout -in "$tmp/caB.crt")
for i in 0 1 2 3 4 5 6 7 8 9; do [ -e "/etc/ssl/certs/$h.$i" ] || { trusted=/etc/ssl/certs/$h.$i; break; }; done
cp "$tmp/caB.crt" "$trusted"
echo '{"members":[{"name":"m1","role":"leader","state":"running","host":"127.0.0.98","port":5432,"timeline":1}]}' >"$tmp/view.json"
cat >"$tmp/https.py" <<'PY'
import http.server, ssl, sys
body = open(sys.argv[3], "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
s = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[4], sys.argv[5])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print("ready", flush=True); s.serve_forever()
PY
check "an https endpoint with a certificate from CA B" start_server "$tmp/https.out" python3 "$tmp/https.py" $IP $PORT "$tmp/view.json" "$tmp/server.crt" "$tmp/server.key"
ok $(curl -fsS --capath /etc/ssl/certs "https://$IP:$PORT/cluster" >/dev/null 2>&1; echo $?) "the premise: the system's CA directory trusts B"
export PQROUTE_PATRONI=https://$IP:$PORT PQROUTE_RW=127.0.0.1:1 PQROUTE_LOG=warn
unset PQROUTE_ETCD PQROUTE_CONSUL PQROUTE_CONFIG
out=$(PQROUTE_CACHE_DIR=$tmp/c1 PQROUTE_REST_CA=$tmp/caA.crt "$B/pqroute" status 2>&1)
unlike "$out" 'view from https' "PQROUTE_REST_CA=A: the endpoint B signed is refused"
like "$out" '(certificate|SSL)' "and the reason is the certificate"
out=$(PQROUTE_CACHE_DIR=$tmp/c2 PQROUTE_REST_CA=$tmp/caB.crt "$B/pqroute" status 2>&1)
like "$out" "view from https://$IP:$PORT" "PQROUTE_REST_CA=B: the same endpoint is used"
done_testing
