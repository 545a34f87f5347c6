//! The SMS factor: add or change a number, verify it, delete it.
//!
//! States of a user's number:
//! - `PUT /security/sms/number` stores a pending number (replacing any earlier pending one) and
//!   sends it a code. An active number stays in force until the pending one is verified.
//! - `POST /security/sms/number/send-code` sends another code, at least 30 s after the previous
//!   one. Every code sent to the pending number stays valid until 5 minutes after the latest
//!   send, so an SMS that arrives late still works.
//! - `POST /security/sms/number/verify` checks a code: the pending number becomes the active one.
//!   Five wrong codes delete the pending number; it also expires 1 hour after it was added.
//! - `DELETE /security/sms/number` removes the active number and any pending one, except the
//!   last active factor of a main account. Without an active number it cancels the pending one.
//!
//! Codes are stored only as keyed hashes bound to the `pending_id`, so a code sent for a replaced
//! pending number cannot verify the new one. Responses and logs show masked numbers only.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::change::{Change, ChangeError};
use super::sessions::{self, Access, Authenticated};
use super::sms_delivery::{self, SmsPurpose};
use super::App;
use crate::code::{self, SixDigitCode};
use crate::crypto;
use crate::error::AppError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::{user_attr, Method, NotificationEvent, PendingSmsFactor, SessionKind, SmsFactor, User};
use crate::phone::{mask_e164, PhoneNumber};
use crate::store::{from_item, to_item, Condition, Update, Write};

/// Lifetime of a pending number.
pub const PENDING_SECONDS: i64 = 60 * 60;
/// Lifetime of a verification code after the latest send.
pub const CODE_SECONDS: i64 = 5 * 60;
/// The shortest time between two codes sent to one pending number.
pub const RESEND_INTERVAL_SECONDS: i64 = 30;
/// Wrong codes after which the pending number is deleted.
pub const MAX_ATTEMPTS: i64 = 5;

/// Attribute names of [`PendingSmsFactor`] used in conditions and updates.
mod pending_attr {
    pub const PENDING_ID: &str = "pending_id";
    pub const CODE_HASHES: &str = "code_hashes";
    pub const CODE_EXPIRES_AT: &str = "code_expires_at";
    pub const LAST_SENT_AT: &str = "last_sent_at";
    pub const ATTEMPTS: &str = "attempts";
}

#[derive(Deserialize)]
struct PutNumberRequest {
    phone: String,
}

#[derive(Deserialize)]
struct VerifyRequest {
    code: String,
}

/// The SMS part of a response, in the shape of the security settings.
#[derive(Debug, Serialize)]
struct SmsView {
    status: &'static str,
    phone_masked: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_expires_at: Option<i64>,
    /// The earliest time another code may be sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_send_at: Option<i64>,
}

#[derive(Debug, Serialize)]
struct SmsResponse {
    status: &'static str,
    sms: SmsView,
}

/// Returns the response after a code was sent to a pending number.
fn code_sent_response(pending: &PendingSmsFactor) -> ApiResponse {
    let sms = SmsView {
        status: "pending",
        phone_masked: mask_e164(&pending.phone_e164),
        code_expires_at: Some(pending.code_expires_at),
        pending_expires_at: Some(pending.expires_at),
        next_send_at: Some(pending.last_sent_at + RESEND_INTERVAL_SECONDS),
    };
    ApiResponse::json(
        200,
        &SmsResponse {
            status: "code_sent",
            sms,
        },
    )
}

/// Hashes a verification code, bound to the pending number it was sent for.
fn code_hash(app: &App, pending_id: &str, code: &SixDigitCode) -> String {
    app.keys
        .keyed_hash("sms-number-code", format!("{pending_id}:{}", code.as_str()).as_bytes())
}

/// Returns the store write of a pending number.
fn put_pending(pending: &PendingSmsFactor, user_id: &str) -> Result<Write, AppError> {
    Ok(Write::Put {
        item: to_item(&PendingSmsFactor::key(user_id), pending)?,
        condition: None,
    })
}

/// Condition that the pending number is still the one with `pending_id`.
fn is_same_pending(pending_id: &str) -> Condition {
    Condition::And(vec![
        Condition::Exists,
        Condition::equals(pending_attr::PENDING_ID, pending_id),
    ])
}

/// `PUT /security/sms/number {phone}`: stores a pending number and sends it the first code.
pub async fn put_number(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let auth = sessions::authenticate(app, request, Access::FreshOrEnrollment).await?;
    let body: PutNumberRequest = request.json()?;
    let phone = app
        .phone_policy
        .parse(&body.phone)
        .map_err(|error| AppError::invalid_field("phone", error.to_string()))?;
    let state = &auth.state;
    let now = app.now();

    if !state.is_two_factor_required() {
        return Err(AppError::Conflict(
            "two-factor authentication is off for this user; switch it on first".into(),
        ));
    }
    if state
        .sms
        .as_ref()
        .is_some_and(|active| active.phone_e164 == phone.as_e164())
    {
        return Err(AppError::Conflict(
            "this phone number is already the active SMS number".into(),
        ));
    }
    if let Some(pending) = state
        .sms_pending
        .as_ref()
        .filter(|pending| pending.phone_e164 == phone.as_e164())
    {
        ensure_resend_interval(pending, now)?;
    }
    sms_delivery::check_limits(app, &phone, &state.user, &request.source_ip).await?;

    let code = code::generate_sms_code(app.random.as_ref());
    let pending_id = app.new_id();
    let pending = PendingSmsFactor {
        code_hashes: vec![code_hash(app, &pending_id, &code)],
        pending_id,
        phone_e164: phone.as_e164().to_owned(),
        created_at: now,
        expires_at: now + PENDING_SECONDS,
        code_expires_at: now + CODE_SECONDS,
        last_sent_at: now,
        attempts: 0,
    };
    let (event, audit_event) = if state.sms.is_some() {
        (NotificationEvent::SmsNumberChanged, "sms_number_changed")
    } else {
        (NotificationEvent::SmsNumberAdded, "sms_number_added")
    };
    Change::new(app, &auth, &request.source_ip, audit_event)
        .method(Method::Sms)
        .write(put_pending(&pending, auth.user_id())?)
        .notify(event, Some(phone.masked()))
        .commit()
        .await
        .map_err(|error| {
            error.into_app_error(|_| {
                AppError::Conflict("the pending phone number changed at the same time; retry".into())
            })
        })?;

    let previous = SentCodes {
        code_hashes: Vec::new(),
        code_expires_at: 0,
        last_sent_at: 0,
    };
    deliver(
        app,
        &auth.state.user,
        &request.source_ip,
        &phone,
        &pending,
        &code,
        previous,
    )
    .await?;
    Ok(code_sent_response(&pending))
}

/// `POST /security/sms/number/send-code`: sends another code to the pending number.
pub async fn send_code(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let auth = sessions::authenticate(app, request, Access::FreshOrEnrollment).await?;
    let now = app.now();
    let pending = live_pending(&auth, now)?;
    ensure_resend_interval(pending, now)?;
    let phone = app
        .phone_policy
        .parse(&pending.phone_e164)
        .map_err(|error| AppError::invalid_field("phone", error.to_string()))?;

    let code = code::generate_sms_code(app.random.as_ref());
    let hash = code_hash(app, &pending.pending_id, &code);
    let reserve = Update::new()
        .append(pending_attr::CODE_HASHES, vec![Value::String(hash.clone())])
        .set(pending_attr::CODE_EXPIRES_AT, now + CODE_SECONDS)
        .set(pending_attr::LAST_SENT_AT, now);
    let condition = Condition::And(vec![
        is_same_pending(&pending.pending_id),
        Condition::less_than(pending_attr::LAST_SENT_AT, now - RESEND_INTERVAL_SECONDS + 1),
    ]);
    let key = PendingSmsFactor::key(auth.user_id());
    if let Err(error) = app
        .store
        .write(Write::Update {
            key,
            update: reserve,
            condition: Some(condition),
        })
        .await
    {
        return Err(if error.is_condition_failed() {
            lost_send_race()
        } else {
            error.into()
        });
    }

    let previous = SentCodes {
        code_hashes: pending.code_hashes.clone(),
        code_expires_at: pending.code_expires_at,
        last_sent_at: pending.last_sent_at,
    };
    let mut sent = pending.clone();
    sent.code_hashes.push(hash);
    sent.code_expires_at = now + CODE_SECONDS;
    sent.last_sent_at = now;
    deliver(
        app,
        &auth.state.user,
        &request.source_ip,
        &phone,
        &sent,
        &code,
        previous,
    )
    .await?;
    Ok(code_sent_response(&sent))
}

/// `POST /security/sms/number/verify {code}`: activates the pending number.
pub async fn verify_number(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let auth = sessions::authenticate(app, request, Access::FreshOrEnrollment).await?;
    let body: VerifyRequest = request.json()?;
    let now = app.now();
    let pending = live_pending(&auth, now)?;
    if pending.code_expires_at <= now || pending.code_hashes.is_empty() {
        return Err(AppError::invalid_field(
            "code",
            "the code has expired; request a new one with send-code",
        ));
    }

    let attempts = count_attempt(app, auth.user_id(), pending).await?;
    let is_valid = match SixDigitCode::parse(&body.code) {
        Ok(code) => matches_any(&code_hash(app, &pending.pending_id, &code), &pending.code_hashes),
        Err(_) => false,
    };
    if !is_valid {
        return Err(reject_code(app, auth.user_id(), pending, attempts).await);
    }

    activate(app, &auth, request, pending).await
}

/// `DELETE /security/sms/number`: removes the active number and any pending one.
pub async fn delete_number(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let auth = sessions::authenticate(app, request, Access::Fresh).await?;
    let state = &auth.state;
    let user_id = auth.user_id();

    let Some(active) = &state.sms else {
        return delete_pending_only(app, &auth, request).await;
    };
    if state.is_last_factor_of_main_account(Method::Sms) {
        return Err(AppError::FactorRequired(
            "the SMS number is the last active factor of the main account; connect an OTP device before deleting it"
                .into(),
        ));
    }

    let login_method = match state.otp {
        Some(_) => Update::new().set(user_attr::LOGIN_METHOD, Method::Totp.as_str()),
        None => Update::new().remove(user_attr::LOGIN_METHOD),
    };
    Change::new(app, &auth, &request.source_ip, "sms_number_deleted")
        .method(Method::Sms)
        .write(Write::Delete {
            key: SmsFactor::key(user_id),
            condition: Some(Condition::Exists),
        })
        .write(Write::Delete {
            key: PendingSmsFactor::key(user_id),
            condition: None,
        })
        .user_update(login_method)
        .notify(NotificationEvent::SmsNumberDeleted, Some(mask_e164(&active.phone_e164)))
        .commit()
        .await
        .map_err(|error| error.into_app_error(|_| AppError::NotFound("no active SMS number".into())))?;
    Ok(ApiResponse::ok())
}

/// Cancels a pending number when the user has no active one.
async fn delete_pending_only(app: &App, auth: &Authenticated, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let now = app.now();
    let pending = live_pending(auth, now).map_err(|_| AppError::NotFound("no SMS number to delete".into()))?;
    Change::new(app, auth, &request.source_ip, "sms_number_deleted")
        .method(Method::Sms)
        .write(Write::Delete {
            key: PendingSmsFactor::key(auth.user_id()),
            condition: Some(is_same_pending(&pending.pending_id)),
        })
        .notify(
            NotificationEvent::SmsNumberDeleted,
            Some(mask_e164(&pending.phone_e164)),
        )
        .commit()
        .await
        .map_err(|error| error.into_app_error(|_| AppError::NotFound("no SMS number to delete".into())))?;
    Ok(ApiResponse::ok())
}

/// Returns the user's pending number if it has not expired.
fn live_pending(auth: &Authenticated, now: i64) -> Result<&PendingSmsFactor, AppError> {
    auth.state
        .sms_pending
        .as_ref()
        .filter(|pending| pending.expires_at > now)
        .ok_or_else(|| AppError::NotFound("no pending SMS number; add one with PUT /security/sms/number".into()))
}

/// Refuses a send less than [`RESEND_INTERVAL_SECONDS`] after the previous one.
fn ensure_resend_interval(pending: &PendingSmsFactor, now: i64) -> Result<(), AppError> {
    let next_send_at = pending.last_sent_at + RESEND_INTERVAL_SECONDS;
    if now < next_send_at {
        return Err(AppError::RateLimited {
            retry_after: next_send_at - now,
            message: format!(
                "a code was sent less than {RESEND_INTERVAL_SECONDS} seconds ago; wait before requesting another"
            ),
        });
    }
    Ok(())
}

/// Builds the error for a send that lost the race to a concurrent send or change of the pending number.
fn lost_send_race() -> AppError {
    AppError::RateLimited {
        retry_after: RESEND_INTERVAL_SECONDS,
        message: "another code was sent at the same time; wait before requesting another".into(),
    }
}

/// The code fields of a pending number before a send, restored when the send fails.
struct SentCodes {
    code_hashes: Vec<String>,
    code_expires_at: i64,
    last_sent_at: i64,
}

/// Sends the code recorded in `pending`. When the send fails, the record of that send is undone,
/// so the user can ask again at once and the unsent code is not valid.
async fn deliver(
    app: &App,
    user: &User,
    source_ip: &str,
    phone: &PhoneNumber,
    pending: &PendingSmsFactor,
    code: &SixDigitCode,
    previous: SentCodes,
) -> Result<(), AppError> {
    let Err(error) = sms_delivery::send_code(app, phone, user, source_ip, code, SmsPurpose::NumberVerification).await
    else {
        return Ok(());
    };

    let restore = Update::new()
        .set(pending_attr::CODE_HASHES, previous.code_hashes)
        .set(pending_attr::CODE_EXPIRES_AT, previous.code_expires_at)
        .set(pending_attr::LAST_SENT_AT, previous.last_sent_at);
    let condition = Condition::And(vec![
        is_same_pending(&pending.pending_id),
        Condition::equals(pending_attr::LAST_SENT_AT, pending.last_sent_at),
    ]);
    let key = PendingSmsFactor::key(&user.user_id);
    if let Err(restore_error) = app
        .store
        .write(Write::Update {
            key,
            update: restore,
            condition: Some(condition),
        })
        .await
    {
        // The pending number keeps the unsent code and its send time; the user can ask for a
        // new code once the resend interval has passed.
        tracing::warn!(user_id = %user.user_id, error = %restore_error, "undoing a failed SMS send failed");
    }
    Err(error)
}

/// Counts one verification attempt before the code is compared, so parallel guesses cannot
/// exceed [`MAX_ATTEMPTS`]. Returns the number of attempts including this one.
///
/// A request that finds the attempts used up deletes nothing: the request that made the last
/// attempt deletes the pending number if its code was wrong, or activates it if it was right.
async fn count_attempt(app: &App, user_id: &str, pending: &PendingSmsFactor) -> Result<i64, AppError> {
    let condition = Condition::And(vec![
        is_same_pending(&pending.pending_id),
        Condition::absent_or_less_than(pending_attr::ATTEMPTS, MAX_ATTEMPTS),
    ]);
    let update = Update::new().add(pending_attr::ATTEMPTS, 1);
    match app
        .store
        .update_returning(&PendingSmsFactor::key(user_id), update, Some(condition))
        .await
    {
        Ok(item) => Ok(item
            .get(pending_attr::ATTEMPTS)
            .and_then(Value::as_i64)
            .unwrap_or(MAX_ATTEMPTS)),
        Err(error) if error.is_condition_failed() => {
            Err(explain_uncounted_attempt(app, user_id, &pending.pending_id).await)
        }
        Err(error) => Err(error.into()),
    }
}

/// Explains why an attempt could not be counted: the pending number is gone or replaced, or its
/// attempts are used up.
async fn explain_uncounted_attempt(app: &App, user_id: &str, pending_id: &str) -> AppError {
    let current = match app.store.get(&PendingSmsFactor::key(user_id)).await {
        Ok(item) => item.and_then(|item| from_item::<PendingSmsFactor>(item).ok()),
        Err(error) => return error.into(),
    };
    match current {
        Some(current) if current.pending_id == pending_id => too_many_attempts(),
        Some(_) => {
            AppError::Conflict("the pending phone number was replaced; verify the code sent to the new one".into())
        }
        None => AppError::NotFound("no pending SMS number; it was verified, deleted or has expired".into()),
    }
}

/// Returns the error of a wrong code, deleting the pending number after the last allowed attempt.
async fn reject_code(app: &App, user_id: &str, pending: &PendingSmsFactor, attempts: i64) -> AppError {
    tracing::info!(user_id, attempts, "wrong SMS number verification code");
    if attempts >= MAX_ATTEMPTS {
        delete_exhausted(app, user_id, &pending.pending_id).await;
        return too_many_attempts();
    }
    AppError::InvalidCode {
        field: Some("code".into()),
    }
}

fn too_many_attempts() -> AppError {
    AppError::TooManyAttempts { retry_after: None }
}

/// Deletes a pending number whose attempts are used up. A failure only leaves a pending number
/// that refuses every further attempt until it expires.
async fn delete_exhausted(app: &App, user_id: &str, pending_id: &str) {
    let delete = Write::Delete {
        key: PendingSmsFactor::key(user_id),
        condition: Some(is_same_pending(pending_id)),
    };
    if let Err(error) = app.store.write(delete).await {
        if !error.is_condition_failed() {
            tracing::warn!(user_id, error = %error, "deleting an exhausted pending SMS number failed");
        }
    }
}

/// Compares a hash with every stored hash in constant time, without stopping at a match.
fn matches_any(hash: &str, stored: &[String]) -> bool {
    stored
        .iter()
        .fold(false, |found, candidate| crypto::hashes_equal(hash, candidate) | found)
}

/// Makes the pending number the active one and returns the response of the verification.
async fn activate(
    app: &App,
    auth: &Authenticated,
    request: &ApiRequest,
    pending: &PendingSmsFactor,
) -> Result<ApiResponse, AppError> {
    let user_id = auth.user_id();
    let state = &auth.state;
    let factor = SmsFactor {
        phone_e164: pending.phone_e164.clone(),
        verified_at: app.now(),
    };
    let masked = mask_e164(&pending.phone_e164);

    let mut change = Change::new(app, auth, &request.source_ip, "sms_number_verified")
        .method(Method::Sms)
        .write(Write::Put {
            item: to_item(&SmsFactor::key(user_id), &factor)?,
            condition: None,
        })
        .write(Write::Delete {
            key: PendingSmsFactor::key(user_id),
            condition: Some(is_same_pending(&pending.pending_id)),
        })
        .notify(NotificationEvent::SmsNumberVerified, Some(masked.clone()));
    // Keep the login method the user has now; a user without an active factor gets SMS.
    let login_method = state.login_method().unwrap_or(Method::Sms);
    if state.user.login_method != Some(login_method) {
        change = change.user_update(Update::new().set(user_attr::LOGIN_METHOD, login_method.as_str()));
    }
    if auth.is_enrollment() {
        change = change.issue_session(SessionKind::Full);
    }

    let issued = change.commit().await.map_err(|error| match error {
        ChangeError::WriteCondition(1) => {
            AppError::Conflict("the pending phone number changed at the same time; verify the new one".into())
        }
        other => other.into_app_error(|_| AppError::Conflict("the SMS number changed at the same time; retry".into())),
    })?;

    tracing::info!(user_id, phone = %masked, "SMS number verified");
    match issued {
        Some(session) => Ok(ApiResponse::json(200, &session.body())),
        None => {
            let sms = SmsView {
                status: "active",
                phone_masked: masked,
                code_expires_at: None,
                pending_expires_at: None,
                next_send_at: None,
            };
            Ok(ApiResponse::json(200, &SmsResponse { status: "ok", sms }))
        }
    }
}
