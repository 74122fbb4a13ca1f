//! SQS: queues (dead-letter queues are queues too).
//!
//! Queue age: SQS has no attribute for the age of the oldest message. AWS publishes it only as the
//! CloudWatch metric `ApproximateAgeOfOldestMessage` (a minute late, and absent from moto), and looking
//! at a message means receiving it, which counts towards its `maxReceiveCount` and could push it into the
//! dead-letter queue. So [`QueueStats::oldest_message_age_seconds`] is left `None` here; depth comes from
//! the `ApproximateNumberOfMessages*` attributes, which every server reports.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;

use super::{
    AwsCloud, SQS,
    attributes::{creation_attributes, names},
    error::{from_sdk, gone_is_ok, missing},
};
use crate::cloud::{
    Operation, Result,
    traits::{Attributes, QueueStats, Queues, Tags},
};

fn sqs_attributes(attributes: &Attributes) -> HashMap<QueueAttributeName, String> {
    attributes
        .iter()
        .map(|(name, value)| (QueueAttributeName::from(name.as_str()), value.clone()))
        .collect()
}

fn from_sqs_attributes(attributes: Option<HashMap<QueueAttributeName, String>>) -> Attributes {
    attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.as_str().to_owned(), value))
        .collect()
}

/// Queue counts from `GetQueueAttributes` output; missing or unparsable counts read as 0.
pub fn queue_stats_from(attributes: &Attributes) -> QueueStats {
    let count = |name: &str| {
        attributes
            .get(name)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    QueueStats {
        visible: count(names::APPROXIMATE_NUMBER_OF_MESSAGES),
        in_flight: count(names::APPROXIMATE_NUMBER_OF_MESSAGES_NOT_VISIBLE),
        delayed: count(names::APPROXIMATE_NUMBER_OF_MESSAGES_DELAYED),
        oldest_message_age_seconds: None,
    }
}

impl Queues for AwsCloud {
    async fn find_queue(&self, name: &str) -> Result<Option<String>> {
        let operation = Operation::new(SQS, "GetQueueUrl", name);
        self.limit(&operation).await;
        match self.inner.sqs.get_queue_url().queue_name(name).send().await {
            Ok(output) => output
                .queue_url
                .map(Some)
                .ok_or_else(|| missing(operation, "QueueUrl")),
            Err(e) => match from_sdk(operation, e) {
                error if error.is_not_found() => Ok(None),
                error => Err(error),
            },
        }
    }

    async fn create_queue(&self, name: &str, attributes: &Attributes, tags: &Tags) -> Result<String> {
        let operation = Operation::new(SQS, "CreateQueue", name);
        let tags: HashMap<String, String> = tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        self.limit(&operation).await;
        let output = self
            .inner
            .sqs
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(sqs_attributes(&creation_attributes(attributes))))
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| from_sdk(operation.clone(), e))?;
        output.queue_url.ok_or_else(|| missing(operation, "QueueUrl"))
    }

    async fn queue_attributes(&self, url: &str) -> Result<Attributes> {
        let operation = Operation::new(SQS, "GetQueueAttributes", url);
        self.limit(&operation).await;
        let output = self
            .inner
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(from_sqs_attributes(output.attributes))
    }

    async fn set_queue_attributes(&self, url: &str, attributes: &Attributes) -> Result<()> {
        if attributes.is_empty() {
            return Ok(());
        }
        let operation = Operation::new(SQS, "SetQueueAttributes", url);
        self.limit(&operation).await;
        self.inner
            .sqs
            .set_queue_attributes()
            .queue_url(url)
            .set_attributes(Some(sqs_attributes(attributes)))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    async fn queue_stats(&self, url: &str) -> Result<QueueStats> {
        let operation = Operation::new(SQS, "GetQueueAttributes", url);
        self.limit(&operation).await;
        let output = self
            .inner
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(queue_stats_from(&from_sqs_attributes(output.attributes)))
    }

    async fn dead_letter_sources(&self, url: &str) -> Result<Vec<String>> {
        let mut sources = Vec::new();
        let mut next_token = None;
        loop {
            let operation = Operation::new(SQS, "ListDeadLetterSourceQueues", url);
            self.limit(&operation).await;
            let page = self
                .inner
                .sqs
                .list_dead_letter_source_queues()
                .queue_url(url)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| from_sdk(operation, e))?;
            sources.extend(page.queue_urls);
            match page.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => return Ok(sources),
            }
        }
    }

    async fn queue_tags(&self, url: &str) -> Result<Tags> {
        let operation = Operation::new(SQS, "ListQueueTags", url);
        self.limit(&operation).await;
        let output = self
            .inner
            .sqs
            .list_queue_tags()
            .queue_url(url)
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(output.tags.unwrap_or_default().into_iter().collect())
    }

    async fn tag_queue(&self, url: &str, tags: &Tags) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let operation = Operation::new(SQS, "TagQueue", url);
        self.limit(&operation).await;
        self.inner
            .sqs
            .tag_queue()
            .queue_url(url)
            .set_tags(Some(tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    async fn untag_queue(&self, url: &str, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let operation = Operation::new(SQS, "UntagQueue", url);
        self.limit(&operation).await;
        self.inner
            .sqs
            .untag_queue()
            .queue_url(url)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    async fn delete_queue(&self, url: &str) -> Result<()> {
        let operation = Operation::new(SQS, "DeleteQueue", url);
        self.limit(&operation).await;
        let result = self
            .inner
            .sqs
            .delete_queue()
            .queue_url(url)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| from_sdk(operation, e));
        gone_is_ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_read_the_counts_and_leave_the_age_unknown() {
        let attributes: Attributes = [
            ("ApproximateNumberOfMessages", "7"),
            ("ApproximateNumberOfMessagesNotVisible", "2"),
            ("ApproximateNumberOfMessagesDelayed", "oops"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            queue_stats_from(&attributes),
            QueueStats {
                visible: 7,
                in_flight: 2,
                delayed: 0,
                oldest_message_age_seconds: None,
            }
        );
    }
}
