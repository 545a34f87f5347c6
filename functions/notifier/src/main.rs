//! The `notifier` Lambda function: reads the table's DynamoDB stream and sends the notification
//! email of each new outbox record through SES v2. Records that fail are reported back as batch
//! item failures, so Lambda retries them and finally sends them to the on-failure queue.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{service_fn, LambdaEvent};
use twofa_core::service::{notifier, App};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    twofa_core::lambda::init_tracing();
    let app = twofa_core::lambda::app_at_cold_start("notifier").await?;
    lambda_runtime::run(service_fn(|event| handle(&app, event))).await
}

/// Handles one batch of stream records. Every failure is a batch item failure, never an `Err`,
/// which would make Lambda retry the whole batch.
async fn handle(app: &App, event: LambdaEvent<Event>) -> Result<DynamoDbEventResponse, lambda_runtime::Error> {
    Ok(notifier::handle_stream_event(app, event.payload).await)
}
