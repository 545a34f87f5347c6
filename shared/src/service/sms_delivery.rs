//! Sending SMS codes: country allow-list, sending limits, the text template and the SNS call.
//!
//! Every SMS of the service goes through [`send_code`], so the limits below hold for login codes
//! and number verification codes together:
//! - per phone number: 5 per 10 minutes;
//! - per user: 10 per hour;
//! - per source IP (from the API Gateway request context): 30 per hour.
//!
//! The number is an E.164 [`PhoneNumber`] parsed by the phone policy, so every way of typing one
//! number shares one budget.

use super::{rate_limit, App};
use crate::code::SixDigitCode;
use crate::error::AppError;
use crate::model::User;
use crate::phone::PhoneNumber;
use crate::ports::{SendError, Sms};
use crate::templates;

/// The reason a code is sent, which selects the text template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsPurpose {
    Login,
    NumberVerification,
}

/// A limit on SMS sends: at most `limit` per `window_seconds` for one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimit {
    /// The rate limit scope in the store key.
    pub scope: &'static str,
    pub limit: usize,
    pub window_seconds: i64,
}

/// SMS per phone number.
pub const PER_NUMBER: SendLimit = SendLimit {
    scope: "sms-number",
    limit: 5,
    window_seconds: 10 * 60,
};
/// SMS per user.
pub const PER_USER: SendLimit = SendLimit {
    scope: "sms-user",
    limit: 10,
    window_seconds: 60 * 60,
};
/// SMS per source IP.
pub const PER_SOURCE_IP: SendLimit = SendLimit {
    scope: "sms-ip",
    limit: 30,
    window_seconds: 60 * 60,
};

/// Returns each limit with its subject for one send.
fn limits<'a>(phone: &'a PhoneNumber, user: &'a User, source_ip: &'a str) -> [(SendLimit, &'a str); 3] {
    [
        (PER_NUMBER, phone.as_e164()),
        (PER_USER, user.user_id.as_str()),
        (PER_SOURCE_IP, source_ip),
    ]
}

/// Checks the allow-list and every sending limit without using up any of them, so a route can
/// refuse a request before it changes anything.
pub async fn check_limits(app: &App, phone: &PhoneNumber, user: &User, source_ip: &str) -> Result<(), AppError> {
    app.phone_policy
        .check_allowed(phone)
        .map_err(|error| AppError::invalid_field("phone", error.to_string()))?;
    for (limit, subject) in limits(phone, user, source_ip) {
        rate_limit::check(app, limit.scope, subject, limit.limit, limit.window_seconds).await?;
    }
    Ok(())
}

/// Checks the allow-list and the limits per number, user and source IP, then sends the code.
///
/// Errors:
/// - `invalid_request` on field `phone` for a country outside the allow-list or a number that SNS
///   rejects;
/// - `rate_limited` with `Retry-After` when a limit is reached;
/// - `service_unavailable` when the store or SNS fails.
pub async fn send_code(
    app: &App,
    phone: &PhoneNumber,
    user: &User,
    source_ip: &str,
    code: &SixDigitCode,
    purpose: SmsPurpose,
) -> Result<(), AppError> {
    check_limits(app, phone, user, source_ip).await?;
    for (limit, subject) in limits(phone, user, source_ip) {
        rate_limit::check_and_record(app, limit.scope, subject, limit.limit, limit.window_seconds)
            .await
            .inspect_err(
                |_| tracing::info!(user_id = %user.user_id, limit = limit.scope, "SMS send rejected by a rate limit"),
            )?;
    }

    let service_name = &app.config.otp_issuer;
    let text = match purpose {
        SmsPurpose::Login => templates::sms::login_code(user.language, service_name, code),
        SmsPurpose::NumberVerification => templates::sms::number_verification_code(user.language, service_name, code),
    };
    let sms = Sms {
        phone_e164: phone.as_e164().to_owned(),
        text,
    };

    match app.sms.send(&sms).await {
        Ok(()) => {
            tracing::info!(user_id = %user.user_id, phone = %phone.masked(), purpose = ?purpose, "SMS code sent");
            Ok(())
        }
        Err(SendError::Permanent(reason)) => {
            tracing::warn!(user_id = %user.user_id, phone = %phone.masked(), reason = %reason, "SMS rejected as undeliverable");
            Err(AppError::invalid_field(
                "phone",
                "the SMS provider rejected this phone number; check it or use another one",
            ))
        }
        Err(SendError::Temporary(reason)) => {
            tracing::warn!(user_id = %user.user_id, phone = %phone.masked(), reason = %reason, "SMS send failed");
            Err(AppError::unavailable(format!("SMS send failed: {reason}")))
        }
    }
}
