#!/usr/bin/env bash
# The fuzz campaign of make reliability: fuzz/run.sh long (every libFuzzer target for its fixed
# number of executions, >= 10 million for frame decode), then OUT/fuzz.json and OUT/fuzz.md per
# the contract in reliability/run.sh. runs = executions over all targets; a crashing target is
# one crash and one failure. Exits non-zero only when the targets could not be built or run.
set -euo pipefail
: "${OUT:?set by reliability/run.sh}" "${TARGET_DIR:?set by reliability/run.sh}"
report=$OUT/fuzz.tsv
log=$OUT/fuzz.log
rm -f "$report"
start=$(date +%s)
status=0
CARGO_TARGET_DIR=$TARGET_DIR FUZZ_REPORT=$report ./fuzz/run.sh long >"$log" 2>&1 || status=$?
seconds=$(($(date +%s) - start))
cat "$log"

python3 - "$OUT" "$report" "$log" "$seconds" "$status" <<'PY'
import json, os, re, sys
out, report, log, seconds, status = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rows = []
if os.path.exists(report):
    for line in open(report):
        t, runs, ms, crashed, corpus, cpu_ms = line.rstrip("\n").split("\t")
        rows.append((t, int(runs), int(ms) / 1000, int(crashed), int(corpus), int(cpu_ms) / 1000))
text = open(log).read()
built = re.search(r"targets built in (\d+) s", text)
# Bugs the fuzzers found, each fixed in src/ with a regression test next to the parser.
fixed = []
crashes = sum(r[3] for r in rows)
ran = bool(rows) and (status == 0 or crashes > 0)
notes = [
    "Executions are libFuzzer's own count (stat::number_of_executed_units), seed corpus included.",
    "No sanitizer (lanmeter forbids unsafe code); debug assertions and overflow checks are on, so "
    "an arithmetic overflow is a crash; an input running longer than 10 s counts as one too.",
    "web_body: the real router in-process, a logged-in admin with a valid CSRF token, fuzzed bytes "
    "as the body of every form and API route that takes one; any 5xx is a crash.",
]
if built:
    notes.append(f"Build of the instrumented targets: {built.group(1)} s (included in the time).")
if not ran:
    notes.append(f"fuzz/run.sh could not run (exit {status}); see {log}.")
result = {
    "campaign": "fuzz",
    "command": "fuzz/run.sh long",
    "runs": sum(r[1] for r in rows),
    "failures": crashes if ran else 1,
    "crashes": crashes,
    "corrupt_dbs": 0,
    "lost_alerts": 0,
    "bytes_lost": 0,
    "seconds": seconds,
    "fixed": fixed,
    "notes": notes,
}
json.dump(result, open(f"{out}/fuzz.json", "w"), indent=2)
with open(f"{out}/fuzz.md", "w") as md:
    md.write("Each libFuzzer target runs for a fixed number of executions from the seed corpus "
             "(cut out of the captures in tests/data/pcaps, the documented config file, and "
             "form and JSON bodies built from the web side's field names). A crash is an input that "
             "panicked, overflowed or hung; its file is kept in fuzz/artifacts/<target>/.\n\n")
    md.write("| target | what it parses | executions | seconds | CPU seconds | crashes | corpus files |\n")
    md.write("|---|---|---:|---:|---:|---:|---:|\n")
    what = {
        "frame_decode": "frame decode, every link type accounting accepts",
        "pcap_reader": "classic pcap files, each record decoded",
        "discovery_frame": "discovery's frame entry (VLAN, IPv4/6, UDP, ICMPv6, ARP)",
        "dhcp": "DHCPv4 and DHCPv6 messages",
        "mdns": "mDNS / DNS-SD messages",
        "ndp": "ICMPv6 neighbour discovery",
        "arp": "ARP packets",
        "wifi": "radiotap, 802.11 frames and information elements",
        "config": "the config file (Config::load_from)",
        "web_body": "form and API bodies through the router",
    }
    for t, runs, secs, crashed, corpus, cpu in rows:
        md.write(f"| {t} | {what.get(t, '')} | {runs:,} | {secs:.1f} | {cpu:.1f} | {crashed} | {corpus:,} |\n")
    md.write(f"| **total** | | {sum(r[1] for r in rows):,} | {sum(r[2] for r in rows):.1f} | "
             f"{sum(r[5] for r in rows):.1f} | {crashes} | {sum(r[4] for r in rows):,} |\n")
    md.write("\nSeconds are wall time on a machine shared with other work; CPU seconds are the "
             "target's own (user + system).\n")
sys.exit(0 if ran else 1)
PY
