//! Handler tests of the security settings and the Security contact, through the real dispatch.

mod yielding_store;

use std::sync::Arc;

use serde_json::{json, Value};
use twofa_core::http::ApiResponse;
use twofa_core::model::{
    Method, NotificationEvent, OtpDevice, OutboxRecord, PendingOtpDevice, PendingSmsFactor, SessionKind, SmsFactor,
};
use twofa_core::phone::mask_e164;
use twofa_core::secret::SecretBytes;
use twofa_core::service::{audit, provisioning, sessions, users};
use twofa_core::store::{from_item, to_item, Key, Write};
use twofa_core::testing::TestApp;
use twofa_core::totp::TotpParams;
use yielding_store::YieldingStore;

const PASSWORD: &str = "correct horse battery staple";
const PHONE: &str = "+420603123456";
const OTHER_PHONE: &str = "+420777987654";
const SECRET: &[u8] = b"12345678901234567890";

/// Issues a full session for a user whose login completed now and returns its token.
async fn login(test: &TestApp, user_id: &str) -> String {
    let state = users::load(&test.app, user_id).await.unwrap().unwrap();
    let issued = sessions::issue(&test.app, user_id, SessionKind::Full, state.user.session_epoch).unwrap();
    test.app.store.write(issued.write.clone()).await.unwrap();
    issued.token.expose().to_owned()
}

fn body(response: &ApiResponse) -> Value {
    serde_json::from_str(&response.body).unwrap()
}

fn assert_error(response: &ApiResponse, status: u16, code: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(body(response)["error"], code, "{}", response.body);
}

async fn add_totp(test: &TestApp, user_id: &str, make_login_method: bool) {
    provisioning::add_active_totp(
        &test.app,
        user_id,
        &SecretBytes::new(SECRET.to_vec()),
        make_login_method,
    )
    .await
    .unwrap();
}

async fn add_pending_number(test: &TestApp, user_id: &str, phone: &str) {
    let now = test.app.now();
    let pending = PendingSmsFactor {
        pending_id: test.app.new_id(),
        phone_e164: phone.to_owned(),
        created_at: now,
        expires_at: now + 600,
        code_hashes: Vec::new(),
        code_expires_at: 0,
        last_sent_at: 0,
        attempts: 0,
    };
    let item = to_item(&PendingSmsFactor::key(user_id), &pending).unwrap();
    test.app
        .store
        .write(Write::Put { item, condition: None })
        .await
        .unwrap();
}

async fn add_pending_device(test: &TestApp, user_id: &str) {
    let now = test.app.now();
    let device = PendingOtpDevice {
        device_id: test.app.new_id(),
        sealed_secret: test
            .app
            .keys
            .seal(SECRET, user_id.as_bytes(), test.app.random.as_ref())
            .unwrap(),
        params: TotpParams::issued(),
        created_at: now,
        expires_at: now + 600,
        attempts: 0,
    };
    let item = to_item(&PendingOtpDevice::key(user_id), &device).unwrap();
    test.app
        .store
        .write(Write::Put { item, condition: None })
        .await
        .unwrap();
}

async fn outbox_events(test: &TestApp) -> Vec<NotificationEvent> {
    let items = test.store.dump().unwrap();
    items
        .into_iter()
        .filter(|item| item["pk"].as_str().unwrap().starts_with("OUTBOX#"))
        .map(|item| from_item::<OutboxRecord>(item).unwrap().event)
        .collect()
}

async fn exists(test: &TestApp, key: Key) -> bool {
    test.app.store.get(&key).await.unwrap().is_some()
}

// ---------------------------------------------------------------- GET /security

#[tokio::test]
async fn security_shows_masked_factors() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    add_totp(&test, &user_id, false).await;
    let token = login(&test, &user_id).await;

    let response = test.call("GET", "/security", Some(&token), "").await;

    assert_eq!(response.status, 200, "{}", response.body);
    let body = body(&response);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["is_main_account"], true);
    assert_eq!(body["two_factor_enabled"], true);
    assert_eq!(body["login_method"], "sms");
    assert_eq!(
        body["sms"],
        json!({"status": "active", "phone_masked": mask_e164(PHONE)})
    );
    assert_eq!(body["otp"], json!({"status": "active"}));
    assert!(!response.body.contains("603123456"), "{}", response.body);
    assert!(!response.body.contains("sealed"), "{}", response.body);
}

#[tokio::test]
async fn security_shows_pending_replacement() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    add_pending_number(&test, &user_id, OTHER_PHONE).await;
    let token = login(&test, &user_id).await;

    let response = test.call("GET", "/security", Some(&token), "").await;

    let expected =
        json!({"status": "active", "phone_masked": mask_e164(PHONE), "pending_phone_masked": mask_e164(OTHER_PHONE)});
    assert_eq!(body(&response)["sms"], expected);
    assert!(!response.body.contains("777987654"), "{}", response.body);
}

#[tokio::test]
async fn security_shows_pending_factors() {
    let test = TestApp::new();
    let (account_id, _) = test.create_main_user("alice", PASSWORD).await;
    let user_id = test.create_sub_user(&account_id, "carol", PASSWORD, true).await;
    add_totp(&test, &user_id, true).await;
    let token = login(&test, &user_id).await;
    add_pending_number(&test, &user_id, OTHER_PHONE).await;
    test.app
        .store
        .write(Write::Delete {
            key: OtpDevice::key(&user_id),
            condition: None,
        })
        .await
        .unwrap();
    add_pending_device(&test, &user_id).await;

    let response = test.call("GET", "/security", Some(&token), "").await;

    assert_eq!(response.status, 200, "{}", response.body);
    let body = body(&response);
    assert_eq!(
        body["sms"],
        json!({"status": "pending", "pending_phone_masked": mask_e164(OTHER_PHONE)})
    );
    assert_eq!(body["otp"], json!({"status": "pending"}));
    assert_eq!(body["login_method"], Value::Null);
}

#[tokio::test]
async fn security_of_sub_account_without_two_factor() {
    let test = TestApp::new();
    let (account_id, _) = test.create_main_user("alice", PASSWORD).await;
    let user_id = test.create_sub_user(&account_id, "carol", PASSWORD, false).await;
    let token = login(&test, &user_id).await;

    let response = test.call("GET", "/security", Some(&token), "").await;

    assert_eq!(
        body(&response),
        json!({"username": "carol", "is_main_account": false, "two_factor_enabled": false, "login_method": null, "sms": null, "otp": null})
    );
}

#[tokio::test]
async fn security_requires_session() {
    let test = TestApp::new();

    assert_error(&test.call("GET", "/security", None, "").await, 401, "unauthorized");
    assert_error(
        &test.call("GET", "/security", Some("not-a-token"), "").await,
        401,
        "unauthorized",
    );
}

#[tokio::test]
async fn stale_session_still_reads() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = login(&test, &user_id).await;
    test.clock.advance(3600);

    assert_eq!(test.call("GET", "/security", Some(&token), "").await.status, 200);
    assert_eq!(
        test.call("GET", "/account/security-contact", Some(&token), "")
            .await
            .status,
        404
    );
}

// ---------------------------------------------------------------- PUT /security/method

#[tokio::test]
async fn method_changes_among_active_factors() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    add_totp(&test, &user_id, false).await;
    let token = login(&test, &user_id).await;

    let response = test
        .call("PUT", "/security/method", Some(&token), r#"{"method": "totp"}"#)
        .await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(body(&response), json!({"login_method": "totp"}));
    let state = users::load(&test.app, &user_id).await.unwrap().unwrap();
    assert_eq!(state.user.login_method, Some(Method::Totp));
    assert_eq!(outbox_events(&test).await, [NotificationEvent::LoginMethodChanged]);
    // Records of one second sort in random order, so the test looks the record up by event.
    let records = audit::list(&test.app, &user_id, 10).await.unwrap();
    let record = records
        .iter()
        .find(|record| record.event == "login_method_changed")
        .unwrap();
    assert_eq!(record.method, Some(Method::Totp));
    assert_eq!(record.source_ip, "198.51.100.7");

    let response = test
        .call("PUT", "/security/method", Some(&token), r#"{"method": "sms"}"#)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        body(&test.call("GET", "/security", Some(&token), "").await)["login_method"],
        "sms"
    );
}

#[tokio::test]
async fn method_of_inactive_factor_conflicts() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    add_pending_device(&test, &user_id).await;
    let token = login(&test, &user_id).await;

    let response = test
        .call("PUT", "/security/method", Some(&token), r#"{"method": "totp"}"#)
        .await;

    assert_error(&response, 409, "conflict");
    assert!(
        body(&response)["message"].as_str().unwrap().contains("OTP app"),
        "{}",
        response.body
    );
    assert!(outbox_events(&test).await.is_empty());
}

#[tokio::test]
async fn method_unchanged_is_noop() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    let token = login(&test, &user_id).await;

    let response = test
        .call("PUT", "/security/method", Some(&token), r#"{"method": "sms"}"#)
        .await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert!(outbox_events(&test).await.is_empty());
}

#[tokio::test]
async fn method_value_is_validated() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    let token = login(&test, &user_id).await;

    for request in [
        r#"{"method": "email"}"#,
        r#"{"method": "SMS "}"#,
        r#"{"method": 1}"#,
        "{}",
    ] {
        let response = test.call("PUT", "/security/method", Some(&token), request).await;

        assert_error(&response, 400, "invalid_request");
        assert_eq!(body(&response)["field"], "method", "{request}");
    }
}

// ---------------------------------------------------------------- PUT /security/two-factor

#[tokio::test]
async fn main_account_two_factor_is_mandatory() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    let token = login(&test, &user_id).await;

    let response = test
        .call("PUT", "/security/two-factor", Some(&token), r#"{"enabled": false}"#)
        .await;

    assert_error(&response, 409, "two_factor_mandatory");
    assert!(exists(&test, SmsFactor::key(&user_id)).await);
    let response = test
        .call("PUT", "/security/two-factor", Some(&token), r#"{"enabled": true}"#)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(outbox_events(&test).await.is_empty());
}

#[tokio::test]
async fn sub_account_disable_removes_factors() {
    let test = TestApp::new();
    let (account_id, _) = test.create_main_user("alice", PASSWORD).await;
    let user_id = test.create_sub_user(&account_id, "carol", PASSWORD, true).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    add_totp(&test, &user_id, false).await;
    add_pending_number(&test, &user_id, OTHER_PHONE).await;
    add_pending_device(&test, &user_id).await;
    let token = login(&test, &user_id).await;

    let response = test
        .call("PUT", "/security/two-factor", Some(&token), r#"{"enabled": false}"#)
        .await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(body(&response), json!({"two_factor_enabled": false}));
    for key in [
        SmsFactor::key(&user_id),
        PendingSmsFactor::key(&user_id),
        OtpDevice::key(&user_id),
        PendingOtpDevice::key(&user_id),
    ] {
        assert!(!exists(&test, key.clone()).await, "{key:?} still exists");
    }
    let state = users::load(&test.app, &user_id).await.unwrap().unwrap();
    assert!(!state.user.two_factor_enabled);
    assert_eq!(state.user.login_method, None);
    assert_eq!(outbox_events(&test).await, [NotificationEvent::TwoFactorDisabled]);
    let security = body(&test.call("GET", "/security", Some(&token), "").await);
    assert_eq!(security["two_factor_enabled"], false);
    assert_eq!(security["sms"], Value::Null);
    assert_eq!(security["otp"], Value::Null);
    let login = json!({"username": "carol", "password": PASSWORD}).to_string();
    let response = test.call("POST", "/login", None, &login).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        body(&response)["status"],
        "authenticated",
        "a password alone now logs in"
    );
}

#[tokio::test]
async fn sub_account_enable_requires_enrollment() {
    let test = TestApp::new();
    let (account_id, _) = test.create_main_user("alice", PASSWORD).await;
    let user_id = test.create_sub_user(&account_id, "carol", PASSWORD, false).await;
    let token = login(&test, &user_id).await;

    let response = test
        .call("PUT", "/security/two-factor", Some(&token), r#"{"enabled": true}"#)
        .await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(body(&response), json!({"two_factor_enabled": true}));
    let state = users::load(&test.app, &user_id).await.unwrap().unwrap();
    assert!(state.is_two_factor_required());
    assert!(!state.has_active_factor(), "the next login must be an enrollment");
    assert_eq!(outbox_events(&test).await, [NotificationEvent::TwoFactorEnabled]);
    let login = json!({"username": "carol", "password": PASSWORD}).to_string();
    let response = test.call("POST", "/login", None, &login).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(body(&response)["status"], "enrollment");
}

#[tokio::test]
async fn two_factor_same_state_is_noop() {
    let test = TestApp::new();
    let (account_id, _) = test.create_main_user("alice", PASSWORD).await;
    let off = test.create_sub_user(&account_id, "carol", PASSWORD, false).await;
    let on = test.create_sub_user(&account_id, "dave", PASSWORD, true).await;
    let off_token = login(&test, &off).await;
    let on_token = login(&test, &on).await;

    let response = test
        .call("PUT", "/security/two-factor", Some(&off_token), r#"{"enabled": false}"#)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let response = test
        .call("PUT", "/security/two-factor", Some(&on_token), r#"{"enabled": true}"#)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);

    assert!(outbox_events(&test).await.is_empty());
    let state = users::load(&test.app, &off).await.unwrap().unwrap();
    assert_eq!(state.user.session_epoch, 0, "a no-op must not revoke sessions");
}

#[tokio::test]
async fn two_factor_value_is_validated() {
    let test = TestApp::new();
    let (account_id, _) = test.create_main_user("alice", PASSWORD).await;
    let user_id = test.create_sub_user(&account_id, "carol", PASSWORD, true).await;
    let token = login(&test, &user_id).await;

    for request in [r#"{"enabled": "no"}"#, "{}", r#"{"enabled": 0}"#] {
        let response = test.call("PUT", "/security/two-factor", Some(&token), request).await;

        assert_error(&response, 400, "invalid_request");
        assert_eq!(body(&response)["field"], "enabled", "{request}");
    }
}

// ---------------------------------------------------------------- freshness and revocation

#[tokio::test]
async fn stale_session_cannot_change() {
    let test = TestApp::new();
    let (account_id, main_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &main_id, PHONE).await.unwrap();
    add_totp(&test, &main_id, false).await;
    let sub_id = test.create_sub_user(&account_id, "carol", PASSWORD, true).await;
    provisioning::add_active_sms(&test.app, &sub_id, OTHER_PHONE)
        .await
        .unwrap();
    let main_token = login(&test, &main_id).await;
    let sub_token = login(&test, &sub_id).await;
    test.clock.advance(sessions::FRESH_SECONDS + 1);

    let contact = r#"{"name": "Eve Example", "email": "eve@example.org", "language": "en"}"#;
    let requests = [
        (&main_token, "/security/method", r#"{"method": "totp"}"#),
        (&sub_token, "/security/two-factor", r#"{"enabled": false}"#),
        (&main_token, "/security/two-factor", r#"{"enabled": true}"#),
        (&main_token, "/account/security-contact", contact),
    ];
    for (token, path, request) in requests {
        let response = test.call("PUT", path, Some(token), request).await;

        assert_error(&response, 403, "reauthentication_required");
    }
    assert!(exists(&test, SmsFactor::key(&sub_id)).await);
    assert!(outbox_events(&test).await.is_empty());
}

#[tokio::test]
async fn fresh_session_at_limit_can_change() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    add_totp(&test, &user_id, false).await;
    let token = login(&test, &user_id).await;
    test.clock.advance(sessions::FRESH_SECONDS);

    let response = test
        .call("PUT", "/security/method", Some(&token), r#"{"method": "totp"}"#)
        .await;

    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn change_revokes_other_sessions() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    add_totp(&test, &user_id, false).await;
    let caller = login(&test, &user_id).await;
    let other = login(&test, &user_id).await;

    let response = test
        .call("PUT", "/security/method", Some(&caller), r#"{"method": "totp"}"#)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);

    assert_eq!(test.call("GET", "/security", Some(&caller), "").await.status, 200);
    assert_error(
        &test.call("GET", "/security", Some(&other), "").await,
        401,
        "unauthorized",
    );
}

#[tokio::test]
async fn contact_change_revokes_other_sessions() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let caller = login(&test, &user_id).await;
    let other = login(&test, &user_id).await;

    let contact = r#"{"name": "Eve Example", "email": "eve@example.org", "language": "cs"}"#;
    let response = test
        .call("PUT", "/account/security-contact", Some(&caller), contact)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);

    assert_eq!(
        test.call("GET", "/account/security-contact", Some(&caller), "")
            .await
            .status,
        200
    );
    assert_error(
        &test.call("GET", "/account/security-contact", Some(&other), "").await,
        401,
        "unauthorized",
    );
}

// ---------------------------------------------------------------- Security contact

#[tokio::test]
async fn contact_is_set_and_read() {
    let test = TestApp::new();
    let (account_id, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = login(&test, &user_id).await;
    assert_error(
        &test.call("GET", "/account/security-contact", Some(&token), "").await,
        404,
        "not_found",
    );

    let request = r#"{"name": "  Eva Nováková ", "email": "eva@example.org", "language": "cs"}"#;
    let response = test
        .call("PUT", "/account/security-contact", Some(&token), request)
        .await;

    assert_eq!(response.status, 200, "{}", response.body);
    let expected = json!({"name": "Eva Nováková", "email": "eva@example.org", "language": "cs"});
    assert_eq!(body(&response), expected);
    let response = test.call("GET", "/account/security-contact", Some(&token), "").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(body(&response), expected);
    assert_eq!(outbox_events(&test).await, [NotificationEvent::SecurityContactChanged]);
    let records = audit::list(&test.app, &user_id, 10).await.unwrap();
    assert!(records.iter().any(|record| record.event == "security_contact_changed"));

    let replacement = r#"{"name": "Petr Svoboda", "email": "petr@example.org", "language": "en"}"#;
    let response = test
        .call("PUT", "/account/security-contact", Some(&token), replacement)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let contact = twofa_core::service::security_contact::load(&test.app, &account_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.email, "petr@example.org");
    assert_eq!(contact.version, 2);
    let previous: Vec<_> = test
        .store
        .dump()
        .unwrap()
        .into_iter()
        .filter(|item| item["pk"].as_str().unwrap().starts_with("OUTBOX#"))
        .filter_map(|item| from_item::<OutboxRecord>(item).unwrap().previous_contact)
        .collect();
    assert_eq!(previous.len(), 1);
    assert_eq!(previous[0].email, "eva@example.org");
}

#[tokio::test]
async fn contact_same_values_is_noop() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = login(&test, &user_id).await;
    let request = r#"{"name": "Eva", "email": "eva@example.org", "language": "cs"}"#;

    assert_eq!(
        test.call("PUT", "/account/security-contact", Some(&token), request)
            .await
            .status,
        200
    );
    assert_eq!(
        test.call("PUT", "/account/security-contact", Some(&token), request)
            .await
            .status,
        200
    );

    assert_eq!(outbox_events(&test).await, [NotificationEvent::SecurityContactChanged]);
}

#[tokio::test]
async fn contact_is_only_for_main_account() {
    let test = TestApp::new();
    let (account_id, main_id) = test.create_main_user("alice", PASSWORD).await;
    let sub_id = test.create_sub_user(&account_id, "carol", PASSWORD, false).await;
    provisioning::set_security_contact(
        &test.app,
        &account_id,
        "Eva",
        "eva@example.org",
        twofa_core::model::Language::Cs,
    )
    .await
    .unwrap();
    let sub_token = login(&test, &sub_id).await;
    let main_token = login(&test, &main_id).await;

    assert_error(
        &test
            .call("GET", "/account/security-contact", Some(&sub_token), "")
            .await,
        403,
        "forbidden",
    );
    let request = r#"{"name": "Carol", "email": "carol@example.org", "language": "en"}"#;
    assert_error(
        &test
            .call("PUT", "/account/security-contact", Some(&sub_token), request)
            .await,
        403,
        "forbidden",
    );

    let response = test
        .call("GET", "/account/security-contact", Some(&main_token), "")
        .await;
    assert_eq!(body(&response)["email"], "eva@example.org");
}

#[tokio::test]
async fn contact_fields_are_validated() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = login(&test, &user_id).await;
    let long_name = "x".repeat(201);
    let cases = [
        (
            json!({"name": "Eva", "email": "not-an-address", "language": "cs"}),
            "email",
        ),
        (
            json!({"name": "Eva", "email": "eva@example.org", "language": "de"}),
            "language",
        ),
        (
            json!({"name": "   ", "email": "eva@example.org", "language": "en"}),
            "name",
        ),
        (
            json!({"name": long_name, "email": "eva@example.org", "language": "en"}),
            "name",
        ),
        (json!({"name": "Eva", "language": "en"}), "email"),
        (
            json!({"name": "Eva", "email": "eva@example.org", "language": 1}),
            "language",
        ),
    ];
    for (request, field) in cases {
        let response = test
            .call("PUT", "/account/security-contact", Some(&token), &request.to_string())
            .await;

        assert_error(&response, 400, "invalid_request");
        assert_eq!(body(&response)["field"], field, "{request}");
    }
    let name_of_200 = "é".repeat(200);
    let request = json!({"name": name_of_200, "email": "eva@example.org", "language": "en"});
    assert_eq!(
        test.call("PUT", "/account/security-contact", Some(&token), &request.to_string())
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn concurrent_contact_puts_one_wins() {
    let mut test = TestApp::new();
    test.app.store = Arc::new(YieldingStore(test.store.clone()));
    let (account_id, user_id) = test.create_main_user("alice", PASSWORD).await;
    let first_token = login(&test, &user_id).await;
    let second_token = login(&test, &user_id).await;
    let first = r#"{"name": "Eva", "email": "eva@example.org", "language": "cs"}"#;
    let second = r#"{"name": "Petr", "email": "petr@example.org", "language": "en"}"#;

    let (first_response, second_response) = tokio::join!(
        test.call("PUT", "/account/security-contact", Some(&first_token), first),
        test.call("PUT", "/account/security-contact", Some(&second_token), second),
    );

    let mut statuses = [first_response.status, second_response.status];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 409],
        "{} / {}",
        first_response.body,
        second_response.body
    );
    let loser = if first_response.status == 409 {
        &first_response
    } else {
        &second_response
    };
    assert_error(loser, 409, "conflict");
    let winner_email = if first_response.status == 200 {
        "eva@example.org"
    } else {
        "petr@example.org"
    };
    let contact = twofa_core::service::security_contact::load(&test.app, &account_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.email, winner_email);
    assert_eq!(contact.version, 1);
    assert_eq!(outbox_events(&test).await, [NotificationEvent::SecurityContactChanged]);
}

#[tokio::test]
async fn concurrent_contact_puts_from_admin_and_route() {
    let mut test = TestApp::new();
    test.app.store = Arc::new(YieldingStore(test.store.clone()));
    let (account_id, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = login(&test, &user_id).await;
    let request = r#"{"name": "Petr", "email": "petr@example.org", "language": "en"}"#;

    let (admin, route) = tokio::join!(
        provisioning::set_security_contact(
            &test.app,
            &account_id,
            "Eva",
            "eva@example.org",
            twofa_core::model::Language::Cs
        ),
        test.call("PUT", "/account/security-contact", Some(&token), request),
    );

    let successes = usize::from(admin.is_ok()) + usize::from(route.status == 200);
    assert_eq!(successes, 1, "admin: {admin:?}, route: {}", route.body);
    let contact = twofa_core::service::security_contact::load(&test.app, &account_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.version, 1);
}
