#!/usr/bin/env python3
"""Import picture of lanmeter's src/, for reviews of the module structure.

Usage: python3 tools/imports.py [REPO_ROOT]   (default: the current directory)

It reads every src/**/*.rs (lib.rs and main.rs excepted), drops the `#[cfg(test)] mod tests`
block, and takes each `crate::a::b` and `super::x` path as an edge from that file's module to the
longest module the path names. From that graph it prints:
  - file cycles: pairs of modules (files) that import each other;
  - top-level module cycles: pairs of top-level modules (store, survey, web, ...) that import each
    other, with the files on each side that make the edges;
  - imports of the wiring layer (app, daemon, run, cli) from any other
    top-level module: a feature or library module reaching up into the code that starts threads;
  - which web modules import capture::live, and what web::state imports.
It is a text scan, not a compiler: paths inside strings or comments count, `use` of a re-export
counts against the module that re-exports. Good enough to compare before/after a refactor.
"""
import os, re, sys, itertools
root = (sys.argv[1] if len(sys.argv) > 1 else ".") + "/src"
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith(".rs"):
            p = os.path.join(d, f); rel = os.path.relpath(p, root)[:-3]
            mod = rel.replace("/mod", "").replace("/", "::")
            if mod in ("lib", "main"): continue
            files[mod] = open(p).read()
mods = set(files)
def target(path):
    parts = path.split("::")
    for n in range(len(parts), 0, -1):
        m = "::".join(parts[:n])
        if m in mods: return m
    return None
edges = {}
for m, src in files.items():
    # drop #[cfg(test)] mod tests blocks roughly: cut at "#[cfg(test)]\nmod tests"
    src = re.split(r"#\[cfg\(test\)\]\s*mod tests", src)[0]
    ts = set()
    for path in re.findall(r"crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", src):
        t = target(path)
        if t and t != m and not m.startswith(t + "::"): ts.add(t)
    # `use super::x` inside a folder module
    base = m.rsplit("::", 1)[0] if "::" in m else None
    for path in re.findall(r"\bsuper::([a-z_][a-z0-9_]*)", src):
        if base:
            t = target(base + "::" + path) or base
            if t != m and not m.startswith(t + "::"): ts.add(t)
    edges[m] = ts
top = lambda m: m.split("::")[0]
# file-level 2-cycles
print("file cycles (a <-> b):")
for a in sorted(edges):
    for b in sorted(edges[a]):
        if a < b and a in edges.get(b, ()):
            print(f"  {a} <-> {b}")
# top-level module cycles
tedges = {}
for a, ts in edges.items():
    for b in ts:
        if top(a) != top(b): tedges.setdefault(top(a), set()).add(top(b))
print("top-level module cycles (a <-> b):")
for a in sorted(tedges):
    for b in sorted(tedges[a]):
        if a < b and a in tedges.get(b, ()):
            who = sorted(x for x in edges if top(x)==a and any(top(y)==b for y in edges[x]))
            back = sorted(x for x in edges if top(x)==b and any(top(y)==a for y in edges[x]))
            print(f"  {a} <-> {b}: {', '.join(who)}  /  {', '.join(back)}")
# upward imports: feature/library modules reaching the wiring layer
# mqtt.rs is the MQTT session now; its threads start in run/mqtt.rs.
wiring = {"app", "daemon", "run", "cli"}
print("imports of the wiring layer (app, daemon, run, cli) from elsewhere:")
for a in sorted(edges):
    for b in sorted(edges[a]):
        if top(b) in wiring and top(a) not in wiring and top(a) != top(b):
            print(f"  {a} -> {b}")
print("web -> capture::live:", sorted(a for a in edges if top(a)=="web" and "capture::live" in edges[a]))
print("web::state ->", sorted(edges.get("web::state", ())))
