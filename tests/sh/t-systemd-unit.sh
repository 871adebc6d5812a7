# The example agent unit (issue 20, rows 4 and 13): hardened ("OK" or better in systemd-analyze
# security), its runtime directory kept across restarts, and a unit systemd accepts.
. "$(dirname "$0")/../lib.sh"
UNIT=$ROOT/examples/systemd/pqroute-agent.service
if ! command -v systemd-analyze >/dev/null; then echo "1..0 # SKIP systemd-analyze not installed"; exit 0; fi
out=$(systemd-analyze security --offline=true "$UNIT" 2>&1)
level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p' <<<"$out")
ok $(awk -v l="${level% *}" 'BEGIN {exit !(l != "" && l + 0 < 5.0)}'; echo $?) \
    "systemd-analyze security: exposure ${level:-?} (OK or better: under 5.0)"
like "$(cat "$UNIT")" $'\n''RuntimeDirectoryPreserve=yes' "the cache directory survives a restart (RuntimeDirectoryPreserve=yes)"
# Only the executable's path may be missing here (it is installed elsewhere): nothing else.
bad=$(systemd-analyze verify "$UNIT" 2>&1 | grep -v 'is not executable\|man pqroute\|Documentation' || true)
ok $([ -z "$bad" ]; echo $?) "systemd-analyze verify finds nothing else${bad:+: $bad}"
done_testing
