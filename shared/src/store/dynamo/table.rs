//! Creation of the table for the local run, tests and the admin tool.

use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, StreamSpecification,
    StreamViewType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;

use super::error::{build_error, store_error};
use crate::store::{StoreError, EXPIRES_AT, PK, SK};

/// How long [`create_table`] waits for a new table to become ACTIVE.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// Creates the table with `pk` and `sk` as string keys, on-demand billing and a stream of new
/// and old images, waits until it is ACTIVE and enables TTL on `expires_at`. An existing table is
/// kept.
pub(crate) async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let created = client
        .create_table()
        .table_name(table)
        .attribute_definitions(attribute_definition(PK)?)
        .attribute_definitions(attribute_definition(SK)?)
        .key_schema(key_schema_element(PK, KeyType::Hash)?)
        .key_schema(key_schema_element(SK, KeyType::Range)?)
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await;
    match created {
        Ok(_) => tracing::info!(table, "created DynamoDB table"),
        Err(error) if error.code() == Some("ResourceInUseException") => {
            tracing::info!(table, "DynamoDB table exists")
        }
        Err(error) => return Err(store_error("CreateTable", &error)),
    }

    wait_until_active(client, table).await?;
    enable_ttl(client, table).await
}

fn attribute_definition(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_error)
}

fn key_schema_element(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(build_error)
}

async fn wait_until_active(client: &Client, table: &str) -> Result<(), StoreError> {
    let poll = Duration::from_millis(500);
    let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
    loop {
        let output = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|error| store_error("DescribeTable", &error))?;
        let status = output.table().and_then(|description| description.table_status());
        if status == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "table {table} did not become ACTIVE within {} seconds",
                TABLE_ACTIVE_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(poll).await;
    }
}

async fn enable_ttl(client: &Client, table: &str) -> Result<(), StoreError> {
    let output = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|error| store_error("DescribeTimeToLive", &error))?;
    let description = output.time_to_live_description();
    let status = description.and_then(|description| description.time_to_live_status());
    let attribute = description.and_then(|description| description.attribute_name());
    if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
        return match attribute {
            Some(EXPIRES_AT) => Ok(()),
            other => Err(StoreError::Invalid(format!(
                "table {table} has TTL on attribute {}, expected {EXPIRES_AT}",
                other.unwrap_or("(none)")
            ))),
        };
    }

    let specification = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(EXPIRES_AT)
        .build()
        .map_err(build_error)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(specification)
        .send()
        .await
        .map_err(|error| store_error("UpdateTimeToLive", &error))?;
    tracing::info!(table, attribute = EXPIRES_AT, "enabled TTL");
    Ok(())
}
