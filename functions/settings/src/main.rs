//! The `settings` Lambda function: the security overview (`GET /security`), the login method
//! (`PUT /security/method`), 2FA on or off (`PUT /security/two-factor`) and the Security contact
//! (`GET`, `PUT /account/security-contact`).
//!
//! The routes and their rules live in `twofa_core`; this binary only runs them.

use twofa_core::routes::Function;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    twofa_core::lambda::run_http_function(Function::Settings).await
}
