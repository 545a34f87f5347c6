//! The admin commands. Each returns the JSON document that `twofa-admin` prints.

use std::io::BufRead;

use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};
use serde_json::{json, Value};
use twofa_core::error::AppError;
use twofa_core::model::{Language, Method};
use twofa_core::secret::SecretString;
use twofa_core::service::provisioning::{self, NewUser};
use twofa_core::service::{audit, App};
use twofa_core::totp;
use zeroize::Zeroizing;

use crate::cli::{Command, PasswordSource};

/// The environment variable a password is read from without `--password-stdin`.
pub const PASSWORD_VARIABLE: &str = "TWOFA_PASSWORD";

/// Runs one command.
pub async fn run(app: &App, command: Command) -> Result<Value, AppError> {
    match command {
        Command::CreateAccount {
            name,
            username,
            email,
            language,
            password,
        } => {
            let new_user = NewUser {
                username,
                password: read_password(&password)?,
                email: Some(email),
                language: language.into(),
                two_factor_enabled: true,
            };
            let (account, user) = provisioning::create_customer_account(app, &name, &new_user).await?;
            Ok(json!({
                "account_id": account.account_id,
                "name": account.name,
                "user_id": user.user_id,
                "username": user.username,
                "is_main_account": true,
                "two_factor_enabled": true,
            }))
        }
        Command::CreateUser {
            account,
            username,
            email,
            language,
            two_factor,
            password,
        } => {
            let new_user = NewUser {
                username,
                password: read_password(&password)?,
                email,
                language: language.into(),
                two_factor_enabled: two_factor,
            };
            let user = provisioning::create_sub_account(app, &account, &new_user).await?;
            Ok(json!({
                "account_id": user.account_id,
                "user_id": user.user_id,
                "username": user.username,
                "is_main_account": false,
                "two_factor_enabled": user.two_factor_enabled,
            }))
        }
        Command::SetPassword { username, password } => {
            provisioning::set_password(app, &username, &read_password(&password)?).await?;
            Ok(json!({ "username": username, "result": "password_set" }))
        }
        Command::SetSecurityContact {
            account,
            name,
            email,
            language,
        } => {
            let language: Language = language.into();
            provisioning::set_security_contact(app, &account, &name, &email, language).await?;
            Ok(json!({ "account_id": account, "name": name.trim(), "email": email, "language": language.as_str() }))
        }
        Command::ResetTwoFactor { username } => {
            provisioning::reset_two_factor(app, &username).await?;
            Ok(json!({ "username": username, "result": "two_factor_reset" }))
        }
        Command::Audit { username, limit } => list_audit(app, &username, limit).await,
        Command::AddTotp { username, secret } => add_totp(app, &username, &secret).await,
        Command::AddSms { username, phone } => {
            let state = provisioning::require_user(app, &username).await?;
            provisioning::add_active_sms(app, &state.user.user_id, &phone).await?;
            let masked = app
                .phone_policy
                .parse(&phone)
                .map(|phone| phone.masked())
                .unwrap_or_default();
            Ok(
                json!({ "username": username, "user_id": state.user.user_id, "phone": masked, "login_method": Method::Sms.as_str() }),
            )
        }
    }
}

async fn list_audit(app: &App, username: &str, limit: u32) -> Result<Value, AppError> {
    let state = provisioning::require_user(app, username).await?;
    let records = audit::list(app, &state.user.user_id, limit as usize).await?;
    let records: Vec<Value> = records
        .into_iter()
        .map(|record| {
            json!({
                "at": format_utc(record.at),
                "event": record.event,
                "outcome": record.outcome,
                "method": record.method.map(Method::as_str),
                "source_ip": record.source_ip,
                "detail": record.detail,
            })
        })
        .collect();
    Ok(json!({ "username": state.user.username, "user_id": state.user.user_id, "records": records }))
}

async fn add_totp(app: &App, username: &str, secret: &str) -> Result<Value, AppError> {
    let secret =
        totp::parse_backup_key(secret).map_err(|error| AppError::invalid_field("secret", error.to_string()))?;
    let state = provisioning::require_user(app, username).await?;
    let make_login_method = state.login_method().is_none();
    provisioning::add_active_totp(app, &state.user.user_id, &secret, make_login_method).await?;
    let login_method = if make_login_method {
        Some(Method::Totp)
    } else {
        state.login_method()
    };
    Ok(json!({
        "username": username,
        "user_id": state.user.user_id,
        "login_method": login_method.map(Method::as_str),
    }))
}

/// Reads a password from standard input or from [`PASSWORD_VARIABLE`].
fn read_password(source: &PasswordSource) -> Result<SecretString, AppError> {
    if source.password_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line).map_err(|error| {
            AppError::invalid_field(
                "password",
                format!("reading the password from standard input failed: {error}"),
            )
        })?;
        let password = line.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            return Err(AppError::invalid_field(
                "password",
                "standard input has no password; write it as the first line",
            ));
        }
        return Ok(SecretString::new(password.to_owned()));
    }
    match std::env::var(PASSWORD_VARIABLE) {
        Ok(password) if !password.is_empty() => Ok(SecretString::new(password)),
        _ => Err(AppError::invalid_field(
            "password",
            format!(
                "password missing: pass --password-stdin and write it to standard input, or set {PASSWORD_VARIABLE}"
            ),
        )),
    }
}

/// Formats Unix seconds as an ISO 8601 UTC time such as `2026-01-01T00:00:00Z`.
fn format_utc(unix: i64) -> String {
    DateTime::from_secs(unix)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| unix.to_string())
}
