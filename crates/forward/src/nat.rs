//! NAT with nftables: one table of our own (`inet edgevip`), never touching anyone
//! else's. Per VIP:port:protocol a DNAT to a random ready endpoint (numgen map, so each
//! new flow picks one; conntrack keeps a flow on its endpoint), and SNAT (masquerade) of
//! everything whose original destination was a VIP, so replies come back through this
//! node. The whole table is replaced in one transaction (add, delete, re-create), and only
//! when the rules change. Every edge node keeps the rules, so a new master forwards from
//! its first packet.

use std::borrow::Cow;
use std::net::IpAddr;

use nftables::expr::{
    CT, CTDir, Expression, Map, NamedExpression, NgMode, Numgen, Payload, PayloadField, SetItem,
};
use nftables::schema::{Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::stmt::{Match, NAT, NATFamily, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::spec::NatService;

pub const TABLE: &str = "edgevip";

/// The complete batch for `services`: it creates the table if missing, deletes it, and
/// creates it again with the new rules, so the kernel swaps old for new atomically.
pub fn ruleset(services: &[NatService]) -> Nftables<'static> {
    let table = Table {
        family: NfFamily::INet,
        name: TABLE.into(),
        handle: None,
    };
    let mut objs = vec![
        NfObject::CmdObject(NfCmd::Add(NfListObject::Table(table.clone()))),
        NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(table.clone()))),
        NfObject::CmdObject(NfCmd::Add(NfListObject::Table(table))),
    ];
    for (name, hook, prio) in [
        ("prerouting", NfHook::Prerouting, -100),
        ("output", NfHook::Output, -100),
        ("postrouting", NfHook::Postrouting, 100),
    ] {
        objs.push(NfObject::CmdObject(NfCmd::Add(NfListObject::Chain(
            Chain {
                family: NfFamily::INet,
                table: TABLE.into(),
                name: name.into(),
                _type: Some(NfChainType::NAT),
                hook: Some(hook),
                prio: Some(prio),
                policy: Some(NfChainPolicy::Accept),
                ..Default::default()
            },
        ))));
    }
    let mut sorted: Vec<&NatService> = services.iter().filter(|s| !s.backends.is_empty()).collect();
    sorted.sort();
    for s in &sorted {
        // Prerouting for traffic arriving at the VIP; output for clients on the node itself.
        for chain in ["prerouting", "output"] {
            objs.push(rule(chain, dnat_rule(s)));
        }
    }
    let mut vips: Vec<IpAddr> = sorted.iter().map(|s| s.vip).collect();
    vips.sort();
    vips.dedup();
    for v in vips {
        let fam = if v.is_ipv4() { "ip daddr" } else { "ip6 daddr" };
        objs.push(rule(
            "postrouting",
            vec![
                Statement::Match(Match {
                    left: Expression::Named(NamedExpression::CT(CT {
                        key: fam.into(),
                        family: None,
                        dir: Some(CTDir::Original),
                    })),
                    right: Expression::String(v.to_string().into()),
                    op: Operator::EQ,
                }),
                Statement::Masquerade(None),
            ],
        ));
    }
    Nftables {
        objects: Cow::Owned(objs),
    }
}

fn rule(chain: &'static str, expr: Vec<Statement<'static>>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(Rule {
        family: NfFamily::INet,
        table: TABLE.into(),
        chain: chain.into(),
        expr: Cow::Owned(expr),
        ..Default::default()
    })))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn dnat_rule(s: &NatService) -> Vec<Statement<'static>> {
    let v4 = s.vip.is_ipv4();
    let entries: Vec<SetItem<'static>> = s
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            SetItem::Mapping(
                Expression::Number(i as u32),
                Expression::Named(NamedExpression::Concat(vec![
                    Expression::String(b.ip().to_string().into()),
                    Expression::Number(u32::from(b.port())),
                ])),
            )
        })
        .collect();
    vec![
        Statement::Match(Match {
            left: payload(if v4 { "ip" } else { "ip6" }, "daddr"),
            right: Expression::String(s.vip.to_string().into()),
            op: Operator::EQ,
        }),
        Statement::Match(Match {
            left: payload(s.proto.as_str(), "dport"),
            right: Expression::Number(u32::from(s.port)),
            op: Operator::EQ,
        }),
        Statement::DNAT(Some(NAT {
            addr: Some(Expression::Named(NamedExpression::Map(Box::new(Map {
                key: Expression::Named(NamedExpression::Numgen(Numgen {
                    mode: NgMode::Random,
                    ng_mod: s.backends.len() as u32,
                    offset: None,
                })),
                data: Expression::Named(NamedExpression::Set(entries)),
            })))),
            family: Some(if v4 { NATFamily::IP } else { NATFamily::IP6 }),
            port: None,
            flags: None,
        })),
    ]
}

/// The batch that removes our table (and nothing else) — used on shutdown.
pub fn teardown() -> Nftables<'static> {
    let table = Table {
        family: NfFamily::INet,
        name: TABLE.into(),
        handle: None,
    };
    Nftables {
        objects: Cow::Owned(vec![
            NfObject::CmdObject(NfCmd::Add(NfListObject::Table(table.clone()))),
            NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(table))),
        ]),
    }
}

mod keeper;
pub use keeper::{Applied, Keeper, NatError, Nft};

#[cfg(test)]
mod tests;
