//! What to forward: computed from the cluster (VIP entries, Services, EndpointSlices).

use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// VIP:port (of one protocol) → the endpoints, DNATed in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NatService {
    pub vip: IpAddr,
    pub port: u16,
    pub proto: Proto,
    /// Ready endpoints (address and target port), sorted; of the VIP's family.
    pub backends: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProxyHeader {
    None,
    V1,
    V2,
}

/// VIP:port (TCP) → the endpoints, through the userspace proxy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProxyService {
    pub vip: IpAddr,
    pub port: u16,
    pub backends: Vec<SocketAddr>,
    pub header: ProxyHeader,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spec {
    pub nat: Vec<NatService>,
    pub proxy: Vec<ProxyService>,
}
