//! Exact sliding-window rate limits kept in the store.
//!
//! One item per limited subject, `RATE#<scope>#<keyed hash of subject>` / `RATE`, stores the times
//! of the most recent events (at most `limit` of them), a `version` and `expires_at` = newest event
//! plus the window. An event counts while it is less than `window_seconds` old, so a full window
//! opens again exactly when its oldest event turns `window_seconds` old.
//!
//! Recording is a read followed by a write conditional on the version that was read, or on the
//! item being absent. So two concurrent requests cannot both take the last free place. The loser
//! reads again and retries a few times. If it keeps losing, it gets `rate_limited` when the winners
//! filled the window, else 503.
//!
//! Subjects are stored only as keyed hashes, so the table never contains a phone number or an IP
//! address in a key.

use serde::{Deserialize, Serialize};

use super::App;
use crate::error::AppError;
use crate::store::{from_item, to_item, Condition, Key, StoreError, Write};

/// How many times a recording retries after losing a race to a concurrent one.
const MAX_WRITE_ATTEMPTS: usize = 5;

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
    let key = window_key(app, scope, subject);

    for _ in 0..MAX_WRITE_ATTEMPTS {
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
            Ok(()) => return Ok(()),
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
