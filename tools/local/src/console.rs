//! The SMS sender and mailer of the local run: records every message for `GET /_local/outbox` and
//! prints it on standard output.
//!
//! Printing the whole text, code included, is the point here: this is how a developer reads the
//! login code of a local run. Nothing of it goes through the log.

use std::sync::Arc;

use async_trait::async_trait;
use twofa_core::ports::{Email, Mailer, RecordingOutbox, SendError, Sms, SmsSender};

/// Records messages in a [`RecordingOutbox`] and prints them.
pub struct ConsoleOutbox {
    recorded: Arc<RecordingOutbox>,
}

impl ConsoleOutbox {
    pub fn new(recorded: Arc<RecordingOutbox>) -> Self {
        Self { recorded }
    }
}

#[async_trait]
impl SmsSender for ConsoleOutbox {
    async fn send(&self, sms: &Sms) -> Result<(), SendError> {
        SmsSender::send(self.recorded.as_ref(), sms).await?;
        println!("\n---- SMS to {} ----\n{}\n----", sms.phone_e164, sms.text);
        Ok(())
    }
}

#[async_trait]
impl Mailer for ConsoleOutbox {
    async fn send(&self, email: &Email) -> Result<(), SendError> {
        Mailer::send(self.recorded.as_ref(), email).await?;
        println!(
            "\n---- email to {} ----\nSubject: {}\n\n{}\n----",
            email.to, email.subject, email.body_text
        );
        Ok(())
    }
}
