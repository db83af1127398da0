//! The real capture corpus (`tests/data/pcaps/tcpdump/`, tcpdump's own test captures, many of
//! them deliberately malformed) through the real binary: nothing may crash or hang, a file that
//! ends early fails with one clear line, and the per-MAC totals of every Ethernet capture must
//! equal tshark's, an implementation that shares no code with ours.
//!
//! Two tshark oracles, both on wire length (`frame.len`), from one tshark run per file:
//! - `-z endpoints,eth`, tshark's own per-MAC tally. It counts every Ethernet header it dissects,
//!   including frames carried inside a tunnel or a sampling record, so the files in [`INNER_ETHERNET`]
//!   legitimately differ from lanmeter, which counts only the frame on the wire.
//! - the first `eth.src`/`eth.dst` of each frame (the outer header; `isl.*` for Cisco ISL frames),
//!   summed here with ACCOUNTING.md's rules. This one must agree on every Ethernet file, listed or not,
//!   and on the sending side of every Linux cooked file (`sll.src.eth`).
//!
//! A listed file that stops differing fails the test, so the list cannot go stale.
//!
//! This test never skips: a missing corpus or a missing tshark is a failure that says what to do.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A replay of these small files takes milliseconds; anything near this is a hang.
const PER_FILE_LIMIT: Duration = Duration::from_secs(20);
const THREADS: usize = 2;

/// Ethernet captures whose `endpoints,eth` table legitimately differs from lanmeter: each carries
/// whole Ethernet frames inside its payload, which tshark's endpoint tap counts as more endpoints
/// (and more packets for the outer MACs when the inner frame reuses them), while lanmeter counts
/// only the frame on the wire (ACCOUNTING.md). They are still checked, against the outer-header oracle.
const INNER_ETHERNET: &[(&str, &str)] = &[
    (
        "DTP.pcap",
        "half the frames are Cisco ISL (to 01:00:0c:00:00:00) wrapping a DTP frame: tshark counts the \
         ISL header and the inner 802.3 frame as two endpoint pairs",
    ),
    ("erspan-type-i-1.pcap", "ERSPAN type I (GRE) mirrored frame"),
    ("erspan-type-i-2.pcap", "ERSPAN type I (GRE) mirrored frame"),
    ("erspan-type-i-3.pcap", "ERSPAN type I (GRE) mirrored frame"),
    ("erspan-type-i-4.pcap", "ERSPAN type I (GRE) mirrored frame"),
    (
        "erspan-type-ii-1.pcap",
        "ERSPAN type II (GRE) mirrored frame",
    ),
    (
        "erspan-type-ii-2.pcap",
        "ERSPAN type II (GRE) mirrored frame",
    ),
    (
        "erspan-type-ii-3.pcap",
        "ERSPAN type II (GRE) mirrored frame",
    ),
    (
        "erspan-type-iii-ft-0.pcap",
        "ERSPAN type III (GRE) mirrored frame",
    ),
    ("geneve.pcap", "Geneve (UDP 6081) inner Ethernet frame"),
    (
        "gso-ipv4-geneve-ipv4.pcap",
        "Geneve (UDP 6081) inner Ethernet frame",
    ),
    (
        "gso-ipv4-geneve-ipv6.pcap",
        "Geneve (UDP 6081) inner Ethernet frame",
    ),
    (
        "gso-ipv4-vxlan-ipv4.pcap",
        "VXLAN (UDP 4789) inner Ethernet frame",
    ),
    (
        "gso-ipv4-vxlan-ipv6.pcap",
        "VXLAN (UDP 4789) inner Ethernet frame",
    ),
    (
        "gso-ipv6-geneve-ipv4.pcap",
        "Geneve (UDP 6081) inner Ethernet frame",
    ),
    (
        "gso-ipv6-geneve-ipv6.pcap",
        "Geneve (UDP 6081) inner Ethernet frame",
    ),
    (
        "gso-ipv6-vxlan-ipv4.pcap",
        "VXLAN (UDP 4789) inner Ethernet frame",
    ),
    (
        "gso-ipv6-vxlan-ipv6.pcap",
        "VXLAN (UDP 4789) inner Ethernet frame",
    ),
    (
        "ipv6-srh-ipproto-ether.pcap",
        "IPv6 segment routing header with next header 143 (Ethernet): an inner frame",
    ),
    (
        "of10_s4810.pcap",
        "OpenFlow 1.0 packet-in/packet-out messages carry whole Ethernet frames",
    ),
    (
        "sflow-print-v6.pcap",
        "sFlow flow samples carry copies of sampled frames' headers; for the datagrams with several \
         samples tshark's tap credits a sampled frame's MACs instead of the outer ones",
    ),
    ("vxlan.pcap", "VXLAN (UDP 4789) inner Ethernet frame"),
    (
        "of13_ericsson.pcapng",
        "OpenFlow 1.3 packet-in/packet-out messages carry whole Ethernet frames",
    ),
];

/// Fails (never skips) without tshark: it is the independent oracle.
pub(crate) fn require_tshark() {
    match Command::new("tshark").arg("-v").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`tshark -v` failed ({}): {}; `make test` installs it (apt-get install tshark)",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "tshark is needed as the oracle of the corpus test but cannot be run ({e}); `make test` \
             installs it (apt-get install tshark)"
        ),
    }
}

struct Entry {
    /// Relative to the corpus folder, e.g. `tcpdump/vxlan.pcap`.
    file: String,
    linktype: String,
}

/// INDEX.tsv's `tcpdump/` rows, checked against the folder itself so that a file added to one
/// and not the other is not silently left out.
fn index(dir: &Path) -> Vec<Entry> {
    let text = std::fs::read_to_string(dir.join("INDEX.tsv")).expect("reading INDEX.tsv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next().map(|h| h.split('\t').collect::<Vec<_>>()),
        Some(vec!["file", "linktype", "packets"]),
        "INDEX.tsv header changed"
    );
    let entries: Vec<Entry> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 3, "INDEX.tsv row {l:?}");
            Entry {
                file: cols[0].to_string(),
                linktype: cols[1].to_string(),
            }
        })
        .filter(|e| e.file.starts_with("tcpdump/"))
        .collect();
    let listed: HashSet<&str> = entries.iter().map(|e| e.file.as_str()).collect();
    let on_disk: HashSet<String> = std::fs::read_dir(dir.join("tcpdump"))
        .expect("reading the tcpdump/ folder")
        .map(|d| {
            format!(
                "tcpdump/{}",
                d.expect("reading tcpdump/").file_name().to_string_lossy()
            )
        })
        .collect();
    let missing: Vec<&String> = on_disk
        .iter()
        .filter(|f| !listed.contains(f.as_str()))
        .collect();
    let gone: Vec<&&str> = listed.iter().filter(|f| !on_disk.contains(**f)).collect();
    assert!(
        missing.is_empty() && gone.is_empty(),
        "INDEX.tsv and tcpdump/ disagree: not indexed {missing:?}, indexed but absent {gone:?}"
    );
    entries
}

struct Bounded {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to completion, or kills it at `limit` and says so.
fn run_bounded(mut cmd: Command, limit: Duration) -> Result<Bounded, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    // Both pipes are drained on their own threads so a chatty child never blocks on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout was piped")));
    let err = drain(Box::new(child.stderr.take().expect("stderr was piped")));
    let start = Instant::now();
    let mut nap = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {limit:?}: killed (a hang)"));
            }
            Ok(None) => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("waiting for {cmd:?}: {e}")),
        }
    };
    Ok(Bounded {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Frames and bytes, sent then received.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) frames_sent: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) frames_received: u64,
    pub(crate) bytes_received: u64,
}

#[derive(Deserialize)]
struct JsonRow {
    mac: String,
    frames_sent: u64,
    frames_received: u64,
    bytes_sent: u64,
    bytes_received: u64,
}

/// The group (multicast/broadcast) bit of a MAC written `aa:bb:..`.
fn is_group(mac: &str) -> bool {
    u8::from_str_radix(mac.get(..2).unwrap_or("00"), 16).is_ok_and(|b| b & 1 == 1)
}

pub(crate) fn parse_ours(json: &str) -> Result<BTreeMap<String, Tally>, String> {
    let rows: Vec<JsonRow> =
        serde_json::from_str(json).map_err(|e| format!("stdout is not the replay JSON: {e}"))?;
    let mut m = BTreeMap::new();
    for r in rows {
        let t = Tally {
            frames_sent: r.frames_sent,
            bytes_sent: r.bytes_sent,
            frames_received: r.frames_received,
            bytes_received: r.bytes_received,
        };
        if m.insert(r.mac.clone(), t).is_some() {
            return Err(format!("{} appears twice in the JSON", r.mac));
        }
    }
    Ok(m)
}

/// What one tshark run says about a file.
pub(crate) struct Tshark {
    /// `endpoints,eth`: MAC -> Tx and Rx.
    pub(crate) endpoints: BTreeMap<String, Tally>,
    /// Each frame's outermost link-layer addresses, summed with ACCOUNTING.md's rules. For Linux
    /// cooked captures only the sending side: the receiver is the capture host, which replay
    /// learns from the capture itself.
    outer: BTreeMap<String, Tally>,
}

/// The fields of the outer-header oracle, in this order. Cisco ISL frames (to 01:00:0c:00:00:00)
/// are dissected as `isl`, with the encapsulated frame as the first `eth`, so `isl.*` win.
const FIELDS: [&str; 8] = [
    "eth.src",
    "eth.dst",
    "isl.src",
    "isl.dst",
    "sll.src.eth",
    "sll.hatype",
    "sll.halen",
    "frame.len",
];

pub(crate) fn run_tshark(path: &Path) -> Result<Tshark, String> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(path)
        .args(["-T", "fields", "-E", "occurrence=f"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    cmd.args(["-z", "endpoints,eth"]);
    let out = run_bounded(cmd, PER_FILE_LIMIT).map_err(|e| format!("tshark: {e}"))?;
    // tshark exits non-zero on a file that ends early, after printing what it read: that part
    // is still the oracle for the records before the cut, as replay counts those too.
    if out.status.signal().is_some() {
        return Err(format!(
            "tshark died: {}: {}",
            out.status,
            out.stderr.trim()
        ));
    }
    parse_tshark(&out.stdout)
        .map_err(|e| format!("tshark output: {e}; stderr: {}", out.stderr.trim()))
}

fn parse_tshark(stdout: &str) -> Result<Tshark, String> {
    const RULE: &str =
        "================================================================================";
    let (fields, table) = match stdout.find(RULE) {
        Some(i) => stdout.split_at(i),
        None => return Err("no endpoints table".into()),
    };
    let mut outer: BTreeMap<String, Tally> = BTreeMap::new();
    for line in fields.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let [
            eth_src,
            eth_dst,
            isl_src,
            isl_dst,
            sll_src,
            sll_hatype,
            sll_halen,
            len,
        ] = cols[..]
        else {
            return Err(format!("fields row {line:?}"));
        };
        let len: u64 = len.parse().map_err(|_| format!("frame.len in {line:?}"))?;
        let (src, dst) = if !isl_src.is_empty() {
            (isl_src, Some(isl_dst))
        } else if !eth_src.is_empty() {
            (eth_src, Some(eth_dst))
        } else if !sll_src.is_empty() && sll_hatype == "1" && sll_halen == "6" {
            (sll_src, None)
        } else {
            // No readable link-layer header: lanmeter counts nothing either (ACCOUNTING.md).
            continue;
        };
        let s = outer.entry(src.to_string()).or_default();
        s.frames_sent += 1;
        s.bytes_sent += len;
        if let Some(dst) = dst.filter(|d| !is_group(d)) {
            let d = outer.entry(dst.to_string()).or_default();
            d.frames_received += 1;
            d.bytes_received += len;
        }
    }
    let mut endpoints = BTreeMap::new();
    let mut in_rows = false;
    for line in table.lines() {
        if line.contains("| Tx Packets |") {
            in_rows = true;
            continue;
        }
        if !in_rows || line.starts_with('=') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [mac, _, _, txp, txb, rxp, rxb] = cols[..] else {
            return Err(format!("endpoints row {line:?}"));
        };
        let n = |s: &str| s.parse::<u64>().map_err(|_| format!("number in {line:?}"));
        let t = Tally {
            frames_sent: n(txp)?,
            bytes_sent: n(txb)?,
            frames_received: n(rxp)?,
            bytes_received: n(rxb)?,
        };
        endpoints.insert(mac.to_string(), t);
    }
    if !in_rows {
        return Err("the endpoints table has no header row".into());
    }
    Ok(Tshark { endpoints, outer })
}

/// Differences between lanmeter and `endpoints,eth`: Tx for every MAC, Rx for unicast MACs only
/// (ACCOUNTING.md: a broadcast or multicast address never receives), and no MAC tshark does not know.
pub(crate) fn endpoint_diffs(
    ours: &BTreeMap<String, Tally>,
    eps: &BTreeMap<String, Tally>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (mac, t) in eps {
        let o = ours.get(mac).copied().unwrap_or_default();
        if (o.frames_sent, o.bytes_sent) != (t.frames_sent, t.bytes_sent) {
            diffs.push(format!(
                "{mac} sent: lanmeter {} frames / {} bytes, tshark Tx {} / {}",
                o.frames_sent, o.bytes_sent, t.frames_sent, t.bytes_sent
            ));
        }
        if !is_group(mac)
            && (o.frames_received, o.bytes_received) != (t.frames_received, t.bytes_received)
        {
            diffs.push(format!(
                "{mac} received: lanmeter {} frames / {} bytes, tshark Rx {} / {}",
                o.frames_received, o.bytes_received, t.frames_received, t.bytes_received
            ));
        }
    }
    for mac in ours.keys().filter(|m| !eps.contains_key(*m)) {
        diffs.push(format!(
            "{mac} is reported by lanmeter but not in tshark's endpoints"
        ));
    }
    diffs
}

/// Differences between lanmeter and the outer-header oracle: the same MACs, the same four numbers.
fn outer_diffs(ours: &BTreeMap<String, Tally>, outer: &BTreeMap<String, Tally>) -> Vec<String> {
    let macs: std::collections::BTreeSet<&String> = ours.keys().chain(outer.keys()).collect();
    macs.into_iter()
        .filter_map(|mac| {
            let o = ours.get(mac).copied().unwrap_or_default();
            let t = outer.get(mac).copied().unwrap_or_default();
            (o != t).then(|| format!("{mac}: lanmeter {o:?}, outer headers {t:?}"))
        })
        .collect()
}

/// Linux cooked captures: the same senders with the same frames and bytes sent, and no MAC that
/// never sent (receivers are learned capture hosts, which send too).
fn sll_diffs(ours: &BTreeMap<String, Tally>, outer: &BTreeMap<String, Tally>) -> Vec<String> {
    let macs: std::collections::BTreeSet<&String> = ours.keys().chain(outer.keys()).collect();
    macs.into_iter()
        .filter_map(|mac| {
            let o = ours.get(mac).copied().unwrap_or_default();
            let t = outer.get(mac).copied().unwrap_or_default();
            ((o.frames_sent, o.bytes_sent) != (t.frames_sent, t.bytes_sent)).then(|| {
                format!(
                    "{mac} sent: lanmeter {} frames / {} bytes, tshark sll.src {} / {}",
                    o.frames_sent, o.bytes_sent, t.frames_sent, t.bytes_sent
                )
            })
        })
        .collect()
}

#[derive(Default)]
struct Report {
    replayed: usize,
    /// Ethernet files compared with both oracles.
    compared: usize,
    /// Linux cooked files compared on the sending side.
    compared_sll: usize,
    listed: usize,
    /// Files replay reported as ending early or unreadable: (file, its error line).
    errors: Vec<(String, String)>,
    problems: Vec<String>,
}

/// One file: replay it, judge the exit, and for Ethernet compare with both oracles.
fn check_file(dir: &Path, e: &Entry, listed: &HashMap<&str, &str>, report: &Mutex<Report>) {
    let path = dir.join(&e.file);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lanmeter"));
    cmd.args(["replay", "--json"])
        .arg(&path)
        .env("RUST_LOG", "warn");
    let fail = |msg: String| {
        report
            .lock()
            .unwrap()
            .problems
            .push(format!("{}: {msg}", e.file))
    };
    let out = match run_bounded(cmd, PER_FILE_LIMIT) {
        Ok(o) => o,
        Err(msg) => return fail(format!("lanmeter replay: {msg}")),
    };
    report.lock().unwrap().replayed += 1;
    if let Some(sig) = out.status.signal() {
        return fail(format!(
            "lanmeter replay killed by signal {sig}: {}",
            out.stderr.trim()
        ));
    }
    let error_lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("lanmeter: error:"))
        .collect();
    match out.status.code() {
        Some(0) if error_lines.is_empty() => {}
        Some(1) if error_lines.len() == 1 => {
            report
                .lock()
                .unwrap()
                .errors
                .push((e.file.clone(), error_lines[0].to_string()));
            if out.stdout.trim().is_empty() {
                // Nothing counted (an unreadable file): no totals to compare.
                return;
            }
        }
        _ => {
            return fail(format!(
                "lanmeter replay exited {} with {} `lanmeter: error:` lines; stderr: {}",
                out.status,
                error_lines.len(),
                out.stderr.trim()
            ));
        }
    }
    let ours = match parse_ours(&out.stdout) {
        Ok(m) => m,
        Err(msg) => return fail(msg),
    };
    let tshark = match run_tshark(&path) {
        Ok(t) => t,
        Err(msg) => return fail(msg),
    };
    if e.linktype == "linux-sll" {
        let diffs = sll_diffs(&ours, &tshark.outer);
        let mut r = report.lock().unwrap();
        r.compared_sll += 1;
        if !diffs.is_empty() {
            r.problems.push(format!(
                "{}: differs from tshark's Linux cooked source addresses:\n    {}",
                e.file,
                diffs.join("\n    ")
            ));
        }
        return;
    }
    if e.linktype != "ether" {
        return fail(format!("link type {} has no oracle here", e.linktype));
    }
    let name = e.file.trim_start_matches("tcpdump/");
    let vs_endpoints = endpoint_diffs(&ours, &tshark.endpoints);
    let vs_outer = outer_diffs(&ours, &tshark.outer);
    let mut r = report.lock().unwrap();
    r.compared += 1;
    if listed.contains_key(name) {
        r.listed += 1;
        if vs_endpoints.is_empty() {
            r.problems.push(format!(
                "{}: listed in INNER_ETHERNET but now agrees with tshark's endpoints: remove it from the list",
                e.file
            ));
        }
    } else if !vs_endpoints.is_empty() {
        r.problems.push(format!(
            "{}: differs from `tshark -z endpoints,eth`:\n    {}",
            e.file,
            vs_endpoints.join("\n    ")
        ));
    }
    if !vs_outer.is_empty() {
        r.problems.push(format!(
            "{}: differs from tshark's outer Ethernet headers:\n    {}",
            e.file,
            vs_outer.join("\n    ")
        ));
    }
}

#[test]
fn corpus_replays_and_matches_tshark() {
    let dir = crate::pcap_corpus();
    require_tshark();
    let entries = index(&dir);
    assert!(
        entries.len() >= 500,
        "only {} captures under tcpdump/ in INDEX.tsv: the corpus looks incomplete",
        entries.len()
    );
    let listed: HashMap<&str, &str> = INNER_ETHERNET.iter().copied().collect();
    for name in listed.keys() {
        let file = format!("tcpdump/{name}");
        assert!(
            entries
                .iter()
                .any(|e| e.file == file && e.linktype == "ether"),
            "INNER_ETHERNET lists {name}, which is not an Ethernet capture of the corpus"
        );
    }

    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let report = Mutex::new(Report::default());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = entries.get(i) else { break };
                    check_file(&dir, e, &listed, &report);
                }
            });
        }
    });
    let mut r = report.into_inner().unwrap();
    r.errors.sort();
    r.problems.sort();

    println!(
        "corpus {}: {} files replayed; compared with tshark: {} Ethernet ({} of them listed as \
         carrying inner Ethernet frames) and {} Linux cooked; {} ended with an error; {} problems; \
         {:.1} s",
        dir.display(),
        r.replayed,
        r.compared,
        r.listed,
        r.compared_sll,
        r.errors.len(),
        r.problems.len(),
        started.elapsed().as_secs_f64()
    );
    for (file, line) in &r.errors {
        println!("  error exit: {file}: {line}");
    }
    assert!(
        r.problems.is_empty(),
        "{} of {} corpus files failed:\n{}",
        r.problems.len(),
        entries.len(),
        r.problems.join("\n")
    );
    assert_eq!(r.replayed, entries.len(), "not every file was replayed");
    assert_eq!(r.listed, listed.len(), "not every listed file was compared");
    // A file that ended before its first record has nothing to compare; every other one must
    // have been.
    let not_compared = entries.len() - r.compared - r.compared_sll;
    assert!(
        not_compared <= r.errors.len(),
        "{not_compared} files were not compared with tshark but only {} errors were reported",
        r.errors.len()
    );
}

/// The judge itself: a hang is killed at the limit and a crash shows as a signal, so the corpus
/// test cannot pass a binary that does either.
#[test]
fn bounded_run_reports_hangs_and_signals() {
    let started = Instant::now();
    let mut sleep = Command::new("sleep");
    sleep.arg("30");
    let hang = run_bounded(sleep, Duration::from_millis(300));
    assert!(
        hang.as_ref().is_err_and(|e| e.contains("killed")),
        "a hang was not reported: {:?}",
        hang.map(|b| b.status)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the hang was not cut short"
    );

    let mut crash = Command::new("sh");
    crash.args(["-c", "echo partial; kill -SEGV $$"]);
    let crash = run_bounded(crash, PER_FILE_LIMIT).expect("sh runs");
    assert_eq!(crash.status.signal(), Some(11));
    assert_eq!(crash.stdout, "partial\n");
}

/// The error path on real data: a corpus capture cut in the middle of a record (as when the
/// disk fills during tcpdump) must exit 1 with one error line, and the JSON it still prints must
/// equal tshark's totals for the complete records; cut inside the first record header, it
/// prints an empty array.
#[test]
fn a_cut_capture_fails_in_one_line_and_still_matches_tshark() {
    let whole =
        std::fs::read(crate::pcap_corpus().join("tcpdump/afs.pcap")).expect("reading afs.pcap");
    require_tshark();
    let tmp = tempfile::tempdir().expect("temp dir");
    let cuts = [("half.pcap", whole.len() / 2), ("header.pcap", 30)];
    for (name, len) in cuts {
        std::fs::write(tmp.path().join(name), &whole[..len]).expect("writing the cut file");
        let entry = Entry {
            file: name.to_string(),
            linktype: "ether".to_string(),
        };
        let report = Mutex::new(Report::default());
        check_file(tmp.path(), &entry, &HashMap::new(), &report);
        let r = report.into_inner().unwrap();
        assert!(r.problems.is_empty(), "{name}: {:?}", r.problems);
        assert_eq!(r.errors.len(), 1, "{name}: no error exit");
        assert!(
            r.errors[0].1.contains("ends early"),
            "{name}: {}",
            r.errors[0].1
        );
        assert_eq!(r.compared, 1, "{name}: its JSON was not compared");
    }
}
