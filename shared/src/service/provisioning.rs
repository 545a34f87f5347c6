//! Provisioning of customer accounts and users, for the admin tool, the local run's seed and tests.
//!
//! Every invariant is kept by the store: a username is claimed with a conditional put in the same
//! transaction that creates the user, so two concurrent creations cannot both take it.

use super::audit::{self, AuditEntry};
use super::change::outbox_writes;
use super::security_contact;
use super::users::{self, UserState};
use super::App;
use crate::crypto;
use crate::error::AppError;
use crate::model::{
    user_attr, AccountMember, CustomerAccount, Language, Method, NotificationEvent, OtpDevice, PendingOtpDevice,
    PendingSmsFactor, Recipient, SmsFactor, User, UsernameClaim,
};
use crate::phone::PhoneNumber;
use crate::secret::{SecretBytes, SecretString};
use crate::store::{to_item, Condition, StoreError, Update, Write};
use crate::totp::TotpParams;

/// The source recorded in audit and notification records for changes made by the admin tool.
pub const ADMIN_SOURCE: &str = "admin-tool";

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password: SecretString,
    pub email: Option<String>,
    pub language: Language,
    /// For a sub-account; the main account always has 2FA on.
    pub two_factor_enabled: bool,
}

/// Checks a username: 3 to 64 characters of letters, digits and `.`, `_`, `-`, `@`.
pub fn validate_username(username: &str) -> Result<(), AppError> {
    let is_valid = (3..=64).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if is_valid {
        Ok(())
    } else {
        Err(AppError::invalid_field(
            "username",
            "username must be 3 to 64 letters, digits or . _ - @",
        ))
    }
}

/// Checks a password: 12 to 256 characters.
pub fn validate_password(password: &SecretString) -> Result<(), AppError> {
    let length = password.expose().chars().count();
    if (12..=256).contains(&length) {
        Ok(())
    } else {
        Err(AppError::invalid_field(
            "password",
            "password must be 12 to 256 characters",
        ))
    }
}

/// Checks an email address loosely: one `@` with text on both sides, no spaces, at most 254 bytes.
pub fn validate_email(field: &str, email: &str) -> Result<(), AppError> {
    let parts: Vec<&str> = email.split('@').collect();
    let is_valid = email.len() <= 254
        && parts.len() == 2
        && parts.iter().all(|part| !part.is_empty())
        && parts[1].contains('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if is_valid {
        Ok(())
    } else {
        Err(AppError::invalid_field(
            field,
            format!("{field} is not a valid email address"),
        ))
    }
}

fn build_user(app: &App, account_id: &str, new_user: &NewUser, is_main_account: bool) -> Result<User, AppError> {
    validate_username(&new_user.username)?;
    validate_password(&new_user.password)?;
    if let Some(email) = &new_user.email {
        validate_email("email", email)?;
    }
    let password_hash = crypto::hash_password(&new_user.password, app.random.as_ref())
        .map_err(|error| AppError::Internal(format!("password hashing failed: {error}")))?;
    Ok(User {
        user_id: app.new_id(),
        username: new_user.username.clone(),
        account_id: account_id.to_owned(),
        is_main_account,
        email: new_user.email.clone(),
        language: new_user.language,
        password_hash,
        two_factor_enabled: is_main_account || new_user.two_factor_enabled,
        login_method: None,
        session_epoch: 0,
        factor_failures: 0,
        factor_locked_until: 0,
        password_failures: 0,
        password_locked_until: 0,
        created_at: app.now(),
    })
}

/// Builds the writes that create a user and claim its username.
fn user_writes(user: &User) -> Result<Vec<Write>, AppError> {
    let claim = UsernameClaim {
        user_id: user.user_id.clone(),
    };
    let member = AccountMember {
        user_id: user.user_id.clone(),
        username: user.username.clone(),
        is_main_account: user.is_main_account,
    };
    Ok(vec![
        Write::Put {
            item: to_item(&UsernameClaim::key(&user.username), &claim)?,
            condition: Some(Condition::NotExists),
        },
        Write::Put {
            item: to_item(&User::key(&user.user_id), user)?,
            condition: Some(Condition::NotExists),
        },
        Write::Put {
            item: to_item(&AccountMember::key(&user.account_id, &user.user_id), &member)?,
            condition: Some(Condition::NotExists),
        },
    ])
}

fn username_taken(error: StoreError) -> AppError {
    match error {
        StoreError::ConditionFailed { .. } => AppError::Conflict("the username is already taken".into()),
        other => other.into(),
    }
}

/// Creates a customer account with its main account user.
pub async fn create_customer_account(
    app: &App,
    name: &str,
    main: &NewUser,
) -> Result<(CustomerAccount, User), AppError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(AppError::invalid_field(
            "name",
            "account name must be 1 to 200 characters",
        ));
    }
    let account_id = app.new_id();
    let user = build_user(app, &account_id, main, true)?;
    let account = CustomerAccount {
        account_id: account_id.clone(),
        name: name.trim().to_owned(),
        main_user_id: user.user_id.clone(),
        created_at: app.now(),
    };
    let mut writes = user_writes(&user)?;
    writes.push(Write::Put {
        item: to_item(&CustomerAccount::key(&account_id), &account)?,
        condition: Some(Condition::NotExists),
    });
    writes.push(audit::record(app, &user.user_id, admin_entry("user_created"))?);
    app.store.transact(writes).await.map_err(username_taken)?;
    Ok((account, user))
}

/// Creates a sub-account in an existing customer account.
pub async fn create_sub_account(app: &App, account_id: &str, new_user: &NewUser) -> Result<User, AppError> {
    let user = build_user(app, account_id, new_user, false)?;
    let mut writes = user_writes(&user)?;
    writes.push(Write::Check {
        key: CustomerAccount::key(account_id),
        condition: Condition::Exists,
    });
    writes.push(audit::record(app, &user.user_id, admin_entry("user_created"))?);
    match app.store.transact(writes).await {
        Err(StoreError::ConditionFailed { index: Some(3) }) => {
            Err(AppError::NotFound(format!("customer account {account_id} not found")))
        }
        other => other.map_err(username_taken),
    }?;
    Ok(user)
}

fn admin_entry(event: &'static str) -> AuditEntry<'static> {
    AuditEntry {
        event,
        outcome: "success",
        method: None,
        source_ip: ADMIN_SOURCE,
        detail: None,
    }
}

/// Loads a user by username, or returns `not_found`.
pub async fn require_user(app: &App, username: &str) -> Result<UserState, AppError> {
    users::find_by_username(app, username)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("user {username} not found")))
}

/// Sets a user's password and clears its password lockout.
pub async fn set_password(app: &App, username: &str, password: &SecretString) -> Result<(), AppError> {
    validate_password(password)?;
    let state = require_user(app, username).await?;
    let hash = crypto::hash_password(password, app.random.as_ref())
        .map_err(|error| AppError::Internal(format!("password hashing failed: {error}")))?;
    let update = Update::new()
        .set(user_attr::PASSWORD_HASH, hash)
        .set(user_attr::PASSWORD_FAILURES, 0)
        .set(user_attr::PASSWORD_LOCKED_UNTIL, 0)
        .add(user_attr::SESSION_EPOCH, 1);
    let user_id = &state.user.user_id;
    app.store
        .transact(vec![
            Write::Update {
                key: User::key(user_id),
                update,
                condition: Some(Condition::Exists),
            },
            audit::record(app, user_id, admin_entry("password_set"))?,
        ])
        .await?;
    Ok(())
}

/// Sets the Security contact of a customer account, replacing any previous holder, and notifies
/// both the previous and the new holder.
pub async fn set_security_contact(
    app: &App,
    account_id: &str,
    name: &str,
    email: &str,
    language: Language,
) -> Result<(), AppError> {
    let input = security_contact::ContactInput::new(name, email, language)?;
    let account = app
        .store
        .get(&CustomerAccount::key(account_id))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("customer account {account_id} not found")))?;
    let account: CustomerAccount = crate::store::from_item(account)?;
    let main = users::load_existing(app, &account.main_user_id).await?;
    let previous = security_contact::load(app, account_id).await?;
    let new_contact = Recipient {
        email: input.email.clone(),
        language: input.language,
    };
    let mut writes = vec![
        security_contact::replace_write(app, account_id, previous.as_ref(), &input)?,
        audit::record(app, &main.user.user_id, admin_entry("security_contact_set"))?,
    ];
    writes.extend(
        outbox_writes(
            app,
            &main.user,
            NotificationEvent::SecurityContactChanged,
            ADMIN_SOURCE,
            None,
            previous.as_ref().map(security_contact::recipient),
            Some(new_contact),
        )
        .await?,
    );
    app.store.transact(writes).await.map_err(|error| match error {
        StoreError::ConditionFailed { .. } => {
            AppError::Conflict("the Security contact changed at the same time; retry".into())
        }
        other => other.into(),
    })
}

/// Resets a user's 2FA: removes its factors, clears lockouts, revokes its sessions, and notifies
/// the Security contact. The user enrolls a factor again at the next login.
pub async fn reset_two_factor(app: &App, username: &str) -> Result<(), AppError> {
    let state = require_user(app, username).await?;
    let user_id = &state.user.user_id;
    let update = Update::new()
        .set(user_attr::FACTOR_FAILURES, 0)
        .set(user_attr::FACTOR_LOCKED_UNTIL, 0)
        .set(user_attr::PASSWORD_FAILURES, 0)
        .set(user_attr::PASSWORD_LOCKED_UNTIL, 0)
        .remove(user_attr::LOGIN_METHOD)
        .add(user_attr::SESSION_EPOCH, 1);
    let writes = vec![
        Write::Update {
            key: User::key(user_id),
            update,
            condition: Some(Condition::Exists),
        },
        Write::Delete {
            key: SmsFactor::key(user_id),
            condition: None,
        },
        Write::Delete {
            key: PendingSmsFactor::key(user_id),
            condition: None,
        },
        Write::Delete {
            key: OtpDevice::key(user_id),
            condition: None,
        },
        Write::Delete {
            key: PendingOtpDevice::key(user_id),
            condition: None,
        },
    ];
    commit_admin_change(
        app,
        &state.user,
        writes,
        "two_factor_reset",
        NotificationEvent::AdminReset,
        None,
    )
    .await
}

/// Commits the writes of an administrator's 2FA change of `user` together with its audit record
/// and its notification.
async fn commit_admin_change(
    app: &App,
    user: &User,
    mut writes: Vec<Write>,
    audit_event: &'static str,
    event: NotificationEvent,
    detail: Option<String>,
) -> Result<(), AppError> {
    writes.push(audit::record(app, &user.user_id, admin_entry(audit_event))?);
    writes.extend(outbox_writes(app, user, event, ADMIN_SOURCE, detail, None, None).await?);
    app.store.transact(writes).await?;
    Ok(())
}

/// Stores an active SMS factor directly, for seeds and test fixtures. It writes no audit record and
/// no notification; [`admin_add_sms`] is the audited form.
pub async fn add_active_sms(app: &App, user_id: &str, phone: &str) -> Result<(), AppError> {
    let phone = parse_phone(app, phone)?;
    let update = Update::new().set(user_attr::LOGIN_METHOD, Method::Sms.as_str());
    app.store
        .transact(sms_factor_writes(app, user_id, &phone, update)?)
        .await?;
    Ok(())
}

/// Stores an active SMS number for `username` as an administrator and makes it the login method.
/// The audit record, the notification and the end of the user's sessions commit with it, as for
/// any 2FA change. Returns the user's id and the masked number.
pub async fn admin_add_sms(app: &App, username: &str, phone: &str) -> Result<(String, String), AppError> {
    let phone = parse_phone(app, phone)?;
    let state = require_user(app, username).await?;
    let user_id = &state.user.user_id;
    let update = Update::new()
        .set(user_attr::LOGIN_METHOD, Method::Sms.as_str())
        .add(user_attr::SESSION_EPOCH, 1);

    let writes = sms_factor_writes(app, user_id, &phone, update)?;
    let event = NotificationEvent::SmsNumberVerified;
    commit_admin_change(app, &state.user, writes, "admin_sms_added", event, Some(phone.masked())).await?;
    Ok((user_id.clone(), phone.masked()))
}

fn parse_phone(app: &App, phone: &str) -> Result<PhoneNumber, AppError> {
    app.phone_policy
        .parse(phone)
        .map_err(|error| AppError::invalid_field("phone", error.to_string()))
}

/// Builds the writes that store `phone` as the user's active number, with `user_update` applied
/// to the user item.
fn sms_factor_writes(
    app: &App,
    user_id: &str,
    phone: &PhoneNumber,
    user_update: Update,
) -> Result<Vec<Write>, AppError> {
    let factor = SmsFactor {
        phone_e164: phone.as_e164().to_owned(),
        verified_at: app.now(),
    };
    Ok(vec![
        Write::Put {
            item: to_item(&SmsFactor::key(user_id), &factor)?,
            condition: None,
        },
        Write::Update {
            key: User::key(user_id),
            update: user_update,
            condition: Some(Condition::Exists),
        },
    ])
}

/// Stores an active OTP device with a given secret directly, for seeds and test fixtures. It writes
/// no audit record and no notification; [`admin_add_totp`] is the audited form.
pub async fn add_active_totp(
    app: &App,
    user_id: &str,
    secret: &SecretBytes,
    make_login_method: bool,
) -> Result<(), AppError> {
    let mut update = Update::new();
    if make_login_method {
        update = update.set(user_attr::LOGIN_METHOD, Method::Totp.as_str());
    }
    app.store
        .transact(otp_device_writes(app, user_id, secret, update)?)
        .await?;
    Ok(())
}

/// Stores an active OTP device with a given secret for `username` as an administrator. It becomes
/// the login method when the user has no active factor. The audit record, the notification and the
/// end of the user's sessions commit with it. Returns the user's id and its login method afterwards.
pub async fn admin_add_totp(app: &App, username: &str, secret: &SecretBytes) -> Result<(String, Method), AppError> {
    let state = require_user(app, username).await?;
    let user_id = &state.user.user_id;
    let login_method = state.login_method().unwrap_or(Method::Totp);
    let update = Update::new()
        .set(user_attr::LOGIN_METHOD, login_method.as_str())
        .add(user_attr::SESSION_EPOCH, 1);

    let writes = otp_device_writes(app, user_id, secret, update)?;
    let event = NotificationEvent::OtpDeviceActivated;
    commit_admin_change(app, &state.user, writes, "admin_otp_device_added", event, None).await?;
    Ok((user_id.clone(), login_method))
}

/// Builds the writes that store a new active OTP device on `secret`, with `user_update` applied
/// to the user item (an empty update only checks that the user exists).
fn otp_device_writes(
    app: &App,
    user_id: &str,
    secret: &SecretBytes,
    user_update: Update,
) -> Result<Vec<Write>, AppError> {
    let device = OtpDevice {
        device_id: app.new_id(),
        sealed_secret: app
            .keys
            .seal(secret.expose(), user_id.as_bytes(), app.random.as_ref())
            .map_err(|error| AppError::Internal(format!("sealing the secret failed: {error}")))?,
        params: TotpParams::issued(),
        activated_at: app.now(),
        last_step: None,
    };
    let user_write = if user_update.is_empty() {
        Write::Check {
            key: User::key(user_id),
            condition: Condition::Exists,
        }
    } else {
        Write::Update {
            key: User::key(user_id),
            update: user_update,
            condition: Some(Condition::Exists),
        }
    };
    Ok(vec![
        Write::Put {
            item: to_item(&OtpDevice::key(user_id), &device)?,
            condition: None,
        },
        user_write,
    ])
}
