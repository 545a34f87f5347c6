//! Seeding the local store: the built-in demo customer account, or customer accounts from a JSON
//! seed file (format in `docs/seed-format.md`). Everything goes through
//! `twofa_core::service::provisioning`, as the admin tool does.

use serde::Deserialize;
use twofa_core::error::AppError;
use twofa_core::model::{Language, Method};
use twofa_core::secret::SecretString;
use twofa_core::service::provisioning::{self, NewUser};
use twofa_core::service::App;
use twofa_core::totp;

/// A seed file: customer accounts with their users.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    pub customer_accounts: Vec<SeedAccount>,
}

/// A customer account of a seed file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAccount {
    pub name: String,
    /// Exactly one user has `is_main: true`.
    pub users: Vec<SeedUser>,
    #[serde(default)]
    pub security_contact: Option<SeedContact>,
}

/// A user of a seed file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    pub username: String,
    pub password: SecretString,
    #[serde(default)]
    pub language: Language,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub is_main: bool,
    /// For a sub-account; the main account always has 2FA on.
    #[serde(default)]
    pub two_factor_enabled: Option<bool>,
    /// An active SMS number, which becomes the login method.
    #[serde(default)]
    pub phone: Option<String>,
    /// The Base32 secret of an active OTP device; the login method when there is no phone.
    #[serde(default)]
    pub totp_secret: Option<SecretString>,
}

/// The Security contact of a seeded customer account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedContact {
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub language: Language,
}

/// A seeded customer account, kept for printing the credentials.
#[derive(Debug, Clone)]
pub struct SeededAccount {
    pub name: String,
    /// `None` when the account existed already and was kept as it was.
    pub account_id: Option<String>,
    pub users: Vec<SeedUser>,
    pub security_contact: Option<SeedContact>,
}

/// Returns the demo customer account seeded when no seed file is given.
pub fn demo() -> SeedFile {
    let user = |username: &str, password: &str, email: &str, is_main: bool, phone: Option<&str>| SeedUser {
        username: username.to_owned(),
        password: SecretString::new(password.to_owned()),
        language: Language::En,
        email: Some(email.to_owned()),
        is_main,
        two_factor_enabled: Some(is_main),
        phone: phone.map(str::to_owned),
        totp_secret: None,
    };
    SeedFile {
        customer_accounts: vec![SeedAccount {
            name: "Demo Customer".into(),
            users: vec![
                user(
                    "demo-main",
                    "demo-main-password-1",
                    "main@demo.example",
                    true,
                    Some("+420 601 123 456"),
                ),
                user("demo-sub", "demo-sub-password-1", "sub@demo.example", false, None),
            ],
            security_contact: Some(SeedContact {
                name: "Demo Security".into(),
                email: "security@demo.example".into(),
                language: Language::En,
            }),
        }],
    }
}

/// Reads and checks a seed file.
pub fn read_file(path: &std::path::Path) -> Result<SeedFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("reading seed file {} failed: {error}", path.display()))?;
    let seed: SeedFile =
        serde_json::from_str(&text).map_err(|error| format!("seed file {} is invalid: {error}", path.display()))?;
    validate(&seed).map_err(|error| format!("seed file {}: {error}", path.display()))?;
    Ok(seed)
}

/// Checks what the store would not: one main user per account, and factors only with 2FA on.
pub fn validate(seed: &SeedFile) -> Result<(), String> {
    for account in &seed.customer_accounts {
        let mains = account.users.iter().filter(|user| user.is_main).count();
        if mains != 1 {
            return Err(format!(
                "customer account {:?} has {mains} users with is_main: true; it needs exactly one",
                account.name
            ));
        }
        for user in &account.users {
            let two_factor = user.two_factor_enabled.unwrap_or(user.is_main);
            if user.is_main && !two_factor {
                return Err(format!(
                    "user {}: the main account always has 2FA on; drop two_factor_enabled: false",
                    user.username
                ));
            }
            let has_factor = user.phone.is_some() || user.totp_secret.is_some();
            if has_factor && !two_factor {
                return Err(format!(
                    "user {}: a phone or totp_secret needs two_factor_enabled: true",
                    user.username
                ));
            }
        }
    }
    Ok(())
}

/// Creates every customer account of `seed`. An account whose main username is taken already, as
/// in a DynamoDB table kept from an earlier run, is kept as it is and reported without an id.
pub async fn apply(app: &App, seed: &SeedFile) -> Result<Vec<SeededAccount>, AppError> {
    let mut seeded = Vec::new();
    for account in &seed.customer_accounts {
        seeded.push(apply_account(app, account).await?);
    }
    Ok(seeded)
}

async fn apply_account(app: &App, account: &SeedAccount) -> Result<SeededAccount, AppError> {
    let mut users: Vec<&SeedUser> = account.users.iter().collect();
    users.sort_by_key(|user| !user.is_main);
    let mut account_id: Option<String> = None;

    for user in users {
        let new_user = NewUser {
            username: user.username.clone(),
            password: user.password.clone(),
            email: user.email.clone(),
            language: user.language,
            two_factor_enabled: user.two_factor_enabled.unwrap_or(user.is_main),
        };
        let user_id = match &account_id {
            None => match provisioning::create_customer_account(app, &account.name, &new_user).await {
                Ok((created, main)) => {
                    account_id = Some(created.account_id);
                    main.user_id
                }
                Err(AppError::Conflict(_)) => {
                    tracing::warn!(username = %user.username, "main user exists already; its customer account is kept as it is");
                    return Ok(SeededAccount {
                        name: account.name.clone(),
                        account_id: None,
                        users: account.users.clone(),
                        security_contact: None,
                    });
                }
                Err(error) => return Err(error),
            },
            Some(account_id) => {
                provisioning::create_sub_account(app, account_id, &new_user)
                    .await?
                    .user_id
            }
        };
        add_factors(app, &user_id, user).await?;
    }

    if let (Some(contact), Some(account_id)) = (&account.security_contact, &account_id) {
        provisioning::set_security_contact(app, account_id, &contact.name, &contact.email, contact.language).await?;
    }
    Ok(SeededAccount {
        name: account.name.clone(),
        account_id,
        users: account.users.clone(),
        security_contact: account.security_contact.clone(),
    })
}

async fn add_factors(app: &App, user_id: &str, user: &SeedUser) -> Result<(), AppError> {
    if let Some(phone) = &user.phone {
        provisioning::add_active_sms(app, user_id, phone).await?;
    }
    if let Some(secret) = &user.totp_secret {
        let secret = totp::parse_backup_key(secret.expose())
            .map_err(|error| AppError::invalid_field("totp_secret", format!("user {}: {error}", user.username)))?;
        provisioning::add_active_totp(app, user_id, &secret, user.phone.is_none()).await?;
    }
    Ok(())
}

/// Returns the login method a seeded user ends up with, for printing.
pub fn login_method(user: &SeedUser) -> Option<Method> {
    match (&user.phone, &user.totp_secret) {
        (Some(_), _) => Some(Method::Sms),
        (None, Some(_)) => Some(Method::Totp),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use twofa_core::service::users;
    use twofa_core::testing::TestApp;

    use super::*;

    const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/seed-example.json");

    fn parse(json: serde_json::Value) -> Result<SeedFile, String> {
        let seed: SeedFile = serde_json::from_value(json).map_err(|error| error.to_string())?;
        validate(&seed)?;
        Ok(seed)
    }

    #[test]
    fn demo_seed_is_valid() {
        assert_eq!(validate(&demo()), Ok(()));
    }

    #[test]
    fn example_seed_file_is_valid() {
        let seed = read_file(Path::new(EXAMPLE));
        assert!(seed.is_ok(), "{:?}", seed.err());
    }

    #[test]
    fn account_needs_one_main_user() {
        let no_main = parse(serde_json::json!({"customer_accounts": [{"name": "A", "users": [
            {"username": "sub-a", "password": "sub-password-1"}
        ]}]}));
        assert!(no_main.is_err_and(|error| error.contains("exactly one")));

        let two_mains = parse(serde_json::json!({"customer_accounts": [{"name": "A", "users": [
            {"username": "main-a", "password": "main-password-1", "is_main": true},
            {"username": "main-b", "password": "main-password-1", "is_main": true}
        ]}]}));
        assert!(two_mains.is_err_and(|error| error.contains("exactly one")));
    }

    #[test]
    fn factor_needs_two_factor_on() {
        let seed = parse(serde_json::json!({"customer_accounts": [{"name": "A", "users": [
            {"username": "main-a", "password": "main-password-1", "is_main": true},
            {"username": "sub-a", "password": "sub-password-1", "phone": "+420 601 123 456"}
        ]}]}));
        assert!(seed.is_err_and(|error| error.contains("two_factor_enabled: true")));
    }

    #[test]
    fn main_account_keeps_two_factor_on() {
        let seed = parse(serde_json::json!({"customer_accounts": [{"name": "A", "users": [
            {"username": "main-a", "password": "main-password-1", "is_main": true, "two_factor_enabled": false}
        ]}]}));
        assert!(seed.is_err_and(|error| error.contains("always has 2FA on")));
    }

    #[test]
    fn unknown_field_is_rejected() {
        let seed = parse(serde_json::json!({"customer_accounts": [{"name": "A", "users": [
            {"username": "main-a", "password": "main-password-1", "is_main": true, "phone_number": "+420 601 123 456"}
        ]}]}));
        assert!(seed.is_err_and(|error| error.contains("phone_number")));
    }

    #[tokio::test]
    async fn example_seed_creates_factors() {
        let test = TestApp::new();
        let seed = read_file(Path::new(EXAMPLE)).unwrap_or_else(|error| unreachable!("{error}"));
        let seeded = apply(&test.app, &seed)
            .await
            .unwrap_or_else(|error| unreachable!("{error}"));
        assert_eq!(seeded.len(), 1);
        assert!(seeded[0].account_id.is_some());

        let expected = [
            ("example-main", Some(Method::Sms), true),
            ("example-totp", Some(Method::Totp), true),
            ("example-enroll", None, true),
            ("example-plain", None, false),
        ];
        for (username, method, two_factor) in expected {
            let state = users::find_by_username(&test.app, username).await.ok().flatten();
            let state = state.unwrap_or_else(|| unreachable!("{username} was not created"));
            assert_eq!(state.login_method(), method, "{username}: login method");
            assert_eq!(state.is_two_factor_required(), two_factor, "{username}: 2FA");
        }
    }

    #[tokio::test]
    async fn seeding_twice_keeps_existing_account() {
        let test = TestApp::new();
        let first = apply(&test.app, &demo())
            .await
            .unwrap_or_else(|error| unreachable!("{error}"));
        let second = apply(&test.app, &demo())
            .await
            .unwrap_or_else(|error| unreachable!("{error}"));
        assert!(first[0].account_id.is_some());
        assert!(second[0].account_id.is_none());
    }
}
