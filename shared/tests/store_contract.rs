//! Contract tests of the store port, written once and run against every store.
//!
//! Each case runs as `memory::<case>` on [`MemoryStore`] and as `dynamo::<case>` on [`DynamoStore`],
//! each test on a fresh table of the DynamoDB-compatible server in `AWS_ENDPOINT_URL` (moto in
//! `scripts/test.sh`). Without that variable the DynamoDB variants print that they skipped and pass,
//! unless `TWOFA_REQUIRE_MOTO=1`, which makes them fail.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_config::BehaviorVersion;
use serde_json::{json, Value};
use tokio::sync::Barrier;
use twofa_core::ports::ManualClock;
use twofa_core::store::dynamo::DynamoStore;
use twofa_core::store::memory::MemoryStore;
use twofa_core::store::{Condition, Item, Key, Order, Store, StoreError, Update, Write};

/// The clock's start, in Unix seconds. It lies far in the future so that a server that applies TTL
/// by its own clock deletes nothing.
const START: i64 = 4_000_000_000;

/// How many requests each race sends at once.
const RACERS: usize = 20;

/// A store under test and the clock it reads.
struct Harness {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
}

async fn memory_harness(_case: &str) -> Option<Harness> {
    let clock = Arc::new(ManualClock::new(START));
    let store = Arc::new(MemoryStore::new(clock.clone()));
    Some(Harness { store, clock })
}

async fn dynamo_harness(case: &str) -> Option<Harness> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        if std::env::var("TWOFA_REQUIRE_MOTO").as_deref() == Ok("1") {
            panic!("AWS_ENDPOINT_URL is not set but TWOFA_REQUIRE_MOTO=1: start moto and export AWS_ENDPOINT_URL, or run scripts/test.sh");
        }
        eprintln!("skipped dynamo::{case}: AWS_ENDPOINT_URL is not set; run scripts/test.sh to test against moto");
        return None;
    }

    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_table_name(case);
    if let Err(error) = DynamoStore::create_table(&client, &table).await {
        panic!("creating table {table} failed: {error}");
    }

    let clock = Arc::new(ManualClock::new(START));
    let store = Arc::new(DynamoStore::new(client, table, clock.clone()));
    Some(Harness { store, clock })
}

fn unique_table_name(case: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!(
        "contract-{case}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Generates `memory::<case>` and `dynamo::<case>` for each case function.
macro_rules! contract_tests {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(harness) = super::memory_harness(stringify!($case)).await {
                        super::$case(harness).await;
                    }
                }
            )*
        }

        mod dynamo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(harness) = super::dynamo_harness(stringify!($case)).await {
                        super::$case(harness).await;
                    }
                }
            )*
        }
    };
}

contract_tests!(
    put_get_round_trip_of_every_value_type,
    put_of_item_without_key_is_invalid,
    get_of_expired_item_is_none,
    put_not_exists_fails_on_existing_item,
    put_not_exists_succeeds_on_expired_item,
    put_exists_requires_live_item,
    update_without_condition_creates_item,
    update_equals_condition,
    update_not_equals_condition,
    update_less_than_condition,
    update_greater_than_condition,
    update_attribute_exists_conditions,
    update_and_or_conditions,
    update_exists_condition_on_absent_item,
    update_on_expired_item_starts_fresh,
    update_of_one_attribute_twice_is_invalid,
    add_creates_from_absent_and_counts,
    append_creates_list_and_extends_it,
    remove_drops_attribute,
    update_returning_returns_new_item,
    update_returning_on_expired_item_starts_fresh,
    delete_with_condition,
    check_alone_writes_nothing,
    query_by_prefix_in_order,
    query_limit_and_has_more,
    query_filters_expired_items,
    transaction_is_all_or_nothing,
    transaction_with_check,
    transaction_touching_one_item_twice_is_rejected,
    transaction_empty_update_checks_condition,
    transaction_update_on_expired_item_starts_fresh,
    race_put_not_exists_has_one_winner,
    race_step_update_has_one_winner,
    race_add_counts_every_increment,
    race_unique_claim_has_one_winner,
);

// ----- helpers -----

fn item(pk: &str, sk: &str, attributes: Value) -> Item {
    let mut item = match attributes {
        Value::Object(map) => map,
        _ => Item::new(),
    };
    item.insert("pk".into(), json!(pk));
    item.insert("sk".into(), json!(sk));
    item
}

fn key(pk: &str, sk: &str) -> Key {
    Key::new(pk, sk)
}

fn put(item: Item) -> Write {
    Write::Put { item, condition: None }
}

fn put_if(item: Item, condition: Condition) -> Write {
    Write::Put {
        item,
        condition: Some(condition),
    }
}

fn update_if(key: Key, update: Update, condition: Condition) -> Write {
    Write::Update {
        key,
        update,
        condition: Some(condition),
    }
}

async fn get(harness: &Harness, key: &Key) -> Option<Item> {
    match harness.store.get(key).await {
        Ok(item) => item,
        Err(error) => panic!("get of {key:?} failed: {error}"),
    }
}

async fn write_ok(harness: &Harness, write: Write) {
    if let Err(error) = harness.store.write(write.clone()).await {
        panic!("write {write:?} failed: {error}");
    }
}

fn sort_keys(page: &[Item]) -> Vec<&str> {
    page.iter()
        .filter_map(|item| item.get("sk").and_then(Value::as_str))
        .collect()
}

const FAILED: Result<(), StoreError> = Err(StoreError::ConditionFailed { index: None });

/// Runs `count` futures at once, released together by a barrier, and returns their results in
/// order.
async fn race<F, Fut>(count: usize, make: F) -> Vec<Result<(), StoreError>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(count));
    let tasks: Vec<_> = (0..count)
        .map(|index| {
            let barrier = barrier.clone();
            let request = make(index);
            tokio::spawn(async move {
                barrier.wait().await;
                request.await
            })
        })
        .collect();

    let mut results = Vec::with_capacity(count);
    for task in tasks {
        match task.await {
            Ok(result) => results.push(result),
            Err(error) => panic!("racing task failed: {error}"),
        }
    }
    results
}

fn winners(results: &[Result<(), StoreError>]) -> Vec<usize> {
    results
        .iter()
        .enumerate()
        .filter(|(_, result)| result.is_ok())
        .map(|(index, _)| index)
        .collect()
}

// ----- put and get -----

async fn put_get_round_trip_of_every_value_type(harness: Harness) {
    let stored = item(
        "user#1",
        "profile",
        json!({
            "text": "Příliš žluťoučký kůň",
            "empty_text": "",
            "integer": 42,
            "negative": -7,
            "zero": 0,
            "max": i64::MAX,
            "min": i64::MIN,
            "fraction": 1.5,
            "flag": true,
            "off": false,
            "nothing": null,
            "list": [1, "two", [3], {"four": 4}, null, true],
            "empty_list": [],
            "map": {"nested": {"deeper": "x"}, "count": 1, "list": ["a"]},
            "empty_map": {},
        }),
    );

    write_ok(&harness, put(stored.clone())).await;

    assert_eq!(get(&harness, &key("user#1", "profile")).await, Some(stored));
    assert_eq!(get(&harness, &key("user#1", "other")).await, None);
    assert_eq!(get(&harness, &key("user#2", "profile")).await, None);
}

async fn put_of_item_without_key_is_invalid(harness: Harness) {
    let mut keyless = Item::new();
    keyless.insert("pk".into(), json!("user#1"));

    let result = harness.store.write(put(keyless)).await;

    assert!(matches!(result, Err(StoreError::Invalid(_))), "got {result:?}");
}

async fn get_of_expired_item_is_none(harness: Harness) {
    let session = item("session#1", "session", json!({"expires_at": START + 10}));
    write_ok(&harness, put(session.clone())).await;

    harness.clock.set(START + 9);
    assert_eq!(get(&harness, &key("session#1", "session")).await, Some(session));

    harness.clock.set(START + 10);
    assert_eq!(get(&harness, &key("session#1", "session")).await, None);

    harness.clock.set(START + 1000);
    assert_eq!(get(&harness, &key("session#1", "session")).await, None);
}

async fn put_not_exists_fails_on_existing_item(harness: Harness) {
    let first = item("username#alice", "username", json!({"user_id": "u1"}));
    let second = item("username#alice", "username", json!({"user_id": "u2"}));
    write_ok(&harness, put_if(first.clone(), Condition::NotExists)).await;

    let result = harness.store.write(put_if(second, Condition::NotExists)).await;

    assert_eq!(result, FAILED);
    assert_eq!(get(&harness, &key("username#alice", "username")).await, Some(first));
}

async fn put_not_exists_succeeds_on_expired_item(harness: Harness) {
    let old = item(
        "challenge#1",
        "challenge",
        json!({"attempts": 4, "expires_at": START + 5}),
    );
    let new = item(
        "challenge#1",
        "challenge",
        json!({"attempts": 0, "expires_at": START + 300}),
    );
    write_ok(&harness, put(old)).await;
    harness.clock.advance(5);

    let result = harness.store.write(put_if(new.clone(), Condition::NotExists)).await;

    assert_eq!(result, Ok(()));
    assert_eq!(get(&harness, &key("challenge#1", "challenge")).await, Some(new));
}

async fn put_exists_requires_live_item(harness: Harness) {
    let first = item(
        "device#1",
        "device",
        json!({"state": "pending", "expires_at": START + 5}),
    );
    let second = item("device#1", "device", json!({"state": "active"}));

    let on_absent = harness.store.write(put_if(first.clone(), Condition::Exists)).await;
    assert_eq!(on_absent, FAILED);
    assert_eq!(get(&harness, &key("device#1", "device")).await, None);

    write_ok(&harness, put(first.clone())).await;
    harness.clock.advance(5);
    let on_expired = harness.store.write(put_if(second.clone(), Condition::Exists)).await;
    assert_eq!(on_expired, FAILED);

    harness.clock.set(START);
    let on_live = harness.store.write(put_if(second.clone(), Condition::Exists)).await;
    assert_eq!(on_live, Ok(()));
    assert_eq!(get(&harness, &key("device#1", "device")).await, Some(second));
}

// ----- update -----

async fn update_without_condition_creates_item(harness: Harness) {
    let write = Write::Update {
        key: key("user#1", "profile"),
        update: Update::new().set("name", "Alice"),
        condition: None,
    };

    write_ok(&harness, write).await;

    let expected = item("user#1", "profile", json!({"name": "Alice"}));
    assert_eq!(get(&harness, &key("user#1", "profile")).await, Some(expected));
}

/// Stores the item the condition cases run against and returns its key.
async fn seed_condition_item(harness: &Harness) -> Key {
    write_ok(
        harness,
        put(item("device#1", "device", json!({"state": "pending", "step": 5}))),
    )
    .await;
    key("device#1", "device")
}

/// Applies a marking update under `condition` and checks that it passes or fails as expected.
async fn check_condition(harness: &Harness, key: &Key, condition: Condition, should_pass: bool) {
    let before = get(harness, key).await;
    let marker = format!("{condition:?}");

    let result = harness
        .store
        .write(update_if(
            key.clone(),
            Update::new().set("marker", marker.clone()),
            condition.clone(),
        ))
        .await;

    let after = get(harness, key).await;
    if should_pass {
        assert_eq!(result, Ok(()), "condition {condition:?} should pass");
        let stored_marker = after.as_ref().and_then(|item| item.get("marker"));
        assert_eq!(
            stored_marker,
            Some(&json!(marker)),
            "condition {condition:?} passed but the update is missing"
        );
    } else {
        assert_eq!(result, FAILED, "condition {condition:?} should fail");
        assert_eq!(after, before, "condition {condition:?} failed but the item changed");
    }
}

async fn update_equals_condition(harness: Harness) {
    let key = seed_condition_item(&harness).await;

    check_condition(&harness, &key, Condition::equals("state", "active"), false).await;
    check_condition(&harness, &key, Condition::equals("step", 4), false).await;
    check_condition(&harness, &key, Condition::equals("missing", "pending"), false).await;
    check_condition(&harness, &key, Condition::equals("state", "pending"), true).await;
    check_condition(&harness, &key, Condition::equals("step", 5), true).await;
}

async fn update_not_equals_condition(harness: Harness) {
    let key = seed_condition_item(&harness).await;

    check_condition(&harness, &key, Condition::not_equals("state", "pending"), false).await;
    check_condition(&harness, &key, Condition::not_equals("state", "active"), true).await;
    check_condition(&harness, &key, Condition::not_equals("missing", "anything"), true).await;
}

async fn update_less_than_condition(harness: Harness) {
    let key = seed_condition_item(&harness).await;

    check_condition(&harness, &key, Condition::less_than("step", 5), false).await;
    check_condition(&harness, &key, Condition::less_than("step", 4), false).await;
    check_condition(&harness, &key, Condition::less_than("missing", 100), false).await;
    check_condition(&harness, &key, Condition::less_than("step", 6), true).await;
    check_condition(&harness, &key, Condition::absent_or_less_than("missing", 1), true).await;
    check_condition(&harness, &key, Condition::absent_or_less_than("step", 5), false).await;
}

async fn update_greater_than_condition(harness: Harness) {
    let key = seed_condition_item(&harness).await;

    check_condition(&harness, &key, Condition::greater_than("step", 5), false).await;
    check_condition(&harness, &key, Condition::greater_than("missing", -100), false).await;
    check_condition(&harness, &key, Condition::greater_than("step", 4), true).await;
}

async fn update_attribute_exists_conditions(harness: Harness) {
    let key = seed_condition_item(&harness).await;

    check_condition(&harness, &key, Condition::attribute_exists("missing"), false).await;
    check_condition(&harness, &key, Condition::attribute_not_exists("state"), false).await;
    check_condition(&harness, &key, Condition::attribute_exists("state"), true).await;
    check_condition(&harness, &key, Condition::attribute_not_exists("missing"), true).await;
}

async fn update_and_or_conditions(harness: Harness) {
    let key = seed_condition_item(&harness).await;
    let pending = || Condition::equals("state", "pending");
    let active = || Condition::equals("state", "active");

    check_condition(
        &harness,
        &key,
        Condition::And(vec![pending(), Condition::less_than("step", 3)]),
        false,
    )
    .await;
    check_condition(
        &harness,
        &key,
        Condition::And(vec![pending(), Condition::less_than("step", 6)]),
        true,
    )
    .await;
    check_condition(
        &harness,
        &key,
        Condition::Or(vec![active(), Condition::greater_than("step", 10)]),
        false,
    )
    .await;
    check_condition(
        &harness,
        &key,
        Condition::Or(vec![active(), Condition::greater_than("step", 1)]),
        true,
    )
    .await;
    check_condition(
        &harness,
        &key,
        Condition::Or(vec![Condition::NotExists, pending()]),
        true,
    )
    .await;
    check_condition(&harness, &key, Condition::And(vec![Condition::Exists, active()]), false).await;
    check_condition(&harness, &key, Condition::Or(vec![Condition::Exists, active()]), true).await;
    check_condition(&harness, &key, Condition::And(Vec::new()), true).await;
    check_condition(&harness, &key, Condition::Or(Vec::new()), false).await;
}

async fn update_exists_condition_on_absent_item(harness: Harness) {
    let absent = key("user#9", "profile");

    let result = harness
        .store
        .write(update_if(
            absent.clone(),
            Update::new().set("name", "x"),
            Condition::Exists,
        ))
        .await;

    assert_eq!(result, FAILED);
    assert_eq!(get(&harness, &absent).await, None);
}

async fn update_on_expired_item_starts_fresh(harness: Harness) {
    let counter = key("rate#phone", "window");
    write_ok(
        &harness,
        put(item(
            "rate#phone",
            "window",
            json!({"count": 5, "old": "x", "expires_at": START + 600}),
        )),
    )
    .await;
    harness.clock.set(START + 600);

    let on_exists = harness
        .store
        .write(update_if(
            counter.clone(),
            Update::new().add("count", 1),
            Condition::Exists,
        ))
        .await;
    assert_eq!(on_exists, FAILED, "an expired item does not exist");

    let restart = Update::new().add("count", 1).set("expires_at", START + 1200);
    write_ok(
        &harness,
        Write::Update {
            key: counter.clone(),
            update: restart,
            condition: None,
        },
    )
    .await;

    let expected = item("rate#phone", "window", json!({"count": 1, "expires_at": START + 1200}));
    assert_eq!(get(&harness, &counter).await, Some(expected));

    harness.clock.set(START + 1200);
    let absent_or_less = Condition::absent_or_less_than("count", 1);
    write_ok(
        &harness,
        update_if(counter.clone(), Update::new().add("count", 1), absent_or_less),
    )
    .await;
    let fresh = item("rate#phone", "window", json!({"count": 1}));
    assert_eq!(get(&harness, &counter).await, Some(fresh));
}

async fn update_of_one_attribute_twice_is_invalid(harness: Harness) {
    let target = key("user#1", "profile");

    let twice = harness
        .store
        .write(Write::Update {
            key: target.clone(),
            update: Update::new().set("a", 1).add("a", 1),
            condition: None,
        })
        .await;
    let key_attribute = harness
        .store
        .write(Write::Update {
            key: target.clone(),
            update: Update::new().set("sk", "other"),
            condition: None,
        })
        .await;

    assert!(matches!(twice, Err(StoreError::Invalid(_))), "got {twice:?}");
    assert!(
        matches!(key_attribute, Err(StoreError::Invalid(_))),
        "got {key_attribute:?}"
    );
    assert_eq!(get(&harness, &target).await, None);
}

async fn add_creates_from_absent_and_counts(harness: Harness) {
    let counter = key("user#1", "failures");

    for _ in 0..3 {
        write_ok(
            &harness,
            Write::Update {
                key: counter.clone(),
                update: Update::new().add("count", 1),
                condition: None,
            },
        )
        .await;
    }
    assert_eq!(
        get(&harness, &counter)
            .await
            .and_then(|item| item.get("count").cloned()),
        Some(json!(3))
    );

    write_ok(
        &harness,
        Write::Update {
            key: counter.clone(),
            update: Update::new().add("count", -5),
            condition: None,
        },
    )
    .await;
    assert_eq!(
        get(&harness, &counter)
            .await
            .and_then(|item| item.get("count").cloned()),
        Some(json!(-2))
    );
}

async fn append_creates_list_and_extends_it(harness: Harness) {
    let challenge = key("challenge#1", "challenge");

    let first = Update::new().append("code_hashes", vec![json!("h1")]);
    write_ok(
        &harness,
        Write::Update {
            key: challenge.clone(),
            update: first,
            condition: None,
        },
    )
    .await;
    let second = Update::new()
        .append("code_hashes", vec![json!("h2"), json!("h3")])
        .set("resends", 1);
    write_ok(
        &harness,
        Write::Update {
            key: challenge.clone(),
            update: second,
            condition: None,
        },
    )
    .await;

    let expected = item(
        "challenge#1",
        "challenge",
        json!({"code_hashes": ["h1", "h2", "h3"], "resends": 1}),
    );
    assert_eq!(get(&harness, &challenge).await, Some(expected));
}

async fn remove_drops_attribute(harness: Harness) {
    let user = key("user#1", "profile");
    write_ok(
        &harness,
        put(item(
            "user#1",
            "profile",
            json!({"login_method": "sms", "name": "Alice"}),
        )),
    )
    .await;

    let update = Update::new().remove("login_method").remove("never_set");
    write_ok(
        &harness,
        Write::Update {
            key: user.clone(),
            update,
            condition: None,
        },
    )
    .await;

    assert_eq!(
        get(&harness, &user).await,
        Some(item("user#1", "profile", json!({"name": "Alice"})))
    );
}

async fn update_returning_returns_new_item(harness: Harness) {
    let challenge = key("challenge#1", "challenge");
    write_ok(
        &harness,
        put(item(
            "challenge#1",
            "challenge",
            json!({"attempts": 1, "method": "sms"}),
        )),
    )
    .await;

    let returned = harness
        .store
        .update_returning(
            &challenge,
            Update::new().add("attempts", 1).set("last", "x"),
            Some(Condition::less_than("attempts", 5)),
        )
        .await;

    let expected = item(
        "challenge#1",
        "challenge",
        json!({"attempts": 2, "method": "sms", "last": "x"}),
    );
    assert_eq!(returned, Ok(expected.clone()));

    let failed = harness
        .store
        .update_returning(
            &challenge,
            Update::new().add("attempts", 1),
            Some(Condition::less_than("attempts", 2)),
        )
        .await;
    assert_eq!(failed, Err(StoreError::ConditionFailed { index: None }));
    assert_eq!(get(&harness, &challenge).await, Some(expected));
}

async fn update_returning_on_expired_item_starts_fresh(harness: Harness) {
    let counter = key("rate#user", "window");
    write_ok(
        &harness,
        put(item(
            "rate#user",
            "window",
            json!({"count": 9, "expires_at": START + 60}),
        )),
    )
    .await;
    harness.clock.set(START + 60);

    let returned = harness
        .store
        .update_returning(&counter, Update::new().add("count", 1), None)
        .await;

    assert_eq!(returned, Ok(item("rate#user", "window", json!({"count": 1}))));
}

async fn delete_with_condition(harness: Harness) {
    let session = key("session#1", "session");
    write_ok(&harness, put(item("session#1", "session", json!({"user_id": "u1"})))).await;

    let wrong_owner = Write::Delete {
        key: session.clone(),
        condition: Some(Condition::equals("user_id", "u2")),
    };
    assert_eq!(harness.store.write(wrong_owner).await, FAILED);
    assert!(
        get(&harness, &session).await.is_some(),
        "failed delete removed the item"
    );

    let owner = Write::Delete {
        key: session.clone(),
        condition: Some(Condition::equals("user_id", "u1")),
    };
    assert_eq!(harness.store.write(owner).await, Ok(()));
    assert_eq!(get(&harness, &session).await, None);

    let absent_exists = Write::Delete {
        key: session.clone(),
        condition: Some(Condition::Exists),
    };
    assert_eq!(harness.store.write(absent_exists).await, FAILED);
    let absent_plain = Write::Delete {
        key: session.clone(),
        condition: None,
    };
    assert_eq!(harness.store.write(absent_plain).await, Ok(()));
}

async fn check_alone_writes_nothing(harness: Harness) {
    let account = key("account#1", "account");
    write_ok(&harness, put(item("account#1", "account", json!({"main_user": "u1"})))).await;

    let passing = harness
        .store
        .write(Write::Check {
            key: account.clone(),
            condition: Condition::equals("main_user", "u1"),
        })
        .await;
    let fails = harness
        .store
        .write(Write::Check {
            key: account.clone(),
            condition: Condition::equals("main_user", "u2"),
        })
        .await;
    let absent = harness
        .store
        .write(Write::Check {
            key: key("account#2", "account"),
            condition: Condition::NotExists,
        })
        .await;

    assert_eq!(passing, Ok(()));
    assert_eq!(fails, FAILED);
    assert_eq!(absent, Ok(()));
    assert_eq!(
        get(&harness, &account).await,
        Some(item("account#1", "account", json!({"main_user": "u1"})))
    );
    assert_eq!(get(&harness, &key("account#2", "account")).await, None);
}

// ----- query -----

async fn seed_audit_items(harness: &Harness) {
    for sk in ["audit#001", "audit#002", "audit#003", "session#a", "audit#004"] {
        write_ok(harness, put(item("user#1", sk, json!({"n": sk})))).await;
    }
    write_ok(harness, put(item("user#2", "audit#001", json!({})))).await;
}

async fn query_by_prefix_in_order(harness: Harness) {
    seed_audit_items(&harness).await;

    let ascending = harness.store.query("user#1", "audit#", Order::Ascending, 10).await;
    let descending = harness.store.query("user#1", "audit#", Order::Descending, 10).await;
    let everything = harness.store.query("user#1", "", Order::Ascending, 10).await;
    let none = harness.store.query("user#3", "", Order::Ascending, 10).await;

    let ascending = ascending.unwrap_or_else(|error| panic!("query failed: {error}"));
    assert_eq!(
        sort_keys(&ascending.items),
        ["audit#001", "audit#002", "audit#003", "audit#004"]
    );
    assert!(!ascending.has_more);
    let descending = descending.unwrap_or_else(|error| panic!("query failed: {error}"));
    assert_eq!(
        sort_keys(&descending.items),
        ["audit#004", "audit#003", "audit#002", "audit#001"]
    );
    let everything = everything.unwrap_or_else(|error| panic!("query failed: {error}"));
    assert_eq!(
        sort_keys(&everything.items),
        ["audit#001", "audit#002", "audit#003", "audit#004", "session#a"]
    );
    assert_eq!(
        everything.items.first().and_then(|item| item.get("n")),
        Some(&json!("audit#001"))
    );
    assert_eq!(none, Ok(Default::default()));
}

async fn query_limit_and_has_more(harness: Harness) {
    seed_audit_items(&harness).await;

    let first_two = harness.store.query("user#1", "audit#", Order::Descending, 2).await;
    let exactly_all = harness.store.query("user#1", "audit#", Order::Ascending, 4).await;
    let zero = harness.store.query("user#1", "audit#", Order::Ascending, 0).await;

    let first_two = first_two.unwrap_or_else(|error| panic!("query failed: {error}"));
    assert_eq!(sort_keys(&first_two.items), ["audit#004", "audit#003"]);
    assert!(first_two.has_more);
    let exactly_all = exactly_all.unwrap_or_else(|error| panic!("query failed: {error}"));
    assert_eq!(exactly_all.items.len(), 4);
    assert!(!exactly_all.has_more);
    let zero = zero.unwrap_or_else(|error| panic!("query failed: {error}"));
    assert!(zero.items.is_empty());
    assert!(zero.has_more);
}

async fn query_filters_expired_items(harness: Harness) {
    // Six expired items sort first, so a store that applies its page limit before the expiry
    // filter must follow the next page to find the live ones.
    for index in 0..6 {
        write_ok(
            &harness,
            put(item(
                "user#1",
                &format!("session#0{index}"),
                json!({"expires_at": START + 10}),
            )),
        )
        .await;
    }
    for index in 6..9 {
        write_ok(
            &harness,
            put(item(
                "user#1",
                &format!("session#0{index}"),
                json!({"expires_at": START + 100}),
            )),
        )
        .await;
    }
    write_ok(&harness, put(item("user#1", "session#10", json!({})))).await;
    harness.clock.set(START + 10);

    let first_two = harness.store.query("user#1", "session#", Order::Ascending, 2).await;
    let all = harness.store.query("user#1", "session#", Order::Ascending, 10).await;

    let first_two = first_two.unwrap_or_else(|error| panic!("query failed: {error}"));
    assert_eq!(sort_keys(&first_two.items), ["session#06", "session#07"]);
    assert!(first_two.has_more);
    let all = all.unwrap_or_else(|error| panic!("query failed: {error}"));
    assert_eq!(
        sort_keys(&all.items),
        ["session#06", "session#07", "session#08", "session#10"]
    );
    assert!(!all.has_more);

    harness.clock.set(START + 100);
    let last = harness.store.query("user#1", "session#", Order::Descending, 1).await;
    let last = last.unwrap_or_else(|error| panic!("query failed: {error}"));
    assert_eq!(sort_keys(&last.items), ["session#10"]);
    assert!(!last.has_more, "only expired items remain beyond the limit");
}

// ----- transactions -----

async fn transaction_is_all_or_nothing(harness: Harness) {
    write_ok(&harness, put(item("user#1", "profile", json!({"epoch": 1})))).await;
    write_ok(
        &harness,
        put(item("contact#1", "contact", json!({"email": "old@example.com"}))),
    )
    .await;

    let result = harness
        .store
        .transact(vec![
            put_if(
                item("outbox#1", "outbox", json!({"kind": "contact_changed"})),
                Condition::NotExists,
            ),
            update_if(
                key("user#1", "profile"),
                Update::new().add("epoch", 1),
                Condition::Exists,
            ),
            put_if(
                item("contact#1", "contact", json!({"email": "new@example.com"})),
                Condition::NotExists,
            ),
        ])
        .await;

    assert_eq!(result, Err(StoreError::ConditionFailed { index: Some(2) }));
    assert_eq!(get(&harness, &key("outbox#1", "outbox")).await, None);
    assert_eq!(
        get(&harness, &key("user#1", "profile")).await,
        Some(item("user#1", "profile", json!({"epoch": 1})))
    );
    assert_eq!(
        get(&harness, &key("contact#1", "contact")).await,
        Some(item("contact#1", "contact", json!({"email": "old@example.com"})))
    );

    let retried = harness
        .store
        .transact(vec![
            put_if(
                item("outbox#1", "outbox", json!({"kind": "contact_changed"})),
                Condition::NotExists,
            ),
            update_if(
                key("user#1", "profile"),
                Update::new().add("epoch", 1),
                Condition::Exists,
            ),
            put(item("contact#1", "contact", json!({"email": "new@example.com"}))),
        ])
        .await;

    assert_eq!(retried, Ok(()));
    assert!(get(&harness, &key("outbox#1", "outbox")).await.is_some());
    assert_eq!(
        get(&harness, &key("user#1", "profile")).await,
        Some(item("user#1", "profile", json!({"epoch": 2})))
    );
}

async fn transaction_with_check(harness: Harness) {
    write_ok(&harness, put(item("account#1", "account", json!({"main_user": "u1"})))).await;
    let contact = || put(item("account#1", "contact", json!({"email": "sec@example.com"})));

    let wrong_user = harness
        .store
        .transact(vec![
            contact(),
            Write::Check {
                key: key("account#1", "account"),
                condition: Condition::equals("main_user", "u2"),
            },
        ])
        .await;
    assert_eq!(wrong_user, Err(StoreError::ConditionFailed { index: Some(1) }));
    assert_eq!(get(&harness, &key("account#1", "contact")).await, None);

    let absent_account = harness
        .store
        .transact(vec![
            contact(),
            Write::Check {
                key: key("account#2", "account"),
                condition: Condition::Exists,
            },
        ])
        .await;
    assert_eq!(absent_account, Err(StoreError::ConditionFailed { index: Some(1) }));

    let main_user = harness
        .store
        .transact(vec![
            contact(),
            Write::Check {
                key: key("account#1", "account"),
                condition: Condition::equals("main_user", "u1"),
            },
        ])
        .await;
    assert_eq!(main_user, Ok(()));
    assert!(get(&harness, &key("account#1", "contact")).await.is_some());
    assert_eq!(
        get(&harness, &key("account#1", "account")).await,
        Some(item("account#1", "account", json!({"main_user": "u1"})))
    );
}

async fn transaction_touching_one_item_twice_is_rejected(harness: Harness) {
    let twice = harness
        .store
        .transact(vec![
            put(item("user#1", "profile", json!({"a": 1}))),
            Write::Update {
                key: key("user#1", "profile"),
                update: Update::new().set("b", 2),
                condition: None,
            },
        ])
        .await;
    let empty = harness.store.transact(Vec::new()).await;

    assert!(matches!(twice, Err(StoreError::Invalid(_))), "got {twice:?}");
    assert!(matches!(empty, Err(StoreError::Invalid(_))), "got {empty:?}");
    assert_eq!(get(&harness, &key("user#1", "profile")).await, None);
}

async fn transaction_empty_update_checks_condition(harness: Harness) {
    let device = || put(item("device#1", "device", json!({"state": "active"})));
    let user_exists = || update_if(key("user#1", "profile"), Update::new(), Condition::Exists);

    let absent_user = harness.store.transact(vec![device(), user_exists()]).await;
    assert_eq!(absent_user, Err(StoreError::ConditionFailed { index: Some(1) }));
    assert_eq!(get(&harness, &key("device#1", "device")).await, None);

    write_ok(&harness, put(item("user#1", "profile", json!({"name": "Alice"})))).await;
    let present_user = harness.store.transact(vec![device(), user_exists()]).await;
    assert_eq!(present_user, Ok(()));
    assert_eq!(
        get(&harness, &key("user#1", "profile")).await,
        Some(item("user#1", "profile", json!({"name": "Alice"})))
    );
    assert!(get(&harness, &key("device#1", "device")).await.is_some());
}

async fn transaction_update_on_expired_item_starts_fresh(harness: Harness) {
    write_ok(
        &harness,
        put(item(
            "rate#ip",
            "window",
            json!({"count": 29, "expires_at": START + 3600}),
        )),
    )
    .await;
    harness.clock.set(START + 3600);

    let result = harness
        .store
        .transact(vec![
            Write::Update {
                key: key("rate#ip", "window"),
                update: Update::new().add("count", 1),
                condition: None,
            },
            put(item("audit#1", "entry", json!({"outcome": "sent"}))),
        ])
        .await;

    assert_eq!(result, Ok(()));
    assert_eq!(
        get(&harness, &key("rate#ip", "window")).await,
        Some(item("rate#ip", "window", json!({"count": 1})))
    );
    assert!(get(&harness, &key("audit#1", "entry")).await.is_some());
}

// ----- races -----

async fn race_put_not_exists_has_one_winner(harness: Harness) {
    let store = harness.store.clone();

    let results = race(RACERS, |index| {
        let store = store.clone();
        async move {
            store
                .write(put_if(
                    item("username#alice", "username", json!({"owner": index})),
                    Condition::NotExists,
                ))
                .await
        }
    })
    .await;

    let winners = winners(&results);
    assert_eq!(winners.len(), 1, "results: {results:?}");
    let losers: Vec<_> = results.iter().filter(|result| result.is_err()).collect();
    assert!(losers.iter().all(|result| **result == FAILED), "results: {results:?}");
    let stored = get(&harness, &key("username#alice", "username")).await;
    assert_eq!(
        stored.and_then(|item| item.get("owner").cloned()),
        Some(json!(winners[0]))
    );
}

async fn race_step_update_has_one_winner(harness: Harness) {
    write_ok(&harness, put(item("device#1", "device", json!({"last_step": 10})))).await;
    let store = harness.store.clone();

    let results = race(RACERS, |index| {
        let store = store.clone();
        let update = Update::new().set("last_step", 11).set("accepted_by", index);
        async move {
            store
                .write(update_if(
                    key("device#1", "device"),
                    update,
                    Condition::absent_or_less_than("last_step", 11),
                ))
                .await
        }
    })
    .await;

    let winners = winners(&results);
    assert_eq!(winners.len(), 1, "results: {results:?}");
    assert!(
        results
            .iter()
            .filter(|result| result.is_err())
            .all(|result| *result == FAILED),
        "results: {results:?}"
    );
    let stored = get(&harness, &key("device#1", "device")).await;
    assert_eq!(
        stored,
        Some(item(
            "device#1",
            "device",
            json!({"last_step": 11, "accepted_by": winners[0]})
        ))
    );
}

async fn race_add_counts_every_increment(harness: Harness) {
    let store = harness.store.clone();

    let results = race(RACERS, |_| {
        let store = store.clone();
        async move {
            store
                .write(Write::Update {
                    key: key("rate#phone", "window"),
                    update: Update::new().add("count", 1),
                    condition: None,
                })
                .await
        }
    })
    .await;

    assert!(results.iter().all(Result::is_ok), "results: {results:?}");
    let stored = get(&harness, &key("rate#phone", "window")).await;
    assert_eq!(stored.and_then(|item| item.get("count").cloned()), Some(json!(RACERS)));
}

async fn race_unique_claim_has_one_winner(harness: Harness) {
    let store = harness.store.clone();

    let results = race(RACERS, |index| {
        let store = store.clone();
        let claim = put_if(
            item("username#bob", "username", json!({"user_id": index})),
            Condition::NotExists,
        );
        let user = put_if(
            item(&format!("user#{index}"), "profile", json!({"username": "bob"})),
            Condition::NotExists,
        );
        async move { store.transact(vec![claim, user]).await }
    })
    .await;

    let winners = winners(&results);
    assert_eq!(winners.len(), 1, "results: {results:?}");
    // DynamoDB may cancel a loser for the conflict instead of the failed condition.
    let is_loss = |result: &Result<(), StoreError>| {
        matches!(
            result,
            Err(StoreError::ConditionFailed { index: Some(0) }) | Err(StoreError::TransactionConflict)
        )
    };
    assert!(
        results.iter().filter(|result| result.is_err()).all(is_loss),
        "results: {results:?}"
    );

    let claim = get(&harness, &key("username#bob", "username")).await;
    assert_eq!(
        claim.and_then(|item| item.get("user_id").cloned()),
        Some(json!(winners[0]))
    );
    for index in 0..RACERS {
        let user = get(&harness, &key(&format!("user#{index}"), "profile")).await;
        assert_eq!(
            user.is_some(),
            index == winners[0],
            "user#{index} written: {}",
            user.is_some()
        );
    }
}
