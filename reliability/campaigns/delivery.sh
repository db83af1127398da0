#!/usr/bin/env bash
# Alert delivery under faults (SPEC §6): the release binary against real SMTP and webhook servers
# on loopback that go down, stall, answer 4xx/5xx or hang, and the daemon SIGKILLed with
# messages pending or mid-delivery. Writes OUT/delivery.json and OUT/delivery.md; the driver is
# reliability/delivery.py (Debian's python3 with python3-aiosmtpd, both in RELIABILITY_DEBS).
# Uses veth pairs dl<k>a/dl<k>b and ports 22000-22999 only. Needs root (veth, raw frames).
set -euo pipefail
: "${LM:?LM must point at the release lanmeter binary}" "${OUT:?OUT must be set}"
exec /usr/bin/python3 reliability/delivery.py "$LM" "$OUT"
