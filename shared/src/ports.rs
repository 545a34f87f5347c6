//! Narrow ports between the domain and the outside world: clock, random source, SMS sender and mailer.
//!
//! The store port lives in [`crate::store`]. Adapters for AWS live in [`crate::aws`]; fakes for tests
//! and the local run live beside each port.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use rand::RngCore;

/// Source of the current time, in Unix seconds.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() as i64)
            .unwrap_or_default()
    }
}

/// A clock that tests set and advance by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now: i64) -> Self {
        Self(AtomicI64::new(now))
    }

    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }

    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Source of cryptographically secure random bytes.
pub trait Random: Send + Sync {
    fn fill(&self, buffer: &mut [u8]);
}

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buffer: &mut [u8]) {
        rand::rngs::OsRng.fill_bytes(buffer);
    }
}

/// Returns `N` random bytes from `random`.
pub fn random_bytes<const N: usize>(random: &dyn Random) -> [u8; N] {
    let mut bytes = [0u8; N];
    random.fill(&mut bytes);
    bytes
}

/// An SMS ready to send: an E.164 number and the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Sms {
    pub phone_e164: String,
    pub text: String,
}

impl std::fmt::Debug for Sms {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Sms { .. }")
    }
}

/// The failure of a send through SNS or SES.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A failure worth retrying later: throttling, a timeout, a 5xx.
    #[error("temporary send failure: {0}")]
    Temporary(String),
    /// A failure that a retry will not fix: an invalid number, an unverified sender identity.
    #[error("permanent send failure: {0}")]
    Permanent(String),
}

/// Sends SMS messages.
#[async_trait]
pub trait SmsSender: Send + Sync {
    async fn send(&self, sms: &Sms) -> Result<(), SendError>;
}

/// An email ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body_text: String,
}

/// Sends emails.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: &Email) -> Result<(), SendError>;
}

/// One message captured by [`RecordingOutbox`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SentMessage {
    Sms {
        to: String,
        text: String,
        sent_at: i64,
    },
    Email {
        to: String,
        subject: String,
        body: String,
        sent_at: i64,
    },
}

/// An SMS sender and mailer that records messages in memory, for tests and the local run.
#[derive(Default)]
pub struct RecordingOutbox {
    messages: Mutex<Vec<SentMessage>>,
    failing: std::sync::atomic::AtomicBool,
}

impl RecordingOutbox {
    /// Returns a copy of every message recorded so far.
    pub fn messages(&self) -> Vec<SentMessage> {
        self.messages
            .lock()
            .map(|messages| messages.clone())
            .unwrap_or_default()
    }

    /// Makes every following send fail with a temporary error, or succeed again.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn record(&self, message: SentMessage) -> Result<(), SendError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(SendError::Temporary("recording outbox set to fail".into()));
        }
        if let Ok(mut messages) = self.messages.lock() {
            messages.push(message);
        }
        Ok(())
    }
}

#[async_trait]
impl SmsSender for RecordingOutbox {
    async fn send(&self, sms: &Sms) -> Result<(), SendError> {
        self.record(SentMessage::Sms {
            to: sms.phone_e164.clone(),
            text: sms.text.clone(),
            sent_at: SystemClock.now(),
        })
    }
}

#[async_trait]
impl Mailer for RecordingOutbox {
    async fn send(&self, email: &Email) -> Result<(), SendError> {
        self.record(SentMessage::Email {
            to: email.to.clone(),
            subject: email.subject.clone(),
            body: email.body_text.clone(),
            sent_at: SystemClock.now(),
        })
    }
}
