//! Loading the keys from Secrets Manager, against a moto server at `AWS_ENDPOINT_URL`.
//!
//! Without `AWS_ENDPOINT_URL` the tests print a skip message and pass, unless `TWOFA_REQUIRE_MOTO=1`
//! makes them fail. Credentials and region come from the environment, as `scripts/test.sh` sets them.

use aws_config::SdkConfig;
use twofa_core::aws::secrets::load_keys;
use twofa_core::config::KeySource;
use twofa_core::crypto::Keys;
use twofa_core::ports::{random_bytes, OsRandom};
use twofa_core::testing::test_config;

/// Returns the SDK configuration for moto, or `None` after printing a skip message.
async fn moto_sdk(test: &str) -> Option<SdkConfig> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok().filter(|url| !url.is_empty());
    let Some(endpoint) = endpoint else {
        let required = std::env::var("TWOFA_REQUIRE_MOTO").is_ok_and(|value| value == "1");
        assert!(!required, "AWS_ENDPOINT_URL is unset and TWOFA_REQUIRE_MOTO=1");
        eprintln!("skipping {test}: AWS_ENDPOINT_URL is unset, so there is no moto server");
        return None;
    };
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at a local moto server, not {endpoint}"
    );
    Some(twofa_core::aws::sdk_config().await)
}

/// Returns a secret name that no other test run uses.
fn unique_name(prefix: &str) -> String {
    let suffix: [u8; 8] = random_bytes(&OsRandom);
    let suffix: String = suffix.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{prefix}-{suffix}")
}

async fn create_secret(sdk: &SdkConfig, name: &str, value: &str) {
    aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|error| {
            panic!(
                "CreateSecret {name} failed: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&error)
            )
        });
}

#[tokio::test]
async fn keys_load_from_secrets_manager() {
    let Some(sdk) = moto_sdk("keys_load_from_secrets_manager").await else {
        return;
    };
    let keys_json = Keys::generate_for_local(&OsRandom).expose().to_owned();
    let name = unique_name("twofa/keys");
    create_secret(&sdk, &name, &keys_json).await;
    let mut config = test_config(String::new());
    config.keys = KeySource::SecretsManager(name);

    let loaded = load_keys(&config, &sdk).await.unwrap();

    let plain = b"12345678901234567890";
    let sealed = loaded.seal(plain, b"user-1", &OsRandom).unwrap();
    assert_eq!(loaded.open(&sealed, b"user-1").unwrap().expose(), plain);
    assert!(
        loaded.open(&sealed, b"user-2").is_err(),
        "the user id must be bound to the sealed secret"
    );
    let inline = Keys::from_secret_json(&keys_json).unwrap();
    assert_eq!(
        inline.open(&sealed, b"user-1").unwrap().expose(),
        plain,
        "the secret holds other keys than its JSON"
    );
}

#[tokio::test]
async fn inline_keys_load_without_request() {
    let keys_json = Keys::generate_for_local(&OsRandom).expose().to_owned();
    let config = test_config(keys_json.clone());
    // An endpoint that nothing listens on: inline keys must not reach for the network.
    let sdk = aws_config::SdkConfig::builder()
        .endpoint_url("http://127.0.0.1:9")
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();

    let loaded = load_keys(&config, &sdk).await.unwrap();

    let sealed = loaded.seal(b"secret", b"user-1", &OsRandom).unwrap();
    assert_eq!(
        Keys::from_secret_json(&keys_json)
            .unwrap()
            .open(&sealed, b"user-1")
            .unwrap()
            .expose(),
        b"secret"
    );
}

#[tokio::test]
async fn missing_secret_error_names_secret() {
    let Some(sdk) = moto_sdk("missing_secret_error_names_secret").await else {
        return;
    };
    let name = unique_name("twofa/absent");
    let mut config = test_config(String::new());
    config.keys = KeySource::SecretsManager(name.clone());

    let error = load_keys(&config, &sdk).await.err().unwrap().to_string();

    assert!(error.contains(&name), "{error}");
    assert!(error.contains("KEYS_SECRET_ID"), "{error}");
}

#[tokio::test]
async fn invalid_secret_error_hides_value() {
    let Some(sdk) = moto_sdk("invalid_secret_error_hides_value").await else {
        return;
    };
    let name = unique_name("twofa/invalid");
    let value = r#"{"seal_key": "c2VjcmV0LWtleS1tYXRlcmlhbA", "note": "not-the-right-shape"}"#;
    create_secret(&sdk, &name, value).await;
    let mut config = test_config(String::new());
    config.keys = KeySource::SecretsManager(name.clone());

    let error = load_keys(&config, &sdk).await.err().unwrap().to_string();

    assert!(error.contains(&name), "{error}");
    assert!(!error.contains("c2VjcmV0LWtleS1tYXRlcmlhbA"), "{error}");
    assert!(!error.contains("not-the-right-shape"), "{error}");
}

#[tokio::test]
async fn bare_string_secret_error_hides_value() {
    let Some(sdk) = moto_sdk("bare_string_secret_error_hides_value").await else {
        return;
    };
    let name = unique_name("twofa/bare");
    create_secret(&sdk, &name, r#""c2VjcmV0LWtleS1tYXRlcmlhbA""#).await;
    let mut config = test_config(String::new());
    config.keys = KeySource::SecretsManager(name.clone());

    let error = load_keys(&config, &sdk).await.err().unwrap().to_string();

    assert!(error.contains(&name), "{error}");
    assert!(!error.contains("c2VjcmV0LWtleS1tYXRlcmlhbA"), "{error}");
}

#[tokio::test]
async fn invalid_inline_keys_name_variable() {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();

    for value in [
        r#"{"seal_key": "c2VjcmV0LWtleS1tYXRlcmlhbA"}"#,
        r#""c2VjcmV0LWtleS1tYXRlcmlhbA""#,
    ] {
        let config = test_config(value.to_owned());

        let error = load_keys(&config, &sdk).await.err().unwrap().to_string();

        assert!(error.contains("KEYS_JSON"), "{value}: {error}");
        assert!(!error.contains("c2VjcmV0LWtleS1tYXRlcmlhbA"), "{value}: {error}");
    }
}
