# The host agent under the example unit's restrictions (issue 20, row 13), where systemd cannot run
# it (no systemd as PID 1 here): the agent runs as nobody with no capabilities, no_new_privs and an
# empty bounding set, traced with strace, against a stand-in Patroni; what it did is checked against
# what examples/systemd/pqroute-agent.service allows: the system calls of SystemCallFilter=
# (@system-service less @privileged and @resources, expanded by systemd-analyze itself), the
# address families of RestrictAddressFamilies=, writes only under its ReadWritePaths=, no writable
# and executable memory (MemoryDenyWriteExecute=), no home directories (ProtectHome=), only its own
# /proc entries (ProtectProc=invisible, ProcSubset=pid), and its memory under MemoryMax=.
. "$(dirname "$0")/../lib.sh"
UNIT=$ROOT/examples/systemd/pqroute-agent.service
if [ "$(id -u)" != 0 ] || ! command -v strace >/dev/null || ! command -v systemd-analyze >/dev/null; then
    echo "1..0 # SKIP needs root, strace and systemd-analyze"; exit 0
fi
tmp=$(mktemp -d)
trap 'stop_servers; [ -n "${agent:-}" ] && kill $agent 2>/dev/null; rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
install -d -m 0700 -o nobody "$tmp/run" "$tmp/out"
cat >"$tmp/view.json" <<J
{"members": [
 {"name": "m1", "role": "leader", "state": "running", "host": "127.0.0.93", "port": 5432, "timeline": 1, "api_url": "http://127.0.0.93:18008/patroni"},
 {"name": "m2", "role": "replica", "state": "streaming", "host": "127.0.0.93", "port": 5433, "timeline": 1, "lag": 0}]}
J
check "a stand-in Patroni started" start_server "$tmp/fake.out" python3 "$ROOT/tests/tools/fake-patroni.py" 127.0.0.93:18008 ok "$tmp/view.json"
# The unit's own settings, as its Environment= lines give them (the cache in its runtime directory).
grep -q '^ProtectSystem=strict' "$UNIT" && grep -q '^SystemCallFilter=@system-service' "$UNIT" ||
    diag "the unit's restrictions changed: update this test"
setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all \
    env -i PATH=/usr/bin:/bin HOME=/nonexistent PQROUTE_PATRONI=http://127.0.0.93:18008 \
    PQROUTE_CACHE_DIR="$tmp/run" PQROUTE_RW=127.0.0.93:5432 PQROUTE_REFRESH_MS=200 PQROUTE_LOG=info \
    strace -f -qq -y -s 200 -o "$tmp/out/trace" "$B/pqroute" agent >"$tmp/agent.log" 2>&1 &
agent=$!
check "the agent serves the shared cache under those credentials" wait_for 20 grep -q 'serving the shared cache' "$tmp/agent.log"
wait_for 10 sh -c "ls '$tmp/run/'*.json >/dev/null 2>&1"
sleep 2 # a few refreshes (200 ms apart) into the trace
apid=$(pgrep -P $agent -x pqroute | head -1)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/${apid:-0}/status" 2>/dev/null)
[ -n "$apid" ] && kill "$apid" 2>/dev/null # the agent (strace's child) stops on SIGTERM; strace follows
wait_for 10 sh -c "! kill -0 $agent 2>/dev/null"
kill $agent 2>/dev/null; wait $agent 2>/dev/null; agent=
ok $([ -n "$(ls "$tmp/run/"*.json 2>/dev/null)" ]; echo $?) "the view was written to the runtime directory"

allowed=$(python3 "$ROOT/tests/tools/syscall-sets.py" @system-service ~@privileged ~@resources)
used=$(sed -n 's/^[0-9]* *\([a-z0-9_]*\)(.*/\1/p' "$tmp/out/trace" | sort -u)
outside=$(comm -23 <(echo "$used") <(echo "$allowed" | sort -u) | tr '\n' ' ')
ok $([ -n "$used" ] && [ -z "$outside" ]; echo $?) \
    "every system call is in SystemCallFilter=@system-service ~@privileged ~@resources ($(wc -w <<<"$used") distinct${outside:+; outside: $outside})"
fams=$(sed -n 's/^[0-9]* *socket(\(AF_[A-Z0-9]*\),.*/\1/p' "$tmp/out/trace" | sort -u | tr '\n' ' ')
ok $(for f in $fams; do case $f in AF_INET|AF_INET6|AF_UNIX|AF_NETLINK) ;; *) exit 1 ;; esac; done; echo $?) \
    "address families within RestrictAddressFamilies= ($fams)"
# Paths opened for writing, created, renamed or removed: only under the runtime directory.
writes=$(python3 - "$tmp/out/trace" "$tmp/run" <<'PY'
import re, sys
# strace -y: a descriptor argument reads 5</path>; a relative name is under it
call = re.compile(r'^\d+ +(openat|renameat2?|unlinkat|mkdirat|linkat|symlinkat|rename|unlink|mkdir|link|symlink)\((.*)\) += (-?\d+)')
bad = set()
for line in open(sys.argv[1], errors="replace"):
    m = call.match(line)
    if not m or m.group(3).startswith("-"):
        continue
    name, args = m.group(1), m.group(2)
    if name == "openat" and not re.search(r"O_(WRONLY|RDWR|CREAT)", args):
        continue
    for base, path in re.findall(r'(?:(AT_FDCWD|\d+<[^>]*>), )?"([^"]*)"', args):
        full = path if path.startswith("/") else (base[base.index("<") + 1:-1] if "<" in base else "") + "/" + path
        if not (full.startswith(sys.argv[2] + "/") or full == "/dev/null"):
            bad.add(full)
print(" ".join(sorted(bad)))
PY
)
ok $([ -z "$writes" ]; echo $?) "writes only under ReadWritePaths= (the runtime directory)${writes:+: $writes}"
wx=$(grep -E '^[0-9]+ +(mmap|mprotect|pkey_mprotect)\(.*PROT_WRITE\|PROT_EXEC|PROT_EXEC\|PROT_WRITE' "$tmp/out/trace" | head -2)
ok $([ -z "$wx" ]; echo $?) "no memory both writable and executable (MemoryDenyWriteExecute=)${wx:+: $wx}"
homes=$(grep -oE '"(/root|/home)[^"]*"' "$tmp/out/trace" | sort -u | tr '\n' ' ')
ok $([ -z "$homes" ]; echo $?) "nothing under /root or /home (ProtectHome=)${homes:+: $homes}"
procs=$(grep -oE '"/proc/[^"]*"' "$tmp/out/trace" | tr -d '"' | grep -vE '^/proc/(self|thread-self)(/|$)|^/proc/[0-9]+(/|$)' | sort -u | tr '\n' ' ')
ok $([ -z "$procs" ]; echo $?) "only its own /proc entries (ProtectProc=invisible, ProcSubset=pid)${procs:+: $procs}"
max=$(sed -n 's/^MemoryMax=\([0-9]*\)M$/\1/p' "$UNIT")
ok $([ -n "$hwm" ] && [ "$hwm" -lt $((max * 1024)) ]; echo $?) "peak memory ${hwm:-?} KiB, under MemoryMax=${max}M"
done_testing
