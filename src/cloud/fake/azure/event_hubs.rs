//! Event Hubs in the Azure fake: namespaces with a provisioning state, hubs with their settings, mark,
//! consumer groups and Listen rule.

use std::collections::BTreeSet;

use serde_json::json;

use super::{FakeAzure, error, not_found};
use crate::cloud::{
    ErrorKind, Result, Tags,
    azure::{
        arm::Provisioned,
        event_hubs::{Hub, HubAddress, HubSettings},
    },
    traits::EventHubsAdmin,
};

const ARM: &str = "arm";

#[derive(Clone, Debug)]
pub(super) struct Namespace {
    location: String,
    tags: Tags,
    /// The state reads report while `pending_reads` lasts, then `Succeeded`.
    state: String,
    pending_reads: u32,
}

/// A hub as the fake keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeHub {
    /// Partitions.
    pub partitions: i32,
    /// Retention in hours.
    pub retention_hours: Option<i64>,
    /// `userMetadata`, the ownership mark.
    pub mark: Option<String>,
    /// `status` (`Active`, …).
    pub status: Option<String>,
    /// Consumer groups (`$Default` from the start).
    pub consumer_groups: BTreeSet<String>,
    /// Whether the Listen rule exists.
    pub listen_rule: bool,
}

impl FakeHub {
    /// An active hub with these settings and only `$Default`, as one made outside Tributary.
    pub fn new(partitions: i32, retention_hours: i64, mark: Option<&str>) -> Self {
        Self {
            partitions,
            retention_hours: Some(retention_hours),
            mark: mark.map(str::to_owned),
            status: Some("Active".to_owned()),
            consumer_groups: BTreeSet::from(["$Default".to_owned()]),
            listen_rule: false,
        }
    }

    fn view(&self) -> Hub {
        Hub {
            partitions: self.partitions,
            retention_hours: self.retention_hours,
            mark: self.mark.clone(),
            status: self.status.clone(),
        }
    }
}

/// `namespace/hub`, as calls are recorded.
fn hub_of(at: &HubAddress) -> String {
    format!("{}/{}", at.namespace, at.hub)
}

/// The Listen connection string the fake gives a hub.
pub fn connection_string(at: &HubAddress) -> String {
    format!(
        "Endpoint=sb://{}.servicebus.fake/;SharedAccessKeyName={};SharedAccessKey=fake-key;EntityPath={}",
        at.namespace,
        crate::cloud::azure::event_hubs::LISTEN_RULE,
        at.hub
    )
}

impl FakeAzure {
    /// An Event Hubs namespace at `at` (its hub is ignored) in `state` (`Succeeded`, or e.g. `Activating`
    /// until [`Self::activate_after`] or [`Self::set_namespace_state`] changes it).
    pub fn add_namespace(&self, at: &HubAddress, state: &str) {
        let namespace = Namespace {
            location: "fakeregion".to_owned(),
            tags: Tags::new(),
            state: state.to_owned(),
            pending_reads: u32::MAX,
        };
        self.lock().namespaces.insert(at.namespace_id(), namespace);
    }

    /// The namespace reports its current state for the next `reads` reads, then `Succeeded`.
    pub fn activate_after(&self, at: &HubAddress, reads: u32) {
        if let Some(namespace) = self.lock().namespaces.get_mut(&at.namespace_id()) {
            namespace.pending_reads = reads;
        }
    }

    /// Sets the namespace's provisioning state (kept until changed).
    pub fn set_namespace_state(&self, at: &HubAddress, state: &str) {
        if let Some(namespace) = self.lock().namespaces.get_mut(&at.namespace_id()) {
            namespace.state = state.to_owned();
            namespace.pending_reads = u32::MAX;
        }
    }

    /// The location and tags the namespace was created with, if it exists.
    pub fn namespace(&self, at: &HubAddress) -> Option<(String, Tags)> {
        let state = self.lock();
        let namespace = state.namespaces.get(&at.namespace_id())?;
        Some((namespace.location.clone(), namespace.tags.clone()))
    }

    /// The next `puts` creates of namespaces and puts of hubs answer `Pending` (a namespace then reports
    /// `Activating` for one read); what they write is written.
    pub fn slow_puts(&self, puts: u32) {
        self.lock().slow_puts = puts;
    }

    /// The next `deletes` deletes of hubs answer that the deletion is still running.
    pub fn slow_deletes(&self, deletes: u32) {
        self.lock().slow_deletes = deletes;
    }

    /// Puts `hub` at `at` (made outside Tributary), in a namespace made `Succeeded` if there is none.
    pub fn add_hub(&self, at: &HubAddress, hub: FakeHub) {
        if self.namespace(at).is_none() {
            self.add_namespace(at, "Succeeded");
        }
        self.lock().hubs.insert(at.hub_id(), hub);
    }

    /// The hub at `at`, if there is one (not recorded as a call).
    pub fn hub_at(&self, at: &HubAddress) -> Option<FakeHub> {
        self.lock().hubs.get(&at.hub_id()).cloned()
    }
}

/// Whether this put answers `Pending`, counting it.
fn slow(slow_puts: &mut u32) -> bool {
    let pending = *slow_puts > 0;
    *slow_puts = slow_puts.saturating_sub(1);
    pending
}

impl EventHubsAdmin for FakeAzure {
    async fn namespace_state(&self, at: &HubAddress) -> Result<Option<String>> {
        let mut state = self.call(ARM, "GetNamespace", &at.namespace)?;
        Ok(state.namespaces.get_mut(&at.namespace_id()).map(|namespace| {
            if namespace.pending_reads == 0 {
                namespace.state = "Succeeded".to_owned();
            }
            namespace.pending_reads = namespace.pending_reads.saturating_sub(1);
            namespace.state.clone()
        }))
    }

    async fn create_namespace(&self, at: &HubAddress, location: &str, tags: &Tags) -> Result<Provisioned> {
        let mut state = self.call(ARM, "CreateNamespace", &at.namespace)?;
        let pending = slow(&mut state.slow_puts);
        let namespace = Namespace {
            location: location.to_owned(),
            tags: tags.clone(),
            state: if pending { "Activating" } else { "Succeeded" }.to_owned(),
            pending_reads: 1,
        };
        state.namespaces.insert(at.namespace_id(), namespace);
        Ok(if pending {
            Provisioned::Pending {
                state: "Activating".to_owned(),
            }
        } else {
            Provisioned::Ready(json!({"name": at.namespace, "location": location}))
        })
    }

    async fn hub(&self, at: &HubAddress) -> Result<Option<Hub>> {
        let state = self.call(ARM, "GetHub", &hub_of(at))?;
        Ok(state.hubs.get(&at.hub_id()).map(FakeHub::view))
    }

    async fn put_hub(&self, at: &HubAddress, settings: &HubSettings) -> Result<Provisioned> {
        let resource = hub_of(at);
        let mut state = self.call(ARM, "PutHub", &resource)?;
        if !state.namespaces.contains_key(&at.namespace_id()) {
            return Err(not_found(ARM, "PutHub", &resource));
        }
        let mut hub = state
            .hubs
            .get(&at.hub_id())
            .cloned()
            .unwrap_or_else(|| FakeHub::new(settings.partitions, 0, None));
        if settings.partitions < hub.partitions {
            let code = "PartitionCountCannotDecrease";
            return Err(error(ErrorKind::Permanent, ARM, "PutHub", &resource, code));
        }
        hub.partitions = settings.partitions;
        hub.retention_hours = Some(i64::from(settings.retention_hours));
        hub.mark = Some(settings.mark.clone()).filter(|m| !m.is_empty());
        state.hubs.insert(at.hub_id(), hub);
        Ok(if slow(&mut state.slow_puts) {
            Provisioned::Pending {
                state: "Updating".to_owned(),
            }
        } else {
            Provisioned::Ready(json!({"name": at.hub}))
        })
    }

    async fn consumer_groups(&self, at: &HubAddress) -> Result<Vec<String>> {
        let resource = hub_of(at);
        let state = self.call(ARM, "ListConsumerGroups", &resource)?;
        let hub = state.hubs.get(&at.hub_id());
        let hub = hub.ok_or_else(|| not_found(ARM, "ListConsumerGroups", &resource))?;
        Ok(hub.consumer_groups.iter().cloned().collect())
    }

    async fn create_consumer_group(&self, at: &HubAddress, name: &str) -> Result<()> {
        let resource = format!("{}/{name}", hub_of(at));
        let mut state = self.call(ARM, "CreateConsumerGroup", &resource)?;
        let hub = state.hubs.get_mut(&at.hub_id());
        let hub = hub.ok_or_else(|| not_found(ARM, "CreateConsumerGroup", &resource))?;
        hub.consumer_groups.insert(name.to_owned());
        Ok(())
    }

    async fn listen_connection_string(&self, at: &HubAddress) -> Result<String> {
        let resource = hub_of(at);
        let mut state = self.call(ARM, "ListKeys", &resource)?;
        let hub = state.hubs.get_mut(&at.hub_id());
        let hub = hub.ok_or_else(|| not_found(ARM, "ListKeys", &resource))?;
        hub.listen_rule = true;
        Ok(connection_string(at))
    }

    async fn delete_hub(&self, at: &HubAddress) -> Result<bool> {
        let mut state = self.call(ARM, "DeleteHub", &hub_of(at))?;
        if slow(&mut state.slow_deletes) {
            return Ok(false);
        }
        state.hubs.remove(&at.hub_id());
        Ok(true)
    }
}
