//! Committing a 2FA change: the change itself, the revocation of the user's other sessions, an
//! audit record and a notification outbox record with its recipients, all in one transaction.
//!
//! Revocation bumps the user's session epoch with a condition on the epoch that was read, so two
//! concurrent changes of one user cannot both commit on the same state: the loser gets 409.

use super::audit::{self, AuditEntry};
use super::sessions::{self, Authenticated, IssuedSession};
use super::{notifier, App};
use crate::error::AppError;
use crate::model::{user_attr, Method, NotificationEvent, OutboxRecord, Recipient, SessionKind, User, DAY};
use crate::store::{to_item, Condition, StoreError, Update, Write};

/// The failure of a change to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// The condition of the change's own write at this index failed, so the caller can explain it.
    WriteCondition(usize),
    App(AppError),
}

impl From<AppError> for ChangeError {
    fn from(error: AppError) -> Self {
        ChangeError::App(error)
    }
}

impl ChangeError {
    /// Maps the error to an [`AppError`], describing a failed own write with `on_condition`.
    pub fn into_app_error(self, on_condition: impl FnOnce(usize) -> AppError) -> AppError {
        match self {
            ChangeError::WriteCondition(index) => on_condition(index),
            ChangeError::App(error) => error,
        }
    }
}

/// The notification requested for a change.
struct Notification {
    event: NotificationEvent,
    detail: Option<String>,
    previous_contact: Option<Recipient>,
    new_contact: Option<Recipient>,
}

/// A 2FA change of one user, built up and then committed.
pub struct Change<'a> {
    app: &'a App,
    auth: &'a Authenticated,
    source_ip: &'a str,
    writes: Vec<Write>,
    notification: Option<Notification>,
    audit_event: &'static str,
    audit_method: Option<Method>,
    new_session: Option<SessionKind>,
    user_update: Update,
}

impl<'a> Change<'a> {
    /// Starts a change made by the user of `auth`, recorded in the audit log as `audit_event`.
    pub fn new(app: &'a App, auth: &'a Authenticated, source_ip: &'a str, audit_event: &'static str) -> Self {
        Self {
            app,
            auth,
            source_ip,
            writes: Vec::new(),
            notification: None,
            audit_event,
            audit_method: None,
            new_session: None,
            user_update: Update::new(),
        }
    }

    /// Adds a write of the change itself.
    pub fn write(mut self, write: Write) -> Self {
        self.writes.push(write);
        self
    }

    /// Changes attributes of the user item, such as the login method. The changes join the
    /// session-epoch update, because a transaction can write each item only once.
    pub fn user_update(mut self, update: Update) -> Self {
        self.user_update.set.extend(update.set);
        self.user_update.add.extend(update.add);
        self.user_update.append.extend(update.append);
        self.user_update.remove.extend(update.remove);
        self
    }

    /// Records the factor the change concerns in the audit record.
    pub fn method(mut self, method: Method) -> Self {
        self.audit_method = Some(method);
        self
    }

    /// Notifies the Security contact (and the user) of the change, with safe details.
    pub fn notify(mut self, event: NotificationEvent, detail: Option<String>) -> Self {
        self.notification = Some(Notification {
            event,
            detail,
            previous_contact: None,
            new_contact: None,
        });
        self
    }

    /// Notifies a change of the Security contact to `new`, telling the previous holder too.
    pub fn notify_contact_change(mut self, previous: Option<Recipient>, new: Recipient) -> Self {
        self.notification = Some(Notification {
            event: NotificationEvent::SecurityContactChanged,
            detail: None,
            previous_contact: previous,
            new_contact: Some(new),
        });
        self
    }

    /// Replaces the caller's session with a new one of `kind` in the same transaction.
    pub fn issue_session(mut self, kind: SessionKind) -> Self {
        self.new_session = Some(kind);
        self
    }

    /// Commits the change and returns the new session if one was requested.
    pub async fn commit(self) -> Result<Option<IssuedSession>, ChangeError> {
        let app = self.app;
        let user = &self.auth.state.user;
        let old_epoch = user.session_epoch;
        let new_epoch = old_epoch + 1;
        let own_writes = self.writes.len();
        let mut writes = self.writes;

        writes.push(Write::Update {
            key: User::key(&user.user_id),
            update: self.user_update.set(user_attr::SESSION_EPOCH, new_epoch),
            condition: Some(Condition::And(vec![
                Condition::Exists,
                Condition::equals(user_attr::SESSION_EPOCH, old_epoch),
            ])),
        });

        let session_key = crate::model::Session::key(&self.auth.token_hash);
        let issued = match self.new_session {
            Some(kind) => {
                let issued = sessions::issue(app, &user.user_id, kind, new_epoch)?;
                writes.push(Write::Delete {
                    key: session_key,
                    condition: None,
                });
                writes.push(issued.write.clone());
                Some(issued)
            }
            None => {
                let keep_current = Update::new().set("epoch", new_epoch);
                writes.push(Write::Update {
                    key: session_key,
                    update: keep_current,
                    condition: Some(Condition::Exists),
                });
                None
            }
        };

        let entry = AuditEntry {
            event: self.audit_event,
            outcome: "success",
            method: self.audit_method,
            source_ip: self.source_ip,
            detail: self
                .notification
                .as_ref()
                .and_then(|notification| notification.detail.as_deref()),
        };
        writes.push(audit::record(app, &user.user_id, entry)?);

        if let Some(notification) = self.notification {
            writes.extend(
                outbox_writes(
                    app,
                    user,
                    notification.event,
                    self.source_ip,
                    notification.detail,
                    notification.previous_contact,
                    notification.new_contact,
                )
                .await?,
            );
        }

        match app.store.transact(writes).await {
            Ok(()) => Ok(issued),
            Err(StoreError::ConditionFailed { index: Some(index) }) if index < own_writes => {
                Err(ChangeError::WriteCondition(index))
            }
            Err(StoreError::ConditionFailed { .. }) | Err(StoreError::TransactionConflict) => Err(ChangeError::App(
                AppError::Conflict("the security settings changed at the same time; reload them and retry".into()),
            )),
            Err(error) => Err(ChangeError::App(error.into())),
        }
    }
}

/// Builds the writes of the notification about a change of `user`. The first is the outbox record,
/// with its recipients fixed now. A change other than one of the Security contact also gets a
/// check that the contact read for it is still in place. `new_contact` is the holder that a
/// contact change stores.
pub async fn outbox_writes(
    app: &App,
    user: &User,
    event: NotificationEvent,
    source_ip: &str,
    detail: Option<String>,
    previous_contact: Option<Recipient>,
    new_contact: Option<Recipient>,
) -> Result<Vec<Write>, AppError> {
    let (recipients, contact_check) = notifier::recipients_at_change(
        app,
        &user.account_id,
        &user.user_id,
        previous_contact.clone(),
        new_contact,
    )
    .await?;
    let now = app.now();
    let event_id = app.new_id();
    let record = OutboxRecord {
        event_id: event_id.clone(),
        event,
        account_id: user.account_id.clone(),
        user_id: user.user_id.clone(),
        username: user.username.clone(),
        occurred_at: now,
        source_ip: source_ip.to_owned(),
        detail,
        previous_contact,
        recipients,
        expires_at: now + OutboxRecord::RETENTION_DAYS * DAY,
    };
    let mut writes = vec![Write::Put {
        item: to_item(&OutboxRecord::key(&event_id), &record)?,
        condition: Some(Condition::NotExists),
    }];
    writes.extend(contact_check);
    Ok(writes)
}
