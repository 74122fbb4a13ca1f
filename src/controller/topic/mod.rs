//! Topic reconciler (SNS topic). validate: the `aws` block is there → build: topic name, attributes and
//! tags → apply: find or create the topic (adopting or refusing one that is not ours), set the
//! attributes that differ, add missing tags → status: ARN and confirmed subscriptions.

use std::sync::Arc;

use kube::ResourceExt;

use crate::cloud::Topics as _;
use crate::{
    api::{
        Topic,
        common::DeletionPolicy,
        topic::{TopicAws, TopicStatus},
    },
    cloud::{
        Attributes, Tags,
        aws::attributes::{self, names},
        names::last_segment,
    },
    controller::{
        Cloud, Context,
        driver::{
            drift::{self, names_of},
            error::Error,
            events::{self, reasons},
            ownership::{Ownership, desired_tags, lost, missing_tags, ownership, refusal, stale_tags},
            reconcile::{Applied, Reconciler},
            status::{describe, was_synced},
            tenancy, verified,
        },
    },
};

/// The SNS topic a Topic asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Desired {
    /// Topic name.
    pub name: String,
    /// Attributes (see [`attributes::topic_attributes`]).
    pub attributes: Attributes,
    /// Spec tags plus ownership tags.
    pub tags: Tags,
}

/// The validate step: pure.
pub fn validate(topic: &Topic) -> Result<&TopicAws, Error> {
    topic.spec.aws.as_ref().ok_or_else(|| Error::InvalidSpec {
        object: describe(topic),
        message: "spec.aws is required when spec.provider is aws".to_owned(),
    })
}

/// The SNS topic name: `spec.aws.name`, else the name recorded in status (a live topic is never
/// renamed), else the default `<namespace>_<name>`.
pub fn topic_name(topic: &Topic, aws: &TopicAws) -> String {
    let recorded = topic
        .status
        .as_ref()
        .and_then(|s| s.arn.as_deref())
        .and_then(last_segment);
    aws.name
        .clone()
        .or_else(|| recorded.map(str::to_owned))
        .unwrap_or_else(|| {
            let namespace = topic.namespace().unwrap_or_default();
            attributes::default_topic_name(&namespace, &topic.name_any(), aws.fifo)
        })
}

/// The build step: pure. `cluster` is the controller's cluster identity.
pub fn build(topic: &Topic, aws: &TopicAws, cluster: &str) -> Desired {
    let (namespace, name) = (topic.namespace().unwrap_or_default(), topic.name_any());
    let owner = crate::controller::driver::ownership::Owner {
        cluster,
        kind: "Topic",
        namespace: &namespace,
        name: &name,
    };
    Desired {
        name: topic_name(topic, aws),
        attributes: attributes::topic_attributes(aws),
        tags: desired_tags(&owner, &topic.spec.lifecycle.tags),
    }
}

/// The topic found (by the ARN in status, else by name; one call, which reads its attributes) or created
/// with its attributes and tags in one call; an existing one is adopted or refused, its attributes that
/// differ are set, its tags brought in line.
async fn ensure_topic<C: Cloud>(
    topic: &Topic,
    ctx: &Context<C>,
    desired: &Desired,
) -> Result<TopicStatus, Error> {
    let object = describe(topic);
    let cloud = &ctx.aws;
    let err = |source| Error::cloud(&object, source);
    // The ARN in status, or the one the last reconcile made if the watch has not brought its status back.
    let last = ctx.verified.last::<TopicStatus>(&object).and_then(|s| s.arn);
    let recorded = topic
        .status
        .as_ref()
        .and_then(|s| s.arn.clone())
        .or(last)
        .filter(|arn| last_segment(arn) == Some(desired.name.as_str()));
    let found = match recorded {
        Some(arn) => match cloud.topic_attributes(&arn).await {
            Ok(attributes) => Some((arn, attributes)),
            Err(error) if error.is_not_found() => None,
            Err(error) => return Err(err(error)),
        },
        None => cloud.find_topic(&desired.name).await.map_err(err)?,
    };
    let Some((arn, mut observed)) = found else {
        let arn = cloud
            .create_topic(&desired.name, &desired.attributes, &desired.tags)
            .await
            .map_err(err)?;
        let note = format!("created SNS topic {arn}");
        events::normal(&ctx.recorder, topic, reasons::CREATED, note).await;
        // Made in one call with exactly these attributes and tags: nothing to set or read back.
        return Ok(TopicStatus {
            arn: Some(arn),
            subscriptions_confirmed: Some(0),
            ..TopicStatus::default()
        });
    };
    let observed_tags = cloud.topic_tags(&arn).await.map_err(err)?;
    let found = ownership(
        &observed_tags,
        &ctx.owner("Topic", topic),
        topic.spec.lifecycle.adopt,
    );
    if let Some(refused) = refusal(&object, &format!("SNS topic {}", desired.name), &found) {
        return Err(refused);
    }
    if found == Ownership::Adopt {
        cloud.tag_topic(&arn, &desired.tags).await.map_err(err)?;
        let note = format!("adopted the existing SNS topic {arn}");
        events::normal(&ctx.recorder, topic, reasons::ADOPTED, note).await;
    } else {
        cloud
            .tag_topic(&arn, &missing_tags(&desired.tags, &observed_tags))
            .await
            .map_err(err)?;
        cloud
            .untag_topic(&arn, &stale_tags(&desired.tags, &observed_tags))
            .await
            .map_err(err)?;
    }
    sync_topic_attributes(topic, ctx, desired, &arn, &mut observed).await?;
    Ok(TopicStatus {
        arn: Some(arn),
        subscriptions_confirmed: observed
            .get(names::SUBSCRIPTIONS_CONFIRMED)
            .and_then(|count| count.parse().ok()),
        ..TopicStatus::default()
    })
}

/// Sets the attributes of an existing topic that differ from the spec; an immutable one is refused.
async fn sync_topic_attributes<C: Cloud>(
    topic: &Topic,
    ctx: &Context<C>,
    desired: &Desired,
    arn: &str,
    observed: &mut Attributes,
) -> Result<(), Error> {
    let object = describe(topic);
    let changes = drift::diff(&desired.attributes, observed);
    if let Some(change) = changes.immutable.first() {
        return Err(Error::ImmutableChange {
            object,
            message: format!(
                "SNS cannot change {} of topic {} in place (it is {:?}, the spec asks for {:?}); \
                 create a new Topic",
                change.name, desired.name, change.observed, change.desired
            ),
        });
    }
    for (name, value) in &changes.to_set {
        ctx.aws
            .set_topic_attribute(arn, name, value)
            .await
            .map_err(|source| Error::cloud(&object, source))?;
        observed.insert(name.clone(), value.clone());
    }
    if !changes.to_set.is_empty() {
        let reason = events::change_reason(was_synced(topic));
        let note = format!("set {} on SNS topic {arn}", names_of(&changes));
        events::normal(&ctx.recorder, topic, reason, note).await;
    }
    Ok(())
}

impl<C: Cloud> Reconciler<C> for Topic {
    async fn apply(topic: Arc<Self>, ctx: Arc<Context<C>>) -> Result<Applied<TopicStatus>, Error> {
        let object = describe(&*topic);
        let desired = build(&topic, validate(&topic)?, &ctx.config.cluster);
        let adopt = topic.spec.lifecycle.adopt;
        let namespace = topic.namespace().unwrap_or_default();
        tenancy::load(&ctx.client, &ctx.stores.policies, &object, &namespace)
            .await?
            .check_adoption(&object, adopt)?;
        let key = describe(&*topic);
        let print = verified::fingerprint(&(&topic.metadata.uid, topic.metadata.generation, &desired));
        if let Some(hit) = ctx.verified.get::<TopicStatus>(&key, print) {
            let arn = hit.status.arn.clone().unwrap_or_default();
            return Ok(Applied {
                status: hit.status,
                message: format!("SNS topic {arn}"),
                requeue: Some(hit.next_check),
                not_ready: None,
            });
        }
        let status = ensure_topic(&topic, &ctx, &desired).await?;
        ctx.verified
            .record(&key, print, status.clone(), ctx.resync("Topic"));
        let arn = status.arn.clone().unwrap_or_default();
        Ok(Applied {
            status,
            message: format!("SNS topic {arn}"),
            requeue: None,
            not_ready: None,
        })
    }

    async fn cleanup(topic: Arc<Self>, ctx: Arc<Context<C>>) -> Result<(), Error> {
        let object = describe(&*topic);
        if topic.spec.lifecycle.deletion_policy == DeletionPolicy::Retain {
            let note = "deletionPolicy is Retain: the SNS topic is kept".to_owned();
            events::normal(&ctx.recorder, &*topic, reasons::RETAINED, note).await;
            return Ok(());
        }
        let Some(arn) = owned_topic(&topic, &ctx).await? else {
            return Ok(());
        };
        ctx.aws
            .delete_topic(&arn)
            .await
            .map_err(|source| Error::cloud(&object, source))?;
        let note = format!("deleted SNS topic {arn}");
        events::normal(&ctx.recorder, &*topic, reasons::DELETED, note).await;
        Ok(())
    }
}

/// The ARN of the topic this object owns: the one in status, else the one under the desired name; in
/// both cases only if it still carries this object's tags (re-read now). A topic that is not ours is
/// never deleted: it is kept with a Warning Event.
async fn owned_topic<C: Cloud>(topic: &Topic, ctx: &Context<C>) -> Result<Option<String>, Error> {
    let object = describe(topic);
    let err = |source| Error::cloud(&object, source);
    let arn = match topic.status.as_ref().and_then(|s| s.arn.clone()) {
        Some(arn) => arn,
        None => {
            let Some(aws) = topic.spec.aws.as_ref() else {
                return Ok(None);
            };
            match ctx.aws.find_topic(&topic_name(topic, aws)).await.map_err(err)? {
                Some((arn, _)) => arn,
                None => return Ok(None),
            }
        }
    };
    let tags = match ctx.aws.topic_tags(&arn).await {
        Ok(tags) => tags,
        Err(error) if error.is_not_found() => return Ok(None),
        Err(error) => return Err(err(error)),
    };
    if let Some(note) = lost(&format!("SNS topic {arn}"), &tags, &ctx.owner("Topic", topic)) {
        events::warning(&ctx.recorder, topic, reasons::OWNERSHIP_LOST, note).await;
        return Ok(None);
    }
    Ok(Some(arn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::topic::TopicSpec;

    fn topic(aws: Option<TopicAws>) -> Topic {
        let mut topic = Topic::new(
            "orders",
            TopicSpec {
                aws,
                ..TopicSpec::default()
            },
        );
        topic.metadata.namespace = Some("shop".into());
        topic
    }

    #[test]
    fn the_name_defaults_to_namespace_underscore_name_and_tags_name_the_owner() {
        let mut topic = topic(Some(TopicAws::default()));
        let desired = build(&topic, validate(&topic).unwrap(), "c1");
        assert_eq!(desired.name, "shop_orders");
        assert_eq!(desired.tags["tributary.dev/kind"], "Topic");
        assert_eq!(desired.tags["tributary.dev/namespace"], "shop");
        assert_eq!(desired.tags["tributary.dev/cluster"], "c1");
        assert_eq!(desired.attributes["FifoTopic"], "false");
        let fifo = TopicAws {
            fifo: true,
            ..TopicAws::default()
        };
        assert_eq!(build(&topic, &fifo, "c1").name, "shop_orders.fifo");
        // A topic recorded under the old default keeps its name.
        topic.status = Some(TopicStatus {
            arn: Some("arn:aws:sns:eu-west-1:000000000000:shop-orders".into()),
            ..TopicStatus::default()
        });
        assert_eq!(build(&topic, validate(&topic).unwrap(), "c1").name, "shop-orders");
    }

    #[test]
    fn a_missing_aws_block_is_an_invalid_spec() {
        let error = validate(&topic(None)).unwrap_err();
        assert_eq!(error.reason(), "InvalidSpec");
    }
}

#[cfg(test)]
mod apply_tests;
