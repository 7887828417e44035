//! The prober: a client sends a numbered UDP datagram to the VIP every 2 ms; each host's
//! responder answers with its index. The longest time without an answer is the failover
//! gap a user would see; the sequence of answering hosts shows where traffic went.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::netns::in_netns;

impl Lab {
    /// Starts a UDP responder on `port` (IPv4 and IPv6) in every host namespace; they stop
    /// when the lab is dropped.
    pub fn start_responders(&mut self, port: u16) -> io::Result<()> {
        for (i, h) in self.hosts().to_vec().into_iter().enumerate() {
            let stop = self.stop.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            let t = in_netns(&h.ns, move || {
                // [::] is dual-stack: one socket answers IPv4 (as mapped addresses) and IPv6.
                let sock = match UdpSocket::bind(("::", port)) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
                realtime();
                let _ = tx.send(Ok(()));
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf)
                        && n >= 8
                    {
                        let mut reply = [0u8; 9];
                        reply[0] = i as u8;
                        reply[1..9].copy_from_slice(&buf[..8]);
                        let _ = sock.send_to(&reply, from);
                    }
                }
            })?;
            rx.recv()
                .map_err(|_| io::Error::other("responder thread died"))??;
            self.threads.push(t);
        }
        Ok(())
    }
}

/// The argument that turns a benchmark binary into a responder process (see
/// [`Lab::spawn_responder`]).
pub const RESPONDER_ARG: &str = "--lab-responder";

/// If this process was started as a responder (`RESPONDER_ARG PORT INDEX`), answers on that
/// port until killed and never returns. Benchmark binaries call it first thing in `main`.
pub fn responder_from_args() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(RESPONDER_ARG) {
        return;
    }
    let port: u16 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .expect("responder port");
    let index: u8 = args
        .get(3)
        .and_then(|a| a.parse().ok())
        .expect("responder index");
    realtime();
    let sock = UdpSocket::bind(("::", port)).expect("responder bind");
    let mut buf = [0u8; 64];
    loop {
        if let Ok((n, from)) = sock.recv_from(&mut buf)
            && n >= 8
        {
            let mut reply = [0u8; 9];
            reply[0] = index;
            reply[1..9].copy_from_slice(&buf[..8]);
            let _ = sock.send_to(&reply, from);
        }
    }
}

impl Lab {
    /// Starts a responder *process* on `port` inside host `i`'s namespace: `exe` (a binary
    /// that calls [`responder_from_args`]) re-run as a responder. Unlike the threads of
    /// `start_responders`, it lives and dies with the node: killing the node's processes
    /// kills it. Waits (bounded) until it answers from inside the namespace.
    pub fn spawn_responder(
        &self,
        i: usize,
        port: u16,
        exe: &std::path::Path,
    ) -> io::Result<crate::LabChild> {
        let h = self.host(i).clone();
        let mut cmd = std::process::Command::new(exe);
        cmd.args([RESPONDER_ARG, &port.to_string(), &i.to_string()]);
        let child = self.spawn(&h.ns, cmd)?;
        let target = std::net::SocketAddr::new(h.ip4.into(), port);
        let answered = in_netns(&h.ns, move || -> io::Result<bool> {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
            let mut buf = [0u8; 16];
            for _ in 0..250 {
                s.send_to(&[0u8; 8], target)?;
                if let Ok((9, _)) = s.recv_from(&mut buf) {
                    return Ok(true);
                }
            }
            Ok(false)
        })?
        .join()
        .map_err(|_| io::Error::other("responder check thread died"))?
        .unwrap_or(Ok(false))?;
        if !answered {
            return Err(io::Error::other(format!(
                "responder on host {i} never answered"
            )));
        }
        Ok(child)
    }
}

/// What the prober saw.
#[derive(Debug, Clone, Default)]
pub struct ProbeReport {
    pub sent: u64,
    pub received: u64,
    /// Longest time without any answer (start→first, between answers, last→stop).
    pub longest_gap: Duration,
    /// When the longest gap began, from the start of probing.
    pub gap_start: Duration,
    /// Answers per host index.
    pub answered_by: Vec<u64>,
    /// (time since start, host) each time the answering host changed.
    pub timeline: Vec<(Duration, usize)>,
    /// Requests answered by more than one host.
    pub duplicates: u64,
    /// Every time without an answer of at least [`OUTAGE_MIN`]: (start, length).
    pub outages: Vec<(Duration, Duration)>,
}

/// A silence this long is an outage for [`ProbeReport::outages`]: 5 probe intervals, above
/// the prober's resolution and the scheduling noise of a busy machine.
pub const OUTAGE_MIN: Duration = Duration::from_millis(10);

pub struct Prober {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Option<io::Result<ProbeReport>>>>,
}

/// Upper bound of one probe run, so a forgotten prober cannot run forever.
const MAX_RUN: Duration = Duration::from_secs(120);

impl Prober {
    /// Starts probing `target` from `client_ns` every `interval`.
    pub fn start(client_ns: &str, target: SocketAddr, interval: Duration) -> io::Result<Prober> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = in_netns(client_ns, move || run(target, interval, &flag))?;
        Ok(Prober {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        let t = self.thread.take().expect("prober thread");
        match t.join() {
            Ok(Some(Ok(r))) => r,
            Ok(Some(Err(e))) => panic!("prober failed: {e}"),
            _ => panic!("prober thread died"),
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Real-time scheduling for the prober and responders (best effort): on a busy 2-core
/// machine a normal thread can wait ~10 ms for a core, which would show up as a gap that
/// has nothing to do with failover. Both threads block in `recv` between packets.
pub(crate) fn realtime() {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: plain syscall on the calling thread with a valid parameter.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &param);
    }
}

fn run(target: SocketAddr, interval: Duration, stop: &AtomicBool) -> io::Result<ProbeReport> {
    realtime();
    let sock = UdpSocket::bind(if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    sock.set_nonblocking(true)?;
    let start = Instant::now();
    let mut seq: u64 = 0;
    let mut next = start;
    // Per sequence number: first answering host, to spot duplicates.
    let mut first_answer: Vec<Option<u8>> = Vec::new();
    let mut answers: Vec<(Duration, usize)> = Vec::new();
    let mut duplicates = 0;
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::Relaxed) && start.elapsed() < MAX_RUN {
        let now = Instant::now();
        if now >= next {
            let _ = sock.send_to(&seq.to_be_bytes(), target);
            first_answer.push(None);
            seq += 1;
            next += interval;
            continue;
        }
        // SO_RCVTIMEO counts in jiffies (up to 10 ms here), which would delay the next
        // send: wait with ppoll's high-resolution timeout instead.
        if !wait_readable(&sock, next - now) {
            continue;
        }
        if let Ok((9, _)) = sock.recv_from(&mut buf) {
            let host = buf[0];
            let s = u64::from_be_bytes(buf[1..9].try_into().unwrap_or_default()) as usize;
            if let Some(slot) = first_answer.get_mut(s) {
                match slot {
                    Some(h) if *h != host => duplicates += 1,
                    Some(_) => {}
                    None => *slot = Some(host),
                }
            }
            answers.push((start.elapsed(), usize::from(host)));
        }
    }
    let end = start.elapsed();
    Ok(report(seq, &answers, end, duplicates))
}

fn wait_readable(sock: &UdpSocket, timeout: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd and a valid timespec, no signal mask.
    let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    n > 0
}

fn report(sent: u64, answers: &[(Duration, usize)], end: Duration, duplicates: u64) -> ProbeReport {
    let mut r = ProbeReport {
        sent,
        received: answers.len() as u64,
        duplicates,
        ..Default::default()
    };
    let mut last = Duration::ZERO;
    for &(t, host) in answers {
        if t - last >= OUTAGE_MIN {
            r.outages.push((last, t - last));
        }
        if t - last > r.longest_gap {
            r.longest_gap = t - last;
            r.gap_start = last;
        }
        last = t;
        if r.answered_by.len() <= host {
            r.answered_by.resize(host + 1, 0);
        }
        r.answered_by[host] += 1;
        if r.timeline.last().map(|x| x.1) != Some(host) {
            r.timeline.push((t, host));
        }
    }
    if end - last >= OUTAGE_MIN {
        r.outages.push((last, end - last));
    }
    if end - last > r.longest_gap {
        r.longest_gap = end - last;
        r.gap_start = last;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn report_finds_the_longest_gap_and_the_switches() {
        let a = [(ms(2), 0), (ms(4), 0), (ms(300), 1), (ms(302), 1)];
        let r = report(200, &a, ms(304), 0);
        assert_eq!(r.longest_gap, ms(296));
        assert_eq!(r.gap_start, ms(4));
        assert_eq!(r.timeline, vec![(ms(2), 0), (ms(300), 1)]);
        assert_eq!(r.answered_by, vec![2, 2]);
        assert_eq!(r.outages, vec![(ms(4), ms(296))]);
    }

    #[test]
    fn silence_until_stop_counts() {
        let r = report(100, &[(ms(2), 0)], ms(500), 0);
        assert_eq!(r.longest_gap, ms(498));
        let r = report(100, &[], ms(500), 0);
        assert_eq!(r.longest_gap, ms(500));
    }
}
