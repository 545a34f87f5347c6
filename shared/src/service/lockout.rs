//! Consecutive-failure counters with a growing delay, for the password and the second factor.
//!
//! Each counter lives on the [`User`] item as a failure count and a "locked until" time:
//! - failures 1 to 9: no lock;
//! - failure 10 locks for 1 minute, and each further failure doubles the delay up to 1 hour;
//! - failure 100 locks until an admin reset, stored as [`LOCKED_UNTIL_RESET`];
//! - a success resets both attributes to 0.
//!
//! While a lock is active, callers reject an attempt without checking it, so a locked attempt is not
//! counted. The count is incremented with an atomic `ADD` and returned by the same request. The lock
//! time only ever grows, through a condition on the stored value, so concurrent failures cannot
//! shorten a lock.
//!
//! A username that belongs to no user has a password counter of its own, on the item
//! `LOGINFAIL#<keyed hash of the lower-case username>` / `LOGINFAIL`, with the same attributes and
//! the same rules. Otherwise ten wrong passwords would tell a real username (locked, 429) from an
//! unknown one (still 401). The item expires [`UNKNOWN_USERNAME_RETENTION_DAYS`] after its last
//! failure.

use serde::Deserialize;

use super::App;
use crate::error::AppError;
use crate::model::{user_attr, User, DAY};
use crate::store::{from_item, Condition, Key, StoreError, Update, Write, EXPIRES_AT};

/// Consecutive failures that start a lock.
pub const LOCK_THRESHOLD: i64 = 10;
/// Consecutive failures that lock until an admin reset.
pub const RESET_THRESHOLD: i64 = 100;
/// Delay of the first lock, in seconds.
pub const FIRST_DELAY_SECONDS: i64 = 60;
/// Maximum delay of a lock that ends by itself, in seconds.
pub const MAX_DELAY_SECONDS: i64 = 60 * 60;
/// The "locked until" value of a lock that only an admin reset ends.
pub const LOCKED_UNTIL_RESET: i64 = i64::MAX;
/// Days the password counter of an unknown username is kept after its last counted failure.
// NOTE: a real user's counter never expires. So after 400 days without probes, an unknown
// username gets 401 again like a fresh one, while a real user keeps its count and lock.
pub const UNKNOWN_USERNAME_RETENTION_DAYS: i64 = 400;

const UNKNOWN_USERNAME_HASH_PURPOSE: &str = "unknown-username";

/// The failure counts of a user item or an unknown username's item.
#[derive(Debug, Default, Deserialize)]
struct Counters {
    #[serde(default)]
    password_failures: i64,
    #[serde(default)]
    password_locked_until: i64,
    #[serde(default)]
    factor_failures: i64,
}

/// A failure counter of a user: the password or the second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Password,
    SecondFactor,
}

impl Counter {
    fn failures_attribute(self) -> &'static str {
        match self {
            Counter::Password => user_attr::PASSWORD_FAILURES,
            Counter::SecondFactor => user_attr::FACTOR_FAILURES,
        }
    }

    fn locked_until_attribute(self) -> &'static str {
        match self {
            Counter::Password => user_attr::PASSWORD_LOCKED_UNTIL,
            Counter::SecondFactor => user_attr::FACTOR_LOCKED_UNTIL,
        }
    }

    /// Returns the stored "locked until" time of this counter.
    pub fn locked_until(self, user: &User) -> i64 {
        match self {
            Counter::Password => user.password_locked_until,
            Counter::SecondFactor => user.factor_locked_until,
        }
    }

    /// Returns the stored failure count of this counter.
    pub fn failures(self, user: &User) -> i64 {
        match self {
            Counter::Password => user.password_failures,
            Counter::SecondFactor => user.factor_failures,
        }
    }

    fn failures_of(self, counters: &Counters) -> i64 {
        match self {
            Counter::Password => counters.password_failures,
            Counter::SecondFactor => counters.factor_failures,
        }
    }
}

/// Computes the lock delay, in seconds from the last failure, that `failures` consecutive failures
/// impose: `None` below [`LOCK_THRESHOLD`], and [`LOCKED_UNTIL_RESET`] from [`RESET_THRESHOLD`].
pub fn lock_delay(failures: i64) -> Option<i64> {
    if failures < LOCK_THRESHOLD {
        return None;
    }
    if failures >= RESET_THRESHOLD {
        return Some(LOCKED_UNTIL_RESET);
    }
    let doublings = u32::try_from(failures - LOCK_THRESHOLD).unwrap_or(u32::MAX);
    let delay = 2_i64
        .checked_pow(doublings)
        .and_then(|factor| factor.checked_mul(FIRST_DELAY_SECONDS));
    Some(delay.map_or(MAX_DELAY_SECONDS, |delay| delay.min(MAX_DELAY_SECONDS)))
}

/// Returns the "locked until" time after `failures` consecutive failures, the last one at `now`,
/// or 0 when they impose no lock.
pub fn locked_until_after(failures: i64, now: i64) -> i64 {
    match lock_delay(failures) {
        None => 0,
        Some(LOCKED_UNTIL_RESET) => LOCKED_UNTIL_RESET,
        Some(delay) => now.saturating_add(delay),
    }
}

/// Returns the error for an attempt made at `now` while the counter is locked, or `Ok` when it is
/// not. The error carries the seconds until the lock ends as `Retry-After`, except for a lock that
/// only an admin reset ends, where waiting does not help.
pub fn check(user: &User, counter: Counter, now: i64) -> Result<(), AppError> {
    check_locked_until(counter.locked_until(user), now)
}

fn check_locked_until(locked_until: i64, now: i64) -> Result<(), AppError> {
    if locked_until <= now {
        return Ok(());
    }
    let retry_after = (locked_until != LOCKED_UNTIL_RESET).then(|| locked_until - now);
    Err(AppError::TooManyAttempts { retry_after })
}

/// The state of a counter after a failure was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Consecutive failures, this one included.
    pub failures: i64,
    /// When the lock this failure started ends; 0 when it started none.
    pub locked_until: i64,
}

/// Records one failed attempt of `user_id` on `counter` and starts or extends its lock when the
/// count reaches [`LOCK_THRESHOLD`].
///
/// The count is incremented atomically on a user item that must exist. The lock time is then set
/// with a condition that it grows, so of two concurrent failures the later lock wins. A store
/// failure is returned, so a failure that cannot be recorded fails the request.
pub async fn record_failure(app: &App, user_id: &str, counter: Counter) -> Result<Failure, AppError> {
    let update = Update::new().add(counter.failures_attribute(), 1);
    record_failure_on(app, User::key(user_id), counter, update, Some(Condition::Exists)).await
}

/// Returns `too_many_attempts` while the password counter of a username that belongs to no user
/// is locked, exactly as [`check`] does for a user.
pub async fn check_unknown_username(app: &App, username: &str) -> Result<(), AppError> {
    let Some(item) = app.store.get(&unknown_username_key(app, username)).await? else {
        return Ok(());
    };
    let counters: Counters = from_item(item)?;
    check_locked_until(counters.password_locked_until, app.now())
}

/// Records a wrong password for a username that belongs to no user, with the rules of
/// [`record_failure`], creating the counter on its first failure.
pub async fn record_unknown_username_failure(app: &App, username: &str) -> Result<Failure, AppError> {
    let update = Update::new()
        .add(Counter::Password.failures_attribute(), 1)
        .set(EXPIRES_AT, app.now() + UNKNOWN_USERNAME_RETENTION_DAYS * DAY);
    let key = unknown_username_key(app, username);
    record_failure_on(app, key, Counter::Password, update, None).await
}

fn unknown_username_key(app: &App, username: &str) -> Key {
    let hash = app
        .keys
        .keyed_hash(UNKNOWN_USERNAME_HASH_PURPOSE, username.to_lowercase().as_bytes());
    Key::new(format!("LOGINFAIL#{hash}"), "LOGINFAIL")
}

/// Applies `update`, which adds 1 to the failures of `counter`, then starts or extends the lock.
async fn record_failure_on(
    app: &App,
    key: Key,
    counter: Counter,
    update: Update,
    condition: Option<Condition>,
) -> Result<Failure, AppError> {
    let item = app.store.update_returning(&key, update, condition).await?;
    let counters: Counters = from_item(item)?;
    let failures = counter.failures_of(&counters);

    let locked_until = locked_until_after(failures, app.now());
    if locked_until == 0 {
        return Ok(Failure { failures, locked_until });
    }

    let attribute = counter.locked_until_attribute();
    let write = Write::Update {
        key,
        update: Update::new().set(attribute, locked_until),
        condition: Some(Condition::And(vec![
            Condition::Exists,
            Condition::absent_or_less_than(attribute, locked_until),
        ])),
    };
    match app.store.write(write).await {
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(Failure { failures, locked_until }),
        Err(error) => Err(error.into()),
    }
}

/// Builds the write that resets `counter` of `user_id` after a success, for a transaction.
pub fn reset_write(user_id: &str, counter: Counter) -> Write {
    let update = Update::new()
        .set(counter.failures_attribute(), 0)
        .set(counter.locked_until_attribute(), 0);
    Write::Update {
        key: User::key(user_id),
        update,
        condition: Some(Condition::Exists),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_lock_below_threshold() {
        for failures in 0..LOCK_THRESHOLD {
            assert_eq!(lock_delay(failures), None, "failures {failures}");
        }
    }

    #[test]
    fn delay_starts_at_one_minute_and_doubles() {
        assert_eq!(lock_delay(10), Some(60));
        assert_eq!(lock_delay(11), Some(120));
        assert_eq!(lock_delay(12), Some(240));
        assert_eq!(lock_delay(15), Some(1920));
    }

    #[test]
    fn delay_is_capped_at_one_hour() {
        assert_eq!(lock_delay(16), Some(3600));
        assert_eq!(lock_delay(70), Some(3600));
        assert_eq!(lock_delay(99), Some(3600));
    }

    #[test]
    fn hundred_failures_lock_until_reset() {
        assert_eq!(lock_delay(100), Some(LOCKED_UNTIL_RESET));
        assert_eq!(lock_delay(5000), Some(LOCKED_UNTIL_RESET));
        assert_eq!(locked_until_after(100, 1_000), LOCKED_UNTIL_RESET);
    }

    #[test]
    fn locked_until_counts_from_now() {
        assert_eq!(locked_until_after(9, 1_000), 0);
        assert_eq!(locked_until_after(10, 1_000), 1_060);
        assert_eq!(locked_until_after(11, i64::MAX - 10), i64::MAX);
    }
}
