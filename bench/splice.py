"""make bench, partial runs: puts the sections a partial run measured into the full report.

usage: splice.py PARTS PARTIAL.md FULL.md > NEW.md      (PARTS: comma-separated, as BENCH_PARTS)

A run of some parts (BENCH_PARTS=web,pages ./bench/run.sh) makes a report of those parts
(bench/report.py; sections of parts not run are left out or say so). This replaces the "## "
sections and the budget rows of those PARTS in the last full report (a section it lacks goes
before its budgets table), so BENCHMARKS.md is updated from JSON without editing numbers by hand;
every other section stays as the full run left it. Each replaced section says which run it is from.
"""

import re
import sys

# part -> (its sections' headings, its budget rows' first words), as bench/report.py writes them.
PARTS = {
    "ingest": (["## Offline ingest"], ["offline ingest"]),
    "memory": (["## Memory"], ["memory"]),
    "store": (["## History store"], ["storage", "one flush"]),
    "web": (["## Dashboard latency"], ["overview p99"]),
    "pages": (["## Every page on the Pi 4"], ["every page's first view"]),
    "live": (["## Live capture", "## Start-up"], ["live:", "a flush never blocks", "ready to serve"]),
    "pi": (["## Raspberry Pi 4 projection"], []),
    # SD=1 (bench/sdwrites.sh): the section renders every kept run (bench/sdwrites-*.json).
    "sd": (["## SD-card writes"], ["SD card"]),
}
parts = [p for p in sys.argv[1].split(",") if p]
unknown = [p for p in parts if p not in PARTS]
if unknown:
    sys.exit(f"splice.py: unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
heads = [h for p in parts for h in PARTS[p][0]]
rows_of = [r for p in parts for r in PARTS[p][1]]
partial_text, full_text = open(sys.argv[2]).read(), open(sys.argv[3]).read()


def sections(text):
    """(preamble, [(heading, body)]): the text cut at each "## " heading."""
    parts = re.split(r"(?m)^(?=## )", text)
    return parts[0], [(p.split("\n", 1)[0], p) for p in parts[1:]]


def is_budgets(heading):
    return "budgets" in heading.lower()


def budget_rows(body):
    """First cell -> row, for the rows of a budgets table."""
    rows = {}
    for line in body.splitlines():
        cells = line.split(" | ")
        if line.startswith("| ") and len(cells) >= 3 and not line.startswith("|---") and cells[0] != "| budget":
            rows[cells[0]] = line
    return rows


p_pre, p_secs = sections(partial_text)
f_pre, f_secs = sections(full_text)
run = re.search(r"(?m)^Run of (.*?), commit `([^`]*)`, ([\d.]+) minutes", p_pre)
# The partial run's parts with their minutes and load (1-minute average before → after).
loads = "; ".join(f"{m[0]} {m[1]} min, load {m[2].split()[0]} → {m[3].split()[0]}"
                  for m in re.findall(r"(?m)^\| (\w+) \| ([\d.]+) \| ([\d. ]+) \| ([\d. ]+) \|$", p_pre))
origin = ("*This section: a run of some parts (bench/run.sh with BENCH_PARTS="
          + ",".join(parts) + ")" + (f" of {run.group(1)}, commit `{run.group(2)}`, {run.group(3)} minutes" if run else "")
          + (f" ({loads})" if loads else "") + ".*")


def key(heading):
    """The part's heading this section is (headings may be reworded after their first words)."""
    return next((x for x in heads if heading.startswith(x)), None)


new = {key(h): b for h, b in p_secs if key(h)}
measured = {}
for h, b in p_secs:
    if is_budgets(h):
        measured = {k: v for k, v in budget_rows(b).items()
                    if "NOT MEASURED" not in v and any(k[2:].startswith(r) for r in rows_of)}


def stamped(body):
    head, rest = body.split("\n", 1)
    rest = rest.lstrip("\n")
    # A section spliced before carries the older run's line: it is replaced, not stacked.
    rest = re.sub(r"\A\*This section: a run of some parts.*\*\n\n", "", rest)
    return f"{head}\n\n{origin}\n\n{rest}"


out, done = [f_pre], set()
for h, b in f_secs:
    if is_budgets(h):
        for left in [x for x in new if x not in done]:
            out.append(stamped(new[left]))
            done.add(left)
        rows = budget_rows(b)
        b = "\n".join(measured.get(line.split(" | ")[0], line) if line.split(" | ")[0] in rows else line
                      for line in b.split("\n"))
        out.append(b)
    elif key(h) in new:
        out.append(stamped(new[key(h)]))
        done.add(key(h))
    else:
        out.append(b)
for left in [x for x in new if x not in done]:
    out.append(stamped(new[left]))
sys.stdout.write("".join(out))
