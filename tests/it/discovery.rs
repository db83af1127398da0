//! Gateway and LAN detection against real kernel tables, inside a namespace pair where B plays
//! the router of A.

use crate::netns::{NetnsPair, run};
use lanmeter::discovery::{self, GatewayInfo};
use lanmeter::model::IpPrefix;
use std::net::Ipv6Addr;

#[test]
fn gateway_route_interface_and_prefixes_come_from_the_namespace_tables() {
    crate::init_tracing();
    let p = NetnsPair::new_with_ipv6();
    let (x, y) = (p.a_ip.octets()[1], p.a_ip.octets()[2]);
    let a6: Ipv6Addr = format!("fd00:{x}:{y}::1").parse().unwrap();
    let b6: Ipv6Addr = format!("fd00:{x}:{y}::2").parse().unwrap();
    // `nodad`: usable at once, no duplicate-address-detection wait.
    for (ns, ifname, ip) in [(&p.a, &p.a_if, a6), (&p.b, &p.b_if, b6)] {
        run(&[
            "ip",
            "-n",
            ns,
            "-6",
            "addr",
            "add",
            &format!("{ip}/64"),
            "dev",
            ifname,
            "nodad",
        ]);
    }

    // No default route yet: nothing to report.
    let (iface, gw) = p.in_ns(&p.a, || {
        (
            discovery::default_route_interface(),
            discovery::detect_gateway(&p.a_if),
        )
    });
    assert_eq!((iface, gw), (None, None));

    run(&[
        "ip",
        "-n",
        &p.a,
        "route",
        "add",
        "default",
        "via",
        &p.b_ip.to_string(),
    ]);
    run(&[
        "ip",
        "-n",
        &p.a,
        "-6",
        "route",
        "add",
        "default",
        "via",
        &b6.to_string(),
    ]);
    // Talk to the router once over each family so ARP and NDP have resolved its MAC.
    for target in [p.b_ip.to_string(), b6.to_string()] {
        let out = p.exec(&p.a, &["ping", "-c", "1", "-W", "2", &target]);
        assert!(out.status.success(), "ping {target}: {out:?}");
    }

    let (iface, gw, other, prefixes) = p.in_ns(&p.a, || {
        (
            discovery::default_route_interface(),
            discovery::detect_gateway(&p.a_if),
            discovery::detect_gateway("lo"),
            discovery::interface_prefixes(&p.a_if),
        )
    });
    assert_eq!(iface.as_deref(), Some(p.a_if.as_str()));
    assert_eq!(
        gw,
        Some(GatewayInfo {
            mac: p.b_mac,
            ipv4: Some(p.b_ip),
            ipv6: Some(b6),
        })
    );
    assert_eq!(other, None);
    let want4: IpPrefix = format!("10.{x}.{y}.0/24").parse().unwrap();
    let want6: IpPrefix = format!("fd00:{x}:{y}::/64").parse().unwrap();
    assert_eq!(
        prefixes.len(),
        2,
        "link-local must be left out: {prefixes:?}"
    );
    assert!(
        prefixes.contains(&want4) && prefixes.contains(&want6),
        "{prefixes:?}"
    );
}

#[test]
fn ipv6_only_gateway_is_found_through_the_neighbour_table() {
    let p = NetnsPair::new_with_ipv6();
    let (x, y) = (p.a_ip.octets()[1], p.a_ip.octets()[2]);
    let b6: Ipv6Addr = format!("fd01:{x}:{y}::2").parse().unwrap();
    run(&[
        "ip",
        "-n",
        &p.a,
        "-6",
        "addr",
        "add",
        &format!("fd01:{x}:{y}::1/64"),
        "dev",
        &p.a_if,
        "nodad",
    ]);
    run(&[
        "ip",
        "-n",
        &p.b,
        "-6",
        "addr",
        "add",
        &format!("{b6}/64"),
        "dev",
        &p.b_if,
        "nodad",
    ]);
    run(&[
        "ip",
        "-n",
        &p.a,
        "-6",
        "route",
        "add",
        "default",
        "via",
        &b6.to_string(),
    ]);
    let out = p.exec(&p.a, &["ping", "-c", "1", "-W", "2", &b6.to_string()]);
    assert!(out.status.success(), "{out:?}");
    let (iface, gw) = p.in_ns(&p.a, || {
        (
            discovery::default_route_interface(),
            discovery::detect_gateway(&p.a_if),
        )
    });
    assert_eq!(iface.as_deref(), Some(p.a_if.as_str()));
    assert_eq!(
        gw,
        Some(GatewayInfo {
            mac: p.b_mac,
            ipv4: None,
            ipv6: Some(b6),
        })
    );
}
