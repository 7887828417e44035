//! `edgevip import keepalived`: over keepalived's own sample configs (each output passes
//! `edgevip check`; a sample without `vrrp_instance` is refused as such), over a
//! keepalived.conf as kube-keepalived-vip renders it, over a fixture with every construct
//! the importer handles, over hostile input; and on the lab, a mixed cluster of the
//! original keepalived and edgevip with the imported config elects one master.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::VIP4;

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_edgevip")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keepalived")
        .join(name)
}

fn import(path: &Path) -> Output {
    Command::new(bin())
        .args(["import", "keepalived"])
        .arg(path)
        .output()
        .expect("run edgevip import")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgevip-import-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Runs `edgevip check` on `yaml`; panics with its output unless it passes.
fn check(name: &str, yaml: &[u8]) {
    let p = tmp(&format!("{name}.yaml"));
    std::fs::write(&p, yaml).unwrap();
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: edgevip check refused the import:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(yaml)
    );
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_keepalived_sample_imports_to_a_config_check_accepts() {
    let Ok(dir) = std::fs::read_dir(SAMPLES) else {
        edgevip_lab::cluster::skip(
            "every_keepalived_sample_imports_to_a_config_check_accepts",
            "keepalived's samples are not installed",
        );
        return;
    };
    let mut samples: Vec<PathBuf> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("keepalived.conf"))
        })
        .collect();
    samples.sort();
    let (mut imported, mut refused) = (Vec::new(), Vec::new());
    for s in &samples {
        let name = s.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(s).unwrap();
        let has_instance = text
            .lines()
            .any(|l| l.trim_start().starts_with("vrrp_instance"));
        let out = import(s);
        if has_instance {
            assert!(
                out.status.success(),
                "{name}: import failed: {}",
                stderr(&out)
            );
            check(&name, &out.stdout);
            imported.push(name);
        } else {
            assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("no vrrp_instance"),
                "{name}: {}",
                stderr(&out)
            );
            refused.push(name);
        }
    }
    eprintln!(
        "imported {} sample(s), each passed check: {imported:?}; {} without vrrp_instance refused",
        imported.len(),
        refused.len()
    );
    assert!(imported.len() >= 10, "{imported:?}");
}

#[test]
fn samples_report_what_is_not_carried_over_with_its_line() {
    let vrrp = Path::new(SAMPLES).join("keepalived.conf.vrrp.sync");
    if !vrrp.exists() {
        edgevip_lab::cluster::skip(
            "samples_report_what_is_not_carried_over_with_its_line",
            "keepalived's samples are not installed",
        );
        return;
    }
    let err = stderr(&import(&vrrp));
    assert!(
        err.contains("keepalived.conf.vrrp.sync:3: vrrp_sync_group G1: sync groups"),
        "{err}"
    );
    let err = stderr(&import(&Path::new(SAMPLES).join("keepalived.conf.vrrp")));
    assert!(err.contains(":32: 192.168.200.18: listed twice"), "{err}");
    assert!(err.contains(":17: smtp_alert"), "{err}");
    // The conditional sample: the lines for another config id are named.
    let cond = Path::new(SAMPLES).join("keepalived.conf.conditional_conf");
    let out = Command::new(bin())
        .args(["import", "keepalived", "--config-id", "high"])
        .arg(&cond)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = String::from_utf8_lossy(&out.stdout);
    // priority 170, plus nothing positive: eth2's weight 20 is added while up.
    assert!(yaml.contains("priority: 190"), "{yaml}");
    assert!(yaml.contains("check_high_VI_0.sh"), "{yaml}");
    assert!(stderr(&out).contains(":8: @low"), "{}", stderr(&out));
    check("conditional-high", &out.stdout);
}

#[test]
fn kube_keepalived_vip_config_imports() {
    let out = import(&fixture("kube-keepalived-vip.conf"));
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = String::from_utf8_lossy(&out.stdout);
    for want in [
        "name: \"vips\"",
        "vrid: 50",
        "version: 3",
        "preempt: false",
        "advert_interval: 1s",
        "vips: [\"10.0.0.100\", \"10.0.0.101\"]",
        "unicast_peers: [\"10.0.0.10\", \"10.0.0.9\"]",
        "unicast_src: \"10.0.0.11\"",
        "- {name: \"eth0\"}",
    ] {
        assert!(yaml.contains(want), "missing {want:?}:\n{yaml}");
    }
    let err = stderr(&out);
    assert!(
        err.contains("kube-keepalived-vip.conf:40: virtual_server 10.0.0.100 80: IPVS"),
        "{err}"
    );
    assert!(
        err.contains("kube-keepalived-vip.conf:69: virtual_server 10.0.0.101 443"),
        "{err}"
    );
    assert!(err.contains(":4: global_defs vrrp_iptables"), "{err}");
    check("kube-keepalived-vip", &out.stdout);
}

#[test]
fn every_handled_construct_translates() {
    let out = import(&fixture("everything.conf"));
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = String::from_utf8_lossy(&out.stdout);
    let err = stderr(&out);
    check("everything", &out.stdout);
    for want in [
        // include conf.d/*.conf, quoted password truncated to 8 bytes like keepalived.
        "name: \"vi-v2\"",
        "auth_pass: \"pass wor\"",
        "advert_interval: 2s",
        // global_defs vrrp_version 3; fractional advert_int; positive weight 20 folded
        // into the base priority (150 + 20).
        "advert_interval: 250ms",
        "priority: 170",
        "preempt_delay: 5s",
        "unicast_src: \"192.0.2.11\"",
        "unicast_peers: [\"192.0.2.12\", \"192.0.2.13\"]",
        "vips: [\"192.0.2.100/24\"]",
        "- {name: \"eth1\", weight: -50}",
        "- {name: \"eth2\"}",
        "exec: [\"/usr/bin/curl\", \"-sf\", \"http://127.0.0.1:10254/healthz\"]",
        "interval: 500ms",
        "weight: -30",
        "exec: [\"/bin/sh\", \"-c\", \"</dev/tcp/127.0.0.1/80\"]",
        "weight: -20",
        "/usr/local/bin/vip-up 'web vip'",
        "/usr/local/bin/vrrp-notify INSTANCE VI_Web",
        // IPv6 instance: VRRPv3 whatever `version 2` says.
        "vips: [\"2001:db8::200/64\"]",
    ] {
        assert!(yaml.contains(want), "missing {want:?}:\n{yaml}");
    }
    for want in [
        "everything.conf:3: global_defs router_id",
        "everything.conf:8: include missing/nothing-here.conf: matches no file",
        "everything.conf:25: vrrp_sync_group VG1",
        "everything.conf:46: 192.0.2.100/24 label eth0:vip",
        "everything.conf:47: 192.0.2.101 dev eth1",
        "everything.conf:48: 192.0.2.100/24: listed twice",
        "everything.conf:49: 2001:db8::100/64: keepalived runs one address family",
        "everything.conf:58: track_script chk_missing",
        "everything.conf:61: notify_backup ... nobody: the user to run as",
        "everything.conf:63: use_vmac",
        "everything.conf:64: virtual_routes",
        "everything.conf:72: version 2: IPv6 needs VRRPv3",
        "everything.conf:77: authentication: VRRPv3",
        "everything.conf:83: virtual_server 192.0.2.100 443",
        "conf.d/v2.conf:9: auth_pass: longer than 8 bytes",
    ] {
        assert!(err.contains(want), "missing {want:?}:\n{err}");
    }
}

#[test]
fn a_file_without_vrrp_instance_is_refused_as_such() {
    let p = tmp("no-instance.conf");
    std::fs::write(
        &p,
        "global_defs {\n router_id x\n}\nvirtual_server 10.0.0.1 80 {\n}\n",
    )
    .unwrap();
    let out = import(&p);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no vrrp_instance in the file"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn hostile_input_fails_fast_naming_line_and_token() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unclosed",
            b"vrrp_instance A {\n interface eth0\n".to_vec(),
            "unclosed.conf:1: \"{\": block opened here is not closed",
        ),
        (
            "stray",
            b"vrrp_instance A {\n}\n}\n".to_vec(),
            "stray.conf:3: \"}\": closes no block",
        ),
        (
            "quote",
            b"vrrp_script s {\n script \"/bin/true\n}\n".to_vec(),
            "quote.conf:2: \"\\\"/bin/true\": the quoted string is not closed",
        ),
        (
            "deep",
            "a {\n".repeat(200_000).into_bytes(),
            "nested deeper than 16",
        ),
        (
            "binary",
            b"vrrp_instance \x00\x01 {\n".to_vec(),
            "control character",
        ),
        ("utf8", b"vrrp_instance \xff {\n".to_vec(), "not UTF-8"),
        (
            "huge",
            vec![b'#'; edgevip_config::import::keepalived::MAX_BYTES + 1],
            "limit",
        ),
    ];
    for (name, text, want) in cases {
        let p = tmp(&format!("{name}.conf"));
        std::fs::write(&p, &text).unwrap();
        let start = Instant::now();
        let out = import(&p);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{name}: {}", stderr(&out));
        assert!(start.elapsed() < Duration::from_secs(5), "{name} was slow");
    }
    // An include of itself stops at the include depth.
    let p = tmp("loop.conf");
    std::fs::write(&p, "include loop.conf\n").unwrap();
    let out = import(&p);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("includes nested deeper than 8"),
        "{}",
        stderr(&out)
    );
}

/// A keepalived.conf like the VRRP sample (keepalived.conf.vrrp's VI_1: VRRPv2, password,
/// 1 s adverts, garp and mail settings, a labelled address) for the lab's eth0.
fn sample_like(state: &str, priority: u8) -> String {
    format!(
        "! Configuration File for keepalived\n\
         global_defs {{\n   notification_email {{\n     acassen\n   }}\n   router_id LVS_DEVEL\n\
         \x20  enable_script_security\n   script_user root\n}}\n\n\
         vrrp_instance VI_1 {{\n    state {state}\n    interface eth0\n    garp_master_delay 1\n\
         \x20   smtp_alert\n    virtual_router_id 51\n    priority {priority}\n    advert_int 1\n\
         \x20   authentication {{\n        auth_type PASS\n        auth_pass 1111\n    }}\n\
         \x20   virtual_ipaddress {{\n        192.0.2.100/24 dev eth0 label eth0:1\n    }}\n}}\n"
    )
}

#[test]
fn mixed_cluster_keepalived_and_imported_edgevip_elect_one_master() {
    let test = "mixed_cluster_keepalived_and_imported_edgevip_elect_one_master";
    if !edgevip_lab::keepalived_available() {
        edgevip_lab::cluster::skip(test, "keepalived is not installed");
        return;
    }
    // Import the backup node's keepalived.conf (no root needed for that part).
    let backup_conf = tmp("lab-backup.conf");
    std::fs::write(&backup_conf, sample_like("BACKUP", 100)).unwrap();
    let out = import(&backup_conf);
    assert!(out.status.success(), "{}", stderr(&out));
    check("lab-backup", &out.stdout);
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("version: 2") && yaml.contains("auth_pass: \"1111\""));
    let Some(mut c) = common::cluster("import_mixed", 2, false) else {
        return;
    };
    let t0 = Instant::now();
    c.start_keepalived_text(0, &sample_like("MASTER", 150));
    c.start(1, &yaml);
    // keepalived (150) masters, edgevip (100) stays backup: one holder.
    c.wait_holder(VIP4, 0, Duration::from_secs(8));
    c.assert_stays(VIP4, 0, Duration::from_secs(3));
    let st = common::status(&c, 1);
    assert_eq!(st.instances[0].state, "backup");
    let elected = t0.elapsed();
    // keepalived stops (priority 0 advert): the imported edgevip takes over alone.
    let t1 = Instant::now();
    c.term(0);
    c.wait_holder(VIP4, 1, Duration::from_secs(5));
    let failover = t1.elapsed();
    c.assert_stays(VIP4, 1, Duration::from_secs(2));
    // keepalived returns with the higher priority and preempts: still one holder.
    c.start_keepalived_text(0, &sample_like("MASTER", 150));
    c.wait_holder(VIP4, 0, Duration::from_secs(8));
    c.assert_stays(VIP4, 0, Duration::from_secs(2));
    eprintln!(
        "mixed cluster: elected in {elected:?}, failover to edgevip in {failover:?}, total {:?}",
        t0.elapsed()
    );
}
