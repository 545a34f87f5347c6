//! Audit records of login attempts and 2FA changes, kept for 400 days.

use super::App;
use crate::error::AppError;
use crate::model::{AuditRecord, Method, DAY};
use crate::store::{to_item, Condition, Order, Write};

/// The content of an audit record, apart from the user and the time.
#[derive(Debug, Clone, Copy)]
pub struct AuditEntry<'a> {
    pub event: &'a str,
    pub outcome: &'a str,
    pub method: Option<Method>,
    pub source_ip: &'a str,
    pub detail: Option<&'a str>,
}

/// Builds the write of an audit record, to send alone or inside a transaction.
pub fn record(app: &App, user_id: &str, entry: AuditEntry<'_>) -> Result<Write, AppError> {
    let now = app.now();
    let record = AuditRecord {
        user_id: user_id.to_owned(),
        event: entry.event.to_owned(),
        outcome: entry.outcome.to_owned(),
        method: entry.method,
        source_ip: entry.source_ip.to_owned(),
        detail: entry.detail.map(str::to_owned),
        at: now,
        expires_at: now + AuditRecord::RETENTION_DAYS * DAY,
    };
    let millis = now.saturating_mul(1000);
    let key = AuditRecord::key(user_id, millis, &app.new_id());
    Ok(Write::Put {
        item: to_item(&key, &record)?,
        condition: Some(Condition::NotExists),
    })
}

/// Writes an audit record on its own. A store failure fails the request: no attempt goes unrecorded.
pub async fn put(app: &App, user_id: &str, entry: AuditEntry<'_>) -> Result<(), AppError> {
    app.store.write(record(app, user_id, entry)?).await?;
    Ok(())
}

/// Lists a user's newest audit records first.
pub async fn list(app: &App, user_id: &str, limit: usize) -> Result<Vec<AuditRecord>, AppError> {
    let page = app
        .store
        .query(&AuditRecord::partition(user_id), "", Order::Descending, limit)
        .await?;
    page.items
        .into_iter()
        .map(|item| crate::store::from_item(item).map_err(AppError::from))
        .collect()
}
