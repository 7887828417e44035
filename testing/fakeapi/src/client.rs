//! How tests reach the server the way edgevip reaches a cluster: HTTPS verified against
//! the fake's CA, a bearer token naming the user. The default token is edgevip's
//! ServiceAccount, so a test that uses these helpers gets exactly the permissions the
//! shipped manifests give the daemon.

use crate::rbac::User;
use crate::tls;
use std::net::SocketAddr;

/// Token of the ServiceAccount `edgevip/edgevip` (the one the shipped bindings name).
pub const EDGEVIP_TOKEN: &str = "fakeapi-token-edgevip-serviceaccount";
/// Token of a cluster admin (`system:masters`): for test set-up that edgevip may not do.
pub const ADMIN_TOKEN: &str = "fakeapi-token-cluster-admin";

/// The tokens every FakeApi knows from the start.
pub fn default_tokens() -> Vec<(String, User)> {
    vec![
        (
            EDGEVIP_TOKEN.to_string(),
            User::service_account("edgevip", "edgevip"),
        ),
        (ADMIN_TOKEN.to_string(), User::admin()),
    ]
}

/// PEM of the CA every HTTPS server of this process presents a certificate from.
pub fn ca_pem() -> &'static str {
    tls::ca_pem()
}

/// A kube config for `https://addr` as edgevip's ServiceAccount.
pub fn kube_config(addr: SocketAddr) -> kube::Config {
    kube_config_as(addr, EDGEVIP_TOKEN)
}

/// A kube config for `https://addr` with the given bearer token.
pub fn kube_config_as(addr: SocketAddr, token: &str) -> kube::Config {
    let url = format!("https://{addr}")
        .parse()
        .expect("a socket address makes a URL");
    let mut c = kube::Config::new(url);
    c.root_cert = Some(vec![tls::ca_der()]);
    // AuthInfo keeps the token as a SecretString: build it the way a kubeconfig does.
    c.auth_info = serde_json::from_value(serde_json::json!({ "token": token }))
        .expect("an AuthInfo with a token");
    c
}

/// A kubeconfig file for `https://addr` with the CA inlined and the given token.
pub fn kubeconfig_yaml(addr: SocketAddr, token: &str) -> String {
    let mut ca = String::new();
    for c in ca_pem().as_bytes().chunks(3) {
        base64_chunk(&mut ca, c);
    }
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters: [{{name: fake, cluster: {{server: \"https://{addr}\", certificate-authority-data: \"{ca}\"}}}}]\n\
         users: [{{name: fake, user: {{token: \"{token}\"}}}}]\n\
         contexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n\
         current-context: fake\n"
    )
}

fn base64_chunk(out: &mut String, c: &[u8]) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let n = (u32::from(c[0]) << 16)
        | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
        | u32::from(*c.get(2).unwrap_or(&0));
    for i in 0..4 {
        if i <= c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        } else {
            out.push('=');
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        let enc = |s: &str| {
            let mut o = String::new();
            for c in s.as_bytes().chunks(3) {
                super::base64_chunk(&mut o, c);
            }
            o
        };
        assert_eq!(enc("Man"), "TWFu");
        assert_eq!(enc("Ma"), "TWE=");
        assert_eq!(enc("M"), "TQ==");
        assert_eq!(enc("hello world"), "aGVsbG8gd29ybGQ=");
    }
}
