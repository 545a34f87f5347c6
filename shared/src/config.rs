//! Configuration read once at cold start from environment variables.

use std::collections::HashMap;

/// The source of the sealing and hashing keys.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A Secrets Manager secret id or ARN, read once at cold start.
    SecretsManager(String),
    /// The secret JSON itself, for the local run and tests.
    Inline(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::SecretsManager(id) => write!(formatter, "SecretsManager({id})"),
            KeySource::Inline(_) => formatter.write_str("Inline(..)"),
        }
    }
}

/// The service configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `TABLE_NAME`: the DynamoDB table.
    pub table_name: String,
    /// `OTP_ISSUER`: the issuer in otpauth URIs, also the service name in SMS and email texts.
    pub otp_issuer: String,
    /// `EMAIL_FROM`: the SES v2 sender address of notifications.
    pub email_from: String,
    /// `SMS_SENDER_ID`: the alphanumeric sender id of SMS, where the destination allows one.
    pub sms_sender_id: Option<String>,
    /// `SMS_ALLOWED_COUNTRIES`: ISO 3166 codes that SMS may go to, default `CZ,SK`.
    pub sms_allowed_countries: String,
    /// `PHONE_DEFAULT_REGION`: the region of numbers typed in national form, default `CZ`.
    pub phone_default_region: String,
    /// `KEYS_SECRET_ID` or `KEYS_JSON`.
    pub keys: KeySource,
}

/// Every problem found in the environment, each naming its variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the configuration from a map of variables, reporting every missing or invalid one.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let value = |name: &str| {
            vars.get(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let required = |name: &str, problems: &mut Vec<String>| {
            value(name).unwrap_or_else(|| {
                problems.push(format!("{name} is missing"));
                String::new()
            })
        };

        let table_name = required("TABLE_NAME", &mut problems);
        let otp_issuer = required("OTP_ISSUER", &mut problems);
        if otp_issuer.contains(':') {
            problems.push("OTP_ISSUER must not contain ':'".into());
        }
        let email_from = required("EMAIL_FROM", &mut problems);
        if !email_from.is_empty() && !email_from.contains('@') {
            problems.push(format!("EMAIL_FROM is not an email address: {email_from}"));
        }
        let sms_sender_id = value("SMS_SENDER_ID");
        if let Some(sender_id) = &sms_sender_id {
            let is_valid =
                (1..=11).contains(&sender_id.len()) && sender_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !is_valid {
                problems.push(format!(
                    "SMS_SENDER_ID must be 1 to 11 letters, digits or hyphens: {sender_id}"
                ));
            }
        }
        let sms_allowed_countries = value("SMS_ALLOWED_COUNTRIES").unwrap_or_else(|| "CZ,SK".into());
        if let Err(error) = crate::phone::PhonePolicy::new("CZ", &sms_allowed_countries) {
            problems.push(format!("SMS_ALLOWED_COUNTRIES is invalid: {error}"));
        }
        let phone_default_region = value("PHONE_DEFAULT_REGION").unwrap_or_else(|| "CZ".into());
        if let Err(error) = crate::phone::PhonePolicy::new(&phone_default_region, "CZ") {
            problems.push(format!("PHONE_DEFAULT_REGION is invalid: {error}"));
        }
        let keys = match (value("KEYS_SECRET_ID"), value("KEYS_JSON")) {
            (Some(id), None) => KeySource::SecretsManager(id),
            (None, Some(json)) => KeySource::Inline(json),
            (Some(_), Some(_)) => {
                problems.push("set only one of KEYS_SECRET_ID and KEYS_JSON".into());
                KeySource::Inline(String::new())
            }
            (None, None) => {
                problems.push("KEYS_SECRET_ID (or KEYS_JSON for local runs) is missing".into());
                KeySource::Inline(String::new())
            }
        };

        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Config {
            table_name,
            otp_issuer,
            email_from,
            sms_sender_id,
            sms_allowed_countries,
            phone_default_region,
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn every_missing_variable_is_named() {
        let error = Config::from_vars(&HashMap::new())
            .err()
            .unwrap_or(ConfigError { problems: vec![] });
        let text = error.to_string();
        for name in ["TABLE_NAME", "OTP_ISSUER", "EMAIL_FROM", "KEYS_SECRET_ID"] {
            assert!(text.contains(name), "{name} not named in: {text}");
        }
    }

    #[test]
    fn defaults_apply() {
        let config = Config::from_vars(&vars(&[
            ("TABLE_NAME", "t"),
            ("OTP_ISSUER", "Example Hosting"),
            ("EMAIL_FROM", "security@example.com"),
            ("KEYS_JSON", "{}"),
        ]));
        let config = config.unwrap_or_else(|error| unreachable!("{error}"));
        assert_eq!(config.sms_allowed_countries, "CZ,SK");
        assert_eq!(config.phone_default_region, "CZ");
        assert_eq!(config.sms_sender_id, None);
    }

    #[test]
    fn invalid_values_are_named() {
        let error = Config::from_vars(&vars(&[
            ("TABLE_NAME", "t"),
            ("OTP_ISSUER", "Bad:Issuer"),
            ("EMAIL_FROM", "not-an-address"),
            ("SMS_SENDER_ID", "far too long sender"),
            ("KEYS_JSON", "{}"),
            ("KEYS_SECRET_ID", "arn"),
        ]))
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
        for name in [
            "OTP_ISSUER",
            "EMAIL_FROM",
            "SMS_SENDER_ID",
            "KEYS_SECRET_ID and KEYS_JSON",
        ] {
            assert!(error.contains(name), "{name} not named in: {error}");
        }
    }
}
