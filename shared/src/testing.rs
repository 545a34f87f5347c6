//! A ready-made [`App`] on the in-memory store, a manual clock and a recording outbox, for tests
//! of this crate, of the functions and of the tools.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, KeySource};
use crate::crypto::Keys;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::Language;
use crate::phone::PhonePolicy;
use crate::ports::{ManualClock, OsRandom, RecordingOutbox, SentMessage};
use crate::secret::SecretString;
use crate::service::provisioning::{self, NewUser};
use crate::service::App;
use crate::store::memory::MemoryStore;

/// A Unix time used as "now" when a test starts: 2026-01-01T00:00:00Z.
pub const TEST_START: i64 = 1_767_225_600;

/// An [`App`] with handles to its fakes.
pub struct TestApp {
    pub app: App,
    pub clock: Arc<ManualClock>,
    pub store: Arc<MemoryStore>,
    pub outbox: Arc<RecordingOutbox>,
}

/// Returns a configuration suitable for tests and the local run.
pub fn test_config(keys_json: String) -> Config {
    Config {
        table_name: "twofa-test".into(),
        otp_issuer: "Example Hosting".into(),
        email_from: "security@example.com".into(),
        sms_sender_id: Some("Example".into()),
        sms_allowed_countries: "CZ,SK".into(),
        phone_default_region: "CZ".into(),
        keys: KeySource::Inline(keys_json),
    }
}

impl TestApp {
    /// Builds an app on fresh fakes with the clock at [`TEST_START`].
    pub fn new() -> Self {
        let clock = Arc::new(ManualClock::new(TEST_START));
        let store = Arc::new(MemoryStore::new(clock.clone()));
        let outbox = Arc::new(RecordingOutbox::default());
        let random = Arc::new(OsRandom);
        let keys_json = Keys::generate_for_local(random.as_ref()).expose().to_owned();
        let keys = Keys::from_secret_json(&keys_json)
            .unwrap_or_else(|error| unreachable!("generated keys are valid: {error}"));
        let config = test_config(keys_json);
        let phone_policy = PhonePolicy::new(&config.phone_default_region, &config.sms_allowed_countries)
            .unwrap_or_else(|error| unreachable!("test phone policy is valid: {error}"));
        let app = App {
            config,
            store: store.clone(),
            sms: outbox.clone(),
            mailer: outbox.clone(),
            clock: clock.clone(),
            random,
            keys,
            phone_policy,
        };
        Self {
            app,
            clock,
            store,
            outbox,
        }
    }

    /// Creates a customer account with a main user `username` and returns (account id, user id).
    pub async fn create_main_user(&self, username: &str, password: &str) -> (String, String) {
        let new_user = new_user(username, password, false);
        let (account, user) = provisioning::create_customer_account(&self.app, "Test account", &new_user)
            .await
            .unwrap_or_else(|error| unreachable!("creating {username} failed: {error}"));
        (account.account_id, user.user_id)
    }

    /// Creates a sub-account and returns its user id.
    pub async fn create_sub_user(
        &self,
        account_id: &str,
        username: &str,
        password: &str,
        two_factor_enabled: bool,
    ) -> String {
        let new_user = new_user(username, password, two_factor_enabled);
        provisioning::create_sub_account(&self.app, account_id, &new_user)
            .await
            .map(|user| user.user_id)
            .unwrap_or_else(|error| unreachable!("creating {username} failed: {error}"))
    }

    /// Sends a request through the same dispatch as Lambda and the local API.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> ApiResponse {
        let mut headers = HashMap::new();
        headers.insert("content-type".to_owned(), "application/json".to_owned());
        if let Some(token) = token {
            headers.insert("authorization".to_owned(), format!("Bearer {token}"));
        }
        let request = ApiRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            headers,
            body: body.as_bytes().to_vec(),
            source_ip: "198.51.100.7".to_owned(),
            request_id: "test-request".to_owned(),
        };
        crate::api::handle(&self.app, request, None).await
    }

    /// Returns the SMS texts sent to an E.164 number, oldest first.
    pub fn sms_texts_to(&self, phone_e164: &str) -> Vec<String> {
        self.outbox
            .messages()
            .into_iter()
            .filter_map(|message| match message {
                SentMessage::Sms { to, text, .. } if to == phone_e164 => Some(text),
                _ => None,
            })
            .collect()
    }
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}

fn new_user(username: &str, password: &str, two_factor_enabled: bool) -> NewUser {
    NewUser {
        username: username.to_owned(),
        password: SecretString::new(password.to_owned()),
        email: Some(format!("{username}@example.com")),
        language: Language::En,
        two_factor_enabled,
    }
}

/// Returns the first run of six ASCII digits in a text, such as the code in an SMS.
pub fn find_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(5)).find_map(|start| {
        let window = &bytes[start..start + 6];
        let before_is_digit = start > 0 && bytes[start - 1].is_ascii_digit();
        let after_is_digit = bytes.get(start + 6).is_some_and(u8::is_ascii_digit);
        (window.iter().all(u8::is_ascii_digit) && !before_is_digit && !after_is_digit)
            .then(|| String::from_utf8_lossy(window).into_owned())
    })
}
