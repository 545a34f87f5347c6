//! Finding the outbox records of a stream batch that the notifier's event source mapping gave up on.
//!
//! When a batch keeps failing past its retries, Lambda puts a message on the on-failure queue. The
//! message names the batch by stream, shard and a range of sequence numbers
//! (`DDBStreamBatchInfo`), not by its records. The stream keeps records for 24 hours, so
//! [`outbox_event_ids`] reads that range again and returns the event ids of the outbox records in
//! it. `twofa-admin redeliver` then sends what is still unsent.

use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use serde::Deserialize;

use crate::error::AppError;
use crate::service::notifier::OUTBOX_PREFIX;
use crate::store::PK;

/// Maximum GetRecords calls for one batch. An event source mapping's batch has at most 10,000
/// records (the template sets 10), and one call returns up to 1,000, so this bound leaves room for
/// empty pages and stops only a reading that never reaches the batch's end.
const MAX_PAGES: usize = 100;

/// The batch named by an on-failure message of a DynamoDB stream event source mapping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    pub stream_arn: String,
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
}

#[derive(Deserialize)]
struct FailureMessage {
    #[serde(rename = "DDBStreamBatchInfo")]
    batch: BatchInfo,
}

/// Parses the body of an on-failure queue message. The error names what is missing.
pub fn parse_failure_message(body: &str) -> Result<BatchInfo, AppError> {
    serde_json::from_str::<FailureMessage>(body)
        .map(|message| message.batch)
        .map_err(|error| {
            AppError::invalid_field(
                "DDBStreamBatchInfo",
                format!("not an on-failure message of a DynamoDB stream: {error}"),
            )
        })
}

/// Compares two stream sequence numbers, which are decimal strings of up to 40 digits.
fn is_after(sequence_number: &str, end: &str) -> bool {
    (sequence_number.len(), sequence_number) > (end.len(), end)
}

/// Reads the records of `batch` from the stream and returns the event ids of the outbox records
/// that were inserted in it, in stream order.
///
/// Fails with `service_unavailable` when DynamoDB Streams cannot be read, which includes a batch
/// older than the stream's 24-hour retention (`TrimmedDataAccessException`), and when the reading
/// does not reach the batch's last sequence number, so a partial list is never returned.
pub async fn outbox_event_ids(client: &Client, batch: &BatchInfo) -> Result<Vec<String>, AppError> {
    let iterator = client
        .get_shard_iterator()
        .stream_arn(&batch.stream_arn)
        .shard_id(&batch.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&batch.start_sequence_number)
        .send()
        .await
        .map_err(|error| stream_error("GetShardIterator", error.code()))?;
    let mut next_iterator = iterator.shard_iterator().map(str::to_owned);

    let mut event_ids = Vec::new();
    for _ in 0..MAX_PAGES {
        let Some(iterator) = next_iterator.take() else {
            break;
        };
        let page = client
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .map_err(|error| stream_error("GetRecords", error.code()))?;

        // A page can be empty before later records of the shard, so only the batch's last
        // sequence number ends the reading.
        for record in page.records() {
            let Some(change) = record.dynamodb() else {
                continue;
            };
            let sequence_number = change.sequence_number().unwrap_or_default();
            if is_after(sequence_number, &batch.end_sequence_number) {
                return Ok(event_ids);
            }
            if record.event_name() == Some(&OperationType::Insert) {
                if let Some(AttributeValue::S(pk)) = change.keys().and_then(|keys| keys.get(PK)) {
                    if let Some(event_id) = pk.strip_prefix(OUTBOX_PREFIX) {
                        event_ids.push(event_id.to_owned());
                    }
                }
            }
            if sequence_number == batch.end_sequence_number {
                return Ok(event_ids);
            }
        }
        next_iterator = page.next_shard_iterator().map(str::to_owned);
    }
    Err(AppError::unavailable(format!(
        "the stream records of shard {} ended, or {MAX_PAGES} pages passed, before the batch's last \
         sequence number {}; no outbox record was sent",
        batch.shard_id, batch.end_sequence_number
    )))
}

fn stream_error(operation: &str, code: Option<&str>) -> AppError {
    AppError::unavailable(format!(
        "DynamoDB Streams {operation} failed: {}",
        code.unwrap_or("no error code")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = r#"{
        "requestContext": {
            "requestId": "2d7b4a6e-2f6c-4e0a-9c1e-6f0f3c1b8a10",
            "functionArn": "arn:aws:lambda:eu-central-1:123456789012:function:twofa-notifier",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 11
        },
        "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "" },
        "version": "1.0",
        "timestamp": "2026-12-04T10:00:00.000Z",
        "DDBStreamBatchInfo": {
            "shardId": "shardId-00000001700000000000-abcdef12",
            "startSequenceNumber": "900000000000000000001",
            "endSequenceNumber": "900000000000000000007",
            "approximateArrivalOfFirstRecord": "2026-12-04T09:00:00Z",
            "approximateArrivalOfLastRecord": "2026-12-04T09:00:01Z",
            "batchSize": 3,
            "streamArn": "arn:aws:dynamodb:eu-central-1:123456789012:table/twofa/stream/2026-12-01T00:00:00.000"
        }
    }"#;

    #[test]
    fn failure_message_names_the_batch() {
        let batch = parse_failure_message(MESSAGE).unwrap();

        assert_eq!(batch.shard_id, "shardId-00000001700000000000-abcdef12");
        assert_eq!(batch.start_sequence_number, "900000000000000000001");
        assert_eq!(batch.end_sequence_number, "900000000000000000007");
        assert!(batch.stream_arn.ends_with("/stream/2026-12-01T00:00:00.000"));
    }

    #[test]
    fn other_json_is_invalid_request() {
        let error = parse_failure_message(r#"{"Records": []}"#).unwrap_err();

        assert_eq!(error.code(), "invalid_request");
        assert!(error.to_string().contains("DDBStreamBatchInfo"), "{error}");
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(is_after("100", "99"));
        assert!(is_after("900000000000000000008", "900000000000000000007"));
        assert!(!is_after("900000000000000000007", "900000000000000000007"));
        assert!(!is_after("99", "100"));
    }
}
