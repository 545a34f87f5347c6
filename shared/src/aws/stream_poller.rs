//! A poller of the table's DynamoDB stream, for the local API on a DynamoDB endpoint and for
//! tests on moto, where no Lambda event source mapping exists.
//!
//! It reads the stream with ListStreams, DescribeStream, GetShardIterator and GetRecords, converts
//! the records into the Lambda event that the notifier function receives, and hands them to
//! [`notifier::handle_stream_event`]. Like the event source mapping, it delivers the records that
//! failed again on the next poll. Unlike it, it keeps its position in memory only, and it starts
//! at the oldest record of each shard. The delivery marks on outbox items keep a replayed record
//! from sending an email twice.

use std::collections::BTreeMap;

use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamRecord};
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;

use crate::error::AppError;
use crate::service::{notifier, App};

/// The outcome of one poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Stream records handed to the notifier, retried ones included.
    pub records: usize,
    /// Records that failed and will be delivered again on the next poll.
    pub failed: usize,
}

/// Reads a table's stream and feeds the notifier.
pub struct StreamPoller {
    client: Client,
    table: String,
    stream_arn: Option<String>,
    /// The next iterator of each shard seen; `None` once a closed shard is read to its end.
    shards: BTreeMap<String, Option<String>>,
    /// Records that failed, delivered first on the next poll.
    retry: Vec<EventRecord>,
}

impl StreamPoller {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            stream_arn: None,
            shards: BTreeMap::new(),
            retry: Vec::new(),
        }
    }

    /// Reads the records written since the last poll, hands them with the records that failed
    /// before to the notifier, and keeps the ones that fail again for the next poll.
    pub async fn poll_once(&mut self, app: &App) -> Result<PollOutcome, AppError> {
        let mut records = std::mem::take(&mut self.retry);
        records.extend(self.read_new_records().await?);
        if records.is_empty() {
            return Ok(PollOutcome::default());
        }

        let mut event = Event::default();
        event.records = records.clone();
        let response = notifier::handle_stream_event(app, event).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .filter_map(|failure| failure.item_identifier.as_deref())
            .collect();
        let count = records.len();
        self.retry = records
            .into_iter()
            .filter(|record| {
                record
                    .change
                    .sequence_number
                    .as_deref()
                    .is_some_and(|sequence| failed.contains(&sequence))
            })
            .collect();
        Ok(PollOutcome {
            records: count,
            failed: self.retry.len(),
        })
    }

    /// Reads every shard from where the last poll stopped.
    async fn read_new_records(&mut self) -> Result<Vec<EventRecord>, AppError> {
        let stream_arn = self.stream_arn().await?;
        self.discover_shards(&stream_arn).await?;

        let mut records = Vec::new();
        let shard_ids: Vec<String> = self.shards.keys().cloned().collect();
        for shard_id in shard_ids {
            let Some(Some(iterator)) = self.shards.get(&shard_id).cloned() else {
                continue;
            };
            let output = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .map_err(|error| stream_error("GetRecords", error.code()))?;
            records.extend(
                output
                    .records()
                    .iter()
                    .map(|record| to_event_record(record, &stream_arn)),
            );
            self.shards
                .insert(shard_id, output.next_shard_iterator().map(str::to_owned));
        }
        Ok(records)
    }

    /// Returns the ARN of the table's latest stream, found once with ListStreams.
    async fn stream_arn(&mut self) -> Result<String, AppError> {
        if let Some(arn) = &self.stream_arn {
            return Ok(arn.clone());
        }
        let output = self
            .client
            .list_streams()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|error| stream_error("ListStreams", error.code()))?;
        let arn = output
            .streams()
            .iter()
            .filter_map(|stream| stream.stream_arn())
            .max()
            .ok_or_else(|| {
                AppError::Internal(format!("table {} has no stream; enable NEW_AND_OLD_IMAGES", self.table))
            })?
            .to_owned();
        self.stream_arn = Some(arn.clone());
        Ok(arn)
    }

    /// Adds the shards not seen before, each with an iterator at its oldest record.
    async fn discover_shards(&mut self, stream_arn: &str) -> Result<(), AppError> {
        let mut start_shard_id: Option<String> = None;
        loop {
            let output = self
                .client
                .describe_stream()
                .stream_arn(stream_arn)
                .set_exclusive_start_shard_id(start_shard_id.clone())
                .send()
                .await
                .map_err(|error| stream_error("DescribeStream", error.code()))?;
            let Some(description) = output.stream_description() else {
                return Ok(());
            };
            for shard in description.shards() {
                let Some(shard_id) = shard.shard_id() else {
                    continue;
                };
                if self.shards.contains_key(shard_id) {
                    continue;
                }
                let iterator = self
                    .client
                    .get_shard_iterator()
                    .stream_arn(stream_arn)
                    .shard_id(shard_id)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .map_err(|error| stream_error("GetShardIterator", error.code()))?;
                self.shards
                    .insert(shard_id.to_owned(), iterator.shard_iterator().map(str::to_owned));
            }
            match description.last_evaluated_shard_id() {
                Some(last) => start_shard_id = Some(last.to_owned()),
                None => return Ok(()),
            }
        }
    }
}

fn stream_error(operation: &str, code: Option<&str>) -> AppError {
    AppError::unavailable(format!(
        "DynamoDB Streams {operation} failed: {}",
        code.unwrap_or("no error code")
    ))
}

/// Converts a record of the DynamoDB Streams API into the record of a Lambda stream event.
pub fn to_event_record(record: &Record, stream_arn: &str) -> EventRecord {
    let mut change = StreamRecord::default();
    if let Some(stream_record) = record.dynamodb() {
        change.keys = stream_record.keys().cloned().unwrap_or_default().into();
        change.new_image = stream_record.new_image().cloned().unwrap_or_default().into();
        change.old_image = stream_record.old_image().cloned().unwrap_or_default().into();
        change.sequence_number = stream_record.sequence_number().map(str::to_owned);
        change.size_bytes = stream_record.size_bytes().unwrap_or_default();
    }

    let mut event_record = EventRecord::default();
    event_record.change = change;
    event_record.event_id = record.event_id().unwrap_or_default().to_owned();
    event_record.event_name = record
        .event_name()
        .map(|name| name.as_str().to_owned())
        .unwrap_or_default();
    event_record.event_source = record.event_source().map(str::to_owned);
    event_record.event_version = record.event_version().map(str::to_owned);
    event_record.event_source_arn = Some(stream_arn.to_owned());
    event_record.aws_region = record.aws_region().unwrap_or_default().to_owned();
    event_record
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, StreamRecord as ApiStreamRecord};

    use super::*;
    use crate::model::{NotificationEvent, OutboxRecord};

    fn outbox_image() -> HashMap<String, AttributeValue> {
        let previous = HashMap::from([
            ("email".to_owned(), AttributeValue::S("eva@example.org".into())),
            ("language".to_owned(), AttributeValue::S("cs".into())),
        ]);
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S("OUTBOX#event-1".into())),
            ("sk".to_owned(), AttributeValue::S("OUTBOX".into())),
            ("event_id".to_owned(), AttributeValue::S("event-1".into())),
            ("event".to_owned(), AttributeValue::S("security_contact_changed".into())),
            ("account_id".to_owned(), AttributeValue::S("account-1".into())),
            ("user_id".to_owned(), AttributeValue::S("user-1".into())),
            ("username".to_owned(), AttributeValue::S("alice".into())),
            ("occurred_at".to_owned(), AttributeValue::N("1767225600".into())),
            ("source_ip".to_owned(), AttributeValue::S("198.51.100.7".into())),
            ("detail".to_owned(), AttributeValue::Null(true)),
            ("previous_contact".to_owned(), AttributeValue::M(previous)),
            ("expires_at".to_owned(), AttributeValue::N("1769817600".into())),
        ])
    }

    #[test]
    fn stream_record_converts_to_outbox_record() {
        let change = ApiStreamRecord::builder()
            .set_keys(Some(HashMap::from([(
                "pk".to_owned(),
                AttributeValue::S("OUTBOX#event-1".into()),
            )])))
            .set_new_image(Some(outbox_image()))
            .sequence_number("4200")
            .size_bytes(300)
            .build();
        let record = Record::builder()
            .event_id("id-1")
            .event_name(OperationType::Insert)
            .dynamodb(change)
            .build();

        let converted = to_event_record(&record, "arn:stream");

        assert_eq!(converted.event_name, "INSERT");
        assert_eq!(converted.change.sequence_number.as_deref(), Some("4200"));
        assert_eq!(converted.event_source_arn.as_deref(), Some("arn:stream"));
        let outbox: OutboxRecord = serde_dynamo::from_item(converted.change.new_image).unwrap();
        assert_eq!(outbox.event, NotificationEvent::SecurityContactChanged);
        assert_eq!(outbox.occurred_at, 1_767_225_600);
        assert_eq!(outbox.detail, None);
        assert_eq!(
            outbox.previous_contact.map(|contact| contact.email),
            Some("eva@example.org".to_owned())
        );
    }

    #[test]
    fn record_without_change_converts_to_empty_images() {
        let record = Record::builder().event_name(OperationType::Remove).build();

        let converted = to_event_record(&record, "arn:stream");

        assert_eq!(converted.event_name, "REMOVE");
        assert!(converted.change.new_image.is_empty());
        assert_eq!(converted.change.sequence_number, None);
    }
}
