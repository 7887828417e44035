//! What a daemon costs, read from /proc: CPU time and proportional memory (PSS) summed over
//! all of its processes. PSS divides each shared page among the processes mapping it, so a
//! parent and a forked child sharing copy-on-write pages (keepalived) are not counted twice,
//! as summing their RSS would. RSS (what the issues' memory targets name) is here too.

use std::process::Command;

/// The pids of processes named `comm` (e.g. "keepalived", "edgevip") in namespace `ns`.
pub fn daemon_pids(ns: &str, comm: &str) -> Vec<u32> {
    let out = Command::new("ip").args(["netns", "pids", ns]).output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|pid: &u32| {
                std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
            })
            .collect()
    })
    .unwrap_or_default()
}

/// User + system CPU seconds of `pid` (0 when it is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    stat_ticks(&stat) / hz
}

/// utime + stime (clock ticks) from the text of /proc/PID/stat.
fn stat_ticks(stat: &str) -> f64 {
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    field(11) + field(12)
}

/// PSS of `pid` in KiB from /proc/PID/smaps_rollup (0 when it is gone).
pub fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).map_or(0, |t| rollup_pss(&t))
}

/// The `Pss:` line of smaps_rollup, in KiB.
fn rollup_pss(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sum of PSS over `pids`, in MiB.
pub fn pss_mib(pids: &[u32]) -> f64 {
    pids.iter().map(|p| pss_kib(*p)).sum::<u64>() as f64 / 1024.0
}

/// Resident set (`VmRSS` of /proc/PID/status) of `pid` in KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status")).map_or(0, |t| status_rss(&t))
}

/// The `VmRSS:` line of /proc/PID/status, in KiB.
fn status_rss(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sum of RSS over `pids`, in MiB (shared pages counted in each: see `pss_mib`).
pub fn rss_mib(pids: &[u32]) -> f64 {
    pids.iter().map(|p| rss_kib(*p)).sum::<u64>() as f64 / 1024.0
}

/// Sum of CPU seconds over `pids`.
pub fn cpu_total(pids: &[u32]) -> f64 {
    pids.iter().map(|p| cpu_seconds(*p)).sum()
}

/// Median, max and spread (max − min) of `v`; the median of an even count is the mean of
/// the two middle values. NaN for an empty slice.
pub fn stats(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let med = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    (med, s[n - 1], s[n - 1] - s[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pss_comes_from_the_pss_line_not_rss() {
        let t = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss: 8000 kB\nPss: 3120 kB\n\
                 Pss_Anon: 1500 kB\nPss_File: 1620 kB\nShared_Clean: 5000 kB\n";
        assert_eq!(rollup_pss(t), 3120);
        assert_eq!(rollup_pss("Rss: 10 kB\n"), 0);
    }

    #[test]
    fn rss_comes_from_the_vmrss_line() {
        let t = "Name:\tedgevip\nVmHWM:\t  20000 kB\nVmRSS:\t   15360 kB\nRssAnon:\t 9000 kB\n";
        assert_eq!(status_rss(t), 15360);
        assert_eq!(status_rss("VmHWM: 1 kB\n"), 0);
    }

    #[test]
    fn ticks_skip_a_command_name_with_spaces() {
        let s = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 9 0 0";
        assert_eq!(stat_ticks(s), 300.0);
    }

    #[test]
    fn median_is_true_for_even_counts() {
        assert_eq!(stats(&[4.0, 1.0, 3.0, 2.0]), (2.5, 4.0, 3.0));
        assert_eq!(stats(&[5.0, 1.0, 3.0]), (3.0, 5.0, 4.0));
    }
}
