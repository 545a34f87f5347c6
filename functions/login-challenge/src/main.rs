//! The `login-challenge` Lambda function: `POST /login`. It checks the password and returns a
//! second-factor challenge (sending the SMS), an enrollment session, or a full session.
//!
//! The routes and their rules live in `twofa_core`; this binary only runs them.

use twofa_core::routes::Function;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    twofa_core::lambda::run_http_function(Function::LoginChallenge).await
}
