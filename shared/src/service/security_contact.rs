//! The Security contact of a customer account: validation, reading, and the conditional write
//! that keeps one holder per account.
//!
//! The holder lives under one key per account (`ACCOUNT#<id>` / `SECURITY_CONTACT`), so there is
//! at most one by construction. A replacement is conditional on the version that was read, or on
//! the item being absent, so of two concurrent replacements exactly one commits.

use super::App;
use crate::error::AppError;
use crate::model::{Language, Recipient, SecurityContact};
use crate::store::{from_item, to_item, Condition, Write};

/// The maximum length of a Security contact's name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A validated name, email address and language of a Security contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInput {
    pub name: String,
    pub email: String,
    pub language: Language,
}

impl ContactInput {
    /// Validates a name (1 to 200 characters after trimming, no control characters) and an
    /// email address; errors name the field at fault.
    pub fn new(name: &str, email: &str, language: Language) -> Result<Self, AppError> {
        let name = name.trim();
        let name_chars = name.chars().count();
        if name_chars == 0 || name_chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(AppError::invalid_field(
                "name",
                format!("name must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        let email = email.trim();
        super::provisioning::validate_email("email", email)?;
        Ok(Self {
            name: name.to_owned(),
            email: email.to_owned(),
            language,
        })
    }

    /// Returns true when `contact` already has exactly these values.
    pub fn matches(&self, contact: &SecurityContact) -> bool {
        self.name == contact.name && self.email == contact.email && self.language == contact.language
    }
}

/// Parses the language of a request field: `cs` or `en`.
pub fn parse_language(field: &str, value: &str) -> Result<Language, AppError> {
    Language::parse(value.trim()).ok_or_else(|| AppError::invalid_field(field, format!("{field} must be cs or en")))
}

/// Reads the Security contact of an account, if one is set.
pub async fn load(app: &App, account_id: &str) -> Result<Option<SecurityContact>, AppError> {
    match app.store.get(&SecurityContact::key(account_id)).await? {
        Some(item) => Ok(Some(from_item(item)?)),
        None => Ok(None),
    }
}

/// Builds the write that replaces `previous`, the holder as read (or none), with `input`. The
/// write fails its condition when anyone changed the holder after it was read.
pub fn replace_write(
    app: &App,
    account_id: &str,
    previous: Option<&SecurityContact>,
    input: &ContactInput,
) -> Result<Write, AppError> {
    let (version, condition) = match previous {
        Some(contact) => (contact.version + 1, Condition::equals("version", contact.version)),
        None => (1, Condition::NotExists),
    };
    let contact = SecurityContact {
        name: input.name.clone(),
        email: input.email.clone(),
        language: input.language,
        version,
        updated_at: app.now(),
    };
    Ok(Write::Put {
        item: to_item(&SecurityContact::key(account_id), &contact)?,
        condition: Some(condition),
    })
}

/// Builds a check, for a transaction, that the holder is still `read`, or that there is still
/// none when `read` is `None`.
pub fn unchanged_check(account_id: &str, read: Option<&SecurityContact>) -> Write {
    let condition = match read {
        Some(contact) => Condition::And(vec![Condition::Exists, Condition::equals("version", contact.version)]),
        None => Condition::NotExists,
    };
    Write::Check {
        key: SecurityContact::key(account_id),
        condition,
    }
}

/// Returns the address and language that notifications to the holder use.
pub fn recipient(contact: &SecurityContact) -> Recipient {
    Recipient {
        email: contact.email.clone(),
        language: contact.language,
    }
}
