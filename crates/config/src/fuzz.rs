//! The config parser's fuzz harness, shared by the cargo-fuzz target (`fuzz/`) and the
//! corpus test that runs in CI without cargo-fuzz.

use crate::{AnnounceMode, Config, Instance, Probe, Version, format_duration, raw};

/// Input: a YAML document, as `edgevip check` reads it. Parsing must never panic; every
/// error names a path or the document; an accepted config, written back field by field as
/// the file's loose schema, must validate again to the same instances.
pub fn config_yaml_one(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match crate::parse(text) {
        Ok(cfg) => check_accepted(&cfg),
        Err(errs) => {
            assert!(!errs.0.is_empty(), "an error without a problem");
            for e in &errs.0 {
                assert!(!e.message.is_empty(), "empty message at {:?}", e.path);
            }
        }
    }
}

fn check_accepted(cfg: &Config) {
    assert!(
        crate::check_instances(&cfg.instances).is_empty(),
        "accepted instances break the cross-instance rules"
    );
    for (i, inst) in cfg.instances.iter().enumerate() {
        let path = format!("instances[{i}]");
        let again = Instance::from_raw(&path, to_raw(inst), &crate::Defaults::default())
            .unwrap_or_else(|e| panic!("accepted {path} does not re-validate:\n{e}"));
        assert_eq!(&again, inst, "{path} changes when written back");
    }
}

/// An instance written back as the file's loose schema, every field explicit, so that
/// validating it again needs no defaults. The Kubernetes harness uses it too.
pub fn to_raw(i: &Instance) -> raw::Instance {
    let full = to_raw_vrrp(i);
    match &i.mode {
        AnnounceMode::Arp => full,
        // VRRP's fields are refused in this mode.
        AnnounceMode::Bgp(a) => raw::Instance {
            name: full.name,
            vips: full.vips,
            announce: Some(raw::AnnounceField::Mode("bgp".into())),
            communities: Some(a.communities.iter().map(ToString::to_string).collect()),
            local_preference: a.local_preference.map(i64::from),
            health_checks: full.health_checks,
            notify: full.notify,
            ..Default::default()
        },
    }
}

fn to_raw_vrrp(i: &Instance) -> raw::Instance {
    raw::Instance {
        name: Some(i.name.clone()),
        interface: Some(i.interface.clone()),
        vrid: Some(i64::from(i.vrid)),
        priority: Some(i64::from(i.priority)),
        version: Some(match i.version {
            Version::V2 => 2,
            Version::V3 => 3,
        }),
        advert_interval: Some(format_duration(i.advert_interval)),
        preempt: Some(i.preempt),
        preempt_delay: Some(format_duration(i.preempt_delay)),
        vips: i.vips.iter().map(ToString::to_string).collect(),
        unicast_peers: Some(i.unicast_peers.iter().map(ToString::to_string).collect()),
        unicast: Some(i.unicast),
        auth_pass: i.auth_pass.clone(),
        track_interfaces: i
            .track_interfaces
            .iter()
            .map(|t| raw::Track {
                name: Some(t.name.clone()),
                weight: t.weight.map(i64::from),
            })
            .collect(),
        announce: Some(raw::AnnounceField::Burst(raw::Announce {
            count: Some(i64::from(i.announce.count)),
            interval: Some(format_duration(i.announce.interval)),
            refresh: Some(format_duration(i.announce.refresh)),
        })),
        communities: None,
        local_preference: None,
        v3_checksum_pseudo_header: Some(i.v3_checksum_pseudo_header),
        unicast_min_ttl: Some(i64::from(i.unicast_min_ttl)),
        unicast_src: i.unicast_src.map(|a| a.to_string()),
        handoff: Some(i.handoff),
        strict_vip_list: Some(i.strict_vip_list),
        health_checks: Some(
            i.health_checks
                .iter()
                .map(|c| {
                    let (http, tcp, exec) = match &c.probe {
                        Probe::Http {
                            url,
                            expect_status,
                            tls,
                        } => (
                            Some(raw::HttpCheck {
                                url: Some(url.clone()),
                                expect_status: Some(i64::from(*expect_status)),
                                ca_file: tls.ca_file.as_ref().map(|p| p.display().to_string()),
                                server_name: tls.server_name.clone(),
                                // Written only when set, as a user would.
                                insecure_skip_verify: tls.insecure_skip_verify.then_some(true),
                            }),
                            None,
                            None,
                        ),
                        Probe::Tcp { addr } => (None, Some(addr.to_string()), None),
                        Probe::Exec { argv } => (None, None, Some(argv.clone())),
                    };
                    raw::HealthCheck {
                        name: Some(c.name.clone()),
                        http,
                        tcp,
                        exec,
                        interval: Some(format_duration(c.interval)),
                        timeout: Some(format_duration(c.timeout)),
                        rise: Some(i64::from(c.rise)),
                        fall: Some(i64::from(c.fall)),
                        weight: c.weight.map(i64::from),
                    }
                })
                .collect(),
        ),
        notify: i.notify.clone(),
    }
}
