//! The `sms` Lambda function: SMS login challenges (`POST /login/sms/resend`,
//! `POST /login/sms/verify`) and the SMS factor (`PUT`, `DELETE /security/sms/number`,
//! `POST /security/sms/number/send-code`, `POST /security/sms/number/verify`).
//!
//! The routes and their rules live in `twofa_core`; this binary only runs them.

use twofa_core::routes::Function;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    twofa_core::lambda::run_http_function(Function::Sms).await
}
