use std::time::Duration;

use edgevip_config::{HealthCheck, HttpTls, Probe};

use super::*;

#[test]
fn first_result_decides_then_rise_and_fall_apply() {
    let mut v = Verdict::new(3, 2);
    assert_eq!(v.observe(true), Some(true));
    assert_eq!(
        v.observe(false),
        None,
        "one failure is not enough with fall 2"
    );
    assert_eq!(v.observe(true), None, "a success resets the streak");
    assert_eq!(v.observe(false), None);
    assert_eq!(v.observe(false), Some(false));
    assert_eq!(v.observe(true), None);
    assert_eq!(v.observe(true), None);
    assert_eq!(v.observe(true), Some(true));
    assert_eq!(v.healthy(), Some(true));
}

fn check(name: &str, weight: Option<i16>, probe: Probe) -> HealthCheck {
    HealthCheck {
        name: name.into(),
        probe,
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(200),
        rise: 2,
        fall: 2,
        weight,
    }
}

#[test]
fn failed_and_unknown_checks_weigh_or_fault() {
    let tcp = Probe::Tcp {
        addr: "127.0.0.1:1".parse().unwrap(),
    };
    let checks = [
        check("a", Some(-20), tcp.clone()),
        check("b", Some(-30), tcp.clone()),
        check("c", None, tcp),
    ];
    let mut m = CheckMap::new();
    assert_eq!(
        weight_and_fault(&checks, &m),
        (-50, true),
        "unknown counts as failed"
    );
    m.insert("a".into(), true);
    m.insert("b".into(), false);
    m.insert("c".into(), true);
    assert_eq!(weight_and_fault(&checks, &m), (-30, false));
}

#[tokio::test]
async fn tcp_check_follows_a_listener_and_survives_an_update() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let c = check("tcp", None, Probe::Tcp { addr });
    let mut checks = Checks::start("t", std::slice::from_ref(&c), Metrics::new());
    let mut rx = checks.subscribe();
    let wait_for = |rx: &mut watch::Receiver<CheckMap>, want: bool| {
        let mut rx = rx.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(3),
                rx.wait_for(|m| m.get("tcp") == Some(&want)),
            )
            .await
            .expect("verdict in time")
            .expect("channel open");
        }
    };
    wait_for(&mut rx, true).await;
    // The same check again keeps its task and verdict.
    checks.update(std::slice::from_ref(&c));
    assert_eq!(checks.current().get("tcp"), Some(&true));
    drop(listener);
    wait_for(&mut rx, false).await;
    checks.update(&[]);
    assert!(checks.current().is_empty(), "removed checks leave the map");
}

#[tokio::test]
async fn http_and_exec_probes_report_status() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "ok" }))
        .route(
            "/bad",
            axum::routing::get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no") }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let t = Duration::from_secs(2);
    let ok = Probe::Http {
        url: format!("http://{addr}/ok"),
        expect_status: 200,
        tls: HttpTls::default(),
    };
    let bad = Probe::Http {
        url: format!("http://{addr}/bad"),
        expect_status: 200,
        tls: HttpTls::default(),
    };
    assert_eq!(run_probe(&ok, t).await, Ok(()));
    let e = run_probe(&bad, t).await.unwrap_err();
    assert!(e.contains("503"), "{e}");
    let yes = Probe::Exec {
        argv: vec!["true".into()],
    };
    let no = Probe::Exec {
        argv: vec!["sh".into(), "-c".into(), "exit 3".into()],
    };
    assert_eq!(run_probe(&yes, t).await, Ok(()));
    assert!(run_probe(&no, t).await.is_err());
    let slow = Probe::Exec {
        argv: vec!["sleep".into(), "5".into()],
    };
    let e = run_probe(&slow, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(e.contains("timed out"), "{e}");
}

/// kube-apiserver's case: a private CA, a certificate that names `kubernetes` but not
/// 127.0.0.1. Pinned CA plus server_name passes; the URL's host alone, the system roots, a
/// missing CA file fail, each saying why; insecure_skip_verify passes.
#[tokio::test]
async fn https_probe_verifies_against_the_pinned_ca_and_name() {
    let pki = edgevip_lab::Pki::new("test-ca");
    let other = edgevip_lab::Pki::new("other-ca");
    let server = edgevip_lab::HttpsServer::start(
        None,
        "127.0.0.1:0".parse().unwrap(),
        pki.apiserver_config(&["192.0.2.11".parse().unwrap()]),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("edgevip-https-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.crt");
    let wrong = dir.join("other.crt");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    std::fs::write(&wrong, other.ca_pem()).unwrap();
    let url = format!("https://{}/readyz", server.addr());
    let probe = |tls: HttpTls, path: &str| Probe::Http {
        url: url.replace("/readyz", path),
        expect_status: 200,
        tls,
    };
    let pinned = |file: &std::path::Path, name: Option<&str>| HttpTls {
        ca_file: Some(file.into()),
        server_name: name.map(Into::into),
        insecure_skip_verify: false,
    };
    let t = Duration::from_secs(3);
    assert_eq!(
        run_probe(&probe(pinned(&ca, Some("kubernetes")), "/readyz"), t).await,
        Ok(())
    );
    let e = run_probe(&probe(pinned(&ca, Some("kubernetes")), "/livez"), t)
        .await
        .unwrap_err();
    assert!(e.contains("HTTP 404, expected 200"), "{e}");
    let e = run_probe(&probe(pinned(&ca, None), "/readyz"), t)
        .await
        .unwrap_err();
    assert!(
        e.contains("TLS handshake") && e.contains("certificate not valid for name"),
        "{e}"
    );
    let e = run_probe(&probe(pinned(&wrong, Some("kubernetes")), "/readyz"), t)
        .await
        .unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    let e = run_probe(
        &probe(
            HttpTls {
                server_name: Some("kubernetes".into()),
                ..HttpTls::default()
            },
            "/readyz",
        ),
        t,
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("UnknownIssuer") || e.contains("no system root CA"),
        "system roots do not know a private CA: {e}"
    );
    let missing = dir.join("missing.crt");
    let e = run_probe(&probe(pinned(&missing, None), "/readyz"), t)
        .await
        .unwrap_err();
    assert!(
        e.starts_with(&format!("ca_file {}: ", missing.display())),
        "{e}"
    );
    let insecure = HttpTls {
        insecure_skip_verify: true,
        ..HttpTls::default()
    };
    assert_eq!(run_probe(&probe(insecure, "/readyz"), t).await, Ok(()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CA file that appears after the check started (kubeadm writes it during `init`): the
/// probe fails with the reason until then, and passes once the file is there.
#[tokio::test]
async fn https_probe_retries_a_ca_file_that_is_not_there_yet() {
    let pki = edgevip_lab::Pki::new("late-ca");
    let server = edgevip_lab::HttpsServer::start(
        None,
        "127.0.0.1:0".parse().unwrap(),
        pki.apiserver_config(&[]),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("edgevip-https-late-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.crt");
    let _ = std::fs::remove_file(&ca);
    let mut prober = Prober::new(Probe::Http {
        url: format!("https://{}/readyz", server.addr()),
        expect_status: 200,
        tls: HttpTls {
            ca_file: Some(ca.clone()),
            server_name: Some("kubernetes".into()),
            insecure_skip_verify: false,
        },
    });
    let t = Duration::from_secs(3);
    let e = prober.run(t).await.unwrap_err();
    assert!(e.contains("ca_file"), "{e}");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    assert_eq!(prober.run(t).await, Ok(()));
    assert_eq!(prober.run(t).await, Ok(()), "the client is kept");
    let _ = std::fs::remove_dir_all(&dir);
}
