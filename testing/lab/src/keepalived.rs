//! keepalived 2.2.7 as a real VRRP peer in the lab.

use std::io;
use std::process::Command;

use crate::lab::{Lab, LabChild};

pub fn keepalived_available() -> bool {
    Command::new("keepalived").arg("--version").output().is_ok()
}

/// One `vrrp_instance`, rendered with keepalived's defaults except where noted.
#[derive(Debug, Clone)]
pub struct KeepalivedConf {
    pub vrid: u8,
    pub priority: u8,
    /// Seconds, e.g. 0.1 (v3) or 1 (v2).
    pub advert_int: f64,
    pub version: u8,
    pub vips: Vec<String>,
    pub unicast_peers: Vec<String>,
    pub unicast_src: Option<String>,
    pub auth_pass: Option<String>,
    pub preempt: bool,
}

/// A whole keepalived.conf: global settings and one `vrrp_instance` per entry.
pub fn render_config(router_id: &str, instances: &[KeepalivedConf]) -> String {
    let mut s = format!(
        "global_defs {{\n  router_id {router_id}\n  enable_script_security\n  script_user root\n}}\n"
    );
    for i in instances {
        s.push_str(&i.render_instance());
    }
    s
}

impl KeepalivedConf {
    pub fn render_instance(&self) -> String {
        let mut s = format!(
            "vrrp_instance VI_{vrid} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {vrid}\n  \
             priority {prio}\n  advert_int {int}\n  version {ver}\n",
            vrid = self.vrid,
            prio = self.priority,
            int = self.advert_int,
            ver = self.version,
        );
        if !self.preempt {
            s.push_str("  nopreempt\n");
        }
        if let Some(p) = &self.auth_pass {
            s.push_str(&format!(
                "  authentication {{\n    auth_type PASS\n    auth_pass {p}\n  }}\n"
            ));
        }
        if !self.unicast_peers.is_empty() {
            if let Some(src) = &self.unicast_src {
                s.push_str(&format!("  unicast_src_ip {src}\n"));
            }
            s.push_str("  unicast_peer {\n");
            for p in &self.unicast_peers {
                s.push_str(&format!("    {p}\n"));
            }
            s.push_str("  }\n");
        }
        s.push_str("  virtual_ipaddress {\n");
        for v in &self.vips {
            s.push_str(&format!("    {v} dev eth0\n"));
        }
        s.push_str("  }\n}\n");
        s
    }
}

impl Lab {
    /// Runs keepalived (VRRP only, in the foreground) in host `i` with `conf`. Pid files
    /// are per host so several copies run side by side.
    pub fn spawn_keepalived(
        &self,
        i: usize,
        instances: &[KeepalivedConf],
        dir: &std::path::Path,
    ) -> io::Result<LabChild> {
        let conf = render_config(&self.host(i).ns, instances);
        self.spawn_keepalived_text(i, &conf, dir)
    }

    /// Runs keepalived in host `i` with a whole keepalived.conf as given (e.g. one that
    /// `edgevip import keepalived` is tested on).
    pub fn spawn_keepalived_text(
        &self,
        i: usize,
        conf: &str,
        dir: &std::path::Path,
    ) -> io::Result<LabChild> {
        let h = self.host(i);
        let path = dir.join(format!("keepalived-{}.conf", h.ns));
        std::fs::write(&path, conf)?;
        let log = std::fs::File::create(dir.join(format!("keepalived-{}.log", h.ns)))?;
        let pid = |k: &str| dir.join(format!("{}-{k}.pid", h.ns)).display().to_string();
        let mut cmd = Command::new("keepalived");
        cmd.args([
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--vrrp",
            "--use-file",
        ])
        .arg(&path)
        .args([
            "--pid",
            &pid("main"),
            "--vrrp_pid",
            &pid("vrrp"),
            "--checkers_pid",
            &pid("checkers"),
        ]);
        self.spawn_logged(&h.ns, cmd, log)
    }
}
