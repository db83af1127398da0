//! `lanmeter doctor` in network namespaces: on a link that carries only its own traffic it says
//! so and points to the topologies; when another device's unicast frames arrive (as on a mirror
//! port) it says it sees them.

use crate::netns::NetnsPair;
use std::process::Output;

fn doctor(p: &NetnsPair, state: &std::path::Path, traffic: &[&str]) -> (Output, String) {
    let config = state.join("lanmeter.toml");
    std::fs::write(
        &config,
        format!("state_dir = \"{}\"\n", state.join("data").display()),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_lanmeter");
    let child = p.spawn(
        &p.a,
        &[
            bin,
            "doctor",
            "--config",
            config.to_str().unwrap(),
            "--interface",
            &p.a_if,
            "--listen-secs",
            "2",
        ],
    );
    // Traffic while the doctor listens (it opens the capture within a few ms of starting).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = p.exec(&p.b, traffic);
    assert!(out.status.success(), "{traffic:?}: {out:?}");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

#[test]
fn doctor_says_a_link_with_only_its_own_traffic_cannot_see_the_household() {
    let p = NetnsPair::new();
    let dir = tempfile::tempdir().unwrap();
    let b_to_a = ["ping", "-c", "8", "-i", "0.1", "-q", &p.a_ip.to_string()];
    let (out, text) = doctor(&p, dir.path(), &b_to_a);
    // A warning, not a failure: the installation works, it is only placed where it sees nothing.
    assert!(out.status.success(), "{text}\n{out:?}");
    let line = text
        .lines()
        .find(|l| l.contains("traffic visibility"))
        .unwrap_or_else(|| panic!("no visibility check in:\n{text}"));
    assert!(line.starts_with("[warn]"), "{text}");
    assert!(line.contains("only this machine's own traffic"), "{text}");
    assert!(
        line.contains("1 other devices talked to it directly"),
        "{text}"
    );
    assert!(
        text.contains("fix: put this machine where the household's traffic passes")
            && text.contains("mirrors the router's port"),
        "{text}"
    );
    assert!(
        text.contains(&format!("[ ok ] interface: {} (configured)", p.a_if))
            || text.contains(&format!("{} exists and is up", p.a_if)),
        "{text}"
    );
}

#[test]
fn doctor_sees_frames_between_other_devices_as_on_a_mirror_port() {
    let p = NetnsPair::new();
    let dir = tempfile::tempdir().unwrap();
    // B sends unicast frames to a MAC that is not A's: A receives them as a mirror port would.
    let ghost = format!(
        "{}.{}.{}.77",
        p.b_ip.octets()[0],
        p.b_ip.octets()[1],
        p.b_ip.octets()[2]
    );
    let out = p.exec(
        &p.b,
        &[
            "ip",
            "neigh",
            "add",
            &ghost,
            "lladdr",
            "02:00:5e:10:20:30",
            "dev",
            &p.b_if,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    // ping fails (nobody answers); the frames are what matters, so its status is not checked.
    let (out, text) = doctor(
        &p,
        dir.path(),
        &[
            "sh",
            "-c",
            &format!("ping -c 8 -i 0.1 -W 1 -q {ghost}; true"),
        ],
    );
    assert!(out.status.success(), "{text}\n{out:?}");
    let line = text
        .lines()
        .find(|l| l.contains("traffic visibility"))
        .unwrap();
    assert!(line.starts_with("[ ok ]"), "{text}");
    assert!(
        line.contains("saw 2 other devices' unicast traffic"),
        "{text}"
    );
    assert!(line.contains("mirror port"), "{text}");
}

/// `GET /api/v1/visibility` of the daemon listening on 127.0.0.1:8080 in `ns`.
fn visibility(p: &NetnsPair, token: &str) -> serde_json::Value {
    let out = p.exec(
        &p.a,
        &[
            "curl",
            "-sf",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "http://127.0.0.1:8080/api/v1/visibility",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The running daemon gives the doctor's verdict from what its own capture saw: on a link
/// with only its own traffic (B pings it) it says the Pi sees only itself and offers the three
/// set-ups; once another device's unicast frames to a third MAC arrive, as on a mirror port, it
/// says it sees them. No restart in between: the tally is the live capture's.
#[test]
fn the_running_daemon_tells_where_it_sits_from_its_own_capture() {
    use crate::daemon::{Daemon, setup};
    let dir = tempfile::tempdir().unwrap();
    let (p, config, db) = setup(dir.path(), 60);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("listen = \"127.0.0.1:8080\"\ndiscovery = false\n");
    std::fs::write(&config, text).unwrap();
    let token = crate::settings::admin_token(&db);
    let mut d = Daemon::start(&p, &config, &db);
    let a_ip = p.a_ip.to_string();
    let out = crate::daemon::ping(&p, &["-c", "5", "-i", "0.1"], &a_ip);
    assert!(out.status.success(), "{out:?}");
    let alone = crate::alerts::wait_for(
        "B's pings in the tally",
        std::time::Duration::from_secs(20),
        || {
            let v = visibility(&p, &token);
            (v["devices_talking_to_this_machine"] == 1).then_some(v)
        },
    );
    assert_eq!(alone["available"], true, "{alone}");
    assert_eq!(alone["setup"], "only_itself", "{alone}");
    assert_eq!(alone["sees_household"], false, "{alone}");
    assert_eq!(alone["other_devices_seen"], 0, "{alone}");
    assert_eq!(alone["interface"], p.a_if.as_str(), "{alone}");
    let remedies: Vec<&str> = alone["remedies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        remedies,
        [
            "Make the Pi your Wi-Fi access point",
            "Make the Pi the router",
            "Use a switch with a mirror port"
        ],
        "{alone}"
    );
    assert!(
        alone["explanation"]
            .as_str()
            .unwrap()
            .contains("1 other device talked to the Pi directly"),
        "{alone}"
    );

    // B now sends unicast frames to a MAC that is not A's: A receives them as a mirror port would.
    let ghost = format!(
        "{}.{}.{}.77",
        p.b_ip.octets()[0],
        p.b_ip.octets()[1],
        p.b_ip.octets()[2]
    );
    let out = p.exec(
        &p.b,
        &[
            "ip",
            "neigh",
            "add",
            &ghost,
            "lladdr",
            "02:00:5e:10:20:31",
            "dev",
            &p.b_if,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    p.exec(
        &p.b,
        &[
            "sh",
            "-c",
            &format!("ping -c 5 -i 0.1 -W 1 -q {ghost}; true"),
        ],
    );
    let mirror = crate::alerts::wait_for(
        "the ghost's frames in the tally",
        std::time::Duration::from_secs(20),
        || {
            let v = visibility(&p, &token);
            (v["setup"] == "mirror").then_some(v)
        },
    );
    assert_eq!(mirror["sees_household"], true, "{mirror}");
    assert_eq!(mirror["other_devices_seen"], 2, "B and the ghost: {mirror}");
    assert!(
        mirror["remedies"].as_array().unwrap().is_empty(),
        "{mirror}"
    );
    d.stop();
}
