//! The notifier: turns outbox records into notification emails.
//!
//! A 2FA change writes its outbox record in the same transaction as the change, and the table's
//! stream delivers the INSERT of that record here. Recipients are fixed when the change is made
//! and stored in the record, so a later change of the Security contact does not redirect an email
//! about an earlier change. They are the customer account's Security contact (or, when none is
//! set, the main account user) and the affected user when that user has an email address of its
//! own. A change of the Security contact goes to the new and the previous holder. Addresses are
//! deduplicated case-insensitively.
//!
//! Each recipient gets one email per outbox record (except in the window of the note below), and
//! a failed send is retried, never dropped:
//! - after SES accepts an email, a conditional update sets a mark attribute on the outbox item,
//!   named after a hash of the address (`sent_<hash>`, condition `attribute_not_exists`);
//! - a recipient whose mark exists is skipped, so a retried record sends only what is missing;
//! - a failed send leaves no mark and fails the record, so the stream delivers it again, and
//!   what keeps failing reaches the on-failure queue of the event source mapping.
//!
//! NOTE: one window can still send an email twice: SES accepted it, and then the process died
//! or the mark write failed while another recipient of the same record failed, so the record is
//! retried without the mark. Marking before sending would close that window by opening a worse
//! one, where a crash after the mark loses the email.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::security_contact;
use super::users;
use super::App;
use crate::error::AppError;
use crate::model::{CustomerAccount, NotificationEvent, OutboxRecord, Recipient};
use crate::ports::{Email, SendError};
use crate::store::{from_item, Condition, Item, Update, Write, PK};
use crate::templates::email;

/// The partition key prefix of outbox records.
pub const OUTBOX_PREFIX: &str = "OUTBOX#";

/// The prefix of the per-recipient delivery marks on an outbox item.
pub const MARK_PREFIX: &str = "sent_";

/// Returns the name of the delivery mark of an address: `sent_` and the first 16 bytes of the
/// SHA-256 of the lower-case address, in hex. The address itself stays out of attribute names.
pub fn mark_attribute(address: &str) -> String {
    let digest = Sha256::digest(address.trim().to_lowercase().as_bytes());
    let hex: String = digest.iter().take(16).map(|byte| format!("{byte:02x}")).collect();
    format!("{MARK_PREFIX}{hex}")
}

/// Returns who receives the email about `record`: the recipients stored with it, or for a record
/// stored without them, the recipients as they are now.
pub async fn resolve_recipients(app: &App, record: &OutboxRecord) -> Result<Vec<Recipient>, AppError> {
    if !record.recipients.is_empty() {
        return Ok(record.recipients.clone());
    }
    let contact = security_contact::load(app, &record.account_id).await?;
    let previous_contact = record
        .previous_contact
        .clone()
        .filter(|_| record.event == NotificationEvent::SecurityContactChanged);
    collect_recipients(
        app,
        &record.account_id,
        &record.user_id,
        contact.as_ref().map(security_contact::recipient),
        previous_contact,
    )
    .await
}

/// Fixes the recipients of a notification about a change of `user_id` when the change is made.
///
/// `new_contact` is the holder that a change of the Security contact stores. Any other change
/// reads the stored holder and also gets a check of it for its transaction, so that a concurrent
/// change of the holder fails the transaction instead of leaving this notification addressed to
/// a replaced holder.
pub async fn recipients_at_change(
    app: &App,
    account_id: &str,
    user_id: &str,
    previous_contact: Option<Recipient>,
    new_contact: Option<Recipient>,
) -> Result<(Vec<Recipient>, Option<Write>), AppError> {
    let (contact, check) = match new_contact {
        Some(contact) => (Some(contact), None),
        None => {
            let stored = security_contact::load(app, account_id).await?;
            let check = security_contact::unchanged_check(account_id, stored.as_ref());
            (stored.as_ref().map(security_contact::recipient), Some(check))
        }
    };
    let recipients = collect_recipients(app, account_id, user_id, contact, previous_contact).await?;
    Ok((recipients, check))
}

/// Lists each address once, in the order: Security contact (or main account user), affected user,
/// previous Security contact.
async fn collect_recipients(
    app: &App,
    account_id: &str,
    user_id: &str,
    contact: Option<Recipient>,
    previous_contact: Option<Recipient>,
) -> Result<Vec<Recipient>, AppError> {
    let mut recipients = Vec::new();
    match contact {
        Some(contact) => recipients.push(contact),
        None => {
            if let Some(main) = main_account_recipient(app, account_id).await? {
                recipients.push(main);
            }
        }
    }

    if let Some(state) = users::load(app, user_id).await? {
        if let Some(address) = state.user.email.filter(|address| !address.trim().is_empty()) {
            recipients.push(Recipient {
                email: address,
                language: state.user.language,
            });
        }
    }

    recipients.extend(previous_contact);
    let mut seen = std::collections::HashSet::new();
    recipients.retain(|recipient| seen.insert(recipient.email.trim().to_lowercase()));
    Ok(recipients)
}

/// Returns the main account user of an account as a recipient, when it has an email address.
async fn main_account_recipient(app: &App, account_id: &str) -> Result<Option<Recipient>, AppError> {
    let Some(item) = app.store.get(&CustomerAccount::key(account_id)).await? else {
        return Ok(None);
    };
    let account: CustomerAccount = from_item(item)?;
    let Some(main) = users::load(app, &account.main_user_id).await? else {
        return Ok(None);
    };
    Ok(main.user.email.map(|email| Recipient {
        email,
        language: main.user.language,
    }))
}

/// Sends the emails of one outbox record that are not yet marked as sent.
///
/// Returns an error when any send failed, after trying every recipient, so that the caller
/// retries the record. The retry skips the recipients already served.
pub async fn process_outbox_record(app: &App, record: &OutboxRecord) -> Result<(), AppError> {
    let key = OutboxRecord::key(&record.event_id);
    let Some(current) = app.store.get(&key).await? else {
        // The item expired or was deleted, so there is nowhere to keep marks. Sending now could
        // repeat emails on every retry, and the change is at least 30 days old.
        tracing::warn!(event_id = %record.event_id, "outbox record not found; no email sent");
        return Ok(());
    };

    let recipients = resolve_recipients(app, record).await?;
    if recipients.is_empty() {
        tracing::warn!(event_id = %record.event_id, account_id = %record.account_id, "no recipient has an email address; no email sent");
        return Ok(());
    }

    let mut failures = Vec::new();
    for recipient in &recipients {
        let mark = mark_attribute(&recipient.email);
        if current.contains_key(&mark) {
            continue;
        }
        let rendered = email::render(record, recipient.language, &app.config.otp_issuer);
        let message = Email {
            to: recipient.email.clone(),
            subject: rendered.subject,
            body_text: rendered.body,
        };
        match app.mailer.send(&message).await {
            Ok(()) => mark_sent(app, record, &mark).await,
            Err(error) => {
                tracing::warn!(event_id = %record.event_id, event = ?record.event, recipient = %mark, error = %error, "notification email failed");
                failures.push(error);
            }
        }
    }

    match failures.first() {
        None => Ok(()),
        Some(first) => {
            let summary = format!(
                "{} of {} notification emails failed, first: {first}",
                failures.len(),
                recipients.len()
            );
            match first {
                SendError::Temporary(_) => Err(AppError::unavailable(summary)),
                SendError::Permanent(_) => Err(AppError::Internal(summary)),
            }
        }
    }
}

/// Sends the unsent emails of the stored outbox record `event_id`, as a stream delivery would.
/// Operators use it for records whose stream batch ended on the on-failure queue.
///
/// Errors: `not_found` when no outbox record has that id (it never existed, or expired after 30
/// days), or the error of [`process_outbox_record`].
pub async fn redeliver(app: &App, event_id: &str) -> Result<(), AppError> {
    let item = app
        .store
        .get(&OutboxRecord::key(event_id))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no outbox record has the event id {event_id}")))?;
    let record: OutboxRecord = from_item(item)?;
    process_outbox_record(app, &record).await
}

/// Sets the delivery mark of a sent email. A failure here is logged and not returned: the email
/// is out, and failing the record would send it again.
async fn mark_sent(app: &App, record: &OutboxRecord, mark: &str) {
    let write = Write::Update {
        key: OutboxRecord::key(&record.event_id),
        update: Update::new().set(mark, app.now()),
        condition: Some(Condition::And(vec![
            Condition::Exists,
            Condition::attribute_not_exists(mark),
        ])),
    };
    match app.store.write(write).await {
        Ok(()) => {
            tracing::info!(event_id = %record.event_id, event = ?record.event, recipient = %mark, "notification email sent")
        }
        Err(error) if error.is_condition_failed() => {
            tracing::warn!(event_id = %record.event_id, recipient = %mark, "notification email was already marked as sent by a concurrent run; it may have been sent twice")
        }
        Err(error) => {
            tracing::error!(event_id = %record.event_id, recipient = %mark, error = %error, "notification email sent, but its mark was not stored; a retry of this record would send it again")
        }
    }
}

/// Handles a batch of DynamoDB stream records, as the notifier Lambda receives them.
///
/// Only INSERT records of outbox items are processed. The response lists the sequence numbers of
/// the records that failed, so that Lambda retries from the first of them. Records after it are
/// delivered again too, but send only the emails whose marks are missing.
pub async fn handle_stream_event(app: &App, event: Event) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in event.records {
        if record.event_name != "INSERT" || !is_outbox_image(&record.change.new_image) {
            continue;
        }
        let sequence_number = record.change.sequence_number.clone();
        let outcome = match serde_dynamo::from_item::<_, OutboxRecord>(record.change.new_image) {
            Ok(outbox) => process_outbox_record(app, &outbox).await,
            Err(error) => Err(AppError::Internal(format!("outbox record could not be read: {error}"))),
        };
        if let Err(error) = outcome {
            tracing::warn!(sequence_number = sequence_number.as_deref().unwrap_or("none"), error = %error, "stream record failed; it will be retried");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = sequence_number;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

fn is_outbox_image(image: &serde_dynamo::Item) -> bool {
    matches!(image.get(PK), Some(serde_dynamo::AttributeValue::S(pk)) if pk.starts_with(OUTBOX_PREFIX))
}

/// Processes newly created store items, such as those of
/// [`crate::store::memory::MemoryStore::subscribe_inserts`] in the local run, and returns the
/// outbox items that failed, for the caller to pass in again later. Other items are ignored.
pub async fn notify_pending(app: &App, items: &[Item]) -> Vec<Item> {
    let mut failed = Vec::new();
    for item in items {
        let is_outbox = item
            .get(PK)
            .and_then(Value::as_str)
            .is_some_and(|pk| pk.starts_with(OUTBOX_PREFIX));
        if !is_outbox {
            continue;
        }
        let outcome = match from_item::<OutboxRecord>(item.clone()) {
            Ok(record) => process_outbox_record(app, &record).await,
            Err(error) => Err(AppError::from(error)),
        };
        if let Err(error) = outcome {
            tracing::warn!(error = %error, "outbox record failed; it will be retried");
            failed.push(item.clone());
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_ignores_case_and_spaces() {
        assert_eq!(mark_attribute("Eva@Example.org"), mark_attribute(" eva@example.org "));
        assert_ne!(mark_attribute("eva@example.org"), mark_attribute("petr@example.org"));
    }

    #[test]
    fn mark_hides_the_address() {
        let mark = mark_attribute("eva@example.org");

        assert!(mark.starts_with(MARK_PREFIX));
        assert_eq!(mark.len(), MARK_PREFIX.len() + 32);
        assert!(!mark.contains("eva"));
    }
}
