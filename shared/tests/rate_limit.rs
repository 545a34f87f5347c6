//! Tests of the sliding-window rate limiter on the in-memory store.

mod yielding_store;

use std::sync::Arc;

use twofa_core::error::AppError;
use twofa_core::service::rate_limit::{check, check_and_record};
use twofa_core::testing::TestApp;
use yielding_store::{join_all, YieldingStore};

fn retry_after(result: Result<(), AppError>) -> Option<i64> {
    match result {
        Err(error @ AppError::RateLimited { .. }) => error.retry_after(),
        other => panic!("expected rate_limited, got {other:?}"),
    }
}

#[tokio::test]
async fn limit_allows_then_rejects() {
    let test = TestApp::new();

    for _ in 0..3 {
        check_and_record(&test.app, "test", "subject", 3, 60).await.unwrap();
        test.clock.advance(5);
    }

    assert_eq!(
        retry_after(check_and_record(&test.app, "test", "subject", 3, 60).await),
        Some(45)
    );
    assert_eq!(retry_after(check(&test.app, "test", "subject", 3, 60).await), Some(45));
}

#[tokio::test]
async fn window_slides_one_event_at_a_time() {
    let test = TestApp::new();
    check_and_record(&test.app, "test", "subject", 2, 60).await.unwrap();
    test.clock.advance(30);
    check_and_record(&test.app, "test", "subject", 2, 60).await.unwrap();

    test.clock.advance(29);
    assert_eq!(
        retry_after(check_and_record(&test.app, "test", "subject", 2, 60).await),
        Some(1)
    );

    test.clock.advance(1);
    check_and_record(&test.app, "test", "subject", 2, 60).await.unwrap();
    assert_eq!(
        retry_after(check_and_record(&test.app, "test", "subject", 2, 60).await),
        Some(30)
    );
}

#[tokio::test]
async fn check_records_nothing() {
    let test = TestApp::new();

    for _ in 0..10 {
        check(&test.app, "test", "subject", 1, 60).await.unwrap();
    }

    check_and_record(&test.app, "test", "subject", 1, 60).await.unwrap();
    assert!(check(&test.app, "test", "subject", 1, 60).await.is_err());
}

#[tokio::test]
async fn scopes_and_subjects_are_separate() {
    let test = TestApp::new();
    check_and_record(&test.app, "first", "subject", 1, 60).await.unwrap();

    check_and_record(&test.app, "second", "subject", 1, 60).await.unwrap();
    check_and_record(&test.app, "first", "other", 1, 60).await.unwrap();
    assert!(check_and_record(&test.app, "first", "subject", 1, 60).await.is_err());
}

#[tokio::test]
async fn item_expires_after_newest_event() {
    let test = TestApp::new();
    check_and_record(&test.app, "test", "+420601123456", 5, 600)
        .await
        .unwrap();

    let items = test.store.dump().unwrap();
    let item = items
        .iter()
        .find(|item| item["pk"].as_str().unwrap().starts_with("RATE#test#"))
        .unwrap();

    assert_eq!(item["expires_at"].as_i64(), Some(test.app.now() + 600));
    assert!(!item["pk"].as_str().unwrap().contains("601123456"), "{item:?}");
    assert_eq!(item["sk"], "RATE");
}

#[tokio::test]
async fn concurrent_events_never_exceed_limit() {
    let mut test = TestApp::new();
    test.app.store = Arc::new(YieldingStore(test.store.clone()));
    let app = &test.app;

    let results = join_all((0..20).map(|_| check_and_record(app, "test", "subject", 5, 60))).await;

    let successes = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(successes, 5);
    for result in results.iter().filter_map(|result| result.as_ref().err()) {
        assert_eq!(result.code(), "rate_limited", "{result:?}");
    }
    assert!(check(app, "test", "subject", 5, 60).await.is_err());
}
