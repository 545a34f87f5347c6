//! Handler tests of the SMS factor routes and the SMS sending limits, through the real dispatch.

mod yielding_store;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use twofa_core::http::{ApiRequest, ApiResponse};
use twofa_core::model::{Method, NotificationEvent, OutboxRecord, PendingSmsFactor, SessionKind};
use twofa_core::ports::SentMessage;
use twofa_core::secret::SecretBytes;
use twofa_core::service::{provisioning, sessions, users};
use twofa_core::store::{from_item, Key};
use twofa_core::testing::{find_code, TestApp};
use yielding_store::{join_all, YieldingStore};

const PASSWORD: &str = "correct horse battery staple";
const PHONE: &str = "+420601123456";
const OTHER_PHONE: &str = "+420777987654";
const SECRET: &[u8] = b"12345678901234567890";
const NUMBER_PATH: &str = "/security/sms/number";
const SEND_CODE_PATH: &str = "/security/sms/number/send-code";
const VERIFY_PATH: &str = "/security/sms/number/verify";

/// Issues a session of `kind` for a user whose login completed now and returns its token.
async fn session(test: &TestApp, user_id: &str, kind: SessionKind) -> String {
    let state = users::load(&test.app, user_id).await.unwrap().unwrap();
    let issued = sessions::issue(&test.app, user_id, kind, state.user.session_epoch).unwrap();
    test.app.store.write(issued.write.clone()).await.unwrap();
    issued.token.expose().to_owned()
}

async fn full_session(test: &TestApp, user_id: &str) -> String {
    session(test, user_id, SessionKind::Full).await
}

/// Creates a sub-account with 2FA on and returns its user id.
async fn sub_user(test: &TestApp, name: &str) -> String {
    let (account_id, _) = test.create_main_user(&format!("{name}-main"), PASSWORD).await;
    test.create_sub_user(&account_id, name, PASSWORD, true).await
}

fn body(response: &ApiResponse) -> Value {
    serde_json::from_str(&response.body).unwrap()
}

fn assert_error(response: &ApiResponse, status: u16, code: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(body(response)["error"], code, "{}", response.body);
}

fn assert_rate_limited(response: &ApiResponse) {
    assert_error(response, 429, "rate_limited");
    let retry_after: i64 = response
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "Retry-After {retry_after}");
}

async fn put_number(test: &TestApp, token: &str, phone: &str) -> ApiResponse {
    test.call("PUT", NUMBER_PATH, Some(token), &json!({ "phone": phone }).to_string())
        .await
}

async fn verify(test: &TestApp, token: &str, code: &str) -> ApiResponse {
    test.call("POST", VERIFY_PATH, Some(token), &json!({ "code": code }).to_string())
        .await
}

/// Sends a request from a given source IP, as API Gateway reports it in the request context.
async fn call_from(test: &TestApp, source_ip: &str, method: &str, path: &str, token: &str, body: &str) -> ApiResponse {
    let headers = HashMap::from([
        ("content-type".to_owned(), "application/json".to_owned()),
        ("authorization".to_owned(), format!("Bearer {token}")),
        ("x-forwarded-for".to_owned(), "203.0.113.99".to_owned()),
    ]);
    let request = ApiRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
        source_ip: source_ip.to_owned(),
        request_id: "test-request".to_owned(),
    };
    twofa_core::api::handle(&test.app, request, None).await
}

/// Returns the code of the newest SMS to `phone`.
fn last_code(test: &TestApp, phone: &str) -> String {
    let texts = test.sms_texts_to(phone);
    find_code(texts.last().expect("an SMS was sent")).expect("the SMS carries a code")
}

fn sms_count(test: &TestApp) -> usize {
    test.outbox
        .messages()
        .iter()
        .filter(|message| matches!(message, SentMessage::Sms { .. }))
        .count()
}

async fn state(test: &TestApp, user_id: &str) -> users::UserState {
    users::load(&test.app, user_id).await.unwrap().unwrap()
}

async fn outbox_records(test: &TestApp) -> Vec<OutboxRecord> {
    let mut records: Vec<OutboxRecord> = test
        .store
        .dump()
        .unwrap()
        .into_iter()
        .filter(|item| item["pk"].as_str().unwrap().starts_with("OUTBOX#"))
        .map(|item| from_item::<OutboxRecord>(item).unwrap())
        .collect();
    records.sort_by_key(|record| record.occurred_at);
    records
}

async fn add_totp(test: &TestApp, user_id: &str) {
    provisioning::add_active_totp(&test.app, user_id, &SecretBytes::new(SECRET.to_vec()), false)
        .await
        .unwrap();
}

#[tokio::test]
async fn enrollment_adds_and_verifies_number() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let enrollment = session(&test, &user_id, SessionKind::Enrollment).await;

    let response = put_number(&test, &enrollment, "+420 601 123 456").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let put_body = body(&response);
    assert_eq!(put_body["status"], "code_sent");
    assert_eq!(put_body["sms"]["status"], "pending");
    assert!(!response.body.contains("601123456"), "{}", response.body);
    let texts = test.sms_texts_to(PHONE);
    assert_eq!(texts.len(), 1);
    assert!(texts[0].starts_with("Example Hosting "), "{}", texts[0]);

    test.clock.advance(1);
    let response = verify(&test, &enrollment, &last_code(&test, PHONE)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let verified = body(&response);
    assert_eq!(verified["status"], "authenticated");
    let full = verified["session_token"].as_str().unwrap().to_owned();
    assert!(verified["expires_at"].as_i64().unwrap() > test.app.now());

    let state = state(&test, &user_id).await;
    assert_eq!(state.sms.map(|sms| sms.phone_e164).as_deref(), Some(PHONE));
    assert!(state.sms_pending.is_none());
    assert_eq!(state.user.login_method, Some(Method::Sms));

    let response = test.call("DELETE", NUMBER_PATH, Some(&enrollment), "").await;
    assert_error(&response, 401, "unauthorized");
    let response = test.call("DELETE", NUMBER_PATH, Some(&full), "").await;
    assert_error(&response, 409, "factor_required");

    let events: Vec<_> = outbox_records(&test)
        .await
        .into_iter()
        .map(|record| record.event)
        .collect();
    assert_eq!(
        events,
        vec![NotificationEvent::SmsNumberAdded, NotificationEvent::SmsNumberVerified]
    );
}

#[tokio::test]
async fn verified_number_is_used_for_login() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let enrollment = session(&test, &user_id, SessionKind::Enrollment).await;
    put_number(&test, &enrollment, "601 123 456").await;
    let response = verify(&test, &enrollment, &last_code(&test, PHONE)).await;
    assert_eq!(response.status, 200, "{}", response.body);

    let response = test
        .call(
            "POST",
            "/login",
            None,
            &json!({ "username": "alice", "password": PASSWORD }).to_string(),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let challenge = body(&response);
    assert_eq!(challenge["status"], "challenge");
    assert_eq!(challenge["method"], "sms");
    let challenge_id = challenge["challenge_id"].as_str().unwrap();
    assert_eq!(test.sms_texts_to(PHONE).len(), 2);

    let code = last_code(&test, PHONE);
    let response = test
        .call(
            "POST",
            "/login/sms/verify",
            None,
            &json!({ "challenge_id": challenge_id, "code": code }).to_string(),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(body(&response)["status"], "authenticated");
}

#[tokio::test]
async fn changed_number_waits_for_verification() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    let token = full_session(&test, &user_id).await;

    let response = put_number(&test, &token, OTHER_PHONE).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let pending_state = state(&test, &user_id).await;
    assert_eq!(
        pending_state.sms.as_ref().map(|sms| sms.phone_e164.as_str()),
        Some(PHONE)
    );
    assert_eq!(
        pending_state
            .sms_pending
            .as_ref()
            .map(|pending| pending.phone_e164.as_str()),
        Some(OTHER_PHONE)
    );

    let response = test
        .call(
            "POST",
            "/login",
            None,
            &json!({ "username": "alice", "password": PASSWORD }).to_string(),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(body(&response)["method"], "sms");
    assert_eq!(
        test.sms_texts_to(PHONE).len(),
        1,
        "the login code goes to the active number"
    );

    test.clock.advance(1);
    let response = verify(&test, &token, &last_code(&test, OTHER_PHONE)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let verified = body(&response);
    assert_eq!(verified["status"], "ok");
    assert_eq!(verified["sms"]["status"], "active");
    assert!(!response.body.contains("777987654"), "{}", response.body);
    let active_state = state(&test, &user_id).await;
    assert_eq!(active_state.sms.map(|sms| sms.phone_e164).as_deref(), Some(OTHER_PHONE));
    assert!(active_state.sms_pending.is_none());

    let events: Vec<_> = outbox_records(&test)
        .await
        .into_iter()
        .map(|record| record.event)
        .collect();
    assert_eq!(
        events,
        vec![
            NotificationEvent::SmsNumberChanged,
            NotificationEvent::SmsNumberVerified
        ]
    );
}

#[tokio::test]
async fn notification_detail_is_masked() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = session(&test, &user_id, SessionKind::Enrollment).await;
    put_number(&test, &token, PHONE).await;

    let records = outbox_records(&test).await;
    let detail = records[0].detail.clone().unwrap();
    assert!(!detail.contains("601123456"), "{detail}");
    assert!(detail.ends_with("56"), "{detail}");
}

#[tokio::test]
async fn same_number_as_active_is_conflict() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    let token = full_session(&test, &user_id).await;

    let response = put_number(&test, &token, "00420601123456").await;

    assert_error(&response, 409, "conflict");
    assert_eq!(sms_count(&test), 0);
}

#[tokio::test]
async fn delete_switches_login_method_to_totp() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    add_totp(&test, &user_id).await;
    let token = full_session(&test, &user_id).await;
    put_number(&test, &token, OTHER_PHONE).await;
    test.clock.advance(1);

    let response = test.call("DELETE", NUMBER_PATH, Some(&token), "").await;

    assert_eq!(response.status, 200, "{}", response.body);
    let state = state(&test, &user_id).await;
    assert!(state.sms.is_none());
    assert!(state.sms_pending.is_none(), "the pending number goes too");
    assert_eq!(state.user.login_method, Some(Method::Totp));
    let last = outbox_records(&test).await.pop().unwrap();
    assert_eq!(last.event, NotificationEvent::SmsNumberDeleted);

    let response = test.call("DELETE", NUMBER_PATH, Some(&token), "").await;
    assert_error(&response, 404, "not_found");
}

#[tokio::test]
async fn sub_account_can_delete_only_factor() {
    let test = TestApp::new();
    let user_id = sub_user(&test, "bob").await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    let token = full_session(&test, &user_id).await;

    let response = test.call("DELETE", NUMBER_PATH, Some(&token), "").await;

    assert_eq!(response.status, 200, "{}", response.body);
    let state = state(&test, &user_id).await;
    assert!(state.sms.is_none());
    assert_eq!(state.user.login_method, None);
}

#[tokio::test]
async fn main_account_last_factor_is_required() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    let token = full_session(&test, &user_id).await;

    let response = test.call("DELETE", NUMBER_PATH, Some(&token), "").await;

    assert_error(&response, 409, "factor_required");
    assert!(state(&test, &user_id).await.sms.is_some());
}

#[tokio::test]
async fn pending_number_alone_can_be_cancelled() {
    let test = TestApp::new();
    let user_id = sub_user(&test, "bob").await;
    let token = full_session(&test, &user_id).await;
    put_number(&test, &token, PHONE).await;

    let response = test.call("DELETE", NUMBER_PATH, Some(&token), "").await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert!(state(&test, &user_id).await.sms_pending.is_none());
}

#[tokio::test]
async fn enrollment_session_cannot_delete() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = session(&test, &user_id, SessionKind::Enrollment).await;
    put_number(&test, &token, PHONE).await;

    let response = test.call("DELETE", NUMBER_PATH, Some(&token), "").await;

    assert_error(&response, 403, "forbidden");
    assert!(state(&test, &user_id).await.sms_pending.is_some());
}

#[tokio::test]
async fn stale_session_needs_reauthentication() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    let token = full_session(&test, &user_id).await;
    test.clock.advance(6 * 60);

    for response in [
        put_number(&test, &token, OTHER_PHONE).await,
        test.call("POST", SEND_CODE_PATH, Some(&token), "").await,
        verify(&test, &token, "123456").await,
        test.call("DELETE", NUMBER_PATH, Some(&token), "").await,
    ] {
        assert_error(&response, 403, "reauthentication_required");
    }
    assert_eq!(sms_count(&test), 0);
}

#[tokio::test]
async fn sub_account_without_two_factor_cannot_add() {
    let test = TestApp::new();
    let (account_id, _) = test.create_main_user("alice", PASSWORD).await;
    let user_id = test.create_sub_user(&account_id, "bob", PASSWORD, false).await;
    let token = full_session(&test, &user_id).await;

    let response = put_number(&test, &token, PHONE).await;

    assert_error(&response, 409, "conflict");
    assert_eq!(sms_count(&test), 0);
}

#[tokio::test]
async fn unserved_numbers_send_nothing() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = session(&test, &user_id, SessionKind::Enrollment).await;

    for phone in [
        "12345",
        "+882 1234 5678 90",
        "+979 1 2345 6789",
        "+1 202 555 0100",
        "",
        "+420 601 123 456 789 0",
        "abc",
    ] {
        for _ in 0..30 {
            let response = put_number(&test, &token, phone).await;
            assert_error(&response, 400, "invalid_request");
            assert_eq!(body(&response)["field"], "phone", "{phone}: {}", response.body);
        }
    }

    let response = put_number(&test, &token, "+1 202 555 0100").await;
    let message = body(&response)["message"].as_str().unwrap().to_owned();
    assert!(message.contains("US") || message.contains("United States"), "{message}");
    assert_eq!(sms_count(&test), 0);
    assert!(state(&test, &user_id).await.sms_pending.is_none());
    assert!(outbox_records(&test).await.is_empty());
}

#[tokio::test]
async fn slovak_number_is_allowed() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = session(&test, &user_id, SessionKind::Enrollment).await;

    let response = put_number(&test, &token, "+421 905 123 456").await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(test.sms_texts_to("+421905123456").len(), 1);
}

#[tokio::test]
async fn czech_user_gets_czech_text() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let mut user = state(&test, &user_id).await.user;
    user.language = twofa_core::model::Language::Cs;
    let item = twofa_core::store::to_item(&twofa_core::model::User::key(&user_id), &user).unwrap();
    test.app
        .store
        .write(twofa_core::store::Write::Put { item, condition: None })
        .await
        .unwrap();
    let token = session(&test, &user_id, SessionKind::Enrollment).await;

    put_number(&test, &token, PHONE).await;

    let text = test.sms_texts_to(PHONE).pop().unwrap();
    assert!(text.contains("ověření tohoto telefonního čísla"), "{text}");
    assert!(text.contains("Example Hosting"), "{text}");
}

#[tokio::test]
async fn send_code_waits_between_sends() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = session(&test, &user_id, SessionKind::Enrollment).await;
    put_number(&test, &token, PHONE).await;
    let first_code = last_code(&test, PHONE);

    test.clock.advance(10);
    let response = test.call("POST", SEND_CODE_PATH, Some(&token), "").await;
    assert_rate_limited(&response);
    assert_eq!(response.header("retry-after"), Some("20"));

    test.clock.advance(20);
    let response = test.call("POST", SEND_CODE_PATH, Some(&token), "").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(test.sms_texts_to(PHONE).len(), 2);

    let response = verify(&test, &token, &first_code).await;
    assert_eq!(response.status, 200, "the earlier code still works: {}", response.body);
}

#[tokio::test]
async fn code_expires_after_five_minutes() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = session(&test, &user_id, SessionKind::Enrollment).await;
    put_number(&test, &token, PHONE).await;
    let code = last_code(&test, PHONE);

    test.clock.advance(5 * 60);
    let response = verify(&test, &token, &code).await;
    assert_error(&response, 400, "invalid_request");
    assert_eq!(body(&response)["field"], "code");

    let response = test.call("POST", SEND_CODE_PATH, Some(&token), "").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let response = verify(&test, &token, &last_code(&test, PHONE)).await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn pending_number_expires_after_an_hour() {
    let test = TestApp::new();
    let user_id = sub_user(&test, "bob").await;
    let token = full_session(&test, &user_id).await;
    put_number(&test, &token, PHONE).await;

    test.clock.advance(60 * 60);
    let token = full_session(&test, &user_id).await;
    let response = test.call("POST", SEND_CODE_PATH, Some(&token), "").await;

    assert_error(&response, 404, "not_found");
}

#[tokio::test]
async fn five_wrong_codes_delete_pending_number() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = session(&test, &user_id, SessionKind::Enrollment).await;
    put_number(&test, &token, PHONE).await;
    let code = last_code(&test, PHONE);
    let wrong = if code == "000000" { "000001" } else { "000000" };

    for attempt in ["5924", "00592a", "００５９２４", wrong] {
        let response = verify(&test, &token, attempt).await;
        assert_error(&response, 401, "invalid_code");
        assert_eq!(body(&response)["field"], "code");
    }
    let response = verify(&test, &token, wrong).await;
    assert_error(&response, 429, "too_many_attempts");
    assert!(state(&test, &user_id).await.sms_pending.is_none());

    let response = verify(&test, &token, &code).await;
    assert_error(&response, 404, "not_found");
    assert!(state(&test, &user_id).await.sms.is_none());
}

#[tokio::test]
async fn wrong_code_does_not_block_right_one() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = session(&test, &user_id, SessionKind::Enrollment).await;
    put_number(&test, &token, PHONE).await;
    let code = last_code(&test, PHONE);
    let wrong = if code == "000000" { "000001" } else { "000000" };

    assert_error(&verify(&test, &token, wrong).await, 401, "invalid_code");
    let response = verify(&test, &token, &code).await;

    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn code_of_replaced_pending_number_fails() {
    let test = TestApp::new();
    let user_id = sub_user(&test, "bob").await;
    let token = full_session(&test, &user_id).await;
    put_number(&test, &token, PHONE).await;
    let old_code = last_code(&test, PHONE);

    put_number(&test, &token, OTHER_PHONE).await;
    let new_code = last_code(&test, OTHER_PHONE);
    if old_code != new_code {
        assert_error(&verify(&test, &token, &old_code).await, 401, "invalid_code");
    }
    let response = verify(&test, &token, &new_code).await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        state(&test, &user_id).await.sms.map(|sms| sms.phone_e164).as_deref(),
        Some(OTHER_PHONE)
    );
}

#[tokio::test]
async fn failing_sender_leaves_pending_number_usable() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = session(&test, &user_id, SessionKind::Enrollment).await;

    test.outbox.set_failing(true);
    let response = put_number(&test, &token, PHONE).await;
    assert_error(&response, 503, "service_unavailable");
    assert!(response.header("retry-after").is_some());
    let pending = state(&test, &user_id)
        .await
        .sms_pending
        .expect("the pending number is stored");
    assert!(pending.code_hashes.is_empty(), "the unsent code is not valid");

    let response = test.call("POST", SEND_CODE_PATH, Some(&token), "").await;
    assert_error(&response, 503, "service_unavailable");

    test.outbox.set_failing(false);
    let response = test.call("POST", SEND_CODE_PATH, Some(&token), "").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let response = verify(&test, &token, &last_code(&test, PHONE)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(body(&response)["status"], "authenticated");
}

/// SMS pumping: 200 send requests for one number within a minute, from several accounts.
#[tokio::test]
async fn sms_pumping_one_number_sends_five() {
    let test = TestApp::new();
    let mut tokens = Vec::new();
    for index in 0..4 {
        let user_id = sub_user(&test, &format!("user{index}")).await;
        tokens.push(full_session(&test, &user_id).await);
    }

    let mut refused = 0;
    for request in 0..200 {
        let token = &tokens[request % tokens.len()];
        let response = if request < tokens.len() || request % 2 == 0 {
            put_number(&test, token, PHONE).await
        } else {
            test.call("POST", SEND_CODE_PATH, Some(token), "").await
        };
        if response.status != 200 {
            assert_rate_limited(&response);
            refused += 1;
        }
        if request % 4 == 3 {
            test.clock.advance(1);
        }
    }

    assert_eq!(test.sms_texts_to(PHONE).len(), 5);
    assert_eq!(sms_count(&test), 5);
    assert_eq!(refused, 195);
}

#[tokio::test]
async fn format_variants_share_one_budget() {
    let test = TestApp::new();
    let variants = [
        "+420 601 123 456",
        "00420601123456",
        "(+420) 601-123-456",
        "601123456",
        "+420601123456",
        "601 123 456",
    ];
    let mut responses = Vec::new();
    for (index, phone) in variants.iter().enumerate() {
        let user_id = sub_user(&test, &format!("user{index}")).await;
        let token = full_session(&test, &user_id).await;
        responses.push(put_number(&test, &token, phone).await);
    }

    for response in &responses[..5] {
        assert_eq!(response.status, 200, "{}", response.body);
    }
    assert_rate_limited(&responses[5]);
    assert_eq!(test.sms_texts_to(PHONE).len(), 5);

    test.clock.advance(10 * 60);
    let user_id = sub_user(&test, "later").await;
    let token = full_session(&test, &user_id).await;
    let response = put_number(&test, &token, "601 123 456").await;
    assert_eq!(response.status, 200, "the window opens again: {}", response.body);
}

#[tokio::test]
async fn per_user_limit_is_ten_per_hour() {
    let test = TestApp::new();
    let user_id = sub_user(&test, "bob").await;

    for index in 0..10 {
        let token = full_session(&test, &user_id).await;
        let response = put_number(&test, &token, &format!("+42060112340{index}")).await;
        assert_eq!(response.status, 200, "{}", response.body);
    }
    let token = full_session(&test, &user_id).await;
    let response = put_number(&test, &token, "+420601123499").await;

    assert_rate_limited(&response);
    assert_eq!(sms_count(&test), 10);
}

#[tokio::test]
async fn per_ip_limit_ignores_forwarded_header() {
    let test = TestApp::new();
    let mut tokens = Vec::new();
    for index in 0..4 {
        let user_id = sub_user(&test, &format!("user{index}")).await;
        tokens.push(full_session(&test, &user_id).await);
    }

    let mut statuses = Vec::new();
    for index in 0..32 {
        let phone = json!({ "phone": format!("+4206011234{index:02}") }).to_string();
        let response = call_from(&test, "192.0.2.10", "PUT", NUMBER_PATH, &tokens[index % 4], &phone).await;
        statuses.push(response.status);
        if response.status != 200 {
            assert_rate_limited(&response);
        }
    }
    assert_eq!(statuses.iter().filter(|status| **status == 200).count(), 30);

    let phone = json!({ "phone": "+420601123499" }).to_string();
    let response = call_from(&test, "192.0.2.11", "PUT", NUMBER_PATH, &tokens[0], &phone).await;
    assert_eq!(
        response.status, 200,
        "another source IP has its own budget: {}",
        response.body
    );
}

#[tokio::test]
async fn rate_keys_hold_no_phone_number() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = session(&test, &user_id, SessionKind::Enrollment).await;
    put_number(&test, &token, PHONE).await;

    let keys: Vec<Key> = test
        .store
        .dump()
        .unwrap()
        .iter()
        .map(|item| twofa_core::store::key_of(item).unwrap())
        .collect();
    let rate_keys: Vec<&Key> = keys.iter().filter(|key| key.pk.starts_with("RATE#")).collect();

    assert_eq!(rate_keys.len(), 3, "{rate_keys:?}");
    for key in &rate_keys {
        assert!(!key.pk.contains("601123456"), "{key:?}");
        assert!(!key.pk.contains("198.51.100.7"), "{key:?}");
    }
}

#[tokio::test]
async fn malformed_body_names_field() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = session(&test, &user_id, SessionKind::Enrollment).await;

    let response = test.call("PUT", NUMBER_PATH, Some(&token), "{}").await;
    assert_error(&response, 400, "invalid_request");
    assert_eq!(body(&response)["field"], "phone");

    let response = test
        .call("PUT", NUMBER_PATH, Some(&token), r#"{"phone": 420601123456}"#)
        .await;
    assert_error(&response, 400, "invalid_request");
    assert_eq!(body(&response)["field"], "phone");
}

#[tokio::test]
async fn pending_record_is_not_readable_as_number() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let token = session(&test, &user_id, SessionKind::Enrollment).await;
    put_number(&test, &token, PHONE).await;
    let code = last_code(&test, PHONE);

    let item = test
        .app
        .store
        .get(&PendingSmsFactor::key(&user_id))
        .await
        .unwrap()
        .unwrap();
    let stored = serde_json::to_string(&item).unwrap();

    assert!(
        !stored.contains(&format!("\"{code}\"")),
        "the code is stored only as a keyed hash"
    );
}

/// Returns a test app whose store lets concurrent requests interleave between their calls.
fn interleaving_test_app() -> TestApp {
    let mut test = TestApp::new();
    test.app.store = Arc::new(YieldingStore(test.store.clone()));
    test
}

#[tokio::test]
async fn concurrent_right_codes_activate_once() {
    let test = interleaving_test_app();
    let user_id = sub_user(&test, "bob").await;
    let token = full_session(&test, &user_id).await;
    put_number(&test, &token, PHONE).await;
    let code = last_code(&test, PHONE);
    let request = json!({ "code": code }).to_string();

    let responses = join_all((0..20).map(|_| test.call("POST", VERIFY_PATH, Some(&token), &request))).await;

    let successes = responses.iter().filter(|response| response.status == 200).count();
    assert_eq!(
        successes,
        1,
        "{:?}",
        responses.iter().map(|response| &response.body).collect::<Vec<_>>()
    );
    for response in responses.iter().filter(|response| response.status != 200) {
        assert!([404, 409, 429].contains(&response.status), "{}", response.body);
    }
    assert_eq!(
        state(&test, &user_id).await.sms.map(|sms| sms.phone_e164).as_deref(),
        Some(PHONE)
    );
    let verified = outbox_records(&test)
        .await
        .into_iter()
        .filter(|record| record.event == NotificationEvent::SmsNumberVerified)
        .count();
    assert_eq!(verified, 1);
}

#[tokio::test]
async fn concurrent_wrong_codes_count_every_attempt() {
    let test = interleaving_test_app();
    let user_id = sub_user(&test, "bob").await;
    let token = full_session(&test, &user_id).await;
    put_number(&test, &token, PHONE).await;
    let code = last_code(&test, PHONE);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let request = json!({ "code": wrong }).to_string();

    let responses = join_all((0..20).map(|_| test.call("POST", VERIFY_PATH, Some(&token), &request))).await;

    let invalid = responses.iter().filter(|response| response.status == 401).count();
    assert!(
        invalid <= 4,
        "at most 4 wrong codes are answered invalid_code, got {invalid}"
    );
    let exhausted = responses.iter().filter(|response| response.status == 429).count();
    assert!(exhausted >= 1, "the fifth wrong code ends the pending number");
    for response in responses
        .iter()
        .filter(|response| response.status != 401 && response.status != 429)
    {
        assert_error(response, 404, "not_found");
    }
    for response in responses.iter().filter(|response| response.status == 429) {
        assert_eq!(body(response)["error"], "too_many_attempts");
    }
    assert!(state(&test, &user_id).await.sms_pending.is_none());
    let response = verify(&test, &token, &code).await;
    assert_error(&response, 404, "not_found");
}

#[tokio::test]
async fn concurrent_send_code_sends_once() {
    let test = interleaving_test_app();
    let user_id = sub_user(&test, "bob").await;
    let token = full_session(&test, &user_id).await;
    put_number(&test, &token, PHONE).await;
    test.clock.advance(30);

    let responses = join_all((0..10).map(|_| test.call("POST", SEND_CODE_PATH, Some(&token), ""))).await;

    assert_eq!(responses.iter().filter(|response| response.status == 200).count(), 1);
    for response in responses.iter().filter(|response| response.status != 200) {
        assert_rate_limited(response);
    }
    assert_eq!(test.sms_texts_to(PHONE).len(), 2);
}
