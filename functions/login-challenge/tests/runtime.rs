//! Runs the built `login-challenge` binary as Lambda would: against a stand-in for the Lambda
//! Runtime API that hands it the API Gateway events of `events/` and collects its responses.
//!
//! The invocation test needs a moto server for DynamoDB (`AWS_ENDPOINT_URL`, `TWOFA_MOTO_URL`); it
//! is skipped with a message without one, unless `TWOFA_REQUIRE_MOTO=1`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::mpsc;
use twofa_core::aws::bootstrap;
use twofa_core::config::Config;
use twofa_core::crypto::Keys;
use twofa_core::ports::OsRandom;
use twofa_core::service::provisioning::{self, NewUser};
use twofa_core::store::dynamo::DynamoStore;

const FALLBACK_REGION: &str = "eu-central-1";

/// What the function posted back to the stand-in runtime: the path and the body.
type Posted = (String, String);

struct FakeRuntime {
    events: Mutex<VecDeque<String>>,
    posted: mpsc::UnboundedSender<Posted>,
}

/// Hands out the next event; with none left, waits until the test stops the function.
async fn next_invocation(State(runtime): State<Arc<FakeRuntime>>) -> impl IntoResponse {
    let event = runtime.events.lock().expect("the event queue lock").pop_front();
    let Some(event) = event else {
        std::future::pending::<()>().await;
        unreachable!("a pending future never completes");
    };
    let mut headers = HeaderMap::new();
    let request_id = format!("invocation-{}", uuid_like());
    headers.insert(
        "lambda-runtime-aws-request-id",
        request_id.parse().expect("a header value"),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        "4102444800000".parse().expect("a header value"),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-central-1:123456789012:function:login-challenge"
            .parse()
            .expect("a header value"),
    );
    (headers, event)
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default()
}

async fn post_result(State(runtime): State<Arc<FakeRuntime>>, Path((id, kind)): Path<(String, String)>, body: String) {
    let _ = runtime.posted.send((format!("invocation/{id}/{kind}"), body));
}

async fn post_init_error(State(runtime): State<Arc<FakeRuntime>>, body: String) {
    let _ = runtime.posted.send(("init/error".to_owned(), body));
}

async fn start_fake_runtime(events: Vec<String>) -> (SocketAddr, mpsc::UnboundedReceiver<Posted>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let runtime = Arc::new(FakeRuntime {
        events: Mutex::new(events.into()),
        posted: sender,
    });
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(post_result))
        .route("/2018-06-01/runtime/init/error", post(post_init_error))
        .with_state(runtime);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds a free port");
    let address = listener.local_addr().expect("a local address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (address, receiver)
}

fn read_event(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {} failed: {error}", path.display()))
}

fn is_env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| !value.is_empty())
}

#[test]
fn missing_configuration_fails_cold_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_login-challenge"))
        .env_clear()
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("login-challenge runs");
    assert!(!output.status.success(), "a cold start without configuration fails");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}")))
        .collect();
    let problems: Vec<&str> = lines
        .iter()
        .filter_map(|line| line["fields"]["problem"].as_str())
        .collect();
    for variable in ["TABLE_NAME", "OTP_ISSUER", "EMAIL_FROM", "KEYS_SECRET_ID"] {
        assert!(
            problems.iter().any(|problem| problem.contains(variable)),
            "{variable} is named in the log: {stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_run_through_binary() {
    let (Some(endpoint), true) = (
        std::env::var("AWS_ENDPOINT_URL").ok().filter(|value| !value.is_empty()),
        is_env_set("TWOFA_MOTO_URL"),
    ) else {
        assert_ne!(
            std::env::var("TWOFA_REQUIRE_MOTO").as_deref(),
            Ok("1"),
            "TWOFA_REQUIRE_MOTO=1 but AWS_ENDPOINT_URL or TWOFA_MOTO_URL is not set"
        );
        eprintln!(
            "skipping events_run_through_binary: set AWS_ENDPOINT_URL and TWOFA_MOTO_URL to a moto server to run it"
        );
        return;
    };

    // A table in moto with demo-sub, whose 2FA is off, so its login returns a session.
    let table = format!("twofa-runtime-{}", uuid_like() % 1_000_000_000);
    let keys_json = Keys::generate_for_local(&OsRandom).expose().to_owned();
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("TABLE_NAME".into(), table.clone());
    vars.insert("OTP_ISSUER".into(), "Example Hosting".into());
    vars.insert("EMAIL_FROM".into(), "security@example.com".into());
    vars.insert("KEYS_JSON".into(), keys_json.clone());

    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(&endpoint);
    if !is_env_set("AWS_REGION") && !is_env_set("AWS_DEFAULT_REGION") {
        loader = loader.region(aws_config::Region::new(FALLBACK_REGION));
    }
    if !is_env_set("AWS_ACCESS_KEY_ID") {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ));
    }
    let sdk = loader.load().await;
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table)
        .await
        .expect("the table is created");
    let app = bootstrap::app_from_config(Config::from_vars(&vars).expect("a valid configuration"), &sdk)
        .await
        .expect("the app is built");
    let main = NewUser {
        username: "demo-main".into(),
        password: "demo-main-password-1".into(),
        email: None,
        language: Default::default(),
        two_factor_enabled: true,
    };
    let (account, _) = provisioning::create_customer_account(&app, "Demo Customer", &main)
        .await
        .expect("demo-main is created");
    let sub = NewUser {
        username: "demo-sub".into(),
        password: "demo-sub-password-1".into(),
        two_factor_enabled: false,
        ..main
    };
    provisioning::create_sub_account(&app, &account.account_id, &sub)
        .await
        .expect("demo-sub is created");

    let events = [
        "http/login-demo-sub.json",
        "http/login-wrong-password.json",
        "rest/login-demo-sub.json",
        "http/get-security-no-token.json",
    ];
    let (runtime, mut posted) = start_fake_runtime(events.iter().map(|file| read_event(file)).collect()).await;

    let mut command = Command::new(env!("CARGO_BIN_EXE_login-challenge"));
    command
        .env("AWS_LAMBDA_RUNTIME_API", runtime.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "login-challenge")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
        .envs(&vars)
        .env_remove("KEYS_SECRET_ID")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null());
    if !is_env_set("AWS_REGION") && !is_env_set("AWS_DEFAULT_REGION") {
        command.env("AWS_REGION", FALLBACK_REGION);
    }
    if !is_env_set("AWS_ACCESS_KEY_ID") {
        command
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing");
    }
    let mut child = command.spawn().expect("login-challenge runs");

    let mut results = Vec::new();
    for _ in events {
        let result = tokio::time::timeout(Duration::from_secs(60), posted.recv()).await;
        match result {
            Ok(Some(result)) => results.push(result),
            _ => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();

    assert_eq!(results.len(), events.len(), "one result per event: {results:?}");
    let expected = [
        (200, Some("authenticated")),
        (401, None),
        (200, Some("authenticated")),
        (404, None),
    ];
    for ((file, (path, body)), (status, body_status)) in events.iter().zip(&results).zip(expected) {
        assert!(
            path.ends_with("/response"),
            "{file}: the function posted {path}: {body}"
        );
        let response: Value =
            serde_json::from_str(body).unwrap_or_else(|error| panic!("{file}: not JSON ({error}): {body}"));
        assert_eq!(response["statusCode"], status, "{file}: {response}");
        let api_body: Value =
            serde_json::from_str(response["body"].as_str().unwrap_or_default()).unwrap_or(Value::Null);
        if let Some(body_status) = body_status {
            assert_eq!(api_body["status"], body_status, "{file}: {response}");
        }
    }
}
