//! Home Assistant over MQTT: the real `lanmeter run` publishes to a real mosquitto broker on
//! loopback; `mosquitto_sub` (Debian mosquitto-clients) records what arrives. The broker is
//! killed and started again on the same port mid-test, and lanmeter must come back to it.
use crate::{LANMETER, hermetic};
use lanmeter::model::{Counts, MacAddr, MinuteUsage, Sighting};
use lanmeter::plan::{CycleRule, Plan};
use lanmeter::store::Store;
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const GB: u64 = 1_000_000_000;
/// Bytes the test writes for one device two minutes ago.
const RECENT: u64 = 3_000_000;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn lanmeter(args: &[&str]) {
    let out = hermetic(&mut Command::new(LANMETER))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lanmeter {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn broker(conf: &Path, port: u16) -> Kill {
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (Debian package mosquitto; `make deps-test`)");
    // Listening once a TCP connect succeeds.
    let until = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "mosquitto did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Kill(child)
}

/// `mosquitto_sub` on every topic; each line "topic payload" arrives on the channel.
fn subscribe(port: u16) -> (Kill, Receiver<(String, String)>) {
    let mut child = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-v", "-t", "#"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub (Debian package mosquitto-clients)");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some((t, p)) = line.split_once(' ') {
                let _ = tx.send((t.to_string(), p.to_string()));
            }
        }
    });
    (Kill(child), rx)
}

/// Collects messages until `done` holds for them (panics after `secs`).
fn collect(
    rx: &Receiver<(String, String)>,
    secs: u64,
    done: impl Fn(&std::collections::HashMap<String, String>) -> bool,
) -> std::collections::HashMap<String, String> {
    let mut got = std::collections::HashMap::new();
    let until = Instant::now() + Duration::from_secs(secs);
    while !done(&got) {
        let left = until.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; got {got:#?}");
        if let Ok((t, p)) = rx.recv_timeout(left.min(Duration::from_millis(200))) {
            got.insert(t, p);
        }
    }
    got
}

#[test]
fn home_assistant_discovery_and_state_over_a_real_broker_that_restarts() {
    crate::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (pcap, db) = (dir.path().join("h.pcap"), dir.path().join("m.db"));
    let (p, d) = (pcap.to_str().unwrap(), db.to_str().unwrap());
    lanmeter(&["generate", p, "--frames", "3000", "--devices", "4"]);
    lanmeter(&["replay", p, "--db", d]);

    // One device with traffic two minutes ago and seen just now: online, a known rate.
    let now = jiff::Timestamp::now().as_second();
    let minute = (now - 120).div_euclid(60) * 60;
    let devices = Store::open(&db).unwrap().list_devices().unwrap();
    let active: MacAddr = devices.iter().find(|d| !d.is_gateway).unwrap().mac;
    let idle: MacAddr = devices
        .iter()
        .find(|d| !d.is_gateway && d.mac != active)
        .unwrap()
        .mac;
    {
        let mut store = Store::open(&db).unwrap();
        let usage = [MinuteUsage {
            mac: active,
            minute,
            counts: Counts {
                frames_received: 10,
                bytes_received: RECENT,
                internet_download_bytes: RECENT,
                ..Counts::default()
            },
        }];
        let seen = [Sighting {
            mac: active,
            first_seen: minute * 1_000_000_000,
            last_seen: now * 1_000_000_000,
            is_gateway: false,
        }];
        store.write_flush(&usage, &seen).unwrap();
        store
            .set_plan(
                &Plan {
                    allowance_bytes: Some(50 * GB),
                    cycle: CycleRule::Monthly { start_day: 1 },
                    ..Plan::default()
                },
                now,
            )
            .unwrap();
    }

    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let first = broker(&conf, port);
    let (sub, rx) = subscribe(port);

    let config = dir.path().join("lanmeter.toml");
    std::fs::write(&config, "").unwrap();
    let web = free_port();
    let mut daemon = Kill(
        hermetic(&mut Command::new(LANMETER))
            .arg("--config")
            .arg(&config)
            .args(["run", "--interface", "lo", "--db", d])
            .env("TZ", "UTC")
            .env("LANMETER_TIMEZONE", "UTC")
            .env("LANMETER_MQTT_HOST", "127.0.0.1")
            .env("LANMETER_MQTT_PORT", port.to_string())
            .env("LANMETER_MQTT_INTERVAL_SECS", "5")
            .env("LANMETER_DISCOVERY", "false")
            .env("LANMETER_ARP_SWEEP_INTERVAL_SECS", "0")
            .env("LANMETER_BACKUP_KEEP", "0")
            .env("LANMETER_LISTEN", format!("127.0.0.1:{web}"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let (a, i) = (lanmeter::mqtt::mac_id(active), lanmeter::mqtt::mac_id(idle));
    let topics = [
        format!("homeassistant/sensor/lanmeter_{a}_today/config"),
        format!("homeassistant/sensor/lanmeter_{a}_rate/config"),
        format!("homeassistant/binary_sensor/lanmeter_{a}_online/config"),
        format!("homeassistant/sensor/lanmeter_{i}_today/config"),
        "homeassistant/sensor/lanmeter_household_cycle_used/config".to_string(),
        "homeassistant/sensor/lanmeter_household_cycle_remaining/config".to_string(),
        format!("lanmeter/{a}/today_bytes"),
        format!("lanmeter/{a}/rate_bps"),
        format!("lanmeter/{a}/online"),
        format!("lanmeter/{i}/online"),
        format!("lanmeter/{i}/today_bytes"),
        "lanmeter/household/cycle_used_bytes".to_string(),
        "lanmeter/household/cycle_remaining_bytes".to_string(),
    ];
    let got = collect(&rx, 15, |g| topics.iter().all(|t| g.contains_key(t)));

    let json = |t: &str| -> Value { serde_json::from_str(&got[t]).unwrap() };
    let today = json(&topics[0]);
    assert_eq!(today["unique_id"], format!("lanmeter_{a}_today"));
    assert_eq!(today["state_topic"], format!("lanmeter/{a}/today_bytes"));
    assert_eq!(today["unit_of_measurement"], "B");
    assert_eq!(today["device_class"], "data_size");
    assert_eq!(today["device"]["identifiers"][0], format!("lanmeter_{a}"));
    assert!(
        today["device"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    assert!(today["name"].is_string());
    let rate = json(&topics[1]);
    assert_eq!(rate["device_class"], "data_rate");
    assert_eq!(rate["unit_of_measurement"], "bit/s");
    assert_eq!(rate["state_topic"], format!("lanmeter/{a}/rate_bps"));
    let online = json(&topics[2]);
    assert_eq!(online["device_class"], "connectivity");
    assert_eq!(online["state_topic"], format!("lanmeter/{a}/online"));
    let used = json(&topics[4]);
    assert_eq!(used["device"]["identifiers"][0], "lanmeter_household");
    assert_eq!(used["state_topic"], "lanmeter/household/cycle_used_bytes");

    // Values: the test's own rows (the replayed capture lies in the past, so not today).
    assert_eq!(got[&topics[6]], RECENT.to_string());
    let rate_bps: u64 = got[&topics[7]].parse().unwrap();
    // RECENT bytes over the 5-minute window up to now (300..=360 s): 8 * RECENT / secs.
    assert!(
        (8 * RECENT / 361..=8 * RECENT / 300).contains(&rate_bps),
        "{rate_bps}"
    );
    assert_eq!(got[&topics[8]], "ON");
    assert_eq!(got[&topics[9]], "OFF");
    assert_eq!(got[&topics[10]], "0");
    let used_bytes: u64 = got[&topics[11]].parse().unwrap();
    let left: u64 = got[&topics[12]].parse().unwrap();
    assert!(used_bytes >= RECENT, "{used_bytes}");
    assert_eq!(used_bytes + left, 50 * GB);

    // The broker goes away and comes back on the same port, with nothing retained.
    drop(sub);
    drop(first);
    std::thread::sleep(Duration::from_millis(1500));
    let _second = broker(&conf, port);
    let (_sub2, rx2) = subscribe(port);
    let again = collect(&rx2, 15, |g| {
        g.contains_key(&topics[0]) && g.contains_key(&topics[6]) && g.contains_key(&topics[4])
    });
    assert_eq!(again[&topics[6]], RECENT.to_string());
    assert!(daemon.0.try_wait().unwrap().is_none(), "lanmeter exited");
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status();
    let until = Instant::now() + Duration::from_secs(10);
    while daemon.0.try_wait().unwrap().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = daemon.0.try_wait().unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
