//! [`AzureCloud`]: every Azure capability the controllers call, in one value: Storage Queues (managed and
//! their messages), Event Hubs through Resource Manager when the controller has access to it, and the
//! Kafka clients (consumer lag, producers for the redrive).

use std::collections::{BTreeMap, HashMap};

use azure_core::http::Url;

use super::{
    arm::Provisioned,
    event_hubs::{EventHubs, Hub, HubAddress, HubSettings},
    kafka::{self, KafkaAdmin, KafkaEndpoint, Lag},
    queue::StorageQueue,
    redrive::KafkaProducer,
    storage_queues::{Account, Observed, StorageQueues},
};
use crate::{
    cloud::{
        Error, ErrorKind, Operation, Result,
        traits::{
            ConsumerLag, EventHubsAdmin, HubProducers, QueueStats, StorageQueueAdmin, StorageQueueMessages,
        },
    },
    operate::Fence,
};

/// The Azure clients of the controller. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct AzureCloud {
    storage: StorageQueues,
    /// `None` without Resource Manager access: every Event Hubs call then fails (permanently).
    hubs: Option<EventHubs>,
    kafka: KafkaAdmin,
}

impl AzureCloud {
    /// Storage Queues through `storage`, Event Hubs through `hubs` (if the controller has Resource Manager
    /// access), Kafka with the default request bound.
    pub fn new(storage: StorageQueues, hubs: Option<EventHubs>) -> Self {
        Self {
            storage,
            hubs,
            kafka: KafkaAdmin::default(),
        }
    }

    /// These clients, with the Kafka calls (lag, redrive producers) refused while `fence` is closed; the
    /// Storage Queue and Resource Manager clients are given their fence when they are made.
    pub fn with_kafka_fence(mut self, fence: Fence) -> Self {
        self.kafka = self.kafka.with_fence(fence);
        self
    }

    /// The Event Hubs client, or the permanent error that says it is not configured.
    fn hubs(&self, name: &'static str, at: &HubAddress) -> Result<&EventHubs> {
        self.hubs.as_ref().ok_or_else(|| Error::Service {
            operation: Operation::new("arm", name, at.hub_id()),
            kind: ErrorKind::Permanent,
            code: "NoResourceManagerAccess".to_owned(),
            message: "the controller has no Azure Resource Manager access configured (AZURE_SUBSCRIPTION_ID \
                      and an Azure identity)"
                .to_owned(),
            status: None,
        })
    }
}

impl EventHubsAdmin for AzureCloud {
    async fn namespace_state(&self, at: &HubAddress) -> Result<Option<String>> {
        self.hubs("Get", at)?.namespace_state(at).await
    }

    async fn create_namespace(
        &self,
        at: &HubAddress,
        location: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Provisioned> {
        self.hubs("Put", at)?.create_namespace(at, location, tags).await
    }

    async fn hub(&self, at: &HubAddress) -> Result<Option<Hub>> {
        self.hubs("Get", at)?.hub(at).await
    }

    async fn put_hub(&self, at: &HubAddress, settings: &HubSettings) -> Result<Provisioned> {
        self.hubs("Put", at)?.put_hub(at, settings).await
    }

    async fn consumer_groups(&self, at: &HubAddress) -> Result<Vec<String>> {
        self.hubs("Get", at)?.consumer_groups(at).await
    }

    async fn create_consumer_group(&self, at: &HubAddress, name: &str) -> Result<()> {
        self.hubs("Put", at)?.create_consumer_group(at, name).await
    }

    async fn listen_connection_string(&self, at: &HubAddress) -> Result<String> {
        self.hubs("Post", at)?.listen_connection_string(at).await
    }

    async fn delete_hub(&self, at: &HubAddress) -> Result<bool> {
        self.hubs("Delete", at)?.delete_hub(at).await
    }
}

impl StorageQueueAdmin for AzureCloud {
    fn queue_url(&self, account: &str, queue: &str) -> Result<Url> {
        self.storage.queue_url(account, queue)
    }

    async fn observe(&self, account: &Account, queue: &str) -> Result<Option<Observed>> {
        self.storage.observe(account, queue).await
    }

    async fn create(&self, account: &Account, queue: &str, metadata: &HashMap<String, String>) -> Result<()> {
        self.storage.create(account, queue, metadata).await
    }

    async fn set_metadata(
        &self,
        account: &Account,
        queue: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        self.storage.set_metadata(account, queue, metadata).await
    }

    async fn stats(&self, account: &Account, queue: &str, messages: i64) -> Result<QueueStats> {
        self.storage.stats(account, queue, messages).await
    }

    async fn delete(&self, account: &Account, queue: &str) -> Result<()> {
        self.storage.delete(account, queue).await
    }
}

impl StorageQueueMessages for AzureCloud {
    type Queue = StorageQueue;

    fn storage_queue(
        &self,
        account: &Account,
        queue: &str,
        message_ttl_seconds: Option<i64>,
    ) -> Result<StorageQueue> {
        self.storage.storage_queue(account, queue, message_ttl_seconds)
    }
}

impl ConsumerLag for AzureCloud {
    async fn lag(&self, endpoint: &KafkaEndpoint, topic: &str, group: &str) -> Result<Lag> {
        self.kafka.lag(endpoint, topic, group).await
    }
}

impl HubProducers for AzureCloud {
    type Producer = KafkaProducer;

    fn producer(&self, endpoint: &KafkaEndpoint, topic: &str) -> Result<KafkaProducer> {
        self.kafka.producer(endpoint, topic)
    }
}

// The capabilities of each client, which `AzureCloud` hands on.

/// The capability the DeviceStream reconciler calls: the calls above.
impl EventHubsAdmin for EventHubs {
    async fn namespace_state(&self, at: &HubAddress) -> Result<Option<String>> {
        Self::namespace_state(self, at).await
    }

    async fn create_namespace(
        &self,
        at: &HubAddress,
        location: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Provisioned> {
        Self::create_namespace(self, at, location, tags).await
    }

    async fn hub(&self, at: &HubAddress) -> Result<Option<Hub>> {
        Self::hub(self, at).await
    }

    async fn put_hub(&self, at: &HubAddress, settings: &HubSettings) -> Result<Provisioned> {
        Self::put_hub(self, at, settings).await
    }

    async fn consumer_groups(&self, at: &HubAddress) -> Result<Vec<String>> {
        Self::consumer_groups(self, at).await
    }

    async fn create_consumer_group(&self, at: &HubAddress, name: &str) -> Result<()> {
        Self::create_consumer_group(self, at, name).await
    }

    async fn listen_connection_string(&self, at: &HubAddress) -> Result<String> {
        Self::listen_connection_string(self, at).await
    }

    async fn delete_hub(&self, at: &HubAddress) -> Result<bool> {
        Self::delete_hub(self, at).await
    }
}

/// The capability the Queue and DeadLetter reconcilers (and Consumers' backlog) call: the calls above.
impl StorageQueueAdmin for StorageQueues {
    fn queue_url(&self, account: &str, queue: &str) -> Result<Url> {
        Self::queue_url(self, account, queue)
    }

    async fn observe(&self, account: &Account, queue: &str) -> Result<Option<Observed>> {
        Self::observe(self, account, queue).await
    }

    async fn create(&self, account: &Account, queue: &str, metadata: &HashMap<String, String>) -> Result<()> {
        Self::create(self, account, queue, metadata).await
    }

    async fn set_metadata(
        &self,
        account: &Account,
        queue: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        Self::set_metadata(self, account, queue, metadata).await
    }

    async fn stats(&self, account: &Account, queue: &str, messages: i64) -> Result<QueueStats> {
        Self::stats(self, account, queue, messages).await
    }

    async fn delete(&self, account: &Account, queue: &str) -> Result<()> {
        Self::delete(self, account, queue).await
    }
}

/// The messages of a queue, through a client signed now (the redrive of a DeadLetter is short).
impl StorageQueueMessages for StorageQueues {
    type Queue = StorageQueue;

    fn storage_queue(
        &self,
        account: &Account,
        queue: &str,
        message_ttl_seconds: Option<i64>,
    ) -> Result<StorageQueue> {
        let messages = StorageQueue::new(self.client(account, queue)?);
        Ok(match message_ttl_seconds {
            Some(seconds) => messages.with_message_ttl(seconds),
            None => messages,
        })
    }
}

/// The lag is read with blocking calls, off the async threads.
impl ConsumerLag for KafkaAdmin {
    async fn lag(&self, endpoint: &KafkaEndpoint, topic: &str, group: &str) -> Result<Lag> {
        let (endpoint, timeout, fence) = (endpoint.clone(), self.timeout, self.fence.clone());
        let (topic, group) = (topic.to_owned(), group.to_owned());
        let resource = format!("{topic} in group {group}");
        // Refused here already, so a closed fence costs no blocking thread and no client.
        kafka::fenced(&fence, || Operation::new("kafka", "Lag", resource.clone()))?;
        tokio::task::spawn_blocking(move || kafka::fenced_lag(&endpoint, &topic, &group, timeout, &fence))
            .await
            .map_err(|e| Error::Response {
                operation: Operation::new("kafka", "Lag", resource),
                detail: format!("reading the consumer lag stopped: {e}"),
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_resource_manager_event_hubs_calls_fail_permanently() {
        let azure = AzureCloud::default();
        let at = HubAddress {
            subscription: "s".into(),
            resource_group: "g".into(),
            namespace: "n".into(),
            hub: "h".into(),
        };
        let error = azure.hub(&at).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Permanent);
        assert!(
            error.to_string().contains("no Azure Resource Manager access"),
            "{error}"
        );
    }

    /// An endpoint nothing listens on: a call that reached the client would fail there, later and
    /// differently (a transport error after the request timeout), not with the fence's refusal.
    fn nowhere() -> KafkaEndpoint {
        KafkaEndpoint {
            bootstrap_servers: "127.0.0.1:9".into(),
            security_protocol: "PLAINTEXT".into(),
            username: String::new(),
            password: String::new(),
            ca_file: None,
        }
    }

    fn refused_by_the_fence(error: &Error) -> bool {
        matches!(error, Error::Unreachable { .. })
            && error.kind() == ErrorKind::Transient
            && error.to_string().contains("leader lease")
    }

    #[tokio::test]
    async fn a_closed_fence_refuses_the_lag_without_reaching_the_broker() {
        let fence = Fence::closed();
        let azure = AzureCloud::default().with_kafka_fence(fence.clone());
        let started = std::time::Instant::now();
        let error = azure.lag(&nowhere(), "t", "g").await.unwrap_err();
        assert!(refused_by_the_fence(&error), "{error}");
        assert_eq!(
            error.operation().to_string(),
            Operation::new("kafka", "Lag", "t in group g").to_string()
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "refused at once, not after a request"
        );
        // A fence whose instant has passed refuses the same way; so does each request inside a lag.
        fence.open_until(tokio::time::Instant::now());
        let error =
            kafka::fenced_lag(&nowhere(), "t", "g", std::time::Duration::from_secs(10), &fence).unwrap_err();
        assert!(refused_by_the_fence(&error), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_closed_fence_refuses_the_redrive_producer_and_its_sends() {
        use crate::cloud::{queue::OutgoingMessage, traits::HubProducer as _};
        let fence = Fence::closed();
        let azure = AzureCloud::default().with_kafka_fence(fence.clone());
        let error = azure.producer(&nowhere(), "t").unwrap_err();
        assert!(refused_by_the_fence(&error), "{error}");
        // Made while leading, then the lease is lost: nothing is produced.
        fence.open_until(tokio::time::Instant::now() + std::time::Duration::from_secs(60));
        let producer = azure.producer(&nowhere(), "t").unwrap();
        fence.close();
        let message = OutgoingMessage {
            entry_id: "m0".into(),
            body: "{}".into(),
            attributes: BTreeMap::new(),
            group_id: None,
            deduplication_id: None,
        };
        let started = std::time::Instant::now();
        let error = producer.send(&[message]).await.unwrap_err();
        assert!(refused_by_the_fence(&error), "{error}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "not after a delivery timeout"
        );
    }
}
