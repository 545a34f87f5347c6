//! Records of the domain and their keys in the single table.
//!
//! Key layout (partition key / sort key); `docs/data-model.md` lists the access patterns:
//! - `ACCOUNT#<account_id>` / `ACCOUNT`: the customer account.
//! - `ACCOUNT#<account_id>` / `USER#<user_id>`: membership, to list an account's users.
//! - `ACCOUNT#<account_id>` / `SECURITY_CONTACT`: the one Security competency holder; one key, so
//!   at most one holder per account by construction.
//! - `USERNAME#<lower-case username>` / `USERNAME`: claims a username service-wide.
//! - `USER#<user_id>` / `PROFILE`, `FACTOR#SMS`, `FACTOR#SMS#PENDING`, `FACTOR#TOTP`,
//!   `FACTOR#TOTP#PENDING`: a user and its factors, read together with one query.
//! - `CHALLENGE#<challenge_id>` / `CHALLENGE`: a pending second-factor step of one login.
//! - `SESSION#<sha256 of token>` / `SESSION`: a session; the token itself is never stored.
//! - `RATE#<scope>#<subject>` / `RATE`: a sliding-window counter.
//! - `LOGINFAIL#<keyed hash of username>` / `LOGINFAIL`: password failures of an unknown username.
//! - `AUDIT#<user_id>` / `<unix millis, 15 digits>#<random>`: audit records, newest last.
//! - `OUTBOX#<event_id>` / `OUTBOX`: a notification waiting for the notifier.

use serde::{Deserialize, Serialize};

use crate::store::Key;
use crate::totp::TotpParams;

/// Seconds in a day.
pub const DAY: i64 = 24 * 60 * 60;

/// The language of texts sent to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Cs,
    #[default]
    En,
}

impl Language {
    /// Parses `cs` or `en`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "cs" => Some(Language::Cs),
            "en" => Some(Language::En),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Cs => "cs",
            Language::En => "en",
        }
    }
}

/// A second-factor method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Sms,
    Totp,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Sms => "sms",
            Method::Totp => "totp",
        }
    }
}

/// A customer account: one organisation with one main account and any number of sub-accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerAccount {
    pub account_id: String,
    pub name: String,
    pub main_user_id: String,
    pub created_at: i64,
}

impl CustomerAccount {
    pub fn key(account_id: &str) -> Key {
        Key::new(format!("ACCOUNT#{account_id}"), "ACCOUNT")
    }
}

/// Membership of a user in a customer account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountMember {
    pub user_id: String,
    pub username: String,
    pub is_main_account: bool,
}

impl AccountMember {
    pub fn key(account_id: &str, user_id: &str) -> Key {
        Key::new(format!("ACCOUNT#{account_id}"), format!("USER#{user_id}"))
    }

    /// Returns the partition and sort-key prefix that list an account's members.
    pub fn query_prefix(account_id: &str) -> (String, &'static str) {
        (format!("ACCOUNT#{account_id}"), "USER#")
    }
}

/// The holder of the Security competency of a customer account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityContact {
    pub name: String,
    pub email: String,
    pub language: Language,
    /// Incremented by every change; a change is conditional on the version it read.
    pub version: i64,
    pub updated_at: i64,
}

impl SecurityContact {
    pub fn key(account_id: &str) -> Key {
        Key::new(format!("ACCOUNT#{account_id}"), "SECURITY_CONTACT")
    }
}

/// Claims a username across the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernameClaim {
    pub user_id: String,
}

impl UsernameClaim {
    /// Usernames compare case-insensitively.
    pub fn key(username: &str) -> Key {
        Key::new(format!("USERNAME#{}", username.to_lowercase()), "USERNAME")
    }
}

/// Attribute names of [`User`] used in conditions and updates.
pub mod user_attr {
    pub const TWO_FACTOR_ENABLED: &str = "two_factor_enabled";
    pub const LOGIN_METHOD: &str = "login_method";
    pub const SESSION_EPOCH: &str = "session_epoch";
    pub const FACTOR_FAILURES: &str = "factor_failures";
    pub const FACTOR_LOCKED_UNTIL: &str = "factor_locked_until";
    pub const PASSWORD_FAILURES: &str = "password_failures";
    pub const PASSWORD_LOCKED_UNTIL: &str = "password_locked_until";
    pub const PASSWORD_HASH: &str = "password_hash";
}

/// A user: the main account or a sub-account of a customer account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub user_id: String,
    pub username: String,
    pub account_id: String,
    pub is_main_account: bool,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub language: Language,
    /// Argon2id in PHC string form.
    pub password_hash: String,
    /// Always true for the main account.
    pub two_factor_enabled: bool,
    #[serde(default)]
    pub login_method: Option<Method>,
    /// Sessions issued under an older epoch are revoked.
    #[serde(default)]
    pub session_epoch: i64,
    /// Consecutive failed second-factor attempts.
    #[serde(default)]
    pub factor_failures: i64,
    /// Unix seconds until which second-factor login is locked; `i64::MAX` until an admin reset.
    #[serde(default)]
    pub factor_locked_until: i64,
    #[serde(default)]
    pub password_failures: i64,
    #[serde(default)]
    pub password_locked_until: i64,
    pub created_at: i64,
}

impl User {
    pub fn key(user_id: &str) -> Key {
        Key::new(Self::partition(user_id), "PROFILE")
    }

    /// Returns the partition holding the user and its factors.
    pub fn partition(user_id: &str) -> String {
        format!("USER#{user_id}")
    }
}

/// An active SMS factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsFactor {
    pub phone_e164: String,
    pub verified_at: i64,
}

impl SmsFactor {
    pub fn key(user_id: &str) -> Key {
        Key::new(User::partition(user_id), "FACTOR#SMS")
    }
}

/// A phone number added but not yet verified, with the codes sent to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSmsFactor {
    /// Identifies this pending number, so that a verification cannot activate a replaced one.
    pub pending_id: String,
    pub phone_e164: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Keyed hashes of the codes sent; each stays valid until `code_expires_at`.
    #[serde(default)]
    pub code_hashes: Vec<String>,
    #[serde(default)]
    pub code_expires_at: i64,
    #[serde(default)]
    pub last_sent_at: i64,
    #[serde(default)]
    pub attempts: i64,
}

impl PendingSmsFactor {
    pub fn key(user_id: &str) -> Key {
        Key::new(User::partition(user_id), "FACTOR#SMS#PENDING")
    }
}

/// An active OTP device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpDevice {
    pub device_id: String,
    /// The secret sealed with AES-256-GCM, bound to the user id.
    pub sealed_secret: String,
    pub params: TotpParams,
    pub activated_at: i64,
    /// The last accepted time step; a code of this step or earlier is a replay. Left out of the
    /// item while `None`, because the replay condition tests for an absent attribute, not a null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<i64>,
}

impl OtpDevice {
    pub fn key(user_id: &str) -> Key {
        Key::new(User::partition(user_id), "FACTOR#TOTP")
    }
}

/// An OTP device connected but not yet activated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOtpDevice {
    pub device_id: String,
    pub sealed_secret: String,
    pub params: TotpParams,
    pub created_at: i64,
    pub expires_at: i64,
    /// Wrong activation codes so far, counted with an atomic add.
    #[serde(default)]
    pub attempts: i64,
}

impl PendingOtpDevice {
    pub fn key(user_id: &str) -> Key {
        Key::new(User::partition(user_id), "FACTOR#TOTP#PENDING")
    }
}

/// State of a login challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeStatus {
    Open,
    Done,
}

/// Attribute names of [`Challenge`] used in conditions and updates.
pub mod challenge_attr {
    pub const STATUS: &str = "status";
    pub const ATTEMPTS: &str = "attempts";
    pub const CODE_HASHES: &str = "code_hashes";
    pub const RESENDS: &str = "resends";
    pub const LAST_SENT_AT: &str = "last_sent_at";
}

/// A pending second-factor step of one login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub challenge_id: String,
    pub user_id: String,
    pub method: Method,
    /// The E.164 number the codes go to, for an SMS challenge.
    #[serde(default)]
    pub phone_e164: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub status: ChallengeStatus,
    #[serde(default)]
    pub attempts: i64,
    /// Keyed hashes of every code sent for this challenge.
    #[serde(default)]
    pub code_hashes: Vec<String>,
    #[serde(default)]
    pub resends: i64,
    #[serde(default)]
    pub last_sent_at: i64,
    /// The client address of the password step.
    #[serde(default)]
    pub source_ip: String,
}

impl Challenge {
    pub fn key(challenge_id: &str) -> Key {
        Key::new(format!("CHALLENGE#{challenge_id}"), "CHALLENGE")
    }
}

/// The kind of a session, which decides the routes it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// After a complete login.
    Full,
    /// For a user whose 2FA is on but who has no active factor: only the enrollment routes.
    Enrollment,
}

/// A session, stored under the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: String,
    pub kind: SessionKind,
    /// When the login that created this session completed; decides freshness.
    pub authenticated_at: i64,
    pub expires_at: i64,
    /// The user's session epoch when issued.
    pub epoch: i64,
}

impl Session {
    pub fn key(token_hash: &str) -> Key {
        Key::new(format!("SESSION#{token_hash}"), "SESSION")
    }
}

/// An audit record of a login attempt or a 2FA change, kept for 400 days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub user_id: String,
    /// The event, such as `login_password`, `login_sms`, `otp_device_activated`.
    pub event: String,
    /// `success`, `failure` or a reason such as `locked`.
    pub outcome: String,
    #[serde(default)]
    pub method: Option<Method>,
    pub source_ip: String,
    /// Extra facts that are safe to keep, such as a masked phone number.
    #[serde(default)]
    pub detail: Option<String>,
    pub at: i64,
    pub expires_at: i64,
}

impl AuditRecord {
    /// Days an audit record is kept.
    pub const RETENTION_DAYS: i64 = 400;

    pub fn partition(user_id: &str) -> String {
        format!("AUDIT#{user_id}")
    }

    /// Builds the key from the time in milliseconds and a random suffix, so keys sort by time.
    pub fn key(user_id: &str, at_millis: i64, suffix: &str) -> Key {
        Key::new(Self::partition(user_id), format!("{at_millis:015}#{suffix}"))
    }
}

/// A change that the notifier reports by email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationEvent {
    SmsNumberAdded,
    SmsNumberChanged,
    SmsNumberVerified,
    SmsNumberDeleted,
    OtpDeviceActivated,
    OtpDeviceDisabled,
    LoginMethodChanged,
    TwoFactorDisabled,
    TwoFactorEnabled,
    SecurityContactChanged,
    AdminReset,
}

/// An email address with the language its texts are written in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub email: String,
    pub language: Language,
}

/// A notification waiting for the notifier, written in the same transaction as its change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub event_id: String,
    pub event: NotificationEvent,
    pub account_id: String,
    pub user_id: String,
    pub username: String,
    pub occurred_at: i64,
    pub source_ip: String,
    /// Safe facts about the change: a masked phone number, the new login method.
    #[serde(default)]
    pub detail: Option<String>,
    /// For a change of the Security contact: the previous holder, who is notified as well.
    #[serde(default)]
    pub previous_contact: Option<Recipient>,
    /// Recipients of the email, fixed when the change was made. Empty in records written before
    /// recipients were stored, whose recipients the notifier resolves when it sends.
    #[serde(default)]
    pub recipients: Vec<Recipient>,
    pub expires_at: i64,
}

impl OutboxRecord {
    /// Days an outbox record is kept after its change, for retries and inspection.
    pub const RETENTION_DAYS: i64 = 30;

    pub fn key(event_id: &str) -> Key {
        Key::new(format!("OUTBOX#{event_id}"), "OUTBOX")
    }
}
