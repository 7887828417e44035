//! Configurations of other VRRP daemons turned into edgevip's (`edgevip import ...`).

pub mod keepalived;
