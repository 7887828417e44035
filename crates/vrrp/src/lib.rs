//! Pure VRRP: the wire codec, the RFC 5798 / RFC 9568 state machine of one virtual router,
//! and a deterministic multi-router simulator. Nothing here touches a socket or a clock:
//! time is always an input, so the same inputs always give the same actions.
#![forbid(unsafe_code)]

pub mod checksum;
#[doc(hidden)]
pub mod fuzz;
pub mod packet;
pub mod time;
pub mod wire;

pub use packet::{Advert, Auth, ChecksumForm, DecodeError, Decoded, Version};
pub use time::Instant;
pub mod router;
pub mod sim;
pub use router::{
    Accepted, Action, Config, Datagram, DropReason, Heard, Input, Link, Reason, Router, State,
};
