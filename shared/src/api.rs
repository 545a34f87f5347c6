//! Dispatch of an [`ApiRequest`] to its route handler, and the one place where handler results
//! become responses and log lines.

use tracing::Instrument;

use crate::error::AppError;
use crate::http::ApiRequest;
use crate::http::ApiResponse;
use crate::routes::{match_route, Function, Route, RouteMatch};
use crate::service::{challenge, login, otp_factor, settings, sms_factor, App};

/// Handles one request. With `function`, only that function's routes are served, as in Lambda;
/// with `None`, every route is, as in the local API.
pub async fn handle(app: &App, request: ApiRequest, function: Option<Function>) -> ApiResponse {
    let span = tracing::info_span!("request", request_id = %request.request_id, method = %request.method, path = %request.path);
    async move {
        let route = match match_route(&request.method, &request.path) {
            RouteMatch::Found(spec) if function.is_none_or(|function| function == spec.function) => spec.route,
            RouteMatch::MethodNotAllowed => {
                return respond(Err(AppError::invalid_request(format!(
                    "method {} is not allowed on {}",
                    request.method, request.path
                ))));
            }
            _ => {
                return respond(Err(AppError::NotFound(format!(
                    "no route for {} {}",
                    request.method, request.path
                ))))
            }
        };
        respond(dispatch(app, route, &request).await)
    }
    .instrument(span)
    .await
}

async fn dispatch(app: &App, route: Route, request: &ApiRequest) -> Result<ApiResponse, AppError> {
    match route {
        Route::Login => login::login(app, request).await,
        Route::LoginSmsResend => challenge::resend_sms(app, request).await,
        Route::LoginSmsVerify => challenge::verify_sms(app, request).await,
        Route::LoginOtpVerify => challenge::verify_otp(app, request).await,
        Route::GetSecurity => settings::get_security(app, request).await,
        Route::PutLoginMethod => settings::put_login_method(app, request).await,
        Route::PutTwoFactor => settings::put_two_factor(app, request).await,
        Route::GetSecurityContact => settings::get_security_contact(app, request).await,
        Route::PutSecurityContact => settings::put_security_contact(app, request).await,
        Route::PutSmsNumber => sms_factor::put_number(app, request).await,
        Route::SendSmsNumberCode => sms_factor::send_code(app, request).await,
        Route::VerifySmsNumber => sms_factor::verify_number(app, request).await,
        Route::DeleteSmsNumber => sms_factor::delete_number(app, request).await,
        Route::ConnectOtpDevice => otp_factor::connect_device(app, request).await,
        Route::VerifyOtpDevice => otp_factor::verify_device(app, request).await,
        Route::DeleteOtpDevice => otp_factor::delete_device(app, request).await,
    }
}

/// Turns a handler result into a response and logs the outcome once.
fn respond(result: Result<ApiResponse, AppError>) -> ApiResponse {
    match result {
        Ok(response) => {
            tracing::info!(status = response.status, outcome = "ok", "request completed");
            response
        }
        Err(error) => {
            let status = error.status();
            match &error {
                AppError::Internal(reason) => {
                    tracing::error!(status, outcome = error.code(), reason = %reason, "request failed")
                }
                AppError::ServiceUnavailable { reason, .. } => {
                    tracing::warn!(status, outcome = error.code(), reason = %reason, "request failed")
                }
                _ => tracing::info!(status, outcome = error.code(), "request rejected"),
            }
            ApiResponse::error(&error)
        }
    }
}
