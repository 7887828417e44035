//! Addresses and links through rtnetlink (never by running `ip`).

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    /// Administratively up and with carrier: a VRRP router can talk on it.
    pub up: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrInfo {
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub tentative: bool,
    pub dadfailed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("interface {0:?} not found")]
    NoSuchLink(String),
    #[error("{op} {addr} on interface #{index}: {source}")]
    Address {
        op: &'static str,
        addr: IpAddr,
        index: u32,
        source: rtnetlink::Error,
    },
    #[error("{op}: {source}")]
    Query {
        op: &'static str,
        source: rtnetlink::Error,
    },
}

/// A handle on the kernel's routing netlink; cheap to clone.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    /// The kernel refuses a second dump on a socket while one runs (EBUSY); instances
    /// share the socket, so requests take turns.
    dump: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Netlink {
    /// Opens the netlink connection on the current tokio runtime.
    pub fn new() -> Result<Netlink, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Netlink {
            handle,
            dump: Default::default(),
        })
    }

    pub async fn link_by_name(&self, name: &str) -> Result<LinkInfo, NetlinkError> {
        let _turn = self.dump.lock().await;
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        // Read the reply to its end: a dump left half-read makes the next request on this
        // socket fail with EBUSY.
        let mut found = None;
        loop {
            match links.try_next().await {
                Ok(Some(m)) => {
                    let l = link_info(&m);
                    if found.is_none() && l.name == name {
                        found = Some(l);
                    }
                }
                Ok(None) => break,
                // The kernel answers ENODEV for an unknown name.
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => break,
                Err(source) => {
                    return Err(NetlinkError::Query {
                        op: "get link",
                        source,
                    });
                }
            }
        }
        found.ok_or_else(|| NetlinkError::NoSuchLink(name.into()))
    }

    /// All addresses on interface `index`.
    pub async fn addresses(&self, index: u32) -> Result<Vec<AddrInfo>, NetlinkError> {
        let _turn = self.dump.lock().await;
        let mut out = Vec::new();
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(m) = s.try_next().await.map_err(|source| NetlinkError::Query {
            op: "get addresses",
            source,
        })? {
            if m.header.index != index {
                continue;
            }
            let flags = address_flags(&m);
            let addr = m.attributes.iter().find_map(|a| match a {
                // For IPv4 `Local` is the interface's own address (`Address` is the peer on
                // point-to-point links); IPv6 has only `Address`.
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = addr.or_else(|| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(addr) = addr {
                out.push(AddrInfo {
                    addr,
                    prefix_len: m.header.prefix_len,
                    tentative: flags.contains(AddressFlags::Tentative),
                    dadfailed: flags.contains(AddressFlags::Dadfailed),
                });
            }
        }
        Ok(out)
    }

    /// The name of the interface holding one of `addrs` (the first that is found), e.g.
    /// the node's InternalIP in Kubernetes mode.
    pub async fn interface_holding(
        &self,
        addrs: &[IpAddr],
    ) -> Result<Option<String>, NetlinkError> {
        let index = {
            let _turn = self.dump.lock().await;
            let mut s = self.handle.address().get().execute();
            let mut found: Option<(usize, u32)> = None;
            while let Some(m) = s.try_next().await.map_err(|source| NetlinkError::Query {
                op: "get addresses",
                source,
            })? {
                for a in &m.attributes {
                    let ip = match a {
                        AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => ip,
                        _ => continue,
                    };
                    if let Some(rank) = addrs.iter().position(|x| x == ip)
                        && found.is_none_or(|(r, _)| rank < r)
                    {
                        found = Some((rank, m.header.index));
                    }
                }
            }
            match found {
                Some((_, i)) => i,
                None => return Ok(None),
            }
        };
        let _turn = self.dump.lock().await;
        let mut links = self.handle.link().get().match_index(index).execute();
        let mut name = None;
        while let Some(m) = links
            .try_next()
            .await
            .map_err(|source| NetlinkError::Query {
                op: "get link",
                source,
            })?
        {
            name = name.or(Some(link_info(&m).name));
        }
        Ok(name)
    }

    /// The address VRRP adverts come from: the first IPv4 address, or the IPv6 link-local
    /// address (RFC 5798 §5.1.2.1). `exclude` lists VIPs, which never qualify.
    pub async fn primary_address(
        &self,
        index: u32,
        family: Family,
        exclude: &[IpAddr],
    ) -> Result<Option<IpAddr>, NetlinkError> {
        let addrs = self.addresses(index).await?;
        Ok(addrs
            .iter()
            .map(|a| a.addr)
            .filter(|a| !exclude.contains(a))
            .find(|a| match (family, a) {
                (Family::V4, IpAddr::V4(_)) => true,
                (Family::V6, IpAddr::V6(v6)) => v6.is_unicast_link_local(),
                _ => false,
            }))
    }

    /// Adds a VIP; already present is success. IPv6 VIPs skip DAD (`nodad`): a VIP that sat
    /// tentative for a second, or went `dadfailed` because the old master still answered,
    /// would be useless at the moment it matters.
    pub async fn add_vip(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let mut req = self.handle.address().add(index, addr, prefix_len).replace();
        if addr.is_ipv6() {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            Err(source) => Err(NetlinkError::Address {
                op: "add",
                addr,
                index,
                source,
            }),
        }
    }

    /// Removes a VIP; already absent is success.
    pub async fn del_vip(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = prefix_len;
        msg.header.family = if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        msg.attributes.push(AddressAttribute::Address(addr));
        if addr.is_ipv4() {
            msg.attributes.push(AddressAttribute::Local(addr));
        }
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e))
                if e.raw_code() == -libc::EADDRNOTAVAIL || e.raw_code() == -libc::ENOENT =>
            {
                Ok(())
            }
            Err(source) => Err(NetlinkError::Address {
                op: "remove",
                addr,
                index,
                source,
            }),
        }
    }
}

fn address_flags(m: &AddressMessage) -> AddressFlags {
    m.attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Flags(f) => Some(*f),
            _ => None,
        })
        .unwrap_or_else(|| AddressFlags::from_bits_truncate(u32::from(m.header.flags.bits())))
}

pub(crate) fn link_info(m: &LinkMessage) -> LinkInfo {
    let mut name = String::new();
    let mut mac = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(b) if b.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(b);
                mac = Some(m);
            }
            _ => {}
        }
    }
    let f = m.header.flags;
    LinkInfo {
        index: m.header.index,
        name,
        mac,
        up: f.contains(LinkFlags::Up)
            && f.contains(LinkFlags::LowerUp)
            && f.contains(LinkFlags::Running),
    }
}
