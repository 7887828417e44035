//! HTTPS like a cluster's API server: one CA per test process (what a pod finds in
//! `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`) and, per server, a leaf
//! certificate for the address it listens on, `localhost`, 127.0.0.1, ::1 and the
//! in-cluster names (`kubernetes.default.svc`). Clients verify it like any server's.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem: String,
}

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        let key = KeyPair::generate().expect("generate the CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "edgevip-fakeapi-ca");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-sign the CA");
        let pem = issuer.pem();
        Ca { issuer, pem }
    })
}

/// PEM of the CA that signs every server's certificate (the content of `ca.crt`).
pub fn ca_pem() -> &'static str {
    &ca().pem
}

/// DER of the same CA (what `kube::Config::root_cert` takes).
pub fn ca_der() -> Vec<u8> {
    ca().issuer.der().to_vec()
}

/// A rustls server configuration with a fresh leaf certificate valid for `ip`.
pub fn server_config(ip: IpAddr) -> Arc<rustls::ServerConfig> {
    let key = KeyPair::generate().expect("generate the server key");
    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ])
    .expect("server params");
    for a in [
        ip,
        IpAddr::from([127, 0, 0, 1]),
        "::1".parse().expect("::1"),
    ] {
        if !params.subject_alt_names.contains(&SanType::IpAddress(a)) {
            params.subject_alt_names.push(SanType::IpAddress(a));
        }
    }
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let cert = params
        .signed_by(&key, &ca().issuer)
        .expect("sign the server certificate");
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}
