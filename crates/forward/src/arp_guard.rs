//! No ARP for VIPs announced over BGP. They sit on `lo`, and Linux answers ARP on any
//! interface for any local address (`arp_ignore=0`, the default), so without this the node
//! would answer ARP for a BGP VIP on its segment and attract traffic outside the routes.
//! Global sysctls are not ours to change; instead one table of our own,
//! `arp edgevip_bgp`, drops incoming ARP requests for those VIPs (nothing else), replaced
//! as a whole (add, delete, re-create: one transaction) when the VIPs change, removed on
//! stop. Applied with the NAT's [`Nft`](crate::nat::Nft) runner.
//!
//! IPv6 needs nothing: ndisc answers a Neighbour Solicitation only for a target that is an
//! address of the receiving interface (`ndisc_recv_ns` looks it up with `ipv6_get_ifaddr`
//! on that device; proxy NDP aside, off by default), so a VIP on `lo` gets no NA on
//! another interface.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use nftables::expr::{Expression, NamedExpression, Payload, PayloadField, SetItem};
use nftables::schema::{Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

pub const TABLE: &str = "edgevip_bgp";

fn table() -> Table<'static> {
    Table {
        family: NfFamily::ARP,
        name: TABLE.into(),
        handle: None,
    }
}

/// The batch that makes the table drop ARP requests for `vips` (sorted, deduplicated);
/// with no VIP, the table is removed.
pub fn ruleset(vips: &[Ipv4Addr]) -> Nftables<'static> {
    let mut vips = vips.to_vec();
    vips.sort();
    vips.dedup();
    if vips.is_empty() {
        return teardown();
    }
    let mut objs = vec![
        NfObject::CmdObject(NfCmd::Add(NfListObject::Table(table()))),
        NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(table()))),
        NfObject::CmdObject(NfCmd::Add(NfListObject::Table(table()))),
        NfObject::CmdObject(NfCmd::Add(NfListObject::Chain(Chain {
            family: NfFamily::ARP,
            table: TABLE.into(),
            name: "input".into(),
            _type: Some(NfChainType::Filter),
            hook: Some(NfHook::Input),
            prio: Some(0),
            policy: Some(NfChainPolicy::Accept),
            ..Default::default()
        }))),
    ];
    let set: Vec<SetItem<'static>> = vips
        .iter()
        .map(|v| SetItem::Element(Expression::String(v.to_string().into())))
        .collect();
    objs.push(NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(Rule {
        family: NfFamily::ARP,
        table: TABLE.into(),
        chain: "input".into(),
        expr: Cow::Owned(vec![
            Statement::Match(Match {
                left: payload("arp", "operation"),
                right: Expression::String("request".into()),
                op: Operator::EQ,
            }),
            Statement::Match(Match {
                left: payload("arp", "daddr ip"),
                right: Expression::Named(NamedExpression::Set(set)),
                op: Operator::IN,
            }),
            Statement::Drop(None),
        ]),
        ..Default::default()
    }))));
    Nftables {
        objects: Cow::Owned(objs),
    }
}

/// The batch that removes our table (and nothing else).
pub fn teardown() -> Nftables<'static> {
    Nftables {
        objects: Cow::Owned(vec![
            NfObject::CmdObject(NfCmd::Add(NfListObject::Table(table()))),
            NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(table()))),
        ]),
    }
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_each_vip_once_and_empty_tears_down() {
        let a: Ipv4Addr = "203.0.113.10".parse().unwrap();
        let b: Ipv4Addr = "192.0.2.7".parse().unwrap();
        let json = serde_json::to_string(&ruleset(&[a, b, a])).unwrap();
        assert!(json.contains(r#""family":"arp""#), "{json}");
        assert!(json.contains(r#""field":"daddr ip""#), "{json}");
        assert!(json.contains(r#""request""#), "{json}");
        assert_eq!(json.matches("203.0.113.10").count(), 1, "{json}");
        assert!(
            json.find("192.0.2.7") < json.find("203.0.113.10"),
            "sorted: {json}"
        );
        assert_eq!(
            serde_json::to_string(&ruleset(&[])).unwrap(),
            serde_json::to_string(&teardown()).unwrap()
        );
    }
}
