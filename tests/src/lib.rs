//! Helpers shared by the end-to-end tests in `tests/tests/`: the built `twofa-admin` and
//! `twofa-local` binaries, the moto server named by the environment, and a small HTTP client.
//!
//! This crate is test support only. Its helpers panic with a message where a test would fail.
//!
//! Environment:
//! - `AWS_ENDPOINT_URL` and `TWOFA_MOTO_URL` point at a moto server (`http://host:port`). Without
//!   them the moto tests are skipped with a message, unless `TWOFA_REQUIRE_MOTO=1`, which makes
//!   them fail.
//! - `TWOFA_REQUIRE_TOOLS=1` makes a test fail when an outside tool such as `oathtool` is missing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The moto server of a test run.
#[derive(Debug, Clone)]
pub struct MotoEndpoints {
    /// Endpoint for the AWS SDK, from `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    /// Base URL of moto's own API (`/moto-api/...`), from `TWOFA_MOTO_URL`.
    pub moto_url: String,
}

/// Returns the moto server from `AWS_ENDPOINT_URL` and `TWOFA_MOTO_URL`, or `None` after printing
/// why `test` is skipped. Panics when either is unset and `TWOFA_REQUIRE_MOTO=1`.
pub fn moto_endpoints(test: &str) -> Option<MotoEndpoints> {
    let endpoint = env_value("AWS_ENDPOINT_URL");
    let moto_url = env_value("TWOFA_MOTO_URL");
    match (endpoint, moto_url) {
        (Some(endpoint), Some(moto_url)) => Some(MotoEndpoints { endpoint, moto_url }),
        _ if is_required("TWOFA_REQUIRE_MOTO") => {
            panic!("{test}: TWOFA_REQUIRE_MOTO=1 but AWS_ENDPOINT_URL or TWOFA_MOTO_URL is not set")
        }
        _ => {
            eprintln!("skipping {test}: set AWS_ENDPOINT_URL and TWOFA_MOTO_URL to a moto server to run it");
            None
        }
    }
}

/// Returns the value of an environment variable, or `None` when it is unset or empty.
pub fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Returns whether an environment variable is set to a non-empty value.
pub fn is_env_set(name: &str) -> bool {
    env_value(name).is_some()
}

/// Returns whether a `TWOFA_REQUIRE_*` variable is `1`, so a missing dependency fails the test
/// instead of skipping it.
pub fn is_required(name: &str) -> bool {
    std::env::var(name).as_deref() == Ok("1")
}

/// Returns a number below 1,000,000 from the clock and the process id, which makes table names,
/// usernames and phone numbers of one run unique on a shared moto server.
pub fn unique_suffix() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    (nanos as u64 ^ u64::from(std::process::id()).rotate_left(32)) % 1_000_000
}

/// Returns the first run of exactly six digits in a text, such as the code in an SMS.
pub fn find_code(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .map(str::to_owned)
}

/// Returns the workspace root, the folder that contains this crate.
pub fn workspace_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
    })
}

/// Returns the path of the `twofa-admin` binary, built once per test binary on first use.
pub fn admin_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build_binary("twofa-admin"))
}

/// Returns the path of the `twofa-local` binary, built once per test binary on first use.
pub fn local_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build_binary("twofa-local"))
}

/// Builds the binary of the same name as its workspace package with `cargo build`, in release
/// mode only when this crate itself is built without debug assertions, and returns its path.
fn build_binary(package: &str) -> PathBuf {
    // `--workspace` with `--bin` builds with the features of the whole workspace, as `cargo test
    // --workspace` does, so the build reuses the test run's artifacts instead of compiling the
    // dependencies again with the features of one package.
    let build = escargot::CargoBuild::new()
        .bin(package)
        .arg("--workspace")
        .manifest_path(workspace_root().join("Cargo.toml"))
        .current_release()
        .run()
        .unwrap_or_else(|error| panic!("building {package} with cargo failed: {error}"));
    build.path().to_path_buf()
}

/// Returns moto's recorded state, `GET /moto-api/data.json` on the server at `moto_url`.
///
/// moto 5.2.5 builds this document while other requests change its models, and returns 500 when a
/// DynamoDB stream gets its first record during that time, so a 500 is retried a few times.
pub fn moto_data(moto_url: &str) -> Value {
    let address = moto_url.trim_start_matches("http://").trim_end_matches('/');
    let mut attempt = 1;
    loop {
        let (status, body) = http_request_text(address, "GET", "/moto-api/data.json", None, None);
        if status == 200 {
            return serde_json::from_str(&body)
                .unwrap_or_else(|error| panic!("GET /moto-api/data.json returned no JSON ({error}): {body}"));
        }
        assert!(
            attempt < MOTO_DATA_ATTEMPTS,
            "GET /moto-api/data.json on {address} failed with {status}: {body}"
        );
        attempt += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Attempts of [`moto_data`] before a failing status fails the test.
const MOTO_DATA_ATTEMPTS: usize = 10;

/// Sends one HTTP/1.1 request with `Connection: close` to `address` (`host:port`) and returns the
/// status and the JSON body, or `Value::Null` for an empty body. `token` is sent as a bearer token.
pub fn http_request(address: &str, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let (status, body) = http_request_text(address, method, path, token, body);
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("{method} {path} returned no JSON ({error}): {body}"))
    };
    (status, body)
}

/// Sends one request like [`http_request`] and returns the status and the body as text.
fn http_request_text(
    address: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let mut stream =
        TcpStream::connect(address).unwrap_or_else(|error| panic!("connecting to {address} failed: {error}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("sets a read timeout");
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).expect("sends the request");

    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("reads the response");
    let response = String::from_utf8(response).expect("the response is UTF-8");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("the response has a head and a body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: the status line has no code: {head}"));
    (status, body.to_owned())
}
