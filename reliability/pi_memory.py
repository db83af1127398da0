#!/usr/bin/env python3
"""Memory of the real lanmeter binary under web load, as on a Raspberry Pi (issue 25).

Starts `lanmeter demo` (a household with history and live synthetic traffic), optionally inside a
cgroup-v1 memory cgroup with a hard limit, then runs CLIENTS threads on loopback fetching pages,
the API (incl. /api/v1/system) and /metrics for LOAD seconds, then leaves it idle for IDLE
seconds. VmRSS is sampled from /proc/PID/status every 0.5 s; VmHWM (reset when the server is
up, so the demo's history build is not counted) gives the peak.

Budget (issue 25): peak <= 128 MiB and <= 64 MiB after 30 s idle under 20 clients.

Usage: pi_memory.py LANMETER [--clients 20] [--load 90] [--idle 30] [--cgroup-mib 256]
                    [--env K=V ...] [--json OUT.json] [--label TEXT]
Exit status: 0 when the process survived and stayed within the budget, 1 otherwise, 2 when it
could not run. Needs root only for --cgroup-mib.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

PATHS = ["/", "/devices", "/people", "/system", "/plan", "/alerts", "/live", "/wifi",
         "/api/v1/system", "/api/v1/devices", "/api/v1/top?limit=100", "/api/v1/usage",
         "/devices/1", "/devices/2",
         "/api/v1/capture", "/api/v1/presence", "/api/v1/plan", "/api/v1/alerts", "/metrics"]
PEAK_BUDGET_MIB = 128
IDLE_BUDGET_MIB = 64
CG_ROOT = "/sys/fs/cgroup/memory"


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lanmeter")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--load", type=float, default=90)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--cgroup-mib", type=int, default=0)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--json")
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="lm-pimem-")
    cg = None
    proc = None
    result = {"label": a.label, "clients": a.clients, "load_secs": a.load, "idle_secs": a.idle,
              "env": a.env, "cgroup_mib": a.cgroup_mib}
    try:
        db = os.path.join(work, "demo.db")
        # First-run setup done (an admin password), so the anonymous LAN viewer reads everything.
        pw = os.path.join(work, "admin-password")
        with open(pw, "w") as f:
            f.write("correct horse battery staple\n")
        port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("LANMETER_") and k != "MALLOC_ARENA_MAX"}
        env["RUST_LOG"] = "warn"
        for kv in a.env:
            k, v = kv.split("=", 1)
            env[k] = v
        if a.cgroup_mib:
            cg = os.path.join(CG_ROOT, f"lanmeter-pimem-{os.getpid()}")
            os.mkdir(cg)
            with open(os.path.join(cg, "memory.limit_in_bytes"), "w") as f:
                f.write(str(a.cgroup_mib * 1024 * 1024))
            # Without swap accounting the limit is RSS + page cache; no swap exists here anyway.
        log = open(os.path.join(work, "lanmeter.log"), "w")
        proc = subprocess.Popen([a.lanmeter, "demo", "--db", db, "--listen", f"127.0.0.1:{port}",
                                 "--anyone-on-lan-may-view", "--admin-password-file", pw],
                                stdout=subprocess.DEVNULL, stderr=log, env=env)
        if cg:
            with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                f.write(str(proc.pid))
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    log.flush()
                    print("pi_memory: lanmeter demo did not start:\n"
                          + open(os.path.join(work, "lanmeter.log")).read()[-2000:], file=sys.stderr)
                    return 2
                time.sleep(0.2)
        # The demo builds its history in-process before serving: reset the peak (VmHWM) so it
        # measures the web load, not the build (clear_refs "5", Linux >= 4.0).
        try:
            with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError as e:
            print(f"pi_memory: cannot reset VmHWM ({e}); the peak includes the demo build",
                  file=sys.stderr)
        start_rss = status_kib(proc.pid, "VmRSS")
        stop = threading.Event()
        counts = {"ok": 0, "errors": 0}
        lock = threading.Lock()

        def client(i):
            n = i
            while not stop.is_set():
                path = PATHS[n % len(PATHS)]
                n += 1
                try:
                    with urllib.request.urlopen(base + path, timeout=30) as r:
                        r.read()
                    with lock:
                        counts["ok"] += 1
                except OSError:
                    with lock:
                        counts["errors"] += 1
                    if proc.poll() is not None:
                        return

        workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.clients)]
        samples = []
        t0 = time.time()
        for w in workers:
            w.start()
        max_threads = 0
        while time.time() - t0 < a.load and proc.poll() is None:
            samples.append((round(time.time() - t0, 1), status_kib(proc.pid, "VmRSS")))
            max_threads = max(max_threads, threads(proc.pid) or 0)
            time.sleep(0.5)
        stop.set()
        for w in workers:
            w.join(timeout=35)
        load_end_rss = status_kib(proc.pid, "VmRSS")
        t1 = time.time()
        while time.time() - t1 < a.idle and proc.poll() is None:
            samples.append((round(time.time() - t0, 1), status_kib(proc.pid, "VmRSS")))
            time.sleep(0.5)
        alive = proc.poll() is None
        idle_rss = status_kib(proc.pid, "VmRSS")
        peak = status_kib(proc.pid, "VmHWM")
        oom = None
        if cg:
            try:
                with open(os.path.join(cg, "memory.failcnt")) as f:
                    oom = int(f.read())
            except OSError:
                pass
        mib = lambda k: None if k is None else round(k / 1024, 1)
        result.update({
            "alive": alive, "exit": proc.returncode, "requests_ok": counts["ok"],
            "request_errors": counts["errors"], "rss_start_mib": mib(start_rss),
            "rss_load_end_mib": mib(load_end_rss), "peak_mib": mib(peak),
            "rss_idle_mib": mib(idle_rss), "max_threads": max_threads,
            "peak_sampled_mib": mib(max((k for _, k in samples if k is not None), default=None)),
            "cgroup_failcnt": oom,
            "rss_samples_mib": [(t, mib(k)) for t, k in samples],
        })
        result["within_budget"] = bool(alive and peak is not None and idle_rss is not None
                                       and peak / 1024 <= PEAK_BUDGET_MIB
                                       and idle_rss / 1024 <= IDLE_BUDGET_MIB)
        if not alive:
            log.flush()
            result["log_tail"] = open(os.path.join(work, "lanmeter.log")).read()[-2000:]
        brief = {k: v for k, v in result.items() if k != "rss_samples_mib"}
        print(json.dumps(brief))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=1)
        return 0 if result["within_budget"] else 1
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if cg:
            try:
                os.rmdir(cg)
            except OSError as e:
                print(f"pi_memory: could not remove {cg}: {e}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
