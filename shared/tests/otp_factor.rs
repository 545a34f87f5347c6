//! Handler tests of the OTP-app factor, checked with independent clients: `zbarimg` decodes the QR
//! code, `pyotp` parses the `otpauth` URI, and `oathtool` computes the codes a user's app would show.
//!
//! When a tool is missing, its tests print a skip message and pass, unless `TWOFA_REQUIRE_TOOLS=1`
//! makes them fail. `TWOFA_PYTHON` names a Python interpreter with pyotp (default `python3`).

use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;
use twofa_core::http::{ApiRequest, ApiResponse};
use twofa_core::model::{Method, OutboxRecord, SessionKind, User};
use twofa_core::secret::SecretBytes;
use twofa_core::service::otp_factor::{MAX_ACTIVATION_ATTEMPTS, PENDING_DEVICE_SECONDS};
use twofa_core::service::sessions::{self, Access};
use twofa_core::service::{audit, provisioning, users};
use twofa_core::store::from_item;
use twofa_core::testing::{TestApp, TEST_START};
use twofa_core::totp;

const PASSWORD: &str = "correct horse battery staple";
const DEVICE: &str = "/security/otp/device";
const VERIFY: &str = "/security/otp/device/verify";

/// "Now" of most tests: 10 s into a 30-second time step, and within the 5-minute freshness window
/// of sessions issued at [`TEST_START`]. The code of step t+k is computed at `T + 30 * k`.
const T: i64 = TEST_START + 10;

// ---------------------------------------------------------------- independent tools

fn tools_required() -> bool {
    std::env::var("TWOFA_REQUIRE_TOOLS").is_ok_and(|value| value == "1")
}

/// Returns true when `program --version` runs; otherwise prints a skip message, or panics when
/// `TWOFA_REQUIRE_TOOLS=1`.
fn has_tool(program: &str, test: &str) -> bool {
    let runs = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !runs {
        assert!(!tools_required(), "{program} is missing and TWOFA_REQUIRE_TOOLS=1");
        eprintln!("skipping {test}: {program} is not installed");
    }
    runs
}

fn python() -> String {
    std::env::var("TWOFA_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Returns true when the Python of `TWOFA_PYTHON` imports pyotp; otherwise skips like [`has_tool`].
fn has_pyotp(test: &str) -> bool {
    let runs = Command::new(python())
        .args(["-c", "import pyotp"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !runs {
        assert!(
            !tools_required(),
            "{} cannot import pyotp and TWOFA_REQUIRE_TOOLS=1",
            python()
        );
        eprintln!("skipping {test}: {} cannot import pyotp", python());
    }
    runs
}

/// Formats Unix seconds as `oathtool --now` reads them, with `date -u`.
fn oathtool_time(unix: i64) -> String {
    let output = Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "date failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Returns the code that `oathtool` computes from a Base32 key at Unix time `unix`.
fn oathtool_code(key_base32: &str, unix: i64) -> String {
    let output = Command::new("oathtool")
        .args(["--totp", "-b", key_base32, "--now", &oathtool_time(unix)])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let code = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(code.len(), 6, "oathtool printed {code:?}");
    code
}

/// Returns a well-formed code that differs from `right`.
fn wrong_code(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// Normalises a typed backup key as authenticator apps do: no spaces, upper case.
fn as_app_normalises(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase()
}

// ---------------------------------------------------------------- fixtures

/// Issues a session for a user directly in the store, as a completed login would.
async fn session(test: &TestApp, user_id: &str, kind: SessionKind) -> String {
    let state = users::load(&test.app, user_id).await.unwrap().unwrap();
    let issued = sessions::issue(&test.app, user_id, kind, state.user.session_epoch).unwrap();
    test.app.store.write(issued.write.clone()).await.unwrap();
    issued.token.expose().to_owned()
}

fn json(response: &ApiResponse) -> Value {
    serde_json::from_str(&response.body).unwrap_or_else(|error| panic!("body {:?} is not JSON: {error}", response.body))
}

fn error_code(response: &ApiResponse) -> String {
    json(response)["error"].as_str().unwrap_or_default().to_owned()
}

/// The body of a connect response.
struct Connected {
    body: Value,
    backup_key: String,
}

async fn connect(test: &TestApp, token: &str) -> Connected {
    let response = test.call("POST", DEVICE, Some(token), "").await;
    assert_eq!(response.status, 200, "connect failed: {}", response.body);
    let body = json(&response);
    let backup_key = body["backup_key"].as_str().unwrap().to_owned();
    Connected { body, backup_key }
}

async fn verify(test: &TestApp, token: &str, code: &str) -> ApiResponse {
    test.call(
        "POST",
        VERIFY,
        Some(token),
        &serde_json::json!({ "code": code }).to_string(),
    )
    .await
}

/// Creates a main account with a fresh full session, at [`TEST_START`].
async fn main_user(test: &TestApp, username: &str) -> (String, String, String) {
    test.clock.set(TEST_START);
    let (account_id, user_id) = test.create_main_user(username, PASSWORD).await;
    let token = session(test, &user_id, SessionKind::Full).await;
    (account_id, user_id, token)
}

/// Connects and activates a device with an oathtool code at time `at`, and returns its backup key.
async fn activate_with_oathtool(test: &TestApp, token: &str, at: i64) -> String {
    let connected = connect(test, token).await;
    test.clock.set(at);
    let response = verify(test, token, &oathtool_code(&connected.backup_key, at)).await;
    assert_eq!(response.status, 200, "activation failed: {}", response.body);
    connected.backup_key
}

/// Logs in with the password and a TOTP code and returns the response of the code step.
async fn login_with_code(test: &TestApp, username: &str, code: &str) -> ApiResponse {
    let body = serde_json::json!({ "username": username, "password": PASSWORD }).to_string();
    let response = test.call("POST", "/login", None, &body).await;
    assert_eq!(response.status, 200, "password step failed: {}", response.body);
    let challenge = json(&response);
    assert_eq!(
        challenge["method"], "totp",
        "login did not ask for a TOTP code: {challenge}"
    );
    let challenge_id = challenge["challenge_id"].as_str().unwrap();
    let body = serde_json::json!({ "challenge_id": challenge_id, "code": code }).to_string();
    test.call("POST", "/login/otp/verify", None, &body).await
}

fn outbox_events(test: &TestApp) -> Vec<String> {
    test.store
        .dump()
        .unwrap()
        .into_iter()
        .filter(|item| item["pk"].as_str().is_some_and(|pk| pk.starts_with("OUTBOX#")))
        .map(|item| {
            let record: OutboxRecord = from_item(item).unwrap();
            serde_json::to_value(record.event).unwrap().as_str().unwrap().to_owned()
        })
        .collect()
}

async fn audit_events(test: &TestApp, user_id: &str) -> Vec<String> {
    audit::list(&test.app, user_id, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.event)
        .collect()
}

async fn stored_user(test: &TestApp, user_id: &str) -> User {
    users::load(&test.app, user_id).await.unwrap().unwrap().user
}

fn request_with_token(token: &str) -> ApiRequest {
    let mut request = ApiRequest::default();
    request
        .headers
        .insert("authorization".into(), format!("Bearer {token}"));
    request
}

// ---------------------------------------------------------------- connect

#[tokio::test]
async fn connect_returns_backup_key_and_uri() {
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice").await;

    let connected = connect(&test, &token).await;
    let body = &connected.body;

    let key = &connected.backup_key;
    assert_eq!(key.len(), 32);
    assert!(
        key.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)),
        "{key}"
    );
    let grouped = body["backup_key_grouped"].as_str().unwrap();
    assert_eq!(grouped.split(' ').count(), 8);
    assert_eq!(grouped.replace(' ', ""), *key);
    assert_eq!(
        body["otpauth_uri"].as_str().unwrap(),
        format!("otpauth://totp/Example%20Hosting:alice?secret={key}&issuer=Example%20Hosting&algorithm=SHA1&digits=6&period=30")
    );
    assert_eq!(body["expires_at"], TEST_START + PENDING_DEVICE_SECONDS);
    assert!(body["device_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(body["qr_svg"].as_str().unwrap().contains("<svg"));
}

#[tokio::test]
async fn connect_is_audited_without_notification() {
    let test = TestApp::new();
    let (_, user_id, token) = main_user(&test, "alice").await;

    connect(&test, &token).await;

    assert!(audit_events(&test, &user_id)
        .await
        .contains(&"otp_device_connected".to_owned()));
    assert!(outbox_events(&test).is_empty());
}

#[tokio::test]
async fn qr_png_decodes_to_otpauth_uri() {
    if !has_tool("zbarimg", "qr_png_decodes_to_otpauth_uri") {
        return;
    }
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice").await;
    let connected = connect(&test, &token).await;

    let png = base64::engine::general_purpose::STANDARD
        .decode(connected.body["qr_png_base64"].as_str().unwrap())
        .unwrap();
    let path = std::env::temp_dir().join(format!("twofa-qr-{}.png", std::process::id()));
    std::fs::write(&path, &png).unwrap();
    let output = Command::new("zbarimg")
        .args(["--raw", "--quiet"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();

    assert!(
        output.status.success(),
        "zbarimg failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoded = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        decoded.trim_end_matches('\n'),
        connected.body["otpauth_uri"].as_str().unwrap()
    );
}

#[tokio::test]
async fn pyotp_parses_otpauth_uri() {
    if !has_pyotp("pyotp_parses_otpauth_uri") {
        return;
    }
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice.smith-ops_2").await;
    let connected = connect(&test, &token).await;

    let script = r#"
import json, sys, pyotp
totp = pyotp.parse_uri(sys.argv[1])
print(json.dumps({
    "issuer": totp.issuer, "name": totp.name, "secret": totp.secret,
    "digest": totp.digest().name, "digits": totp.digits, "interval": totp.interval,
}))
"#;
    let uri = connected.body["otpauth_uri"].as_str().unwrap();
    let output = Command::new(python()).args(["-c", script, uri]).output().unwrap();
    assert!(
        output.status.success(),
        "pyotp failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(parsed["issuer"], "Example Hosting");
    assert_eq!(parsed["name"], "alice.smith-ops_2");
    assert_eq!(parsed["secret"], connected.backup_key.as_str());
    assert_eq!(parsed["digest"], "sha1");
    assert_eq!(parsed["digits"], 6);
    assert_eq!(parsed["interval"], 30);
}

#[tokio::test]
async fn connect_again_replaces_pending_device() {
    if !has_tool("oathtool", "connect_again_replaces_pending_device") {
        return;
    }
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice").await;
    let first = connect(&test, &token).await;
    let second = connect(&test, &token).await;
    assert_ne!(first.backup_key, second.backup_key);

    test.clock.set(T);
    let response = verify(&test, &token, &oathtool_code(&first.backup_key, T)).await;
    assert_eq!(response.status, 401, "{}", response.body);
    let response = verify(&test, &token, &oathtool_code(&second.backup_key, T)).await;
    assert_eq!(response.status, 200, "{}", response.body);
}

// ---------------------------------------------------------------- activation

#[tokio::test]
async fn oathtool_code_activates_device() {
    if !has_tool("oathtool", "oathtool_code_activates_device") {
        return;
    }
    let test = TestApp::new();
    let (_, user_id, token) = main_user(&test, "alice").await;
    let connected = connect(&test, &token).await;

    test.clock.set(T);
    let response = verify(&test, &token, &oathtool_code(&connected.backup_key, T)).await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        json(&response),
        serde_json::json!({"status": "ok", "otp": {"status": "active"}})
    );
    let state = users::load(&test.app, &user_id).await.unwrap().unwrap();
    let device = state.otp.unwrap();
    assert_eq!(device.last_step, Some(T / 30), "the activation code must count as used");
    assert_eq!(device.device_id, connected.body["device_id"].as_str().unwrap());
    assert!(state.otp_pending.is_none());
    assert_eq!(state.user.login_method, Some(Method::Totp));
    assert_eq!(outbox_events(&test), ["otp_device_activated"]);
    assert!(audit_events(&test, &user_id)
        .await
        .contains(&"otp_device_activated".to_owned()));
}

#[tokio::test]
async fn activation_keeps_caller_session_and_revokes_others() {
    if !has_tool("oathtool", "activation_keeps_caller_session_and_revokes_others") {
        return;
    }
    let test = TestApp::new();
    let (_, user_id, token) = main_user(&test, "alice").await;
    let other = session(&test, &user_id, SessionKind::Full).await;

    activate_with_oathtool(&test, &token, T).await;

    assert!(
        sessions::authenticate(&test.app, &request_with_token(&token), Access::Full)
            .await
            .is_ok()
    );
    let revoked = sessions::authenticate(&test.app, &request_with_token(&other), Access::Full).await;
    assert_eq!(revoked.err().map(|error| error.code()), Some("unauthorized"));
}

#[tokio::test]
async fn typed_backup_key_forms_give_same_secret() {
    if !has_tool("oathtool", "typed_backup_key_forms_give_same_secret") {
        return;
    }
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice").await;
    let connected = connect(&test, &token).await;
    let grouped = connected.body["backup_key_grouped"].as_str().unwrap();
    let typed = grouped.to_lowercase();
    assert!(typed.contains(' '));

    let expected = totp::parse_backup_key(&connected.backup_key).unwrap();
    for form in [
        typed.clone(),
        grouped.to_owned(),
        format!(" {} ", typed.replace(' ', "  ")),
        grouped.replace(' ', "-"),
    ] {
        assert_eq!(
            totp::parse_backup_key(&form).unwrap().expose(),
            expected.expose(),
            "{form:?}"
        );
    }

    test.clock.set(T);
    let response = verify(&test, &token, &oathtool_code(&as_app_normalises(&typed), T)).await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn activation_window_is_one_step_each_side() {
    if !has_tool("oathtool", "activation_window_is_one_step_each_side") {
        return;
    }
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice").await;
    test.clock.set(T);

    for offset in [-1, 0, 1] {
        let connected = connect(&test, &token).await;
        let code = oathtool_code(&connected.backup_key, T + 30 * offset);
        let response = verify(&test, &token, &code).await;
        assert_eq!(response.status, 200, "step t{offset:+}: {}", response.body);
    }
    for offset in [-2, 2] {
        let connected = connect(&test, &token).await;
        let code = oathtool_code(&connected.backup_key, T + 30 * offset);
        let response = verify(&test, &token, &code).await;
        assert_eq!(response.status, 401, "step t{offset:+}: {}", response.body);
        assert_eq!(error_code(&response), "invalid_code");
        assert_eq!(json(&response)["field"], "code");
    }
}

#[tokio::test]
async fn malformed_codes_are_invalid_and_counted() {
    let test = TestApp::new();
    let (_, user_id, token) = main_user(&test, "alice").await;
    connect(&test, &token).await;

    for (index, code) in ["5924", "05924", "+5924", "0059240"].iter().enumerate() {
        let response = verify(&test, &token, code).await;
        assert_eq!(response.status, 401, "{code}: {}", response.body);
        assert_eq!(error_code(&response), "invalid_code", "{code}");
        assert_eq!(json(&response)["field"], "code", "{code}");
        let pending = users::load(&test.app, &user_id)
            .await
            .unwrap()
            .unwrap()
            .otp_pending
            .unwrap();
        assert_eq!(pending.attempts, index as i64 + 1, "{code}");
    }
}

#[tokio::test]
async fn wrong_codes_delete_pending_device_after_limit() {
    if !has_tool("oathtool", "wrong_codes_delete_pending_device_after_limit") {
        return;
    }
    let test = TestApp::new();
    let (_, user_id, token) = main_user(&test, "alice").await;
    let connected = connect(&test, &token).await;
    test.clock.set(T);
    let right = oathtool_code(&connected.backup_key, T);
    let wrong = wrong_code(&right);

    for attempt in 1..=MAX_ACTIVATION_ATTEMPTS {
        let response = verify(&test, &token, wrong).await;
        assert_eq!(response.status, 401, "attempt {attempt}: {}", response.body);
    }
    assert!(users::load(&test.app, &user_id)
        .await
        .unwrap()
        .unwrap()
        .otp_pending
        .is_none());

    let response = verify(&test, &token, &right).await;
    assert_eq!(response.status, 404, "{}", response.body);
    assert_eq!(error_code(&response), "not_found");
    assert!(json(&response)["message"]
        .as_str()
        .unwrap()
        .contains("connect the device again"));
}

#[tokio::test]
async fn right_code_after_wrong_guess_activates() {
    if !has_tool("oathtool", "right_code_after_wrong_guess_activates") {
        return;
    }
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice").await;
    let connected = connect(&test, &token).await;
    test.clock.set(T);
    let right = oathtool_code(&connected.backup_key, T);
    let wrong = wrong_code(&right);

    assert_eq!(verify(&test, &token, wrong).await.status, 401);
    let response = verify(&test, &token, &right).await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn verify_without_pending_device_is_not_found() {
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice").await;

    let response = verify(&test, &token, "123456").await;

    assert_eq!(response.status, 404, "{}", response.body);
    assert!(json(&response)["message"]
        .as_str()
        .unwrap()
        .contains("connect the device again"));
}

#[tokio::test]
async fn sub_account_with_two_factor_off_cannot_connect() {
    let test = TestApp::new();
    let (account_id, _, _) = main_user(&test, "alice").await;
    let sub_id = test.create_sub_user(&account_id, "bob", PASSWORD, false).await;
    let token = session(&test, &sub_id, SessionKind::Full).await;
    let events_before = outbox_events(&test);

    let response = test.call("POST", DEVICE, Some(&token), "").await;
    assert_eq!(response.status, 409, "{}", response.body);
    assert_eq!(error_code(&response), "conflict");
    let response = verify(&test, &token, "123456").await;
    assert_eq!(response.status, 409, "{}", response.body);

    let state = users::load(&test.app, &sub_id).await.unwrap().unwrap();
    assert!(state.otp_pending.is_none());
    assert!(state.otp.is_none());
    assert_eq!(outbox_events(&test), events_before);
}

#[tokio::test]
async fn verify_without_code_names_field() {
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice").await;
    connect(&test, &token).await;

    let response = test.call("POST", VERIFY, Some(&token), "{}").await;

    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(json(&response)["field"], "code");
}

#[tokio::test]
async fn pending_device_expires_after_ten_minutes() {
    if !has_tool("oathtool", "pending_device_expires_after_ten_minutes") {
        return;
    }
    let test = TestApp::new();
    let (_, user_id, token) = main_user(&test, "alice").await;
    let connected = connect(&test, &token).await;

    // Just before expiry the pending device still exists: a wrong code is invalid, not unknown.
    let before_expiry = TEST_START + PENDING_DEVICE_SECONDS - 1;
    test.clock.set(before_expiry);
    let token = session(&test, &user_id, SessionKind::Full).await;
    let wrong = wrong_code(&oathtool_code(&connected.backup_key, before_expiry));
    let response = verify(&test, &token, wrong).await;
    assert_eq!(response.status, 401, "{}", response.body);

    test.clock.set(TEST_START + PENDING_DEVICE_SECONDS);
    let token = session(&test, &user_id, SessionKind::Full).await;
    let now = TEST_START + PENDING_DEVICE_SECONDS;
    let response = verify(&test, &token, &oathtool_code(&connected.backup_key, now)).await;
    assert_eq!(response.status, 404, "{}", response.body);
    assert_eq!(error_code(&response), "not_found");
}

#[tokio::test]
async fn stale_session_is_rejected() {
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice").await;
    test.clock.set(TEST_START + sessions::FRESH_SECONDS + 1);

    for (method, path, body) in [
        ("POST", DEVICE, ""),
        ("POST", VERIFY, r#"{"code":"123456"}"#),
        ("DELETE", DEVICE, ""),
    ] {
        let response = test.call(method, path, Some(&token), body).await;
        assert_eq!(response.status, 403, "{method} {path}: {}", response.body);
        assert_eq!(error_code(&response), "reauthentication_required", "{method} {path}");
    }
}

#[tokio::test]
async fn missing_session_is_unauthorized() {
    let test = TestApp::new();

    for (method, path) in [("POST", DEVICE), ("POST", VERIFY), ("DELETE", DEVICE)] {
        let response = test.call(method, path, None, r#"{"code":"123456"}"#).await;
        assert_eq!(response.status, 401, "{method} {path}: {}", response.body);
        assert_eq!(error_code(&response), "unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_activations_succeed_once() {
    if !has_tool("oathtool", "parallel_activations_succeed_once") {
        return;
    }
    let test = Arc::new(TestApp::new());
    let (_, user_id, token) = main_user(&test, "alice").await;
    let connected = connect(&test, &token).await;
    test.clock.set(T);
    let code = oathtool_code(&connected.backup_key, T);

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (test, token, code) = (test.clone(), token.clone(), code.clone());
            tokio::spawn(async move { verify(&test, &token, &code).await })
        })
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap());
    }

    let successes = responses.iter().filter(|response| response.status == 200).count();
    assert_eq!(
        successes,
        1,
        "{:?}",
        responses.iter().map(|response| response.status).collect::<Vec<_>>()
    );
    for response in responses.iter().filter(|response| response.status != 200) {
        assert!(
            [404, 409].contains(&response.status),
            "{}: {}",
            response.status,
            response.body
        );
    }
    assert_eq!(outbox_events(&test), ["otp_device_activated"]);
    let activations = audit_events(&test, &user_id)
        .await
        .into_iter()
        .filter(|event| event == "otp_device_activated")
        .count();
    assert_eq!(activations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_codes_are_all_counted() {
    let test = Arc::new(TestApp::new());
    let (_, user_id, token) = main_user(&test, "alice").await;
    connect(&test, &token).await;

    // Four parallel wrong codes stay below the limit, so every one of them must be on the counter.
    let tasks: Vec<_> = ["5924", "05924", "+5924", "0059240"]
        .into_iter()
        .map(|code| {
            let (test, token) = (test.clone(), token.clone());
            tokio::spawn(async move { verify(&test, &token, code).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().status, 401);
    }

    let state = users::load(&test.app, &user_id).await.unwrap().unwrap();
    assert_eq!(state.otp_pending.unwrap().attempts, MAX_ACTIVATION_ATTEMPTS - 1);
}

#[tokio::test]
async fn enrollment_session_activates_first_factor() {
    if !has_tool("oathtool", "enrollment_session_activates_first_factor") {
        return;
    }
    let test = TestApp::new();
    test.clock.set(TEST_START);
    let (_, user_id) = test.create_main_user("newcomer", PASSWORD).await;
    let enrollment = session(&test, &user_id, SessionKind::Enrollment).await;
    let connected = connect(&test, &enrollment).await;

    test.clock.set(T);
    let response = verify(&test, &enrollment, &oathtool_code(&connected.backup_key, T)).await;

    assert_eq!(response.status, 200, "{}", response.body);
    let body = json(&response);
    assert_eq!(body["status"], "authenticated");
    let full = body["session_token"].as_str().unwrap();
    assert!(body["expires_at"].as_i64().unwrap() > T + sessions::ENROLLMENT_SESSION_SECONDS);
    let auth = sessions::authenticate(&test.app, &request_with_token(full), Access::Fresh)
        .await
        .unwrap();
    assert_eq!(auth.session.kind, SessionKind::Full);
    let old = sessions::authenticate(&test.app, &request_with_token(&enrollment), Access::FreshOrEnrollment).await;
    assert_eq!(old.err().map(|error| error.code()), Some("unauthorized"));
    assert_eq!(stored_user(&test, &user_id).await.login_method, Some(Method::Totp));
}

#[tokio::test]
async fn enrollment_session_cannot_delete_device() {
    let test = TestApp::new();
    let (_, user_id) = test.create_main_user("newcomer", PASSWORD).await;
    let enrollment = session(&test, &user_id, SessionKind::Enrollment).await;

    let response = test.call("DELETE", DEVICE, Some(&enrollment), "").await;

    assert_eq!(response.status, 403, "{}", response.body);
    assert_eq!(error_code(&response), "forbidden");
}

// ---------------------------------------------------------------- secrecy

/// Returns every encoding of a secret that could betray it in a stored item.
fn encodings(secret: &[u8]) -> Vec<String> {
    let base32 = data_encoding::BASE32_NOPAD.encode(secret);
    let hex: String = secret.iter().map(|byte| format!("{byte:02x}")).collect();
    let array = serde_json::to_string(secret).unwrap();
    vec![
        base32.clone(),
        base32.to_lowercase(),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        hex.clone(),
        hex.to_uppercase(),
        array.trim_start_matches('[').trim_end_matches(']').to_owned(),
        String::from_utf8_lossy(secret).into_owned(),
    ]
}

fn assert_store_hides(test: &TestApp, secret: &[u8]) {
    let dump = serde_json::to_string(&test.store.dump().unwrap()).unwrap();
    for encoding in encodings(secret) {
        assert!(
            !dump.contains(&encoding),
            "the store contains the secret as {encoding:?}"
        );
    }
}

#[tokio::test]
async fn secret_is_stored_only_sealed() {
    if !has_tool("oathtool", "secret_is_stored_only_sealed") {
        return;
    }
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice").await;
    let connected = connect(&test, &token).await;
    let secret = totp::parse_backup_key(&connected.backup_key).unwrap();

    assert_store_hides(&test, secret.expose());
    test.clock.set(T);
    let response = verify(&test, &token, &oathtool_code(&connected.backup_key, T)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_store_hides(&test, secret.expose());
    assert!(!response.body.contains(&connected.backup_key));
}

#[tokio::test]
async fn active_device_secret_is_never_returned() {
    if !has_tool("oathtool", "active_device_secret_is_never_returned") {
        return;
    }
    let test = TestApp::new();
    let (_, user_id, token) = main_user(&test, "alice").await;
    let key = activate_with_oathtool(&test, &token, T).await;
    let grouped: String = key
        .as_bytes()
        .chunks(4)
        .map(|group| String::from_utf8_lossy(group).into_owned())
        .collect::<Vec<_>>()
        .join(" ");

    // Connecting again shows a new secret, never the active one.
    let again = connect(&test, &token).await;
    assert!(!again.body.to_string().contains(&key));
    let response = test.call("GET", "/security", Some(&token), "").await;
    assert!(
        !response.body.contains(&key) && !response.body.contains(&grouped),
        "{}",
        response.body
    );
    let state = users::load(&test.app, &user_id).await.unwrap().unwrap();
    assert!(!format!("{state:?}").contains(&key));
}

// ---------------------------------------------------------------- delete

#[tokio::test]
async fn main_account_keeps_last_factor() {
    if !has_tool("oathtool", "main_account_keeps_last_factor") {
        return;
    }
    let test = TestApp::new();
    let (_, user_id, token) = main_user(&test, "alice").await;
    activate_with_oathtool(&test, &token, T).await;

    let response = test.call("DELETE", DEVICE, Some(&token), "").await;

    assert_eq!(response.status, 409, "{}", response.body);
    assert_eq!(error_code(&response), "factor_required");
    assert!(users::load(&test.app, &user_id).await.unwrap().unwrap().otp.is_some());
}

#[tokio::test]
async fn delete_device_switches_to_sms() {
    if !has_tool("oathtool", "delete_device_switches_to_sms") {
        return;
    }
    let test = TestApp::new();
    let (_, user_id, token) = main_user(&test, "alice").await;
    activate_with_oathtool(&test, &token, T).await;
    provisioning::add_active_sms(&test.app, &user_id, "+420 601 123 456")
        .await
        .unwrap();
    provisioning::add_active_totp(&test.app, &user_id, &totp::new_secret(test.app.random.as_ref()), true)
        .await
        .unwrap();
    connect(&test, &token).await;

    let response = test.call("DELETE", DEVICE, Some(&token), "").await;

    assert_eq!(response.status, 200, "{}", response.body);
    let state = users::load(&test.app, &user_id).await.unwrap().unwrap();
    assert!(state.otp.is_none());
    assert!(state.otp_pending.is_none());
    assert_eq!(state.user.login_method, Some(Method::Sms));
    assert_eq!(
        outbox_events(&test)
            .iter()
            .filter(|event| *event == "otp_device_disabled")
            .count(),
        1
    );

    let response = test.call("DELETE", DEVICE, Some(&token), "").await;
    assert_eq!(response.status, 404, "{}", response.body);
}

#[tokio::test]
async fn sub_account_can_delete_only_factor() {
    if !has_tool("oathtool", "sub_account_can_delete_only_factor") {
        return;
    }
    let test = TestApp::new();
    test.clock.set(TEST_START);
    let (account_id, _) = test.create_main_user("alice", PASSWORD).await;
    let user_id = test.create_sub_user(&account_id, "bob", PASSWORD, true).await;
    let token = session(&test, &user_id, SessionKind::Full).await;
    activate_with_oathtool(&test, &token, T).await;

    let response = test.call("DELETE", DEVICE, Some(&token), "").await;

    assert_eq!(response.status, 200, "{}", response.body);
    let user = stored_user(&test, &user_id).await;
    assert_eq!(user.login_method, None);
}

#[tokio::test]
async fn delete_cancels_pending_device_quietly() {
    let test = TestApp::new();
    let (_, user_id, token) = main_user(&test, "alice").await;
    connect(&test, &token).await;

    let response = test.call("DELETE", DEVICE, Some(&token), "").await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert!(users::load(&test.app, &user_id)
        .await
        .unwrap()
        .unwrap()
        .otp_pending
        .is_none());
    assert!(outbox_events(&test).is_empty());
    let response = test.call("DELETE", DEVICE, Some(&token), "").await;
    assert_eq!(response.status, 404, "{}", response.body);
}

// ---------------------------------------------------------------- login with the device

#[tokio::test]
async fn oathtool_codes_pass_login() {
    if !has_tool("oathtool", "oathtool_codes_pass_login") {
        return;
    }
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice").await;
    let key = activate_with_oathtool(&test, &token, T).await;

    let later = T + 60;
    test.clock.set(later);
    let response = login_with_code(&test, "alice", &oathtool_code(&key, later)).await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(json(&response)["status"], "authenticated");
}

#[tokio::test]
async fn activation_code_replayed_at_login_fails() {
    if !has_tool("oathtool", "activation_code_replayed_at_login_fails") {
        return;
    }
    let test = TestApp::new();
    let (_, _, token) = main_user(&test, "alice").await;
    let key = activate_with_oathtool(&test, &token, T).await;
    let activation_code = oathtool_code(&key, T);

    let response = login_with_code(&test, "alice", &activation_code).await;
    assert_eq!(response.status, 401, "{}", response.body);
    assert_eq!(error_code(&response), "invalid_code");

    let next = T + 30;
    test.clock.set(next);
    let code = oathtool_code(&key, next);
    let response = login_with_code(&test, "alice", &code).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let response = login_with_code(&test, "alice", &code).await;
    assert_eq!(response.status, 401, "replayed login code: {}", response.body);
}

#[tokio::test]
async fn reenrollment_keeps_old_device_until_activation() {
    if !has_tool("oathtool", "reenrollment_keeps_old_device_until_activation") {
        return;
    }
    let test = TestApp::new();
    let (_, user_id, token) = main_user(&test, "alice").await;
    let old_key = activate_with_oathtool(&test, &token, T).await;

    test.clock.set(T + 30);
    let connected = connect(&test, &token).await;
    let response = login_with_code(&test, "alice", &oathtool_code(&old_key, T + 30)).await;
    assert_eq!(
        response.status, 200,
        "old device during re-enrollment: {}",
        response.body
    );

    test.clock.set(T + 60);
    let token = session(&test, &user_id, SessionKind::Full).await;
    let response = verify(&test, &token, &oathtool_code(&connected.backup_key, T + 60)).await;
    assert_eq!(response.status, 200, "{}", response.body);

    test.clock.set(T + 90);
    let response = login_with_code(&test, "alice", &oathtool_code(&old_key, T + 90)).await;
    assert_eq!(
        response.status, 401,
        "old device after activation of the new one: {}",
        response.body
    );
    let response = login_with_code(&test, "alice", &oathtool_code(&connected.backup_key, T + 90)).await;
    assert_eq!(response.status, 200, "new device: {}", response.body);
}

#[tokio::test]
async fn legacy_short_secret_logs_in() {
    if !has_tool("oathtool", "legacy_short_secret_logs_in") {
        return;
    }
    let test = TestApp::new();
    test.clock.set(TEST_START);
    let (_, user_id) = test.create_main_user("legacy", PASSWORD).await;
    let legacy_key = "GEZDGNBVGY3TQOJQ";
    let secret: SecretBytes = totp::parse_backup_key(legacy_key).unwrap();
    assert_eq!(secret.len(), 10);
    provisioning::add_active_totp(&test.app, &user_id, &secret, true)
        .await
        .unwrap();

    test.clock.set(T);
    let right = oathtool_code(legacy_key, T);
    let wrong = wrong_code(&right);

    let response = login_with_code(&test, "legacy", wrong).await;
    assert_eq!(response.status, 401, "a wrong code must not pass: {}", response.body);
    let response = login_with_code(&test, "legacy", &right).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(json(&response)["status"], "authenticated");
}
