#!/usr/bin/env python3
"""Write outage per path from writer logs (pqr-client writer output: "<epoch ms> OK|FAIL ...").

usage: outage.py EVENT_MS NEW_LEADER_IP direct=FILE LABEL=FILE ...   [--json]
For each path: the first write that landed on the new leader (ms after the event and after the
first direct write there), the outage (the gap between the last good write before it and that
write), failed attempts, and writes rejected as read-only (a write sent to a replica)."""
import json
import sys


def parse(path):
    rows = []
    for line in open(path, errors="replace"):
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit() and parts[1] in ("OK", "FAIL"):
            rows.append((int(parts[0]), parts[1], line))
    return rows


def analyse(rows, event, new_ip):
    tag = "server=%s:" % new_ip
    # "<epoch ms> OK|FAIL <ms> ...": how long that connect (+ write) call took, for the calls
    # that ended from the event until 2 s after the first write on the new leader
    def took(line):
        try:
            return float(line.split()[2])
        except (IndexError, ValueError):
            return 0.0
    good = [(t, l) for t, s, l in rows if s == "OK" and "write=FAIL" not in l]
    first_new = next((t for t, l in good if t > event and tag in l), None)
    before = [t for t, _ in good if first_new is not None and t < first_new]
    last_before = max(before) if before else None
    window_end = (first_new or event) + 2000
    return {
        "longest_call_ms": max([took(l) for t, _, l in rows if event <= t <= window_end] or [0.0]),
        "first_new": first_new,
        "outage_ms": first_new - last_before if first_new and last_before else None,
        # failed connects: not a connection the server ended before its first query
        "failed": sum(1 for t, s, l in rows if s == "FAIL" and " query: " not in l and t > event - 1000),
        # the longest single PQconnectPoll call (writers that report it: maxcall=)
        "longest_poll_ms": max([float(l.split("maxcall=")[1].split()[0]) for t, _, l in rows
                                if "maxcall=" in l and event <= t <= window_end] or [0.0]),
        # ... in CPU time, and the calls that gave up the CPU (slept on a lock or a wait) there
        "longest_poll_cpu_ms": max([float(l.split("maxcpu=")[1].split()[0]) for t, _, l in rows
                                    if "maxcpu=" in l and event <= t <= window_end] or [0.0]),
        "blocked_polls": sum(int(l.split("blocked=")[1].split()[0]) for t, _, l in rows
                             if "blocked=" in l and event <= t <= window_end),
        "read_only": sum(1 for _, _, l in rows if "read-only" in l and "write=FAIL" in l),
        "writes": len(good),
    }


def main():
    args = [a for a in sys.argv[1:] if a != "--json"]
    event, new_ip = int(args[0]), args[1]
    paths = dict(a.split("=", 1) for a in args[2:])
    res = {k: analyse(parse(v), event, new_ip) for k, v in paths.items()}
    direct = res.get("direct", {}).get("first_new")
    for k, r in res.items():
        r["after_event_ms"] = r["first_new"] - event if r["first_new"] else None
        r["gap_ms"] = r["first_new"] - direct if r["first_new"] and direct else None
    if "--json" in sys.argv:
        print(json.dumps(res))
        return
    fmt = lambda v: "-" if v is None else str(v)
    for k, r in res.items():
        extra = "" if k == "direct" else ", %s ms after the new leader's first direct write" % fmt(r["gap_ms"])
        print("  %-7s write outage %6s ms; first write on the new leader %s ms after the event%s; "
              "%d failed attempts, %d writes rejected as read-only"
              % (k, fmt(r["outage_ms"]), fmt(r["after_event_ms"]), extra, r["failed"], r["read_only"]))


main()
