#!/usr/bin/env python3
"""A stand-in for Consul's KV HTTP API (Consul is not packaged for Debian; the etcd tests use the
real thing): GET /v1/kv/<prefix>?recurse[&index=N&wait=Ns] with X-Consul-Index and blocking
queries, as Patroni's consul DCS leaves its keys.  usage: fake-consul.py ADDR:PORT
Orders on /ctl/...: leader?name=N (a change), mode?m=ok|500|garbage|reset|noindex (reset: the index
goes back, as after a snapshot restore; noindex: answers at once without X-Consul-Index), bad (a
member value that is not base64), token?t=T (require X-Consul-Token), stats."""
import base64
import http.server
import json
import socketserver
import sys
import threading
import time
import urllib.parse

addr, port = sys.argv[1].rsplit(":", 1)
cv = threading.Condition()
st = {"index": 10, "kv": {}, "mode": "ok", "token": None}
stats = {"queries": 0, "blocking": 0, "changed": 0, "forbidden": 0}  # changed: a blocking query answered with a change
PFX = "service/fake/"


def put(k, v):
    st["index"] += 1
    st["kv"][PFX + k] = (v, st["index"])
    cv.notify_all()


def member(n, role):
    return json.dumps({"conn_url": "postgres://127.0.0.%d:5432/postgres" % (60 + n),
                       "api_url": "http://127.0.0.1:1/patroni", "state": "running", "role": role,
                       "xlog_location": 5, "timeline": 1})


with cv:
    put("members/c1", member(1, "master"))
    put("members/c2", member(2, "replica"))
    put("leader", "c1")


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body, index):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        if st["mode"] != "noindex":
            self.send_header("X-Consul-Index", str(index))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path.startswith("/ctl/"):
            with cv:
                if u.path == "/ctl/leader":
                    put("leader", q["name"])
                elif u.path == "/ctl/mode":
                    st["mode"] = q["m"]
                    if q["m"] == "reset":
                        st["index"] = 2
                        for k in st["kv"]:
                            st["kv"][k] = (st["kv"][k][0], 2)
                        cv.notify_all()
                elif u.path == "/ctl/bad":
                    put("members/c3", "x")
                    st["bad"] = PFX + "members/c3"
                elif u.path == "/ctl/token":
                    st["token"] = q.get("t") or None
                elif u.path == "/ctl/stats":
                    return self.send(200, stats, 0)
            return self.send(200, {}, 0)
        if not u.path.startswith("/v1/kv/"):
            return self.send(404, b"", 0)
        with cv:
            stats["queries"] += 1
            if st["token"] and self.headers.get("X-Consul-Token") != st["token"]:
                stats["forbidden"] += 1
                return self.send(403, b"Permission denied", st["index"])
            if st["mode"] == "500":
                return self.send(500, b"rpc error: No cluster leader", st["index"])
            if st["mode"] == "garbage":
                return self.send(200, b"<html>gateway</html>", st["index"])
            index = int(q.get("index", 0))
            if index and st["mode"] != "noindex":
                stats["blocking"] += 1
                wait = float(q.get("wait", "5s").rstrip("s"))
                deadline = time.time() + wait
                while st["index"] <= index and time.time() < deadline and st["mode"] != "reset":
                    cv.wait(deadline - time.time())
                if st["index"] > index:
                    stats["changed"] += 1
            prefix = u.path[len("/v1/kv/"):]
            items = [{"Key": k, "Value": "not base64!" if k == st.get("bad") else base64.b64encode(v.encode()).decode(), "ModifyIndex": i,
                      "CreateIndex": 1, "LockIndex": 0, "Flags": 0}
                     for k, (v, i) in sorted(st["kv"].items()) if k.startswith(prefix)]
            if not items:
                return self.send(404, b"", st["index"])
            return self.send(200, items, st["index"])


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = S((addr, int(port)), H)
print("ready", flush=True)
srv.serve_forever()
