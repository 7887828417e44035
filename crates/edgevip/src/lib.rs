//! edgevip: the daemon around the pure `vrrp` core. `engine` runs the instances, `api`
//! serves status and metrics, `daemon` wires them to the config file and signals.
#![forbid(unsafe_code)]

pub mod api;
pub mod bgp;
pub mod cli;
pub mod client;
pub mod convert;
pub mod daemon;
pub mod engine;
pub mod health;
pub mod init;
pub mod kube_mode;
pub mod manifest;
pub mod metrics;
pub mod notify;
pub mod status;
