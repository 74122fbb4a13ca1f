//! Smoke tests of the Azure emulators through the official Azure crates:
//! - Azurite's queue service with `azure_storage_queue`, authenticated by an account SAS that Tributary signs
//!   itself (the crate has no shared-key support);
//! - cosmium, the Cosmos DB-compatible server, with `azure_data_cosmos` and the emulator key.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use azure_core::http::Url;
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosRuntime, RoutingStrategy,
    models::ContainerProperties,
    options::{BinaryEncodingOptions, ConnectionPoolOptions, ServerCertificateValidation},
};
use azure_storage_queue::{QueueServiceClient, models::QueueMessage};
use serde::{Deserialize, Serialize};
use tributary::cloud::azure::storage_sas::AccountSas;

#[tokio::test]
async fn azurite_queue_create_put_get_delete() {
    let _bed = common::shared().await;
    let name = common::unique("devices-dlq").to_lowercase();
    let queue = common::azure_queue_service().queue_client(&name).unwrap();
    queue.create(None).await.unwrap();
    assert!(queue.exists().await.unwrap());

    let message = QueueMessage {
        message_text: Some("{\"deviceId\":\"d-1\",\"reason\":\"bad reading\"}".into()),
    };
    queue
        .send_message(message.try_into().unwrap(), None)
        .await
        .unwrap();

    let received = queue
        .receive_messages(None)
        .await
        .unwrap()
        .into_model()
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(
        got.message_text.as_deref(),
        Some("{\"deviceId\":\"d-1\",\"reason\":\"bad reading\"}")
    );
    assert_eq!(got.dequeue_count, Some(1));
    queue
        .delete_message(
            got.message_id.as_deref().unwrap(),
            got.pop_receipt.as_deref().unwrap(),
            None,
        )
        .await
        .unwrap();
    let props = queue.get_properties(None).await.unwrap();
    let count = props
        .headers()
        .get_optional_str(&"x-ms-approximate-messages-count".into())
        .unwrap_or("?")
        .to_owned();
    assert_eq!(count, "0", "the deleted message is gone");

    queue.delete(None).await.unwrap();
    assert!(!queue.exists().await.unwrap());
}

#[tokio::test]
async fn a_bad_sas_is_refused() {
    let _bed = common::shared().await;
    let endpoint = Url::parse(&common::var("AZURE_STORAGE_QUEUE_ENDPOINT")).unwrap();
    let sas = AccountSas::queues_full_access(
        "devstoreaccount1",
        time::OffsetDateTime::now_utc() + Duration::from_secs(60),
    );
    // A valid-looking key that is not the account's: the signature cannot match.
    let url = sas
        .sign_url(
            &endpoint,
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        )
        .unwrap();
    let queue = QueueServiceClient::new(url, None, None)
        .unwrap()
        .queue_client("forbidden")
        .unwrap();
    let err = queue.create(None).await.unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(403), "{err}");
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Telemetry {
    id: String,
    #[serde(rename = "deviceId")]
    device_id: String,
    temperature: f64,
}

#[tokio::test]
async fn cosmos_database_container_document_round_trip() {
    let _bed = common::shared().await;
    let endpoint: AccountEndpoint = common::var("COSMOS_ENDPOINT").parse().unwrap();
    let account = AccountReference::with_authentication_key(endpoint, common::var("COSMOS_KEY"));
    // The emulator's certificate is the test bed's own; the SDK skips verification for emulator hosts only
    // when asked (the same switch as AZURE_COSMOS_EMULATOR_SERVER_CERT_VALIDATION_DISABLED).
    let pool = ConnectionPoolOptions::builder()
        .with_server_certificate_validation(ServerCertificateValidation::RequiredUnlessEmulator)
        .build()
        .unwrap();
    let runtime = CosmosRuntime::builder()
        .with_connection_pool(pool)
        .build()
        .await
        .unwrap();
    let client = CosmosClient::builder()
        .with_runtime(runtime)
        .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false))
        .build(account, RoutingStrategy::ProximityTo("East US".into()))
        .await
        .unwrap();
    let db_name = common::unique("telemetry");
    client.create_database(&db_name, None).await.unwrap();
    let database = client.database_client(db_name.as_str());
    database
        .create_container(ContainerProperties::new("readings", "/deviceId".into()), None)
        .await
        .unwrap();
    let container = database.container_client("readings", None).await.unwrap();

    let reading = Telemetry {
        id: "evt-1".into(),
        device_id: "d-1".into(),
        temperature: 21.5,
    };
    container
        .upsert_item("d-1", "evt-1", &reading, None)
        .await
        .unwrap();
    // Upserting the same event again is how the device processor stays idempotent: still one document.
    container
        .upsert_item("d-1", "evt-1", &reading, None)
        .await
        .unwrap();
    let back: Telemetry = container
        .read_item("d-1", "evt-1", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(back, reading);

    let missing = container.read_item("d-1", "evt-404", None).await.unwrap_err();
    assert_eq!(u16::from(missing.status().status_code()), 404, "{missing}");
    database.delete(None).await.unwrap();
}
