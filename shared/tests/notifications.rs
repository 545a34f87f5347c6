//! Notification emails of every notifying change, triggered through the routes and delivered by
//! the notifier from the store's INSERT feed, as the local run does.
//!
//! Two customer accounts exist in every test, so that each test also proves that no email reaches
//! the other account's Security contact or main account.

use serde_json::Value;
use tokio::sync::broadcast::Receiver;
use twofa_core::http::ApiResponse;
use twofa_core::model::{Language, Method, NotificationEvent, OutboxRecord, SessionKind};
use twofa_core::ports::SentMessage;
use twofa_core::secret::SecretBytes;
use twofa_core::service::{audit, notifier, provisioning, sessions, users};
use twofa_core::store::{from_item, Item};
use twofa_core::testing::{find_code, TestApp};
use twofa_core::totp::{self, TotpParams};

const PASSWORD: &str = "correct horse battery staple";
const PHONE: &str = "+420603123456";
const OTHER_PHONE: &str = "+420777987654";
const CONTACT_A: &str = "security-a@example.org";
const CONTACT_B: &str = "security-b@example.org";
const MAIN_A: &str = "alice@example.com";
const MAIN_B: &str = "bob@example.com";
const SUB_A: &str = "carol@example.com";
const CAROL_SECRET: &[u8] = b"12345678901234567890";

/// One email as the recording outbox captured it.
#[derive(Debug, Clone)]
struct Sent {
    to: String,
    subject: String,
    body: String,
}

fn emails(test: &TestApp) -> Vec<Sent> {
    test.outbox
        .messages()
        .into_iter()
        .filter_map(|message| match message {
            SentMessage::Email { to, subject, body, .. } => Some(Sent { to, subject, body }),
            SentMessage::Sms { .. } => None,
        })
        .collect()
}

/// Issues a full session for a user whose login completed now and returns its token.
async fn login(test: &TestApp, user_id: &str) -> String {
    let state = users::load(&test.app, user_id).await.unwrap().unwrap();
    let issued = sessions::issue(&test.app, user_id, SessionKind::Full, state.user.session_epoch).unwrap();
    test.app.store.write(issued.write.clone()).await.unwrap();
    issued.token.expose().to_owned()
}

fn outbox_records(items: &[Item]) -> Vec<OutboxRecord> {
    items
        .iter()
        .filter(|item| item["pk"].as_str().unwrap().starts_with("OUTBOX#"))
        .map(|item| from_item(item.clone()).unwrap())
        .collect()
}

/// Checks that an email carries none of `secrets` and no full phone number of the tests.
fn assert_no_secret(email: &Sent, secrets: &[String]) {
    let text = format!("{}\n{}", email.subject, email.body);
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "email to {} contains {secret}: {text}",
            email.to
        );
    }
    for phone in [PHONE, OTHER_PHONE] {
        let national = &phone[4..];
        assert!(
            !text.contains(national),
            "email to {} contains a full number: {text}",
            email.to
        );
    }
}

/// Two customer accounts: A (main `alice`, sub-account `carol` with 2FA on and an OTP app) and B
/// (main `bob`), each with a Security contact, and a feed of the items the store creates.
struct World {
    test: TestApp,
    inserts: Receiver<Item>,
    account_a: String,
    carol: String,
    alice_token: String,
    carol_token: String,
    /// Emails already returned by [`World::new_emails`].
    seen: usize,
    /// Texts that no email may contain: codes and secrets seen during the test.
    secrets: Vec<String>,
}

impl World {
    async fn new() -> Self {
        let test = TestApp::new();
        let (account_a, alice) = test.create_main_user("alice", PASSWORD).await;
        let carol = test.create_sub_user(&account_a, "carol", PASSWORD, true).await;
        let (account_b, _) = test.create_main_user("bob", PASSWORD).await;
        provisioning::set_security_contact(&test.app, &account_a, "Security A", CONTACT_A, Language::Cs)
            .await
            .unwrap();
        provisioning::set_security_contact(&test.app, &account_b, "Security B", CONTACT_B, Language::En)
            .await
            .unwrap();
        provisioning::add_active_totp(&test.app, &carol, &SecretBytes::new(CAROL_SECRET.to_vec()), true)
            .await
            .unwrap();
        let alice_token = login(&test, &alice).await;
        let carol_token = login(&test, &carol).await;
        let inserts = test.store.subscribe_inserts();
        let secrets = vec![
            totp::format_backup_key(&SecretBytes::new(CAROL_SECRET.to_vec())),
            alice_token.clone(),
            carol_token.clone(),
        ];
        Self {
            test,
            inserts,
            account_a,
            carol,
            alice_token,
            carol_token,
            seen: 0,
            secrets,
        }
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: &str) -> ApiResponse {
        let response = self.test.call(method, path, Some(token), body).await;
        assert_eq!(response.status, 200, "{method} {path}: {}", response.body);
        response
    }

    /// Returns the items the store created since the last call.
    fn take_inserts(&mut self) -> Vec<Item> {
        let mut items = Vec::new();
        while let Ok(item) = self.inserts.try_recv() {
            items.push(item);
        }
        items
    }

    /// Returns the emails recorded since the last call.
    fn new_emails(&mut self) -> Vec<Sent> {
        let all = emails(&self.test);
        let new = all[self.seen..].to_vec();
        self.seen = all.len();
        new
    }

    /// Delivers the outbox record of one change and checks that exactly `expected` got one email
    /// each, in the expected language, and that no email carries a secret or a full number.
    async fn assert_notified(&mut self, event: NotificationEvent, expected: &[(&str, Language)]) -> Vec<Sent> {
        let items = self.take_inserts();
        let events: Vec<NotificationEvent> = outbox_records(&items).iter().map(|record| record.event).collect();
        assert_eq!(events, [event]);

        let failed = notifier::notify_pending(&self.test.app, &items).await;
        assert!(failed.is_empty(), "{event:?}: {} outbox records failed", failed.len());
        let sent = self.new_emails();

        let mut recipients: Vec<&str> = sent.iter().map(|email| email.to.as_str()).collect();
        recipients.sort_unstable();
        let mut wanted: Vec<&str> = expected.iter().map(|(address, _)| *address).collect();
        wanted.sort_unstable();
        assert_eq!(recipients, wanted, "{event:?}");

        for (address, language) in expected {
            let email = sent.iter().find(|email| email.to == *address).unwrap();
            let marker = match language {
                Language::Cs => "Uživatel: ",
                Language::En => "User: ",
            };
            assert!(email.body.contains(marker), "{event:?} to {address}: {}", email.body);
            assert!(email.body.contains("2026-01-01 00:0"), "{event:?}: {}", email.body);
            assert!(
                email.body.contains("198.51.100.7") || email.body.contains("administr"),
                "{event:?}: {}",
                email.body
            );
        }
        for email in &sent {
            assert_no_secret(email, &self.secrets);
        }

        // A second run of the same records sends nothing more.
        let failed = notifier::notify_pending(&self.test.app, &items).await;
        assert!(failed.is_empty());
        assert!(self.new_emails().is_empty(), "{event:?} was sent twice");
        sent
    }

    /// Returns the recipients of a change of carol's: account A's contact (Czech) and carol (English).
    fn carol_recipients() -> [(&'static str, Language); 2] {
        [(CONTACT_A, Language::Cs), (SUB_A, Language::En)]
    }

    /// Adds `phone` as carol's pending number and returns the code sent to it.
    async fn add_number(&mut self, phone: &str) -> String {
        let body = format!(r#"{{"phone": "{phone}"}}"#);
        self.call("PUT", "/security/sms/number", &self.carol_token, &body).await;
        let texts = self.test.sms_texts_to(phone);
        let code = find_code(texts.last().unwrap()).unwrap();
        self.secrets.push(code.clone());
        code
    }

    async fn verify_number(&mut self, code: &str) {
        let body = format!(r#"{{"code": "{code}"}}"#);
        self.call("POST", "/security/sms/number/verify", &self.carol_token, &body)
            .await;
    }
}

#[tokio::test]
async fn sms_number_added() {
    let mut world = World::new().await;

    world.add_number(PHONE).await;

    let sent = world
        .assert_notified(NotificationEvent::SmsNumberAdded, &World::carol_recipients())
        .await;
    let masked = twofa_core::phone::mask_e164(PHONE);
    assert!(sent.iter().all(|email| email.body.contains(&masked)), "{sent:?}");
}

#[tokio::test]
async fn sms_number_verified() {
    let mut world = World::new().await;
    let code = world.add_number(PHONE).await;
    world.take_inserts();

    world.verify_number(&code).await;

    world
        .assert_notified(NotificationEvent::SmsNumberVerified, &World::carol_recipients())
        .await;
}

#[tokio::test]
async fn sms_number_changed() {
    let mut world = World::new().await;
    let code = world.add_number(PHONE).await;
    world.verify_number(&code).await;
    world.take_inserts();

    world.add_number(OTHER_PHONE).await;

    let sent = world
        .assert_notified(NotificationEvent::SmsNumberChanged, &World::carol_recipients())
        .await;
    let masked = twofa_core::phone::mask_e164(OTHER_PHONE);
    assert!(sent.iter().all(|email| email.body.contains(&masked)), "{sent:?}");
}

#[tokio::test]
async fn sms_number_deleted() {
    let mut world = World::new().await;
    let code = world.add_number(PHONE).await;
    world.verify_number(&code).await;
    world.take_inserts();

    world
        .call("DELETE", "/security/sms/number", &world.carol_token, "")
        .await;

    world
        .assert_notified(NotificationEvent::SmsNumberDeleted, &World::carol_recipients())
        .await;
}

#[tokio::test]
async fn otp_device_activated() {
    let mut world = World::new().await;
    let response = world.call("POST", "/security/otp/device", &world.carol_token, "").await;
    let body: Value = serde_json::from_str(&response.body).unwrap();
    let backup_key = body["backup_key"].as_str().unwrap().to_owned();
    world.secrets.push(backup_key.clone());
    world
        .secrets
        .push(body["backup_key_grouped"].as_str().unwrap().to_owned());
    world.take_inserts();
    let secret = totp::parse_backup_key(&backup_key).unwrap();
    let step = u64::try_from(world.test.app.now() / 30).unwrap();
    let code = totp::generate_code(&secret, &TotpParams::issued(), step);
    world.secrets.push(code.clone());

    world
        .call(
            "POST",
            "/security/otp/device/verify",
            &world.carol_token,
            &format!(r#"{{"code": "{code}"}}"#),
        )
        .await;

    world
        .assert_notified(NotificationEvent::OtpDeviceActivated, &World::carol_recipients())
        .await;
}

#[tokio::test]
async fn otp_device_disabled() {
    let mut world = World::new().await;
    let code = world.add_number(PHONE).await;
    world.verify_number(&code).await;
    world.take_inserts();

    world
        .call("DELETE", "/security/otp/device", &world.carol_token, "")
        .await;

    world
        .assert_notified(NotificationEvent::OtpDeviceDisabled, &World::carol_recipients())
        .await;
}

#[tokio::test]
async fn login_method_changed() {
    let mut world = World::new().await;
    let code = world.add_number(PHONE).await;
    world.verify_number(&code).await;
    world.take_inserts();

    world
        .call("PUT", "/security/method", &world.carol_token, r#"{"method": "sms"}"#)
        .await;

    let sent = world
        .assert_notified(NotificationEvent::LoginMethodChanged, &World::carol_recipients())
        .await;
    let to_carol = sent.iter().find(|email| email.to == SUB_A).unwrap();
    assert!(
        to_carol.body.contains("New login method: code by SMS"),
        "{}",
        to_carol.body
    );
}

#[tokio::test]
async fn two_factor_disabled_then_enabled() {
    let mut world = World::new().await;

    world
        .call(
            "PUT",
            "/security/two-factor",
            &world.carol_token,
            r#"{"enabled": false}"#,
        )
        .await;
    world
        .assert_notified(NotificationEvent::TwoFactorDisabled, &World::carol_recipients())
        .await;

    world
        .call(
            "PUT",
            "/security/two-factor",
            &world.carol_token,
            r#"{"enabled": true}"#,
        )
        .await;
    world
        .assert_notified(NotificationEvent::TwoFactorEnabled, &World::carol_recipients())
        .await;
}

#[tokio::test]
async fn security_contact_changed() {
    let mut world = World::new().await;
    let body = r#"{"name": "New Security", "email": "new-security@example.org", "language": "en"}"#;

    world
        .call("PUT", "/account/security-contact", &world.alice_token, body)
        .await;

    let expected = [
        ("new-security@example.org", Language::En),
        (MAIN_A, Language::En),
        (CONTACT_A, Language::Cs),
    ];
    world
        .assert_notified(NotificationEvent::SecurityContactChanged, &expected)
        .await;
}

#[tokio::test]
async fn admin_reset() {
    let mut world = World::new().await;

    provisioning::reset_two_factor(&world.test.app, "carol").await.unwrap();

    let sent = world
        .assert_notified(NotificationEvent::AdminReset, &World::carol_recipients())
        .await;
    assert!(
        sent.iter()
            .any(|email| email.body.contains("Made by: an administrator")),
        "{sent:?}"
    );
}

#[tokio::test]
async fn admin_sms_notifies_and_revokes() {
    let mut world = World::new().await;

    provisioning::admin_add_sms(&world.test.app, "carol", OTHER_PHONE)
        .await
        .unwrap();

    let sent = world
        .assert_notified(NotificationEvent::SmsNumberVerified, &World::carol_recipients())
        .await;
    assert!(sent.iter().all(|email| email.body.contains("administr")), "{sent:?}");
    assert_revoked_and_audited(&world, "admin_sms_added").await;
}

#[tokio::test]
async fn admin_otp_device_notifies_and_revokes() {
    let mut world = World::new().await;

    let (_, method) = provisioning::admin_add_totp(&world.test.app, "carol", &SecretBytes::new(vec![7; 20]))
        .await
        .unwrap();

    assert_eq!(method, Method::Totp);
    world
        .assert_notified(NotificationEvent::OtpDeviceActivated, &World::carol_recipients())
        .await;
    assert_revoked_and_audited(&world, "admin_otp_device_added").await;
}

/// Checks that an admin change ended carol's session and left the audit record `event`.
async fn assert_revoked_and_audited(world: &World, event: &str) {
    let after = world.test.call("GET", "/security", Some(&world.carol_token), "").await;
    assert_eq!(
        after.status, 401,
        "the admin change ends carol's sessions: {}",
        after.body
    );

    let records = audit::list(&world.test.app, &world.carol, 10).await.unwrap();
    assert!(records.iter().any(|record| record.event == event), "{records:?}");
}

#[tokio::test]
async fn later_contact_change_keeps_earlier_recipients() {
    let mut world = World::new().await;
    provisioning::reset_two_factor(&world.test.app, "carol").await.unwrap();
    let reset_items = world.take_inserts();
    provisioning::set_security_contact(
        &world.test.app,
        &world.account_a,
        "New Security",
        "new-security@example.org",
        Language::En,
    )
    .await
    .unwrap();

    // The reset is delivered only now, after the contact changed: it still goes to the contact
    // that was in place when it happened.
    let failed = notifier::notify_pending(&world.test.app, &reset_items).await;

    assert!(failed.is_empty());
    let mut recipients: Vec<String> = world.new_emails().into_iter().map(|email| email.to).collect();
    recipients.sort_unstable();
    assert_eq!(recipients, [SUB_A, CONTACT_A]);
}

#[tokio::test]
async fn account_without_contact_notifies_main_account() {
    let test = TestApp::new();
    let (account_id, alice) = test.create_main_user("alice", PASSWORD).await;
    let carol = test.create_sub_user(&account_id, "carol", PASSWORD, false).await;
    let (_, _) = test.create_main_user("bob", PASSWORD).await;
    let mut inserts = test.store.subscribe_inserts();
    let token = login(&test, &carol).await;

    let response = test
        .call("PUT", "/security/two-factor", Some(&token), r#"{"enabled": true}"#)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let mut items = Vec::new();
    while let Ok(item) = inserts.try_recv() {
        items.push(item);
    }
    assert!(notifier::notify_pending(&test.app, &items).await.is_empty());

    let mut recipients: Vec<String> = emails(&test).into_iter().map(|email| email.to).collect();
    recipients.sort_unstable();
    assert_eq!(recipients, [MAIN_A, SUB_A]);
    let _ = alice;
}

#[tokio::test]
async fn main_account_change_is_one_email_when_contact_is_main() {
    let test = TestApp::new();
    let (account_id, alice) = test.create_main_user("alice", PASSWORD).await;
    provisioning::set_security_contact(&test.app, &account_id, "Alice", "ALICE@example.com", Language::En)
        .await
        .unwrap();
    provisioning::add_active_totp(&test.app, &alice, &SecretBytes::new(CAROL_SECRET.to_vec()), true)
        .await
        .unwrap();
    let mut inserts = test.store.subscribe_inserts();

    provisioning::reset_two_factor(&test.app, "alice").await.unwrap();
    let mut items = Vec::new();
    while let Ok(item) = inserts.try_recv() {
        items.push(item);
    }
    assert!(notifier::notify_pending(&test.app, &items).await.is_empty());

    let recipients: Vec<String> = emails(&test).into_iter().map(|email| email.to).collect();
    assert_eq!(recipients, ["ALICE@example.com"], "one person, one email");
}

#[tokio::test]
async fn failing_mailer_delivers_once_after_recovery() {
    let mut world = World::new().await;
    world.test.outbox.set_failing(true);

    world
        .call(
            "PUT",
            "/security/two-factor",
            &world.carol_token,
            r#"{"enabled": false}"#,
        )
        .await;
    let items = world.take_inserts();
    let records = outbox_records(&items);
    assert_eq!(records.len(), 1);

    // The change is committed although no email could be sent.
    let state = users::load(&world.test.app, &world.carol).await.unwrap().unwrap();
    assert!(!state.user.two_factor_enabled);
    let failed = notifier::notify_pending(&world.test.app, &items).await;
    assert_eq!(failed.len(), 1, "the failed record is handed back for a retry");
    assert!(notifier::process_outbox_record(&world.test.app, &records[0])
        .await
        .is_err());
    assert!(world.new_emails().is_empty());

    world.test.outbox.set_failing(false);
    assert!(notifier::notify_pending(&world.test.app, &failed).await.is_empty());
    notifier::process_outbox_record(&world.test.app, &records[0])
        .await
        .unwrap();
    notifier::process_outbox_record(&world.test.app, &records[0])
        .await
        .unwrap();

    let mut recipients: Vec<String> = world.new_emails().into_iter().map(|email| email.to).collect();
    recipients.sort_unstable();
    assert_eq!(recipients, [SUB_A, CONTACT_A], "each recipient exactly once");
}

/// A mailer that fails for one address and records the rest, to show that one bad recipient
/// neither blocks nor repeats the others.
struct PartlyFailingMailer {
    failing_address: String,
    inner: std::sync::Arc<twofa_core::ports::RecordingOutbox>,
    is_failing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl twofa_core::ports::Mailer for PartlyFailingMailer {
    async fn send(&self, email: &twofa_core::ports::Email) -> Result<(), twofa_core::ports::SendError> {
        if email.to == self.failing_address && self.is_failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(twofa_core::ports::SendError::Permanent("MessageRejected".into()));
        }
        twofa_core::ports::Mailer::send(self.inner.as_ref(), email).await
    }
}

#[tokio::test]
async fn one_failing_recipient_is_retried_alone() {
    let mut world = World::new().await;
    let mailer = std::sync::Arc::new(PartlyFailingMailer {
        failing_address: SUB_A.into(),
        inner: world.test.outbox.clone(),
        is_failing: std::sync::atomic::AtomicBool::new(true),
    });
    world.test.app.mailer = mailer.clone();

    world
        .call(
            "PUT",
            "/security/two-factor",
            &world.carol_token,
            r#"{"enabled": false}"#,
        )
        .await;
    let items = world.take_inserts();
    let failed = notifier::notify_pending(&world.test.app, &items).await;
    assert_eq!(failed.len(), 1);
    let first: Vec<String> = world.new_emails().into_iter().map(|email| email.to).collect();
    assert_eq!(first, [CONTACT_A]);

    mailer.is_failing.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(notifier::notify_pending(&world.test.app, &failed).await.is_empty());
    let second: Vec<String> = world.new_emails().into_iter().map(|email| email.to).collect();
    assert_eq!(second, [SUB_A], "only the failed recipient is sent again");
}

#[tokio::test]
async fn stream_event_reports_failed_records() {
    let mut world = World::new().await;
    world
        .call(
            "PUT",
            "/security/two-factor",
            &world.carol_token,
            r#"{"enabled": false}"#,
        )
        .await;
    let items = world.take_inserts();
    let outbox_item = items
        .iter()
        .find(|item| item["pk"].as_str().unwrap().starts_with("OUTBOX#"))
        .unwrap()
        .clone();
    let other_item = items
        .iter()
        .find(|item| !item["pk"].as_str().unwrap().starts_with("OUTBOX#"))
        .unwrap()
        .clone();
    let event = stream_event(&[
        ("INSERT", &outbox_item, "100"),
        ("INSERT", &other_item, "101"),
        ("MODIFY", &outbox_item, "102"),
    ]);

    world.test.outbox.set_failing(true);
    let response = notifier::handle_stream_event(&world.test.app, event.clone()).await;
    let failed: Vec<Option<String>> = response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.clone())
        .collect();
    assert_eq!(failed, [Some("100".to_owned())]);
    assert!(world.new_emails().is_empty());

    world.test.outbox.set_failing(false);
    let response = notifier::handle_stream_event(&world.test.app, event.clone()).await;
    assert!(response.batch_item_failures.is_empty());
    let response = notifier::handle_stream_event(&world.test.app, event).await;
    assert!(response.batch_item_failures.is_empty());
    let mut recipients: Vec<String> = world.new_emails().into_iter().map(|email| email.to).collect();
    recipients.sort_unstable();
    assert_eq!(recipients, [SUB_A, CONTACT_A]);
    let _ = (&world.account_a, MAIN_B, CONTACT_B);
}

/// Builds a Lambda DynamoDB stream event, in the JSON that Lambda sends, from store items.
fn stream_event(records: &[(&str, &Item, &str)]) -> aws_lambda_events::event::dynamodb::Event {
    let records: Vec<Value> = records
        .iter()
        .map(|(name, item, sequence)| {
            serde_json::json!({
                "eventID": format!("event-{sequence}"),
                "eventName": name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "eu-central-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1767225600,
                    "Keys": {"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}},
                    "NewImage": to_dynamo_json(item),
                    "SequenceNumber": sequence,
                    "SizeBytes": 512,
                    "StreamViewType": "NEW_AND_OLD_IMAGES"
                },
                "eventSourceARN": "arn:aws:dynamodb:eu-central-1:123456789012:table/twofa/stream/2026-01-01T00:00:00.000"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

/// Converts a store item into DynamoDB JSON, as a stream record's image carries it.
fn to_dynamo_json(item: &Item) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, value)| (name.clone(), attribute(value)))
            .collect(),
    )
}

fn attribute(value: &Value) -> Value {
    match value {
        Value::Null => serde_json::json!({"NULL": true}),
        Value::Bool(flag) => serde_json::json!({"BOOL": flag}),
        Value::Number(number) => serde_json::json!({"N": number.to_string()}),
        Value::String(text) => serde_json::json!({"S": text}),
        Value::Array(values) => {
            serde_json::json!({"L": values.iter().map(attribute).collect::<Vec<_>>()})
        }
        Value::Object(_) => serde_json::json!({"M": to_dynamo_json(value.as_object().unwrap())}),
    }
}
