//! [`SnsSmsSender`] against moto: SMS published to a phone number, read back from moto's
//! `GET /moto-api/data.json` (`sns.SMS[]` with `phone_number` and `message`).
//!
//! Needs `AWS_ENDPOINT_URL` pointing at a moto server (`TWOFA_MOTO_URL` names its management API,
//! default the same URL). Without it the tests print a skip message and pass, unless
//! `TWOFA_REQUIRE_MOTO=1` makes them fail.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sns::config::Credentials;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use twofa_core::aws::sns::SnsSmsSender;
use twofa_core::model::SessionKind;
use twofa_core::ports::{SendError, Sms, SmsSender};
use twofa_core::service::{sessions, users};
use twofa_core::testing::{find_code, TestApp};

const PASSWORD: &str = "correct horse battery staple";

/// Returns moto's URL, or `None` after printing why the test is skipped.
fn moto_url(test: &str) -> Option<String> {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
        let is_required = std::env::var("TWOFA_REQUIRE_MOTO").is_ok_and(|value| value == "1");
        assert!(!is_required, "AWS_ENDPOINT_URL is not set and TWOFA_REQUIRE_MOTO=1");
        eprintln!("skipping {test}: AWS_ENDPOINT_URL is not set, so no moto server is available");
        return None;
    };
    Some(std::env::var("TWOFA_MOTO_URL").unwrap_or(endpoint))
}

/// Builds an SNS client for moto with fixed test credentials and region, so the SDK never queries
/// a credential or region provider that could reach the instance metadata service.
async fn sns_client() -> aws_sdk_sns::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("eu-central-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto-test"))
        .load()
        .await;
    aws_sdk_sns::Client::new(&config)
}

/// Returns a number that no other test run shares, for telling this run's messages apart.
fn unique_nonce() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// Returns (phone number, message) of every SMS moto's SNS accepted.
///
/// moto 5.2.5 builds `data.json` while other requests change its models, and returns 500 when a
/// DynamoDB stream gets its first record during that time, so a 500 is retried a few times.
async fn sent_sms(moto: &str) -> Vec<(String, String)> {
    let url = format!("{}/moto-api/data.json", moto.trim_end_matches('/'));
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut attempt = 1;
    let response = loop {
        let response = client.get(url.parse().unwrap()).await.unwrap();
        if response.status() == 200 || attempt == 10 {
            break response;
        }
        attempt += 1;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(response.status(), 200);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let data: Value = serde_json::from_slice(&bytes).unwrap();

    let messages = data["sns"]["SMS"].as_array().cloned().unwrap_or_default();
    messages
        .into_iter()
        .map(|sms| {
            let phone = sms["phone_number"].as_str().unwrap_or_default().to_owned();
            let message = sms["message"].as_str().unwrap_or_default().to_owned();
            (phone, message)
        })
        .collect()
}

#[tokio::test]
async fn sns_sender_publishes_sms() {
    let Some(moto) = moto_url("sns_sender_publishes_sms") else {
        return;
    };
    let sender = SnsSmsSender::new(sns_client().await, Some("Example".into()));
    let text = format!("Example Hosting login code: 123456. Test run {}.", unique_nonce());

    sender
        .send(&Sms {
            phone_e164: "+420601123456".into(),
            text: text.clone(),
        })
        .await
        .unwrap();

    let sent = sent_sms(&moto).await;
    assert!(
        sent.contains(&("+420601123456".to_owned(), text.clone())),
        "{text} not in {sent:?}"
    );
}

#[tokio::test]
async fn malformed_number_is_permanent_failure() {
    if moto_url("malformed_number_is_permanent_failure").is_none() {
        return;
    }
    let sender = SnsSmsSender::new(sns_client().await, None);

    let result = sender
        .send(&Sms {
            phone_e164: "+0123".into(),
            text: "test".into(),
        })
        .await;

    assert!(matches!(result, Err(SendError::Permanent(_))), "{result:?}");
}

#[tokio::test]
async fn unreachable_sns_is_temporary_failure() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("eu-central-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto-test"))
        .endpoint_url(format!("http://127.0.0.1:{closed_port}"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let sender = SnsSmsSender::new(aws_sdk_sns::Client::new(&config), None);

    let result = sender
        .send(&Sms {
            phone_e164: "+420601123456".into(),
            text: "test".into(),
        })
        .await;

    assert!(matches!(result, Err(SendError::Temporary(_))), "{result:?}");
}

#[tokio::test]
async fn number_verification_through_sns() {
    let Some(moto) = moto_url("number_verification_through_sns") else {
        return;
    };
    let mut test = TestApp::new();
    test.app.sms = Arc::new(SnsSmsSender::new(sns_client().await, None));
    let issuer = format!("Example Hosting {}", unique_nonce());
    test.app.config.otp_issuer = issuer.clone();
    let (_, user_id) = test.create_main_user("alice", PASSWORD).await;
    let state = users::load(&test.app, &user_id).await.unwrap().unwrap();
    let issued = sessions::issue(&test.app, &user_id, SessionKind::Enrollment, state.user.session_epoch).unwrap();
    test.app.store.write(issued.write.clone()).await.unwrap();
    let token = issued.token.expose().to_owned();

    let response = test
        .call(
            "PUT",
            "/security/sms/number",
            Some(&token),
            &json!({ "phone": "+421 905 123 456" }).to_string(),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);

    let sent = sent_sms(&moto).await;
    let (phone, message) = sent
        .iter()
        .find(|(_, message)| message.starts_with(&issuer))
        .expect("the SMS reached moto");
    assert_eq!(phone, "+421905123456");
    let code = find_code(&message[issuer.len()..]).unwrap();
    let response = test
        .call(
            "POST",
            "/security/sms/number/verify",
            Some(&token),
            &json!({ "code": code }).to_string(),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
}

/// Returns the code of the newest SMS that moto's SNS accepted for `phone_e164` from the service
/// named `issuer`, and how many such messages there are.
async fn latest_code_to(moto: &str, issuer: &str, phone_e164: &str) -> (String, usize) {
    let messages: Vec<String> = sent_sms(moto)
        .await
        .into_iter()
        .filter(|(phone, message)| phone == phone_e164 && message.contains(issuer))
        .map(|(_, message)| message)
        .collect();
    let newest = messages.last().expect("an SMS to the number reached moto");
    let after_issuer = &newest[newest.find(issuer).unwrap() + issuer.len()..];
    (find_code(after_issuer).unwrap(), messages.len())
}

/// Counts the SMS that moto's SNS accepted for `phone_e164` from the service named `issuer`.
async fn count_to(moto: &str, issuer: &str, phone_e164: &str) -> usize {
    sent_sms(moto)
        .await
        .iter()
        .filter(|(phone, message)| phone == phone_e164 && message.contains(issuer))
        .count()
}

/// Builds a test app whose store is a new DynamoDB table on moto and whose SMS go to moto's SNS,
/// with a service name that no other test run shares.
async fn moto_app(table_prefix: &str) -> (TestApp, String) {
    use twofa_core::store::dynamo::DynamoStore;

    let nonce = unique_nonce();
    let sdk = twofa_core::aws::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("{table_prefix}-{nonce}");
    DynamoStore::create_table(&dynamodb, &table).await.unwrap();
    let mut test = TestApp::new();
    test.app.store = Arc::new(DynamoStore::new(dynamodb, &table, test.clock.clone()));
    test.app.sms = Arc::new(SnsSmsSender::new(sns_client().await, None));
    let issuer = format!("Example Hosting {nonce}");
    test.app.config.otp_issuer = issuer.clone();
    (test, issuer)
}

/// Logs in with the password, completes the SMS challenge with the code that moto received for
/// `phone_e164`, and returns the session token.
async fn sms_login(test: &TestApp, moto: &str, issuer: &str, username: &str, phone_e164: &str) -> String {
    let body = json!({ "username": username, "password": PASSWORD }).to_string();
    let challenge = test.call("POST", "/login", None, &body).await;
    assert_eq!(challenge.status, 200, "{}", challenge.body);
    let challenge: Value = serde_json::from_str(&challenge.body).unwrap();
    assert_eq!(challenge["method"], "sms");

    let (code, _) = latest_code_to(moto, issuer, phone_e164).await;
    let body = json!({ "challenge_id": challenge["challenge_id"], "code": code }).to_string();
    let session = test.call("POST", "/login/sms/verify", None, &body).await;
    assert_eq!(session.status, 200, "{}", session.body);
    let session: Value = serde_json::from_str(&session.body).unwrap();
    session["session_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn number_lifecycle_and_login_through_moto() {
    let Some(moto) = moto_url("number_lifecycle_and_login_through_moto") else {
        return;
    };
    let (test, issuer) = moto_app("twofa-sms-lifecycle").await;
    let (first, second) = ("+420601555111", "+420602555222");
    let (_, user_id) = test.create_main_user("hana", PASSWORD).await;
    let state = users::load(&test.app, &user_id).await.unwrap().unwrap();
    let issued = sessions::issue(&test.app, &user_id, SessionKind::Enrollment, state.user.session_epoch).unwrap();
    test.app.store.write(issued.write.clone()).await.unwrap();
    let enrollment = issued.token.expose().to_owned();

    // Add and verify the first number in the enrollment session, then log in by SMS.
    let put = json!({ "phone": "601 555 111" }).to_string();
    let response = test.call("PUT", "/security/sms/number", Some(&enrollment), &put).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let (code, _) = latest_code_to(&moto, &issuer, first).await;
    let verify = json!({ "code": code }).to_string();
    let response = test
        .call("POST", "/security/sms/number/verify", Some(&enrollment), &verify)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let token = sms_login(&test, &moto, &issuer, "hana", first).await;

    // A changed number stays pending: logins still use the first number until it is verified.
    let put = json!({ "phone": "+420 602 555 222" }).to_string();
    let response = test.call("PUT", "/security/sms/number", Some(&token), &put).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let (pending_code, sent_to_second) = latest_code_to(&moto, &issuer, second).await;
    let token = sms_login(&test, &moto, &issuer, "hana", first).await;
    assert_eq!(count_to(&moto, &issuer, second).await, sent_to_second);

    let verify = json!({ "code": pending_code }).to_string();
    let response = test
        .call("POST", "/security/sms/number/verify", Some(&token), &verify)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let sent_to_first = count_to(&moto, &issuer, first).await;
    let token = sms_login(&test, &moto, &issuer, "hana", second).await;
    assert_eq!(count_to(&moto, &issuer, first).await, sent_to_first);

    // The main account's last factor cannot go; with an OTP app beside it, the number can.
    let response = test.call("DELETE", "/security/sms/number", Some(&token), "").await;
    assert_eq!(response.status, 409, "{}", response.body);
    assert!(response.body.contains("factor_required"), "{}", response.body);
    let secret = twofa_core::secret::SecretBytes::from_slice(b"12345678901234567890");
    twofa_core::service::provisioning::add_active_totp(&test.app, &user_id, &secret, false)
        .await
        .unwrap();
    let response = test.call("DELETE", "/security/sms/number", Some(&token), "").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let body = json!({ "username": "hana", "password": PASSWORD }).to_string();
    let challenge = test.call("POST", "/login", None, &body).await;
    assert_eq!(challenge.status, 200, "{}", challenge.body);
    assert!(challenge.body.contains(r#""method":"totp""#), "{}", challenge.body);
}

#[tokio::test]
async fn sms_pumping_reaches_moto_five_times() {
    let Some(moto) = moto_url("sms_pumping_reaches_moto_five_times") else {
        return;
    };
    let (test, issuer) = moto_app("twofa-sms-pumping").await;
    let mut tokens = Vec::new();
    for index in 0..4 {
        let (_, user_id) = test.create_main_user(&format!("pump{index}"), PASSWORD).await;
        let state = users::load(&test.app, &user_id).await.unwrap().unwrap();
        let issued = sessions::issue(&test.app, &user_id, SessionKind::Enrollment, state.user.session_epoch).unwrap();
        test.app.store.write(issued.write.clone()).await.unwrap();
        tokens.push(issued.token.expose().to_owned());
    }

    // 200 requests within 50 simulated seconds, spread over four users: new numbers and resends.
    let put = json!({ "phone": "+420 603 555 333" }).to_string();
    let mut rejected = 0;
    for request in 0..200 {
        let token = &tokens[request % tokens.len()];
        let response = if request < tokens.len() || request % 2 == 0 {
            test.call("PUT", "/security/sms/number", Some(token), &put).await
        } else {
            test.call("POST", "/security/sms/number/send-code", Some(token), "")
                .await
        };
        if response.status != 200 {
            assert_eq!(response.status, 429, "{}", response.body);
            assert!(response.body.contains("rate_limited"), "{}", response.body);
            let retry_after: i64 = response.header("retry-after").expect("Retry-After").parse().unwrap();
            assert!(retry_after >= 1);
            rejected += 1;
        }
        if request % 4 == 3 {
            test.clock.advance(1);
        }
    }

    assert_eq!(count_to(&moto, &issuer, "+420603555333").await, 5);
    assert_eq!(rejected, 195);
}
