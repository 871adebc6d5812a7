#!/usr/bin/env bash
# The Debian packages (issue 25), installed, used and purged: `tests/deb/t-packages.sh DIR` (DIR
# holds the .debs `make deb` built; `make check-deb` runs both). As root.
#
# apt-get installs them for real, but into a copy-on-write view of /etc, /usr, /var and /run that
# only this test sees (overlayfs in a private mount namespace): a test that dies half-way leaves
# nothing installed on the machine, and the other users of the machine never see the packages.
# Inside that view: pqroute --version; the -dev package builds a program; the installed preload
# library routes psql RW to the leader and RO to a replica with the proxy stopped; the installed
# unit passes systemd-analyze; the agent, started with the unit's command line, environment and
# user, serves two ordinary users, who use its view and write nothing; apt-get purge leaves no file,
# user, group or directory behind.
set -u
if [ -z "${PQR_DEB_VIEW:-}" ]; then
    if [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP needs root"; exit 0; fi
    view=$(mktemp -d /tmp/pqr-deb-view.XXXXXX)
    PQR_DEB_VIEW=$view unshare --mount --propagation private bash "$0" "$@"
    rc=$?
    rmdir "$view"
    exit $rc
fi
. "$(dirname "$0")/../lib.sh"
DEBS=$(cd "${1:-$ROOT/build/deb}" && pwd)
CL=$ROOT/cluster/pqr-cluster
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
UNIT=/lib/systemd/system/pqroute-agent.service
tmp=$(mktemp -d)
chmod 755 "$tmp"
users=()
agent=

mount -t tmpfs -o mode=0700 tmpfs "$PQR_DEB_VIEW"
for d in etc usr var run; do
    mkdir "$PQR_DEB_VIEW/$d.up" "$PQR_DEB_VIEW/$d.work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$PQR_DEB_VIEW/$d.up,workdir=$PQR_DEB_VIEW/$d.work" "/$d" ||
        { echo "1..0 # SKIP no overlayfs for /$d"; exit 0; }
done

cleanup() {
    [ -n "$agent" ] && kill "$agent" 2>/dev/null
    for u in "${users[@]}"; do
        pkill -KILL -u "$u" 2>/dev/null
        userdel "$u" 2>/dev/null
    done
    "$CL" stop >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

# What is on the machine before: paths, users, groups. Not compared: logs, and the caches of apt,
# debconf and man-db (their own files, which they rewrite and prune themselves), and /var/tmp
# (other users' temporary files).
snapshot() { # file
    find /etc /usr /var /run -xdev 2>/dev/null | grep -v -e '^/var/log/' -e '^/var/cache/apt/' -e '^/var/cache/debconf/' -e '^/var/cache/man/' -e '^/var/tmp/' | sort >"$1"
    getent passwd | cut -d: -f1 | sort >"$1.users"
    getent group | cut -d: -f1 | sort >"$1.groups"
}
snapshot "$tmp/before"

debs=$(ls "$DEBS"/libpqroute0_*.deb "$DEBS"/libpqroute-dev_*.deb "$DEBS"/pqroute_*.deb 2>/dev/null)
ok $([ "$(wc -w <<<"$debs")" = 3 ]; echo $?) "three packages in $DEBS"
out=$(DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y --no-install-recommends $debs 2>&1)
ok $(dpkg-query -W libpqroute0 libpqroute-dev pqroute >/dev/null 2>&1; echo $?) "apt-get install ./libpqroute0 ./libpqroute-dev ./pqroute"
[ "$T_FAIL" = 0 ] || { echo "$out" | tail -20 | sed 's/^/# /'; done_testing; exit 1; }

# ---- what was installed ----
version=$(sed -n 's/^#define PQR_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' "$ROOT/libpqroute/libpqroute.h" | paste -sd.)
ok $([ "$(command -v pqroute)" = /usr/bin/pqroute ] && [ "$(pqroute --version)" = "pqroute $version" ]; echo $?) \
    "pqroute --version: $(pqroute --version 2>&1)"
PRELOAD=/usr/lib/$MA/libpqroute-preload.so
ok $([ -f "$PRELOAD" ] && [ -f "/usr/lib/$MA/libpqroute.so.0" ]; echo $?) "the library and the preload shim are in /usr/lib/$MA"
nm -D --defined-only "/usr/lib/$MA/libpqroute.so.0" | awk '{s=$3; sub("@@","@",s); if (s !~ /@/) s = s "@" s; print s}' | sort >"$tmp/nm"
grep '^ ' "$ROOT/debian/libpqroute0.symbols" | awk '{print $1}' | sort >"$tmp/symbols"
check "debian/libpqroute0.symbols lists exactly the installed library's exports" cmp -s "$tmp/nm" "$tmp/symbols"
ok $(cc -o "$tmp/rw-ro" "$ROOT/examples/rw-ro.c" $(pkg-config --cflags --libs libpqroute) 2>"$tmp/cc.err"; echo $?) \
    "libpqroute-dev: examples/rw-ro.c builds with pkg-config libpqroute$(head -c 300 "$tmp/cc.err")"
ok $([ "$(ldd "$tmp/rw-ro" | grep -Ec "libpqroute.so.0 => (/usr)?/lib/$MA/libpqroute.so.0 ")" = 1 ]; echo $?) "... against the installed library"
ok $([ "$(dpkg-query -W -f='${Conffiles}' pqroute | awk '{print $1}' | xargs)" = /etc/libpqroute.conf ]; echo $?) \
    "/etc/libpqroute.conf is pqroute's conffile"

# ---- the unit ----
bad=$(systemd-analyze verify "$UNIT" 2>&1)
ok $([ -z "$bad" ]; echo $?) "systemd-analyze verify $UNIT${bad:+: $bad}"
level=$(systemd-analyze security --offline=true "$UNIT" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
ok $(awk -v l="$level" 'BEGIN {exit !(l != "" && l + 0 < 5.0)}'; echo $?) "systemd-analyze security: exposure ${level:-?} (under 5.0)"
unit_value() { sed -n "s/^$1=//p" "$UNIT"; }
unit_user=$(unit_value User)
ok $([ "$unit_user" = pqroute ] && getent passwd pqroute | grep -q ':/nonexistent:' && getent group pqroute >/dev/null; echo $?) \
    "the unit runs as the system user pqroute, which postinst made (with its group)"
mapfile -t unit_env < <(unit_value Environment)
condition=$(unit_value ExecCondition) start=$(unit_value ExecStart) umask_=$(unit_value UMask)
# exec: run in the background, its pid is the agent's.
as_agent() { umask "$umask_"; exec setpriv --reuid="$unit_user" --regid="$(unit_value Group)" --init-groups \
    --no-new-privs env -i PATH=/usr/bin:/bin "${unit_env[@]}" "$@"; }
# Enabled only when the configuration names a cluster: the unit's ExecCondition= skips it (exit 1)
# while /etc/libpqroute.conf is the commented example the package installed.
(as_agent $condition) >"$tmp/cond" 2>&1
ok $([ $? = 1 ]; echo $?) "ExecCondition ($condition) with the installed example: 1, the unit is skipped ($(head -1 "$tmp/cond"))"
out=$(env -i PATH=/usr/bin:/bin LD_PRELOAD="$PRELOAD" PQROUTE_LOG=debug psql -X -tAc 'select 1' "host=127.0.0.1 port=1 connect_timeout=1" 2>&1)
unlike "$out" "libpqroute" "the commented example configures nothing: a program with the shim loaded says nothing"

# ---- the cluster, the agent, two users ----
ok $(timeout 300 "$CL" fresh >"$tmp/cluster.log" 2>&1; echo $?) "the loopback cluster started"
eval "$("$CL" env)"
ok $("$CL" stop-proxy >/dev/null 2>&1; psql -X -tAc 'select 1' "host=127.0.0.20 port=5432 connect_timeout=2" >/dev/null 2>&1; [ $? != 0 ]; echo $?) \
    "the proxy is stopped: the front door refuses"
cat >/etc/libpqroute.conf <<EOF
cache_dir = "/run/pqroute";
cache_owner = "pqroute";
clusters = (
  { name = "loop"; etcd = "http://127.0.0.10:2379"; scope = "$PQROUTE_SCOPE";
    patroni = ["${PQROUTE_PATRONI//,/\", \"}"]; rw = "$PQROUTE_RW"; ro = "$PQROUTE_RO"; }
);
EOF
ok $( (as_agent $condition) >/dev/null 2>&1; echo $?) "ExecCondition once /etc/libpqroute.conf names a cluster: 0, the unit starts"
# What systemd's RuntimeDirectory=pqroute + RuntimeDirectoryMode= make before ExecStart.
install -d -m "$(unit_value RuntimeDirectoryMode)" -o "$unit_user" -g "$unit_user" /run/pqroute
as_agent $start >"$tmp/agent.log" 2>&1 &
agent=$!
check "the agent ($start, as $unit_user) serves the cluster" wait_for 20 grep -q 'serving the shared cache' "$tmp/agent.log"

leader=$("$CL" ip "$("$CL" leader)")
for i in 1 2; do
    u=pqrdeb$i$$
    useradd --no-create-home --home-dir /nonexistent --shell /bin/sh "$u" && users+=("$u")
    as_user() { setpriv --reuid="$u" --regid="$u" --init-groups env -i PATH=/usr/bin:/bin HOME=/nonexistent \
        LD_PRELOAD="$PRELOAD" PQROUTE_LOG=info PGUSER="$PGUSER" PGDATABASE="$PGDATABASE" PGPASSWORD="$PGPASSWORD" "$@"; }
    q="select inet_server_addr(), inet_client_addr(), pg_is_in_recovery()"
    rw=$(as_user psql -X -tAF' ' -c "$q" "host=127.0.0.20 port=5432 connect_timeout=3" 2>"$tmp/rw$i.err")
    ro=$(as_user psql -X -tAF' ' -c "$q" "host=127.0.0.20 port=5433 connect_timeout=3" 2>"$tmp/ro$i.err")
    like "$rw" "^$leader [0-9.]+ f$" "user $i: psql RW through the installed shim lands on the leader $leader ($rw)"
    like "$ro" "^127\.0\.0\.1[123] [0-9.]+ t$" "user $i: psql RO lands on a replica ($ro)"
    ok $([ "${ro%% *}" != "$leader" ]; echo $?) "user $i: ... not the leader"
    like "$(cat "$tmp/rw$i.err")" "view from etcd watch http://127.0.0.10:2379, by pqroute agent $agent" \
        "user $i: its view is the agent's (\"by pqroute agent $agent\"), not a fetch of its own"
done
ok $([ -z "$(find /run/pqroute ! -user pqroute)" ]; echo $?) "the users wrote nothing in the agent's directory"
kill "$agent" 2>/dev/null
wait "$agent" 2>/dev/null
agent=
"$CL" stop >/dev/null 2>&1
for u in "${users[@]}"; do userdel "$u"; done
users=()

# ---- purge ----
out=$(DEBIAN_FRONTEND=noninteractive timeout 300 apt-get purge -y libpqroute0 libpqroute-dev pqroute 2>&1)
ok $? "apt-get purge libpqroute0 libpqroute-dev pqroute" || echo "$out" | tail -20 | sed 's/^/# /'
snapshot "$tmp/after"
left=$(comm -13 "$tmp/before" "$tmp/after")
ok $([ -z "$left" ]; echo $?) "no file or directory left in /etc /usr /var /run${left:+: $(head -20 <<<"$left" | xargs)}"
left=$(comm -3 "$tmp/before.users" "$tmp/after.users"; comm -3 "$tmp/before.groups" "$tmp/after.groups")
ok $([ -z "$left" ]; echo $?) "no user or group left${left:+: $(xargs <<<"$left")}"
done_testing
