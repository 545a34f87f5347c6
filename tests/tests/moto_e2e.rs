//! End-to-end tests on moto. The built `twofa-admin` binary provisions users in a DynamoDB table.
//! Logins go through the same handlers as the Lambda functions, with the real DynamoDB store and
//! SNS sender. The SMS code is read back from moto, the TOTP code is computed by `oathtool`, and
//! the admin tool's audit listing must show the logins.
//!
//! Needs a moto server: `AWS_ENDPOINT_URL` and `TWOFA_MOTO_URL` point at it. Without them the
//! tests are skipped with a message, unless `TWOFA_REQUIRE_MOTO=1`, which makes them fail.
//! `oathtool` (Debian package `oathtool`) is needed for the TOTP test; without it that test is
//! skipped unless `TWOFA_REQUIRE_TOOLS=1`.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::{json, Value};
use twofa_core::aws::bootstrap;
use twofa_core::config::Config;
use twofa_core::crypto::Keys;
use twofa_core::http::{ApiRequest, ApiResponse};
use twofa_core::ports::OsRandom;
use twofa_core::routes::Function;
use twofa_core::service::App;
use twofa_core::store::dynamo::DynamoStore;
use twofa_e2e::{admin_binary, find_code, is_env_set, is_required, moto_data, moto_endpoints, unique_suffix};

const SOURCE_IP: &str = "198.51.100.77";
const FALLBACK_REGION: &str = "eu-central-1";

/// A moto server, a fresh table in it, and an [`App`] on that table.
struct MotoRun {
    endpoint: String,
    moto_url: String,
    table: String,
    keys_json: String,
    app: App,
    /// Makes usernames and phone numbers of this run unique on a shared moto server.
    suffix: u64,
}

impl MotoRun {
    async fn start(test: &str) -> Option<Self> {
        let moto = moto_endpoints(test)?;
        let suffix = unique_suffix();
        let table = format!("twofa-e2e-{test}-{suffix}").replace('_', "-");
        let keys_json = Keys::generate_for_local(&OsRandom).expose().to_owned();

        let sdk = sdk_config(&moto.endpoint).await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        DynamoStore::create_table(&client, &table)
            .await
            .expect("the table is created in moto");

        let vars: HashMap<String, String> = [
            ("TABLE_NAME", table.as_str()),
            ("OTP_ISSUER", "Example Hosting"),
            ("EMAIL_FROM", "security@example.com"),
            ("KEYS_JSON", keys_json.as_str()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        let config = Config::from_vars(&vars).expect("the test configuration is valid");
        let app = bootstrap::app_from_config(config, &sdk)
            .await
            .expect("the app is built on moto");
        Some(MotoRun {
            endpoint: moto.endpoint,
            moto_url: moto.moto_url,
            table,
            keys_json,
            app,
            suffix,
        })
    }

    fn username(&self, name: &str) -> String {
        format!("e2e-{name}-{}", self.suffix)
    }

    /// Returns a Czech mobile number in E.164 that no other run uses.
    fn phone_e164(&self) -> String {
        format!("+420601{:06}", self.suffix)
    }

    /// Builds a `twofa-admin` command with the table and keys of this run and a password in
    /// `TWOFA_PASSWORD` when given.
    fn admin_command(&self, args: &[&str], password: Option<&str>) -> Command {
        let mut command = Command::new(admin_binary());
        command
            .args(args)
            .env("TABLE_NAME", &self.table)
            .env("OTP_ISSUER", "Example Hosting")
            .env("EMAIL_FROM", "security@example.com")
            .env("KEYS_JSON", &self.keys_json)
            .env_remove("KEYS_SECRET_ID")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !is_env_set("AWS_REGION") && !is_env_set("AWS_DEFAULT_REGION") {
            command.env("AWS_REGION", FALLBACK_REGION);
        }
        if !is_env_set("AWS_ACCESS_KEY_ID") {
            command
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing");
        }
        match password {
            Some(password) => command.env("TWOFA_PASSWORD", password),
            None => command.env_remove("TWOFA_PASSWORD"),
        };
        command
    }

    /// Runs `twofa-admin` with empty standard input.
    /// Runs `twofa-admin` with `input` on its standard input and returns its output.
    fn admin_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut process = self.admin_command(args, None).spawn().expect("twofa-admin runs");
        process
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .expect("writes standard input");
        process.wait_with_output().expect("twofa-admin finishes")
    }

    fn admin(&self, args: &[&str], password: Option<&str>) -> Output {
        let mut process = self.admin_command(args, password).spawn().expect("twofa-admin runs");
        drop(process.stdin.take());
        process.wait_with_output().expect("twofa-admin finishes")
    }

    /// Runs `twofa-admin`, expects success, and returns its JSON output.
    fn admin_ok(&self, args: &[&str], password: Option<&str>) -> Value {
        let output = self.admin(args, password);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "twofa-admin {args:?} failed with {}: {stderr}",
            output.status
        );
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("twofa-admin {args:?} printed no JSON ({error}): {stderr}"))
    }

    async fn call(
        &self,
        function: Function,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let mut headers = HashMap::new();
        headers.insert("content-type".to_owned(), "application/json".to_owned());
        if let Some(token) = token {
            headers.insert("authorization".to_owned(), format!("Bearer {token}"));
        }
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let request = ApiRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            headers,
            body,
            source_ip: SOURCE_IP.to_owned(),
            request_id: format!("e2e-{}", self.suffix),
        };
        let response: ApiResponse = twofa_core::api::handle(&self.app, request, Some(function)).await;
        let body = serde_json::from_str(&response.body).unwrap_or(Value::Null);
        (response.status, body)
    }

    /// Returns the texts of the SMS that moto's SNS recorded for a number, oldest first.
    fn sms_texts_to(&self, phone_e164: &str) -> Vec<String> {
        let data = moto_data(&self.moto_url);
        data["sns"]["SMS"]
            .as_array()
            .map(|messages| {
                messages
                    .iter()
                    .filter(|message| message["phone_number"] == phone_e164)
                    .filter_map(|message| message["message"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

async fn sdk_config(endpoint: &str) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).endpoint_url(endpoint);
    if !is_env_set("AWS_REGION") && !is_env_set("AWS_DEFAULT_REGION") {
        loader = loader.region(Region::new(FALLBACK_REGION));
    }
    if !is_env_set("AWS_ACCESS_KEY_ID") {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "e2e",
        ));
    }
    loader.load().await
}

/// Computes the current TOTP code of a Base32 secret with `oathtool`, or `None` when it is not
/// installed and not required.
fn oathtool_code(secret: &str) -> Option<String> {
    match Command::new("oathtool").args(["--totp", "-b", secret]).output() {
        Ok(output) if output.status.success() => Some(String::from_utf8_lossy(&output.stdout).trim().to_owned()),
        Ok(output) => panic!(
            "oathtool failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(_) if is_required("TWOFA_REQUIRE_TOOLS") => {
            panic!("TWOFA_REQUIRE_TOOLS=1 but oathtool is not installed (Debian package oathtool)")
        }
        Err(_) => {
            eprintln!("skipping the TOTP login: oathtool is not installed (Debian package oathtool)");
            None
        }
    }
}

/// Returns the audit records that `twofa-admin audit` lists for a user, newest first.
fn audit_records(run: &MotoRun, username: &str) -> Vec<Value> {
    let listing = run.admin_ok(&["audit", "--username", username, "--limit", "20"], None);
    listing["records"].as_array().cloned().unwrap_or_default()
}

fn has_record(records: &[Value], event: &str, method: Option<&str>) -> bool {
    records.iter().any(|record| {
        record["event"] == event
            && record["outcome"] == "success"
            && record["source_ip"] == SOURCE_IP
            && method.is_none_or(|method| record["method"] == method)
    })
}

#[tokio::test]
async fn sms_login_end_to_end_on_moto() {
    let Some(run) = MotoRun::start("sms_login").await else {
        return;
    };
    let username = run.username("main");
    let password = "e2e-main-password-1";
    let phone = run.phone_e164();

    let created = run.admin_ok(
        &[
            "create-account",
            "--name",
            "E2E Customer",
            "--username",
            &username,
            "--email",
            "main@e2e.example",
            "--language",
            "en",
        ],
        Some(password),
    );
    assert_eq!(created["is_main_account"], true);
    let added = run.admin_ok(&["add-sms", "--username", &username, "--phone", &phone], None);
    assert_eq!(added["login_method"], "sms");

    let (status, challenge) = run
        .call(
            Function::LoginChallenge,
            "POST",
            "/login",
            None,
            json!({"username": username, "password": password}),
        )
        .await;
    assert_eq!(status, 200, "login: {challenge}");
    assert_eq!(challenge["method"], "sms");
    let challenge_id = challenge["challenge_id"]
        .as_str()
        .expect("challenge_id is a string")
        .to_owned();

    let texts = run.sms_texts_to(&phone);
    assert_eq!(texts.len(), 1, "one SMS in moto for {phone}: {texts:?}");
    let code = find_code(&texts[0]).expect("the SMS carries a six-digit code");

    let (status, session) = run
        .call(
            Function::Sms,
            "POST",
            "/login/sms/verify",
            None,
            json!({"challenge_id": challenge_id, "code": code}),
        )
        .await;
    assert_eq!(status, 200, "verify: {session}");
    let token = session["session_token"]
        .as_str()
        .expect("session_token is a string")
        .to_owned();

    let (status, security) = run
        .call(Function::Settings, "GET", "/security", Some(&token), Value::Null)
        .await;
    assert_eq!(status, 200, "security: {security}");
    assert_eq!(security["username"], username.as_str());
    assert_eq!(security["login_method"], "sms");

    let records = audit_records(&run, &username);
    assert!(
        has_record(&records, "login_password", None),
        "password step audited: {records:?}"
    );
    assert!(
        has_record(&records, "login_sms", Some("sms")),
        "SMS step audited: {records:?}"
    );
    let times: Vec<&str> = records.iter().filter_map(|record| record["at"].as_str()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "records are listed newest first");
}

#[tokio::test]
async fn totp_login_end_to_end_on_moto() {
    let Some(run) = MotoRun::start("totp_login").await else {
        return;
    };
    let main = run.username("owner");
    let username = run.username("totp");
    let password = "e2e-totp-password-1";
    let secret = twofa_core::totp::format_backup_key(&twofa_core::totp::new_secret(&OsRandom));

    let account = run.admin_ok(
        &[
            "create-account",
            "--name",
            "E2E TOTP",
            "--username",
            &main,
            "--email",
            "owner@e2e.example",
            "--language",
            "cs",
        ],
        Some("e2e-owner-password-1"),
    );
    let account_id = account["account_id"]
        .as_str()
        .expect("account_id is a string")
        .to_owned();
    let user = run.admin_ok(
        &[
            "create-user",
            "--account",
            &account_id,
            "--username",
            &username,
            "--email",
            "totp@e2e.example",
            "--two-factor",
        ],
        Some(password),
    );
    assert_eq!(user["two_factor_enabled"], true);
    let output = run.admin_with_input(
        &["add-totp", "--username", &username, "--secret-stdin"],
        &format!("{secret}\n"),
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let added: Value = serde_json::from_slice(&output.stdout).expect("add-totp prints JSON");
    assert_eq!(added["login_method"], "totp");

    let (status, challenge) = run
        .call(
            Function::LoginChallenge,
            "POST",
            "/login",
            None,
            json!({"username": username, "password": password}),
        )
        .await;
    assert_eq!(status, 200, "login: {challenge}");
    assert_eq!(challenge["method"], "totp");
    let challenge_id = challenge["challenge_id"]
        .as_str()
        .expect("challenge_id is a string")
        .to_owned();

    let Some(code) = oathtool_code(&secret) else {
        return;
    };
    let (status, session) = run
        .call(
            Function::Otp,
            "POST",
            "/login/otp/verify",
            None,
            json!({"challenge_id": challenge_id, "code": code}),
        )
        .await;
    assert_eq!(status, 200, "verify: {session}");
    let token = session["session_token"]
        .as_str()
        .expect("session_token is a string")
        .to_owned();

    let (status, security) = run
        .call(Function::Settings, "GET", "/security", Some(&token), Value::Null)
        .await;
    assert_eq!(status, 200, "security: {security}");
    assert_eq!(security["login_method"], "totp");

    let records = audit_records(&run, &username);
    assert!(
        has_record(&records, "login_totp", Some("totp")),
        "TOTP step audited: {records:?}"
    );
}

#[tokio::test]
async fn admin_commands_on_moto() {
    let Some(run) = MotoRun::start("admin_commands").await else {
        return;
    };
    let main = run.username("admin");
    let sub = run.username("sub");

    let account = run.admin_ok(
        &[
            "create-account",
            "--name",
            "E2E Admin",
            "--username",
            &main,
            "--email",
            "admin@e2e.example",
            "--language",
            "en",
        ],
        Some("e2e-admin-password-1"),
    );
    let account_id = account["account_id"]
        .as_str()
        .expect("account_id is a string")
        .to_owned();
    run.admin_ok(
        &["create-user", "--account", &account_id, "--username", &sub],
        Some("e2e-sub-password-1"),
    );

    // A taken username, a missing password and an unknown user fail with a message on stderr.
    let username_taken = run.admin(
        &[
            "create-account",
            "--name",
            "Again",
            "--username",
            &main,
            "--email",
            "a@e2e.example",
        ],
        Some("e2e-admin-password-1"),
    );
    assert!(!username_taken.status.success());
    assert!(
        String::from_utf8_lossy(&username_taken.stderr).contains("taken"),
        "{}",
        String::from_utf8_lossy(&username_taken.stderr)
    );
    assert!(username_taken.stdout.is_empty());
    let no_password = run.admin(&["set-password", "--username", &sub], None);
    assert!(!no_password.status.success());
    assert!(String::from_utf8_lossy(&no_password.stderr).contains("TWOFA_PASSWORD"));
    let unknown = run.admin(&["reset-2fa", "--username", "e2e-nobody"], None);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not found"));
    let no_records = run.admin(&["redeliver"], None);
    assert_eq!(
        no_records.status.code(),
        Some(2),
        "clap rejects redeliver without records"
    );
    let unknown_record = run.admin(&["redeliver", "--event-id", "e2e-no-such-event"], None);
    assert!(!unknown_record.status.success());
    let stderr = String::from_utf8_lossy(&unknown_record.stderr);
    assert!(
        stderr.contains("e2e-no-such-event") && stderr.contains("no outbox record"),
        "{stderr}"
    );

    // --password-stdin: the new password works and the old one no longer does.
    let output = run.admin_with_input(
        &["set-password", "--username", &sub, "--password-stdin"],
        "e2e-sub-password-2\n",
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (status, _) = run
        .call(
            Function::LoginChallenge,
            "POST",
            "/login",
            None,
            json!({"username": sub, "password": "e2e-sub-password-1"}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, session) = run
        .call(
            Function::LoginChallenge,
            "POST",
            "/login",
            None,
            json!({"username": sub, "password": "e2e-sub-password-2"}),
        )
        .await;
    assert_eq!(status, 200, "login with the new password: {session}");
    assert_eq!(session["status"], "authenticated");

    let contact = run.admin_ok(
        &[
            "set-security-contact",
            "--account",
            &account_id,
            "--name",
            "E2E Security",
            "--email",
            "security@e2e.example",
            "--language",
            "cs",
        ],
        None,
    );
    assert_eq!(contact["language"], "cs");

    run.admin_ok(&["add-sms", "--username", &main, "--phone", &run.phone_e164()], None);
    run.admin_ok(&["reset-2fa", "--username", &main], None);
    let (status, session) = run
        .call(
            Function::LoginChallenge,
            "POST",
            "/login",
            None,
            json!({"username": main, "password": "e2e-admin-password-1"}),
        )
        .await;
    assert_eq!(status, 200, "login after the reset: {session}");
    assert_eq!(
        session["status"], "enrollment",
        "a main account without factors enrolls again"
    );

    let records = audit_records(&run, &main);
    for event in [
        "user_created",
        "security_contact_set",
        "admin_sms_added",
        "two_factor_reset",
    ] {
        assert!(
            records.iter().any(|record| record["event"] == event),
            "{event} audited: {records:?}"
        );
    }
}
