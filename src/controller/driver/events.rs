//! Kubernetes Events the controllers record on their objects: what was done to the cloud resource
//! (`Created`, `Adopted`, `Updated`, `DriftCorrected`, `Deleted`, `Retained`) and failures
//! (`ReconcileFailed`, Warning). Publishing is best effort: a lost Event must not fail a reconcile.

use kube::runtime::events::{Event, EventType, Recorder};

use super::status::{Kind, describe};

/// Event reasons.
pub mod reasons {
    /// The cloud resource was created.
    pub const CREATED: &str = "Created";
    /// An existing cloud resource was taken over (`spec.adopt`).
    pub const ADOPTED: &str = "Adopted";
    /// The cloud resource was changed to follow a spec change.
    pub const UPDATED: &str = "Updated";
    /// Attributes changed outside Kubernetes were restored.
    pub const DRIFT_CORRECTED: &str = "DriftCorrected";
    /// The cloud resource was deleted with the object.
    pub const DELETED: &str = "Deleted";
    /// The cloud resource was kept (`deletionPolicy: Retain`).
    pub const RETAINED: &str = "Retained";
    /// A cloud resource to delete no longer carries this object's ownership tags: it was kept.
    pub const OWNERSHIP_LOST: &str = "OwnershipLost";
    /// A reconcile failed.
    pub const RECONCILE_FAILED: &str = "ReconcileFailed";
    /// A dead-letter redrive started, finished or failed.
    pub const REDRIVE: &str = "Redrive";
}

/// The action of most Events.
const RECONCILE: &str = "Reconcile";

/// Records a Normal event on `object`.
pub async fn normal<K: Kind>(recorder: &Recorder, object: &K, reason: &str, note: String) {
    publish(recorder, object, EventType::Normal, reason, RECONCILE, note).await;
}

/// Records a Warning event on `object`.
pub async fn warning<K: Kind>(recorder: &Recorder, object: &K, reason: &str, note: String) {
    publish(recorder, object, EventType::Warning, reason, RECONCILE, note).await;
}

/// Records an event with its own `action`. kube's recorder folds events of the same object, type,
/// reason and action into one series that keeps the first note, so two steps of one operation (a
/// redrive started, then finished) need different actions to both be seen.
pub async fn with_action<K: Kind>(
    recorder: &Recorder,
    object: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    publish(recorder, object, type_, reason, action, note).await;
}

async fn publish<K: Kind>(
    recorder: &Recorder,
    object: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(object = %describe(object), %error, reason, "unable to record an event");
    }
}

/// The event for attributes set in place: `DriftCorrected` when the last reconcile of this generation
/// had the cloud in sync (someone changed it behind our back), `Updated` otherwise (a spec change).
pub fn change_reason(was_synced: bool) -> &'static str {
    if was_synced {
        reasons::DRIFT_CORRECTED
    } else {
        reasons::UPDATED
    }
}
