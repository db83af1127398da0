#!/usr/bin/env bash
# arm64 package test (make package-arm64-test, not part of make test): the binary inside the
# arm64 .deb, run under qemu-aarch64-static, replays a generated household capture to exactly the
# per-device totals the amd64 build prints for the same file.
# Usage: packaging/test-deb-arm64.sh TARGET_DIR
set -euo pipefail
target_dir=${1:-target}
cd "$(dirname "$0")/.."
deb=$(ls -t "$target_dir"/debian/lanmeter_*_arm64.deb | head -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== $deb"
dpkg-deb -f "$deb" Architecture Depends
dpkg-deb -x "$deb" "$work/root"
bin="$work/root/usr/bin/lanmeter"
file "$bin" 2>/dev/null | grep -q 'ARM aarch64' || { echo "FAILED: $bin is not an aarch64 binary"; exit 1; }
# The highest glibc symbol version the binary needs: the real floor behind Depends: libc6.
floor=$(aarch64-linux-gnu-objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
echo "glibc floor of the arm64 binary: $floor"

host="$target_dir/release/lanmeter"
[ -x "$host" ] || cargo build --release --quiet
"$host" generate "$work/household.pcap" --frames 200000 --seed 7 >/dev/null
"$host" replay "$work/household.pcap" --json >"$work/amd64.json"
# The target's libraries (libpcap, glibc) come from the multiarch and cross packages.
QEMU_LD_PREFIX=/usr/aarch64-linux-gnu LD_LIBRARY_PATH=/usr/lib/aarch64-linux-gnu \
    qemu-aarch64-static "$bin" replay "$work/household.pcap" --json >"$work/arm64.json"
if cmp -s "$work/amd64.json" "$work/arm64.json"; then
    echo "arm64 replay: 1 passed, 0 failed ($(grep -o '"mac"' "$work/arm64.json" | wc -l) devices, identical totals)"
else
    diff <(head -c 2000 "$work/amd64.json") <(head -c 2000 "$work/arm64.json") || true
    echo "arm64 replay: 0 passed, 1 failed"
    exit 1
fi
