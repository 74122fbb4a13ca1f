//! The per-object gauges of the controller's metrics, read from the status a reconcile has just written:
//! Ready for every kind, depth and oldest message age for the kinds that own a queue, the backlog of a
//! Consumer. Nothing here calls the cloud: the values are what the reconcile already observed.

use kube::ResourceExt;

use super::{conditions::types, status::Kind};
use crate::api::{Consumer, DeadLetter, DeviceStream, Queue, Subscription, Topic, common::QueueObservation};
use crate::operate::{Metrics, ObjectGauges};

/// What a kind's status holds for the per-object gauges beyond Ready (nothing, unless it says so).
pub trait Gauges: Kind {
    /// The queue's observation, for a kind that owns a queue.
    fn queue(_status: &Self::Status) -> Option<&QueueObservation> {
        None
    }

    /// The messages waiting for it, for a Consumer.
    fn backlog(_status: &Self::Status) -> Option<i64> {
        None
    }
}

impl Gauges for Topic {}
impl Gauges for Subscription {}
impl Gauges for DeviceStream {}

impl Gauges for Queue {
    fn queue(status: &Self::Status) -> Option<&QueueObservation> {
        Some(&status.observed)
    }
}

impl Gauges for DeadLetter {
    fn queue(status: &Self::Status) -> Option<&QueueObservation> {
        Some(&status.observed)
    }
}

impl Gauges for Consumer {
    fn backlog(status: &Self::Status) -> Option<i64> {
        status.backlog
    }
}

/// The gauges `status` gives.
pub fn of<K: Gauges>(status: &K::Status) -> ObjectGauges {
    let ready = K::common(status)
        .conditions
        .iter()
        .any(|c| c.type_ == types::READY && c.status == "True");
    let queue = K::queue(status);
    ObjectGauges {
        ready,
        depth: queue.and_then(|q| q.depth),
        oldest_message_age_seconds: queue.and_then(|q| q.oldest_message_age_seconds),
        backlog: K::backlog(status),
    }
}

/// Sets `object`'s gauges to what `status` (just written) says. Called only after a successful status
/// write, so a reconcile that outlives its object's deletion cannot bring its series back.
pub fn observe<K: Gauges>(metrics: &Metrics, object: &K, status: &K::Status) {
    let namespace = object.namespace().unwrap_or_default();
    metrics.observe_object(K::KIND, &namespace, &object.name_any(), of::<K>(status));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{consumer::ConsumerStatus, dead_letter::DeadLetterStatus};
    use crate::controller::driver::error::Error;
    use crate::controller::driver::status::{failed, ready, with_conditions};

    #[test]
    fn ready_depth_and_age_come_from_the_written_status() {
        let dead_letter = DeadLetter::new("dlq", Default::default());
        let mut status = DeadLetterStatus::default();
        status.observed.depth = Some(3);
        status.observed.oldest_message_age_seconds = Some(90);
        let status = with_conditions(&dead_letter, status, &ready("ok"));
        let gauges = of::<DeadLetter>(&status);
        assert_eq!(
            gauges,
            ObjectGauges {
                ready: true,
                depth: Some(3),
                oldest_message_age_seconds: Some(90),
                backlog: None,
            }
        );
        // A failed reconcile keeps the last observation and is not Ready.
        let error = Error::InvalidSpec {
            object: "DeadLetter ns/dlq".into(),
            message: "bad".into(),
        };
        let failed_status = with_conditions(&dead_letter, status, &failed(&error));
        let gauges = of::<DeadLetter>(&failed_status);
        assert!(!gauges.ready);
        assert_eq!(gauges.depth, Some(3));
    }

    #[test]
    fn a_consumer_reports_its_backlog_and_a_topic_only_ready() {
        let consumer = Consumer::new("c", Default::default());
        let status = ConsumerStatus {
            backlog: Some(12),
            ..ConsumerStatus::default()
        };
        let status = with_conditions(&consumer, status, &ready("ok"));
        let gauges = of::<Consumer>(&status);
        assert_eq!(
            (gauges.ready, gauges.backlog, gauges.depth),
            (true, Some(12), None)
        );
        let topic = Topic::new("t", Default::default());
        let status = with_conditions(&topic, Default::default(), &ready("ok"));
        assert_eq!(
            of::<Topic>(&status),
            ObjectGauges {
                ready: true,
                ..ObjectGauges::default()
            }
        );
        // No Ready condition yet reads as not Ready.
        assert!(!of::<Topic>(&Default::default()).ready);
    }
}
