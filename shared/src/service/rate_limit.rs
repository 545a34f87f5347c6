//! Exact sliding-window rate limits kept in the store.
//!
//! One item per limited subject, `RATE#<scope>#<keyed hash of subject>` / `RATE`, stores the times
//! of the most recent events (at most `limit` of them), a `version` and `expires_at` = newest event
//! plus the window. An event counts while it is less than `window_seconds` old, so a full window
//! opens again exactly when its oldest event turns `window_seconds` old.
//!
//! Recording is a read followed by a write conditional on the version that was read, or on the
//! item being absent. So two concurrent requests cannot both take the last free place. The loser
//! reads again and retries. Every round has a winner, and a full window ends the retries at once,
//! so a recording gives up with 503 only after `2 × limit + 2` lost rounds. That takes more
//! concurrent requests of one subject than its limit allows, with places given back in between.
//!
//! A limit on failures records the attempt before its outcome is known ([`reserve`]) and gives
//! the place back when the attempt turns out not to be a failure ([`release`]). Checking first
//! and recording after the failure would let every request that arrives together pass the check.
//! A consequence: attempts still in progress hold places, so more concurrent attempts of one
//! subject than its limit get `rate_limited` even when all of them would succeed.
//!
//! Subjects are stored only as keyed hashes, so the table never contains a phone number or an IP
//! address in a key.

use serde::{Deserialize, Serialize};

use super::App;
use crate::error::AppError;
use crate::store::{from_item, to_item, Condition, Key, StoreError, Write};

/// Rounds of read and conditional write beyond `2 × limit` before a contended recording gives up.
const EXTRA_WRITE_ATTEMPTS: usize = 2;
/// Rounds of read and conditional write before a contended release gives up. The largest limit in
/// use is 30, so this is the same bound as for a recording of that limit.
const MAX_RELEASE_ATTEMPTS: usize = 62;

/// The stored window of one subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RateWindow {
    /// Event times in Unix seconds, oldest first.
    #[serde(default)]
    events: Vec<i64>,
    #[serde(default)]
    version: i64,
    #[serde(default)]
    expires_at: i64,
}

/// Returns the store key of the window of `subject` in `scope`.
fn window_key(app: &App, scope: &str, subject: &str) -> Key {
    let subject_hash = app.keys.keyed_hash("rate", subject.as_bytes());
    Key::new(format!("RATE#{scope}#{subject_hash}"), "RATE")
}

/// Reads the window, keeping only the events still inside it. `None` means no item was stored.
async fn read_window(app: &App, key: &Key, window_seconds: i64, now: i64) -> Result<Option<RateWindow>, AppError> {
    let Some(item) = app.store.get(key).await? else {
        return Ok(None);
    };
    let mut window: RateWindow = from_item(item)?;
    window.events.retain(|&at| at > now - window_seconds && at <= now);
    window.events.sort_unstable();
    Ok(Some(window))
}

/// Returns the `rate_limited` error for a full window, or `Ok` when another event fits.
fn ensure_room(events: &[i64], limit: usize, window_seconds: i64, now: i64) -> Result<(), AppError> {
    if events.len() < limit {
        return Ok(());
    }
    let oldest = events.first().copied().unwrap_or(now);
    Err(AppError::RateLimited {
        retry_after: (oldest + window_seconds - now).max(1),
        message: "too many requests; try again after the time in the Retry-After header".into(),
    })
}

/// Checks whether one more event of `subject` fits the limit of `limit` events per
/// `window_seconds`, without recording anything.
pub async fn check(app: &App, scope: &str, subject: &str, limit: usize, window_seconds: i64) -> Result<(), AppError> {
    let now = app.now();
    let key = window_key(app, scope, subject);
    let window = read_window(app, &key, window_seconds, now).await?.unwrap_or_default();
    ensure_room(&window.events, limit, window_seconds, now)
}

/// Records one event of `subject` in `scope` if fewer than `limit` events happened in the last
/// `window_seconds`. Otherwise returns `rate_limited` with the seconds until a place frees up.
///
/// Fails with `service_unavailable` when the store cannot be reached, or when concurrent recordings
/// keep winning the race while the window still has room.
pub async fn check_and_record(
    app: &App,
    scope: &str,
    subject: &str,
    limit: usize,
    window_seconds: i64,
) -> Result<(), AppError> {
    reserve(app, scope, subject, limit, window_seconds).await.map(drop)
}

/// Records one event like [`check_and_record`] and returns its time, which [`release`] takes to
/// give the place back.
pub async fn reserve(
    app: &App,
    scope: &str,
    subject: &str,
    limit: usize,
    window_seconds: i64,
) -> Result<i64, AppError> {
    let key = window_key(app, scope, subject);

    for _ in 0..limit.saturating_mul(2).saturating_add(EXTRA_WRITE_ATTEMPTS) {
        let now = app.now();
        let stored = read_window(app, &key, window_seconds, now).await?;
        let read_version = stored.as_ref().map(|window| window.version);
        let mut events = stored.map(|window| window.events).unwrap_or_default();
        ensure_room(&events, limit, window_seconds, now)?;

        events.push(now);
        let keep_from = events.len().saturating_sub(limit);
        let events = events.split_off(keep_from);
        let window = RateWindow {
            events,
            version: read_version.unwrap_or(0) + 1,
            expires_at: now + window_seconds,
        };
        let condition = match read_version {
            Some(version) => Condition::And(vec![Condition::Exists, Condition::equals("version", version)]),
            None => Condition::NotExists,
        };

        match app
            .store
            .write(Write::Put {
                item: to_item(&key, &window)?,
                condition: Some(condition),
            })
            .await
        {
            Ok(()) => return Ok(now),
            Err(StoreError::ConditionFailed { .. } | StoreError::TransactionConflict) => continue,
            Err(error) => return Err(error.into()),
        }
    }

    // Every attempt lost a race. When the winners filled the window, this request is over the
    // limit like any other. Only a window that still has room is a real contention failure.
    let now = app.now();
    let window = read_window(app, &key, window_seconds, now).await?.unwrap_or_default();
    ensure_room(&window.events, limit, window_seconds, now)?;
    tracing::warn!(scope, "rate limit window stayed contended after retries");
    Err(AppError::unavailable(format!("rate limit window {scope} is contended")))
}

/// Gives back the place of the event that [`reserve`] recorded at `at`, because the attempt it
/// stood for succeeded. An event that has left the window, or a window that is gone, needs nothing.
///
/// The place is only given back on a best-effort basis: when the store fails or the window stays
/// contended, the event keeps counting until it leaves the window, which errs on the side of the
/// limit. The failure is logged.
pub async fn release(app: &App, scope: &str, subject: &str, at: i64, window_seconds: i64) {
    let key = window_key(app, scope, subject);
    let outcome = remove_event(app, &key, at, window_seconds).await;
    if let Err(error) = outcome {
        tracing::warn!(scope, error = %error, "rate limit place not given back");
    }
}

async fn remove_event(app: &App, key: &Key, at: i64, window_seconds: i64) -> Result<(), AppError> {
    for _ in 0..MAX_RELEASE_ATTEMPTS {
        let now = app.now();
        let Some(mut window) = read_window(app, key, window_seconds, now).await? else {
            return Ok(());
        };
        let Some(position) = window.events.iter().position(|&event| event == at) else {
            return Ok(());
        };
        window.events.remove(position);

        let read_version = window.version;
        window.version += 1;
        let condition = Condition::And(vec![Condition::Exists, Condition::equals("version", read_version)]);
        match app
            .store
            .write(Write::Put {
                item: to_item(key, &window)?,
                condition: Some(condition),
            })
            .await
        {
            Ok(()) => return Ok(()),
            Err(StoreError::ConditionFailed { .. } | StoreError::TransactionConflict) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(AppError::unavailable("rate limit window stayed contended"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_while_below_limit() {
        assert_eq!(ensure_room(&[100, 110], 3, 60, 120), Ok(()));
    }

    #[test]
    fn full_window_reports_time_until_oldest_leaves() {
        let result = ensure_room(&[100, 110, 115], 3, 60, 120);

        assert_eq!(result.as_ref().map_err(AppError::retry_after), Err(Some(40)));
        assert_eq!(result.map_err(|error| error.code()), Err("rate_limited"));
    }
}
