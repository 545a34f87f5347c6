//! The notifier against moto: a real change writes its outbox record into a DynamoDB table, the
//! stream poller reads it from the table's stream, and [`SesMailer`] sends the emails to SES v2.
//! The test reads the sent messages back from moto's `GET /moto-api/data.json`.
//!
//! Needs `AWS_ENDPOINT_URL` pointing at a moto server (`TWOFA_MOTO_URL` names its management API,
//! default the same URL). Without it the test prints a skip message and passes, unless
//! `TWOFA_REQUIRE_MOTO=1` makes it fail.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use twofa_core::aws::ses::SesMailer;
use twofa_core::aws::stream_poller::StreamPoller;
use twofa_core::model::SessionKind;
use twofa_core::service::{sessions, users};
use twofa_core::store::dynamo::DynamoStore;
use twofa_core::testing::TestApp;

const PASSWORD: &str = "correct horse battery staple";

/// Returns moto's URL, or `None` after printing why the test is skipped.
fn moto_url(test: &str) -> Option<String> {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
        let required = std::env::var("TWOFA_REQUIRE_MOTO").is_ok_and(|value| value == "1");
        assert!(!required, "AWS_ENDPOINT_URL is not set and TWOFA_REQUIRE_MOTO=1");
        eprintln!("skipping {test}: AWS_ENDPOINT_URL is not set, so no moto server is available");
        return None;
    };
    Some(std::env::var("TWOFA_MOTO_URL").unwrap_or(endpoint))
}

/// Returns a suffix that no other test run shares, for table names and sender domains.
fn unique_suffix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// Returns (recipient, subject, body) of every message moto's SES accepted from `sender`.
///
/// moto 5.2.5 builds `data.json` while other requests change its models, and returns 500 when a
/// DynamoDB stream gets its first record during that time, so a 500 is retried a few times.
async fn sent_by(moto: &str, sender: &str) -> Vec<(String, String, String)> {
    let url = format!("{}/moto-api/data.json", moto.trim_end_matches('/'));
    let mut attempt = 1;
    let body = loop {
        match http_get(&url) {
            Some(body) => break body,
            None if attempt < 10 => attempt += 1,
            None => panic!("GET {url} kept failing"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let data: Value = serde_json::from_str(&body).unwrap();
    let messages = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
    messages
        .into_iter()
        .filter(|message| message["source"] == sender)
        .flat_map(|message| {
            let subject = message["subject"].as_str().unwrap_or_default().to_owned();
            let body = message["body"].as_str().unwrap_or_default().to_owned();
            let to = message["destinations"]["ToAddresses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            to.into_iter().map(move |address| {
                (
                    address.as_str().unwrap_or_default().to_owned(),
                    subject.clone(),
                    body.clone(),
                )
            })
        })
        .collect()
}

/// Sends a plain HTTP/1.1 GET to a local server and returns the body, or `None` for a 500. A
/// blocking socket is enough for one small request in a test.
fn http_get(url: &str) -> Option<String> {
    use std::io::{Read, Write};

    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(host, path)| (host, format!("/{path}")));
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    if head.starts_with("HTTP/1.1 500") || head.starts_with("HTTP/1.0 500") {
        return None;
    }
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Some(dechunk(body));
    }
    Some(body.to_owned())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// Issues a full session for a user whose login completed now and returns its token.
async fn login(test: &TestApp, user_id: &str) -> String {
    let state = users::load(&test.app, user_id).await.unwrap().unwrap();
    let issued = sessions::issue(&test.app, user_id, SessionKind::Full, state.user.session_epoch).unwrap();
    test.app.store.write(issued.write.clone()).await.unwrap();
    issued.token.expose().to_owned()
}

#[tokio::test]
async fn change_reaches_ses_once_after_failure() {
    let Some(moto) = moto_url("change_reaches_ses_once_after_failure") else {
        return;
    };
    let suffix = unique_suffix();
    let sdk = twofa_core::aws::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("twofa-notifier-{suffix}");
    DynamoStore::create_table(&dynamodb, &table).await.unwrap();

    // The sender's domain is new, so moto's SES has not verified it and rejects the first sends.
    let sender = format!("security@notifier-{suffix}.example.net");
    let ses = aws_sdk_sesv2::Client::new(&sdk);
    let mut test = TestApp::new();
    test.app.store = Arc::new(DynamoStore::new(dynamodb, &table, test.clock.clone()));
    test.app.mailer = Arc::new(SesMailer::new(ses.clone(), sender.clone()));

    let (account_id, _) = test.create_main_user(&format!("alice-{suffix}"), PASSWORD).await;
    let carol = test
        .create_sub_user(&account_id, &format!("carol-{suffix}"), PASSWORD, true)
        .await;
    let token = login(&test, &carol).await;
    let response = test
        .call("PUT", "/security/two-factor", Some(&token), r#"{"enabled": false}"#)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);

    let mut poller = StreamPoller::new(aws_sdk_dynamodbstreams::Client::new(&sdk), &table);
    let outcome = poller.poll_once(&test.app).await.unwrap();
    assert!(outcome.records > 0);
    assert_eq!(outcome.failed, 1, "SES must reject the unverified sender");
    assert!(sent_by(&moto, &sender).await.is_empty());
    let state = users::load(&test.app, &carol).await.unwrap().unwrap();
    assert!(
        !state.user.two_factor_enabled,
        "an SES failure must not roll back the change"
    );

    ses.create_email_identity()
        .email_identity(&sender)
        .send()
        .await
        .unwrap();
    let outcome = poller.poll_once(&test.app).await.unwrap();
    assert_eq!(outcome.failed, 0);
    let outcome = poller.poll_once(&test.app).await.unwrap();
    assert_eq!(outcome.failed, 0);

    // A second poller replays the stream from its start; the marks keep it from sending again.
    let mut replay = StreamPoller::new(aws_sdk_dynamodbstreams::Client::new(&sdk), &table);
    let outcome = replay.poll_once(&test.app).await.unwrap();
    assert_eq!(outcome.failed, 0);

    let sent = sent_by(&moto, &sender).await;
    let mut recipients: Vec<&str> = sent.iter().map(|(to, _, _)| to.as_str()).collect();
    recipients.sort_unstable();
    let alice_email = format!("alice-{suffix}@example.com");
    let carol_email = format!("carol-{suffix}@example.com");
    let mut expected = vec![alice_email.as_str(), carol_email.as_str()];
    expected.sort_unstable();
    assert_eq!(recipients, expected, "exactly one email per recipient");
    for (_, subject, body) in &sent {
        assert!(subject.contains("two-factor authentication turned off"), "{subject}");
        assert!(body.contains(&format!("carol-{suffix}")), "{body}");
        assert!(body.contains("198.51.100.7"), "{body}");
        assert!(!body.contains(&token), "{body}");
    }
}

/// Returns the stream ARN, shard id and (sequence number, partition key, event name) of every
/// record of the table's stream, read directly with the DynamoDB Streams API.
async fn stream_records(
    streams: &aws_sdk_dynamodbstreams::Client,
    table: &str,
) -> (String, String, Vec<(String, String, String)>) {
    use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};

    let listed = streams.list_streams().table_name(table).send().await.unwrap();
    let stream_arn = listed.streams()[0].stream_arn().unwrap().to_owned();
    let described = streams.describe_stream().stream_arn(&stream_arn).send().await.unwrap();
    let shard_id = described.stream_description().unwrap().shards()[0]
        .shard_id()
        .unwrap()
        .to_owned();
    let iterator = streams
        .get_shard_iterator()
        .stream_arn(&stream_arn)
        .shard_id(&shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap();
    let page = streams
        .get_records()
        .shard_iterator(iterator.shard_iterator().unwrap())
        .send()
        .await
        .unwrap();
    let records = page
        .records()
        .iter()
        .map(|record| {
            let change = record.dynamodb().unwrap();
            let pk = match change.keys().unwrap().get("pk") {
                Some(AttributeValue::S(pk)) => pk.clone(),
                other => panic!("partition key {other:?}"),
            };
            let event_name = record.event_name().unwrap().as_str().to_owned();
            (change.sequence_number().unwrap().to_owned(), pk, event_name)
        })
        .collect();
    (stream_arn, shard_id, records)
}

/// Builds the body of the message that Lambda puts on the on-failure queue for a stream batch.
fn failure_message(stream_arn: &str, shard_id: &str, start: &str, end: &str) -> String {
    serde_json::json!({
        "requestContext": { "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11 },
        "version": "1.0",
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": start,
            "endSequenceNumber": end,
            "batchSize": 3,
            "streamArn": stream_arn,
        }
    })
    .to_string()
}

#[tokio::test]
async fn failed_batch_is_redelivered_once() {
    use twofa_core::aws::failed_batch::{outbox_event_ids, parse_failure_message};
    use twofa_core::service::notifier;

    let Some(moto) = moto_url("failed_batch_is_redelivered_once") else {
        return;
    };
    let suffix = unique_suffix();
    let sdk = twofa_core::aws::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("twofa-redeliver-{suffix}");
    DynamoStore::create_table(&dynamodb, &table).await.unwrap();
    let sender = format!("security@redeliver-{suffix}.example.net");
    let ses = aws_sdk_sesv2::Client::new(&sdk);
    let mut test = TestApp::new();
    test.app.store = Arc::new(DynamoStore::new(dynamodb, &table, test.clock.clone()));
    test.app.mailer = Arc::new(SesMailer::new(ses.clone(), sender.clone()));

    let (account_id, _) = test.create_main_user(&format!("dana-{suffix}"), PASSWORD).await;
    let erik = test
        .create_sub_user(&account_id, &format!("erik-{suffix}"), PASSWORD, true)
        .await;
    let token = login(&test, &erik).await;
    let response = test
        .call("PUT", "/security/two-factor", Some(&token), r#"{"enabled": false}"#)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);

    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let (stream_arn, shard_id, records) = stream_records(&streams, &table).await;
    let outbox_position = records
        .iter()
        .position(|(_, pk, event_name)| pk.starts_with("OUTBOX#") && event_name == "INSERT")
        .expect("the change wrote an outbox record");
    let first = &records[0].0;
    let last = &records[records.len() - 1].0;

    let whole = parse_failure_message(&failure_message(&stream_arn, &shard_id, first, last)).unwrap();
    let event_ids = outbox_event_ids(&streams, &whole).await.unwrap();
    assert_eq!(event_ids.len(), 1, "{records:?}");
    assert_eq!(records[outbox_position].1, format!("OUTBOX#{}", event_ids[0]));
    if outbox_position > 0 {
        let before = &records[outbox_position - 1].0;
        let earlier = parse_failure_message(&failure_message(&stream_arn, &shard_id, first, before)).unwrap();
        assert!(outbox_event_ids(&streams, &earlier).await.unwrap().is_empty());
    }

    // The sender is not verified yet, so SES rejects the emails and nothing is marked.
    assert!(notifier::redeliver(&test.app, &event_ids[0]).await.is_err());
    assert!(sent_by(&moto, &sender).await.is_empty());

    ses.create_email_identity()
        .email_identity(&sender)
        .send()
        .await
        .unwrap();
    notifier::redeliver(&test.app, &event_ids[0]).await.unwrap();
    notifier::redeliver(&test.app, &event_ids[0]).await.unwrap();

    let sent = sent_by(&moto, &sender).await;
    let mut recipients: Vec<&str> = sent.iter().map(|(to, _, _)| to.as_str()).collect();
    recipients.sort_unstable();
    let dana_email = format!("dana-{suffix}@example.com");
    let erik_email = format!("erik-{suffix}@example.com");
    let mut expected = vec![dana_email.as_str(), erik_email.as_str()];
    expected.sort_unstable();
    assert_eq!(recipients, expected, "exactly one email per recipient");

    let unknown = notifier::redeliver(&test.app, "no-such-event").await.unwrap_err();
    assert_eq!(unknown.code(), "not_found");
}
