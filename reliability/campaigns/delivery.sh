#!/usr/bin/env bash
# Alert delivery under faults (the README's Durability section): the release binary against real SMTP and webhook servers
# on loopback that go down, stall, answer 4xx/5xx or hang, and the daemon SIGKILLed with
# messages pending or mid-delivery. Writes OUT/delivery.json and OUT/delivery.md; the driver is
# reliability/delivery.py (Debian's python3 with python3-aiosmtpd, both in RELIABILITY_DEBS).
# Uses veth pairs dl<k>a/dl<k>b and ports 22000-22999 only. Needs root (veth, raw frames).
set -euo pipefail
: "${LM:?LM must point at the release lanmeter binary}" "${OUT:?OUT must be set}"
# The driver removes its links itself; this catches a driver killed half way.
cleanup() {
    for l in $(ip -o link show | sed -n 's/^[0-9]*: \(dl[0-9]*a\)@.*/\1/p'); do
        ip link del "$l" 2>/dev/null || true
    done
}
trap cleanup EXIT
/usr/bin/python3 reliability/delivery.py "$LM" "$OUT"
