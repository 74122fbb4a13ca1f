//! A Subscription to a Queue on azure. SNS delivers to SQS only, and a Storage Queue has no filtering, so
//! the controller relays: build: the relay queue's name and attributes, and the relay worker (processor
//! `relay`, pure) → apply: find or create the SQS queue `tributary-relay-<namespace>-<name>` (tagged as
//! the Subscription's, with a queue policy letting only the Topic send and 14 days of retention, so
//! nothing is lost while Azure is unreachable), subscribe it to the Topic with raw delivery and no SNS
//! filter, and server-side apply the relay's ConfigMap, ServiceAccount and Deployment (`<name>-relay`,
//! owned by the Subscription, with the Storage Queue's account key from the Queue's Secret) → status:
//! the SNS subscription, the relay queue and the filter the relay applies. The relay evaluates the filter
//! with Tributary's engine, the one that validated it. Cleanup unsubscribes and deletes the relay queue;
//! the garbage collector removes the Deployment.

use std::{collections::BTreeMap, sync::Arc};

use kube::{Resource, ResourceExt};

use super::sns::ensure_subscription;
use crate::cloud::{Queues as _, Subscriptions as _};
use crate::controller::{
    Cloud, Context,
    driver::{
        children::apply_child,
        drift,
        error::Error,
        events::{self, reasons},
        ownership::{desired_tags, lost, missing_tags, ownership, refusal},
        reconcile::Applied,
        status::describe,
        tenancy,
    },
    resources::workers::{self, METRICS_PORT, WorkerOwner, scrape, worker_settings},
};
use crate::{
    api::{
        Queue, Subscription,
        common::DeletionPolicy,
        subscription::{RelayCounts, SubscriptionStatus},
    },
    cloud::{
        Attributes, Tags,
        aws::attributes::{self, SQS_NAME_LIMIT, names},
    },
    filter::Policy,
    worker::{
        config::{ConsumerName, ProcessorKind, Retry, Sink, Source, SqsSource, WorkerConfig},
        relay::RelayTarget,
    },
};

/// The label naming the Subscription on its relay's objects.
pub const SUBSCRIPTION_LABEL: &str = "tributary.dev/subscription";
/// The ownership kind of a relay queue.
const KIND: &str = "Subscription";
/// SQS's longest retention: what the relay queue holds while the Storage Queue cannot be reached.
const RETENTION_SECONDS: &str = "1209600";

/// What the relay admitted and dropped, summed over its pods' `/metrics`: read at most once per
/// throughput interval (the status keeps the last numbers in between, and when no pod can be read), and
/// the numbers of the status kept as they are when unchanged, so nothing is written. Never fails the
/// reconcile.
async fn relay_counts<C: Cloud>(ctx: &Context<C>, subscription: &Subscription) -> Option<RelayCounts> {
    let written = subscription.status.as_ref().and_then(|s| s.relay.clone());
    let now = time::OffsetDateTime::now_utc();
    let interval = ctx.config.throughput_interval.as_secs_f64();
    let due = written.as_ref().is_none_or(|w| {
        time::OffsetDateTime::parse(&w.observed_time, &time::format_description::well_known::Rfc3339)
            .ok()
            .is_none_or(|at| (now - at).as_seconds_f64() >= interval)
    });
    if !due {
        return written;
    }
    let owner = relay_owner(subscription);
    let namespace = subscription.namespace().unwrap_or_default();
    let pods = ctx
        .scraper
        .read(&ctx.client, &namespace, &owner.selector, &owner.name)
        .await;
    let pods = pods.ok().filter(|pods| !pods.is_empty())?;
    let (admitted, dropped) = relay_totals(pods.values().map(|p| &p.counters));
    if written
        .as_ref()
        .is_some_and(|w| (w.admitted, w.dropped) == (admitted, dropped))
    {
        return written;
    }
    Some(RelayCounts {
        admitted,
        dropped,
        observed_time: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    })
}

/// What the relay's pods admitted and dropped in total: a message its filter drops ends processed too
/// (acknowledged), so what was admitted is what was processed less what was dropped.
fn relay_totals<'a>(counters: impl Iterator<Item = &'a scrape::Counters>) -> (i64, i64) {
    let (processed, dropped) = counters.fold((0u64, 0u64), |(p, f), c| {
        (p.saturating_add(c.processed), f.saturating_add(c.filtered))
    });
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    (as_i64(processed.saturating_sub(dropped)), as_i64(dropped))
}

/// The relay's SQS queue name: `tributary-relay-<namespace>_<name>`, made valid. Kubernetes names have no
/// `_`, so no two Subscriptions share it, and no Queue's `<namespace>-<name>` default is one.
pub fn relay_queue_name(subscription: &Subscription) -> String {
    let namespace = subscription.namespace().unwrap_or_default();
    attributes::dashed_name(
        "tributary-relay",
        &format!("{namespace}_{}", subscription.name_any()),
        false,
        SQS_NAME_LIMIT,
    )
}

/// The name of the relay's Kubernetes objects.
pub fn relay_name(subscription: &Subscription) -> String {
    format!("{}-relay", subscription.name_any())
}

/// The relay worker's configuration: the relay queue in, the Queue's Storage Queue out, the filter.
pub fn relay_config(
    subscription: &Subscription,
    relay_url: &str,
    queue: &Queue,
    target_url: &str,
) -> WorkerConfig {
    let azure = queue.spec.azure.as_ref();
    WorkerConfig {
        consumer: ConsumerName {
            namespace: subscription.namespace().unwrap_or_default(),
            name: relay_name(subscription),
        },
        processor: ProcessorKind::Relay,
        source: Source {
            sqs: Some(SqsSource {
                queue_url: relay_url.to_owned(),
                visibility_timeout_seconds: 30,
                receivers: 2,
                wait_time_seconds: 20,
            }),
            ..Source::default()
        },
        sink: Sink::default(),
        // An unreachable Storage Queue is waited out, however long (the relay queue keeps 14 days), with
        // pauses of at most 5 minutes; only a message no Storage Queue can hold is given up on.
        retry: Retry {
            max_attempts: u32::MAX,
            initial_backoff_seconds: 1,
            max_backoff_seconds: 300,
        },
        dead_letter: None,
        relay: Some(RelayTarget {
            queue_url: target_url.to_owned(),
            account: azure
                .map(|a| a.location.storage_account.clone())
                .unwrap_or_default(),
            message_ttl_seconds: azure.map_or(604_800, |a| a.message_ttl_seconds),
            filter: subscription.spec.filter.clone(),
        }),
        delivery: None,
        metrics_listen: std::net::SocketAddr::from(([0, 0, 0, 0], METRICS_PORT)),
        drain_seconds: 20,
        unreachable_after_seconds: crate::worker::config::DEFAULT_UNREACHABLE_AFTER_SECONDS,
    }
}

/// Whom the relay's objects are for.
pub fn relay_owner(subscription: &Subscription) -> WorkerOwner {
    let name = subscription.name_any();
    WorkerOwner {
        name: relay_name(subscription),
        namespace: subscription.namespace(),
        labels: BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "tributary-relay".to_owned()),
            ("app.kubernetes.io/instance".to_owned(), name.clone()),
            ("app.kubernetes.io/managed-by".to_owned(), "tributary".to_owned()),
            (SUBSCRIPTION_LABEL.to_owned(), name.clone()),
        ]),
        selector: BTreeMap::from([(SUBSCRIPTION_LABEL.to_owned(), name)]),
        owner: subscription.controller_owner_ref(&()),
        sidecar: None,
        http_port: None,
        resources: None,
    }
}

/// The relay queue's URL and ARN: found or created, ours, with its policy and retention.
async fn ensure_relay_queue<C: Cloud>(
    subscription: &Subscription,
    ctx: &Context<C>,
    topic_arn: &str,
) -> Result<(String, String), Error> {
    let object = describe(subscription);
    let err = |source| Error::cloud(&object, source);
    let name = relay_queue_name(subscription);
    let owner = ctx.owner(KIND, subscription);
    let tags = desired_tags(&owner, &Tags::new());
    let url = match ctx.aws.find_queue(&name).await.map_err(err)? {
        Some(url) => {
            let observed = ctx.aws.queue_tags(&url).await.map_err(err)?;
            let found = ownership(&observed, &owner, false);
            if let Some(refused) = refusal(&object, &format!("the relay queue {name}"), &found) {
                return Err(refused);
            }
            // Marked before cluster identities: add the cluster tag.
            let missing = missing_tags(&tags, &observed);
            ctx.aws.tag_queue(&url, &missing).await.map_err(err)?;
            url
        }
        None => {
            let creation = Attributes::from([(
                names::MESSAGE_RETENTION_PERIOD.to_owned(),
                RETENTION_SECONDS.to_owned(),
            )]);
            let url = ctx.aws.create_queue(&name, &creation, &tags).await.map_err(err)?;
            let note = format!("created the relay queue {url}");
            events::normal(&ctx.recorder, subscription, reasons::CREATED, note).await;
            url
        }
    };
    let observed = ctx.aws.queue_attributes(&url).await.map_err(err)?;
    let arn = observed
        .get(names::QUEUE_ARN)
        .cloned()
        .ok_or_else(|| Error::DependencyNotReady {
            object: object.clone(),
            message: format!("the relay queue {url} has no QueueArn yet"),
        })?;
    let mut desired = Attributes::from([(
        names::MESSAGE_RETENTION_PERIOD.to_owned(),
        RETENTION_SECONDS.to_owned(),
    )]);
    if let Some(policy) = attributes::queue_policy(&arn, &[topic_arn]) {
        desired.insert(names::POLICY.to_owned(), policy);
    }
    let changes = drift::diff(&desired, &observed);
    if !changes.to_set.is_empty() {
        // Every call carries the policy: moto drops it from a call that leaves it out.
        ctx.aws.set_queue_attributes(&url, &desired).await.map_err(err)?;
        // Ready means SNS may deliver: read the policy back (SQS applies changes within about a minute).
        let back = ctx.aws.queue_attributes(&url).await.map_err(err)?;
        let policy = back.get(names::POLICY).map_or("", String::as_str);
        if !attributes::allowed_topics(policy).iter().any(|t| t == topic_arn) {
            return Err(Error::DependencyNotReady {
                object,
                message: format!("the policy of the relay queue {url} does not let {topic_arn} send yet"),
            });
        }
    }
    Ok((url, arn))
}

/// The apply step for a Queue on azure; `policy` is the validated filter.
pub(crate) async fn apply<C: Cloud>(
    subscription: &Subscription,
    ctx: &Context<C>,
    policy: Option<&Policy>,
    topic_arn: &str,
    queue: &Queue,
) -> Result<Applied<SubscriptionStatus>, Error> {
    let object = describe(subscription);
    let queue_name = queue.name_any();
    let not_ready = |message: String| Error::DependencyNotReady {
        object: object.clone(),
        message,
    };
    let (Some(azure), Some(target_url)) = (
        queue.spec.azure.as_ref(),
        queue.status.as_ref().and_then(|s| s.observed.url.clone()),
    ) else {
        return Err(not_ready(format!("Queue {queue_name} has no Storage Queue yet")));
    };
    let key = azure.location.account_key_secret_ref.clone().ok_or_else(|| Error::InvalidSpec {
        object: object.clone(),
        message: format!(
            "spec.queueRef: Queue {queue_name} has no spec.azure.accountKeySecretRef: the relay writes the \
             Storage Queue with the account key (its Azure identity is not used for it yet)"
        ),
    })?;

    let (relay_url, relay_arn) = ensure_relay_queue(subscription, ctx, topic_arn).await?;
    // Unfiltered (the relay applies the filter) and in SNS's envelope: raw delivery to SQS discards a
    // message with more than 10 attributes, and the envelope carries every attribute with its type.
    let desired = attributes::subscription_attributes(false, None);
    let (arn, _) = ensure_subscription(subscription, ctx, topic_arn, &relay_arn, &desired).await?;

    let config = relay_config(subscription, &relay_url, queue, &target_url);
    let namespace = subscription.namespace().unwrap_or_default();
    let tenant = tenancy::load(&ctx.client, &ctx.stores.policies, &object, &namespace).await?;
    let settings = worker_settings(&tenant, &ctx.config.worker);
    let children = workers::children_of(&relay_owner(subscription), &config, &settings, 1)
        .with_secret_env(&[("AZURE_STORAGE_KEY".to_owned(), key.name, key.key)]);
    apply_child(ctx, &object, &namespace, &children.config_map).await?;
    apply_child(ctx, &object, &namespace, &children.service_account).await?;
    apply_child(ctx, &object, &namespace, &children.network_policy).await?;
    apply_child(ctx, &object, &namespace, &children.deployment).await?;
    Ok(Applied {
        status: SubscriptionStatus {
            arn: Some(arn.clone()),
            applied_filter_policy: policy.map(Policy::canonical_json),
            relay_queue_url: Some(relay_url.clone()),
            relay: relay_counts(ctx, subscription).await,
            ..SubscriptionStatus::default()
        },
        message: format!(
            "SNS subscription {arn} of the relay queue {relay_url}; Deployment {} sends what the filter admits \
             to {target_url}",
            relay_name(subscription)
        ),
        requeue: None,
        not_ready: None,
    })
}

/// Cleanup of a relay: its SNS subscription if status never recorded it (the caller unsubscribed the one
/// it did), then its queue, if it is ours. What the relay had not sent on yet goes with the queue: an
/// Event says how much.
pub(crate) async fn cleanup<C: Cloud>(
    subscription: &Arc<Subscription>,
    ctx: &Context<C>,
    topic_arn: Option<&str>,
) -> Result<(), Error> {
    if subscription.spec.deletion_policy == DeletionPolicy::Retain {
        return Ok(());
    }
    let object = describe(&**subscription);
    let err = |source| Error::cloud(&object, source);
    let name = relay_queue_name(subscription);
    let Some(url) = ctx.aws.find_queue(&name).await.map_err(err)? else {
        return Ok(());
    };
    let tags = match ctx.aws.queue_tags(&url).await {
        Ok(tags) => tags,
        Err(error) if error.is_not_found() => return Ok(()),
        Err(error) => return Err(err(error)),
    };
    let resource = format!("the relay queue {url}");
    if let Some(note) = lost(&resource, &tags, &ctx.owner(KIND, &**subscription)) {
        events::warning(&ctx.recorder, &**subscription, reasons::OWNERSHIP_LOST, note).await;
        return Ok(());
    }
    let recorded = subscription.status.as_ref().and_then(|s| s.arn.as_ref());
    if recorded.is_none()
        && let Some(topic_arn) = topic_arn
        && let Some(arn) = ctx
            .aws
            .queue_attributes(&url)
            .await
            .map_err(err)?
            .get(names::QUEUE_ARN)
        && let Some(subscribed) = ctx.aws.find_subscription(topic_arn, arn).await.map_err(err)?
    {
        ctx.aws.unsubscribe(&subscribed).await.map_err(err)?;
    }
    let stats = ctx.aws.queue_stats(&url).await.map_err(err)?;
    let left = stats.visible + stats.in_flight + stats.delayed;
    if left > 0 {
        let note =
            format!("deleting the relay queue {url} with {left} messages not sent on to the Storage Queue");
        events::warning(&ctx.recorder, &**subscription, reasons::DELETED, note).await;
    }
    ctx.aws.delete_queue(&url).await.map_err(err)?;
    let note = format!("deleted the relay queue {url}");
    events::normal(&ctx.recorder, &**subscription, reasons::DELETED, note).await;
    Ok(())
}

#[cfg(test)]
mod totals_tests {
    use super::*;

    #[test]
    fn admitted_is_processed_less_dropped_summed_over_the_pods() {
        let pod = |processed, filtered| scrape::Counters {
            processed,
            filtered,
            ..scrape::Counters::default()
        };
        let pods = [pod(10, 3), pod(5, 5)];
        assert_eq!(relay_totals(pods.iter()), (7, 8));
        assert_eq!(relay_totals([].iter()), (0, 0));
        assert_eq!(relay_totals([pod(u64::MAX, 0)].iter()), (i64::MAX, 0));
    }
}
