//! Handler tests of the login flow: `POST /login`, `/login/sms/resend`, `/login/sms/verify` and
//! `/login/otp/verify`, through the same dispatch as Lambda, on the in-memory store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};
use twofa_core::http::{ApiRequest, ApiResponse};
use twofa_core::model::{Challenge, OtpDevice, SmsFactor, User};
use twofa_core::ports::Clock;
use twofa_core::secret::SecretBytes;
use twofa_core::service::lockout::LOCKED_UNTIL_RESET;
use twofa_core::service::sessions::{self, Access};
use twofa_core::service::{audit, provisioning, users};
use twofa_core::store::{from_item, Condition, Item, Key, Order, QueryPage, Store, StoreError, Update, Write};
use twofa_core::testing::{find_code, TestApp};
use twofa_core::totp::{self, TotpParams};
use yielding_store::{join_all, YieldingStore};

mod yielding_store;

const PASSWORD: &str = "correct horse battery";
const PHONE: &str = "+420601234567";
/// The RFC 6238 SHA1 test key.
const RFC_KEY: &[u8] = b"12345678901234567890";

// ---------------------------------------------------------------------------------------------
// Helpers

fn body_of(response: &ApiResponse) -> Value {
    serde_json::from_str(&response.body).unwrap_or_else(|error| panic!("body {:?} is not JSON: {error}", response.body))
}

fn text<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} missing in {body}"))
}

fn retry_after(response: &ApiResponse) -> Option<i64> {
    response.header("retry-after").map(|value| value.parse().unwrap())
}

fn assert_error(response: &ApiResponse, status: u16, code: &str) {
    assert_eq!(response.status, status, "body {}", response.body);
    assert_eq!(body_of(response)["error"], code, "body {}", response.body);
}

async fn login(test: &TestApp, username: &str, password: &str) -> ApiResponse {
    let body = json!({ "username": username, "password": password }).to_string();
    test.call("POST", "/login", None, &body).await
}

async fn verify(test: &TestApp, path: &str, challenge_id: &str, code: &str) -> ApiResponse {
    let body = json!({ "challenge_id": challenge_id, "code": code }).to_string();
    test.call("POST", path, None, &body).await
}

async fn verify_sms(test: &TestApp, challenge_id: &str, code: &str) -> ApiResponse {
    verify(test, "/login/sms/verify", challenge_id, code).await
}

async fn verify_otp(test: &TestApp, challenge_id: &str, code: &str) -> ApiResponse {
    verify(test, "/login/otp/verify", challenge_id, code).await
}

async fn resend(test: &TestApp, challenge_id: &str) -> ApiResponse {
    let body = json!({ "challenge_id": challenge_id }).to_string();
    test.call("POST", "/login/sms/resend", None, &body).await
}

/// Sends a request with a chosen source IP and extra headers through the dispatch.
async fn call_from(test: &TestApp, path: &str, body: &str, source_ip: &str, headers: &[(&str, &str)]) -> ApiResponse {
    let mut header_map = HashMap::new();
    header_map.insert("content-type".to_owned(), "application/json".to_owned());
    for (name, value) in headers {
        header_map.insert((*name).to_owned(), (*value).to_owned());
    }
    let request = ApiRequest {
        method: "POST".into(),
        path: path.into(),
        headers: header_map,
        body: body.as_bytes().to_vec(),
        source_ip: source_ip.into(),
        request_id: "test-request".into(),
    };
    twofa_core::api::handle(&test.app, request, None).await
}

/// Creates a main account with an active SMS factor and returns its user id.
async fn sms_user(test: &TestApp, username: &str) -> String {
    let (_, user_id) = test.create_main_user(username, PASSWORD).await;
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    user_id
}

/// Creates a main account with an active OTP device on `secret` and returns its user id.
async fn totp_user(test: &TestApp, username: &str, secret: &[u8]) -> String {
    let (_, user_id) = test.create_main_user(username, PASSWORD).await;
    provisioning::add_active_totp(&test.app, &user_id, &SecretBytes::from_slice(secret), true)
        .await
        .unwrap();
    user_id
}

/// Logs in with the password and returns the challenge id, checking the method.
async fn start_challenge(test: &TestApp, username: &str, method: &str) -> String {
    let response = login(test, username, PASSWORD).await;
    assert_eq!(response.status, 200, "body {}", response.body);
    let body = body_of(&response);
    assert_eq!(body["status"], "challenge");
    assert_eq!(body["method"], method);
    text(&body, "challenge_id").to_owned()
}

/// Returns the code of the newest SMS sent to [`PHONE`].
fn latest_sms_code(test: &TestApp) -> String {
    let texts = test.sms_texts_to(PHONE);
    let last = texts.last().expect("no SMS was sent");
    find_code(last).expect("the SMS has no code")
}

/// Returns a well-formed code that differs from every code sent so far.
fn wrong_sms_code(test: &TestApp) -> String {
    let sent: Vec<String> = test
        .sms_texts_to(PHONE)
        .iter()
        .filter_map(|text| find_code(text))
        .collect();
    (0..10u32)
        .map(|digit| digit.to_string().repeat(6))
        .find(|code| !sent.contains(code))
        .unwrap()
}

fn totp_code_at(secret: &[u8], unix: i64) -> String {
    let params = TotpParams::issued();
    totp::generate_code(
        &SecretBytes::from_slice(secret),
        &params,
        totp::time_step(&params, unix),
    )
}

/// Returns a well-formed code that matches none of the steps t−1, t, t+1 at `unix`.
fn wrong_totp_code(secret: &[u8], unix: i64) -> String {
    let valid: Vec<String> = [-30, 0, 30]
        .iter()
        .map(|offset| totp_code_at(secret, unix + offset))
        .collect();
    (0..10u32)
        .map(|digit| digit.to_string().repeat(6))
        .find(|code| !valid.contains(code))
        .unwrap()
}

async fn load_user(test: &TestApp, user_id: &str) -> User {
    users::load(&test.app, user_id).await.unwrap().unwrap().user
}

async fn load_challenge(test: &TestApp, challenge_id: &str) -> Challenge {
    from_item(test.store.get(&Challenge::key(challenge_id)).await.unwrap().unwrap()).unwrap()
}

/// Counts stored sessions, expired ones included.
fn session_count(test: &TestApp) -> usize {
    test.store
        .dump()
        .unwrap()
        .iter()
        .filter(|item| item["pk"].as_str().is_some_and(|pk| pk.starts_with("SESSION#")))
        .count()
}

fn challenge_count(test: &TestApp) -> usize {
    test.store
        .dump()
        .unwrap()
        .iter()
        .filter(|item| item["pk"].as_str().is_some_and(|pk| pk.starts_with("CHALLENGE#")))
        .count()
}

/// Checks that a session token is accepted as a full session.
async fn assert_full_session(test: &TestApp, response: &ApiResponse) {
    assert_eq!(response.status, 200, "body {}", response.body);
    let body = body_of(response);
    assert_eq!(body["status"], "authenticated");
    let mut request = ApiRequest::default();
    request.headers.insert(
        "authorization".into(),
        format!("Bearer {}", text(&body, "session_token")),
    );
    let authenticated = sessions::authenticate(&test.app, &request, Access::Full).await.unwrap();
    assert_eq!(body["expires_at"], authenticated.session.expires_at);
}

async fn set_user_number(test: &TestApp, user_id: &str, name: &str, value: i64) {
    let write = Write::Update {
        key: User::key(user_id),
        update: Update::new().set(name, value),
        condition: Some(Condition::Exists),
    };
    test.store.write(write).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Complete logins

#[tokio::test]
async fn sms_login_completes_with_sent_code() {
    let test = TestApp::new();
    let user_id = sms_user(&test, "alice").await;

    let response = login(&test, "alice", PASSWORD).await;
    assert_eq!(response.status, 200, "body {}", response.body);
    let body = body_of(&response);
    assert_eq!(body["status"], "challenge");
    assert_eq!(body["method"], "sms");
    assert_eq!(body["expires_at"], twofa_core::testing::TEST_START + 300);
    let masked = text(&body, "phone_masked");
    assert!(!masked.contains("601234"), "masked number {masked}");
    assert!(masked.ends_with("67"), "masked number {masked}");

    let code = latest_sms_code(&test);
    let challenge = load_challenge(&test, text(&body, "challenge_id")).await;
    let stored = serde_json::to_string(&challenge).unwrap();
    assert!(!stored.contains(&code), "the code must be stored only as a hash");

    let response = verify_sms(&test, text(&body, "challenge_id"), &code).await;
    assert_full_session(&test, &response).await;

    let records = audit::list(&test.app, &user_id, 10).await.unwrap();
    let events: Vec<(&str, &str)> = records
        .iter()
        .map(|record| (record.event.as_str(), record.outcome.as_str()))
        .collect();
    assert!(events.contains(&("login_password", "success")), "audit {events:?}");
    assert!(events.contains(&("login_sms", "success")), "audit {events:?}");
    let login_records = records.iter().filter(|record| record.event.starts_with("login_"));
    assert!(login_records.clone().count() >= 2);
    assert!(login_records.clone().all(|record| record.source_ip == "198.51.100.7"));
}

#[tokio::test]
async fn totp_login_completes_with_device_code() {
    let test = TestApp::new();
    let user_id = totp_user(&test, "bob", RFC_KEY).await;

    let challenge_id = start_challenge(&test, "bob", "totp").await;
    assert!(test.sms_texts_to(PHONE).is_empty());

    let code = totp_code_at(RFC_KEY, test.clock.now());
    let response = verify_otp(&test, &challenge_id, &code).await;
    assert_full_session(&test, &response).await;

    let device: OtpDevice = from_item(test.store.get(&OtpDevice::key(&user_id)).await.unwrap().unwrap()).unwrap();
    let step = totp::time_step(&TotpParams::issued(), test.clock.now());
    assert_eq!(device.last_step, Some(step as i64));
}

#[tokio::test]
async fn login_method_selects_challenge_method() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("carol", PASSWORD).await;
    provisioning::add_active_totp(&test.app, &user_id, &SecretBytes::from_slice(RFC_KEY), true)
        .await
        .unwrap();
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();

    start_challenge(&test, "carol", "sms").await;
}

#[tokio::test]
async fn main_account_without_factor_gets_enrollment_session() {
    let test = TestApp::new();
    test.create_main_user("dave", PASSWORD).await;

    let response = login(&test, "dave", PASSWORD).await;

    assert_eq!(response.status, 200, "body {}", response.body);
    let body = body_of(&response);
    assert_eq!(body["status"], "enrollment");
    assert_eq!(body["expires_at"], twofa_core::testing::TEST_START + 600);
    let mut request = ApiRequest::default();
    request.headers.insert(
        "authorization".into(),
        format!("Bearer {}", text(&body, "session_token")),
    );
    assert!(sessions::authenticate(&test.app, &request, Access::FreshOrEnrollment)
        .await
        .is_ok());
    assert!(sessions::authenticate(&test.app, &request, Access::Full).await.is_err());
}

#[tokio::test]
async fn sub_account_without_two_factor_gets_full_session() {
    let test = TestApp::new();
    let (account_id, _) = test.create_main_user("erin", PASSWORD).await;
    test.create_sub_user(&account_id, "erin.sub", PASSWORD, false).await;

    let response = login(&test, "erin.sub", PASSWORD).await;

    assert_full_session(&test, &response).await;
    assert_eq!(challenge_count(&test), 0);
}

#[tokio::test]
async fn sub_account_with_two_factor_enrolls() {
    let test = TestApp::new();
    let (account_id, _) = test.create_main_user("frank", PASSWORD).await;
    test.create_sub_user(&account_id, "frank.sub", PASSWORD, true).await;

    let response = login(&test, "frank.sub", PASSWORD).await;

    assert_eq!(response.status, 200, "body {}", response.body);
    assert_eq!(body_of(&response)["status"], "enrollment");
}

// ---------------------------------------------------------------------------------------------
// Password step

#[tokio::test]
async fn unknown_user_and_wrong_password_answer_alike() {
    let test = TestApp::new();
    sms_user(&test, "grace").await;

    let unknown = login(&test, "nobody-here", PASSWORD).await;
    let wrong = login(&test, "grace", "wrong password!!").await;
    let invalid_name = login(&test, "x", PASSWORD).await;

    assert_error(&wrong, 401, "invalid_credentials");
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(unknown.headers, wrong.headers);
    assert_eq!(invalid_name.body, wrong.body);
    assert!(test.sms_texts_to(PHONE).is_empty(), "no SMS before a correct password");
}

#[tokio::test]
async fn username_is_case_insensitive() {
    let test = TestApp::new();
    sms_user(&test, "heidi").await;

    start_challenge(&test, "HEIDI", "sms").await;
}

#[tokio::test]
async fn ten_password_failures_lock_with_doubling_delay() {
    let test = TestApp::new();
    let user_id = sms_user(&test, "ivan").await;

    for attempt in 1..=10 {
        let response = login(&test, "ivan", "wrong password!!").await;
        assert_error(&response, 401, "invalid_credentials");
        assert_eq!(response.header("retry-after"), None, "attempt {attempt}");
    }

    let locked = login(&test, "ivan", PASSWORD).await;
    assert_error(&locked, 429, "too_many_attempts");
    assert_eq!(retry_after(&locked), Some(60));
    assert!(test.sms_texts_to(PHONE).is_empty());

    test.clock.advance(60);
    assert_error(
        &login(&test, "ivan", "wrong password!!").await,
        401,
        "invalid_credentials",
    );
    let locked = login(&test, "ivan", PASSWORD).await;
    assert_error(&locked, 429, "too_many_attempts");
    assert_eq!(retry_after(&locked), Some(120));

    test.clock.advance(120);
    start_challenge(&test, "ivan", "sms").await;
    let user = load_user(&test, &user_id).await;
    assert_eq!(user.password_failures, 0);
    assert_eq!(user.password_locked_until, 0);
}

#[tokio::test]
async fn hundred_password_failures_lock_until_reset() {
    let test = TestApp::new();
    let user_id = sms_user(&test, "judy").await;
    set_user_number(&test, &user_id, "password_failures", 99).await;

    assert_error(
        &login(&test, "judy", "wrong password!!").await,
        401,
        "invalid_credentials",
    );

    test.clock.advance(10 * 24 * 60 * 60);
    let locked = login(&test, "judy", PASSWORD).await;
    assert_error(&locked, 429, "too_many_attempts");
    assert_eq!(locked.header("retry-after"), None, "waiting does not end this lock");
    assert_eq!(
        load_user(&test, &user_id).await.password_locked_until,
        LOCKED_UNTIL_RESET
    );

    provisioning::set_password(&test.app, "judy", &PASSWORD.into())
        .await
        .unwrap();
    start_challenge(&test, "judy", "sms").await;
}

#[tokio::test]
async fn password_failures_per_ip_are_limited() {
    let test = TestApp::new();
    sms_user(&test, "ken").await;
    for attempt in 0..30 {
        let body = json!({ "username": format!("nobody-{attempt}"), "password": "wrong password!!" }).to_string();
        let forwarded = format!("203.0.113.{attempt}");
        let response = call_from(&test, "/login", &body, "192.0.2.10", &[("x-forwarded-for", &forwarded)]).await;
        assert_error(&response, 401, "invalid_credentials");
    }

    let correct = json!({ "username": "ken", "password": PASSWORD }).to_string();
    let limited = call_from(
        &test,
        "/login",
        &correct,
        "192.0.2.10",
        &[("x-forwarded-for", "203.0.113.200")],
    )
    .await;
    assert_error(&limited, 429, "rate_limited");
    assert!(retry_after(&limited).is_some_and(|seconds| seconds > 0 && seconds <= 600));

    let other_address = call_from(&test, "/login", &correct, "192.0.2.11", &[]).await;
    assert_eq!(other_address.status, 200, "body {}", other_address.body);
}

#[tokio::test]
async fn concurrent_password_failures_stay_within_ip_limit() {
    let mut test = TestApp::new();
    test.app.store = Arc::new(YieldingStore(test.store.clone()));
    let bodies: Vec<String> = (0..45)
        .map(|index| json!({ "username": format!("nobody-{index}"), "password": "wrong password!!" }).to_string())
        .collect();

    let responses = join_all(
        bodies
            .iter()
            .map(|body| call_from(&test, "/login", body, "192.0.2.20", &[])),
    )
    .await;

    let statuses: Vec<u16> = responses.iter().map(|response| response.status).collect();
    assert_eq!(
        statuses.iter().filter(|&&status| status == 401).count(),
        30,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&status| status == 429).count(),
        15,
        "{statuses:?}"
    );
    for limited in responses.iter().filter(|response| response.status == 429) {
        assert_error(limited, 429, "rate_limited");
        assert!(retry_after(limited).is_some());
    }
}

#[tokio::test]
async fn correct_passwords_give_their_ip_place_back() {
    let test = TestApp::new();
    let (account_id, _) = test.create_main_user("lena.main", PASSWORD).await;
    test.create_sub_user(&account_id, "lena", PASSWORD, false).await;
    let wrong =
        |attempt: usize| json!({ "username": format!("nobody-{attempt}"), "password": "wrong password!!" }).to_string();
    let correct = json!({ "username": "lena", "password": PASSWORD }).to_string();

    for attempt in 0..29 {
        assert_error(
            &call_from(&test, "/login", &wrong(attempt), "192.0.2.30", &[]).await,
            401,
            "invalid_credentials",
        );
    }
    for _ in 0..5 {
        let response = call_from(&test, "/login", &correct, "192.0.2.30", &[]).await;
        assert_eq!(response.status, 200, "body {}", response.body);
    }

    assert_error(
        &call_from(&test, "/login", &wrong(29), "192.0.2.30", &[]).await,
        401,
        "invalid_credentials",
    );
    assert_error(
        &call_from(&test, "/login", &wrong(30), "192.0.2.30", &[]).await,
        429,
        "rate_limited",
    );
}

#[tokio::test]
async fn unknown_username_locks_like_a_real_one() {
    let test = TestApp::new();
    sms_user(&test, "olga").await;

    for attempt in 1..=10 {
        let real = login(&test, "olga", "wrong password!!").await;
        let unknown = login(&test, "olgaa", "wrong password!!").await;
        assert_error(&real, 401, "invalid_credentials");
        assert_eq!(
            (unknown.status, &unknown.body),
            (real.status, &real.body),
            "attempt {attempt}"
        );
    }

    let real = login(&test, "olga", PASSWORD).await;
    let unknown = login(&test, "OLGAA", PASSWORD).await;
    assert_error(&real, 429, "too_many_attempts");
    assert_eq!((unknown.status, &unknown.body), (real.status, &real.body));
    assert_eq!(retry_after(&unknown), retry_after(&real));
    assert_eq!(retry_after(&unknown), Some(60));

    test.clock.advance(60);
    let real = login(&test, "olga", "wrong password!!").await;
    let unknown = login(&test, "olgaa", "wrong password!!").await;
    assert_error(&unknown, 401, "invalid_credentials");
    assert_eq!((unknown.status, &unknown.body), (real.status, &real.body));
    let real = login(&test, "olga", "wrong password!!").await;
    let unknown = login(&test, "olgaa", "wrong password!!").await;
    assert_error(&unknown, 429, "too_many_attempts");
    assert_eq!(retry_after(&unknown), Some(120));
    assert_eq!(retry_after(&real), Some(120));
}

#[tokio::test]
async fn probes_of_locked_username_count_per_ip() {
    let test = TestApp::new();
    sms_user(&test, "quido").await;
    for _ in 0..10 {
        login(&test, "quido", "wrong password!!").await;
    }
    let probe = json!({ "username": "quido", "password": "wrong password!!" }).to_string();

    for _ in 0..30 {
        assert_error(
            &call_from(&test, "/login", &probe, "192.0.2.50", &[]).await,
            429,
            "too_many_attempts",
        );
    }

    assert_error(
        &call_from(&test, "/login", &probe, "192.0.2.50", &[]).await,
        429,
        "rate_limited",
    );
}

#[tokio::test]
async fn unknown_username_counter_holds_no_username() {
    let test = TestApp::new();

    login(&test, "secret-typed-as-name", "wrong password!!").await;

    let items = test.store.dump().unwrap();
    let counter = items
        .iter()
        .find(|item| item["pk"].as_str().unwrap().starts_with("LOGINFAIL#"))
        .expect("a counter item for the unknown username");
    assert_eq!(counter["password_failures"], 1);
    assert!(counter["expires_at"].as_i64().unwrap() > test.clock.now());
    assert!(!serde_json::to_string(&items).unwrap().contains("secret-typed-as-name"));
}

// ---------------------------------------------------------------------------------------------
// Request validation

#[tokio::test]
async fn bad_request_bodies_name_the_field() {
    let test = TestApp::new();
    let oversized = json!({ "username": "a".repeat(9000), "password": PASSWORD }).to_string();
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("/login", "{\"username\": ".into(), None),
        ("/login", "\"alice\"".into(), None),
        ("/login", json!({ "password": PASSWORD }).to_string(), Some("username")),
        ("/login", json!({ "username": "alice" }).to_string(), Some("password")),
        (
            "/login",
            json!({ "username": 42, "password": PASSWORD }).to_string(),
            Some("username"),
        ),
        (
            "/login",
            json!({ "username": "alice", "password": ["x"] }).to_string(),
            Some("password"),
        ),
        ("/login", oversized, None),
        (
            "/login/sms/verify",
            json!({ "code": "123456" }).to_string(),
            Some("challenge_id"),
        ),
        (
            "/login/sms/verify",
            json!({ "challenge_id": "abc" }).to_string(),
            Some("code"),
        ),
        (
            "/login/otp/verify",
            json!({ "challenge_id": "abc", "code": 123456 }).to_string(),
            Some("code"),
        ),
        (
            "/login/otp/verify",
            json!({ "challenge_id": "a/b", "code": "123456" }).to_string(),
            Some("challenge_id"),
        ),
        ("/login/sms/resend", "{}".into(), Some("challenge_id")),
        (
            "/login/sms/resend",
            json!({ "challenge_id": 7 }).to_string(),
            Some("challenge_id"),
        ),
    ];

    for (path, body, field) in cases {
        let response = test.call("POST", path, None, &body).await;
        assert_error(&response, 400, "invalid_request");
        assert_eq!(body_of(&response)["field"].as_str(), field, "{path} {body:.60}");
    }
}

// ---------------------------------------------------------------------------------------------
// Challenges

#[tokio::test]
async fn five_wrong_codes_end_challenge() {
    let test = TestApp::new();
    sms_user(&test, "leo").await;
    let challenge_id = start_challenge(&test, "leo", "sms").await;
    let code = latest_sms_code(&test);
    let wrong = wrong_sms_code(&test);

    for _ in 0..5 {
        let response = verify_sms(&test, &challenge_id, &wrong).await;
        assert_error(&response, 401, "invalid_code");
        assert_eq!(body_of(&response)["field"], Value::Null);
    }

    assert_error(&verify_sms(&test, &challenge_id, &code).await, 429, "too_many_attempts");
    assert_eq!(load_challenge(&test, &challenge_id).await.attempts, 5);
    assert_eq!(session_count(&test), 0);
}

#[tokio::test]
async fn unknown_and_expired_challenges_are_gone() {
    let test = TestApp::new();
    sms_user(&test, "mia").await;

    assert_error(
        &verify_sms(&test, "AAAAAAAAAAAAAAAAAAAAAA", "123456").await,
        410,
        "challenge_expired",
    );
    assert_error(&resend(&test, "AAAAAAAAAAAAAAAAAAAAAA").await, 410, "challenge_expired");

    let challenge_id = start_challenge(&test, "mia", "sms").await;
    let code = latest_sms_code(&test);
    test.clock.advance(300);
    assert_error(&verify_sms(&test, &challenge_id, &code).await, 410, "challenge_expired");
    assert_error(&resend(&test, &challenge_id).await, 410, "challenge_expired");
}

#[tokio::test]
async fn completed_challenge_cannot_be_used_again() {
    let test = TestApp::new();
    sms_user(&test, "nina").await;
    let challenge_id = start_challenge(&test, "nina", "sms").await;
    let code = latest_sms_code(&test);

    assert_full_session(&test, &verify_sms(&test, &challenge_id, &code).await).await;

    assert_error(&verify_sms(&test, &challenge_id, &code).await, 410, "challenge_expired");
    assert_eq!(session_count(&test), 1);
}

#[tokio::test]
async fn sms_code_to_removed_number_fails() {
    let test = TestApp::new();
    let user_id = sms_user(&test, "nora").await;

    // The number is deleted after the code was sent, as a user does with a lost phone.
    let challenge_id = start_challenge(&test, "nora", "sms").await;
    let code = latest_sms_code(&test);
    provisioning::add_active_totp(&test.app, &user_id, &SecretBytes::from_slice(RFC_KEY), true)
        .await
        .unwrap();
    let delete = Write::Delete {
        key: SmsFactor::key(&user_id),
        condition: None,
    };
    test.app.store.write(delete).await.unwrap();
    assert_error(&verify_sms(&test, &challenge_id, &code).await, 410, "challenge_expired");

    // The number is replaced by another one after the code was sent.
    provisioning::add_active_sms(&test.app, &user_id, PHONE).await.unwrap();
    let challenge_id = start_challenge(&test, "nora", "sms").await;
    let code = latest_sms_code(&test);
    provisioning::add_active_sms(&test.app, &user_id, "+420601999888")
        .await
        .unwrap();
    assert_error(&verify_sms(&test, &challenge_id, &code).await, 410, "challenge_expired");

    assert_eq!(session_count(&test), 0);
}

#[tokio::test]
async fn verify_route_must_match_challenge_method() {
    let test = TestApp::new();
    sms_user(&test, "olga").await;
    totp_user(&test, "oscar", RFC_KEY).await;
    let sms_challenge = start_challenge(&test, "olga", "sms").await;
    let totp_challenge = start_challenge(&test, "oscar", "totp").await;

    let response = verify_otp(&test, &sms_challenge, "123456").await;
    assert_error(&response, 400, "invalid_request");
    assert_eq!(body_of(&response)["field"], "challenge_id");

    let response = verify_sms(&test, &totp_challenge, "123456").await;
    assert_error(&response, 400, "invalid_request");
    assert_eq!(body_of(&response)["field"], "challenge_id");

    let response = resend(&test, &totp_challenge).await;
    assert_error(&response, 400, "invalid_request");
    assert_eq!(body_of(&response)["field"], "challenge_id");

    assert_eq!(
        load_challenge(&test, &sms_challenge).await.attempts,
        0,
        "a wrong route is no attempt"
    );
}

#[tokio::test]
async fn failed_sms_send_leaves_no_challenge() {
    let test = TestApp::new();
    sms_user(&test, "paul").await;
    test.outbox.set_failing(true);

    let response = login(&test, "paul", PASSWORD).await;

    assert_error(&response, 503, "service_unavailable");
    assert!(retry_after(&response).is_some());
    assert_eq!(challenge_count(&test), 0);
}

#[tokio::test]
async fn failed_resend_can_be_retried_at_once() {
    let test = TestApp::new();
    sms_user(&test, "petra").await;
    let challenge_id = start_challenge(&test, "petra", "sms").await;
    test.clock.advance(30);

    test.outbox.set_failing(true);
    let failed = resend(&test, &challenge_id).await;
    test.outbox.set_failing(false);
    let retried = resend(&test, &challenge_id).await;

    assert_error(&failed, 503, "service_unavailable");
    assert_eq!(retried.status, 200, "body {}", retried.body);
    assert_eq!(load_challenge(&test, &challenge_id).await.resends, 2);
    let code = latest_sms_code(&test);
    assert_eq!(verify_sms(&test, &challenge_id, &code).await.status, 200);
}

#[tokio::test]
async fn rejected_resends_add_no_codes() {
    let test = TestApp::new();
    sms_user(&test, "radek").await;
    let mut challenge_ids = Vec::new();
    for _ in 0..5 {
        challenge_ids.push(start_challenge(&test, "radek", "sms").await);
    }
    test.clock.advance(30);

    for _ in 0..10 {
        let response = resend(&test, &challenge_ids[0]).await;
        assert_error(&response, 429, "rate_limited");
    }

    let challenge = load_challenge(&test, &challenge_ids[0]).await;
    assert_eq!(challenge.code_hashes.len(), 1);
    assert_eq!(challenge.resends, 0);
}

// ---------------------------------------------------------------------------------------------
// Second-factor lockout

#[tokio::test]
async fn ten_code_failures_lock_with_doubling_delay() {
    let test = TestApp::new();
    let user_id = totp_user(&test, "quinn", RFC_KEY).await;
    let wrong = |test: &TestApp| wrong_totp_code(RFC_KEY, test.clock.now());

    let first = start_challenge(&test, "quinn", "totp").await;
    for _ in 0..5 {
        assert_error(&verify_otp(&test, &first, &wrong(&test)).await, 401, "invalid_code");
    }
    let second = start_challenge(&test, "quinn", "totp").await;
    for _ in 0..4 {
        assert_error(&verify_otp(&test, &second, &wrong(&test)).await, 401, "invalid_code");
    }
    let third = start_challenge(&test, "quinn", "totp").await;
    assert_error(&verify_otp(&test, &second, &wrong(&test)).await, 401, "invalid_code");
    assert_eq!(load_user(&test, &user_id).await.factor_failures, 10);

    let locked = verify_otp(&test, &third, &totp_code_at(RFC_KEY, test.clock.now())).await;
    assert_error(&locked, 429, "too_many_attempts");
    assert_eq!(retry_after(&locked), Some(60));
    assert_eq!(
        load_challenge(&test, &third).await.attempts,
        0,
        "a locked attempt is not checked"
    );
    let locked = login(&test, "quinn", PASSWORD).await;
    assert_error(&locked, 429, "too_many_attempts");
    assert_eq!(retry_after(&locked), Some(60));

    test.clock.advance(60);
    let fourth = start_challenge(&test, "quinn", "totp").await;
    assert_error(&verify_otp(&test, &fourth, &wrong(&test)).await, 401, "invalid_code");
    let locked = verify_otp(&test, &fourth, &totp_code_at(RFC_KEY, test.clock.now())).await;
    assert_error(&locked, 429, "too_many_attempts");
    assert_eq!(retry_after(&locked), Some(120));

    test.clock.advance(119);
    assert_eq!(retry_after(&verify_otp(&test, &fourth, "000000").await), Some(1));
    test.clock.advance(1);
    let response = verify_otp(&test, &fourth, &totp_code_at(RFC_KEY, test.clock.now())).await;
    assert_full_session(&test, &response).await;
    let user = load_user(&test, &user_id).await;
    assert_eq!(user.factor_failures, 0);
    assert_eq!(user.factor_locked_until, 0);
}

#[tokio::test]
async fn new_password_login_keeps_code_failure_count() {
    let test = TestApp::new();
    let user_id = sms_user(&test, "rita").await;

    let first = start_challenge(&test, "rita", "sms").await;
    let wrong = wrong_sms_code(&test);
    for _ in 0..3 {
        assert_error(&verify_sms(&test, &first, &wrong).await, 401, "invalid_code");
    }
    start_challenge(&test, "rita", "sms").await;

    let user = load_user(&test, &user_id).await;
    assert_eq!(user.factor_failures, 3);
    assert_eq!(user.password_failures, 0);
}

#[tokio::test]
async fn hundred_code_failures_lock_until_reset() {
    let test = TestApp::new();
    let user_id = totp_user(&test, "sam", RFC_KEY).await;
    set_user_number(&test, &user_id, "factor_failures", 99).await;
    let challenge_id = start_challenge(&test, "sam", "totp").await;

    let wrong = wrong_totp_code(RFC_KEY, test.clock.now());
    assert_error(&verify_otp(&test, &challenge_id, &wrong).await, 401, "invalid_code");

    test.clock.advance(30 * 24 * 60 * 60);
    let locked = login(&test, "sam", PASSWORD).await;
    assert_error(&locked, 429, "too_many_attempts");
    assert_eq!(locked.header("retry-after"), None);
    assert_eq!(load_user(&test, &user_id).await.factor_locked_until, LOCKED_UNTIL_RESET);

    provisioning::reset_two_factor(&test.app, "sam").await.unwrap();
    let response = login(&test, "sam", PASSWORD).await;
    assert_eq!(body_of(&response)["status"], "enrollment");
}

// ---------------------------------------------------------------------------------------------
// Resend

#[tokio::test]
async fn resend_keeps_attempts_and_earlier_codes() {
    let test = TestApp::new();
    sms_user(&test, "tina").await;
    let challenge_id = start_challenge(&test, "tina", "sms").await;
    let first_code = latest_sms_code(&test);
    let wrong = wrong_sms_code(&test);
    for _ in 0..2 {
        assert_error(&verify_sms(&test, &challenge_id, &wrong).await, 401, "invalid_code");
    }

    test.clock.advance(30);
    let response = resend(&test, &challenge_id).await;
    assert_eq!(response.status, 200, "body {}", response.body);
    let body = body_of(&response);
    assert_eq!(body["challenge_id"], challenge_id.as_str());
    assert_eq!(body["method"], "sms");
    assert!(body["phone_masked"].is_string());
    assert_eq!(test.sms_texts_to(PHONE).len(), 2);
    let challenge = load_challenge(&test, &challenge_id).await;
    assert_eq!(challenge.attempts, 2);
    assert_eq!(challenge.code_hashes.len(), 2);
    assert_eq!(challenge.resends, 1);

    let wrong = wrong_sms_code(&test);
    for _ in 0..2 {
        assert_error(&verify_sms(&test, &challenge_id, &wrong).await, 401, "invalid_code");
    }
    let response = verify_sms(&test, &challenge_id, &first_code).await;
    assert_full_session(&test, &response).await;
    assert_eq!(load_challenge(&test, &challenge_id).await.attempts, 5);
}

#[tokio::test]
async fn resent_code_completes_challenge() {
    let test = TestApp::new();
    sms_user(&test, "uma").await;
    let challenge_id = start_challenge(&test, "uma", "sms").await;

    test.clock.advance(45);
    assert_eq!(resend(&test, &challenge_id).await.status, 200);

    let response = verify_sms(&test, &challenge_id, &latest_sms_code(&test)).await;
    assert_full_session(&test, &response).await;
}

#[tokio::test]
async fn resend_waits_thirty_seconds_and_stops_after_three() {
    let test = TestApp::new();
    sms_user(&test, "victor").await;
    let challenge_id = start_challenge(&test, "victor", "sms").await;

    test.clock.advance(10);
    let early = resend(&test, &challenge_id).await;
    assert_error(&early, 429, "rate_limited");
    assert_eq!(retry_after(&early), Some(20));

    for _ in 0..3 {
        test.clock.advance(30);
        let response = resend(&test, &challenge_id).await;
        assert_eq!(response.status, 200, "body {}", response.body);
    }

    test.clock.advance(30);
    let exhausted = resend(&test, &challenge_id).await;
    assert_error(&exhausted, 429, "rate_limited");
    assert!(retry_after(&exhausted).is_some());
    assert_eq!(test.sms_texts_to(PHONE).len(), 4);
}

#[tokio::test]
async fn resend_refused_after_attempts_run_out() {
    let test = TestApp::new();
    sms_user(&test, "wendy").await;
    let challenge_id = start_challenge(&test, "wendy", "sms").await;
    let wrong = wrong_sms_code(&test);
    for _ in 0..5 {
        verify_sms(&test, &challenge_id, &wrong).await;
    }

    test.clock.advance(30);
    assert_error(&resend(&test, &challenge_id).await, 429, "too_many_attempts");
    assert_eq!(test.sms_texts_to(PHONE).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Field cases with the RFC 6238 key

/// Builds a TestApp with the clock at `unix` and a TOTP user `rfc` on the RFC key.
async fn rfc_app(unix: i64) -> TestApp {
    let test = TestApp::new();
    test.clock.set(unix);
    totp_user(&test, "rfc", RFC_KEY).await;
    test
}

#[tokio::test]
async fn leading_zeros_are_kept_and_malformed_codes_count() {
    let test = rfc_app(1_234_567_890).await;
    let challenge_id = start_challenge(&test, "rfc", "totp").await;

    for malformed in ["5924", "05924", "+5924", "0059240", "００５９２４"] {
        let response = verify_otp(&test, &challenge_id, malformed).await;
        assert_error(&response, 401, "invalid_code");
        assert_eq!(body_of(&response)["field"], "code", "code {malformed}");
    }
    assert_eq!(
        load_challenge(&test, &challenge_id).await.attempts,
        5,
        "each malformed code is an attempt"
    );
    assert_error(
        &verify_otp(&test, &challenge_id, "005924").await,
        429,
        "too_many_attempts",
    );

    let challenge_id = start_challenge(&test, "rfc", "totp").await;
    assert_full_session(&test, &verify_otp(&test, &challenge_id, "005924").await).await;
}

#[tokio::test]
async fn window_accepts_one_step_either_side() {
    for code in ["081804", "050471", "266759"] {
        let test = rfc_app(1_111_111_111).await;
        let challenge_id = start_challenge(&test, "rfc", "totp").await;
        let response = verify_otp(&test, &challenge_id, code).await;
        assert_eq!(response.status, 200, "code {code}: {}", response.body);
    }

    let test = rfc_app(1_111_111_111).await;
    let challenge_id = start_challenge(&test, "rfc", "totp").await;
    for code in ["731029", "306183"] {
        assert_error(&verify_otp(&test, &challenge_id, code).await, 401, "invalid_code");
    }
}

#[tokio::test]
async fn totp_code_is_never_accepted_twice() {
    let test = rfc_app(1_111_111_111).await;
    let challenge_id = start_challenge(&test, "rfc", "totp").await;
    assert_error(&verify_otp(&test, &challenge_id, "731029").await, 401, "invalid_code");
    assert_full_session(&test, &verify_otp(&test, &challenge_id, "050471").await).await;

    let challenge_id = start_challenge(&test, "rfc", "totp").await;
    assert_error(&verify_otp(&test, &challenge_id, "050471").await, 401, "invalid_code");
    assert_error(&verify_otp(&test, &challenge_id, "081804").await, 401, "invalid_code");
    assert_full_session(&test, &verify_otp(&test, &challenge_id, "266759").await).await;
}

#[tokio::test]
async fn wrong_guess_does_not_block_right_code() {
    let test = rfc_app(1_111_111_111).await;
    let challenge_id = start_challenge(&test, "rfc", "totp").await;

    assert_error(&verify_otp(&test, &challenge_id, "306183").await, 401, "invalid_code");

    assert_full_session(&test, &verify_otp(&test, &challenge_id, "050471").await).await;
}

#[tokio::test]
async fn legacy_80_bit_secret_verifies() {
    let test = TestApp::new();
    test.clock.set(1_111_111_111);
    totp_user(&test, "legacy", b"1234567890").await;
    let challenge_id = start_challenge(&test, "legacy", "totp").await;

    let response = verify_otp(&test, &challenge_id, &totp_code_at(b"1234567890", 1_111_111_111)).await;

    assert_full_session(&test, &response).await;
}

#[tokio::test]
async fn too_short_secret_asks_for_reenrollment() {
    let test = TestApp::new();
    totp_user(&test, "tiny", b"12345").await;
    let challenge_id = start_challenge(&test, "tiny", "totp").await;

    let response = verify_otp(&test, &challenge_id, "123456").await;

    assert_error(&response, 409, "factor_required");
    assert_eq!(session_count(&test), 0);
}

// ---------------------------------------------------------------------------------------------
// Races

async fn verify_in_parallel(
    test: Arc<TestApp>,
    path: &'static str,
    challenge_ids: Vec<String>,
    code: String,
) -> Vec<ApiResponse> {
    let mut tasks = tokio::task::JoinSet::new();
    for challenge_id in challenge_ids {
        let test = test.clone();
        let code = code.clone();
        tasks.spawn(async move { verify(&test, path, &challenge_id, &code).await });
    }
    let mut responses = Vec::new();
    while let Some(response) = tasks.join_next().await {
        responses.push(response.unwrap());
    }
    responses
}

fn successes(responses: &[ApiResponse]) -> usize {
    responses.iter().filter(|response| response.status == 200).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_sms_verifications_give_one_session() {
    let test = Arc::new(TestApp::new());
    sms_user(&test, "xena").await;
    let challenge_id = start_challenge(&test, "xena", "sms").await;
    let code = latest_sms_code(&test);

    let responses = verify_in_parallel(test.clone(), "/login/sms/verify", vec![challenge_id.clone(); 20], code).await;

    let statuses: Vec<u16> = responses.iter().map(|response| response.status).collect();
    assert_eq!(successes(&responses), 1, "statuses {statuses:?}");
    assert!(
        statuses.iter().all(|status| [200, 410, 429].contains(status)),
        "statuses {statuses:?}"
    );
    assert_eq!(session_count(&test), 1);
    let attempts = load_challenge(&test, &challenge_id).await.attempts;
    assert!((1..=5).contains(&attempts), "attempts {attempts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_codes_are_all_counted() {
    let test = Arc::new(TestApp::new());
    let user_id = sms_user(&test, "xavier").await;
    let challenge_id = start_challenge(&test, "xavier", "sms").await;
    let wrong = wrong_sms_code(&test);

    let responses = verify_in_parallel(test.clone(), "/login/sms/verify", vec![challenge_id.clone(); 20], wrong).await;

    let rejected = responses.iter().filter(|response| response.status == 401).count();
    let exhausted = responses.iter().filter(|response| response.status == 429).count();
    assert_eq!(rejected, 5);
    assert_eq!(exhausted, 15);
    assert_eq!(load_challenge(&test, &challenge_id).await.attempts, 5);
    assert_eq!(load_user(&test, &user_id).await.factor_failures, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_totp_verifications_give_one_session() {
    let test = Arc::new(TestApp::new());
    totp_user(&test, "yuri", RFC_KEY).await;
    let challenge_id = start_challenge(&test, "yuri", "totp").await;
    let code = totp_code_at(RFC_KEY, test.clock.now());

    let responses = verify_in_parallel(test.clone(), "/login/otp/verify", vec![challenge_id; 20], code).await;

    assert_eq!(successes(&responses), 1);
    assert_eq!(session_count(&test), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_totp_code_across_challenges_gives_one_session() {
    let test = Arc::new(TestApp::new());
    totp_user(&test, "zoe", RFC_KEY).await;
    let mut challenge_ids = Vec::new();
    for _ in 0..4 {
        let challenge_id = start_challenge(&test, "zoe", "totp").await;
        challenge_ids.extend(std::iter::repeat_n(challenge_id, 5));
    }
    let code = totp_code_at(RFC_KEY, test.clock.now());

    let responses = verify_in_parallel(test.clone(), "/login/otp/verify", challenge_ids, code).await;

    assert_eq!(successes(&responses), 1);
    assert_eq!(session_count(&test), 1);
}

#[tokio::test]
async fn concurrent_code_guesses_stay_within_ip_limit() {
    let mut test = TestApp::new();
    let user_id = totp_user(&test, "pavla", RFC_KEY).await;
    let mut challenge_ids = Vec::new();
    for _ in 0..8 {
        challenge_ids.push(start_challenge(&test, "pavla", "totp").await);
    }
    test.app.store = Arc::new(YieldingStore(test.store.clone()));
    let wrong = wrong_totp_code(RFC_KEY, test.clock.now());
    let bodies: Vec<String> = challenge_ids
        .iter()
        .flat_map(|challenge_id| {
            std::iter::repeat_n(json!({ "challenge_id": challenge_id, "code": wrong }).to_string(), 5)
        })
        .collect();

    let responses = join_all(
        bodies
            .iter()
            .map(|body| call_from(&test, "/login/otp/verify", body, "192.0.2.40", &[])),
    )
    .await;

    let codes: Vec<String> = responses
        .iter()
        .map(|response| body_of(response)["error"].to_string())
        .collect();
    assert_eq!(
        codes.iter().filter(|code| code.contains("invalid_code")).count(),
        30,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|code| code.contains("rate_limited")).count(),
        10,
        "{codes:?}"
    );
    assert_eq!(load_user(&test, &user_id).await.factor_failures, 30);
}

// ---------------------------------------------------------------------------------------------
// Failing closed

/// Failure modes of [`FailingStore`].
const HEALTHY: u8 = 0;
const FAIL_ALL: u8 = 1;
const FAIL_QUERIES: u8 = 2;

/// A store that forwards to the test's memory store, or fails like a throttled table in the
/// failing modes.
struct FailingStore {
    inner: Arc<dyn Store>,
    mode: Arc<AtomicU8>,
}

impl FailingStore {
    fn fail(&self, is_query: bool) -> Result<(), StoreError> {
        match self.mode.load(Ordering::SeqCst) {
            FAIL_ALL => Err(StoreError::Unavailable("throttled".into())),
            FAIL_QUERIES if is_query => Err(StoreError::Unavailable("throttled".into())),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Store for FailingStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.fail(false)?;
        self.inner.get(key).await
    }

    async fn query(&self, pk: &str, sk_prefix: &str, order: Order, limit: usize) -> Result<QueryPage, StoreError> {
        self.fail(true)?;
        self.inner.query(pk, sk_prefix, order, limit).await
    }

    async fn write(&self, write: Write) -> Result<(), StoreError> {
        self.fail(false)?;
        self.inner.write(write).await
    }

    async fn update_returning(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> Result<Item, StoreError> {
        self.fail(false)?;
        self.inner.update_returning(key, update, condition).await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.fail(false)?;
        self.inner.transact(writes).await
    }
}

fn with_failing_store(mut test: TestApp) -> (TestApp, Arc<AtomicU8>) {
    let mode = Arc::new(AtomicU8::new(HEALTHY));
    test.app.store = Arc::new(FailingStore {
        inner: test.store.clone(),
        mode: mode.clone(),
    });
    (test, mode)
}

#[tokio::test]
async fn store_failure_denies_login() {
    let test = TestApp::new();
    sms_user(&test, "amber").await;
    let (test, mode) = with_failing_store(test);

    for failing in [FAIL_ALL, FAIL_QUERIES] {
        mode.store(failing, Ordering::SeqCst);
        let response = login(&test, "amber", PASSWORD).await;
        assert_error(&response, 503, "service_unavailable");
        assert!(retry_after(&response).is_some());
        assert!(!response.body.contains("throttled"));
    }
    assert_eq!(session_count(&test), 0);
    assert!(test.sms_texts_to(PHONE).is_empty());
}

#[tokio::test]
async fn store_failure_denies_code_check() {
    let test = TestApp::new();
    sms_user(&test, "bella").await;
    let (test, mode) = with_failing_store(test);
    let challenge_id = start_challenge(&test, "bella", "sms").await;
    let code = latest_sms_code(&test);

    for failing in [FAIL_ALL, FAIL_QUERIES] {
        mode.store(failing, Ordering::SeqCst);
        assert_error(
            &verify_sms(&test, &challenge_id, &code).await,
            503,
            "service_unavailable",
        );
        assert_error(&resend(&test, &challenge_id).await, 503, "service_unavailable");
    }
    assert_eq!(session_count(&test), 0);

    mode.store(HEALTHY, Ordering::SeqCst);
    assert_full_session(&test, &verify_sms(&test, &challenge_id, &code).await).await;
}

// ---------------------------------------------------------------------------------------------
// Logging

/// Log output captured in memory.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs a process-wide subscriber that captures every log line of this test binary.
///
/// A thread-local subscriber (`set_default`) missed events now and then, because other tests running
/// in parallel threads cache callsite interest for the global no-op subscriber. The global one also
/// captures lines logged on blocking threads, and the logs of the other tests are checked with it.
fn captured_logs() -> LogBuffer {
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in this binary");
        logs
    })
    .clone()
}

#[tokio::test]
async fn logs_hold_no_secrets() {
    let logs = captured_logs();
    let test = TestApp::new();
    let user_id = sms_user(&test, "logan").await;

    login(&test, "logan", "wrong password!!").await;
    let challenge_id = start_challenge(&test, "logan", "sms").await;
    let code = latest_sms_code(&test);
    let wrong = wrong_sms_code(&test);
    verify_sms(&test, &challenge_id, &wrong).await;
    let response = verify_sms(&test, &challenge_id, &code).await;
    let token = text(&body_of(&response), "session_token").to_owned();

    let output = logs.text();
    assert!(output.contains(&user_id), "logs name the user: {output}");
    assert!(output.contains("outcome"), "logs carry outcomes: {output}");
    assert!(output.contains("request_id"), "logs carry the request id: {output}");
    for secret in [PASSWORD, "wrong password!!", &code, &wrong, PHONE, "601234567", &token] {
        assert!(!output.contains(secret), "logs contain {secret}");
    }
}
