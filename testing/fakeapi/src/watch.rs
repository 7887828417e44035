//! Watch streams: newline-delimited `{"type","object"}` events over a chunked response.
//!
//! Each stream keeps a cursor (the last resourceVersion it has scanned) and, whenever the
//! store commits, scans the history after the cursor. Replay from `resourceVersion=R` is
//! the same scan started at R, so replayed and live events are produced identically.

use crate::api::FakeApi;
use crate::request::{Body, Ctx, Target, filter_for, partial};
use crate::selector::Filter;
use crate::status::ApiError;
use crate::store::{self, Change};
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::watch as chan;
use tokio::time::{Instant, Interval, MissedTickBehavior};

struct WatchStream {
    api: FakeApi,
    filter: Filter,
    meta_only: bool,
    cursor: u64,
    /// Lines to send before anything else (initial ADDED events, initial bookmark, 410).
    pending: String,
    /// Set when the stream must end after `pending` (410 Gone).
    done: bool,
    changed: chan::Receiver<u64>,
    closer: chan::Receiver<u64>,
    deadline: Option<Instant>,
    bookmarks: Option<Interval>,
}

/// One event line, `type` first like the apiserver writes it.
fn line(ty: &str, obj: Value) -> String {
    format!("{{\"type\":\"{ty}\",\"object\":{obj}}}\n")
}

/// Translate one committed change into the event this watcher sees, if any. Objects that
/// start matching the selector appear as ADDED, ones that stop matching as DELETED
/// (carrying the change's resourceVersion), as the apiserver's watch cache does.
fn event_for(c: &Change, f: &Filter) -> Option<(&'static str, Value)> {
    if c.ty != f.ty {
        return None;
    }
    let old_match = c.old.as_ref().is_some_and(|o| f.matches(o));
    match c.new.as_ref().filter(|n| f.matches(n)) {
        Some(new) if old_match => Some(("MODIFIED", new.clone())),
        Some(new) => Some(("ADDED", new.clone())),
        None if old_match => {
            let mut gone = c.old.clone()?;
            store::set_rv(&mut gone, c.rv);
            Some(("DELETED", gone))
        }
        None => None,
    }
}

impl WatchStream {
    fn render(&self, obj: Value) -> Value {
        if self.meta_only { partial(&obj) } else { obj }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> String {
        let (kind, api_version) = if self.meta_only {
            (
                "PartialObjectMetadata".to_string(),
                "meta.k8s.io/v1".to_string(),
            )
        } else {
            (self.filter.ty.1.clone(), self.filter.ty.0.clone())
        };
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            "BOOKMARK",
            json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
        )
    }

    /// Events committed after the cursor; advances the cursor to the current RV.
    fn collect(&mut self) -> String {
        let st = self.api.lock();
        let mut out = String::new();
        for c in st.store.changes_since(self.cursor) {
            if let Some((ty, obj)) = event_for(c, &self.filter) {
                out.push_str(&line(ty, self.render(obj)));
            }
        }
        self.cursor = st.store.rv();
        out
    }

    /// Next chunk to send, or None to end the response cleanly.
    async fn next_chunk(&mut self) -> Option<String> {
        if !self.pending.is_empty() {
            return Some(std::mem::take(&mut self.pending));
        }
        if self.done {
            return None;
        }
        loop {
            // close_watches() wins over anything committed after it.
            if self.closer.has_changed().unwrap_or(true) {
                return None;
            }
            let out = self.collect();
            if !out.is_empty() {
                return Some(out);
            }
            let deadline = self.deadline;
            let tick = async {
                match self.bookmarks.as_mut() {
                    Some(i) => {
                        i.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.closer.changed() => return None,
                r = self.changed.changed() => if r.is_err() { return None },
                _ = async { tokio::time::sleep_until(deadline?).await; Some(()) }, if deadline.is_some() => return None,
                _ = tick => {
                    // Flush pending changes first so the bookmark RV never skips an event.
                    let mut out = self.collect();
                    out.push_str(&self.bookmark(self.cursor, false));
                    return Some(out);
                }
            }
        }
    }
}

/// Validate the watch request, compute the initial events and return the streaming body.
pub fn start(api: &FakeApi, ctx: &Ctx, t: &Target) -> Result<Body, ApiError> {
    let q = &ctx.query;
    let filter = filter_for(ctx, t)?;
    let send_initial = q.flag("sendInitialEvents");
    if send_initial && q.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            "sendInitialEvents requires resourceVersionMatch=NotOlderThan",
        ));
    }
    let rv = q.get("resourceVersion").unwrap_or_default();
    let from = match rv {
        "" | "0" => None,
        r => Some(
            r.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {r:?}")))?,
        ),
    };
    let timeout = match q.get("timeoutSeconds").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {s:?}")))?,
        ),
        None => None,
    };
    // Subscribe before reading state so no commit between the two is missed.
    let changed = api.inner.changed.subscribe();
    let closer = api.inner.closer.subscribe();
    let st = api.lock();
    let interval = st.bookmark_interval.max(Duration::from_millis(10));
    let mut ws = WatchStream {
        api: api.clone(),
        filter,
        meta_only: ctx.meta_only,
        cursor: st.store.rv(),
        pending: String::new(),
        done: false,
        changed,
        closer,
        deadline: timeout.map(|s| Instant::now() + Duration::from_secs(s)),
        bookmarks: q.flag("allowWatchBookmarks").then(|| {
            let mut i = tokio::time::interval_at(Instant::now() + interval, interval);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        }),
    };
    match (send_initial, from) {
        // Without a usable RV (or with a streaming list) the watch starts with the current
        // state as synthetic ADDED events; with NotOlderThan any R <= current is satisfied.
        (true, _) | (false, None) => {
            for obj in st
                .store
                .objects(&ws.filter.ty)
                .filter(|o| ws.filter.matches(o))
            {
                ws.pending.push_str(&line("ADDED", ws.render(obj.clone())));
            }
            if send_initial {
                ws.pending.push_str(&ws.bookmark(ws.cursor, true));
            }
        }
        (false, Some(r)) if r < st.store.compacted() => {
            let gone = ApiError::expired(format!(
                "too old resource version: {r} ({})",
                st.store.compacted()
            ));
            ws.pending = line("ERROR", gone.to_status());
            ws.done = true;
        }
        (false, Some(r)) => ws.cursor = r.min(st.store.rv()),
    }
    drop(st);
    let stream = futures::stream::unfold(ws, |mut ws| async move {
        let chunk = ws.next_chunk().await?;
        Some((Ok(Frame::data(Bytes::from(chunk))), ws))
    });
    Ok(StreamBody::new(stream.boxed()).boxed_unsync())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::{FieldSelector, LabelSelector};

    fn node(labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "labels": labels}})
    }

    #[test]
    fn selector_transitions() {
        let f = Filter {
            ty: ("v1".into(), "Node".into()),
            namespace: None,
            labels: LabelSelector::parse("edge=true").expect("sel"),
            fields: FieldSelector::default(),
        };
        let ch = |old: Option<Value>, new: Option<Value>| Change {
            rv: 9,
            ty: ("v1".into(), "Node".into()),
            old,
            new,
        };
        let yes = node(json!({"edge": "true"}));
        let no = node(json!({}));
        let t = |c: Change| {
            event_for(&c, &f).map(|(t, o)| (t, o["metadata"]["resourceVersion"].clone()))
        };
        assert_eq!(t(ch(None, Some(yes.clone()))).map(|x| x.0), Some("ADDED"));
        assert_eq!(t(ch(None, Some(no.clone()))), None);
        assert_eq!(
            t(ch(Some(yes.clone()), Some(yes.clone()))).map(|x| x.0),
            Some("MODIFIED")
        );
        assert_eq!(
            t(ch(Some(no.clone()), Some(yes.clone()))).map(|x| x.0),
            Some("ADDED")
        );
        assert_eq!(
            t(ch(Some(yes.clone()), Some(no.clone()))),
            Some(("DELETED", json!("9")))
        );
        assert_eq!(t(ch(Some(yes), None)), Some(("DELETED", json!("9"))));
        assert_eq!(t(ch(Some(no), None)), None);
    }
}
