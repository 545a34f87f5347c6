//! The OTP-app factor: connect a device, activate it, disable it.
//!
//! States of a user's OTP factor:
//! - `POST /security/otp/device` stores a pending device with a new sealed secret, replacing any
//!   earlier pending one. The active device, if any, keeps working. The response carries the secret
//!   (QR code, `otpauth` URI, backup key) once; the pending device expires after
//!   [`PENDING_DEVICE_SECONDS`].
//! - `POST /security/otp/device/verify` with a correct code moves the pending device into the active
//!   slot, replacing an older active device, and stores the code's time step as used. Wrong codes are
//!   counted on the pending device, and the pending device is deleted after
//!   [`MAX_ACTIVATION_ATTEMPTS`] of them.
//! - `DELETE /security/otp/device` deletes the active and the pending device, unless the active
//!   device is the main account's last factor.
//!
//! No route returns the secret or the backup key of an active device. The store contains the
//! secret only sealed with AES-256-GCM, with the user id as associated data.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit::{self, AuditEntry};
use super::change::{Change, ChangeError};
use super::sessions::{self, Access, Authenticated};
use super::App;
use crate::code::SixDigitCode;
use crate::error::AppError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::{user_attr, Method, NotificationEvent, OtpDevice, PendingOtpDevice, SessionKind};
use crate::qr;
use crate::secret::SecretBytes;
use crate::store::{to_item, Condition, StoreError, Update, Write};
use crate::totp::{self, TotpParams};

/// Lifetime of a pending device, in seconds.
pub const PENDING_DEVICE_SECONDS: i64 = 10 * 60;

/// Wrong activation codes after which the pending device is deleted.
pub const MAX_ACTIVATION_ATTEMPTS: i64 = 5;

/// Attribute of [`PendingOtpDevice`] that counts wrong activation codes.
const ATTEMPTS: &str = "attempts";

/// Attribute of [`PendingOtpDevice`] and [`OtpDevice`] that identifies the device.
const DEVICE_ID: &str = "device_id";

/// The message of the `not_found` error when no pending device can be activated.
const NO_PENDING_DEVICE: &str =
    "no OTP device is waiting for activation, or it expired after 10 minutes; connect the device again";

/// The response of `POST /security/otp/device`. It contains the secret, so it is never logged.
#[derive(Serialize)]
struct ConnectBody {
    otpauth_uri: String,
    qr_png_base64: String,
    qr_svg: String,
    backup_key: String,
    backup_key_grouped: String,
    expires_at: i64,
    device_id: String,
}

#[derive(Deserialize)]
struct VerifyRequest {
    code: String,
}

/// `POST /security/otp/device`: creates a pending device with a new secret and returns the secret
/// as a QR code, an `otpauth` URI and a backup key.
pub async fn connect_device(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let auth = sessions::authenticate(app, request, Access::FreshOrEnrollment).await?;
    require_two_factor_on(&auth)?;
    let user = &auth.state.user;
    let now = app.now();

    let secret = totp::new_secret(app.random.as_ref());
    let params = TotpParams::issued();
    let sealed_secret = app
        .keys
        .seal(secret.expose(), user.user_id.as_bytes(), app.random.as_ref())
        .map_err(|error| {
            AppError::Internal(format!(
                "sealing the OTP secret of user {} failed: {error}",
                user.user_id
            ))
        })?;
    let pending = PendingOtpDevice {
        device_id: app.new_id(),
        sealed_secret,
        params,
        created_at: now,
        expires_at: now + PENDING_DEVICE_SECONDS,
        attempts: 0,
    };

    let otpauth_uri = totp::otpauth_uri(&app.config.otp_issuer, &user.username, &secret, &params);
    let body = ConnectBody {
        qr_png_base64: qr::render_png_base64(&otpauth_uri).map_err(|error| AppError::Internal(error.to_string()))?,
        qr_svg: qr::render_svg(&otpauth_uri).map_err(|error| AppError::Internal(error.to_string()))?,
        otpauth_uri,
        backup_key: totp::format_backup_key(&secret),
        backup_key_grouped: totp::format_backup_key_grouped(&secret),
        expires_at: pending.expires_at,
        device_id: pending.device_id.clone(),
    };

    let entry = AuditEntry {
        event: "otp_device_connected",
        outcome: "success",
        method: Some(Method::Totp),
        source_ip: &request.source_ip,
        detail: None,
    };
    // One pending device per user: the put replaces an earlier pending device, never the active one.
    let writes = vec![
        Write::Put {
            item: to_item(&PendingOtpDevice::key(&user.user_id), &pending)?,
            condition: None,
        },
        audit::record(app, &user.user_id, entry)?,
    ];
    app.store.transact(writes).await?;

    tracing::info!(user_id = %user.user_id, device_id = %pending.device_id, "OTP device connected");
    Ok(ApiResponse::json(200, &body))
}

/// `POST /security/otp/device/verify`: activates the pending device with a code from it.
///
/// An enrollment session that activates its first factor this way is replaced by a full session.
pub async fn verify_device(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let auth = sessions::authenticate(app, request, Access::FreshOrEnrollment).await?;
    require_two_factor_on(&auth)?;
    let input: VerifyRequest = request.json()?;
    let user_id = auth.user_id().to_owned();
    let now = app.now();

    let pending = match &auth.state.otp_pending {
        Some(pending) if pending.expires_at > now => pending.clone(),
        _ => return Err(AppError::NotFound(NO_PENDING_DEVICE.into())),
    };
    if pending.attempts >= MAX_ACTIVATION_ATTEMPTS {
        delete_pending(app, &user_id, &pending.device_id).await?;
        return Err(AppError::NotFound(NO_PENDING_DEVICE.into()));
    }

    let secret = open_secret(app, &user_id, &pending.sealed_secret)?;
    // A malformed code is a wrong code: it counts as an attempt like any other.
    let accepted_step = SixDigitCode::parse(&input.code)
        .ok()
        .and_then(|code| totp::verify_code(&secret, &pending.params, &code, now, None));
    let Some(step) = accepted_step else {
        count_wrong_code(app, &user_id, &pending.device_id).await?;
        tracing::info!(user_id = %user_id, device_id = %pending.device_id, reason = "wrong_code", "OTP device activation rejected");
        return Err(AppError::InvalidCode {
            field: Some("code".into()),
        });
    };

    activate(app, &auth, request, &pending, step).await
}

/// Commits the activation of `pending`, whose code of time step `step` was correct.
async fn activate(
    app: &App,
    auth: &Authenticated,
    request: &ApiRequest,
    pending: &PendingOtpDevice,
    step: u64,
) -> Result<ApiResponse, AppError> {
    let user_id = auth.user_id();
    let last_step = i64::try_from(step).map_err(|_| AppError::Internal("TOTP time step exceeds i64".into()))?;
    let device = OtpDevice {
        device_id: pending.device_id.clone(),
        sealed_secret: pending.sealed_secret.clone(),
        params: pending.params,
        activated_at: app.now(),
        last_step: Some(last_step),
    };

    // The delete claims the pending device: if it was activated or replaced since this request
    // read it, nothing commits. Of parallel activations, the losers fail here or on the session
    // epoch condition of `Change`, and get 409. The attempt limit is checked again, because wrong
    // codes may have been counted after this request read the pending device.
    let claim_pending = Condition::And(vec![
        Condition::equals(DEVICE_ID, pending.device_id.as_str()),
        Condition::absent_or_less_than(ATTEMPTS, MAX_ACTIVATION_ATTEMPTS),
    ]);
    let mut change = Change::new(app, auth, &request.source_ip, "otp_device_activated")
        .write(Write::Put {
            item: to_item(&OtpDevice::key(user_id), &device)?,
            condition: None,
        })
        .write(Write::Delete {
            key: PendingOtpDevice::key(user_id),
            condition: Some(claim_pending),
        })
        .method(Method::Totp)
        .notify(NotificationEvent::OtpDeviceActivated, None);
    if auth.state.login_method().is_none() {
        change = change.user_update(Update::new().set(user_attr::LOGIN_METHOD, Method::Totp.as_str()));
    }
    if auth.is_enrollment() {
        change = change.issue_session(SessionKind::Full);
    }

    let issued = change.commit().await.map_err(|error| {
        error.into_app_error(|_| {
            AppError::Conflict(
                "the OTP device was activated, replaced or locked by another request; reload the security settings"
                    .into(),
            )
        })
    })?;

    tracing::info!(user_id = %user_id, device_id = %device.device_id, "OTP device activated");
    match issued {
        Some(session) => Ok(ApiResponse::json(200, &session.body())),
        None => Ok(ApiResponse::json(
            200,
            &serde_json::json!({"status": "ok", "otp": {"status": "active"}}),
        )),
    }
}

/// `DELETE /security/otp/device`: disables verification with the OTP app.
///
/// Deletes the active device and any pending one. The main account cannot delete its last active
/// factor. With only a pending device, that device is deleted without a notification, because
/// nothing that protects the login changes.
pub async fn delete_device(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let auth = sessions::authenticate(app, request, Access::Fresh).await?;
    let state = &auth.state;
    let user_id = auth.user_id();

    let Some(device) = &state.otp else {
        return match &state.otp_pending {
            Some(pending) => cancel_pending(app, request, user_id, &pending.device_id).await,
            None => Err(AppError::NotFound("no OTP device is connected".into())),
        };
    };
    if state.is_last_factor_of_main_account(Method::Totp) {
        return Err(AppError::FactorRequired(
            "the OTP app is the main account's only second factor; add and verify a phone number before disabling it"
                .into(),
        ));
    }

    let login_method = if state.sms.is_some() {
        Update::new().set(user_attr::LOGIN_METHOD, Method::Sms.as_str())
    } else {
        Update::new().remove(user_attr::LOGIN_METHOD)
    };
    Change::new(app, &auth, &request.source_ip, "otp_device_disabled")
        .write(Write::Delete {
            key: OtpDevice::key(user_id),
            condition: Some(Condition::equals(DEVICE_ID, device.device_id.as_str())),
        })
        .write(Write::Delete {
            key: PendingOtpDevice::key(user_id),
            condition: None,
        })
        .user_update(login_method)
        .method(Method::Totp)
        .notify(NotificationEvent::OtpDeviceDisabled, None)
        .commit()
        .await
        .map_err(|error: ChangeError| {
            error.into_app_error(|_| {
                AppError::Conflict("the OTP device changed at the same time; reload the security settings".into())
            })
        })?;

    tracing::info!(user_id = %user_id, device_id = %device.device_id, "OTP device disabled");
    Ok(ApiResponse::json(
        200,
        &serde_json::json!({"status": "ok", "otp": {"status": "none"}}),
    ))
}

/// Deletes a pending device that was never activated, and records that in the audit log.
async fn cancel_pending(
    app: &App,
    request: &ApiRequest,
    user_id: &str,
    device_id: &str,
) -> Result<ApiResponse, AppError> {
    let entry = AuditEntry {
        event: "otp_device_cancelled",
        outcome: "success",
        method: Some(Method::Totp),
        source_ip: &request.source_ip,
        detail: None,
    };
    let writes = vec![
        Write::Delete {
            key: PendingOtpDevice::key(user_id),
            condition: Some(Condition::equals(DEVICE_ID, device_id)),
        },
        audit::record(app, user_id, entry)?,
    ];
    match app.store.transact(writes).await {
        Ok(()) | Err(StoreError::ConditionFailed { index: Some(0) }) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(ApiResponse::json(
        200,
        &serde_json::json!({"status": "ok", "otp": {"status": "none"}}),
    ))
}

/// Opens a sealed device secret. A failure means a wrong key or a damaged item, never user input.
/// Rejects a sub-account with 2FA off: a device it activated would never be asked for at login.
fn require_two_factor_on(auth: &Authenticated) -> Result<(), AppError> {
    if auth.state.is_two_factor_required() {
        Ok(())
    } else {
        Err(AppError::Conflict(
            "two-factor authentication is off for this user; switch it on first".into(),
        ))
    }
}

fn open_secret(app: &App, user_id: &str, sealed: &str) -> Result<SecretBytes, AppError> {
    app.keys
        .open(sealed, user_id.as_bytes())
        .map_err(|error| AppError::Internal(format!("cannot open the sealed OTP secret of user {user_id}: {error}")))
}

/// Counts a wrong activation code with an atomic add, and deletes the pending device once the
/// count reaches [`MAX_ACTIVATION_ATTEMPTS`]. A pending device that was replaced or deleted in the
/// meantime is left alone.
async fn count_wrong_code(app: &App, user_id: &str, device_id: &str) -> Result<(), AppError> {
    let key = PendingOtpDevice::key(user_id);
    let same_device = Condition::And(vec![Condition::Exists, Condition::equals(DEVICE_ID, device_id)]);
    let item = match app
        .store
        .update_returning(&key, Update::new().add(ATTEMPTS, 1), Some(same_device))
        .await
    {
        Ok(item) => item,
        Err(StoreError::ConditionFailed { .. }) => {
            tracing::info!(user_id = %user_id, device_id = %device_id, "wrong code not counted: the pending OTP device was replaced or deleted");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };

    let attempts = item.get(ATTEMPTS).and_then(Value::as_i64).unwrap_or(0);
    if attempts >= MAX_ACTIVATION_ATTEMPTS {
        delete_pending(app, user_id, device_id).await?;
        tracing::info!(user_id = %user_id, device_id = %device_id, attempts, "pending OTP device deleted after too many wrong codes");
    }
    Ok(())
}

/// Deletes the pending device `device_id`, if it is still the user's pending device.
async fn delete_pending(app: &App, user_id: &str, device_id: &str) -> Result<(), AppError> {
    let write = Write::Delete {
        key: PendingOtpDevice::key(user_id),
        condition: Some(Condition::equals(DEVICE_ID, device_id)),
    };
    match app.store.write(write).await {
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}
