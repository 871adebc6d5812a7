#!/usr/bin/env python3
"""A stand-in PostgreSQL server that asks for a cleartext password and records whatever it gets, for
the security tests only (does a password reach a server it must not?).
usage: fake-pg.py ADDR:PORT RECORD_FILE"""
import socket
import struct
import sys
import threading

addr, port = sys.argv[1].rsplit(":", 1)
record = sys.argv[2]


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        chunk = c.recv(n - len(b))
        if not chunk:
            raise EOFError
        b += chunk
    return b


def serve(c):
    try:
        n = struct.unpack("!I", recv_exact(c, 4))[0]
        body = recv_exact(c, n - 4)
        if struct.unpack("!I", body[:4])[0] in (80877103, 80877104):  # SSL / GSS request: refuse
            c.sendall(b"N")
            n = struct.unpack("!I", recv_exact(c, 4))[0]
            body = recv_exact(c, n - 4)
        c.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        kind = recv_exact(c, 1)
        n = struct.unpack("!I", recv_exact(c, 4))[0]
        pw = recv_exact(c, n - 4)
        if kind == b"p":
            with open(record, "ab") as f:
                f.write(pw.rstrip(b"\0") + b"\n")
        msg = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
        c.sendall(b"E" + struct.pack("!I", len(msg) + 4) + msg)
    except (EOFError, OSError):
        pass
    finally:
        c.close()


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, int(port)))
s.listen(16)
print("ready", flush=True)
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
