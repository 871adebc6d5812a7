#!/usr/bin/python3
"""The system calls a systemd unit's SystemCallFilter= lines allow, expanded from
`systemd-analyze syscall-filter` (groups nest). usage: syscall-sets.py ALLOW_GROUP [~DENY_GROUP ...]
Prints one name per line."""
import subprocess
import sys

groups, cur = {}, None
for line in subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True).stdout.splitlines():
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    if not line.startswith(" ") and s.startswith("@"):
        cur = groups.setdefault(s, [])
    elif cur is not None:
        cur.append(s)


def expand(name, seen=None):
    seen = set() if seen is None else seen
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    out = set()
    for m in groups.get(name, []):
        out |= expand(m, seen)
    return out


allowed = expand(sys.argv[1])
for deny in sys.argv[2:]:
    allowed -= expand(deny.lstrip("~"))
print("\n".join(sorted(allowed)))
