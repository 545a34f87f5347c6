//! The admin commands. Each returns the JSON document that `twofa-admin` prints.

use std::io::BufRead;
use std::path::Path;

use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};
use serde_json::{json, Value};
use twofa_core::aws::failed_batch;
use twofa_core::error::AppError;
use twofa_core::model::{Language, Method};
use twofa_core::secret::SecretString;
use twofa_core::service::provisioning::{self, NewUser};
use twofa_core::service::{audit, notifier, App};
use twofa_core::totp;
use zeroize::Zeroizing;

use crate::cli::{Command, PasswordSource};

/// The environment variable a password is read from without `--password-stdin`.
pub const PASSWORD_VARIABLE: &str = "TWOFA_PASSWORD";
/// The environment variable a TOTP secret is read from without `--secret-stdin`.
pub const TOTP_SECRET_VARIABLE: &str = "TWOFA_TOTP_SECRET";

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
        Command::AddTotp { username, secret_stdin } => {
            let secret = read_secret("secret", secret_stdin, TOTP_SECRET_VARIABLE)?;
            add_totp(app, &username, secret.expose()).await
        }
        Command::Redeliver {
            event_ids,
            failure_message,
        } => redeliver(app, event_ids, failure_message.as_deref()).await,
        Command::AddSms { username, phone } => {
            let (user_id, masked) = provisioning::admin_add_sms(app, &username, &phone).await?;
            Ok(
                json!({ "username": username, "user_id": user_id, "phone": masked, "login_method": Method::Sms.as_str() }),
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
    let (user_id, login_method) = provisioning::admin_add_totp(app, username, &secret).await?;
    Ok(json!({
        "username": username,
        "user_id": user_id,
        "login_method": login_method.as_str(),
    }))
}

/// Reads a password from standard input or from [`PASSWORD_VARIABLE`].
fn read_password(source: &PasswordSource) -> Result<SecretString, AppError> {
    read_secret("password", source.password_stdin, PASSWORD_VARIABLE)
}

/// Reads the secret `field` from the first line of standard input when `from_stdin` is set, else
/// from the environment variable `variable`.
fn read_secret(field: &str, from_stdin: bool, variable: &str) -> Result<SecretString, AppError> {
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line).map_err(|error| {
            AppError::invalid_field(
                field,
                format!("reading the {field} from standard input failed: {error}"),
            )
        })?;
        let value = line.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return Err(AppError::invalid_field(
                field,
                format!("standard input has no {field}; write it as the first line"),
            ));
        }
        return Ok(SecretString::new(value.to_owned()));
    }
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Ok(SecretString::new(value)),
        _ => Err(AppError::invalid_field(
            field,
            format!("{field} missing: pass --{field}-stdin and write it to standard input, or set {variable}"),
        )),
    }
}

/// Formats Unix seconds as an ISO 8601 UTC time such as `2026-01-01T00:00:00Z`.
fn format_utc(unix: i64) -> String {
    DateTime::from_secs(unix)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| unix.to_string())
}

/// Sends the unsent emails of each outbox record named directly or by an on-failure message. Every
/// record is tried; the command fails when any of them failed, after listing each outcome.
async fn redeliver(app: &App, mut event_ids: Vec<String>, failure_message: Option<&Path>) -> Result<Value, AppError> {
    if let Some(path) = failure_message {
        let body = read_text(path)?;
        let batch = failed_batch::parse_failure_message(&body)?;
        let sdk = twofa_core::aws::sdk_config().await;
        let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
        event_ids.extend(failed_batch::outbox_event_ids(&streams, &batch).await?);
    }

    let mut results = Vec::new();
    let mut failed = 0;
    for event_id in &event_ids {
        let outcome = notifier::redeliver(app, event_id).await;
        if let Err(error) = &outcome {
            failed += 1;
            eprintln!("error: outbox record {event_id}: {error}");
        }
        results.push(json!({
            "event_id": event_id,
            "result": outcome.as_ref().map_or_else(|error| error.code(), |()| "delivered"),
        }));
    }

    if failed > 0 {
        return Err(AppError::unavailable(format!(
            "{failed} of {} outbox records were not delivered; run the command again for them",
            event_ids.len()
        )));
    }
    Ok(json!({ "records": results }))
}

/// Reads a whole text file, or standard input for `-`.
fn read_text(path: &Path) -> Result<String, AppError> {
    let read = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|error| {
        AppError::invalid_field("failure_message", format!("{} cannot be read: {error}", path.display()))
    })
}
