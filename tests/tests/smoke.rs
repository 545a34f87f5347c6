//! Starts the `twofa-local` binary on a free port and runs the README walkthrough against it: log in
//! as the demo main user, read the SMS code from `/_local/outbox`, verify it, and open
//! `GET /security` with the session.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use twofa_e2e::{find_code, http_request, local_binary, moto_endpoints, unique_suffix, workspace_root};

const BANNER_PREFIX: &str = "twofa-local: every API route on http://";
const DEMO_PHONE_E164: &str = "+420601123456";

/// The running server; killed when dropped, so a failing test leaves no process behind.
struct LocalServer {
    child: Child,
    address: String,
    output: mpsc::Receiver<String>,
}

impl LocalServer {
    fn start(extra_args: &[&str], extra_env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(local_binary())
            .args(["--listen", "127.0.0.1:0"])
            .args(extra_args)
            .envs(extra_env.iter().copied())
            .env_remove("KEYS_JSON")
            .env_remove("AWS_ENDPOINT_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("twofa-local starts");
        let stdout = child.stdout.take().expect("stdout is piped");

        // A thread drains standard output, so the server never blocks on a full pipe.
        let (sender, output) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });

        let mut server = LocalServer {
            child,
            address: String::new(),
            output,
        };
        let banner = server.wait_for_line(BANNER_PREFIX, Duration::from_secs(120));
        server.address = banner.trim_start_matches(BANNER_PREFIX).trim().to_owned();
        server
    }

    /// Returns the first output line that starts with `prefix`, dropping the lines before it.
    fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(std::time::Instant::now());
            match self.output.recv_timeout(remaining) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => continue,
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!("no output line starting with {prefix:?} within {timeout:?}; exit status {status:?}");
                }
            }
        }
    }

    /// Collects the output lines printed so far.
    fn printed_lines(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(300));
        self.output.try_iter().collect()
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        http_request(&self.address, method, path, token, body)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns the messages listed at `/_local/outbox`.
fn outbox_messages(server: &LocalServer) -> Vec<Value> {
    let (status, outbox) = server.call("GET", "/_local/outbox", None, None);
    assert_eq!(status, 200, "outbox: {outbox}");
    outbox["messages"].as_array().expect("messages is a list").clone()
}

/// Waits until an email to `to` is listed at `/_local/outbox`; notifications are sent in the
/// background.
fn wait_for_email(server: &LocalServer, to: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let messages = outbox_messages(server);
        if messages
            .iter()
            .any(|message| message["kind"] == "email" && message["to"] == to)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no email to {to} within 30 s: {messages:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the README walkthrough: password, SMS code from the outbox, verify, `GET /security`.
fn run_walkthrough(server: &LocalServer) {
    let (status, challenge) = server.call(
        "POST",
        "/login",
        None,
        Some(json!({"username": "demo-main", "password": "demo-main-password-1"})),
    );
    assert_eq!(status, 200, "login: {challenge}");
    assert_eq!(challenge["status"], "challenge");
    assert_eq!(challenge["method"], "sms");
    let challenge_id = challenge["challenge_id"]
        .as_str()
        .expect("challenge_id is a string")
        .to_owned();

    let messages = outbox_messages(server);
    let sms_texts: Vec<&str> = messages
        .iter()
        .filter(|message| message["kind"] == "sms" && message["to"] == DEMO_PHONE_E164)
        .filter_map(|message| message["text"].as_str())
        .collect();
    assert_eq!(sms_texts.len(), 1, "one SMS to the demo phone: {messages:?}");
    let code = find_code(sms_texts[0]).expect("the SMS carries a six-digit code");

    let (status, session) = server.call(
        "POST",
        "/login/sms/verify",
        None,
        Some(json!({"challenge_id": challenge_id, "code": code})),
    );
    assert_eq!(status, 200, "verify: {session}");
    assert_eq!(session["status"], "authenticated");
    let token = session["session_token"]
        .as_str()
        .expect("session_token is a string")
        .to_owned();

    let (status, security) = server.call("GET", "/security", Some(&token), None);
    assert_eq!(status, 200, "security: {security}");
    assert_eq!(security["is_main_account"], true, "security: {security}");

    let (status, _) = server.call("GET", "/security", None, None);
    assert_eq!(status, 401);
}

#[test]
fn walkthrough_sms_login_on_local_server() {
    let server = LocalServer::start(&[], &[]);
    run_walkthrough(&server);
    wait_for_email(&server, "security@demo.example");
}

#[test]
fn walkthrough_on_dynamodb_endpoint() {
    // Panics instead of skipping when TWOFA_REQUIRE_MOTO=1.
    let Some(moto) = moto_endpoints("walkthrough_on_dynamodb_endpoint") else {
        return;
    };
    let table = format!("twofa-local-smoke-{}", unique_suffix());

    let server = LocalServer::start(&["--dynamodb-endpoint", &moto.endpoint], &[("TABLE_NAME", &table)]);
    run_walkthrough(&server);
    // The Security contact email of the seed comes through the table's stream.
    wait_for_email(&server, "security@demo.example");
}

#[test]
fn sub_account_without_2fa_gets_session() {
    let server = LocalServer::start(&[], &[]);
    let (status, session) = server.call(
        "POST",
        "/login",
        None,
        Some(json!({"username": "demo-sub", "password": "demo-sub-password-1"})),
    );
    assert_eq!(status, 200, "login: {session}");
    assert_eq!(session["status"], "authenticated");
}

#[test]
fn unknown_route_and_bad_json_are_json_errors() {
    let server = LocalServer::start(&[], &[]);
    let (status, body) = server.call("GET", "/no-such-route", None, None);
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");

    let (status, body) = server.call("POST", "/login", None, Some(json!({"username": "demo-main"})));
    assert_eq!(status, 400);
    assert_eq!(body["field"], "password");
}

#[test]
fn seed_file_example_is_served() {
    let example = workspace_root().join("docs/seed-example.json");
    let example = example.to_str().expect("the workspace path is UTF-8");
    let server = LocalServer::start(&["--seed", example], &[]);
    let printed = server.printed_lines();
    assert!(
        printed.iter().any(|line| line.contains("example-totp")),
        "credentials printed: {printed:?}"
    );

    let (status, challenge) = server.call(
        "POST",
        "/login",
        None,
        Some(json!({"username": "example-totp", "password": "example-totp-password-1"})),
    );
    assert_eq!(status, 200, "login: {challenge}");
    assert_eq!(challenge["method"], "totp");

    let (status, session) = server.call(
        "POST",
        "/login",
        None,
        Some(json!({"username": "example-enroll", "password": "example-enroll-password-1"})),
    );
    assert_eq!(status, 200, "login: {session}");
    assert_eq!(session["status"], "enrollment");

    let (status, _) = server.call(
        "POST",
        "/login",
        None,
        Some(json!({"username": "demo-main", "password": "demo-main-password-1"})),
    );
    assert_eq!(status, 401, "the demo account is not seeded with --seed");
}
