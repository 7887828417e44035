//! The decoder's fuzz harness, shared by the cargo-fuzz target (`fuzz/`) and the corpus
//! test that runs in CI without cargo-fuzz.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::checksum;
use crate::packet::{Advert, Auth, ChecksumForm, Version, decode, encode};
use crate::router::{Action, Config, Datagram, DropReason, Input, Link, Router, State};
use crate::time::Instant;
use crate::wire;

/// Input: one selector byte (bit 0: IPv6, bit 1: unicast destination), then the VRRP
/// message. Decoding must never panic; whatever decodes must re-encode and decode the same.
pub fn decode_one(data: &[u8]) {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let (src, dst): (IpAddr, IpAddr) = match (sel & 1 == 1, sel & 2 == 2) {
        (false, false) => (
            Ipv4Addr::new(192, 0, 2, 11).into(),
            Ipv4Addr::new(224, 0, 0, 18).into(),
        ),
        (false, true) => (
            Ipv4Addr::new(192, 0, 2, 11).into(),
            Ipv4Addr::new(192, 0, 2, 12).into(),
        ),
        (true, false) => (
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11).into(),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12).into(),
        ),
        (true, true) => (
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11).into(),
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x12).into(),
        ),
    };
    if let Ok(d) = decode(payload, src, dst) {
        let form = if d.checksum == ChecksumForm::MessageOnly {
            ChecksumForm::MessageOnly
        } else {
            ChecksumForm::PseudoHeader
        };
        let again = encode(&d.advert, src, dst, form).expect("a decoded advert re-encodes");
        let back = decode(&again, src, dst).expect("our own encoding decodes");
        assert_eq!(back.advert, d.advert);
    }
}

/// Reads the harness input a byte at a time; `None` ends the run.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// The addresses one run uses, all of one family.
struct Net {
    primary: IpAddr,
    /// Another address of ours on the interface.
    own2: IpAddr,
    peer: IpAddr,
    /// A link-local sender (IPv6) or an on-link stranger (IPv4).
    other: IpAddr,
    vips: Vec<IpAddr>,
    foreign_vip: IpAddr,
}

impl Net {
    fn new(v6: bool) -> Net {
        let v4 = |d: u8| IpAddr::from(Ipv4Addr::new(192, 0, 2, d));
        let g6 = |h: u16| IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, h));
        let l6 = |h: u16| IpAddr::from(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, h));
        if v6 {
            Net {
                primary: l6(0x11),
                own2: g6(0x11),
                peer: g6(0x12),
                other: l6(0x12),
                vips: vec![g6(0x100), g6(0x101)],
                foreign_vip: g6(0x200),
            }
        } else {
            Net {
                primary: v4(11),
                own2: v4(111),
                peer: v4(12),
                other: v4(99),
                vips: vec![v4(100), v4(101)],
                foreign_vip: v4(200),
            }
        }
    }
}

/// Most actions one input can produce (become master: 5, plus a fault's release).
const MAX_ACTIONS: usize = 8;
/// Timer expiries fed per step: a 10 ms interval over a long gap would otherwise spin.
const MAX_TIMERS_PER_STEP: usize = 16;

/// Input: three bytes of configuration (flags, priority, timing), then steps of
/// `[op, time advance]` plus op-specific bytes: received datagrams (raw, raw with a fixed
/// checksum, or built from fields), timer expiries, start/stop, priority, link and
/// tracking changes. Time only moves forward and the router's own timer fires at its
/// deadline. Every acceptance verdict must agree with the datagram, and every batch of
/// actions must keep the state machine's books straight (see `Books`).
pub fn accept_one(data: &[u8]) {
    let mut b = Bytes(data);
    let (Some(flags), Some(prio), Some(timing)) = (b.next(), b.next(), b.next()) else {
        return;
    };
    let bit = |n: u8| flags & (1 << n) != 0;
    let v6 = bit(0);
    let version = if bit(2) && !v6 {
        Version::V2
    } else {
        Version::V3
    };
    let interval_cs = match (version, timing % 4) {
        (Version::V3, 0) => 100,
        (Version::V3, 1) => 1,
        (Version::V3, 2) => 4095,
        (Version::V3, _) => 25,
        (Version::V2, 2) => 25500,
        (Version::V2, 3) => 200,
        (Version::V2, _) => 100,
    };
    let auth = if version == Version::V2 && bit(6) {
        Auth::Simple(*b"secret\0\0")
    } else {
        Auth::None
    };
    let net = Net::new(v6);
    let cfg = Config {
        vrid: 51,
        version,
        priority: prio.max(1),
        advert_interval_cs: interval_cs,
        preempt: bit(4),
        preempt_delay: [0, 1, 5, 300].map(Duration::from_secs)[usize::from(timing >> 2) % 4],
        primary: net.primary,
        handoff: bit(5),
        auth: auth.clone(),
    };
    let own = [net.primary, net.own2];
    let peers = [net.peer];
    let link = Link {
        unicast: bit(1),
        peers: &peers,
        unicast_min_ttl: if bit(7) { 64 } else { wire::TTL },
        own: &own,
        vips: &net.vips,
        strict_vips: bit(3),
    };
    let mut r = Router::new(cfg.clone());
    let mut books = Books::new(&r);
    let mut now = Instant::ZERO;
    for _ in 0..256 {
        let (Some(op), Some(dt)) = (b.next(), b.next()) else {
            return;
        };
        now = now + Duration::from_millis(u64::from(dt) * 20);
        for _ in 0..MAX_TIMERS_PER_STEP {
            match r.deadline() {
                Some(at) if at <= now => {
                    let a = r.handle(Input::Timer, at);
                    books.check(&r, Input::Timer, &a, at);
                }
                _ => break,
            }
        }
        let input = match op % 8 {
            0..=3 => {
                let v = op >> 3;
                let src = [net.peer, net.other, net.own2, net.primary][usize::from(v & 3)];
                let dst = if v & 4 == 0 {
                    wire::multicast_group(!v6)
                } else {
                    net.primary
                };
                let ttl = [wire::TTL, 254, 64, 1][usize::from(v >> 3) & 3];
                let payload = match op % 4 {
                    0 => {
                        let len = b.next().unwrap_or(0);
                        b.take(usize::from(len)).to_vec()
                    }
                    1 => {
                        let len = b.next().unwrap_or(0);
                        let mut p = b.take(usize::from(len)).to_vec();
                        fix_checksum(&mut p, src, dst);
                        p
                    }
                    _ => match built(&mut b, &cfg, &net, src, dst) {
                        Some(p) => p,
                        None => continue,
                    },
                };
                let d = Datagram {
                    src,
                    dst,
                    ttl,
                    payload: &payload,
                };
                let verdict = r.accept(&d, &link);
                check_verdict(&cfg, &link, &d, &verdict);
                match verdict {
                    Ok(a) => Input::Advert(a.heard),
                    Err(_) => continue,
                }
            }
            4 => Input::Timer,
            5 if op & 8 == 0 => Input::Startup,
            5 => Input::Shutdown,
            6 => Input::PriorityChanged(b.next().unwrap_or(0)),
            _ => match (op >> 3) % 4 {
                0 => Input::InterfaceDown,
                1 => Input::InterfaceUp,
                2 => Input::TrackFault(true),
                _ => Input::TrackFault(false),
            },
        };
        let a = r.handle(input, now);
        books.check(&r, input, &a, now);
    }
}

/// A VRRP message from fields: priority, interval, then a byte choosing VRID, address
/// list, authentication, version and checksum form. `None` when it cannot be encoded.
fn built(b: &mut Bytes<'_>, cfg: &Config, net: &Net, src: IpAddr, dst: IpAddr) -> Option<Vec<u8>> {
    let (priority, ib, k) = (b.next()?, b.next()?, b.next()?);
    let version = match (k & 16 != 0, cfg.version) {
        (false, v) => v,
        (true, Version::V2) => Version::V3,
        (true, Version::V3) => Version::V2,
    };
    let interval_cs = match (ib < 200, version) {
        (true, _) => cfg.advert_interval_cs,
        (false, Version::V3) => u16::from(ib) * 16,
        (false, Version::V2) => u16::from(ib - 199) * 100,
    };
    let addresses = match (k >> 1) & 3 {
        0 => net.vips.clone(),
        1 => net.vips.iter().rev().copied().collect(),
        2 => net.vips[..1].to_vec(),
        _ => vec![net.vips[0], net.foreign_vip],
    };
    let auth = match (version, k & 8 != 0) {
        (Version::V3, _) => Auth::None,
        (Version::V2, false) => cfg.auth.clone(),
        (Version::V2, true) => Auth::Simple(*b"wrong\0\0\0"),
    };
    let advert = Advert {
        version,
        vrid: if k & 1 == 0 { cfg.vrid } else { cfg.vrid + 1 },
        priority,
        interval_cs,
        addresses,
        auth,
    };
    let form = if k & 32 == 0 {
        ChecksumForm::PseudoHeader
    } else {
        ChecksumForm::MessageOnly
    };
    encode(&advert, src, dst, form).ok()
}

/// Writes the checksum the message's version nibble calls for, so that the fuzzer's raw
/// bytes get past it and reach the field checks.
fn fix_checksum(p: &mut [u8], src: IpAddr, dst: IpAddr) {
    if p.len() < 8 {
        return;
    }
    p[6..8].fill(0);
    let sum = if p[0] >> 4 == 3 {
        checksum::with_pseudo_header(src, dst, p)
    } else {
        checksum::message_only(p)
    };
    p[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// An acceptance verdict must agree with what the datagram is.
fn check_verdict(
    cfg: &Config,
    link: &Link<'_>,
    d: &Datagram<'_>,
    verdict: &Result<crate::Accepted, DropReason>,
) {
    let decoded = decode(d.payload, d.src, d.dst);
    match verdict {
        Ok(a) => {
            assert!(
                d.src != cfg.primary && !link.own.contains(&d.src),
                "own packet"
            );
            let min = if link.unicast {
                link.unicast_min_ttl
            } else {
                wire::TTL
            };
            assert!(d.ttl >= min, "TTL {} accepted", d.ttl);
            let adv = decoded.expect("an accepted advert decodes").advert;
            assert_eq!(adv.vrid, cfg.vrid);
            assert_eq!(adv.version, cfg.version);
            assert_eq!(a.heard.src, d.src);
            assert_eq!(a.heard.priority, adv.priority);
            assert_eq!(a.heard.interval_cs, adv.interval_cs);
            assert!(a.vips_match || !link.strict_vips, "VIP mismatch accepted");
            if cfg.version == Version::V2 {
                assert_eq!(adv.auth, cfg.auth);
                assert_eq!(adv.interval_cs, cfg.advert_interval_cs);
            }
        }
        Err(DropReason::Malformed(e)) => assert_eq!(decoded.as_ref().err(), Some(e)),
        Err(
            DropReason::OtherVrid
            | DropReason::VersionMismatch
            | DropReason::Auth
            | DropReason::IntervalMismatch
            | DropReason::VipMismatch,
        ) => assert!(
            decoded.is_ok(),
            "dropped for a field of an undecodable advert"
        ),
        Err(_) => {}
    }
}

/// What the caller of the state machine would keep: which state it reported last and
/// whether the VIPs are on the interface.
struct Books {
    state: State,
    held: bool,
    releasing: bool,
}

impl Books {
    fn new(r: &Router) -> Books {
        Books {
            state: r.state(),
            held: false,
            releasing: false,
        }
    }

    /// State changes chain, VIPs are added only when absent and removed only when held,
    /// adverts and announcements go out only while held, the timer never points to the
    /// past and ends where the router says; the owner never yields to an advert.
    fn check(&mut self, r: &Router, input: Input, actions: &[Action], now: Instant) {
        let ctx = || format!("{input:?} at {now}: {actions:?}");
        assert!(actions.len() <= MAX_ACTIONS, "{}", ctx());
        let before = self.state;
        if matches!(input, Input::Advert(_)) && matches!(before, State::Init | State::Fault) {
            assert!(actions.is_empty(), "a silent router acted: {}", ctx());
        }
        let mut timer = None;
        for a in actions {
            match a {
                Action::StateChanged { from, to, .. } => {
                    assert_eq!(*from, self.state, "{}", ctx());
                    assert_ne!(from, to, "{}", ctx());
                    self.state = *to;
                }
                Action::AddVips => {
                    assert!(!self.held, "VIPs added twice: {}", ctx());
                    self.held = true;
                }
                Action::RemoveVips => {
                    assert!(self.held, "VIPs removed but not held: {}", ctx());
                    self.held = false;
                }
                Action::SendAdvert { .. } | Action::Announce => {
                    assert!(self.held, "sent without the VIPs: {}", ctx());
                }
                Action::Timer(at) => {
                    assert!(at.is_none_or(|t| t >= now), "timer in the past: {}", ctx());
                    timer = Some(*at);
                }
            }
        }
        assert_eq!(self.state, r.state(), "{}", ctx());
        assert_eq!(self.held, r.holds_vips(), "{}", ctx());
        if let Some(at) = timer {
            assert_eq!(at, r.deadline(), "{}", ctx());
        }
        if r.state() == State::Master {
            assert_eq!(r.master(), Some(r.config().primary), "{}", ctx());
            assert!(
                r.deadline().is_some(),
                "a master without a timer: {}",
                ctx()
            );
        }
        if r.config().priority == crate::router::OWNER_PRIORITY
            && matches!(input, Input::Advert(_))
            && before == State::Master
            && !self.releasing
        {
            assert_eq!(r.state(), State::Master, "the owner yielded: {}", ctx());
        }
        self.releasing = r.is_releasing();
    }
}
