#!/usr/bin/env python3
"""A misbehaving stand-in for etcd's v3 JSON gateway, for fault injection only (the routing tests
use the loopback cluster's real etcd).  usage: fake-etcd.py ADDR:PORT

Holds a key space like etcd's (revisions, mod_revision) with a Patroni cluster under
/service/fake/, answers /version, /v3/kv/range, /v3/auth/authenticate and /v3/watch (a chunked
stream of newline-delimited JSON), and takes orders on /ctl/...:
  /ctl/mode?watch=M   M: ok | truncated | garbage | canceled-once | canceled-always | error | silent
                      | huge
  /ctl/bad?kind=K     members/n3 gets a value routing cannot use: K = nul | big | notb64
  /ctl/rangeerr?on=1  range reads answer 500 with terminal escapes in the message
  /ctl/maxrev         the next change gets revision 9223372036854775807
  /ctl/leader?name=N  moves the leader key (a new revision), telling watchers unless silent
  /ctl/auth?on=1      requires a token; /ctl/expire drops the current one
  /ctl/stats          what was asked, as JSON
"""
import base64
import http.server
import json
import socketserver
import sys
import threading
import time
import urllib.parse

addr, port = sys.argv[1].rsplit(":", 1)
lock = threading.Condition()
state = {"rev": 1, "kv": {}, "mode": "ok", "auth": False, "token": None, "ntoken": 0,
         "compacted_once": False}
stats = {"range": 0, "range_keys_only": 0, "range_serializable": 0, "watch": 0, "auth": 0, "version": 0, "unauth": 0}
raw = {}  # key -> a value sent as it is (not base64)
PFX = "/service/fake/"


def member(n, role):
    return json.dumps({"conn_url": f"postgres://127.0.0.{50 + n}:5432/postgres",
                       "api_url": "http://127.0.0.1:1/patroni", "state": "running",
                       "role": role, "xlog_location": 100, "timeline": 1})


def put(key, value):
    state["rev"] += 1
    state["kv"][key] = (value, state["rev"])
    lock.notify_all()
    return {"kv": kvjson(key)}


def kvjson(key, keys_only=False):
    value, rev = state["kv"][key]
    d = {"key": b64(key), "create_revision": "2", "mod_revision": str(rev), "version": "1"}
    if not keys_only:
        d["value"] = raw[key] if key in raw else b64(value)
    return d


def b64(s):
    return base64.b64encode(s.encode()).decode()


with lock:
    put(PFX + "members/n1", member(1, "master"))
    put(PFX + "members/n2", member(2, "replica"))
    put(PFX + "leader", "n1")
    put(PFX + "config", "{}")


def header():
    return {"cluster_id": "1", "member_id": "1", "revision": str(state["rev"]), "raft_term": "2"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def authed(self):
        if not state["auth"]:
            return True
        if self.headers.get("Authorization") == state["token"] and state["token"]:
            return True
        stats["unauth"] += 1
        self.reply(401, {"error": "etcdserver: invalid auth token", "code": 16,
                         "message": "etcdserver: invalid auth token"})
        return False

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        with lock:
            if u.path == "/version":
                stats["version"] += 1
                return self.reply(200, {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"})
            if u.path == "/ctl/mode":
                state["mode"] = q["watch"]
                state["compacted_once"] = False
                lock.notify_all()
                return self.reply(200, {})
            if u.path == "/ctl/leader":
                silent = state["mode"] == "silent"
                put(PFX + "leader", q["name"])
                if silent:
                    state["hidden"] = state["rev"]
                return self.reply(200, {"rev": state["rev"]})
            if u.path == "/ctl/auth":
                state["auth"] = q.get("on") == "1"
                return self.reply(200, {})
            if u.path == "/ctl/expire":
                state["token"] = None
                return self.reply(200, {})
            if u.path == "/ctl/bad":
                kind = q["kind"]
                value = {"nul": '{"conn_url":"postgres://127.0.0.53:5432/x"}\x00',
                         "big": '{"x":"' + "y" * 70000 + '"}',
                         "notb64": "{}"}[kind]
                put(PFX + "members/n3", value)
                if kind == "notb64":
                    raw[PFX + "members/n3"] = "not base64 at all!"
                else:
                    raw.pop(PFX + "members/n3", None)
                return self.reply(200, {"rev": state["rev"]})
            if u.path == "/ctl/rangeerr":
                state["rangeerr"] = q.get("on") == "1"
                return self.reply(200, {})
            if u.path == "/ctl/maxrev":
                state["rev"] = 9223372036854775806
                return self.reply(200, {})
            if u.path == "/ctl/stats":
                return self.reply(200, stats)
        self.reply(404, {})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        path = self.path
        with lock:
            if path == "/v3/auth/authenticate":
                stats["auth"] += 1
                if body.get("name") == "patroni-reader" and body.get("password") == "pw":
                    state["ntoken"] += 1
                    state["token"] = "tok%d" % state["ntoken"]
                    return self.reply(200, {"header": header(), "token": state["token"]})
                return self.reply(400, {"error": "authentication failed", "code": 3,
                                        "message": "etcdserver: authentication failed"})
            if not self.authed():
                return
            if path == "/v3/kv/range" and state.get("rangeerr"):
                stats["range"] += 1
                return self.reply(500, {"error": "boom", "code": 2,
                                        "message": "etcdserver: \x1b]0;owned\x07\x1b[2J\x1b[31mred"})
            if path == "/v3/kv/range":
                keys_only = bool(body.get("keys_only"))
                stats["range_keys_only" if keys_only else "range"] += 1
                stats["range_serializable"] += bool(body.get("serializable"))
                start = base64.b64decode(body["key"]).decode()
                end = base64.b64decode(body.get("range_end", "")).decode()
                kvs = [kvjson(k, keys_only) for k in sorted(state["kv"]) if start <= k < end]
                return self.reply(200, {"header": header(), "kvs": kvs, "count": str(len(kvs))})
            if path != "/v3/watch":
                return self.reply(404, {})
            stats["watch"] += 1
            mode = state["mode"]
            since = int(body["create_request"].get("start_revision", 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if mode == "canceled-always" or (mode == "canceled-once" and not state["compacted_once"]):
            state["compacted_once"] = True
            self.chunk(json.dumps({"result": {"header": header(), "created": True}}).encode() + b"\n")
            self.chunk(json.dumps({"result": {"header": header(), "canceled": True,
                                              "compact_revision": str(state["rev"])}}).encode() + b"\n")
            self.chunk(b"")
            return
        self.chunk(json.dumps({"result": {"header": header(), "created": True}}).encode() + b"\n")
        if mode == "truncated":
            self.chunk(b'{"result":{"header":{"revision":"9"},"eve')
            self.wfile.flush()
            self.connection.shutdown(1)
            return
        if mode == "garbage":
            self.chunk(b"\x00\xffnot json at all\n")
            time.sleep(5)
            return
        if mode == "error":
            self.chunk(b'{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}}\n')
            time.sleep(5)
            return
        if mode == "huge":
            for _ in range(6):
                self.chunk(b"x" * (1024 * 1024))
            time.sleep(5)
            return
        # ok / silent: events after `since` as they happen (silent: none)
        sent = since - 1
        deadline = time.time() + 30
        try:
            while time.time() < deadline:
                with lock:
                    lock.wait(0.2)
                    if state["mode"] != mode:
                        break  # a new mode applies to the next stream
                    if mode == "silent":
                        continue
                    evs = [{"kv": kvjson(k)} for k in state["kv"]
                           if state["kv"][k][1] > sent and k.startswith(PFX)]
                    if evs:
                        sent = state["rev"]
                        msg = {"result": {"header": header(), "events": evs}}
                    else:
                        msg = None
                if msg:
                    self.chunk(json.dumps(msg).encode() + b"\n")
            self.chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server((addr, int(port)), Handler)
print("ready", flush=True)
srv.serve_forever()
