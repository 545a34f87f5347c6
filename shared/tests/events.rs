//! Runs every event file of `events/` through the code the Lambda functions run, and checks the
//! result that `events/manifest.json` expects.
//!
//! HTTP API and REST API events go through `lambda_http::request::from_str`, the Lambda adapter
//! and the dispatch of the function that owns the file. The stream event goes through the
//! notifier. Each event runs on a fresh app seeded like the local demo, so no event depends on
//! another. A file missing from the manifest, or a manifest entry without its file, fails the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use twofa_core::lambda::to_api_request;
use twofa_core::model::Language;
use twofa_core::ports::SentMessage;
use twofa_core::routes::Function;
use twofa_core::service::{notifier, provisioning};
use twofa_core::store::{Item, Key, Write};
use twofa_core::testing::TestApp;

const EVENT_FOLDERS: &[&str] = &["http", "rest", "stream"];
const DEMO_PHONE: &str = "+420 601 123 456";
const SECURITY_CONTACT_EMAIL: &str = "security@demo.example";

#[derive(Debug, Deserialize)]
struct Manifest {
    events: Vec<ManifestEntry>,
}

#[derive(Debug, Deserialize)]
struct ManifestEntry {
    file: String,
    function: String,
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    expected_status: Option<u16>,
    #[serde(default)]
    expected_error: Option<String>,
    #[serde(default)]
    expected_body_status: Option<String>,
    #[serde(default)]
    expected_response: Option<Value>,
    #[serde(default)]
    needs: Option<String>,
}

/// A [`TestApp`] with the demo customer account of the local run.
struct DemoApp {
    test: TestApp,
    account_id: String,
    sub_user_id: String,
}

async fn demo_app() -> DemoApp {
    let test = TestApp::new();
    let (account_id, main_user_id) = test.create_main_user("demo-main", "demo-main-password-1").await;
    provisioning::add_active_sms(&test.app, &main_user_id, DEMO_PHONE)
        .await
        .expect("the demo phone is stored");
    let sub_user_id = test
        .create_sub_user(&account_id, "demo-sub", "demo-sub-password-1", false)
        .await;
    provisioning::set_security_contact(
        &test.app,
        &account_id,
        "Demo Security",
        SECURITY_CONTACT_EMAIL,
        Language::En,
    )
    .await
    .expect("the Security contact is stored");
    DemoApp {
        test,
        account_id,
        sub_user_id,
    }
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn read_manifest() -> Manifest {
    let path = events_dir().join("manifest.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {} failed: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{} is invalid: {error}", path.display()))
}

fn read_event(file: &str) -> String {
    let path = events_dir().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {} failed: {error}", path.display()))
}

fn function_named(name: &str) -> Function {
    [
        Function::LoginChallenge,
        Function::Sms,
        Function::Otp,
        Function::Settings,
    ]
    .into_iter()
    .find(|function| function.name() == name)
    .unwrap_or_else(|| panic!("the manifest names an unknown HTTP function: {name}"))
}

/// Runs an HTTP event file through the Lambda adapter and the dispatch of `function`.
async fn invoke(demo: &DemoApp, function: Function, event: &str) -> (u16, Value) {
    let request =
        lambda_http::request::from_str(event).unwrap_or_else(|error| panic!("not an API Gateway event: {error}"));
    let response = twofa_core::api::handle(&demo.test.app, to_api_request(request), Some(function)).await;
    let body = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response.status, body)
}

/// Logs in as demo-sub with its event file and returns the session token.
async fn demo_sub_session(demo: &DemoApp) -> String {
    let (status, body) = invoke(demo, Function::LoginChallenge, &read_event("http/login-demo-sub.json")).await;
    assert_eq!(status, 200, "login of demo-sub: {body}");
    body["session_token"]
        .as_str()
        .unwrap_or_else(|| panic!("login of demo-sub returned no session_token: {body}"))
        .to_owned()
}

/// Logs in as demo-main with its event file, completes the SMS challenge and returns the session token.
async fn demo_main_session(demo: &DemoApp) -> String {
    let (status, body) = invoke(demo, Function::LoginChallenge, &read_event("http/login-demo-main.json")).await;
    assert_eq!(status, 200, "login of demo-main: {body}");
    let challenge_id = body["challenge_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no challenge_id: {body}"));
    let e164: String = DEMO_PHONE.chars().filter(|c| *c == '+' || c.is_ascii_digit()).collect();
    let texts = demo.test.sms_texts_to(&e164);
    let text = texts.last().unwrap_or_else(|| panic!("no login SMS sent to {e164}"));
    let code = twofa_core::testing::find_code(text).unwrap_or_else(|| panic!("no code in the login SMS"));
    let verify = serde_json::json!({ "challenge_id": challenge_id, "code": code }).to_string();
    let response = demo.test.call("POST", "/login/sms/verify", None, &verify).await;
    assert_eq!(response.status, 200, "verify of demo-main: {}", response.body);
    let body: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    body["session_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no session_token: {body}"))
        .to_owned()
}

/// Runs one HTTP event and returns what differs from the manifest.
async fn check_http_event(entry: &ManifestEntry) -> Result<(), String> {
    let demo = demo_app().await;
    let mut event = read_event(&entry.file);
    match entry.needs.as_deref() {
        Some("fresh_session_of_demo_sub") => event = event.replace("{{SESSION_TOKEN}}", &demo_sub_session(&demo).await),
        Some("fresh_session_of_demo_main") => {
            event = event.replace("{{SESSION_TOKEN}}", &demo_main_session(&demo).await)
        }
        Some(other) => panic!("{}: unknown need {other}", entry.file),
        None => {}
    }
    assert!(
        !event.contains("{{"),
        "{}: a placeholder is left; does the entry lack a need?",
        entry.file
    );

    let request = lambda_http::request::from_str(&event)
        .unwrap_or_else(|error| panic!("{}: not an API Gateway event: {error}", entry.file));
    let converted = to_api_request(request);
    if let Some(route) = &entry.route {
        assert_eq!(
            &format!("{} {}", converted.method, converted.path),
            route,
            "{}: route",
            entry.file
        );
    }
    let source_ip = converted.source_ip.clone();
    assert!(
        !source_ip.is_empty() && source_ip != "unknown",
        "{}: the event carries a source IP",
        entry.file
    );

    let (status, body) = invoke(&demo, function_named(&entry.function), &event).await;
    let mut mismatches = Vec::new();
    let expected_status = entry
        .expected_status
        .unwrap_or_else(|| panic!("{}: no expected_status", entry.file));
    if status != expected_status {
        mismatches.push(format!("status {status}, expected {expected_status}"));
    }
    if let Some(error) = &entry.expected_error {
        if body["error"] != error.as_str() {
            mismatches.push(format!("error {}, expected {error}", body["error"]));
        }
    }
    if let Some(body_status) = &entry.expected_body_status {
        if body["status"] != body_status.as_str() {
            mismatches.push(format!("body status {}, expected {body_status}", body["status"]));
        }
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} ({} {}): {}; body {body}",
            entry.file,
            entry.function,
            entry.route.as_deref().unwrap_or("?"),
            mismatches.join(", ")
        ))
    }
}

async fn check_stream_event(entry: &ManifestEntry) {
    assert_eq!(
        entry.function, "notifier",
        "{}: stream events belong to the notifier",
        entry.file
    );
    assert_eq!(
        entry.needs.as_deref(),
        Some("outbox_item_in_store"),
        "{}: need",
        entry.file
    );
    let demo = demo_app().await;
    let event = read_event(&entry.file)
        .replace("{{DEMO_ACCOUNT_ID}}", &demo.account_id)
        .replace("{{DEMO_SUB_USER_ID}}", &demo.sub_user_id);
    assert!(!event.contains("{{"), "{}: a placeholder is left", entry.file);
    let event: aws_lambda_events::event::dynamodb::Event = serde_json::from_str(&event)
        .unwrap_or_else(|error| panic!("{}: not a DynamoDB stream event: {error}", entry.file));

    // Store the outbox items as the change's transaction would have.
    assert!(!event.records.is_empty(), "{}: the event has records", entry.file);
    let mut outbox_keys = Vec::new();
    for record in &event.records {
        let item: Item = serde_dynamo::from_item(record.change.new_image.clone())
            .unwrap_or_else(|error| panic!("{}: NewImage is not an item: {error}", entry.file));
        let pk = item["pk"].as_str().expect("the item has a pk").to_owned();
        let sk = item["sk"].as_str().expect("the item has an sk").to_owned();
        outbox_keys.push(Key::new(pk, sk));
        demo.test
            .app
            .store
            .write(Write::Put { item, condition: None })
            .await
            .expect("the outbox item is stored");
    }
    let emails_before = emails_to(&demo, SECURITY_CONTACT_EMAIL);

    let response = notifier::handle_stream_event(&demo.test.app, event).await;
    let response = serde_json::to_value(&response).expect("the response serialises");
    if let Some(expected) = &entry.expected_response {
        assert_eq!(&response, expected, "{}: notifier response", entry.file);
    }
    assert_eq!(
        emails_to(&demo, SECURITY_CONTACT_EMAIL),
        emails_before + 1,
        "{}: one email to the Security contact",
        entry.file
    );
    for key in &outbox_keys {
        let item = demo
            .test
            .app
            .store
            .get(key)
            .await
            .expect("the store answers")
            .expect("the outbox item is kept");
        assert!(
            item.keys().any(|name| name.starts_with("sent_")),
            "{}: the outbox item is marked as sent: {item:?}",
            entry.file
        );
    }

    // A second delivery of the same records, as a stream retry would make, sends nothing again.
    let event: aws_lambda_events::event::dynamodb::Event = serde_json::from_str(
        &read_event(&entry.file)
            .replace("{{DEMO_ACCOUNT_ID}}", &demo.account_id)
            .replace("{{DEMO_SUB_USER_ID}}", &demo.sub_user_id),
    )
    .expect("the event parses again");
    notifier::handle_stream_event(&demo.test.app, event).await;
    assert_eq!(
        emails_to(&demo, SECURITY_CONTACT_EMAIL),
        emails_before + 1,
        "{}: a redelivered record is not mailed twice",
        entry.file
    );
}

fn emails_to(demo: &DemoApp, address: &str) -> usize {
    demo.test
        .outbox
        .messages()
        .iter()
        .filter(|message| matches!(message, SentMessage::Email { to, .. } if to == address))
        .count()
}

/// Lists the event files of the folders the manifest covers, as paths relative to `events/`.
fn event_files() -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for folder in EVENT_FOLDERS {
        let dir = events_dir().join(folder);
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("reading {} failed: {error}", dir.display()));
        for entry in entries {
            let name = entry
                .expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".json") {
                files.insert(format!("{folder}/{name}"));
            }
        }
    }
    files
}

#[test]
fn manifest_lists_every_event_file() {
    let manifest = read_manifest();
    let listed: BTreeSet<String> = manifest.events.iter().map(|entry| entry.file.clone()).collect();
    assert_eq!(listed.len(), manifest.events.len(), "the manifest lists a file twice");
    let files = event_files();
    let unlisted: Vec<&String> = files.difference(&listed).collect();
    let missing: Vec<&String> = listed.difference(&files).collect();
    assert!(
        unlisted.is_empty(),
        "event files not in events/manifest.json: {unlisted:?}"
    );
    assert!(missing.is_empty(), "manifest entries without their file: {missing:?}");
}

#[tokio::test]
async fn every_http_event_gets_expected_status() {
    let manifest = read_manifest();
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in manifest
        .events
        .iter()
        .filter(|entry| !entry.file.starts_with("stream/"))
    {
        if let Err(failure) = check_http_event(entry).await {
            failures.push(failure);
        }
        checked += 1;
    }
    assert!(checked > 0, "the manifest lists no HTTP events");
    assert!(
        failures.is_empty(),
        "{} of {checked} events differ from events/manifest.json:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn stream_event_is_mailed_once() {
    let manifest = read_manifest();
    let mut checked = 0;
    for entry in manifest.events.iter().filter(|entry| entry.file.starts_with("stream/")) {
        check_stream_event(entry).await;
        checked += 1;
    }
    assert!(checked > 0, "the manifest lists no stream event");
}
