//! Linux I/O adapters around the pure VRRP core: VIPs and link state through rtnetlink, raw
//! VRRP sockets, gratuitous ARP and unsolicited neighbour advertisements. No protocol state
//! lives here.

mod addr;
mod announce;
mod links;
mod socket;

pub use addr::{AddrInfo, Family, LinkInfo, Netlink, NetlinkError};
pub use announce::{Announcer, arp_announcement, unsolicited_na};
pub use links::{LinkEvent, link_watch};
pub use socket::{BadDatagram, RECV_BUF, Received, RecvError, VrrpSocket};
