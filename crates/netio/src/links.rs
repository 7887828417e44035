//! Link state changes from the kernel (RTNLGRP_LINK), so a cut cable or a downed interface
//! moves the router to fault at once instead of after Master_Down_Interval.

use futures::StreamExt;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::MulticastGroup;
use tokio::sync::mpsc;

use crate::addr::link_info;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    pub index: u32,
    pub name: String,
    pub up: bool,
}

/// Starts following link changes on the current runtime. A deleted link reports `up: false`.
pub fn link_watch() -> std::io::Result<mpsc::Receiver<LinkEvent>> {
    let (conn, _handle, mut messages) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Link])?;
    tokio::spawn(conn);
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        while let Some((msg, _)) = messages.next().await {
            let ev = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                    let l = link_info(&m);
                    LinkEvent {
                        index: l.index,
                        name: l.name,
                        up: l.up,
                    }
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
                    let l = link_info(&m);
                    LinkEvent {
                        index: l.index,
                        name: l.name,
                        up: false,
                    }
                }
                _ => continue,
            };
            if ev.name.is_empty() || tx.send(ev).await.is_err() {
                continue;
            }
        }
    });
    Ok(rx)
}
