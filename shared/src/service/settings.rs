//! Security settings and the Security contact.
//!
//! Reading needs a full session. Every change needs a fresh one and commits through
//! [`Change`], so it revokes the user's other sessions, is audited and is notified by email in
//! the same transaction. A request that would change nothing returns 200 and writes nothing.

use serde::{Deserialize, Serialize};

use super::change::{Change, ChangeError};
use super::security_contact::{self, ContactInput};
use super::sessions::{self, Access, Authenticated};
use super::App;
use crate::error::AppError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::{
    user_attr, Language, Method, NotificationEvent, OtpDevice, PendingOtpDevice, PendingSmsFactor, Recipient,
    SecurityContact, SmsFactor,
};
use crate::phone::mask_e164;
use crate::store::{Condition, Update, Write};

/// The body of `GET /security`.
#[derive(Debug, Serialize)]
struct SecurityBody<'a> {
    username: &'a str,
    is_main_account: bool,
    two_factor_enabled: bool,
    login_method: Option<Method>,
    sms: Option<SmsStatus>,
    otp: Option<OtpStatus>,
}

/// The SMS factor as shown to its user: masked numbers only.
#[derive(Debug, Serialize)]
struct SmsStatus {
    /// `active` when a verified number exists, else `pending`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_masked: Option<String>,
    /// A number added but not yet verified; beside `phone_masked` it is a pending replacement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_phone_masked: Option<String>,
}

#[derive(Debug, Serialize)]
struct OtpStatus {
    /// `active` when a device is activated (a replacement may be pending), else `pending`.
    status: &'static str,
}

/// `GET /security`: the user's factors with masked numbers, login method and 2FA state.
pub async fn get_security(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let auth = sessions::authenticate(app, request, Access::Full).await?;
    let state = &auth.state;

    let sms = match (&state.sms, &state.sms_pending) {
        (None, None) => None,
        (active, pending) => Some(SmsStatus {
            status: if active.is_some() { "active" } else { "pending" },
            phone_masked: active.as_ref().map(|factor| mask_e164(&factor.phone_e164)),
            pending_phone_masked: pending.as_ref().map(|pending| mask_e164(&pending.phone_e164)),
        }),
    };
    let otp = match (&state.otp, &state.otp_pending) {
        (Some(_), _) => Some(OtpStatus { status: "active" }),
        (None, Some(_)) => Some(OtpStatus { status: "pending" }),
        (None, None) => None,
    };

    let body = SecurityBody {
        username: &state.user.username,
        is_main_account: state.user.is_main_account,
        two_factor_enabled: state.is_two_factor_required(),
        login_method: state.login_method(),
        sms,
        otp,
    };
    Ok(ApiResponse::json(200, &body))
}

#[derive(Debug, Deserialize)]
struct LoginMethodRequest {
    method: String,
}

#[derive(Debug, Serialize)]
struct LoginMethodBody {
    login_method: Method,
}

/// `PUT /security/method`: selects `sms` or `totp` among the user's active factors.
pub async fn put_login_method(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let auth = sessions::authenticate(app, request, Access::Fresh).await?;
    let body: LoginMethodRequest = request.json()?;
    let method = match body.method.trim() {
        "sms" => Method::Sms,
        "totp" => Method::Totp,
        _ => return Err(AppError::invalid_field("method", "method must be sms or totp")),
    };

    let not_active = || {
        AppError::Conflict(format!(
            "the {} factor is not active, so it cannot be the login method",
            factor_name(method)
        ))
    };
    if !auth.state.active_methods().contains(&method) {
        return Err(not_active());
    }
    if auth.state.user.login_method == Some(method) {
        return Ok(ApiResponse::json(200, &LoginMethodBody { login_method: method }));
    }

    // The check keeps the factor active until the commit, and the condition on the method read
    // keeps two concurrent changes from both reporting success on the same state.
    let factor_key = match method {
        Method::Sms => SmsFactor::key(auth.user_id()),
        Method::Totp => OtpDevice::key(auth.user_id()),
    };
    Change::new(app, &auth, &request.source_ip, "login_method_changed")
        .write(Write::Check {
            key: factor_key,
            condition: Condition::Exists,
        })
        .user_update(Update::new().set(user_attr::LOGIN_METHOD, method.as_str()))
        .method(method)
        .notify(NotificationEvent::LoginMethodChanged, Some(method.as_str().to_owned()))
        .commit()
        .await
        .map_err(|error| error.into_app_error(|_| not_active()))?;

    Ok(ApiResponse::json(200, &LoginMethodBody { login_method: method }))
}

fn factor_name(method: Method) -> &'static str {
    match method {
        Method::Sms => "SMS",
        Method::Totp => "OTP app",
    }
}

#[derive(Debug, Deserialize)]
struct TwoFactorRequest {
    enabled: bool,
}

#[derive(Debug, Serialize)]
struct TwoFactorBody {
    two_factor_enabled: bool,
}

/// `PUT /security/two-factor`: switches 2FA off or on for a sub-account.
///
/// Switching off removes every factor, pending ones included, and the login method. Switching on
/// adds no factor: the next login returns an enrollment session. The main account's 2FA is
/// mandatory, so disabling it is a 409; enabling it is already the state, so a 200.
pub async fn put_two_factor(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let auth = sessions::authenticate(app, request, Access::Fresh).await?;
    let body: TwoFactorRequest = request.json()?;
    let is_enabled = auth.state.is_two_factor_required();

    if auth.state.user.is_main_account && !body.enabled {
        return Err(AppError::TwoFactorMandatory);
    }
    if is_enabled == body.enabled {
        return Ok(ApiResponse::json(
            200,
            &TwoFactorBody {
                two_factor_enabled: is_enabled,
            },
        ));
    }

    let change = if body.enabled {
        enable_two_factor(app, &auth, request)
    } else {
        disable_two_factor(app, &auth, request)
    };
    change.commit().await.map_err(concurrent_change)?;
    Ok(ApiResponse::json(
        200,
        &TwoFactorBody {
            two_factor_enabled: body.enabled,
        },
    ))
}

fn disable_two_factor<'a>(app: &'a App, auth: &'a Authenticated, request: &'a ApiRequest) -> Change<'a> {
    let user_id = auth.user_id();
    let update = Update::new()
        .set(user_attr::TWO_FACTOR_ENABLED, false)
        .remove(user_attr::LOGIN_METHOD);
    let mut change = Change::new(app, auth, &request.source_ip, "two_factor_disabled")
        .user_update(update)
        .notify(NotificationEvent::TwoFactorDisabled, None);
    for key in [
        SmsFactor::key(user_id),
        PendingSmsFactor::key(user_id),
        OtpDevice::key(user_id),
        PendingOtpDevice::key(user_id),
    ] {
        change = change.write(Write::Delete { key, condition: None });
    }
    change
}

fn enable_two_factor<'a>(app: &'a App, auth: &'a Authenticated, request: &'a ApiRequest) -> Change<'a> {
    Change::new(app, auth, &request.source_ip, "two_factor_enabled")
        .user_update(Update::new().set(user_attr::TWO_FACTOR_ENABLED, true))
        .notify(NotificationEvent::TwoFactorEnabled, None)
}

/// Maps the error of a change whose own writes carry no condition that a client could fail, so
/// any condition failure is a concurrent change.
fn concurrent_change(error: ChangeError) -> AppError {
    error.into_app_error(|_| {
        AppError::Conflict("the security settings changed at the same time; reload them and retry".into())
    })
}

#[derive(Debug, Serialize)]
struct ContactBody<'a> {
    name: &'a str,
    email: &'a str,
    language: Language,
}

impl<'a> From<&'a SecurityContact> for ContactBody<'a> {
    fn from(contact: &'a SecurityContact) -> Self {
        Self {
            name: &contact.name,
            email: &contact.email,
            language: contact.language,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ContactRequest {
    name: String,
    email: String,
    language: String,
}

/// Rejects a sub-account: only the main account manages the Security contact.
fn require_main_account(auth: &Authenticated) -> Result<(), AppError> {
    if auth.state.user.is_main_account {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only the main account can manage the Security contact".into(),
        ))
    }
}

/// `GET /account/security-contact`: the holder of the Security competency, for the main account.
pub async fn get_security_contact(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let auth = sessions::authenticate(app, request, Access::Full).await?;
    require_main_account(&auth)?;
    let contact = security_contact::load(app, &auth.state.user.account_id)
        .await?
        .ok_or_else(|| AppError::NotFound("no Security contact is set for this account".into()))?;
    Ok(ApiResponse::json(200, &ContactBody::from(&contact)))
}

/// `PUT /account/security-contact`: sets or replaces the holder and notifies both the previous
/// and the new one. Of two concurrent replacements, one commits and the other gets 409.
pub async fn put_security_contact(app: &App, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    let auth = sessions::authenticate(app, request, Access::Fresh).await?;
    require_main_account(&auth)?;
    let body: ContactRequest = request.json()?;
    let language = security_contact::parse_language("language", &body.language)?;
    let input = ContactInput::new(&body.name, &body.email, language)?;
    let body = ContactBody {
        name: &input.name,
        email: &input.email,
        language: input.language,
    };

    let account_id = &auth.state.user.account_id;
    let previous = security_contact::load(app, account_id).await?;
    if previous.as_ref().is_some_and(|contact| input.matches(contact)) {
        return Ok(ApiResponse::json(200, &body));
    }

    let write = security_contact::replace_write(app, account_id, previous.as_ref(), &input)?;
    Change::new(app, &auth, &request.source_ip, "security_contact_changed")
        .write(write)
        .notify_contact_change(
            previous.as_ref().map(security_contact::recipient),
            Recipient {
                email: input.email.clone(),
                language: input.language,
            },
        )
        .commit()
        .await
        .map_err(|error| {
            error.into_app_error(|_| {
                AppError::Conflict("the Security contact changed at the same time; reload it and retry".into())
            })
        })?;

    Ok(ApiResponse::json(200, &body))
}
