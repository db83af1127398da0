//! Capture files as users hand them over, made with real tools rather than hand-written bytes:
//! `mergecap` pcapng files whose interfaces differ in link type or snap length, `editcap`
//! nanosecond pcapng and multi-section files (pcapng files written one after another), standard
//! input, a FIFO, a process substitution and gzip. Each replay must equal tshark's
//! `-z endpoints,eth` for its Ethernet frames, or the plain file's replay byte for byte.

use crate::corpus::{Tally, endpoint_diffs, parse_ours, require_tshark, run_tshark};
use crate::{LANMETER, hermetic};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn corpus(name: &str) -> PathBuf {
    crate::pcap_corpus().join(name)
}

/// An Ethernet capture with a dozen MACs, a Linux cooked one and a radiotap one from the corpus.
const ETHER: &str = "tcpdump/pim-packet-assortment.pcap";
const COOKED: &str = "tcpdump/forces2.pcap";
const RADIOTAP: &str = "tcpdump-80211/ieee802.11_exthdr.pcap";

fn tool(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (apt install wireshark-common gzip)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `editcap ARGS FROM TO` (Wireshark's), which must succeed.
fn editcap(args: &[&str], from: impl AsRef<std::ffi::OsStr>, to: impl AsRef<std::ffi::OsStr>) {
    tool(Command::new("editcap").args(args).arg(from).arg(to));
}

/// `mergecap -w OUT INPUTS…` (Wireshark's: a pcapng with an interface per input), which must succeed.
fn mergecap(out: &Path, inputs: &[&std::ffi::OsStr]) {
    tool(Command::new("mergecap").arg("-w").arg(out).args(inputs));
}

/// `lanmeter replay --json` of `arg` (a path or `-` with `stdin`), with its stderr.
fn replay(arg: &str, stdin: Option<&Path>) -> (String, String, i32) {
    let mut cmd = Command::new(LANMETER);
    hermetic(&mut cmd).args(["replay", "--json", arg]);
    match stdin {
        Some(p) => cmd.stdin(std::fs::File::open(p).unwrap()),
        None => cmd.stdin(Stdio::null()),
    };
    let out = cmd.output().unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn ok_json(path: &Path) -> String {
    let (json, err, code) = replay(path.to_str().unwrap(), None);
    assert_eq!(code, 0, "replay {}: {err}", path.display());
    json
}

fn tallies(path: &Path) -> BTreeMap<String, Tally> {
    parse_ours(&ok_json(path)).unwrap()
}

#[test]
fn mergecap_files_with_mixed_interfaces_equal_tshark_for_their_ethernet_frames() {
    require_tshark();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ether_only = tallies(&corpus(ETHER));
    let cooked_only = tallies(&corpus(COOKED));
    assert!(ether_only.len() > 5 && !cooked_only.is_empty());

    // Ethernet + radiotap: tshark's Ethernet endpoints are the Ethernet frames' alone.
    let with_wifi = d.join("ether-wifi.pcapng");
    mergecap(
        &with_wifi,
        &[corpus(ETHER).as_ref(), corpus(RADIOTAP).as_ref()],
    );
    let (json, err, code) = replay(with_wifi.to_str().unwrap(), None);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("IEEE802_11_RADIO (127)") && err.contains("--survey"),
        "{err}"
    );
    let ours = parse_ours(&json).unwrap();
    let tshark = run_tshark(&with_wifi).unwrap();
    assert_eq!(
        endpoint_diffs(&ours, &tshark.endpoints),
        Vec::<String>::new()
    );

    // Ethernet + Linux cooked: the Ethernet MACs equal tshark's endpoints, the cooked ones equal
    // the cooked file's own replay.
    let with_cooked = d.join("ether-cooked.pcapng");
    mergecap(
        &with_cooked,
        &[corpus(ETHER).as_ref(), corpus(COOKED).as_ref()],
    );
    let ours = tallies(&with_cooked);
    let tshark = run_tshark(&with_cooked).unwrap();
    let (eth, cooked): (BTreeMap<_, _>, BTreeMap<_, _>) = ours
        .into_iter()
        .partition(|(mac, _)| ether_only.contains_key(mac));
    assert_eq!(
        endpoint_diffs(&eth, &tshark.endpoints),
        Vec::<String>::new()
    );
    assert_eq!(cooked, cooked_only);

    // Two Ethernet captures with different snap lengths (libpcap refuses this file).
    let short = d.join("short.pcap");
    editcap(&["-s", "96"], corpus(ETHER), &short);
    let mixed = d.join("snaplens.pcapng");
    mergecap(&mixed, &[corpus(ETHER).as_ref(), short.as_ref()]);
    let ours = tallies(&mixed);
    let tshark = run_tshark(&mixed).unwrap();
    assert_eq!(
        endpoint_diffs(&ours, &tshark.endpoints),
        Vec::<String>::new()
    );
    let doubled = ether_only.values().map(|t| t.bytes_sent).sum::<u64>() * 2;
    assert_eq!(ours.values().map(|t| t.bytes_sent).sum::<u64>(), doubled);
}

#[test]
fn nanosecond_and_multi_section_pcapng_from_editcap_equal_the_classic_file() {
    require_tshark();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let classic = ok_json(&corpus(ETHER));

    let nsec = d.join("nsec.pcap");
    editcap(&["-F", "nsecpcap"], corpus(ETHER), &nsec);
    let nsec_ng = d.join("nsec.pcapng");
    editcap(&["-F", "pcapng"], &nsec, &nsec_ng);
    // if_tsresol = 9 (option 9, length 1, value 9) is in the interface description.
    let bytes = std::fs::read(&nsec_ng).unwrap();
    assert!(
        bytes.windows(5).any(|w| w == [9, 0, 1, 0, 9]),
        "editcap wrote no nanosecond if_tsresol"
    );
    assert_eq!(
        ok_json(&nsec_ng),
        classic,
        "first/last seen and totals as the classic file"
    );

    // editcap -c splits into files of 40 records; written one after another they are one
    // pcapng stream with a section per file.
    let parts = d.join("parts");
    std::fs::create_dir(&parts).unwrap();
    editcap(
        &["-F", "pcapng", "-c", "40"],
        corpus(ETHER),
        parts.join("part.pcapng"),
    );
    let mut names: Vec<_> = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() >= 5, "editcap -c made {} parts", names.len());
    let sections = d.join("sections.pcapng");
    let mut all = Vec::new();
    for n in &names {
        all.extend(std::fs::read(n).unwrap());
    }
    std::fs::write(&sections, all).unwrap();
    assert_eq!(ok_json(&sections), classic);
    let tshark = run_tshark(&sections).unwrap();
    assert_eq!(
        endpoint_diffs(&parse_ours(&classic).unwrap(), &tshark.endpoints),
        Vec::<String>::new()
    );
}

#[test]
fn stdin_fifo_process_substitution_and_gzip_equal_the_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plain = corpus(ETHER);
    let want = ok_json(&plain);
    let pcapng = d.join("x.pcapng");
    editcap(&["-F", "pcapng"], &plain, &pcapng);

    // `-` reads standard input, classic and pcapng.
    for f in [&plain, &pcapng] {
        let (json, err, code) = replay("-", Some(f));
        assert_eq!(
            (code, json.as_str()),
            (0, want.as_str()),
            "{}: {err}",
            f.display()
        );
    }

    // gzip, detected by its magic whatever the name says.
    for (src, name) in [
        (&plain, "x.pcap.gz"),
        (&pcapng, "x.pcapng.gz"),
        (&pcapng, "no-suffix"),
    ] {
        let gz = d.join(name);
        let out = Command::new("gzip").arg("-c").arg(src).output().unwrap();
        assert!(out.status.success());
        std::fs::write(&gz, out.stdout).unwrap();
        assert_eq!(ok_json(&gz), want, "{name}");
    }

    // A FIFO fed by a writer thread (pcapng used to hang here forever).
    for src in [&pcapng, &plain] {
        let fifo = d.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        tool(Command::new("mkfifo").arg(&fifo));
        let writer = {
            let (fifo, src) = (fifo.clone(), src.to_path_buf());
            std::thread::spawn(move || {
                let mut w = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
                w.write_all(&std::fs::read(src).unwrap()).unwrap();
            })
        };
        let mut child = Command::new(LANMETER)
            .args(["replay", "--json"])
            .arg(&fifo)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("replay of a FIFO did not finish within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
    }

    // A process substitution, through bash as a user would type it; and `--db` without
    // `--gateway` (two passes) from standard input.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec timeout 30 {LANMETER} replay --json <(gzip -c < {})",
            pcapng.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
    let db = d.join("h.db");
    let mut cmd = Command::new(LANMETER);
    let out = hermetic(&mut cmd)
        .args(["replay", "--json", "-", "--db"])
        .arg(&db)
        .stdin(std::fs::File::open(&pcapng).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
}

#[test]
fn damaged_empty_and_addressless_files_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A record claiming 0x7fffffff captured bytes: damaged, with the offset, not "cut off".
    let mut b = std::fs::read(corpus(ETHER)).unwrap();
    b[24 + 8..24 + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let bad = d.join("bad.pcap");
    std::fs::write(&bad, b).unwrap();
    let (_, err, code) = replay(bad.to_str().unwrap(), None);
    assert_eq!(code, 1);
    assert!(
        err.contains("is damaged at byte 24") && !err.contains("cut off"),
        "{err}"
    );

    // A pcapng holding only its section header (editcap of an empty selection).
    let empty = d.join("empty.pcapng");
    // `-r` keeps only record 100000, which the file does not have.
    tool(
        Command::new("editcap")
            .args(["-F", "pcapng", "-r"])
            .arg(corpus(ETHER))
            .arg(&empty)
            .arg("100000"),
    );
    let (_, err, code) = replay(empty.to_str().unwrap(), None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("holds no packets (pcapng"), "{err}");

    // Plain replay of radiotap points to the survey.
    let (_, err, code) = replay(corpus(RADIOTAP).to_str().unwrap(), None);
    assert_eq!(code, 1);
    assert!(err.contains("lanmeter replay --survey"), "{err}");

    // Frames too short to carry an Ethernet header: said on stderr, non-zero exit.
    let short = d.join("short.pcap");
    editcap(&["-s", "10"], corpus(ETHER), &short);
    let (_, err, code) = replay(short.to_str().unwrap(), None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("carries a readable Ethernet"), "{err}");
}

/// ACCOUNTING.md §3, Linux cooked captures: `tcpdump -i any` on a host whose traffic to a public
/// address crosses a namespace router. The host's internet upload and download equal the kernel's
/// byte counters of its interface (plus the cooked header's size over Ethernet's, per frame).
#[test]
fn linux_cooked_capture_counts_the_capturing_hosts_internet_traffic() {
    use crate::netns::{NetnsPair, run};
    let net = NetnsPair::new();
    let (host, router) = (&net.a, &net.b);
    // The "internet": a documentation address on the router's upstream side (a veth pair kept
    // inside the router namespace; this kernel has no dummy interfaces).
    let public = "203.0.113.7";
    let upstream = format!("{public}/24");
    for args in [
        &[
            "link", "add", "pub0", "type", "veth", "peer", "name", "pub1",
        ][..],
        &["addr", "add", &upstream, "dev", "pub0"],
        &["link", "set", "pub0", "up"],
        &["link", "set", "pub1", "up"],
    ] {
        let mut cmd = vec!["ip", "-n", router.as_str()];
        cmd.extend_from_slice(args);
        run(&cmd);
    }
    run(&[
        "ip",
        "-n",
        host,
        "route",
        "add",
        "default",
        "via",
        &net.b_ip.to_string(),
    ]);
    // Static neighbours: no ARP on the link, so it carries the pings alone.
    net.quiet_neighbours(&net.a_if);
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("any.pcap");
    /// Kills tcpdump if the test fails half-way.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut tcpdump = Command::new("ip")
        .args([
            "netns",
            "exec",
            host,
            "tcpdump",
            "-i",
            "any",
            "--immediate-mode",
            "-U",
            "-n",
            "-w",
        ])
        .arg(&cap)
        .stderr(Stdio::piped())
        .spawn()
        .map(Reap)
        .expect("tcpdump");
    // tcpdump says "listening on any" once its socket is open (after a line on the link type).
    let mut err = std::io::BufReader::new(tcpdump.0.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("listening on") {
        if std::io::BufRead::read_line(&mut err, &mut said).unwrap() == 0 {
            panic!("tcpdump ended: {said}");
        }
    }
    let before = net.kernel_counters(host, &net.a_if);
    let ping = net.exec(
        host,
        &[
            "ping", "-c", "25", "-i", "0.02", "-s", "1200", "-W", "2", public,
        ],
    );
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let moved = net.kernel_counters(host, &net.a_if).since(before);
    std::thread::sleep(Duration::from_millis(300));
    run(&["kill", "-INT", &tcpdump.0.id().to_string()]);
    tcpdump.0.wait().unwrap();
    assert_eq!(
        (moved.tx_packets, moved.rx_packets),
        (25, 25),
        "the link carried only the pings"
    );

    let bytes = std::fs::read(&cap).unwrap();
    let linktype = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
    let extra = match linktype {
        113 => 16 - 14,
        276 => 20 - 14,
        other => panic!("tcpdump -i any wrote link type {other}"),
    };
    let (json, err, code) = replay(cap.to_str().unwrap(), None);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let me = rows
        .iter()
        .find(|r| r["mac"] == net.a_mac.to_string())
        .unwrap_or_else(|| panic!("the capturing host is not in {json}"));
    assert_eq!(
        me["internet_upload_bytes"].as_u64().unwrap(),
        moved.tx_bytes + extra * moved.tx_packets,
        "{me}"
    );
    assert_eq!(
        me["internet_download_bytes"].as_u64().unwrap(),
        moved.rx_bytes + extra * moved.rx_packets,
        "{me}"
    );
}

/// ACCOUNTING.md §2, group source addresses: a frame whose source MAC has the group bit (IEEE 802
/// forbids it: such a frame is forged or corrupt) is counted as sent by that address, as tshark
/// counts it; the survey keeps such a probing client too (tests/it/survey.rs, the day of probes).
#[test]
fn a_group_source_address_is_counted_as_sent_like_any_other() {
    require_tshark();
    let dir = tempfile::tempdir().unwrap();
    let mut b = std::fs::read(corpus(ETHER)).unwrap();
    // The first record's source MAC (bytes 6..12 of its frame) becomes 01:00:5e:00:00:fb.
    let src = 24 + 16 + 6;
    b[src..src + 6].copy_from_slice(&[0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
    let p = dir.path().join("group-source.pcap");
    std::fs::write(&p, b).unwrap();
    let ours = tallies(&p);
    let group = &ours["01:00:5e:00:00:fb"];
    assert_eq!(group.frames_sent, 1, "{group:?}");
    let tshark = run_tshark(&p).unwrap();
    assert_eq!(
        endpoint_diffs(&ours, &tshark.endpoints),
        Vec::<String>::new()
    );
}
