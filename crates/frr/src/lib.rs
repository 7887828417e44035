//! FRR is edgevip's routing engine: edgevip never speaks BGP or BFD itself. This crate
//! owns the boundary, and only it:
//!
//! - [`render`] (pure): the `bgp:` section and the routes to announce now → the text of an
//!   integrated `frr.conf` for bgpd and bfdd. Same input, same text, byte for byte, so a
//!   re-render of an unchanged state is a no-op for frr-reload.
//! - [`state`] (pure): vtysh's JSON (`show bgp summary json`, `show bfd peers json`,
//!   `show ip bgp neighbors X advertised-routes json`) → a small [`state::Speaker`].
//! - [`vtysh`]: the process side: write the file, `frr-reload.py --reload` it (a diff,
//!   applied as configuration commands: sessions whose lines did not change are not
//!   touched), run the show commands.
#![forbid(unsafe_code)]

pub mod render;
pub mod state;
pub mod vtysh;

pub use render::{Route, network_delta, render};
