//! DynamoDB tables as the controller provisions them ([`crate::cloud::Tables`]): the Order table's keys
//! (`pk`, `sk`, both strings) and its sparse global index `outbox` on the `outbox` attribute, created
//! on-demand if missing. What the items hold is the order processors' own layout, beside them in
//! `worker::orders::table`.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

use super::error::from_sdk;
use crate::cloud::{Error, Operation, Result};

/// The service name in errors.
pub const DYNAMODB: &str = "dynamodb";
/// The Order table's global index over the outbox entries (keyed by the `outbox` attribute, then `pk`).
pub const OUTBOX_INDEX: &str = "outbox";

fn invalid(operation: &Operation, detail: impl Into<String>) -> Error {
    Error::Invalid {
        operation: operation.clone(),
        detail: detail.into(),
    }
}

/// Creates the Order table `table` (on-demand capacity, with the outbox index) if it does not exist, and
/// waits until it is active.
pub async fn ensure_order_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    let operation = Operation::new(DYNAMODB, "CreateTable", table);
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let build = |e: aws_sdk_dynamodb::error::BuildError| invalid(&operation, e.to_string());
    let index = GlobalSecondaryIndex::builder()
        .index_name(OUTBOX_INDEX)
        .key_schema(key("outbox", KeyType::Hash).map_err(build)?)
        .key_schema(key("pk", KeyType::Range).map_err(build)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(build)?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash).map_err(build)?)
        .key_schema(key("sk", KeyType::Range).map_err(build)?)
        .attribute_definitions(attribute("pk").map_err(build)?)
        .attribute_definitions(attribute("sk").map_err(build)?)
        .attribute_definitions(attribute("outbox").map_err(build)?)
        .global_secondary_indexes(index)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(error)
            if error.as_service_error().is_some_and(
                aws_sdk_dynamodb::operation::create_table::CreateTableError::is_resource_in_use_exception,
            ) => {}
        Err(error) => return Err(from_sdk(operation, error)),
    }
    let describe = Operation::new(DYNAMODB, "DescribeTable", table);
    for _ in 0..100 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| from_sdk(describe.clone(), e))?;
        let status = described
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str().to_owned());
        if status.as_deref() == Some("ACTIVE") {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(invalid(&describe, "the table did not become ACTIVE in 20 s"))
}
