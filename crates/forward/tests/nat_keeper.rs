//! The NAT keeper against a fake `nft`: a stale table is removed at start, a failed run
//! is retried with backoff until it succeeds, a hung run is killed, and only what `nft`
//! confirmed counts as applied. No root needed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgevip_forward::nat::{Keeper, Nft};
use edgevip_forward::{NatService, Proto};

/// A fake `nft` that appends each batch to `log` and fails while `fail` exists
/// (or hangs while `hang` exists).
fn fake_nft(dir: &Path) -> PathBuf {
    let p = dir.join("nft");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nd={}\nif [ -e $d/hang ]; then sleep 30; fi\nif [ -e $d/fail ]; then echo 'Error: Could not process rule' >&2; exit 1; fi\ncat >> $d/log\necho >> $d/log\n",
            dir.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(&p)
        .status()
        .unwrap();
    p
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgevip-nat-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn service() -> NatService {
    NatService {
        vip: "192.0.2.100".parse().unwrap(),
        port: 80,
        proto: Proto::Tcp,
        backends: vec!["198.51.100.10:8080".parse::<SocketAddr>().unwrap()],
    }
}

async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn failed_apply_is_retried_with_backoff_until_it_holds() {
    let d = dir("retry");
    let nft = Nft {
        program: fake_nft(&d).display().to_string(),
        timeout: Duration::from_secs(5),
    };
    let k = Keeper::spawn(nft);
    let applied = k.applied();
    // At start: the stale table is deleted (a batch that deletes the table, no rules).
    until("the start-up teardown", Duration::from_secs(5), || {
        applied.borrow().services.as_deref() == Some(&[])
    })
    .await;
    let log = std::fs::read_to_string(d.join("log")).unwrap();
    assert!(log.contains("\"delete\"") && !log.contains("dnat"), "{log}");

    std::fs::write(d.join("fail"), "").unwrap();
    let t0 = Instant::now();
    k.set(&[service()]);
    until("two failed runs", Duration::from_secs(5), || {
        applied.borrow().failures >= 2
    })
    .await;
    // Backoff: the second failure comes 1 s after the first, not at once.
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    {
        let a = applied.borrow();
        assert_eq!(
            a.services.as_deref(),
            Some(&[][..]),
            "a failed run is not applied"
        );
        assert!(
            a.last_error
                .as_deref()
                .unwrap()
                .contains("Could not process"),
            "{a:?}"
        );
    }
    std::fs::remove_file(d.join("fail")).unwrap();
    until("the retry that succeeds", Duration::from_secs(8), || {
        applied.borrow().in_line_with(&[service()])
    })
    .await;
    assert_eq!(applied.borrow().failures, 0);
    assert!(
        std::fs::read_to_string(d.join("log"))
            .unwrap()
            .contains("dnat")
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_hung_nft_is_killed_and_counted_as_failed() {
    let d = dir("hang");
    std::fs::write(d.join("hang"), "").unwrap();
    let k = Keeper::spawn(Nft {
        program: fake_nft(&d).display().to_string(),
        timeout: Duration::from_millis(300),
    });
    let applied = k.applied();
    until("a timed-out run", Duration::from_secs(5), || {
        applied.borrow().failures >= 1
    })
    .await;
    assert!(
        applied
            .borrow()
            .last_error
            .as_deref()
            .unwrap()
            .contains("killed after"),
        "{:?}",
        applied.borrow()
    );
    assert!(applied.borrow().services.is_none(), "unknown, not applied");
    std::fs::remove_file(d.join("hang")).unwrap();
    until("recovery", Duration::from_secs(5), || {
        applied.borrow().services.is_some()
    })
    .await;
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn without_nft_and_without_nat_wanted_nothing_is_retried() {
    let k = Keeper::spawn(Nft {
        program: "/nonexistent/nft".into(),
        timeout: Duration::from_secs(1),
    });
    let applied = k.applied();
    until("in line", Duration::from_secs(2), || {
        applied.borrow().services.is_some()
    })
    .await;
    assert_eq!(applied.borrow().total_failures, 0);
    k.set(&[service()]);
    until(
        "a failure once NAT is wanted",
        Duration::from_secs(2),
        || applied.borrow().failures >= 1,
    )
    .await;
}
