//! A Cosmos DB (NoSQL) container the device processor upserts into, through `azure_data_cosmos` with the
//! account key. Creating the database and container is idempotent (409 is success); writes are upserts
//! keyed by document id, so a redelivered event leaves one document.

use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosRuntime, RoutingStrategy,
    clients::ContainerClient,
    error::CosmosError,
    models::ContainerProperties,
    options::{BinaryEncodingOptions, ConnectionPoolOptions, ServerCertificateValidation},
};

use crate::cloud::{Error, ErrorKind, Operation, Result};

const COSMOS: &str = "cosmos";

/// Where the container is and how to reach it.
#[derive(Clone)]
pub struct ContainerAddress {
    /// Account endpoint.
    pub endpoint: String,
    /// Account key.
    pub key: String,
    /// Database.
    pub database: String,
    /// Container.
    pub container: String,
    /// Partition key path, used when the container is created.
    pub partition_key_path: String,
    /// Region the client prefers.
    pub preferred_region: String,
}

impl std::fmt::Debug for ContainerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerAddress")
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

/// An open container. Cheap to clone.
#[derive(Clone)]
pub struct CosmosContainer {
    container: ContainerClient,
    name: String,
}

impl std::fmt::Debug for CosmosContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosContainer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CosmosContainer {
    /// Opens the container, creating it (and its database) first when `create` is set. A missing
    /// container without `create` is [`ErrorKind::NotFound`].
    pub async fn open(address: &ContainerAddress, create: bool) -> Result<Self> {
        let name = format!("{}/{}", address.database, address.container);
        let operation = |call| Operation::new(COSMOS, call, name.clone());
        let endpoint: AccountEndpoint = address.endpoint.parse().map_err(|e| Error::Invalid {
            operation: operation("Connect"),
            detail: format!("the endpoint {:?} is not valid: {e}", address.endpoint),
        })?;
        let account = AccountReference::with_authentication_key(endpoint, address.key.clone());
        // Verification is skipped only for an emulator on a loopback address (the SDK's own rule).
        let pool = ConnectionPoolOptions::builder()
            .with_server_certificate_validation(ServerCertificateValidation::RequiredUnlessEmulator)
            .build()
            .map_err(|e| from_cosmos(operation("Connect"), e))?;
        let runtime = CosmosRuntime::builder()
            .with_connection_pool(pool)
            .build()
            .await
            .map_err(|e| from_cosmos(operation("Connect"), e))?;
        // JSON on the wire: the emulators speak nothing else.
        let client = CosmosClient::builder()
            .with_runtime(runtime)
            .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false))
            .build(
                account,
                RoutingStrategy::ProximityTo(address.preferred_region.clone().into()),
            )
            .await
            .map_err(|e| from_cosmos(operation("Connect"), e))?;
        if create {
            match client.create_database(&address.database, None).await {
                Ok(_) => tracing::info!(database = %address.database, "created the Cosmos DB database"),
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(from_cosmos(operation("CreateDatabase"), e)),
            }
        }
        let database = client.database_client(address.database.as_str());
        if create {
            let properties = ContainerProperties::new(
                address.container.clone(),
                address.partition_key_path.clone().into(),
            );
            match database.create_container(properties, None).await {
                Ok(_) => tracing::info!(container = %name, "created the Cosmos DB container"),
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(from_cosmos(operation("CreateContainer"), e)),
            }
        }
        let container = database
            .container_client(address.container.as_str(), None)
            .await
            .map_err(|e| from_cosmos(operation("ReadContainer"), e))?;
        Ok(Self { container, name })
    }

    /// Writes `body` as the document `id` in partition `partition_key`, replacing any earlier version.
    pub async fn upsert(&self, partition_key: &str, id: &str, body: &serde_json::Value) -> Result<()> {
        self.container
            .upsert_item(partition_key.to_owned(), id, body, None)
            .await
            .map_err(|e| {
                from_cosmos(
                    Operation::new(COSMOS, "UpsertItem", format!("{}/{id}", self.name)),
                    e,
                )
            })?;
        Ok(())
    }

    /// Reads the document `id`, or `None` when there is none.
    pub async fn read(&self, partition_key: &str, id: &str) -> Result<Option<serde_json::Value>> {
        let operation = || Operation::new(COSMOS, "ReadItem", format!("{}/{id}", self.name));
        match self.container.read_item(partition_key.to_owned(), id, None).await {
            Ok(response) => response
                .into_model()
                .map(Some)
                .map_err(|e| from_cosmos(operation(), e)),
            Err(e) if e.status().is_not_found() => Ok(None),
            Err(e) => Err(from_cosmos(operation(), e)),
        }
    }
}

fn is_conflict(error: &CosmosError) -> bool {
    error.status().is_conflict()
}

/// `error` from `operation`, classified: 404 not found; throttling, timeouts, 5xx and anything that never
/// reached the service transient; other answers permanent (the document or the request is wrong).
pub fn from_cosmos(operation: Operation, error: CosmosError) -> Error {
    let status = error.status();
    let code = u16::from(status.status_code());
    if !error.is_from_wire() {
        return Error::Unreachable {
            operation,
            detail: error.to_string(),
        };
    }
    let kind = if status.is_not_found() {
        ErrorKind::NotFound
    } else if status.is_transient() || status.is_throttled() || code == 408 || code >= 500 {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    };
    Error::Service {
        operation,
        kind,
        code: status.name().unwrap_or_default().to_owned(),
        message: error.to_string(),
        status: Some(code),
    }
}

impl crate::cloud::Documents for CosmosContainer {
    async fn upsert(&self, partition_key: &str, id: &str, body: &serde_json::Value) -> Result<()> {
        CosmosContainer::upsert(self, partition_key, id, body).await
    }

    async fn read(&self, partition_key: &str, id: &str) -> Result<Option<serde_json::Value>> {
        CosmosContainer::read(self, partition_key, id).await
    }
}
