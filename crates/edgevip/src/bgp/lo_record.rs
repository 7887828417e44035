//! The record of the VIPs the speaker put on `lo`: a killed run (SIGKILL, crash) leaves
//! them there, and a VIP on `lo` keeps attracting traffic to this node (locally, and over
//! BGP if FRR outlives us). At start the speaker removes the recorded VIPs that are no
//! longer configured, and nothing else: `127.0.0.1/8`, `::1` and an operator's own
//! addresses on `lo` are never in the record, so they are never touched.
//!
//! Format: one `address/prefix-length` a line, `#` comments. The file is replaced
//! atomically (temporary file, fsync, rename). A file that is too big, not UTF-8, or has
//! one line that is not a plain unicast VIP is ignored as a whole with a warning: its
//! content cannot be trusted to name our addresses.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Where the record lives unless `EDGEVIP_BGP_LO_STATE` names another file (tests, and
/// several daemons sharing one filesystem in the lab).
pub const DEFAULT_PATH: &str = "/run/edgevip/bgp-lo-vips";

/// The environment variable that overrides [`DEFAULT_PATH`].
pub const PATH_ENV: &str = "EDGEVIP_BGP_LO_STATE";

/// Bigger files are refused unread.
pub const MAX_BYTES: u64 = 64 * 1024;

/// More entries are refused.
pub const MAX_ENTRIES: usize = 1024;

pub type Entry = (IpAddr, u8);

pub fn path() -> PathBuf {
    std::env::var_os(PATH_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

/// Parses a record; `Err` says why the whole file is refused.
pub fn parse(text: &str) -> Result<BTreeSet<Entry>, String> {
    let mut out = BTreeSet::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| Err(format!("line {}: {why}: {:?}", n + 1, truncate(line)));
        let Some((a, l)) = line.split_once('/') else {
            return bad("not address/prefix-length");
        };
        let Ok(addr) = a.parse::<IpAddr>() else {
            return bad("not an address");
        };
        let Ok(len) = l.parse::<u8>() else {
            return bad("not a prefix length");
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return bad("prefix length too long");
        }
        if addr.is_loopback() || addr.is_unspecified() || addr.is_multicast() {
            return bad("not a VIP (loopback, unspecified or multicast)");
        }
        out.insert((addr, len));
        if out.len() > MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
    }
    Ok(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

pub fn format(entries: &BTreeSet<Entry>) -> String {
    let mut out = String::from(
        "# edgevip: VIPs it put on lo for announce: bgp; those no longer configured are \
         removed at start\n",
    );
    for (a, l) in entries {
        out.push_str(&format!("{a}/{l}\n"));
    }
    out
}

/// Reads the record: empty when there is none; `Err` (for a warning) when it is refused.
pub fn read(path: &Path) -> Result<BTreeSet<Entry>, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_BYTES {
        return Err(format!("{} bytes, more than {MAX_BYTES}", meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("more than {MAX_BYTES} bytes"));
    }
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    parse(&text)
}

/// Replaces the record atomically (the directory is created if missing).
pub fn write(path: &Path, entries: &BTreeSet<Entry>) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format(entries).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The recorded VIPs to remove at start: recorded, not wanted now, and on `lo` now with
/// the same prefix length (an address the operator re-added with another length is left).
pub fn stale(recorded: &BTreeSet<Entry>, wanted: &BTreeSet<Entry>, on_lo: &[Entry]) -> Vec<Entry> {
    recorded
        .iter()
        .filter(|e| !wanted.contains(e) && on_lo.contains(e))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> Entry {
        let (a, l) = s.split_once('/').unwrap();
        (a.parse().unwrap(), l.parse().unwrap())
    }

    #[test]
    fn round_trip() {
        let set: BTreeSet<Entry> = [e("192.0.2.10/32"), e("2001:db8::10/128")].into();
        assert_eq!(parse(&format(&set)).unwrap(), set);
        assert_eq!(parse("").unwrap(), BTreeSet::new());
        assert_eq!(
            parse("# c\n\n  198.51.100.1/32  \n").unwrap(),
            [e("198.51.100.1/32")].into()
        );
    }

    #[test]
    fn hostile_content_refuses_the_whole_file() {
        for bad in [
            "192.0.2.10/32\n127.0.0.1/8\n",
            "::1/128\n",
            "0.0.0.0/0\n",
            "224.0.0.1/32\n",
            "192.0.2.10\n",
            "192.0.2.10/33\n",
            "2001:db8::1/129\n",
            "192.0.2.10/-1\n",
            "rm -rf /\n",
            "192.0.2.10/32 extra\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        let many: String = (0..=MAX_ENTRIES)
            .map(|i| format!("2001:db8::{:x}/128\n", i + 1))
            .collect();
        assert!(parse(&many).is_err());
    }

    #[test]
    fn read_and_write() {
        let dir = std::env::temp_dir().join(format!("edgevip-lo-record-{}", std::process::id()));
        let p = dir.join("sub/bgp-lo-vips");
        assert_eq!(read(&p).unwrap(), BTreeSet::new());
        let set: BTreeSet<Entry> = [e("203.0.113.7/32")].into();
        write(&p, &set).unwrap();
        assert_eq!(read(&p).unwrap(), set);
        std::fs::write(&p, vec![b'#'; MAX_BYTES as usize + 1]).unwrap();
        assert!(read(&p).is_err());
        std::fs::write(&p, [0xff, 0xfe, b'\n']).unwrap();
        assert!(read(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_recorded_unwanted_present_vips_are_stale() {
        let recorded: BTreeSet<Entry> =
            [e("192.0.2.1/32"), e("192.0.2.2/32"), e("192.0.2.3/32")].into();
        let wanted: BTreeSet<Entry> = [e("192.0.2.2/32")].into();
        let on_lo = [
            e("127.0.0.1/8"),
            e("192.0.2.1/32"),
            e("192.0.2.2/32"),
            e("198.51.100.9/32"), // the operator's own
        ];
        // .3 is recorded but gone already; .2 is wanted; the operator's is not recorded.
        assert_eq!(stale(&recorded, &wanted, &on_lo), vec![e("192.0.2.1/32")]);
    }
}
