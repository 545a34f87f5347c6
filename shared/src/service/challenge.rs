//! Login challenges: starting one after the password step, resending its SMS code, verifying it.
//!
//! A challenge is `open` from the password step until it is `done` or expires, 5 minutes after it
//! started (the item's TTL, also checked in code). Its invariants:
//! - At most [`MAX_ATTEMPTS`] codes are checked per challenge. Each verification first adds 1 to
//!   `attempts` with the condition "open, not expired, `attempts` below the maximum" and only
//!   then compares the code, so concurrent guesses are never undercounted.
//! - Every SMS code sent for the challenge stays valid until it expires. Only keyed hashes of the
//!   codes are stored, bound to the challenge id, and a typed code is compared with all of them.
//! - A resend needs [`RESEND_INTERVAL_SECONDS`] since the last send and is allowed
//!   [`MAX_RESENDS`] times; it never resets `attempts`.
//! - A correct code moves the challenge from `open` to `done` in the transaction that issues the
//!   session, so of concurrent verifications of one valid code exactly one gets a session. For
//!   TOTP the same transaction raises the device's `last_step`, so a code is never accepted twice.
//! - A wrong or malformed code counts against the user's second-factor lockout as well.
//! - Each verification takes a place among the source IP's [`CODE_FAILURE_LIMIT_PER_IP`] failed
//!   codes before the code is compared. So concurrent guesses from one address cannot all pass
//!   the limit before any of them fails. The place is given back unless the verification ends as
//!   `invalid_code` or as a store failure.

use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::audit::{self, AuditEntry};
use super::lockout::{self, Counter};
use super::sessions;
use super::sms_delivery::{self, SmsPurpose};
use super::users::{self, UserState};
use super::{rate_limit, App};
use crate::code::{generate_sms_code, SixDigitCode};
use crate::crypto;
use crate::error::AppError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::{challenge_attr, Challenge, ChallengeStatus, Method, OtpDevice, SessionKind, SmsFactor};
use crate::phone::PhoneNumber;
use crate::store::{from_item, to_item, Condition, StoreError, Update, Write};
use crate::totp;

/// Lifetime of a challenge, in seconds.
pub const CHALLENGE_SECONDS: i64 = 5 * 60;
/// Codes checked per challenge, malformed ones included.
pub const MAX_ATTEMPTS: i64 = 5;
/// Resends allowed per challenge.
pub const MAX_RESENDS: i64 = 3;
/// Shortest time between two sends of one challenge, in seconds.
pub const RESEND_INTERVAL_SECONDS: i64 = 30;
/// Failed second-factor attempts allowed per source IP address in [`CODE_FAILURE_WINDOW_SECONDS`].
pub const CODE_FAILURE_LIMIT_PER_IP: usize = 30;
/// Window of [`CODE_FAILURE_LIMIT_PER_IP`], in seconds.
pub const CODE_FAILURE_WINDOW_SECONDS: i64 = 10 * 60;

const CODE_FAILURE_SCOPE: &str = "login-code-failure-ip";
const SMS_CODE_HASH_PURPOSE: &str = "login-sms-code";
const MAX_CHALLENGE_ID_LENGTH: usize = 64;

/// The response body of a started or resent challenge.
#[derive(Debug, Serialize)]
pub struct ChallengeBody<'a> {
    /// Always `challenge`.
    pub status: &'static str,
    pub challenge_id: &'a str,
    pub method: Method,
    pub expires_at: i64,
    /// The number the code went to, masked, for an SMS challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_masked: Option<String>,
}

/// Returns the keyed hash stored for an SMS code of a challenge. The challenge id is part of the
/// hashed data, so a code of one challenge never matches another.
pub fn sms_code_hash(app: &App, challenge_id: &str, code: &SixDigitCode) -> String {
    let data = format!("{challenge_id}:{}", code.as_str());
    app.keys.keyed_hash(SMS_CODE_HASH_PURPOSE, data.as_bytes())
}

/// Starts a challenge with `method` for a user whose password was just accepted, and sends the
/// SMS code for an SMS challenge.
///
/// `writes` (the password step's own writes) commit in the transaction that creates the
/// challenge. The code is sent only after the challenge is stored, so the code that arrives is
/// always valid. If sending fails, the challenge is deleted again and the sending error (503, or
/// 429 for a sending limit) is returned.
pub async fn start(
    app: &App,
    state: &UserState,
    method: Method,
    source_ip: &str,
    mut writes: Vec<Write>,
) -> Result<ApiResponse, AppError> {
    let now = app.now();
    let user = &state.user;
    let mut challenge = Challenge {
        challenge_id: app.new_id(),
        user_id: user.user_id.clone(),
        method,
        phone_e164: None,
        created_at: now,
        expires_at: now + CHALLENGE_SECONDS,
        status: ChallengeStatus::Open,
        attempts: 0,
        code_hashes: Vec::new(),
        resends: 0,
        last_sent_at: now,
        source_ip: source_ip.to_owned(),
    };

    if method == Method::Totp {
        writes.push(put_new(&challenge)?);
        app.store.transact(writes).await?;
        tracing::info!(
            outcome = "challenge",
            method = method.as_str(),
            "login challenge started"
        );
        return Ok(challenge_response(&challenge, None));
    }

    let factor = state
        .sms
        .as_ref()
        .ok_or_else(|| AppError::Internal("SMS challenge for a user without an active number".into()))?;
    let phone = PhoneNumber::from_e164(&factor.phone_e164).map_err(|error| {
        AppError::Internal(format!(
            "stored phone number of user {} is invalid: {error}",
            user.user_id
        ))
    })?;
    let code = generate_sms_code(app.random.as_ref());
    challenge.phone_e164 = Some(phone.as_e164().to_owned());
    challenge
        .code_hashes
        .push(sms_code_hash(app, &challenge.challenge_id, &code));
    writes.push(put_new(&challenge)?);
    app.store.transact(writes).await?;

    if let Err(error) = sms_delivery::send_code(app, &phone, user, source_ip, &code, SmsPurpose::Login).await {
        discard(app, &challenge.challenge_id).await;
        tracing::info!(
            outcome = "challenge_not_sent",
            reason = error.code(),
            "login SMS was not sent"
        );
        return Err(error);
    }

    tracing::info!(
        outcome = "challenge",
        method = method.as_str(),
        "login challenge started"
    );
    Ok(challenge_response(&challenge, Some(phone.masked())))
}

fn put_new(challenge: &Challenge) -> Result<Write, AppError> {
    let item = to_item(&Challenge::key(&challenge.challenge_id), challenge)?;
    Ok(Write::Put {
        item,
        condition: Some(Condition::NotExists),
    })
}

/// Deletes a challenge whose code could not be sent. It expires within minutes anyway, so a failed
/// delete is logged and not returned.
async fn discard(app: &App, challenge_id: &str) {
    let write = Write::Delete {
        key: Challenge::key(challenge_id),
        condition: None,
    };
    if let Err(error) = app.store.write(write).await {
        tracing::warn!(reason = %error, "deleting an unsent challenge failed; it expires by itself");
    }
}

fn challenge_response(challenge: &Challenge, phone_masked: Option<String>) -> ApiResponse {
    let body = ChallengeBody {
        status: "challenge",
        challenge_id: &challenge.challenge_id,
        method: challenge.method,
        expires_at: challenge.expires_at,
        phone_masked,
    };
    ApiResponse::json(200, &body)
}

#[derive(Deserialize)]
struct ResendRequest {
    challenge_id: String,
}

#[derive(Deserialize)]
struct VerifyRequest {
    challenge_id: String,
    code: String,
}

/// `POST /login/sms/resend`: sends a new code for an open SMS challenge.
pub async fn resend_sms(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let span = tracing::info_span!("resend_sms", user_id = tracing::field::Empty);
    resend_sms_in_span(app, request).instrument(span).await
}

async fn resend_sms_in_span(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let body: ResendRequest = request.json()?;
    validate_challenge_id(&body.challenge_id)?;
    let challenge = load_open(app, &body.challenge_id).await?;
    if challenge.method != Method::Sms {
        return Err(AppError::invalid_field(
            "challenge_id",
            "the challenge is not an SMS challenge, so no code can be resent",
        ));
    }

    let state = users::load(app, &challenge.user_id)
        .await?
        .ok_or(AppError::ChallengeExpired)?;
    tracing::Span::current().record("user_id", state.user.user_id.as_str());
    lockout::check(&state.user, Counter::SecondFactor, app.now())?;
    let phone_e164 = match (&state.sms, &challenge.phone_e164) {
        (Some(factor), Some(challenge_phone)) if &factor.phone_e164 == challenge_phone => challenge_phone,
        _ => return Err(AppError::ChallengeExpired),
    };
    let phone = PhoneNumber::from_e164(phone_e164)
        .map_err(|error| AppError::Internal(format!("stored phone number of a challenge is invalid: {error}")))?;

    // A send that the limits or the allow-list reject must not add a code to the challenge.
    sms_delivery::check_limits(app, &phone, &state.user, &request.source_ip).await?;

    let now = app.now();
    let code = generate_sms_code(app.random.as_ref());
    let hash = sms_code_hash(app, &challenge.challenge_id, &code);
    let update = Update::new()
        .append(challenge_attr::CODE_HASHES, vec![hash.into()])
        .add(challenge_attr::RESENDS, 1)
        .set(challenge_attr::LAST_SENT_AT, now);
    let condition = Condition::And(vec![
        is_open(),
        Condition::less_than(challenge_attr::ATTEMPTS, MAX_ATTEMPTS),
        Condition::less_than(challenge_attr::RESENDS, MAX_RESENDS),
        Condition::less_than(challenge_attr::LAST_SENT_AT, now - RESEND_INTERVAL_SECONDS + 1),
    ]);
    let write = Write::Update {
        key: Challenge::key(&challenge.challenge_id),
        update,
        condition: Some(condition),
    };
    match app.store.write(write).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed { .. }) => {
            return Err(explain_refused_resend(app, &challenge.challenge_id).await)
        }
        Err(error) => return Err(error.into()),
    }

    let sent = sms_delivery::send_code(app, &phone, &state.user, &request.source_ip, &code, SmsPurpose::Login).await;
    if let Err(error) = sent {
        allow_immediate_resend(app, &challenge, now).await;
        return Err(error);
    }
    tracing::info!(
        outcome = "resent",
        resends = challenge.resends + 1,
        "login SMS code resent"
    );
    Ok(challenge_response(&challenge, Some(phone.masked())))
}

/// Restores the send time of a resend whose SMS was not sent, so the user can retry without
/// waiting [`RESEND_INTERVAL_SECONDS`]. The resend stays counted and its code hash stays, because
/// an SMS that failed with an error may still arrive. So a challenge never contains more than
/// `1 + MAX_RESENDS` codes. The update applies only while no later resend happened, and a failure
/// is logged.
async fn allow_immediate_resend(app: &App, challenge: &Challenge, sent_at: i64) {
    let write = Write::Update {
        key: Challenge::key(&challenge.challenge_id),
        update: Update::new().set(challenge_attr::LAST_SENT_AT, challenge.last_sent_at),
        condition: Some(Condition::And(vec![
            is_open(),
            Condition::equals(challenge_attr::LAST_SENT_AT, sent_at),
        ])),
    };
    if let Err(error) = app.store.write(write).await {
        tracing::warn!(error = %error, "send time of a failed resend not restored");
    }
}

/// Explains why the conditional resend update failed, from the challenge as it is now.
async fn explain_refused_resend(app: &App, challenge_id: &str) -> AppError {
    let now = app.now();
    let challenge = match load_open(app, challenge_id).await {
        Ok(challenge) => challenge,
        Err(error) => return error,
    };
    if challenge.resends >= MAX_RESENDS {
        return AppError::RateLimited {
            retry_after: challenge.expires_at - now,
            message: format!(
                "at most {MAX_RESENDS} codes can be resent for one login; log in again after the challenge expires"
            ),
        };
    }
    let next_send = challenge.last_sent_at + RESEND_INTERVAL_SECONDS;
    if next_send > now {
        return AppError::RateLimited {
            retry_after: next_send - now,
            message: format!("a new code can be sent {RESEND_INTERVAL_SECONDS} seconds after the last one"),
        };
    }
    AppError::from(StoreError::TransactionConflict)
}

/// `POST /login/sms/verify`: completes an SMS challenge with a code and returns a full session.
pub async fn verify_sms(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    verify(app, request, Method::Sms).await
}

/// `POST /login/otp/verify`: completes a TOTP challenge with a code and returns a full session.
pub async fn verify_otp(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    verify(app, request, Method::Totp).await
}

async fn verify(app: &App, request: &ApiRequest, method: Method) -> Result<ApiResponse, AppError> {
    let span = tracing::info_span!(
        "verify_challenge",
        method = method.as_str(),
        user_id = tracing::field::Empty
    );
    verify_in_span(app, request, method).instrument(span).await
}

async fn verify_in_span(app: &App, request: &ApiRequest, method: Method) -> Result<ApiResponse, AppError> {
    let body: VerifyRequest = request.json()?;
    validate_challenge_id(&body.challenge_id)?;
    let challenge = load_open(app, &body.challenge_id).await?;
    if challenge.method != method {
        let message = format!(
            "the challenge uses {}; verify it at /login/{}/verify",
            challenge.method.as_str(),
            route_segment(challenge.method)
        );
        return Err(AppError::invalid_field("challenge_id", message));
    }

    let state = users::load(app, &challenge.user_id)
        .await?
        .ok_or(AppError::ChallengeExpired)?;
    tracing::Span::current().record("user_id", state.user.user_id.as_str());
    // A code sent to a number that was deleted or replaced since the challenge started must not
    // log in, because the user may have removed that number as lost or stolen.
    if method == Method::Sms && active_number_of_challenge(&state, &challenge).is_none() {
        return Err(AppError::ChallengeExpired);
    }
    let attempt = Attempt {
        app,
        request,
        state: &state,
        method,
    };
    if let Err(locked) = lockout::check(&state.user, Counter::SecondFactor, app.now()) {
        attempt.audit("locked", None).await?;
        tracing::info!(
            outcome = "locked",
            reason = "second_factor_locked",
            "second-factor attempt rejected"
        );
        return Err(locked);
    }
    let place = rate_limit::reserve(
        app,
        CODE_FAILURE_SCOPE,
        &request.source_ip,
        CODE_FAILURE_LIMIT_PER_IP,
        CODE_FAILURE_WINDOW_SECONDS,
    )
    .await?;

    let outcome = check_code(&attempt, &challenge, &body.code).await;
    // A store failure may have hidden a wrong code whose failure could not be recorded, so it
    // keeps the place like a wrong code does.
    let keeps_place = matches!(
        outcome,
        Err(AppError::InvalidCode { .. } | AppError::ServiceUnavailable { .. } | AppError::Internal(_))
    );
    if !keeps_place {
        rate_limit::release(
            app,
            CODE_FAILURE_SCOPE,
            &request.source_ip,
            place,
            CODE_FAILURE_WINDOW_SECONDS,
        )
        .await;
    }
    outcome
}

/// Counts the attempt on the challenge, then compares the code and completes the challenge when
/// it matches.
async fn check_code(attempt: &Attempt<'_>, challenge: &Challenge, code: &str) -> Result<ApiResponse, AppError> {
    let app = attempt.app;
    let challenge = count_attempt(app, &challenge.challenge_id).await?;
    let Ok(code) = SixDigitCode::parse(code) else {
        return Err(attempt.reject("malformed_code", Some("code")).await);
    };

    match attempt.method {
        Method::Sms => {
            if !matches_stored_hash(app, &challenge, &code) {
                return Err(attempt.reject("wrong_code", None).await);
            }
            attempt.complete(&challenge, None).await
        }
        Method::Totp => {
            let device = attempt.state.otp.as_ref().ok_or(AppError::ChallengeExpired)?;
            match verify_totp(app, attempt.user_id(), device, &code)? {
                Some(step) => attempt.complete(&challenge, Some((device, step))).await,
                None => Err(attempt.reject("wrong_code", None).await),
            }
        }
    }
}

/// Returns the phone number of an SMS challenge when it is still the user's active SMS number.
fn active_number_of_challenge<'a>(state: &UserState, challenge: &'a Challenge) -> Option<&'a str> {
    let challenge_phone = challenge.phone_e164.as_deref()?;
    let active = state.sms.as_ref()?;
    (active.phone_e164 == challenge_phone).then_some(challenge_phone)
}

/// Returns the audit event of a second-factor attempt with `method`.
pub fn audit_event(method: Method) -> &'static str {
    match method {
        Method::Sms => "login_sms",
        Method::Totp => "login_totp",
    }
}

fn route_segment(method: Method) -> &'static str {
    match method {
        Method::Sms => "sms",
        Method::Totp => "otp",
    }
}

/// Rejects a challenge id that no challenge can have, before it reaches the store.
fn validate_challenge_id(challenge_id: &str) -> Result<(), AppError> {
    let is_valid = !challenge_id.is_empty()
        && challenge_id.len() <= MAX_CHALLENGE_ID_LENGTH
        && challenge_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if is_valid {
        Ok(())
    } else {
        Err(AppError::invalid_field(
            "challenge_id",
            "challenge_id is not a valid challenge id",
        ))
    }
}

fn is_open() -> Condition {
    Condition::And(vec![
        Condition::Exists,
        Condition::equals(challenge_attr::STATUS, "open"),
    ])
}

/// Reads a challenge that can still take a code: `challenge_expired` when it is unknown, expired
/// or done, and `too_many_attempts` when its attempts are used up.
async fn load_open(app: &App, challenge_id: &str) -> Result<Challenge, AppError> {
    let item = app
        .store
        .get(&Challenge::key(challenge_id))
        .await?
        .ok_or(AppError::ChallengeExpired)?;
    let challenge: Challenge = from_item(item)?;
    if challenge.status != ChallengeStatus::Open || challenge.expires_at <= app.now() {
        return Err(AppError::ChallengeExpired);
    }
    if challenge.attempts >= MAX_ATTEMPTS {
        return Err(AppError::TooManyAttempts { retry_after: None });
    }
    Ok(challenge)
}

/// Counts one attempt on an open challenge and returns the challenge as it is afterwards.
async fn count_attempt(app: &App, challenge_id: &str) -> Result<Challenge, AppError> {
    let condition = Condition::And(vec![
        is_open(),
        Condition::less_than(challenge_attr::ATTEMPTS, MAX_ATTEMPTS),
    ]);
    let update = Update::new().add(challenge_attr::ATTEMPTS, 1);
    match app
        .store
        .update_returning(&Challenge::key(challenge_id), update, Some(condition))
        .await
    {
        Ok(item) => Ok(from_item(item)?),
        Err(StoreError::ConditionFailed { .. }) => match load_open(app, challenge_id).await {
            Err(error) => Err(error),
            Ok(_) => Err(AppError::from(StoreError::TransactionConflict)),
        },
        Err(error) => Err(error.into()),
    }
}

/// Compares a code with every code hash of the challenge in constant time, without stopping at a
/// match, so the time taken does not tell which code matched.
fn matches_stored_hash(app: &App, challenge: &Challenge, code: &SixDigitCode) -> bool {
    let typed = sms_code_hash(app, &challenge.challenge_id, code);
    challenge.code_hashes.iter().fold(false, |is_match, stored| {
        crypto::hashes_equal(stored, &typed) | is_match
    })
}

/// Checks a TOTP code against the device's secret, parameters and last accepted time step, and
/// returns the time step it matched.
fn verify_totp(app: &App, user_id: &str, device: &OtpDevice, code: &SixDigitCode) -> Result<Option<u64>, AppError> {
    let secret = app
        .keys
        .open(&device.sealed_secret, user_id.as_bytes())
        .map_err(|error| {
            AppError::Internal(format!(
                "the OTP device secret of user {user_id} does not open: {error}"
            ))
        })?;
    if secret.len() < totp::MIN_SECRET_BYTES {
        tracing::warn!(reason = "short_totp_secret", "OTP device secret is too short to verify");
        return Err(AppError::FactorRequired(
            "the OTP device uses an outdated key that can no longer be verified; ask an administrator to reset two-factor authentication and connect the device again".into(),
        ));
    }
    let last_step = device.last_step.and_then(|step| u64::try_from(step).ok());
    Ok(totp::verify_code(&secret, &device.params, code, app.now(), last_step))
}

/// One second-factor attempt of a user, with what its outcomes need.
struct Attempt<'a> {
    app: &'a App,
    request: &'a ApiRequest,
    state: &'a UserState,
    method: Method,
}

impl Attempt<'_> {
    fn user_id(&self) -> &str {
        &self.state.user.user_id
    }

    fn audit_entry<'e>(&'e self, outcome: &'e str, detail: Option<&'e str>) -> AuditEntry<'e> {
        let event = audit_event(self.method);
        AuditEntry {
            event,
            outcome,
            method: Some(self.method),
            source_ip: &self.request.source_ip,
            detail,
        }
    }

    async fn audit(&self, outcome: &str, detail: Option<&str>) -> Result<(), AppError> {
        audit::put(self.app, self.user_id(), self.audit_entry(outcome, detail)).await
    }

    /// Records a failed attempt against the user's lockout, audits it, and returns
    /// `invalid_code`, or the store error that kept the failure from being recorded.
    async fn reject(&self, reason: &'static str, field: Option<&str>) -> AppError {
        match self.record_failure(reason).await {
            Ok(()) => AppError::InvalidCode {
                field: field.map(str::to_owned),
            },
            Err(error) => error,
        }
    }

    async fn record_failure(&self, reason: &'static str) -> Result<(), AppError> {
        let failure = lockout::record_failure(self.app, self.user_id(), Counter::SecondFactor).await?;
        self.audit("failure", Some(reason)).await?;
        tracing::info!(
            outcome = "failure",
            reason,
            failures = failure.failures,
            is_locked = failure.locked_until > 0,
            "second-factor attempt rejected"
        );
        Ok(())
    }

    /// Completes the challenge in one transaction: the challenge moves to `done`, a TOTP device
    /// records the accepted time step, the user's failure count resets, a full session is stored
    /// and the success is audited.
    async fn complete(
        &self,
        challenge: &Challenge,
        totp_step: Option<(&OtpDevice, u64)>,
    ) -> Result<ApiResponse, AppError> {
        let app = self.app;
        let user = &self.state.user;
        let mut writes = vec![Write::Update {
            key: Challenge::key(&challenge.challenge_id),
            update: Update::new().set(challenge_attr::STATUS, "done"),
            condition: Some(is_open()),
        }];
        // Index 1 is the factor's condition: the TOTP device's time step, or the SMS number the
        // code went to, so a change of the factor that commits first ends this login.
        if totp_step.is_none() {
            let phone = active_number_of_challenge(self.state, challenge).ok_or(AppError::ChallengeExpired)?;
            writes.push(Write::Check {
                key: SmsFactor::key(&user.user_id),
                condition: Condition::And(vec![Condition::Exists, Condition::equals("phone_e164", phone)]),
            });
        }
        if let Some((device, step)) = totp_step {
            let step = i64::try_from(step).map_err(|_| AppError::Internal("TOTP time step out of range".into()))?;
            writes.push(Write::Update {
                key: OtpDevice::key(&user.user_id),
                update: Update::new().set("last_step", step),
                condition: Some(Condition::And(vec![
                    Condition::Exists,
                    Condition::equals("device_id", device.device_id.as_str()),
                    Condition::absent_or_less_than("last_step", step),
                ])),
            });
        }
        writes.push(lockout::reset_write(&user.user_id, Counter::SecondFactor));
        let issued = sessions::issue(app, &user.user_id, SessionKind::Full, user.session_epoch)?;
        writes.push(issued.write.clone());
        writes.push(audit::record(app, &user.user_id, self.audit_entry("success", None))?);

        match app.store.transact(writes).await {
            Ok(()) => {
                tracing::info!(outcome = "success", "second factor accepted; session issued");
                Ok(ApiResponse::json(200, &issued.body()))
            }
            Err(StoreError::ConditionFailed { index: Some(0) }) => Err(AppError::ChallengeExpired),
            Err(StoreError::ConditionFailed { index: Some(1) }) if totp_step.is_some() => {
                Err(self.reject("replayed_code", None).await)
            }
            Err(StoreError::ConditionFailed { index: Some(1) }) => Err(AppError::ChallengeExpired),
            Err(error @ (StoreError::ConditionFailed { .. } | StoreError::TransactionConflict)) => {
                Err(self.explain_lost_race(challenge, error, totp_step.is_some()).await)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Explains a failed completion that the store did not attribute to one write.
    async fn explain_lost_race(&self, challenge: &Challenge, error: StoreError, is_totp: bool) -> AppError {
        match load_open(self.app, &challenge.challenge_id).await {
            Err(AppError::TooManyAttempts { .. }) | Ok(_) if is_totp && error.is_condition_failed() => {
                self.reject("replayed_code", None).await
            }
            Err(AppError::TooManyAttempts { .. }) | Ok(_) => error.into(),
            Err(closed) => closed,
        }
    }
}
