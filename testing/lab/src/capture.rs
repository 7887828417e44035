//! What the wire shows: an AF_PACKET socket on one interface (the client's, on the lab's
//! segment) records every VRRP advert and every answer of the UDP responders, with the
//! kernel's receive timestamp. A failover is then measured from the master's last advert
//! seen on the wire, not from the moment the benchmark acted: a cut lands at a random point
//! of the advert cycle, so a plain reply gap varies by up to one interval between runs.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::netns::in_netns;

/// One packet of interest, as seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// An IPv4 VRRP advert (v2 or v3).
    Advert {
        src: Ipv4Addr,
        vrid: u8,
        priority: u8,
    },
    /// A responder's answer (UDP from the responder port): the answering host's index.
    Reply { host: u8 },
}

/// (receive time on the kernel's real-time clock, what was seen).
pub type Event = (Duration, Seen);

/// A running capture; `stop` returns what it saw.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Option<io::Result<Vec<Event>>>>>,
}

/// Upper bound of one capture, so a forgotten one cannot grow without end.
const MAX_EVENTS: usize = 2_000_000;

impl Capture {
    /// Captures on `ifname` in namespace `ns`: VRRP adverts, and UDP datagrams from
    /// `reply_port` (the responders' answers).
    pub fn start(ns: &str, ifname: &str, reply_port: u16) -> io::Result<Capture> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let ifname = ifname.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = in_netns(ns, move || {
            let sock = match open(&ifname) {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return Ok(Vec::new());
                }
            };
            crate::probe::realtime();
            let _ = tx.send(Ok(()));
            record(&sock, reply_port, &flag)
        })?;
        rx.recv()
            .map_err(|_| io::Error::other("capture thread died"))??;
        Ok(Capture {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) -> Vec<Event> {
        self.stop.store(true, Ordering::Relaxed);
        let t = self.thread.take().expect("capture thread");
        match t.join() {
            Ok(Some(Ok(v))) => v,
            Ok(Some(Err(e))) => panic!("capture failed: {e}"),
            _ => panic!("capture thread died"),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A cooked (layer 3) packet socket for IPv4 bound to `ifname`.
fn open(ifname: &str) -> io::Result<OwnedFd> {
    let proto = (libc::ETH_P_IP as u16).to_be();
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::other(format!("no interface {ifname}")));
    }
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    // SAFETY: a valid sockaddr_ll of the size given.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

/// SIOCGSTAMPNS: the receive timestamp of the last packet read from the socket.
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;

fn record(sock: &OwnedFd, reply_port: u16, stop: &AtomicBool) -> io::Result<Vec<Event>> {
    let fd = sock.as_raw_fd();
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::Relaxed) && out.len() < MAX_EVENTS {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 20) } <= 0 {
            continue;
        }
        // SAFETY: `buf` is valid for its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n <= 0 {
            continue;
        }
        let Some(seen) = parse(&buf[..n as usize], reply_port) else {
            continue;
        };
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: SIOCGSTAMPNS writes one timespec.
        let at = if unsafe { libc::ioctl(fd, SIOCGSTAMPNS as _, &mut ts) } == 0 {
            Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        } else {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
        };
        out.push((at, seen));
    }
    Ok(out)
}

/// Classifies one IPv4 packet.
fn parse(p: &[u8], reply_port: u16) -> Option<Seen> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let body = p.get(ihl..)?;
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    match p[9] {
        112 if body.len() >= 3 => Some(Seen::Advert {
            src,
            vrid: body[1],
            priority: body[2],
        }),
        17 if body.len() >= 9 && u16::from_be_bytes([body[0], body[1]]) == reply_port => {
            Some(Seen::Reply { host: body[8] })
        }
        _ => None,
    }
}

/// One failover as the wire showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failover {
    /// Longest time between two answers (or from the last answer to the end).
    pub longest_gap: Duration,
    /// The master's last advert → the first answer after the longest gap. `None` when the
    /// longest gap is below `min_outage` (clients saw no outage) or ends before that advert.
    pub outage: Option<Duration>,
    /// The master's last advert → the first answer from another host.
    pub takeover: Option<Duration>,
    /// The longest gap (at least `min_outage`) ran to the end: no answer came back.
    pub unanswered_at_end: bool,
}

/// Reads a failover of `master` (its address and responder index) for `vrid` out of
/// `events`. A gap shorter than `min_outage` is the prober's resolution, not an outage.
pub fn failover(
    events: &[Event],
    master: (Ipv4Addr, u8),
    vrid: u8,
    min_outage: Duration,
) -> Failover {
    let last_advert = events
        .iter()
        .filter(|(_, s)| matches!(s, Seen::Advert { src, vrid: v, .. } if *src == master.0 && *v == vrid))
        .map(|e| e.0)
        .next_back();
    let replies: Vec<(Duration, u8)> = events
        .iter()
        .filter_map(|(t, s)| match s {
            Seen::Reply { host } => Some((*t, *host)),
            Seen::Advert { .. } => None,
        })
        .collect();
    let end = events.last().map_or(Duration::ZERO, |e| e.0);
    let mut longest_gap = Duration::ZERO;
    let mut gap_end = None;
    for w in replies.windows(2) {
        if w[1].0 - w[0].0 > longest_gap {
            longest_gap = w[1].0 - w[0].0;
            gap_end = Some(w[1].0);
        }
    }
    if let Some(last) = replies.last()
        && end - last.0 > longest_gap
    {
        longest_gap = end - last.0;
        gap_end = None;
    }
    let unanswered_at_end = gap_end.is_none() && longest_gap >= min_outage;
    let outage = match (last_advert, gap_end) {
        (Some(a), Some(g)) if longest_gap >= min_outage => g.checked_sub(a),
        _ => None,
    };
    let takeover = last_advert.and_then(|a| {
        replies
            .iter()
            .find(|(t, h)| *t > a && *h != master.1)
            .map(|(t, _)| *t - a)
    });
    Failover {
        longest_gap,
        outage,
        takeover,
        unanswered_at_end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn advert(t: u64, src: Ipv4Addr, vrid: u8) -> Event {
        (
            ms(t),
            Seen::Advert {
                src,
                vrid,
                priority: 150,
            },
        )
    }

    fn reply(t: u64, host: u8) -> Event {
        (ms(t), Seen::Reply { host })
    }

    #[test]
    fn outage_runs_from_the_last_advert_to_the_first_answer_after_the_gap() {
        let other = Ipv4Addr::new(192, 0, 2, 12);
        let ev = vec![
            advert(0, M, 51),
            reply(2, 0),
            advert(100, M, 51),
            reply(104, 0),
            // Another VRID and another router's adverts do not count.
            advert(150, M, 52),
            advert(160, other, 51),
            reply(106, 0),
            reply(450, 1),
            reply(452, 1),
        ];
        let f = failover(&ev, (M, 0), 51, ms(10));
        assert_eq!(f.longest_gap, ms(344));
        assert_eq!(f.outage, Some(ms(350)));
        assert_eq!(f.takeover, Some(ms(350)));
        assert!(!f.unanswered_at_end);
    }

    #[test]
    fn no_outage_when_the_old_master_keeps_answering() {
        let ev = vec![
            advert(0, M, 51),
            reply(2, 0),
            reply(4, 0),
            reply(6, 0),
            reply(340, 0),
            reply(342, 1),
        ];
        let mut ev = ev;
        // Answers every 2 ms in between.
        for t in (8..340).step_by(2) {
            ev.push(reply(t, 0));
        }
        ev.sort_by_key(|e| e.0);
        let f = failover(&ev, (M, 0), 51, ms(10));
        assert_eq!(f.longest_gap, ms(2));
        assert_eq!(f.outage, None);
        assert_eq!(f.takeover, Some(ms(342)));
    }

    #[test]
    fn silence_to_the_end_is_a_gap_without_an_end() {
        let ev = vec![advert(0, M, 51), reply(2, 0), advert(500, M, 51)];
        let f = failover(&ev, (M, 0), 51, ms(10));
        assert_eq!(f.longest_gap, ms(498));
        assert_eq!(f.outage, None);
        assert_eq!(f.takeover, None);
        assert!(f.unanswered_at_end);
    }

    #[test]
    fn parses_adverts_and_answers() {
        let mut v = vec![0u8; 20 + 8];
        v[0] = 0x45;
        v[9] = 112;
        v[12..16].copy_from_slice(&[192, 0, 2, 11]);
        v[21] = 51;
        v[22] = 150;
        assert_eq!(
            parse(&v, 7008),
            Some(Seen::Advert {
                src: M,
                vrid: 51,
                priority: 150
            })
        );
        let mut u = vec![0u8; 20 + 8 + 9];
        u[0] = 0x45;
        u[9] = 17;
        u[20..22].copy_from_slice(&7008u16.to_be_bytes());
        u[28] = 2;
        assert_eq!(parse(&u, 7008), Some(Seen::Reply { host: 2 }));
        assert_eq!(parse(&u, 7007), None);
    }
}
