//! Event Hubs through Resource Manager (`Microsoft.EventHub`, api-version 2024-01-01): the namespace
//! (created on the Standard tier, which the Kafka endpoint needs), the hub with its partitions and
//! retention, its consumer groups, and a Listen rule whose connection string consumers use. Hubs carry no
//! tags, so Tributary's ownership mark is the hub's `userMetadata`.

use serde_json::{Value, json};

use super::arm::{Arm, Provisioned};
use crate::cloud::{Error, Operation, Result};

/// The API version of every call here.
pub const API_VERSION: &str = "2024-01-01";
/// The hub-level rule consumers' connection strings come from (Listen only).
pub const LISTEN_RULE: &str = "tributary-listen";

/// Where a hub lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubAddress {
    /// Subscription id.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Namespace.
    pub namespace: String,
    /// Hub.
    pub hub: String,
}

impl HubAddress {
    /// The namespace's resource id.
    pub fn namespace_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.EventHub/namespaces/{}",
            self.subscription, self.resource_group, self.namespace
        )
    }

    /// The hub's resource id.
    pub fn hub_id(&self) -> String {
        format!("{}/eventhubs/{}", self.namespace_id(), self.hub)
    }
}

/// What a hub should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubSettings {
    /// Partitions.
    pub partitions: i32,
    /// Retention in hours.
    pub retention_hours: i32,
    /// The ownership mark (`userMetadata`).
    pub mark: String,
}

/// A hub as Resource Manager reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hub {
    /// Partitions.
    pub partitions: i32,
    /// Retention in hours.
    pub retention_hours: Option<i64>,
    /// `userMetadata`: the ownership mark, if Tributary made or adopted it.
    pub mark: Option<String>,
    /// `status` (Active, Disabled, ...).
    pub status: Option<String>,
}

impl Hub {
    fn from_resource(resource: &Value) -> Self {
        let p = &resource["properties"];
        let retention = p["retentionDescription"]["retentionTimeInHours"]
            .as_i64()
            .or_else(|| p["messageRetentionInDays"].as_i64().map(|d| d * 24));
        Self {
            partitions: p["partitionCount"]
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(0),
            retention_hours: retention,
            mark: p["userMetadata"]
                .as_str()
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            status: p["status"].as_str().map(str::to_owned),
        }
    }
}

/// The Event Hubs management calls. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventHubs {
    arm: Arm,
}

impl EventHubs {
    /// Event Hubs through `arm`.
    pub fn new(arm: Arm) -> Self {
        Self { arm }
    }

    /// The namespace's provisioning state, or `None` if there is no such namespace.
    pub async fn namespace_state(&self, at: &HubAddress) -> Result<Option<String>> {
        let found = self.arm.get(&at.namespace_id(), API_VERSION).await?;
        Ok(found.map(|n| super::arm::provisioning_state(&n).unwrap_or_else(|| "Succeeded".into())))
    }

    /// Creates the namespace (Standard, Kafka enabled) in `location`, with `tags`.
    pub async fn create_namespace(
        &self,
        at: &HubAddress,
        location: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Provisioned> {
        let body = json!({
            "location": location,
            "sku": {"name": "Standard", "tier": "Standard", "capacity": 1},
            "tags": tags,
            "properties": {"kafkaEnabled": true, "minimumTlsVersion": "1.2"},
        });
        self.arm.put(&at.namespace_id(), API_VERSION, &body).await
    }

    /// The hub, or `None`.
    pub async fn hub(&self, at: &HubAddress) -> Result<Option<Hub>> {
        Ok(self
            .arm
            .get(&at.hub_id(), API_VERSION)
            .await?
            .map(|r| Hub::from_resource(&r)))
    }

    /// Creates or updates the hub to `settings`.
    pub async fn put_hub(&self, at: &HubAddress, settings: &HubSettings) -> Result<Provisioned> {
        let body = json!({
            "properties": {
                "partitionCount": settings.partitions,
                "retentionDescription": {
                    "cleanupPolicy": "Delete",
                    "retentionTimeInHours": settings.retention_hours,
                },
                "userMetadata": settings.mark,
            }
        });
        self.arm.put(&at.hub_id(), API_VERSION, &body).await
    }

    /// The consumer groups of the hub (`$Default` included).
    pub async fn consumer_groups(&self, at: &HubAddress) -> Result<Vec<String>> {
        let id = format!("{}/consumergroups", at.hub_id());
        let list = self.arm.get(&id, API_VERSION).await?.unwrap_or(Value::Null);
        Ok(list["value"]
            .as_array()
            .map(|groups| {
                groups
                    .iter()
                    .filter_map(|g| g["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Creates the consumer group `name` (an existing one is left as it is).
    pub async fn create_consumer_group(&self, at: &HubAddress, name: &str) -> Result<()> {
        let id = format!("{}/consumergroups/{name}", at.hub_id());
        self.arm.put(&id, API_VERSION, &json!({"properties": {}})).await?;
        Ok(())
    }

    /// Makes sure the hub's Listen rule exists and returns its primary connection string.
    pub async fn listen_connection_string(&self, at: &HubAddress) -> Result<String> {
        let id = format!("{}/authorizationRules/{LISTEN_RULE}", at.hub_id());
        if self.arm.get(&id, API_VERSION).await?.is_none() {
            self.arm
                .put(&id, API_VERSION, &json!({"properties": {"rights": ["Listen"]}}))
                .await?;
        }
        let keys = self.arm.post(&id, "listKeys", API_VERSION).await?;
        keys["primaryConnectionString"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Response {
                operation: Operation::new("arm", "Post", format!("{id}/listKeys")),
                detail: "the answer has no primaryConnectionString".into(),
            })
    }

    /// Deletes the hub (already gone is success). False while the deletion is still running.
    pub async fn delete_hub(&self, at: &HubAddress) -> Result<bool> {
        self.arm.delete(&at.hub_id(), API_VERSION).await
    }
}

/// The Kafka bootstrap endpoint of a namespace: `<namespace>.servicebus.windows.net:9093`.
pub fn kafka_endpoint(namespace: &str) -> String {
    format!("{namespace}.servicebus.windows.net:9093")
}
