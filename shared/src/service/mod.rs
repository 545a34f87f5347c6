//! The service: application state and the route handlers, one module per concern.

pub mod audit;
pub mod challenge;
pub mod change;
pub mod lockout;
pub mod login;
pub mod notifier;
pub mod otp_factor;
pub mod provisioning;
pub mod rate_limit;
pub mod security_contact;
pub mod sessions;
pub mod settings;
pub mod sms_delivery;
pub mod sms_factor;
pub mod users;

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::Keys;
use crate::phone::PhonePolicy;
use crate::ports::{Clock, Mailer, Random, SmsSender};
use crate::store::Store;

/// Everything a handler needs, built once at cold start and shared by all requests.
pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub sms: Arc<dyn SmsSender>,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub keys: Keys,
    pub phone_policy: PhonePolicy,
}

impl App {
    /// Returns the current time in Unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Returns a new random identifier: 16 bytes, base64url without padding.
    pub fn new_id(&self) -> String {
        use base64::Engine;
        let bytes: [u8; 16] = crate::ports::random_bytes(self.random.as_ref());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}
