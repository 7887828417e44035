//! Fixtures shaped like FRR 8.4's output in the lab (trimmed).

use super::*;

const SUMMARY: &str = r#"{
"ipv4Unicast":{
  "routerId":"192.0.2.2", "as":64512,
  "peers":{
    "192.0.2.1":{"remoteAs":64500, "peerUptime":"00:00:23", "peerUptimeMsec":23000,
      "pfxRcd":0, "pfxSnt":1, "state":"Established", "connectionsEstablished":2,
      "connectionsDropped":1},
    "192.0.2.5":{"remoteAs":64500, "peerUptimeMsec":0, "pfxSnt":0, "state":"Active"}
  }
},
"ipv6Unicast":{}
}"#;

#[test]
fn sessions_from_the_summary() {
    let s = sessions(SUMMARY).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].peer, "192.0.2.1".parse::<IpAddr>().unwrap());
    assert!(s[0].is_established());
    assert_eq!(s[0].uptime, Some(Duration::from_secs(23)));
    assert_eq!((s[0].prefixes_sent, s[0].prefixes_received), (1, 0));
    assert_eq!((s[0].established_count, s[0].dropped_count), (2, 1));
    assert!(!s[1].is_established());
    assert_eq!(s[1].uptime, None);
    // bgpd with no router bgp at all prints {}.
    assert!(sessions("{}").unwrap().is_empty());
    assert!(sessions("% Unknown command").is_err());
}

#[test]
fn bfd_from_the_peer_list() {
    let b = bfd_sessions(
        r#"[{"multihop":false, "peer":"192.0.2.1", "local":"192.0.2.2", "status":"up",
             "uptime":22, "receive-interval":100, "transmit-interval":100,
             "detect-multiplier":3},
            {"peer":"192.0.2.5", "status":"down", "uptime":0}]"#,
    )
    .unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].status, "up");
    assert_eq!(b[0].uptime, Some(Duration::from_secs(22)));
    assert_eq!(b[0].receive_interval, Some(Duration::from_millis(100)));
    assert_eq!(b[0].multiplier, Some(3));
    assert_eq!((b[1].status.as_str(), b[1].uptime), ("down", None));
    assert!(bfd_sessions("{}").is_err());
}

#[test]
fn advertised_prefixes() {
    let a = advertised(
        r#"{"bgpTableVersion":2, "advertisedRoutes":{
              "203.0.113.11/32":{"network":"203.0.113.11/32"},
              "203.0.113.10/32":{"network":"203.0.113.10/32"}},
            "totalPrefixCounter":2}"#,
    )
    .unwrap();
    assert_eq!(a, ["203.0.113.10/32", "203.0.113.11/32"]);
    let none = advertised(r#"{"warning":"No such neighbor in this view/vrf"}"#).unwrap();
    assert!(none.is_empty());
}
