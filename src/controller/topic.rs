//! Topic reconciler (SNS topic). validate: the `aws` block is there → build: topic name, attributes and
//! tags → apply: find or create the topic (adopting or refusing one that is not ours), set the
//! attributes that differ, add missing tags → status: ARN and confirmed subscriptions.

use std::sync::Arc;

use kube::ResourceExt;

use super::{
    Cloud, Context,
    drift::{self, names_of},
    error::Error,
    events::{self, reasons},
    finalize::{Applied, Reconciler},
    ownership::{Ownership, desired_tags, lost, missing_tags, ownership, refusal, stale_tags},
    status::{describe, was_synced},
    tenancy,
};
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
};

/// The SNS topic a Topic asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    let owner = super::ownership::Owner {
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

impl<C: Cloud> Reconciler<C> for Topic {
    async fn apply(topic: Arc<Self>, ctx: Arc<Context<C>>) -> Result<Applied<TopicStatus>, Error> {
        let object = describe(&*topic);
        let desired = build(&topic, validate(&topic)?, &ctx.config.cluster);
        let adopt = topic.spec.lifecycle.adopt;
        let namespace = topic.namespace().unwrap_or_default();
        tenancy::load(&ctx.client, &object, &namespace)
            .await?
            .check_adoption(&object, adopt)?;
        let cloud = &ctx.cloud;
        let err = |source| Error::cloud(&object, source);

        let (arn, created, observed_tags) = match cloud.find_topic(&desired.name).await.map_err(err)? {
            None => {
                let arn = cloud
                    .create_topic(&desired.name, &desired.attributes, &desired.tags)
                    .await
                    .map_err(err)?;
                let note = format!("created SNS topic {arn}");
                events::normal(&ctx.recorder, &*topic, reasons::CREATED, note).await;
                (arn, true, desired.tags.clone())
            }
            Some(arn) => {
                let tags = cloud.topic_tags(&arn).await.map_err(err)?;
                let found = ownership(&tags, &ctx.owner("Topic", &*topic), adopt);
                if let Some(refused) = refusal(&object, &format!("SNS topic {}", desired.name), &found) {
                    return Err(refused);
                }
                if found == Ownership::Adopt {
                    cloud.tag_topic(&arn, &desired.tags).await.map_err(err)?;
                    let note = format!("adopted the existing SNS topic {arn}");
                    events::normal(&ctx.recorder, &*topic, reasons::ADOPTED, note).await;
                }
                (arn, false, tags)
            }
        };

        let mut observed = cloud.topic_attributes(&arn).await.map_err(err)?;
        let changes = drift::diff(&desired.attributes, &observed);
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
            cloud.set_topic_attribute(&arn, name, value).await.map_err(err)?;
            observed.insert(name.clone(), value.clone());
        }
        if !changes.to_set.is_empty() && !created {
            let reason = events::change_reason(was_synced(&*topic));
            let note = format!("set {} on SNS topic {arn}", names_of(&changes));
            events::normal(&ctx.recorder, &*topic, reason, note).await;
        }
        let missing = missing_tags(&desired.tags, &observed_tags);
        cloud.tag_topic(&arn, &missing).await.map_err(err)?;
        let stale = stale_tags(&desired.tags, &observed_tags);
        cloud.untag_topic(&arn, &stale).await.map_err(err)?;

        let status = TopicStatus {
            arn: Some(arn.clone()),
            subscriptions_confirmed: observed
                .get(names::SUBSCRIPTIONS_CONFIRMED)
                .and_then(|count| count.parse().ok()),
            ..TopicStatus::default()
        };
        Ok(Applied {
            status,
            message: format!("SNS topic {arn}"),
            requeue: None,
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
        ctx.cloud
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
            match ctx.cloud.find_topic(&topic_name(topic, aws)).await.map_err(err)? {
                Some(arn) => arn,
                None => return Ok(None),
            }
        }
    };
    let tags = match ctx.cloud.topic_tags(&arn).await {
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
