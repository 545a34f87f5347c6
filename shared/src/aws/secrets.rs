//! Loading the sealing and hashing keys at cold start, from Secrets Manager or from inline JSON.
//!
//! The secret's value is the JSON document that [`Keys::from_secret_json`] reads. Error messages
//! name the environment variable or the secret id, and never contain key material.

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use zeroize::Zeroizing;

use crate::config::{Config, KeySource};
use crate::crypto::{Keys, KeysError};
use crate::error::AppError;

/// Loads the keys that `config` points to.
///
/// With [`KeySource::SecretsManager`], this sends one `GetSecretValue` request. Call it once at
/// cold start and keep the result in the [`crate::service::App`]; a key rotation then reaches
/// running functions only when their execution environments are replaced.
pub async fn load_keys(config: &Config, sdk: &SdkConfig) -> Result<Keys, AppError> {
    match &config.keys {
        KeySource::Inline(json) => Keys::from_secret_json(json).map_err(|error| {
            AppError::Internal(format!("KEYS_JSON does not contain valid keys: {}", describe(&error)))
        }),
        KeySource::SecretsManager(secret_id) => {
            let json = fetch_secret(sdk, secret_id).await?;
            Keys::from_secret_json(&json).map_err(|error| {
                AppError::Internal(format!(
                    "secret {secret_id} (KEYS_SECRET_ID) does not contain valid keys: {}",
                    describe(&error)
                ))
            })
        }
    }
}

/// Describes why the keys JSON is invalid. The parser's own message is left out, because serde
/// quotes the offending value, such as a key stored as a bare JSON string.
fn describe(error: &KeysError) -> String {
    match error {
        KeysError::InvalidJson(_) => "the value is not a JSON object".to_owned(),
        other => other.to_string(),
    }
}

/// Reads the current value of a secret as text, from `SecretString` or from UTF-8 `SecretBinary`.
async fn fetch_secret(sdk: &SdkConfig, secret_id: &str) -> Result<Zeroizing<String>, AppError> {
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|error| {
            // The error of a failed request carries no secret value, only the service's message.
            AppError::Internal(format!(
                "GetSecretValue of secret {secret_id} (KEYS_SECRET_ID) failed: {}",
                DisplayErrorContext(&error)
            ))
        })?;

    if let Some(text) = output.secret_string() {
        return Ok(Zeroizing::new(text.to_owned()));
    }
    let binary = output
        .secret_binary()
        .ok_or_else(|| AppError::Internal(format!("secret {secret_id} (KEYS_SECRET_ID) has no value")))?;
    let bytes = Zeroizing::new(binary.as_ref().to_vec());
    std::str::from_utf8(&bytes)
        .map(|text| Zeroizing::new(text.to_owned()))
        .map_err(|_| {
            AppError::Internal(format!(
                "secret {secret_id} (KEYS_SECRET_ID) has a binary value that is not UTF-8 JSON"
            ))
        })
}
