//! Builds the [`App`] of a Lambda function or the admin tool from the environment, once at cold
//! start: configuration, one SDK configuration for DynamoDB, SNS, SES v2 and Secrets Manager, the
//! keys, and the phone policy.

use std::sync::Arc;

use aws_config::SdkConfig;

use super::secrets;
use super::ses::SesMailer;
use super::sns::SnsSmsSender;
use crate::config::{Config, ConfigError};
use crate::phone::PhonePolicy;
use crate::ports::{Clock, OsRandom, SystemClock};
use crate::service::App;
use crate::store::dynamo::DynamoStore;

/// An error that keeps the [`App`] from being built.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// One or more environment variables are missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The keys could not be read from Secrets Manager or `KEYS_JSON`.
    #[error("loading the keys failed: {0}")]
    Keys(String),
    /// `PHONE_DEFAULT_REGION` or `SMS_ALLOWED_COUNTRIES` is invalid.
    #[error("invalid phone settings: {0}")]
    PhonePolicy(String),
}

impl BootstrapError {
    /// Returns every problem found, one sentence each, for logging one line per problem.
    pub fn problems(&self) -> Vec<String> {
        match self {
            BootstrapError::Config(error) => error.problems.clone(),
            other => vec![other.to_string()],
        }
    }
}

/// Reads the configuration from the environment and builds the [`App`] on DynamoDB, SNS and SES v2.
pub async fn app_from_env() -> Result<App, BootstrapError> {
    let config = Config::from_env()?;
    let sdk = super::sdk_config().await;
    app_from_config(config, &sdk).await
}

/// Builds the [`App`] on DynamoDB, SNS and SES v2 from a configuration and an SDK configuration.
pub async fn app_from_config(config: Config, sdk: &SdkConfig) -> Result<App, BootstrapError> {
    let keys = secrets::load_keys(&config, sdk)
        .await
        .map_err(|error| BootstrapError::Keys(error.to_string()))?;
    let phone_policy = PhonePolicy::new(&config.phone_default_region, &config.sms_allowed_countries)
        .map_err(|error| BootstrapError::PhonePolicy(error.to_string()))?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        config.table_name.clone(),
        clock.clone(),
    );
    let sms = SnsSmsSender::new(aws_sdk_sns::Client::new(sdk), config.sms_sender_id.clone());
    let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(sdk), config.email_from.clone());

    Ok(App {
        config,
        store: Arc::new(store),
        sms: Arc::new(sms),
        mailer: Arc::new(mailer),
        clock,
        random: Arc::new(OsRandom),
        keys,
        phone_policy,
    })
}
