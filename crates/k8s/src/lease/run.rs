//! Carries the elector's steps out against the API: read the Lease, write what the elector
//! decides with the read resourceVersion as precondition (a lost race is a 409 Conflict and
//! changes nothing), publish whether this pod leads.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{PostParams, Resource};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Elector, Record, Step};

#[derive(Debug, Clone)]
pub struct LeaseOptions {
    pub namespace: String,
    pub name: String,
    /// This pod's identity in `holderIdentity` (the node name: one pod per node).
    pub identity: String,
    pub duration: Duration,
}

/// Starts the election; the receiver says whether this pod holds the Lease now.
pub fn start(client: Client, opts: LeaseOptions) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(run(Api::namespaced(client, &opts.namespace), opts, tx));
    rx
}

async fn run(api: Api<Lease>, opts: LeaseOptions, tx: watch::Sender<bool>) {
    let mut e = Elector::new(opts.identity.clone(), opts.duration);
    let mut last_holder: Option<String> = None;
    let mut failing = false;
    loop {
        let now = Instant::now();
        let result = match api.get_opt(&opts.name).await {
            Ok(current) => {
                let record = current.as_ref().map(record);
                let step = e.observe(record.as_ref(), now);
                if let Step::Wait { holder } = &step
                    && last_holder.as_ref() != Some(holder)
                {
                    tracing::info!(lease = %opts.name, %holder, "LoadBalancer allocator is another pod");
                    last_holder = Some(holder.clone());
                }
                write(&api, &opts, &e, current, &step).await
            }
            Err(e) => Err(e),
        };
        failing = match result {
            Ok(wrote) => {
                if wrote {
                    e.written(now);
                    last_holder = Some(opts.identity.clone());
                }
                false
            }
            // A conflict is a lost race: read again next period.
            Err(kube::Error::Api(s)) if s.code == 409 => false,
            Err(err) => {
                if !failing {
                    tracing::warn!(lease = %opts.name, error = %err, "cannot read or renew the allocator Lease; retrying");
                }
                true
            }
        };
        publish(&tx, e.leading(Instant::now()), &opts.name);
        tokio::time::sleep(e.retry_period()).await;
    }
}

fn publish(tx: &watch::Sender<bool>, leading: bool, name: &str) {
    if tx.send_if_modified(|cur| std::mem::replace(cur, leading) != leading) {
        if leading {
            tracing::info!(lease = %name, "this pod holds the allocator Lease: it writes LoadBalancer status");
        } else {
            tracing::warn!(lease = %name, "this pod no longer holds the allocator Lease");
        }
    }
}

fn record(l: &Lease) -> Record {
    let spec = l.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity.unwrap_or_default(),
        duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64),
        renewed: spec.renew_time.map(|t| t.0.to_string()).unwrap_or_default(),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}

/// Performs `step`; true when the Lease now names this pod.
async fn write(
    api: &Api<Lease>,
    opts: &LeaseOptions,
    e: &Elector,
    current: Option<Lease>,
    step: &Step,
) -> kube::Result<bool> {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let seconds = e.duration().as_secs().clamp(1, i32::MAX as u64) as i32;
    match (step, current) {
        (Step::Wait { .. }, _) => Ok(false),
        (Step::Create, _) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(opts.name.clone()),
                    namespace: Some(opts.namespace.clone()),
                    labels: Some([("app.kubernetes.io/name".into(), "edgevip".into())].into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(opts.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease)
                .await
                .map(|_| true)
        }
        (Step::Renew | Step::Acquire, Some(mut lease)) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if *step == Step::Acquire {
                spec.holder_identity = Some(opts.identity.clone());
                spec.acquire_time = Some(now.clone());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(seconds);
            spec.renew_time = Some(now);
            // `replace` sends the resourceVersion read: the API refuses it (409) if another
            // pod wrote in between.
            let name = lease.meta().name.clone().unwrap_or_default();
            api.replace(&name, &PostParams::default(), &lease)
                .await
                .map(|_| true)
        }
        // Renew or acquire with nothing read cannot happen (observe said Create).
        (_, None) => Ok(false),
    }
}
