//! Delivery of notifications in the local run: a background task feeds new outbox records to the
//! same notifier as the Lambda function, from the in-memory store's inserts or the table's stream.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use twofa_core::aws::stream_poller::StreamPoller;
use twofa_core::service::{notifier, App};
use twofa_core::store::Item;

use crate::setup::NotificationSource;

/// How often outbox records that failed are tried again, and how often the stream is polled.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Maximum wait between polls of a stream that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Starts the task that delivers notifications until the process ends.
pub fn spawn(app: Arc<App>, source: NotificationSource) -> JoinHandle<()> {
    match source {
        NotificationSource::Memory(inserts) => tokio::spawn(deliver_inserts(app, inserts)),
        NotificationSource::DynamoStream { client, table } => {
            tokio::spawn(poll_stream(app, StreamPoller::new(client, table)))
        }
    }
}

/// Delivers each new outbox item of the in-memory store, and retries the failed ones.
async fn deliver_inserts(app: Arc<App>, mut inserts: tokio::sync::broadcast::Receiver<Item>) {
    let mut failed: Vec<Item> = Vec::new();
    let mut retry = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            received = inserts.recv() => match received {
                Ok(item) => failed.extend(notifier::notify_pending(&app, &[item]).await),
                Err(RecvError::Lagged(missed)) => {
                    tracing::error!(missed, "notifier fell behind the store; some notifications were not delivered");
                }
                Err(RecvError::Closed) => return,
            },
            _ = retry.tick() => {
                if !failed.is_empty() {
                    let pending = std::mem::take(&mut failed);
                    failed = notifier::notify_pending(&app, &pending).await;
                }
            }
        }
    }
}

/// Polls the table's stream, backing off while polls fail.
async fn poll_stream(app: Arc<App>, mut poller: StreamPoller) {
    let mut wait = POLL_INTERVAL;
    loop {
        match poller.poll_once(&app).await {
            Ok(outcome) => {
                if outcome.records > 0 {
                    tracing::debug!(
                        records = outcome.records,
                        failed = outcome.failed,
                        "stream records delivered to the notifier"
                    );
                }
                wait = POLL_INTERVAL;
            }
            Err(error) => {
                tracing::warn!(error = %error, retry_in_seconds = wait.as_secs(), "polling the table stream failed");
                wait = (wait * 2).min(MAX_BACKOFF);
            }
        }
        tokio::time::sleep(wait).await;
    }
}
