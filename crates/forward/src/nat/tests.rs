use std::net::SocketAddr;

use super::*;
use crate::spec::Proto;

fn svc(vip: &str, port: u16, proto: Proto, backends: &[&str]) -> NatService {
    NatService {
        vip: vip.parse().unwrap(),
        port,
        proto,
        backends: backends
            .iter()
            .map(|b| b.parse::<SocketAddr>().unwrap())
            .collect(),
    }
}

fn sample() -> Vec<NatService> {
    vec![
        svc(
            "192.0.2.100",
            80,
            Proto::Tcp,
            &["198.51.100.1:8080", "198.51.100.2:8080"],
        ),
        svc("192.0.2.100", 53, Proto::Udp, &["198.51.100.3:5353"]),
        svc("2001:db8::100", 80, Proto::Tcp, &["[2001:db8:1::1]:8080"]),
        svc("192.0.2.101", 443, Proto::Tcp, &[]),
    ]
}

/// The rules as data, compared with the committed golden file. Regenerate with
/// `EDGEVIP_BLESS=1 cargo test -p edgevip-forward` after checking the diff.
#[test]
fn ruleset_matches_the_golden_file() {
    let got = serde_json::to_string_pretty(&ruleset(&sample())).unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/nat-golden.json");
    if std::env::var_os("EDGEVIP_BLESS").is_some() {
        std::fs::write(path, &got).unwrap();
    }
    let want = std::fs::read_to_string(path).expect("golden file");
    assert_eq!(got, want, "rules changed; bless after review");
}

#[test]
fn the_batch_replaces_only_our_table_and_skips_empty_services() {
    let set = ruleset(&sample());
    let v = serde_json::to_value(&set).unwrap();
    let objs = v["nftables"].as_array().unwrap();
    // add table, delete table, add table: an atomic swap inside one transaction.
    assert_eq!(objs[0]["add"]["table"]["name"], TABLE);
    assert_eq!(objs[1]["delete"]["table"]["name"], TABLE);
    assert_eq!(objs[2]["add"]["table"]["name"], TABLE);
    for o in objs {
        let inner = o.as_object().unwrap().values().next().unwrap();
        let obj = inner.as_object().unwrap().values().next().unwrap();
        let table = obj.get("table").or(obj.get("name")).unwrap();
        assert_eq!(table, TABLE, "touches only {TABLE}: {o}");
    }
    let rules: Vec<&serde_json::Value> = objs.iter().filter_map(|o| o["add"].get("rule")).collect();
    // 3 services with backends × (prerouting + output) + masquerade for 2 VIPs.
    assert_eq!(rules.len(), 3 * 2 + 2);
    let text = serde_json::to_string(&set).unwrap();
    assert!(
        !text.contains("192.0.2.101"),
        "a service without endpoints gets no rule"
    );
}

#[test]
fn a_thousand_endpoints_make_one_map() {
    let backends: Vec<String> = (0..1000)
        .map(|i| format!("10.{}.{}.{}:8080", i / 65536, (i / 256) % 256, i % 256))
        .collect();
    let refs: Vec<&str> = backends.iter().map(String::as_str).collect();
    let set = ruleset(&[svc("192.0.2.100", 80, Proto::Tcp, &refs)]);
    let v = serde_json::to_value(&set).unwrap();
    let rule = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| o["add"].get("rule"))
        .unwrap();
    let map = &rule["expr"][2]["dnat"]["addr"]["map"];
    assert_eq!(map["key"]["numgen"]["mod"], 1000);
    assert_eq!(map["data"]["set"].as_array().unwrap().len(), 1000);
}
