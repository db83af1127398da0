//! The generated household capture through the real binary: `replay --json` must equal the
//! generator's own, independently kept totals for every MAC and field, and `replay --db`
//! followed by `export` must hold the same numbers in every bucket size.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_lanmeter");

fn lanmeter(args: &[&str], dir: &Path) -> String {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env("TZ", "UTC")
        .output()
        .expect("the lanmeter binary runs");
    assert!(
        out.status.success(),
        "lanmeter {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn by_mac(rows: &Value) -> BTreeMap<String, &Value> {
    rows.as_array()
        .expect("a JSON array")
        .iter()
        .map(|r| (r["mac"].as_str().expect("mac").to_string(), r))
        .collect()
}

fn generate(dir: &Path, frames: &str, seed: &str) -> (Value, std::path::PathBuf) {
    let pcap = dir.join("home.pcap");
    lanmeter(
        &[
            "generate",
            pcap.to_str().unwrap(),
            "--frames",
            frames,
            "--seed",
            seed,
            "--duration-secs",
            "7200",
            "--expected",
            "expected.json",
        ],
        dir,
    );
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    (expected, pcap)
}

#[test]
fn replay_json_equals_the_generators_totals_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (expected, pcap) = generate(dir.path(), "300000", "7");
    let got: Value = serde_json::from_str(&lanmeter(
        &["replay", "--json", pcap.to_str().unwrap()],
        dir.path(),
    ))
    .unwrap();
    let (want, got) = (by_mac(&expected), by_mac(&got));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "the same MACs"
    );
    let mut fields = 0;
    for (mac, w) in &want {
        for (k, v) in w.as_object().unwrap() {
            assert_eq!(&got[mac][k], v, "{mac} {k}");
            fields += 1;
        }
    }
    // Every ACCOUNTING.md §4 field the generator knows, for every MAC: not a vacuous comparison.
    assert!(
        want.len() > 20 && fields > 20 * 10,
        "{} MACs, {fields} fields",
        want.len()
    );
    assert!(
        want.values()
            .any(|d| d["internet_download_bytes"].as_u64() > Some(0)),
        "the household downloads from the internet"
    );
}

#[test]
fn replay_into_a_database_keeps_every_byte_in_every_bucket_size() {
    let dir = tempfile::tempdir().unwrap();
    let (expected, pcap) = generate(dir.path(), "100000", "11");
    lanmeter(
        &[
            "replay",
            pcap.to_str().unwrap(),
            "--db",
            "home.db",
            "--json",
        ],
        dir.path(),
    );
    let want = by_mac(&expected);
    const FIELDS: [&str; 6] = [
        "frames_sent",
        "frames_received",
        "bytes_sent",
        "bytes_received",
        "internet_upload_bytes",
        "internet_download_bytes",
    ];
    for period in ["minute", "hour", "day", "month"] {
        let rows: Value = serde_json::from_str(&lanmeter(
            &[
                "export", "--db", "home.db", "--period", period, "--format", "json",
            ],
            dir.path(),
        ))
        .unwrap();
        let mut sums: BTreeMap<String, [u64; 6]> = BTreeMap::new();
        for r in rows.as_array().unwrap() {
            assert_eq!(r["period"], period);
            let s = sums
                .entry(r["mac"].as_str().unwrap().to_string())
                .or_default();
            for (i, f) in FIELDS.iter().enumerate() {
                s[i] += r[f].as_u64().unwrap();
            }
        }
        assert_eq!(sums.len(), want.len(), "{period}: one series per MAC");
        for (mac, w) in &want {
            for (i, f) in FIELDS.iter().enumerate() {
                assert_eq!(sums[mac][i], w[f].as_u64().unwrap(), "{period} {mac} {f}");
            }
        }
    }
    // A second replay of the same file adds to the stored history: exactly double.
    lanmeter(
        &["replay", pcap.to_str().unwrap(), "--db", "home.db"],
        dir.path(),
    );
    let rows: Value = serde_json::from_str(&lanmeter(
        &[
            "export", "--db", "home.db", "--period", "day", "--format", "json",
        ],
        dir.path(),
    ))
    .unwrap();
    let total: u64 = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bytes_sent"].as_u64().unwrap())
        .sum();
    let want_total: u64 = want
        .values()
        .map(|w| w["bytes_sent"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 2 * want_total);
}

/// `generate --snaplen` stores whole frames (up to the snaplen) for tcpreplay, which sends the
/// stored bytes; the counted totals, taken from the original lengths, do not change.
#[test]
fn generate_snaplen_stores_longer_frames_with_the_same_totals() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("full.pcap");
    let path = pcap.to_str().unwrap();
    let args = ["generate", path, "--frames", "20000", "--seed", "3"];
    lanmeter(
        &[
            &args[..],
            &["--snaplen", "1514", "--expected", "expected.json"],
        ]
        .concat(),
        dir.path(),
    );
    let b = std::fs::read(&pcap).unwrap();
    let le32 = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    assert_eq!(le32(16), 1514, "the file header's snaplen");
    let (mut at, mut longest) = (24, 0);
    while at < b.len() {
        let (caplen, len) = (le32(at + 8), le32(at + 12));
        assert!(caplen <= 1514 && caplen == len.min(1514), "record at {at}");
        longest = longest.max(caplen);
        at += 16 + caplen as usize;
    }
    assert_eq!(longest, 1514, "full-size frames are stored whole");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("expected.json")).unwrap())
            .unwrap();
    let got: Value =
        serde_json::from_str(&lanmeter(&["replay", "--json", path], dir.path())).unwrap();
    let (want, got) = (by_mac(&expected), by_mac(&got));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (mac, w) in &want {
        for (k, v) in w.as_object().unwrap() {
            assert_eq!(&got[mac][k], v, "{mac} {k}");
        }
    }
}
