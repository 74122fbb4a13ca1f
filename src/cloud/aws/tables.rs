//! DynamoDB tables as the controller provisions them ([`crate::cloud::Tables`]): the Order table's keys
//! (`pk`, `sk`, both strings) and its two sparse global indexes over the outbox entries, created
//! on-demand if missing (an index missing from a table made by an earlier version is added); and the
//! generic item calls the outbox relay makes through them ([`crate::cloud::TableItems`]). What the items
//! hold is the order processors' own layout, beside them in `worker::orders::table`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, GlobalSecondaryIndexUpdate,
    IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType,
    TableDescription,
};

use super::error::from_sdk;
use crate::cloud::{Error, Operation, Result, TableItem, TableItems, TableValue};

/// The service name in errors.
pub const DYNAMODB: &str = "dynamodb";
/// The Order table's first outbox index, keyed by the `outbox` attribute (one constant value, `pending`)
/// then `pk`: the layout of versions before the sharded one, read until it holds no entry.
pub const OUTBOX_INDEX: &str = "outbox";
/// The Order table's outbox index by age: partition `outboxShard` (one of a few shards), sort `outboxAge`
/// (creation time, then a tiebreaker), so that the oldest entries of a shard are read first.
pub const OUTBOX_AGE_INDEX: &str = "outboxByAge";
/// Each global index of the Order table: (name, partition attribute, sort attribute), every one a string.
pub const ORDER_TABLE_INDEXES: [(&str, &str, &str); 2] = [
    (OUTBOX_INDEX, "outbox", "pk"),
    (OUTBOX_AGE_INDEX, "outboxShard", "outboxAge"),
];
/// Polls of DescribeTable while a table or index becomes active, 200 ms apart (a new index on a large
/// table backfills for longer: the next ensure waits again).
const POLLS: u32 = 150;

fn invalid(operation: &Operation, detail: impl Into<String>) -> Error {
    Error::Invalid {
        operation: operation.clone(),
        detail: detail.into(),
    }
}

fn key(
    name: &str,
    kind: KeyType,
) -> std::result::Result<KeySchemaElement, aws_sdk_dynamodb::error::BuildError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
}

fn string_attribute(
    name: &str,
) -> std::result::Result<AttributeDefinition, aws_sdk_dynamodb::error::BuildError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
}

/// The global index `(name, partition, sort)`, projecting every attribute.
fn index(operation: &Operation, (name, partition, sort): (&str, &str, &str)) -> Result<GlobalSecondaryIndex> {
    let build = |e: aws_sdk_dynamodb::error::BuildError| invalid(operation, e.to_string());
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(partition, KeyType::Hash).map_err(build)?)
        .key_schema(key(sort, KeyType::Range).map_err(build)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(build)
}

/// Creates the Order table `table` (on-demand capacity, with the outbox indexes) if it does not exist,
/// adds an outbox index that an older table lacks, and waits until the table and its indexes are active.
pub async fn ensure_order_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    let operation = Operation::new(DYNAMODB, "CreateTable", table);
    let build = |e: aws_sdk_dynamodb::error::BuildError| invalid(&operation, e.to_string());
    let mut create = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash).map_err(build)?)
        .key_schema(key("sk", KeyType::Range).map_err(build)?)
        .attribute_definitions(string_attribute("pk").map_err(build)?)
        .attribute_definitions(string_attribute("sk").map_err(build)?);
    for spec in ORDER_TABLE_INDEXES {
        create = create.global_secondary_indexes(index(&operation, spec)?);
        for attribute in [spec.1, spec.2]
            .into_iter()
            .filter(|a| !matches!(*a, "pk" | "sk"))
        {
            create = create.attribute_definitions(string_attribute(attribute).map_err(build)?);
        }
    }
    match create.send().await {
        Ok(_) => {}
        Err(error)
            if error.as_service_error().is_some_and(
                aws_sdk_dynamodb::operation::create_table::CreateTableError::is_resource_in_use_exception,
            ) => {}
        Err(error) => return Err(from_sdk(operation, error)),
    }
    let described = wait_active(client, table).await?;
    let present: Vec<&str> = described
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    let missing: Vec<_> = ORDER_TABLE_INDEXES
        .into_iter()
        .filter(|(name, _, _)| !present.contains(name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    for spec in missing {
        add_index(client, table, spec).await?;
        wait_active(client, table).await?;
    }
    Ok(())
}

/// Adds the global index `spec` to the existing table (one index per UpdateTable, as DynamoDB allows).
async fn add_index(client: &aws_sdk_dynamodb::Client, table: &str, spec: (&str, &str, &str)) -> Result<()> {
    let operation = Operation::new(DYNAMODB, "UpdateTable", table);
    let build = |e: aws_sdk_dynamodb::error::BuildError| invalid(&operation, e.to_string());
    let created = index(&operation, spec)?;
    let create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
        .index_name(spec.0)
        .set_key_schema(Some(created.key_schema().to_vec()))
        .set_projection(created.projection().cloned())
        .build()
        .map_err(build)?;
    let mut update = client
        .update_table()
        .table_name(table)
        .global_secondary_index_updates(GlobalSecondaryIndexUpdate::builder().create(create).build());
    for attribute in [spec.1, spec.2] {
        update = update.attribute_definitions(string_attribute(attribute).map_err(build)?);
    }
    update.send().await.map_err(|e| from_sdk(operation, e))?;
    tracing::info!(
        table,
        index = spec.0,
        "added the outbox index to an existing Order table"
    );
    Ok(())
}

/// Waits until the table and each of its global indexes are active, and returns its description. A
/// table still not active is a permanent error, as before; an index still backfilling (a new index on a
/// large table takes minutes) is a transient one, so the next ensure waits again.
async fn wait_active(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<TableDescription> {
    let describe = Operation::new(DYNAMODB, "DescribeTable", table);
    let mut table_active = false;
    for _ in 0..POLLS {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| from_sdk(describe.clone(), e))?;
        if let Some(description) = described.table {
            table_active = description.table_status().map(|s| s.as_str()) == Some("ACTIVE");
            let indexes_active = description
                .global_secondary_indexes()
                .iter()
                .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
            if table_active && indexes_active {
                return Ok(description);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    if !table_active {
        return Err(invalid(&describe, "the table did not become ACTIVE in 30 s"));
    }
    Err(Error::Service {
        operation: describe,
        kind: crate::cloud::ErrorKind::Transient,
        code: "IndexNotActive".to_owned(),
        message: "an outbox index is still being created (backfilling); ensured again later".to_owned(),
        status: None,
    })
}

fn to_table(value: &AttributeValue) -> TableValue {
    match value {
        AttributeValue::S(s) => TableValue::S(s.clone()),
        AttributeValue::N(n) => TableValue::N(n.clone()),
        other => TableValue::Other(format!("{other:?}")),
    }
}

fn to_item(item: HashMap<String, AttributeValue>) -> TableItem {
    item.iter()
        .map(|(name, value)| (name.clone(), to_table(value)))
        .collect()
}

fn to_dynamodb(operation: &Operation, item: &TableItem) -> Result<HashMap<String, AttributeValue>> {
    item.iter()
        .map(|(name, value)| match value {
            TableValue::S(s) => Ok((name.clone(), AttributeValue::S(s.clone()))),
            TableValue::N(n) => Ok((name.clone(), AttributeValue::N(n.clone()))),
            TableValue::Other(_) => Err(invalid(
                operation,
                format!("attribute {name}: only strings and numbers are written"),
            )),
        })
        .collect()
}

impl TableItems for aws_sdk_dynamodb::Client {
    async fn query_index(
        &self,
        table: &str,
        index: &str,
        key: (&str, &str),
        limit: i32,
    ) -> Result<Vec<TableItem>> {
        let operation = Operation::new(DYNAMODB, "Query", table);
        let output = self
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", key.0)
            .expression_attribute_values(":k", AttributeValue::S(key.1.to_owned()))
            .scan_index_forward(true)
            .limit(limit)
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(to_item)
            .collect())
    }

    async fn update_item(
        &self,
        table: &str,
        key: &TableItem,
        set: &TableItem,
        remove: &[&str],
    ) -> Result<bool> {
        let operation = Operation::new(DYNAMODB, "UpdateItem", table);
        let mut request = self
            .update_item()
            .table_name(table)
            .set_key(Some(to_dynamodb(&operation, key)?))
            .condition_expression("attribute_exists(pk)");
        let mut clauses = Vec::new();
        for (i, (name, value)) in to_dynamodb(&operation, set)?.into_iter().enumerate() {
            clauses.push(format!("#s{i} = :s{i}"));
            request = request
                .expression_attribute_names(format!("#s{i}"), name)
                .expression_attribute_values(format!(":s{i}"), value);
        }
        let mut expression = if clauses.is_empty() {
            String::new()
        } else {
            format!("SET {} ", clauses.join(", "))
        };
        if !remove.is_empty() {
            let names: Vec<String> = (0..remove.len()).map(|i| format!("#r{i}")).collect();
            expression.push_str(&format!("REMOVE {}", names.join(", ")));
            for (placeholder, name) in names.iter().zip(remove) {
                request = request.expression_attribute_names(placeholder, *name);
            }
        }
        match request.update_expression(expression).send().await {
            Ok(_) => Ok(true),
            Err(error)
                if error.as_service_error().is_some_and(
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::is_conditional_check_failed_exception,
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(from_sdk(operation, error)),
        }
    }

    async fn claim_item(
        &self,
        table: &str,
        key: &TableItem,
        (holder_attribute, until_attribute): (&str, &str),
        holder: &str,
        (now_millis, until_millis): (i64, i64),
    ) -> Result<bool> {
        let operation = Operation::new(DYNAMODB, "UpdateItem", table);
        let claimed = self
            .update_item()
            .table_name(table)
            .set_key(Some(to_dynamodb(&operation, key)?))
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#u) OR #u < :now OR #h = :holder)",
            )
            .update_expression("SET #h = :holder, #u = :until")
            .expression_attribute_names("#h", holder_attribute)
            .expression_attribute_names("#u", until_attribute)
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(now_millis.to_string()))
            .expression_attribute_values(":until", AttributeValue::N(until_millis.to_string()))
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(true),
            Err(error)
                if error.as_service_error().is_some_and(
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::is_conditional_check_failed_exception,
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(from_sdk(operation, error)),
        }
    }

    async fn put_item(&self, table: &str, item: &TableItem) -> Result<()> {
        let operation = Operation::new(DYNAMODB, "PutItem", table);
        self.put_item()
            .table_name(table)
            .set_item(Some(to_dynamodb(&operation, item)?))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }

    async fn delete_item(&self, table: &str, key: &TableItem) -> Result<()> {
        let operation = Operation::new(DYNAMODB, "DeleteItem", table);
        self.delete_item()
            .table_name(table)
            .set_key(Some(to_dynamodb(&operation, key)?))
            .send()
            .await
            .map_err(|e| from_sdk(operation, e))?;
        Ok(())
    }
}
