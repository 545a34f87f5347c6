//! `POST /login`: the password step.
//!
//! Checks, in order:
//! 1. the source IP address is below [`PASSWORD_FAILURE_LIMIT_PER_IP`] failed logins in
//!    [`PASSWORD_FAILURE_WINDOW_SECONDS`], else `rate_limited`;
//! 2. the username exists, else a dummy password hash is verified and the response is the same
//!    `invalid_credentials` as for a wrong password;
//! 3. the user's password lockout is not active, else `too_many_attempts` without a password check;
//! 4. the password is correct, else the failure is counted and the response is `invalid_credentials`.
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
    // NOTE: the failure is recorded after the password check, so requests that arrive together
    // all pass this check and one source IP can exceed the limit by the number of its concurrent
    // requests. The per-user lockout still bounds guesses against any one account.
    rate_limit::check(
        app,
        PASSWORD_FAILURE_SCOPE,
        &request.source_ip,
        PASSWORD_FAILURE_LIMIT_PER_IP,
        PASSWORD_FAILURE_WINDOW_SECONDS,
    )
    .await?;

    let state = match validate_username(&body.username) {
        Ok(()) => users::find_by_username(app, &body.username).await?,
        Err(_) => None,
    };
    let Some(state) = state else {
        // The same work and the same response as for a wrong password, so the response does not
        // reveal whether the username exists.
        // NOTE: a wrong password of a real user also writes its failure count and an audit record,
        // two store round trips more than this branch. The argon2 check dominates the time, but
        // many timed samples may still tell the two apart.
        check_password(&body.password, None).await?;
        record_ip_failure(app, request).await?;
        tracing::info!(
            outcome = "failure",
            reason = "unknown_username",
            "password step rejected"
        );
        return Err(AppError::InvalidCredentials);
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
        record_ip_failure(app, request).await?;
        tracing::info!(
            outcome = "failure",
            reason = "wrong_password",
            failures = failure.failures,
            is_locked = failure.locked_until > 0,
            "password step rejected"
        );
        return Err(AppError::InvalidCredentials);
    }

    continue_after_password(app, request, &state).await
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

/// Counts a failed login of the source IP address. A full window is not an error here, because
/// this attempt has failed anyway and the check before the next attempt rejects it.
async fn record_ip_failure(app: &App, request: &ApiRequest) -> Result<(), AppError> {
    let recorded = rate_limit::check_and_record(
        app,
        PASSWORD_FAILURE_SCOPE,
        &request.source_ip,
        PASSWORD_FAILURE_LIMIT_PER_IP,
        PASSWORD_FAILURE_WINDOW_SECONDS,
    )
    .await;
    match recorded {
        Ok(()) | Err(AppError::RateLimited { .. }) => Ok(()),
        Err(error) => Err(error),
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
