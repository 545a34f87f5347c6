//! The `otp` Lambda function: TOTP login challenges (`POST /login/otp/verify`) and the OTP device
//! (`POST`, `DELETE /security/otp/device`, `POST /security/otp/device/verify`).
//!
//! The routes and their rules live in `twofa_core`; this binary only runs them.

use twofa_core::routes::Function;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    twofa_core::lambda::run_http_function(Function::Otp).await
}
