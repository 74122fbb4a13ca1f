//! The Consumer reconciler (the CEL rules are its validation, repeated in [`validate`] for objects stored
//! before a rule existed): resolve the references from the watch caches (no network) →
//! build the worker configuration and the objects that run it ([`render`], pure) → apply: ensure the
//! Order table, read the backlog, decide the replicas ([`scaling`], pure), server-side apply the
//! ConfigMap, ServiceAccount, Deployment and Service → status (ready workers, backlog, last scaling
//! decision, and the message counts read from the worker pods' metrics at a bounded rate,
//! [`throughput`]). What scaling and the counts need from one reconcile to the next is kept in memory
//! ([`memory`]).
//!
//! A Consumer owns only Kubernetes objects, which carry owner references: deleting it lets the garbage
//! collector remove them, so it has no finalizer. The Order table is the pipeline's data and stays.

pub mod device;
pub mod http;
pub mod memory;
pub mod readiness;
pub mod render;
pub mod resolved;
pub mod scaling;
pub mod storage_queue;
pub mod throughput;
pub mod validate;

use std::sync::Arc;

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Secret};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{controller::Action, events::EventType, reflector::ObjectRef},
};

use self::resolved::{Resolved, not_ready};
use crate::admission::Spec;
use crate::api::{
    Consumer, DeadLetter, Queue, Topic,
    common::Provider,
    consumer::{ConsumerStatus, Processor},
};
use crate::cloud::{Queues as _, Tables as _};
use crate::controller::driver::gauges;
use crate::controller::{
    Cloud, Context,
    driver::{
        children::apply_child,
        conditions::Desired,
        error::Error,
        events,
        reconcile::{Applied, failed},
        references,
        status::{self, describe},
        tenancy, watch,
    },
    resources::workers::{kafka_ca_file, worker_settings},
};

/// The Event reason of a replica change.
pub const SCALED: &str = "Scaled";

/// The resolve step, pure: the references from the watch caches, or which one is not ready.
pub fn resolve(consumer: &Consumer, stores: &watch::Stores) -> Result<Resolved, Error> {
    validate::validate(consumer)?;
    references::validate(consumer, Spec::Consumer(&consumer.spec), stores)?;
    let namespace = consumer.namespace().unwrap_or_default();
    let mut resolved = Resolved::default();
    if let Some(queue_ref) = &consumer.spec.source.queue_ref {
        let queue = watch::get::<Queue>(&stores.queues, &namespace, &queue_ref.name);
        let message = || {
            format!(
                "spec.source.queueRef: Queue {} does not exist or has no SQS queue yet",
                queue_ref.name
            )
        };
        let queue = queue.ok_or_else(|| not_ready(consumer, message()))?;
        match queue.spec.provider {
            Provider::Aws => {}
            Provider::Azure => {
                storage_queue::resolve(consumer, &queue, stores, &mut resolved)?;
                return finish(consumer, stores, resolved);
            }
        }
        let url = queue
            .status
            .as_ref()
            .and_then(|s| s.observed.url.clone())
            .ok_or_else(|| not_ready(consumer, message()))?;
        let visibility = queue
            .spec
            .aws
            .as_ref()
            .map_or(30, |aws| aws.visibility_timeout_seconds);
        resolved.queue = Some((url, visibility));
    }
    finish(consumer, stores, resolved)
}

/// The references every source has: the dead letter (unless the source resolved its own), the sink
/// Topic, the Order table, and a DeviceStream source's.
fn finish(consumer: &Consumer, stores: &watch::Stores, mut resolved: Resolved) -> Result<Resolved, Error> {
    let namespace = consumer.namespace().unwrap_or_default();
    if let Some(dead_letter_ref) = consumer
        .spec
        .dead_letter_ref
        .as_ref()
        .filter(|_| resolved.dead_letter_url.is_none())
    {
        let url = watch::get::<DeadLetter>(&stores.dead_letters, &namespace, &dead_letter_ref.name)
            .and_then(|d| d.status.as_ref()?.observed.url.clone())
            .ok_or_else(|| {
                let name = &dead_letter_ref.name;
                not_ready(
                    consumer,
                    format!("spec.deadLetterRef: DeadLetter {name} does not exist or has no queue yet"),
                )
            })?;
        resolved.dead_letter_url = Some(url);
    }
    if let Some(topic_ref) = consumer
        .spec
        .sink
        .as_ref()
        .and_then(|sink| sink.topic_ref.as_ref())
    {
        let arn = watch::get::<Topic>(&stores.topics, &namespace, &topic_ref.name)
            .and_then(|t| t.status.as_ref()?.arn.clone())
            .ok_or_else(|| {
                let name = &topic_ref.name;
                not_ready(
                    consumer,
                    format!("spec.sink.topicRef: Topic {name} does not exist or has no SNS topic yet"),
                )
            })?;
        resolved.topic_arn = Some(arn);
    }
    if consumer.spec.processor.is_some() && consumer.spec.processor != Some(Processor::Device) {
        resolved.table = Some(render::table_name(consumer));
    }
    device::resolve(consumer, stores, &mut resolved)?;
    Ok(resolved)
}

/// Reconciles one Consumer.
pub async fn reconcile<C: Cloud>(consumer: Arc<Consumer>, ctx: Arc<Context<C>>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started("Consumer");
    if consumer.meta().deletion_timestamp.is_some() {
        // The garbage collector removes the children (owner references).
        ctx.consumers.forget(&describe(&*consumer));
        return Ok(Action::await_change());
    }
    match apply(&consumer, &ctx).await {
        Ok(applied) => {
            let Applied {
                status,
                message,
                requeue,
                not_ready,
            } = applied;
            let mut desired = status::applied(message, not_ready.as_ref());
            desired.extend(authentication(&consumer, &ctx).await?);
            let status = status::with_conditions(&*consumer, status, &desired);
            status::write(&ctx.client, &ctx.written, &*consumer, &status).await?;
            gauges::observe(&ctx.metrics, &*consumer, &status);
            let key = describe(&*consumer);
            ctx.backoff.succeeded(&key);
            ctx.waits.succeeded(&key);
            Ok(Action::requeue(requeue.unwrap_or(ctx.config.resync)))
        }
        Err(error) => failed(&*consumer, &ctx, error).await,
    }
}

/// The `Authenticated` condition of an HTTP Consumer, and a Warning Event when it newly allows anonymous
/// access. Only the API key Secret's metadata is read: the controller never holds the hashes.
async fn authentication<C: Cloud>(consumer: &Consumer, ctx: &Context<C>) -> Result<Option<Desired>, Error> {
    let exists = match http::api_key_secret(consumer) {
        Some(name) => {
            let secrets: Api<Secret> =
                Api::namespaced(ctx.client.clone(), &consumer.namespace().unwrap_or_default());
            let found = secrets.get_metadata_opt(&name).await.map_err(|source| {
                Error::kube(&describe(consumer), format!("reading Secret {name}"), source)
            })?;
            Some(found.is_some())
        }
        None => None,
    };
    let condition = http::authenticated(consumer, exists);
    if let Some(desired) = &condition
        && desired.reason == http::ANONYMOUS_ACCESS
    {
        let already = status::current_conditions(consumer).iter().any(|c| {
            c.type_ == http::AUTHENTICATED
                && c.reason == http::ANONYMOUS_ACCESS
                && c.observed_generation == consumer.meta().generation
        });
        if !already {
            events::warning(
                &ctx.recorder,
                consumer,
                http::ANONYMOUS_ACCESS,
                desired.message.clone(),
            )
            .await;
        }
    }
    Ok(condition)
}

fn now() -> (String, i64) {
    let now = time::OffsetDateTime::now_utc();
    let text = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    (text, now.unix_timestamp())
}

async fn apply<C: Cloud>(consumer: &Consumer, ctx: &Context<C>) -> Result<Applied<ConsumerStatus>, Error> {
    let object = describe(consumer);
    let err = |source| Error::cloud(&object, source);
    let mut resolved = resolve(consumer, &ctx.stores)?;
    let namespace = consumer.namespace().unwrap_or_default();
    let policy = tenancy::load(&ctx.client, &ctx.stores.policies, &object, &namespace).await?;
    policy.check_consumer(&object, consumer, resolved.table.as_deref())?;
    resolved.kafka_ca_file = kafka_ca_file(
        &ctx.config.worker,
        ctx.config
            .event_hubs
            .as_ref()
            .and_then(|e| e.kafka_ca_file.clone()),
    );
    if let Some(table) = &resolved.table {
        ctx.aws.ensure_table(table).await.map_err(err)?;
    }
    let signals = observe(ctx, consumer, &resolved).await?;
    let backlog = signals.backlog;
    let bounds = device::bounds(&consumer.spec.scaling, resolved.stream.as_ref());
    let previous = consumer.status.as_ref().and_then(|s| s.last_scale.clone());
    let scale = decide_scale(ctx, &object, &bounds, signals, previous.as_ref());

    let config = render::worker_config(consumer, &resolved);
    let settings = worker_settings(&policy, &ctx.config.worker);
    let children =
        render::children(consumer, &config, &settings, scale.replicas).with_secret_env(&resolved.secret_env);
    apply_child(ctx, &object, &namespace, &children.config_map).await?;
    apply_child(ctx, &object, &namespace, &children.service_account).await?;
    if let Some(service) = &children.service {
        apply_child(ctx, &object, &namespace, service).await?;
    }
    apply_child(ctx, &object, &namespace, &children.network_policy).await?;
    let deployment: Deployment = apply_child(ctx, &object, &namespace, &children.deployment).await?;
    if let Some(decision) = &scale.decision {
        let note = format!(
            "scaled from {} to {} replicas: {}",
            decision.from, decision.to, decision.reason
        );
        let action = format!("ScaleTo{}", decision.to);
        events::with_action(&ctx.recorder, consumer, EventType::Normal, SCALED, &action, note).await;
    }
    let workers = readiness::workers(
        &deployment,
        scale.replicas,
        bounds.min_replicas,
        &render::worker_name(consumer),
    );
    let status = ConsumerStatus {
        replicas: Some(workers.ready),
        backlog,
        last_scale: scale.decision.or(previous),
        throughput: counts(ctx, consumer, workers.ready).await,
        ..ConsumerStatus::default()
    };
    let requeue = next_look(ctx, backlog.is_some(), workers.not_ready.is_some());
    Ok(Applied {
        status,
        message: workers.message,
        requeue: Some(requeue),
        not_ready: workers.not_ready,
    })
}

/// The scale to run, from what the source shows now and the asks remembered of `object` (this one
/// added), after the last decision `previous`.
fn decide_scale<C: Cloud>(
    ctx: &Context<C>,
    object: &str,
    bounds: &crate::api::consumer::Scaling,
    signals: scaling::Signals,
    previous: Option<&crate::api::consumer::ScaleDecision>,
) -> scaling::Scale {
    let (now_text, now_seconds) = now();
    let current = previous.map_or(0, |d| d.to);
    let mut want = scaling::wanted(bounds, signals, current);
    if previous.is_none() {
        // Never scaled (a new Consumer): nothing to filter yet, it gets what it asks for at once.
        want.floor = want.replicas;
    }
    let ask = scaling::Ask {
        at: now_seconds,
        replicas: want.replicas,
    };
    let mut remembered = ctx.consumers.get(object);
    remembered.asks = scaling::remember(&remembered.asks, ask, bounds);
    let scale = scaling::decide(bounds, &want, current, &remembered.asks, (now_seconds, &now_text));
    ctx.consumers.put(object, remembered, now_seconds);
    scale
}

/// What the source shows now: the backlog (queue depth or consumer lag; none for an HTTP source) and,
/// where the cloud reports it and the Consumer scales on it, the age of the oldest message.
async fn observe<C: Cloud>(
    ctx: &Context<C>,
    consumer: &Consumer,
    resolved: &Resolved,
) -> Result<scaling::Signals, Error> {
    let object = describe(consumer);
    let with_age = consumer
        .spec
        .scaling
        .signals
        .max_oldest_message_age_seconds
        .is_some();
    let (backlog, oldest_age) = if let Some((url, _)) = &resolved.queue {
        let stats = ctx
            .aws
            .queue_stats(url)
            .await
            .map_err(|e| Error::cloud(&object, e))?;
        (
            Some(stats.visible + stats.in_flight),
            stats.oldest_message_age_seconds,
        )
    } else if resolved.storage_queue.is_some() {
        let (depth, age) = storage_queue::backlog(ctx, consumer, with_age).await?;
        (Some(depth), age)
    } else if let Some(stream) = &resolved.stream {
        (Some(device::lag(ctx, consumer, stream).await?), None)
    } else {
        (None, None)
    };
    Ok(scaling::Signals { backlog, oldest_age })
}

/// The message counts of the Consumer's workers for status: read from their pods' metrics at most once
/// per throughput interval, kept as they are in between, and when a read fails or finds nothing new.
/// A read never fails the reconcile.
async fn counts<C: Cloud>(
    ctx: &Context<C>,
    consumer: &Consumer,
    ready: i32,
) -> Option<crate::api::consumer::Throughput> {
    let written = consumer.status.as_ref().and_then(|s| s.throughput.clone());
    let key = describe(consumer);
    let (now_text, now_seconds) = now();
    let mut remembered = ctx.consumers.get(&key);
    let interval = i64::try_from(ctx.config.throughput_interval.as_secs()).unwrap_or(i64::MAX);
    let due = remembered
        .read
        .as_ref()
        .is_none_or(|r| now_seconds - r.at >= interval);
    if ready == 0 || !due {
        return written;
    }
    let owner = crate::controller::resources::workers::WorkerOwner::of_consumer(consumer);
    let namespace = consumer.namespace().unwrap_or_default();
    let pods = ctx
        .scraper
        .read(&ctx.client, &namespace, &owner.selector, &owner.name)
        .await;
    let pods = match pods {
        Ok(pods) if !pods.is_empty() => pods,
        Ok(_) => return written,
        Err(error) => {
            tracing::debug!(consumer = %key, %error, "listing the worker pods failed");
            return written;
        }
    };
    let read = throughput::Read {
        at: now_seconds,
        pods,
    };
    let previous = remembered.read.replace(read.clone());
    ctx.consumers.put(&key, remembered, now_seconds);
    if previous.is_none() && written.is_some() {
        // A new leader: its first read starts a window; the status keeps the last one until it ends.
        return written;
    }
    let new = throughput::throughput(previous.as_ref(), &read, &now_text);
    Some(throughput::settle(written.as_ref(), new))
}

/// When to look at a Consumer again: at the scaling interval while it drains a queue, else at resync;
/// sooner while its workers are not ready (Deployments are not watched: that would cache every
/// Deployment the controller may read).
fn next_look<C: Cloud>(ctx: &Context<C>, has_backlog: bool, not_ready: bool) -> std::time::Duration {
    let regular = if has_backlog {
        ctx.config.scale_interval
    } else {
        ctx.config.resync
    };
    if not_ready {
        regular.min(ctx.config.dependency_retry)
    } else {
        regular
    }
}

/// The Consumers that reference `name` through `field`, for waking them when it changes.
pub fn consumers_referencing<T: Resource>(
    consumers: &kube::runtime::reflector::Store<Consumer>,
    target: &T,
    field: fn(&Consumer) -> Option<&str>,
) -> Vec<ObjectRef<Consumer>> {
    let namespace = target.namespace().unwrap_or_default();
    let name = target.name_any();
    watch::in_namespace(consumers, &namespace)
        .into_iter()
        .filter(|c| field(c) == Some(name.as_str()))
        .map(|c| ObjectRef::from_obj(&*c))
        .collect()
}

/// The source Queue of a Consumer.
pub fn source_queue(consumer: &Consumer) -> Option<&str> {
    consumer.spec.source.queue_ref.as_ref().map(|r| r.name.as_str())
}

/// The DeadLetter of a Consumer.
pub fn dead_letter(consumer: &Consumer) -> Option<&str> {
    consumer.spec.dead_letter_ref.as_ref().map(|r| r.name.as_str())
}

/// The source DeviceStream of a Consumer.
pub fn source_stream(consumer: &Consumer) -> Option<&str> {
    consumer
        .spec
        .source
        .device_stream_ref
        .as_ref()
        .map(|r| r.name.as_str())
}

/// The sink Topic of a Consumer.
pub fn sink_topic(consumer: &Consumer) -> Option<&str> {
    consumer
        .spec
        .sink
        .as_ref()?
        .topic_ref
        .as_ref()
        .map(|r| r.name.as_str())
}

#[cfg(test)]
mod apply_tests;
