//! `POST /login`: the password step.
//!
//! Checks, in order:
//! 1. the source IP address has a free place among [`PASSWORD_FAILURE_LIMIT_PER_IP`] failed logins
//!    in [`PASSWORD_FAILURE_WINDOW_SECONDS`], else `rate_limited`. The attempt takes the place at
//!    once and gives it back only when the password is correct, so concurrent requests from one
//!    address cannot all pass this check before any of them fails, and probes of locked usernames
//!    count too;
//! 2. the password lockout of the username is not active, else `too_many_attempts` without a
//!    password check. A username that belongs to no user has a lockout of its own with the same
//!    rules (see [`lockout`]), so a lock does not reveal that a username exists;
//! 3. the username exists and the password is correct, else the failure is counted and the
//!    response is `invalid_credentials`. For an unknown username a dummy password hash is verified,
//!    so that both cases take about the same time.
//!
//! After a correct password the login continues with a challenge of the user's login method, an
//! enrollment session when 2FA is on but no factor is active, or a full session for a sub-account
//! with 2FA off. A store failure at any step returns 503 and never skips the second factor.

use serde::Deserialize;
use tracing::Instrument;

use super::audit::{self, AuditEntry};
use super::challenge;
use super::lockout::{self, Counter};
use super::provisioning::validate_username;
use super::users::{self, UserState};
use super::{rate_limit, sessions, App};
use crate::crypto;
use crate::error::AppError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::SessionKind;
use crate::secret::SecretString;
use crate::store::Write;

/// Failed logins allowed per source IP address in [`PASSWORD_FAILURE_WINDOW_SECONDS`].
pub const PASSWORD_FAILURE_LIMIT_PER_IP: usize = 30;
/// Window of [`PASSWORD_FAILURE_LIMIT_PER_IP`], in seconds.
pub const PASSWORD_FAILURE_WINDOW_SECONDS: i64 = 10 * 60;

const PASSWORD_FAILURE_SCOPE: &str = "login-password-failure-ip";
const AUDIT_EVENT: &str = "login_password";

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: SecretString,
}

/// `POST /login {username, password}`.
pub async fn login(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let span = tracing::info_span!("login", user_id = tracing::field::Empty);
    login_in_span(app, request).instrument(span).await
}

async fn login_in_span(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let body: LoginRequest = request.json()?;
    let place = rate_limit::reserve(
        app,
        PASSWORD_FAILURE_SCOPE,
        &request.source_ip,
        PASSWORD_FAILURE_LIMIT_PER_IP,
        PASSWORD_FAILURE_WINDOW_SECONDS,
    )
    .await?;

    check_credentials(app, request, &body, place).await
}

/// Checks the username and password. `place` is the time of the source IP's place among failed
/// logins, given back once the password is known to be correct.
async fn check_credentials(
    app: &App,
    request: &ApiRequest,
    body: &LoginRequest,
    place: i64,
) -> Result<ApiResponse, AppError> {
    let state = match validate_username(&body.username) {
        Ok(()) => users::find_by_username(app, &body.username).await?,
        Err(_) => None,
    };
    let Some(state) = state else {
        return reject_unknown_username(app, body).await;
    };

    let user_id = state.user.user_id.as_str();
    tracing::Span::current().record("user_id", user_id);
    if let Err(locked) = lockout::check(&state.user, Counter::Password, app.now()) {
        audit::put(app, user_id, entry("locked", &request.source_ip)).await?;
        tracing::info!(outcome = "locked", reason = "password_locked", "password step rejected");
        return Err(locked);
    }

    if !check_password(&body.password, Some(&state.user.password_hash)).await? {
        let failure = lockout::record_failure(app, user_id, Counter::Password).await?;
        audit::put(app, user_id, entry("failure", &request.source_ip)).await?;
        tracing::info!(
            outcome = "failure",
            reason = "wrong_password",
            failures = failure.failures,
            is_locked = failure.locked_until > 0,
            "password step rejected"
        );
        return Err(AppError::InvalidCredentials);
    }

    rate_limit::release(
        app,
        PASSWORD_FAILURE_SCOPE,
        &request.source_ip,
        place,
        PASSWORD_FAILURE_WINDOW_SECONDS,
    )
    .await;
    continue_after_password(app, request, &state).await
}

/// Rejects a username that belongs to no user with the checks, the work and the responses of a
/// wrong password, so that neither the response nor a lock reveals whether the username exists.
async fn reject_unknown_username(app: &App, body: &LoginRequest) -> Result<ApiResponse, AppError> {
    // NOTE: a wrong password of a real user also writes an audit record, one store round trip
    // more than this branch. The argon2 check dominates the time, but many timed samples may
    // still tell the two apart.
    if let Err(locked) = lockout::check_unknown_username(app, &body.username).await {
        tracing::info!(
            outcome = "locked",
            reason = "unknown_username_locked",
            "password step rejected"
        );
        return Err(locked);
    }

    check_password(&body.password, None).await?;
    let failure = lockout::record_unknown_username_failure(app, &body.username).await?;
    tracing::info!(
        outcome = "failure",
        reason = "unknown_username",
        failures = failure.failures,
        is_locked = failure.locked_until > 0,
        "password step rejected"
    );
    Err(AppError::InvalidCredentials)
}

/// Checks a password against a PHC hash, or against the dummy hash when there is none (and then
/// returns `false`). The check runs on the blocking thread pool, because argon2 with 19 MiB of
/// memory keeps a CPU busy for a noticeable time.
async fn check_password(password: &SecretString, hash: Option<&str>) -> Result<bool, AppError> {
    let password = password.clone();
    let hash = hash.map(str::to_owned);
    let check = move || match hash {
        Some(hash) => crypto::verify_password(&password, &hash),
        None => {
            crypto::verify_dummy_password(&password);
            false
        }
    };
    tokio::task::spawn_blocking(check)
        .await
        .map_err(|error| AppError::Internal(format!("password check task failed: {error}")))
}

fn entry<'a>(outcome: &'a str, source_ip: &'a str) -> AuditEntry<'a> {
    AuditEntry {
        event: AUDIT_EVENT,
        outcome,
        method: None,
        source_ip,
        detail: None,
    }
}

/// Decides what a correct password leads to. The password lockout reset and the success audit
/// record commit together with the challenge or the session.
async fn continue_after_password(app: &App, request: &ApiRequest, state: &UserState) -> Result<ApiResponse, AppError> {
    let user = &state.user;
    let mut writes = vec![
        lockout::reset_write(&user.user_id, Counter::Password),
        audit::record(app, &user.user_id, entry("success", &request.source_ip))?,
    ];

    if !state.is_two_factor_required() {
        tracing::info!(
            outcome = "authenticated",
            reason = "two_factor_off",
            "password accepted"
        );
        return issue_session(app, state, SessionKind::Full, writes).await;
    }

    let Some(method) = state.login_method() else {
        tracing::info!(outcome = "enrollment", reason = "no_active_factor", "password accepted");
        return issue_session(app, state, SessionKind::Enrollment, writes).await;
    };

    if let Err(locked) = lockout::check(user, Counter::SecondFactor, app.now()) {
        let locked_entry = AuditEntry {
            event: challenge::audit_event(method),
            outcome: "locked",
            method: Some(method),
            source_ip: &request.source_ip,
            detail: None,
        };
        writes.push(audit::record(app, &user.user_id, locked_entry)?);
        app.store.transact(writes).await?;
        tracing::info!(
            outcome = "locked",
            reason = "second_factor_locked",
            "password accepted; second factor locked"
        );
        return Err(locked);
    }

    challenge::start(app, state, method, &request.source_ip, writes).await
}

async fn issue_session(
    app: &App,
    state: &UserState,
    kind: SessionKind,
    mut writes: Vec<Write>,
) -> Result<ApiResponse, AppError> {
    let issued = sessions::issue(app, &state.user.user_id, kind, state.user.session_epoch)?;
    writes.push(issued.write.clone());
    app.store.transact(writes).await?;
    Ok(ApiResponse::json(200, &issued.body()))
}
