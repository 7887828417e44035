//! kube-keepalived-vip's ConfigMap, unchanged: `"<VIP>": "<namespace>/<service>[:NAT|DR|PROXY]"`
//! or `"<VIP>": ""` for a VIP without forwarding.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// How traffic to the VIP reaches the Service (kube-keepalived-vip's methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Method {
    Nat,
    Dr,
    Proxy,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Entry {
    pub vip: IpAddr,
    pub service: Option<ServiceRef>,
}

/// A problem with one data key: `(key, message)`.
pub type EntryError = (String, String);

/// Parses every entry except `skip` keys (the rich format's key lives in the same map).
pub fn parse(data: &BTreeMap<String, String>, skip: &[&str]) -> (Vec<Entry>, Vec<EntryError>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in data {
        if skip.contains(&key.as_str()) {
            continue;
        }
        match entry(key, value) {
            Ok(e) => entries.push(e),
            Err(m) => errors.push((key.clone(), m)),
        }
    }
    (entries, errors)
}

fn entry(key: &str, value: &str) -> Result<Entry, String> {
    let vip: IpAddr = key
        .trim()
        .parse()
        .map_err(|_| format!("key {key:?} is not an IP address"))?;
    if vip.is_multicast() || vip.is_unspecified() || vip.is_loopback() {
        return Err(format!("{vip} cannot be a virtual IP"));
    }
    let value = value.trim();
    if value.is_empty() {
        return Ok(Entry { vip, service: None });
    }
    let (svc, method) = match value.rsplit_once(':') {
        Some((s, m)) => (s, Some(m)),
        None => (value, None),
    };
    let method = match method.map(str::to_ascii_uppercase).as_deref() {
        None | Some("NAT") => Method::Nat,
        Some("DR") => Method::Dr,
        Some("PROXY") => Method::Proxy,
        Some(m) => {
            return Err(format!(
                "value {value:?}: method {m:?} is not one of NAT, DR, PROXY"
            ));
        }
    };
    let Some((namespace, name)) = svc.split_once('/') else {
        return Err(format!(
            "value {value:?} is not <namespace>/<service>[:NAT|DR|PROXY]"
        ));
    };
    for part in [namespace, name] {
        if !dns_label(part) {
            return Err(format!(
                "value {value:?}: {part:?} is not a valid namespace or Service name"
            ));
        }
    }
    Ok(Entry {
        vip,
        service: Some(ServiceRef {
            namespace: namespace.into(),
            name: name.into(),
            method,
        }),
    })
}

/// RFC 1123 label: what Kubernetes allows for namespace and Service names.
fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_seed_format_parses() {
        let (e, errs) = parse(
            &data(&[
                ("192.0.2.100", "default/ingress-nginx"),
                ("192.0.2.101", "kube-system/dns:proxy"),
                ("192.0.2.102", ""),
                ("192.0.2.103", "a/b:DR"),
                ("edgevip.yaml", "ignored here"),
            ]),
            &["edgevip.yaml"],
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(e.len(), 4);
        assert_eq!(
            e[0].service,
            Some(ServiceRef {
                namespace: "default".into(),
                name: "ingress-nginx".into(),
                method: Method::Nat
            })
        );
        assert_eq!(e[1].service.as_ref().unwrap().method, Method::Proxy);
        assert_eq!(e[2].service, None);
        assert_eq!(e[3].service.as_ref().unwrap().method, Method::Dr);
    }

    #[test]
    fn bad_entries_are_rejected_alone_with_key_and_value() {
        let (e, errs) = parse(
            &data(&[
                ("192.0.2.1", "default/web"),
                ("not-an-ip", "default/web"),
                ("192.0.2.2", "default/web:LVS"),
                ("192.0.2.3", "justaname"),
                ("192.0.2.4", "Default/Web"),
                ("224.0.0.18", ""),
            ]),
            &[],
        );
        assert_eq!(e.len(), 1);
        let msgs: Vec<String> = errs.iter().map(|(k, m)| format!("{k}: {m}")).collect();
        assert_eq!(
            msgs,
            vec![
                "192.0.2.2: value \"default/web:LVS\": method \"LVS\" is not one of NAT, DR, PROXY",
                "192.0.2.3: value \"justaname\" is not <namespace>/<service>[:NAT|DR|PROXY]",
                "192.0.2.4: value \"Default/Web\": \"Default\" is not a valid namespace or Service name",
                "224.0.0.18: 224.0.0.18 cannot be a virtual IP",
                "not-an-ip: key \"not-an-ip\" is not an IP address",
            ]
        );
    }
}
