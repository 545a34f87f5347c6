//! Builds the [`App`] of the local run from the command line: the in-memory store or a DynamoDB
//! endpoint, printed or real messaging, and keys generated at start unless `KEYS_JSON` is set.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio::sync::broadcast;
use twofa_core::aws::ses::SesMailer;
use twofa_core::aws::sns::SnsSmsSender;
use twofa_core::config::Config;
use twofa_core::crypto::Keys;
use twofa_core::phone::PhonePolicy;
use twofa_core::ports::{Clock, Mailer, OsRandom, RecordingOutbox, SmsSender, SystemClock};
use twofa_core::service::App;
use twofa_core::store::dynamo::DynamoStore;
use twofa_core::store::memory::MemoryStore;
use twofa_core::store::{Item, Store};

use crate::cli::Cli;
use crate::console::ConsoleOutbox;
use crate::LocalError;

/// Configuration variables the local run reads from the environment, with their local defaults.
/// `KEYS_JSON` defaults to keys generated at start.
const LOCAL_DEFAULTS: &[(&str, &str)] = &[
    ("TABLE_NAME", "twofa-local"),
    ("OTP_ISSUER", "Example Hosting"),
    ("EMAIL_FROM", "security@example.com"),
    ("SMS_SENDER_ID", ""),
    ("SMS_ALLOWED_COUNTRIES", "CZ,SK"),
    ("PHONE_DEFAULT_REGION", "CZ"),
    ("KEYS_JSON", ""),
];

/// The region of the SDK clients when the environment sets none. DynamoDB Local and moto accept
/// any region; real SNS and SES need the environment's own.
const FALLBACK_REGION: &str = "eu-central-1";

/// The app of the local run and what the rest of the run needs beside it.
pub struct LocalApp {
    pub app: Arc<App>,
    /// The messages sent, unless `--aws-messaging` sends them for real.
    pub outbox: Option<Arc<RecordingOutbox>>,
    pub notifications: NotificationSource,
}

/// Source of the new outbox records that the notifier delivers.
pub enum NotificationSource {
    /// The inserts of the in-memory store, subscribed to before seeding.
    Memory(broadcast::Receiver<Item>),
    /// The stream of a DynamoDB table.
    DynamoStream {
        client: aws_sdk_dynamodbstreams::Client,
        table: String,
    },
}

/// Builds the app with the store and messaging that the command-line options select.
pub async fn build(cli: &Cli) -> Result<LocalApp, LocalError> {
    let random = Arc::new(OsRandom);
    let generated_keys = Keys::generate_for_local(random.as_ref());
    let config = local_config(generated_keys.expose())?;
    let keys = match &config.keys {
        twofa_core::config::KeySource::Inline(json) => Keys::from_secret_json(json)
            .map_err(|error| LocalError::Config(format!("KEYS_JSON does not contain valid keys: {error}")))?,
        twofa_core::config::KeySource::SecretsManager(_) => {
            return Err(LocalError::Config(
                "the local run takes its keys from KEYS_JSON or generates them".into(),
            ))
        }
    };
    let phone_policy = PhonePolicy::new(&config.phone_default_region, &config.sms_allowed_countries)
        .map_err(|error| LocalError::Config(error.to_string()))?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let needs_sdk = cli.dynamodb_endpoint.is_some() || cli.aws_messaging;
    let sdk = if needs_sdk {
        Some(sdk_config(cli.aws_messaging).await)
    } else {
        None
    };

    let (store, notifications): (Arc<dyn Store>, NotificationSource) = match (&cli.dynamodb_endpoint, &sdk) {
        (Some(endpoint), Some(sdk)) => {
            let dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk)
                .endpoint_url(endpoint)
                .build();
            let client = aws_sdk_dynamodb::Client::from_conf(dynamodb);
            DynamoStore::create_table(&client, &config.table_name)
                .await
                .map_err(|error| {
                    LocalError::Store(format!(
                        "creating table {} at {endpoint} failed: {error}",
                        config.table_name
                    ))
                })?;
            let store = DynamoStore::new(client, config.table_name.clone(), clock.clone());
            let streams = aws_sdk_dynamodbstreams::config::Builder::from(sdk)
                .endpoint_url(endpoint)
                .build();
            let streams = aws_sdk_dynamodbstreams::Client::from_conf(streams);
            (
                Arc::new(store),
                NotificationSource::DynamoStream {
                    client: streams,
                    table: config.table_name.clone(),
                },
            )
        }
        _ => {
            let store = Arc::new(MemoryStore::new(clock.clone()));
            let inserts = store.subscribe_inserts();
            (store, NotificationSource::Memory(inserts))
        }
    };

    let (sms, mailer, outbox): (Arc<dyn SmsSender>, Arc<dyn Mailer>, _) = match &sdk {
        Some(sdk) if cli.aws_messaging => (
            Arc::new(SnsSmsSender::new(
                aws_sdk_sns::Client::new(sdk),
                config.sms_sender_id.clone(),
            )),
            Arc::new(SesMailer::new(
                aws_sdk_sesv2::Client::new(sdk),
                config.email_from.clone(),
            )),
            None,
        ),
        _ => {
            let recorded = Arc::new(RecordingOutbox::default());
            let console = Arc::new(ConsoleOutbox::new(recorded.clone()));
            (console.clone(), console, Some(recorded))
        }
    };

    let app = App {
        config,
        store,
        sms,
        mailer,
        clock,
        random,
        keys,
        phone_policy,
    };
    Ok(LocalApp {
        app: Arc::new(app),
        outbox,
        notifications,
    })
}

/// Reads the configuration from the environment over [`LOCAL_DEFAULTS`], with `generated_keys` as
/// the keys unless `KEYS_JSON` is set. `KEYS_SECRET_ID` is ignored here.
fn local_config(generated_keys: &str) -> Result<Config, LocalError> {
    let mut vars: HashMap<String, String> = HashMap::new();
    for (name, default) in LOCAL_DEFAULTS {
        let value = std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
            .unwrap_or_else(|| (*default).to_owned());
        vars.insert((*name).to_owned(), value);
    }
    if vars.get("KEYS_JSON").is_none_or(String::is_empty) {
        vars.insert("KEYS_JSON".into(), generated_keys.to_owned());
    }
    Config::from_vars(&vars).map_err(|error| LocalError::Config(error.to_string()))
}

/// Loads the SDK configuration. Without `real_credentials` and without credentials in the
/// environment, the clients sign with fixed local credentials, which DynamoDB Local and moto
/// accept, so the SDK never looks for credentials elsewhere.
async fn sdk_config(real_credentials: bool) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    let has_region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|value| !value.is_empty()));
    if !has_region {
        loader = loader.region(Region::new(FALLBACK_REGION));
    }
    let has_credentials = ["AWS_ACCESS_KEY_ID", "AWS_PROFILE"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|value| !value.is_empty()));
    if !real_credentials && !has_credentials {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "twofa-local",
        ));
    }
    loader.load().await
}
