//! The AWS capability traits in memory: topics, queues, subscriptions (with their attributes and tags),
//! Order tables, the queues' messages ([`super::FakeQueues`]) and, when a test turns it on, SQS's
//! message-move task (`moves`). Creates are idempotent for the same attributes and refused (`Permanent`)
//! for others, as SNS and SQS do; what is missing is `NotFound`, deletes of what is gone succeed; every
//! call is recorded, so a test can assert what was asked.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
};

use super::{
    moves::MoveTasks,
    queue::{FakeQueue, FakeQueues},
    tables::FakeTables,
};
use crate::cloud::{
    Attributes, Error, ErrorKind, Operation, Result, TableItem, TableItems, Tags,
    traits::{
        MoveRequest, MoveTask, MoveTaskStatus, QueueMessages, QueueStats, Queues, Subscriptions, Tables,
        Topics,
    },
};

const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";

/// An AWS account in memory. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct FakeAws {
    state: Arc<Mutex<State>>,
    messages: FakeQueues,
    moves: MoveTasks,
}

#[derive(Debug, Default)]
struct State {
    /// Topics by ARN.
    topics: BTreeMap<String, Resource>,
    /// Queues by URL.
    queues: BTreeMap<String, Resource>,
    /// Subscriptions by ARN.
    subscriptions: BTreeMap<String, Subscription>,
    tables: FakeTables,
    calls: Vec<String>,
    sequence: u64,
}

#[derive(Clone, Debug)]
struct Resource {
    name: String,
    attributes: Attributes,
    tags: Tags,
}

#[derive(Clone, Debug)]
struct Subscription {
    topic_arn: String,
    queue_arn: String,
    attributes: Attributes,
}

fn error(kind: ErrorKind, service: &'static str, name: &'static str, resource: &str, code: &str) -> Error {
    Error::Service {
        operation: Operation::new(service, name, resource),
        kind,
        code: code.to_owned(),
        message: format!("{code} (fake)"),
        status: None,
    }
}

fn not_found(service: &'static str, name: &'static str, resource: &str) -> Error {
    error(ErrorKind::NotFound, service, name, resource, "NotFound")
}

/// Whether `existing` already has every one of `attributes` (a create with other values is refused).
fn same(existing: &Attributes, attributes: &Attributes) -> bool {
    attributes
        .iter()
        .all(|(name, value)| existing.get(name).map_or(value.is_empty(), |v| v == value))
}

fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
}

impl FakeAws {
    fn state(&self, call: String) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.calls.push(call);
        state
    }

    /// Every call so far, as `Operation resource` (e.g. `CreateTopic orders`), oldest first.
    pub fn calls(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .calls
            .clone()
    }

    /// The messages of the queue at `url`.
    pub fn messages(&self, url: &str) -> FakeQueue {
        self.messages.queue(url)
    }

    /// The same account with SQS's server-side message-move task (off by default, as on the emulators).
    #[must_use]
    pub fn with_message_moves(self) -> Self {
        self.moves.enable();
        self
    }

    /// Sets the state and the count moved of the newest move task of the dead-letter queue `source_arn`
    /// (see [`Self::with_message_moves`]); whether there is one.
    pub fn advance_message_move(&self, source_arn: &str, status: MoveTaskStatus, moved: i64) -> bool {
        self.moves.advance(source_arn, status, moved)
    }

    /// Whether the Order table `name` was ensured.
    pub fn has_table(&self, name: &str) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tables
            .contains(name)
    }

    /// Every item of the table `name` (see [`TableItems`]), for tests to look at.
    pub fn table_items(&self, name: &str) -> Vec<TableItem> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tables
            .items(name)
    }
}

impl Topics for FakeAws {
    async fn find_topic(&self, name: &str) -> Result<Option<(String, Attributes)>> {
        let state = self.state(format!("FindTopic {name}"));
        Ok(state
            .topics
            .iter()
            .find(|(_, topic)| topic.name == name)
            .map(|(arn, topic)| (arn.clone(), topic.attributes.clone())))
    }

    async fn create_topic(&self, name: &str, attributes: &Attributes, tags: &Tags) -> Result<String> {
        let mut state = self.state(format!("CreateTopic {name}"));
        let arn = format!("arn:aws:sns:{REGION}:{ACCOUNT}:{name}");
        if let Some(existing) = state.topics.get(&arn) {
            if !same(&existing.attributes, attributes) {
                return Err(error(
                    ErrorKind::Permanent,
                    "sns",
                    "CreateTopic",
                    name,
                    "InvalidParameter",
                ));
            }
            return Ok(arn);
        }
        let mut attributes = attributes.clone();
        attributes.insert("TopicArn".to_owned(), arn.clone());
        let topic = Resource {
            name: name.to_owned(),
            attributes,
            tags: tags.clone(),
        };
        state.topics.insert(arn.clone(), topic);
        Ok(arn)
    }

    async fn topic_attributes(&self, arn: &str) -> Result<Attributes> {
        let state = self.state(format!("GetTopicAttributes {arn}"));
        let topic = state.topics.get(arn);
        topic
            .map(|t| t.attributes.clone())
            .ok_or_else(|| not_found("sns", "GetTopicAttributes", arn))
    }

    async fn set_topic_attribute(&self, arn: &str, name: &str, value: &str) -> Result<()> {
        let mut state = self.state(format!("SetTopicAttributes {arn} {name}"));
        let topic = state.topics.get_mut(arn);
        let topic = topic.ok_or_else(|| not_found("sns", "SetTopicAttributes", arn))?;
        topic.attributes.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    async fn topic_tags(&self, arn: &str) -> Result<Tags> {
        let state = self.state(format!("ListTagsForResource {arn}"));
        let topic = state.topics.get(arn);
        topic
            .map(|t| t.tags.clone())
            .ok_or_else(|| not_found("sns", "ListTagsForResource", arn))
    }

    async fn tag_topic(&self, arn: &str, tags: &Tags) -> Result<()> {
        let mut state = self.state(format!("TagResource {arn}"));
        let topic = state.topics.get_mut(arn);
        let topic = topic.ok_or_else(|| not_found("sns", "TagResource", arn))?;
        topic.tags.extend(tags.clone());
        Ok(())
    }

    async fn untag_topic(&self, arn: &str, keys: &[String]) -> Result<()> {
        let mut state = self.state(format!("UntagResource {arn}"));
        let topic = state.topics.get_mut(arn);
        let topic = topic.ok_or_else(|| not_found("sns", "UntagResource", arn))?;
        topic.tags.retain(|key, _| !keys.contains(key));
        Ok(())
    }

    async fn delete_topic(&self, arn: &str) -> Result<()> {
        let mut state = self.state(format!("DeleteTopic {arn}"));
        state.topics.remove(arn);
        state.subscriptions.retain(|_, s| s.topic_arn != arn);
        Ok(())
    }
}

impl Queues for FakeAws {
    async fn find_queue(&self, name: &str) -> Result<Option<String>> {
        let state = self.state(format!("GetQueueUrl {name}"));
        Ok(state
            .queues
            .iter()
            .find(|(_, queue)| queue.name == name)
            .map(|(url, _)| url.clone()))
    }

    async fn create_queue(&self, name: &str, attributes: &Attributes, tags: &Tags) -> Result<String> {
        let mut state = self.state(format!("CreateQueue {name}"));
        let url = format!("http://sqs.fake/{ACCOUNT}/{name}");
        if let Some(existing) = state.queues.get(&url) {
            if !same(&existing.attributes, attributes) {
                return Err(error(
                    ErrorKind::Permanent,
                    "sqs",
                    "CreateQueue",
                    name,
                    "QueueAlreadyExists",
                ));
            }
            return Ok(url);
        }
        let mut attributes = attributes.clone();
        attributes.insert("QueueArn".to_owned(), queue_arn(name));
        let queue = Resource {
            name: name.to_owned(),
            attributes,
            tags: tags.clone(),
        };
        state.queues.insert(url.clone(), queue);
        Ok(url)
    }

    async fn queue_attributes(&self, url: &str) -> Result<Attributes> {
        let mut attributes = {
            let state = self.state(format!("GetQueueAttributes {url}"));
            let queue = state.queues.get(url);
            queue
                .map(|q| q.attributes.clone())
                .ok_or_else(|| not_found("sqs", "GetQueueAttributes", url))?
        };
        let messages = self.messages.queue(url);
        let (held, visible) = (messages.held().len(), messages.visible());
        attributes.insert("ApproximateNumberOfMessages".to_owned(), visible.to_string());
        let hidden = held - visible;
        attributes.insert(
            "ApproximateNumberOfMessagesNotVisible".to_owned(),
            hidden.to_string(),
        );
        attributes.insert("ApproximateNumberOfMessagesDelayed".to_owned(), "0".to_owned());
        Ok(attributes)
    }

    async fn set_queue_attributes(&self, url: &str, attributes: &Attributes) -> Result<()> {
        let mut state = self.state(format!("SetQueueAttributes {url}"));
        let queue = state.queues.get_mut(url);
        let queue = queue.ok_or_else(|| not_found("sqs", "SetQueueAttributes", url))?;
        for (name, value) in attributes {
            if value.is_empty() {
                queue.attributes.remove(name);
            } else {
                queue.attributes.insert(name.clone(), value.clone());
            }
        }
        Ok(())
    }

    async fn queue_stats(&self, url: &str) -> Result<QueueStats> {
        let attributes = self.queue_attributes(url).await?;
        Ok(crate::cloud::aws::queue_stats_from(&attributes))
    }

    async fn dead_letter_sources(&self, url: &str) -> Result<Vec<String>> {
        let state = self.state(format!("ListDeadLetterSourceQueues {url}"));
        let arn = state
            .queues
            .get(url)
            .map(|q| queue_arn(&q.name))
            .ok_or_else(|| not_found("sqs", "ListDeadLetterSourceQueues", url))?;
        let targets = |queue: &Resource| {
            let policy = queue.attributes.get("RedrivePolicy")?;
            let policy: serde_json::Value = serde_json::from_str(policy).ok()?;
            Some(policy.get("deadLetterTargetArn")?.as_str()? == arn)
        };
        Ok(state
            .queues
            .iter()
            .filter(|(_, queue)| targets(queue) == Some(true))
            .map(|(url, _)| url.clone())
            .collect())
    }

    async fn queue_tags(&self, url: &str) -> Result<Tags> {
        let state = self.state(format!("ListQueueTags {url}"));
        let queue = state.queues.get(url);
        queue
            .map(|q| q.tags.clone())
            .ok_or_else(|| not_found("sqs", "ListQueueTags", url))
    }

    async fn tag_queue(&self, url: &str, tags: &Tags) -> Result<()> {
        let mut state = self.state(format!("TagQueue {url}"));
        let queue = state.queues.get_mut(url);
        let queue = queue.ok_or_else(|| not_found("sqs", "TagQueue", url))?;
        queue.tags.extend(tags.clone());
        Ok(())
    }

    async fn untag_queue(&self, url: &str, keys: &[String]) -> Result<()> {
        let mut state = self.state(format!("UntagQueue {url}"));
        let queue = state.queues.get_mut(url);
        let queue = queue.ok_or_else(|| not_found("sqs", "UntagQueue", url))?;
        queue.tags.retain(|key, _| !keys.contains(key));
        Ok(())
    }

    async fn delete_queue(&self, url: &str) -> Result<()> {
        self.state(format!("DeleteQueue {url}")).queues.remove(url);
        Ok(())
    }
}

impl Subscriptions for FakeAws {
    async fn find_subscription(&self, topic_arn: &str, queue_arn: &str) -> Result<Option<String>> {
        let state = self.state(format!("ListSubscriptionsByTopic {topic_arn}"));
        Ok(state
            .subscriptions
            .iter()
            .find(|(_, s)| s.topic_arn == topic_arn && s.queue_arn == queue_arn)
            .map(|(arn, _)| arn.clone()))
    }

    async fn subscribe(&self, topic_arn: &str, queue_arn: &str, attributes: &Attributes) -> Result<String> {
        let mut state = self.state(format!("Subscribe {topic_arn} {queue_arn}"));
        if !state.topics.contains_key(topic_arn) {
            return Err(not_found("sns", "Subscribe", topic_arn));
        }
        let existing = state
            .subscriptions
            .iter()
            .find(|(_, s)| s.topic_arn == topic_arn && s.queue_arn == queue_arn);
        if let Some((arn, _)) = existing {
            return Ok(arn.clone());
        }
        state.sequence += 1;
        let arn = format!("{topic_arn}:subscription-{}", state.sequence);
        // What SNS reports of every subscription besides the attributes it was made with.
        let mut attributes = attributes.clone();
        attributes.insert("SubscriptionArn".to_owned(), arn.clone());
        attributes.insert("TopicArn".to_owned(), topic_arn.to_owned());
        attributes.insert("Endpoint".to_owned(), queue_arn.to_owned());
        attributes.insert("Protocol".to_owned(), "sqs".to_owned());
        let subscription = Subscription {
            topic_arn: topic_arn.to_owned(),
            queue_arn: queue_arn.to_owned(),
            attributes,
        };
        state.subscriptions.insert(arn.clone(), subscription);
        Ok(arn)
    }

    async fn subscription_attributes(&self, arn: &str) -> Result<Option<Attributes>> {
        let state = self.state(format!("GetSubscriptionAttributes {arn}"));
        Ok(state.subscriptions.get(arn).map(|s| s.attributes.clone()))
    }

    async fn set_subscription_attribute(&self, arn: &str, name: &str, value: &str) -> Result<()> {
        let mut state = self.state(format!("SetSubscriptionAttributes {arn} {name}"));
        let subscription = state.subscriptions.get_mut(arn);
        let subscription = subscription.ok_or_else(|| not_found("sns", "SetSubscriptionAttributes", arn))?;
        if value.is_empty() {
            subscription.attributes.remove(name);
        } else {
            subscription.attributes.insert(name.to_owned(), value.to_owned());
        }
        Ok(())
    }

    async fn unsubscribe(&self, arn: &str) -> Result<()> {
        self.state(format!("Unsubscribe {arn}")).subscriptions.remove(arn);
        Ok(())
    }
}

impl Tables for FakeAws {
    async fn ensure_table(&self, name: &str) -> Result<()> {
        self.state(format!("CreateTable {name}")).tables.ensure(name);
        Ok(())
    }
}

impl TableItems for FakeAws {
    async fn query_index(
        &self,
        table: &str,
        index: &str,
        key: (&str, &str),
        limit: i32,
    ) -> Result<Vec<TableItem>> {
        let mut state = self.state(format!("Query {table} {index} {}", key.1));
        state.tables.query(table, index, key, limit)
    }

    async fn update_item(
        &self,
        table: &str,
        key: &TableItem,
        set: &TableItem,
        remove: &[&str],
    ) -> Result<bool> {
        let mut state = self.state(format!("UpdateItem {table}"));
        state.tables.update(table, key, set, remove)
    }

    async fn claim_item(
        &self,
        table: &str,
        key: &TableItem,
        attributes: (&str, &str),
        holder: &str,
        times: (i64, i64),
    ) -> Result<bool> {
        let mut state = self.state(format!("UpdateItem {table} claim"));
        state.tables.claim(table, key, attributes, holder, times)
    }

    async fn put_item(&self, table: &str, item: &TableItem) -> Result<()> {
        self.state(format!("PutItem {table}")).tables.put(table, item)
    }

    async fn delete_item(&self, table: &str, key: &TableItem) -> Result<()> {
        self.state(format!("DeleteItem {table}"))
            .tables
            .delete(table, key)
    }
}

impl QueueMessages for FakeAws {
    type Queue = FakeQueue;

    fn message_queue(&self, url: &str) -> FakeQueue {
        self.messages.queue(url)
    }

    async fn start_message_move(&self, request: &MoveRequest) -> Result<String> {
        drop(self.state(format!("StartMessageMoveTask {}", request.source_arn)));
        match self.moves.start(request) {
            Some(handle) => Ok(handle),
            None => self.messages.start_message_move(request).await,
        }
    }

    async fn message_moves(&self, source_arn: &str) -> Result<Vec<MoveTask>> {
        drop(self.state(format!("ListMessageMoveTasks {source_arn}")));
        match self.moves.of(source_arn) {
            Some(tasks) => Ok(tasks),
            None => self.messages.message_moves(source_arn).await,
        }
    }
}

#[cfg(test)]
#[path = "aws_tests.rs"]
mod tests;
