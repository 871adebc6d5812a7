#!/usr/bin/env python3
"""A misbehaving stand-in for Patroni's REST API, for fault injection only (the real cluster is
what the routing tests use).  usage: fake-patroni.py ADDR:PORT MODE [BODY_FILE]
MODE: ok | 500 | garbage | truncated | huge | redirect | slow | hang | noaccept | html"""
import http.server
import os
import socket
import sys
import time

addr, port = sys.argv[1].rsplit(":", 1)
mode = sys.argv[2]
body = open(sys.argv[3], "rb").read() if len(sys.argv) > 3 else b'{"members": []}'

if mode == "noaccept":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(0)
    print("ready", flush=True)
    time.sleep(3600)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def reply(self, code, data, ctype="application/json", length=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if os.environ.get("FAKE_LOG"):  # when each request arrived, for the spreading tests
            with open(os.environ["FAKE_LOG"], "a") as f:
                f.write("%.4f %s\n" % (time.time(), sys.argv[1]))
        if mode == "ok":
            self.reply(200, body)
        elif mode == "500":
            self.reply(500, b"internal error")
        elif mode == "garbage":
            self.reply(200, os.urandom(4096))
        elif mode == "html":
            self.reply(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        elif mode == "truncated":
            self.reply(200, body[: len(body) // 2], length=len(body))
        elif mode == "huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"members": [' + b" " * (8 << 20))
        elif mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/cluster")
            self.end_headers()
        elif mode == "slow":
            time.sleep(5)
            self.reply(200, body)
        elif mode == "hang":
            time.sleep(3600)


srv = http.server.ThreadingHTTPServer((addr, int(port)), Handler)
srv.daemon_threads = True
print("ready", flush=True)
srv.serve_forever()
