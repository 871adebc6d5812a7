#!/usr/bin/env python3
"""How long after etcd announces a new leader the shared cache file names it.
usage: leader-lag.py ETCD_URL LEADER_KEY CACHE_DIR TIMEOUT_S
Watches the leader key with etcdctl (another watcher of the same etcd) and polls the cache file
every millisecond; prints "lag_ms N new_leader NAME" for the first new leader, or "timeout"."""
import glob
import json
import os
import subprocess
import sys
import threading
import time

url, key, cache, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
seen = {}
env = dict(os.environ, ETCDCTL_API="3")
w = subprocess.Popen(["etcdctl", "--endpoints", url, "watch", key], stdout=subprocess.PIPE,
                     text=True, env=env)


def reader():
    lines = []
    for line in w.stdout:
        lines.append(line.strip())
        if len(lines) >= 3 and lines[-3] == "PUT" and lines[-2] == key:
            seen.setdefault(lines[-1], time.monotonic())


threading.Thread(target=reader, daemon=True).start()


def file_leader():
    for f in glob.glob(os.path.join(cache, "*.json")):
        try:
            d = json.load(open(f))
        except (OSError, ValueError):
            continue
        for m in d.get("members", []):
            if m.get("role") in ("leader", "standby_leader"):
                return m.get("name")
    return None


start_leader = file_leader()
print("ready", start_leader, flush=True)
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    fl = file_leader()
    if fl and fl != start_leader and fl in seen:
        print("lag_ms %.1f new_leader %s" % ((time.monotonic() - seen[fl]) * 1000, fl), flush=True)
        break
    time.sleep(0.001)
else:
    print("timeout", flush=True)
w.kill()
