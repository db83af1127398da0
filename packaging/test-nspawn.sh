#!/usr/bin/env bash
# Package test under a real systemd (make package-test): boots Debian bookworm with systemd as
# PID 1 in a systemd-nspawn container (the host's kernel, real seccomp, capabilities and unit
# sandbox), installs the amd64 .deb there with apt as a household would, and checks the first
# minute: the service starts at once (NRestarts=0), the installer prints the URL, the dashboard
# answers through the container's veth, the live exposure score, the System page's figures
# under the shipped sandbox, a restart and a stop that each flush, and a clean purge.
# The root file system is made once with mmdebstrap from the Debian mirror and cached as a
# tarball under TARGET_DIR/nspawn/. Root only. Leaves nothing behind, even on failure.
# The host's cgroups are v1 here: MemoryMax= and TasksMax= are not enforced inside the container.
# Usage: packaging/test-nspawn.sh TARGET_DIR [DEB]
set -euo pipefail
target_dir=${1:-target}
cd "$(dirname "$0")/.."
deb=${2:-$(ls -t "$target_dir"/debian/lanmeter_*_amd64.deb | head -n 1)}
started=$SECONDS

# What the container has before the package arrives: systemd and the package's Depends and
# Recommends, so apt installs the .deb without a network inside. minbase keeps it small.
include=systemd,systemd-sysv,dbus,libpcap0.8,ieee-data,iproute2,ethtool
cache_dir="$target_dir/nspawn"
rootfs_tar="$cache_dir/bookworm-minbase-$(echo "$include" | sha256sum | cut -c1-8).tar"

# Unique per run: the machine (its veth is ve-NAME, at most 15 characters) and a /24 for the veth.
name="lmp$$"
net="10.213.$(($$ % 250 + 1))"
host_ip="$net.1"
guest_ip="$net.2"
port=8080
password="nspawn-test-password-$$-horse-battery"
mkdir -p "$cache_dir"
work=$(mktemp -d "$cache_dir/run-$name.XXXXXX")
root="$work/root"
nspawn_pid=
passed=0
failed=0
summarised=

ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }

cleanup() {
    # An aborted run still ends with the line the Makefile counts.
    [ -n "$summarised" ] || echo "package: $passed passed, $((failed + 1)) failed (the nspawn test stopped early)"
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        # SIGTERM makes nspawn power the container off (SIGRTMIN+3 to its systemd).
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    ip link del "ve-$name" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for tool in mmdebstrap systemd-nspawn nsenter curl; do
    command -v "$tool" >/dev/null || { summarised=1; echo "package: 0 passed, 1 failed ($tool missing: make deps-deb-test)"; exit 1; }
done

if [ ! -f "$rootfs_tar" ]; then
    t=$SECONDS
    mmdebstrap --quiet --format=tar --variant=minbase --include="$include" bookworm "$rootfs_tar.part" >"$work/mmdebstrap.log" 2>&1 \
        || { tail -n 20 "$work/mmdebstrap.log"; rm -rf "$rootfs_tar.part"; summarised=1; echo "package: 0 passed, 1 failed (mmdebstrap)"; exit 1; }
    mv "$rootfs_tar.part" "$rootfs_tar"
    echo "== made the bookworm root file system in $((SECONDS - t)) s: $rootfs_tar"
fi

echo "== boot $name (systemd-nspawn, veth $host_ip <-> $guest_ip) with $(basename "$deb")"
mkdir "$root"
tar -xf "$rootfs_tar" -C "$root"
echo "$name" >"$root/etc/hostname"
cp "$deb" "$root/root/lanmeter.deb"
systemd-nspawn --boot --register=no --keep-unit --network-veth --console=passive \
    -D "$root" -M "$name" >"$work/console.log" 2>&1 &
nspawn_pid=$!
init=
for _ in $(seq 1 300); do
    # The child that became the container's systemd (nspawn's short-lived helper child is not).
    init=$(ps -o pid=,comm= --ppid "$nspawn_pid" 2>/dev/null | awk '$2 == "systemd" { print $1; exit }' || true)
    [ -n "$init" ] && break
    sleep 0.1
done
[ -n "$init" ] || { cat "$work/console.log"; summarised=1; echo "package: 0 passed, 1 failed (the container did not start)"; exit 1; }
# Runs a command inside the container (all its namespaces, as its root).
inside() { nsenter -t "$init" -a "$@"; }
# is-system-running --wait waits for the boot to finish, but answers "offline" at once while
# systemd's own socket is not up yet.
state=
for _ in $(seq 1 300); do
    state=$(timeout 90 nsenter -t "$init" -a systemctl is-system-running --wait 2>/dev/null || true)
    [ -n "$state" ] && [ "$state" != offline ] && break
    sleep 0.2
done
check "the container booted with systemd as PID 1 ($state)" sh -c "[ '$state' = running ] || [ '$state' = degraded ]"

# The container's side has no address or route of its own: without a default route the daemon
# finds no interface to capture on.
ip addr add "$host_ip/24" dev "ve-$name"
ip link set "ve-$name" up
inside ip addr add "$guest_ip/24" dev host0
inside ip link set host0 up
inside ip route add default via "$host_ip"

echo "== apt install"
t=$SECONDS
if inside env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/lanmeter.deb >"$work/install.log" 2>&1; then
    ok "apt install in $((SECONDS - t)) s"
else
    cat "$work/install.log"
    bad "apt install"
fi
grep -E '^(lanmeter:|  http)|systemctl|deb-systemd' "$work/install.log" || true
check "the service is active after install" inside systemctl is-active --quiet lanmeter
# A failed first start is retried after RestartSec=5: wait for that, so the count shows it.
inside systemctl is-active --quiet lanmeter || sleep 7
nrestarts=$(inside systemctl show -p NRestarts --value lanmeter || true)
inside journalctl -u lanmeter -o cat --no-pager >"$work/journal-install.log" 2>&1 || true
check "it started at the first attempt: NRestarts=$nrestarts" test "$nrestarts" = 0
check "no 'Permission denied' and no failed start in its journal" \
    sh -c "! grep -Eq 'Permission denied|Failed to start|Failed with result' '$work/journal-install.log'"
check "the installer printed no systemctl error" sh -c "! grep -Eq 'Could not execute systemctl|did not start' '$work/install.log'"
check "the installer printed the dashboard or setup URL" grep -Eq "http://[^ ]+:$port/" "$work/install.log"
mode=$(inside stat -c %U:%G:%a /etc/lanmeter/lanmeter.toml || true)
check "the config is root:lanmeter 0640 ($mode)" test "$mode" = root:lanmeter:640
verify=$(inside systemd-analyze verify --man=no lanmeter.service 2>&1 || true)
echo "$verify"
check "systemd-analyze verify accepts the installed unit (no man-db in the container: --man=no)" test -z "$verify"
exposure=$(inside systemd-analyze security lanmeter 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
check "live systemd-analyze security: exposure $exposure <= 2.0" inside systemd-analyze security --threshold=20 lanmeter
check "Restart=always" sh -c "[ \"\$(nsenter -t $init -a systemctl show -p Restart --value lanmeter)\" = always ]"
pid=$(inside systemctl show -p MainPID --value lanmeter || true)
check "the daemon runs with MALLOC_ARENA_MAX=2" \
    sh -c "nsenter -t $init -a cat /proc/$pid/environ | tr '\\0' '\\n' | grep -qx MALLOC_ARENA_MAX=2"

echo "== the dashboard through the veth"
base="http://$guest_ip:$port"
check "/healthz answers ok from the host" sh -c "curl -fsS --max-time 5 '$base/healthz' | grep -qx ok"
check "a first visit is sent to the first-run setup page" \
    sh -c "curl -s --max-time 5 -o /dev/null -w '%{redirect_url}' '$base/' | grep -q /setup"
inside lanmeter doctor --listen-secs 1 >"$work/doctor.txt" 2>&1 || true
check "doctor says the dashboard port is lanmeter's own" grep -q 'dashboard port: .* is served by lanmeter' "$work/doctor.txt"
grep 'dashboard port' "$work/doctor.txt" || true

echo "== the System page under the shipped sandbox"
printf '%s\n' "$password" | inside runuser -u lanmeter -- lanmeter passwd >/dev/null 2>&1 || bad "lanmeter passwd"
jar="$work/cookies"
csrf=$(curl -s --max-time 5 -c "$jar" -b "$jar" "$base/login" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -n 1 || true)
curl -s --max-time 10 -c "$jar" -b "$jar" -H "Origin: $base" -o /dev/null \
    --data-urlencode "csrf=$csrf" --data-urlencode "password=$password" --data-urlencode "next=/system" "$base/login" || true
curl -s --max-time 10 -b "$jar" "$base/system" >"$work/system.html" || true
fact() { tr -d '\n' <"$work/system.html" | sed -n "s|.*<dt>$1</dt><dd>\([^<]*\)</dd>.*|\1|p"; }
cpu=$(fact CPU || true); memory=$(fact Memory || true); disk=$(fact 'Disk (database)' || true); host=$(fact Host || true)
echo "Host: $host | CPU: $cpu | Memory: $memory | Disk: $disk"
check "the host name is the machine's, not a fallback ($host)" test "$host" = "$name"
check "CPU is read: a percentage of a non-zero number of cores ($cpu)" sh -c "echo '$cpu' | grep -Eq '^[0-9]+ % of [1-9][0-9]* cores'"
check "memory is read: a non-zero total ($memory)" sh -c "echo '$memory' | grep -Eq '^[0-9.]+ [KMGT]?i?B of [0-9.]*[1-9][0-9.]* [KMGT]i?B used'"
check "the database's disk is read: a non-zero size ($disk)" sh -c "echo '$disk' | grep -Eq 'free of [0-9.]*[1-9][0-9.]* [KMGT]i?B'"

echo "== the settings API rewrites the config under the shipped sandbox"
token=$(inside runuser -u lanmeter -- lanmeter token create nspawn-settings --role admin 2>/dev/null | tail -n 1 || true)
code=$(curl -s -o "$work/settings.json" -w '%{http_code}' --max-time 10 -X PATCH \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data '{"alert_cpu_temp_c": 77}' "$base/api/v1/settings" || true)
check "PATCH /api/v1/settings answers 200 ($code)" test "$code" = 200
check "the change is in /etc/lanmeter/lanmeter.toml and its comments are kept" \
    sh -c "grep -Eq '^alert_cpu_temp_c = 77' '$root/etc/lanmeter/lanmeter.toml' && [ \$(grep -c '^#' '$root/etc/lanmeter/lanmeter.toml') -gt 20 ]"

echo "== upgrade while running keeps data and a modified conffile"
# The same build under a higher version: what an upgrade runs is the new package's maintainer
# scripts (restart, not stop and start) against the installed state.
version=$(dpkg-deb -f "$deb" Version)
dpkg-deb -R "$deb" "$work/upgrade"
sed -i "s/^Version: .*/Version: ${version}+upgrade1/" "$work/upgrade/DEBIAN/control"
dpkg-deb -Zgzip -z1 -b "$work/upgrade" "$root/root/lanmeter-upgrade.deb" >/dev/null
echo '# edited by the household' >>"$root/etc/lanmeter/lanmeter.toml"
if inside env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold \
    /root/lanmeter-upgrade.deb >"$work/upgrade.log" 2>&1; then
    ok "apt upgrade"
else
    cat "$work/upgrade.log"
    bad "apt upgrade"
fi
grep -E '^(lanmeter:|  http)|systemctl|deb-systemd' "$work/upgrade.log" || true
installed=$(inside dpkg-query -W -f='${Version}' lanmeter || true)
check "upgraded to $installed" test "$installed" = "${version}+upgrade1"
check "the upgrade printed the dashboard or setup URL" grep -Eq "http://[^ ]+:$port/" "$work/upgrade.log"
check "active after the upgrade" inside systemctl is-active --quiet lanmeter
mode=$(inside stat -c %U:%G:%a /etc/lanmeter/lanmeter.toml || true)
check "the modified conffile survived, still $mode" sh -c "grep -q 'edited by the household' '$root/etc/lanmeter/lanmeter.toml' && [ '$mode' = root:lanmeter:640 ]"
check "the admin password survived (the login page, not setup)" \
    sh -c "curl -s --max-time 5 -o /dev/null -w '%{redirect_url}' '$base/' | grep -q /login"

echo "== reload, restart and stop flush"
pid_before=$(inside systemctl show -p MainPID --value lanmeter || true)
inside systemctl reload lanmeter || bad "systemctl reload"
sleep 1
check "a reload (SIGHUP) keeps the same process running ($pid_before)" \
    sh -c "[ \"\$(nsenter -t $init -a systemctl show -p MainPID --value lanmeter)\" = '$pid_before' ] && nsenter -t $init -a systemctl is-active --quiet lanmeter"
check "the reload flushed and reread the config" \
    sh -c "nsenter -t $init -a journalctl -u lanmeter -o cat --no-pager | grep -q 'flushed on SIGHUP'"
inside systemctl restart lanmeter || bad "systemctl restart"
check "active again after a restart" inside systemctl is-active --quiet lanmeter
inside systemctl stop lanmeter || bad "systemctl stop"
inside journalctl -u lanmeter -o cat --no-pager >"$work/journal.log" 2>&1 || true
flushes=$(grep -c 'lanmeter::daemon: stopped ' "$work/journal.log" || true)
check "the upgrade, the restart and the stop each ended with the final flush ('stopped' logged $flushes times)" test "$flushes" -ge 3
check "no final flush failed" sh -c "! grep -Eq 'final flush failed|could not write the last' '$work/journal.log'"
check "no backup wait logged without a backup running" sh -c "! grep -q 'waiting for the nightly backup' '$work/journal.log' || grep -q 'nightly backup written' '$work/journal.log'"
result=$(inside systemctl show -p ActiveState -p Result lanmeter | sort | tr '\n' ' ' || true)
check "stopped cleanly: $result" test "$result" = "ActiveState=inactive Result=success "
check "still no automatic restart: NRestarts=$(inside systemctl show -p NRestarts --value lanmeter)" \
    sh -c "[ \"\$(nsenter -t $init -a systemctl show -p NRestarts --value lanmeter)\" = 0 ]"

echo "== purge"
inside systemctl start lanmeter || true
inside env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q lanmeter >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; bad "apt purge"; }
check "after purge: no lanmeter process" sh -c "! nsenter -t $init -a pgrep -x lanmeter"
check "after purge: /var/lib/lanmeter gone" test ! -e "$root/var/lib/lanmeter"
check "after purge: /etc/lanmeter gone" test ! -e "$root/etc/lanmeter"
check "after purge: user and group gone" sh -c "! grep -q '^lanmeter:' '$root/etc/passwd' '$root/etc/group'"
check "after purge: unit enablement gone" test ! -e "$root/etc/systemd/system/multi-user.target.wants/lanmeter.service"
check "after purge: systemd knows no lanmeter unit file" \
    sh -c "[ \"\$(nsenter -t $init -a systemctl show -p LoadState --value lanmeter)\" = not-found ]"

if [ "$failed" -gt 0 ]; then
    echo "--- install output"; cat "$work/install.log"
    echo "--- journal"; cat "$work/journal.log" 2>/dev/null || cat "$work/journal-install.log"
fi
echo "== $((SECONDS - started)) s"
echo "package: $passed passed, $failed failed"
summarised=1
[ "$failed" -eq 0 ]
