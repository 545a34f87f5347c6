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
async fn sent_sms(moto: &str) -> Vec<(String, String)> {
    let url = format!("{}/moto-api/data.json", moto.trim_end_matches('/'));
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(url.parse().unwrap()).await.unwrap();
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
