//! Forwarding of VIP traffic to a Service's ready endpoints, the two ways
//! kube-keepalived-vip offered without its IPVS and HAProxy: `nat` (nftables DNAT + SNAT
//! in a table of our own, replaced atomically) and `proxy` (a userspace TCP proxy that
//! can prepend a PROXY protocol header). `spec` is what both are told to do.
#![forbid(unsafe_code)]

pub mod arp_guard;
pub mod nat;
pub mod proxy;
pub mod proxy_header;
pub mod spec;

pub use spec::{NatService, Proto, ProxyHeader, ProxyService, Spec};
