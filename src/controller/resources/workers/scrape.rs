//! Reading the message counters of a set of workers from their pods' `/metrics`, shared by the two kinds
//! that run workers (a Consumer's counts, a Subscription relay's).
//!
//! Where a pod is reached is decided by the controller, never by a field a tenant can write: the host is
//! the Pod's `status.podIP` (written by the kubelet or the CNI, not by the pod's owner) and the port is
//! [`METRICS_PORT`], which the controller itself puts in every worker pod. Addresses that would let a pod
//! point the controller elsewhere are refused: loopback, unspecified, link-local (cloud metadata
//! endpoints) and multicast. Only a test bed, whose simulated pods run their workers as local processes,
//! allows loopback pods and a port annotation ([`Scraper::allow_loopback`]). Each read has a timeout and a
//! size bound, a set of pods is read a few at a time, and a failed read only leaves that pod out: counts
//! never fail a reconcile.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::ListParams};

use super::METRICS_PORT;

/// The pod annotation naming its metrics port, honoured only with [`Scraper::allow_loopback`] (a test
/// bed's simulated pods, whose workers are local processes on ports of their own).
pub const METRICS_PORT_ANNOTATION: &str = "tributary.dev/metrics-port";
/// The most of a `/metrics` answer that is read: a worker's is a few kilobytes.
const MAX_BODY: usize = 256 * 1024;
/// Pods of one set read at the same time.
const CONCURRENCY: usize = 4;

/// The message counters of one worker, as its `/metrics` reports them (counts since it started).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `tributary_worker_messages_processed_total`.
    pub processed: u64,
    /// `tributary_worker_messages_failed_total`.
    pub failed: u64,
    /// `tributary_worker_messages_dead_lettered_total`, every reason.
    pub dead_lettered: u64,
    /// `tributary_worker_messages_filtered_total` (a relay's messages its filter dropped).
    pub filtered: u64,
}

/// What one pod reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodCounters {
    /// When the pod started (Unix seconds), from its status.
    pub started: Option<i64>,
    /// Its counters.
    pub counters: Counters,
}

/// The counters of `text` (the Prometheus text format), summed over label sets. Pure.
pub fn parse(text: &str) -> Counters {
    let mut counters = Counters::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        // The name ends at its labels (`\x7b`, an opening brace) or at the value.
        let name = line.split(['\x7b', ' ']).next().unwrap_or_default();
        let field = match name {
            "tributary_worker_messages_processed_total" => &mut counters.processed,
            "tributary_worker_messages_failed_total" => &mut counters.failed,
            "tributary_worker_messages_dead_lettered_total" => &mut counters.dead_lettered,
            "tributary_worker_messages_filtered_total" => &mut counters.filtered,
            _ => continue,
        };
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(value) = value.filter(|v| v.is_finite() && *v >= 0.0) {
            // Counters are integers; the cast saturates.
            *field = field.saturating_add(value as u64);
        }
    }
    counters
}

/// Where `pod` serves its metrics, or why it is not read. Pure.
pub fn target(pod: &Pod, allow_loopback: bool) -> Result<SocketAddr, &'static str> {
    let status = pod.status.as_ref().ok_or("no status")?;
    if status.phase.as_deref() != Some("Running") || pod.metadata.deletion_timestamp.is_some() {
        return Err("not running");
    }
    let ip: IpAddr = status
        .pod_ip
        .as_deref()
        .ok_or("no pod IP")?
        .parse()
        .map_err(|_| "a pod IP that is not an address")?;
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    };
    if ip.is_unspecified() || ip.is_multicast() || link_local || (ip.is_loopback() && !allow_loopback) {
        return Err("a pod IP the controller does not call");
    }
    let annotated = allow_loopback
        .then(|| {
            pod.metadata
                .annotations
                .as_ref()?
                .get(METRICS_PORT_ANNOTATION)?
                .parse()
                .ok()
        })
        .flatten();
    Ok(SocketAddr::new(ip, annotated.unwrap_or(METRICS_PORT)))
}

/// Whether `pod` belongs to the Deployment `deployment`: its controller is one of that Deployment's
/// ReplicaSets (`<deployment>-<hash>`). Pods someone else made with the same labels are not counted.
pub fn of_deployment(pod: &Pod, deployment: &str) -> bool {
    pod.metadata.owner_references.iter().flatten().any(|o| {
        o.controller == Some(true)
            && o.kind == "ReplicaSet"
            && o.name
                .strip_prefix(deployment)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|hash| !hash.is_empty() && hash.chars().all(|c| c.is_ascii_alphanumeric()))
    })
}

/// Reads worker pods' metrics: an HTTP client without proxies or redirects, a timeout per read.
#[derive(Clone, Debug)]
pub struct Scraper {
    http: reqwest::Client,
    /// Loopback pod IPs and the port annotation are allowed (a test bed only).
    pub allow_loopback: bool,
}

impl Scraper {
    /// A scraper whose reads time out after `timeout`.
    pub fn new(timeout: Duration, allow_loopback: bool) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { http, allow_loopback }
    }

    /// The counters of the running pods of Deployment `deployment` in `namespace` selected by `selector`,
    /// by pod name; pods that could not be read are left out. The list is served from the API server's
    /// cache (`resourceVersion=0`), not from etcd.
    pub async fn read(
        &self,
        client: &Client,
        namespace: &str,
        selector: &BTreeMap<String, String>,
        deployment: &str,
    ) -> Result<BTreeMap<String, PodCounters>, kube::Error> {
        let labels = selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let listed = pods
            .list(&ListParams::default().labels(&labels).match_any())
            .await?;
        let reads = listed
            .items
            .into_iter()
            .filter(|pod| of_deployment(pod, deployment))
            .filter_map(|pod| {
                let address = target(&pod, self.allow_loopback).ok()?;
                let name = pod.metadata.name.clone()?;
                let started = pod.status.as_ref()?.start_time.as_ref().map(|t| t.0.as_second());
                Some((name, address, started))
            })
            .map(|(name, address, started)| async move {
                let counters = self.fetch(address).await;
                if let Err(error) = &counters {
                    tracing::debug!(pod = %name, %address, %error, "worker metrics not read");
                }
                let counters = counters.ok()?;
                Some((name, PodCounters { started, counters }))
            });
        let read: Vec<_> = futures::stream::iter(reads)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        Ok(read.into_iter().flatten().collect())
    }

    async fn fetch(&self, address: SocketAddr) -> Result<Counters, reqwest::Error> {
        let mut response = self
            .http
            .get(format!("http://{address}/metrics"))
            .send()
            .await?
            .error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                break;
            }
        }
        body.truncate(MAX_BODY);
        Ok(parse(&String::from_utf8_lossy(&body)))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::core::v1::PodStatus,
        apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
    };

    use super::*;

    #[test]
    fn the_message_counters_are_summed_over_label_sets() {
        let text = "# HELP tributary_worker_messages_processed_total x\n\
            # TYPE tributary_worker_messages_processed_total counter\n\
            tributary_worker_messages_processed_total{consumer=\"a/b\"} 12\n\
            tributary_worker_messages_processed_total_other{consumer=\"a/b\"} 99\n\
            tributary_worker_messages_failed_total{consumer=\"a/b\"} 3\n\
            tributary_worker_messages_dead_lettered_total{consumer=\"a/b\",reason=\"rejected\"} 2\n\
            tributary_worker_messages_dead_lettered_total{consumer=\"a/b\",reason=\"exhausted\"} 5\n\
            tributary_worker_messages_filtered_total 4\n\
            tributary_worker_messages_failed_total{consumer=\"a/b\"} NaN\n";
        let counters = parse(text);
        assert_eq!(
            counters,
            Counters {
                processed: 12,
                failed: 3,
                dead_lettered: 7,
                filtered: 4
            }
        );
        let rendered = crate::worker::metrics::WorkerMetrics::new();
        rendered.processed(Duration::from_millis(1));
        assert_eq!(
            parse(&rendered.render("a/b", "inventory")).processed,
            1,
            "the worker's own text"
        );
    }

    fn pod(ip: &str, annotation: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                annotations: annotation
                    .map(|p| BTreeMap::from([(METRICS_PORT_ANNOTATION.to_owned(), p.to_owned())])),
                owner_references: Some(vec![OwnerReference {
                    kind: "ReplicaSet".to_owned(),
                    name: "inventory-worker-5d8f".to_owned(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                phase: Some("Running".to_owned()),
                pod_ip: Some(ip.to_owned()),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn the_address_is_the_pod_ip_and_the_controllers_port_and_never_loopback_or_metadata() {
        let port = METRICS_PORT;
        assert_eq!(
            target(&pod("10.244.1.7", Some("1234")), false),
            Ok(([10, 244, 1, 7], port).into())
        );
        for refused in [
            "127.0.0.1",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "224.0.0.1",
            "x",
        ] {
            assert!(target(&pod(refused, None), false).is_err(), "{refused} refused");
        }
        assert_eq!(
            target(&pod("127.0.0.1", Some("1234")), true),
            Ok(([127, 0, 0, 1], 1234).into()),
            "a test bed: loopback and the annotated port"
        );
        assert!(
            target(&pod("169.254.169.254", None), true).is_err(),
            "metadata never"
        );
        let mut pending = pod("10.0.0.1", None);
        pending.status.as_mut().unwrap().phase = Some("Pending".to_owned());
        assert_eq!(target(&pending, false), Err("not running"));
    }

    #[test]
    fn only_pods_of_the_deployments_replica_sets_count() {
        assert!(of_deployment(&pod("10.0.0.1", None), "inventory-worker"));
        assert!(
            !of_deployment(&pod("10.0.0.1", None), "inventory"),
            "another Deployment's prefix"
        );
        let mut bare = pod("10.0.0.1", None);
        bare.metadata.owner_references = None;
        assert!(!of_deployment(&bare, "inventory-worker"), "a pod made by hand");
    }
}
