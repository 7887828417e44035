use std::time::Duration;

use edgevip_config::{HealthCheck, Probe};

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
    };
    let bad = Probe::Http {
        url: format!("http://{addr}/bad"),
        expect_status: 200,
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
