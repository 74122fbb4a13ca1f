//! SNS: topics and their SQS subscriptions.

use std::collections::HashMap;

use aws_sdk_sns::types::Tag;

use super::{
    AwsCloud, SNS,
    attributes::{creation_attributes, topic_arn},
    error::{from_sdk, gone_is_ok, missing},
};
use crate::cloud::{
    Error, Operation, Result,
    traits::{Attributes, Subscriptions, Tags, Topics},
};

/// The SNS protocol of queue subscriptions: Tributary subscribes SQS queues only.
const SQS_PROTOCOL: &str = "sqs";

fn to_hash_map(attributes: &Attributes) -> HashMap<String, String> {
    attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn sns_tags(operation: &Operation, tags: &Tags) -> Result<Vec<Tag>> {
    tags.iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| Error::Invalid {
                    operation: operation.clone(),
                    detail: e.to_string(),
                })
        })
        .collect()
}

impl Topics for AwsCloud {
    async fn find_topic(&self, name: &str) -> Result<Option<(String, Attributes)>> {
        // SNS has no lookup by name; the ARN is determined by account, region and name, so build it and
        // ask for its attributes (one call, where listing every topic would be many).
        let operation = Operation::new(SNS, "GetTopicAttributes", name);
        let region = self.required_region(&operation)?.to_owned();
        let arn = topic_arn(&region, self.account_id().await?, name);
        match self.topic_attributes(&arn).await {
            Ok(attributes) => Ok(Some((arn, attributes))),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn create_topic(&self, name: &str, attributes: &Attributes, tags: &Tags) -> Result<String> {
        let operation = Operation::new(SNS, "CreateTopic", name);
        let tags = sns_tags(&operation, tags)?;
        self.limit(&operation).await;
        let output = self
            .inner
            .sns
            .create_topic()
            .name(name)
            .set_attributes(Some(to_hash_map(&creation_attributes(attributes))))
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| from_sdk(operation.clone(), e))?;
        output.topic_arn.ok_or_else(|| missing(operation, "TopicArn"))
    }

    async fn topic_attributes(&self, arn: &str) -> Result<Attributes> {
        let operation = Operation::new(SNS, "GetTopicAttributes", arn);
        self.limit(&operation).await;
        let output = self
            .inner
            .sns
            .get_topic_attributes()
            .topic_arn(arn)
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(output.attributes.unwrap_or_default().into_iter().collect())
    }

    async fn set_topic_attribute(&self, arn: &str, name: &str, value: &str) -> Result<()> {
        let operation = Operation::new(SNS, "SetTopicAttributes", arn);
        self.limit(&operation).await;
        self.inner
            .sns
            .set_topic_attributes()
            .topic_arn(arn)
            .attribute_name(name)
            .attribute_value(value)
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    async fn topic_tags(&self, arn: &str) -> Result<Tags> {
        let operation = Operation::new(SNS, "ListTagsForResource", arn);
        self.limit(&operation).await;
        let output = self
            .inner
            .sns
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(output
            .tags
            .unwrap_or_default()
            .into_iter()
            .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
            .collect())
    }

    async fn tag_topic(&self, arn: &str, tags: &Tags) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let operation = Operation::new(SNS, "TagResource", arn);
        let tags = sns_tags(&operation, tags)?;
        self.limit(&operation).await;
        self.inner
            .sns
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    async fn untag_topic(&self, arn: &str, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let operation = Operation::new(SNS, "UntagResource", arn);
        self.limit(&operation).await;
        self.inner
            .sns
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    async fn delete_topic(&self, arn: &str) -> Result<()> {
        let operation = Operation::new(SNS, "DeleteTopic", arn);
        self.limit(&operation).await;
        let result = self
            .inner
            .sns
            .delete_topic()
            .topic_arn(arn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| from_sdk(operation, e));
        gone_is_ok(result)
    }
}

impl Subscriptions for AwsCloud {
    async fn find_subscription(&self, topic_arn: &str, queue_arn: &str) -> Result<Option<String>> {
        let mut next_token = None;
        loop {
            let operation = Operation::new(SNS, "ListSubscriptionsByTopic", topic_arn);
            self.limit(&operation).await;
            let page = self
                .inner
                .sns
                .list_subscriptions_by_topic()
                .topic_arn(topic_arn)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| from_sdk(operation, e))?;
            let found = page.subscriptions().iter().find_map(|subscription| {
                let matches = subscription.protocol() == Some(SQS_PROTOCOL)
                    && subscription.endpoint() == Some(queue_arn);
                // A subscription awaiting confirmation has the ARN "PendingConfirmation", not an ARN.
                subscription
                    .subscription_arn()
                    .filter(|arn| matches && arn.starts_with("arn:"))
                    .map(str::to_owned)
            });
            if found.is_some() {
                return Ok(found);
            }
            match page.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => return Ok(None),
            }
        }
    }

    async fn subscribe(&self, topic_arn: &str, queue_arn: &str, attributes: &Attributes) -> Result<String> {
        // SNS makes Subscribe idempotent for the same topic, endpoint and attributes (it returns the
        // existing ARN); with different attributes it refuses, so callers look for an existing subscription
        // first and update its attributes instead.
        let operation = Operation::new(SNS, "Subscribe", format!("{topic_arn} -> {queue_arn}"));
        self.limit(&operation).await;
        let output = self
            .inner
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol(SQS_PROTOCOL)
            .endpoint(queue_arn)
            .set_attributes(Some(to_hash_map(&creation_attributes(attributes))))
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(|e| from_sdk(operation.clone(), e))?;
        output
            .subscription_arn
            .ok_or_else(|| missing(operation, "SubscriptionArn"))
    }

    async fn subscription_attributes(&self, arn: &str) -> Result<Option<Attributes>> {
        let operation = Operation::new(SNS, "GetSubscriptionAttributes", arn);
        self.limit(&operation).await;
        match self
            .inner
            .sns
            .get_subscription_attributes()
            .subscription_arn(arn)
            .send()
            .await
        {
            Ok(output) => Ok(Some(output.attributes.unwrap_or_default().into_iter().collect())),
            Err(e) => match from_sdk(operation, e) {
                error if error.is_not_found() => Ok(None),
                error => Err(error),
            },
        }
    }

    async fn set_subscription_attribute(&self, arn: &str, name: &str, value: &str) -> Result<()> {
        let operation = Operation::new(SNS, "SetSubscriptionAttributes", arn);
        self.limit(&operation).await;
        self.inner
            .sns
            .set_subscription_attributes()
            .subscription_arn(arn)
            .attribute_name(name)
            .attribute_value(value)
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    async fn unsubscribe(&self, arn: &str) -> Result<()> {
        let operation = Operation::new(SNS, "Unsubscribe", arn);
        self.limit(&operation).await;
        let result = self
            .inner
            .sns
            .unsubscribe()
            .subscription_arn(arn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| from_sdk(operation, e));
        gone_is_ok(result)
    }
}
