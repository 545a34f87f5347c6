//! The one error type of the service and its mapping to an HTTP response.
//!
//! Expected failures (bad input, wrong code, a lockout) are values of [`AppError`] that handlers
//! return as `Ok(response)`, so API Gateway never turns a client's mistake into a 502. Bodies are
//! `{"error": "<code>", "message": "<sentence>"}` plus `"field"` when one input is at fault; 5xx
//! bodies carry no details.

use serde::Serialize;

use crate::store::StoreError;

/// Every error a route can return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    InvalidRequest { field: Option<String>, message: String },
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("missing or invalid session")]
    Unauthorized,
    #[error("invalid code")]
    InvalidCode { field: Option<String> },
    #[error("the challenge has expired or is complete")]
    ChallengeExpired,
    #[error("too many attempts")]
    TooManyAttempts { retry_after: Option<i64> },
    #[error("{message}")]
    RateLimited { retry_after: i64, message: String },
    #[error("a login within the last 5 minutes is required")]
    ReauthenticationRequired,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    FactorRequired(String),
    #[error("two-factor authentication is mandatory for the main account")]
    TwoFactorMandatory,
    #[error("service unavailable: {reason}")]
    ServiceUnavailable { retry_after: i64, reason: String },
    /// A bug or an unexpected state; the reason goes to the log, never to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of an error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl AppError {
    /// Builds an `invalid_request` error naming the field at fault.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        AppError::InvalidRequest {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// Builds an `invalid_request` error about the request as a whole.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        AppError::InvalidRequest {
            field: None,
            message: message.into(),
        }
    }

    /// Builds a `service_unavailable` error with the default retry delay.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        AppError::ServiceUnavailable {
            retry_after: 5,
            reason: reason.into(),
        }
    }

    /// Returns the HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            AppError::InvalidRequest { .. } => 400,
            AppError::InvalidCredentials | AppError::Unauthorized | AppError::InvalidCode { .. } => 401,
            AppError::ReauthenticationRequired | AppError::Forbidden(_) => 403,
            AppError::NotFound(_) => 404,
            AppError::Conflict(_) | AppError::FactorRequired(_) | AppError::TwoFactorMandatory => 409,
            AppError::ChallengeExpired => 410,
            AppError::TooManyAttempts { .. } | AppError::RateLimited { .. } => 429,
            AppError::Internal(_) => 500,
            AppError::ServiceUnavailable { .. } => 503,
        }
    }

    /// Returns the snake_case error code of the body.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::InvalidRequest { .. } => "invalid_request",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::Unauthorized => "unauthorized",
            AppError::InvalidCode { .. } => "invalid_code",
            AppError::ChallengeExpired => "challenge_expired",
            AppError::TooManyAttempts { .. } => "too_many_attempts",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::ReauthenticationRequired => "reauthentication_required",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::FactorRequired(_) => "factor_required",
            AppError::TwoFactorMandatory => "two_factor_mandatory",
            AppError::ServiceUnavailable { .. } => "service_unavailable",
            AppError::Internal(_) => "internal_error",
        }
    }

    /// Returns the value of the `Retry-After` header, in seconds, if the error has one.
    pub fn retry_after(&self) -> Option<i64> {
        match self {
            AppError::TooManyAttempts { retry_after } => *retry_after,
            AppError::RateLimited { retry_after, .. } | AppError::ServiceUnavailable { retry_after, .. } => {
                Some((*retry_after).max(1))
            }
            _ => None,
        }
    }

    /// Returns the body sent to the client. Server errors carry no details.
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            AppError::Internal(_) => "Internal error.".to_owned(),
            AppError::ServiceUnavailable { .. } => {
                "The service is temporarily unavailable. Try again later.".to_owned()
            }
            other => sentence(&other.to_string()),
        };
        let field = match self {
            AppError::InvalidRequest { field, .. } | AppError::InvalidCode { field } => field.clone(),
            _ => None,
        };
        ErrorBody {
            error: self.code().to_owned(),
            message,
            field,
        }
    }
}

/// Capitalises the first letter and ends the text with a full stop.
fn sentence(text: &str) -> String {
    let mut characters = text.chars();
    let mut result: String = match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    };
    if !result.ends_with('.') {
        result.push('.');
    }
    result
}

impl From<StoreError> for AppError {
    /// Maps store failures: a store that cannot be reached denies the request with 503 and never
    /// fails open. A condition failure that reaches this point is a lost race, so 409.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ConditionFailed { .. } | StoreError::TransactionConflict => {
                AppError::Conflict("the request conflicted with a concurrent change; retry it".into())
            }
            StoreError::Unavailable(reason) => AppError::unavailable(reason),
            StoreError::Invalid(reason) => AppError::Internal(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_error_body_has_no_details() {
        let body = AppError::Internal("table missing: secret detail".into()).body();
        assert_eq!(body.error, "internal_error");
        assert_eq!(body.message, "Internal error.");
        assert!(!serde_json::to_string(&body).unwrap_or_default().contains("secret"));
    }

    #[test]
    fn invalid_field_names_the_field() {
        let body = AppError::invalid_field("code", "code must be 6 digits").body();
        assert_eq!(body.field.as_deref(), Some("code"));
        assert_eq!(body.message, "Code must be 6 digits.");
        assert_eq!(AppError::invalid_field("code", "x").status(), 400);
    }

    #[test]
    fn rate_limited_has_retry_after() {
        let error = AppError::RateLimited {
            retry_after: 0,
            message: "too many".into(),
        };
        assert_eq!(error.status(), 429);
        assert_eq!(error.retry_after(), Some(1));
    }

    #[test]
    fn store_unavailable_maps_to_503() {
        let error = AppError::from(StoreError::Unavailable("throttled".into()));
        assert_eq!(error.status(), 503);
        assert_eq!(error.retry_after(), Some(5));
        assert_eq!(
            AppError::from(StoreError::ConditionFailed { index: None }).status(),
            409
        );
    }
}
