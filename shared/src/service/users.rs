//! Loading a user together with its factors.

use serde_json::Value;

use super::App;
use crate::error::AppError;
use crate::model::{Method, OtpDevice, PendingOtpDevice, PendingSmsFactor, SmsFactor, User, UsernameClaim};
use crate::store::{from_item, Order, SK};

/// A user and its factors, as read by one query of the user's partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub user: User,
    pub sms: Option<SmsFactor>,
    pub sms_pending: Option<PendingSmsFactor>,
    pub otp: Option<OtpDevice>,
    pub otp_pending: Option<PendingOtpDevice>,
}

impl UserState {
    /// Returns the active factors, SMS first.
    pub fn active_methods(&self) -> Vec<Method> {
        let mut methods = Vec::new();
        if self.sms.is_some() {
            methods.push(Method::Sms);
        }
        if self.otp.is_some() {
            methods.push(Method::Totp);
        }
        methods
    }

    pub fn has_active_factor(&self) -> bool {
        self.sms.is_some() || self.otp.is_some()
    }

    /// Returns true when the user must pass a second factor: the main account always, a
    /// sub-account when it has switched 2FA on.
    pub fn is_two_factor_required(&self) -> bool {
        self.user.is_main_account || self.user.two_factor_enabled
    }

    /// Returns the method a login challenge uses: the chosen login method when it is active,
    /// else any active factor.
    pub fn login_method(&self) -> Option<Method> {
        let active = self.active_methods();
        match self.user.login_method {
            Some(method) if active.contains(&method) => Some(method),
            _ => active.first().copied(),
        }
    }

    /// Returns true when removing `method` would leave a main account without an active factor.
    pub fn is_last_factor_of_main_account(&self, method: Method) -> bool {
        let active = self.active_methods();
        self.user.is_main_account && active == [method]
    }
}

/// Loads a user and its factors with one strongly consistent query. Expired pending factors are
/// left out by the store.
pub async fn load(app: &App, user_id: &str) -> Result<Option<UserState>, AppError> {
    let page = app
        .store
        .query(&User::partition(user_id), "", Order::Ascending, 10)
        .await?;
    let mut user = None;
    let mut state = (None, None, None, None);
    for item in page.items {
        let sort_key = item.get(SK).and_then(Value::as_str).unwrap_or_default().to_owned();
        match sort_key.as_str() {
            "PROFILE" => user = Some(from_item::<User>(item)?),
            "FACTOR#SMS" => state.0 = Some(from_item::<SmsFactor>(item)?),
            "FACTOR#SMS#PENDING" => state.1 = Some(from_item::<PendingSmsFactor>(item)?),
            "FACTOR#TOTP" => state.2 = Some(from_item::<OtpDevice>(item)?),
            "FACTOR#TOTP#PENDING" => state.3 = Some(from_item::<PendingOtpDevice>(item)?),
            _ => {}
        }
    }
    Ok(user.map(|user| UserState {
        user,
        sms: state.0,
        sms_pending: state.1,
        otp: state.2,
        otp_pending: state.3,
    }))
}

/// Finds a user by username, case-insensitively.
pub async fn find_by_username(app: &App, username: &str) -> Result<Option<UserState>, AppError> {
    let Some(item) = app.store.get(&UsernameClaim::key(username)).await? else {
        return Ok(None);
    };
    let claim: UsernameClaim = from_item(item)?;
    load(app, &claim.user_id).await
}

/// Loads a user that a session or challenge refers to; its absence is an internal error.
pub async fn load_existing(app: &App, user_id: &str) -> Result<UserState, AppError> {
    load(app, user_id).await?.ok_or(AppError::Unauthorized)
}
