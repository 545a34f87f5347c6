//! Sessions: issuing tokens, checking them, and the "fresh" and "enrollment" rules.
//!
//! A token is 32 random bytes in base64url; only its SHA-256 is stored. A session is valid while
//! it has not expired and its epoch equals the user's session epoch, so bumping the epoch revokes
//! every other session of the user at once. "Fresh" means the login that created the session
//! completed at most [`FRESH_SECONDS`] ago.

use serde::Serialize;

use super::users::{self, UserState};
use super::App;
use crate::crypto;
use crate::error::AppError;
use crate::http::ApiRequest;
use crate::model::{Session, SessionKind};
use crate::secret::SecretString;
use crate::store::{from_item, to_item, Condition, Write};

/// Lifetime of a full session.
pub const FULL_SESSION_SECONDS: i64 = 8 * 60 * 60;
/// Lifetime of an enrollment session.
pub const ENROLLMENT_SESSION_SECONDS: i64 = 10 * 60;
/// The maximum age, in seconds, of the last full login for a session to count as fresh.
pub const FRESH_SECONDS: i64 = 5 * 60;

/// A newly issued session: the token for the client and the write that stores it.
pub struct IssuedSession {
    pub token: SecretString,
    pub kind: SessionKind,
    pub expires_at: i64,
    pub write: Write,
}

/// The body returned when a login step completes.
#[derive(Debug, Serialize)]
pub struct SessionBody<'a> {
    pub status: &'static str,
    pub session_token: &'a str,
    pub expires_at: i64,
}

impl IssuedSession {
    /// Returns the response body: `authenticated` for a full session, `enrollment` otherwise.
    pub fn body(&self) -> SessionBody<'_> {
        let status = match self.kind {
            SessionKind::Full => "authenticated",
            SessionKind::Enrollment => "enrollment",
        };
        SessionBody {
            status,
            session_token: self.token.expose(),
            expires_at: self.expires_at,
        }
    }
}

/// Prepares a session of `kind` for a user whose login completed now, under the given epoch.
pub fn issue(app: &App, user_id: &str, kind: SessionKind, epoch: i64) -> Result<IssuedSession, AppError> {
    let now = app.now();
    let token = crypto::new_session_token(app.random.as_ref());
    let lifetime = match kind {
        SessionKind::Full => FULL_SESSION_SECONDS,
        SessionKind::Enrollment => ENROLLMENT_SESSION_SECONDS,
    };
    let session = Session {
        user_id: user_id.to_owned(),
        kind,
        authenticated_at: now,
        expires_at: now + lifetime,
        epoch,
    };
    let key = Session::key(&crypto::hash_session_token(token.expose()));
    let item = to_item(&key, &session)?;
    let write = Write::Put {
        item,
        condition: Some(Condition::NotExists),
    };
    Ok(IssuedSession {
        token,
        kind,
        expires_at: session.expires_at,
        write,
    })
}

/// A request's valid session and its user.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub token_hash: String,
    pub session: Session,
    pub state: UserState,
}

/// The access rule of a route: the sessions it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any full session.
    Full,
    /// A full session that is fresh.
    Fresh,
    /// A fresh full session, or an enrollment session of a user who still has no active factor.
    FreshOrEnrollment,
}

/// Checks the bearer token of a request and the access rule of the route.
pub async fn authenticate(app: &App, request: &ApiRequest, access: Access) -> Result<Authenticated, AppError> {
    let token = request.bearer_token().ok_or(AppError::Unauthorized)?;
    if token.len() > 100 {
        return Err(AppError::Unauthorized);
    }
    let token_hash = crypto::hash_session_token(token);
    let item = app
        .store
        .get(&Session::key(&token_hash))
        .await?
        .ok_or(AppError::Unauthorized)?;
    let session: Session = from_item(item)?;
    let now = app.now();
    if session.expires_at <= now {
        return Err(AppError::Unauthorized);
    }
    let state = users::load(app, &session.user_id)
        .await?
        .ok_or(AppError::Unauthorized)?;
    if session.epoch != state.user.session_epoch {
        return Err(AppError::Unauthorized);
    }
    let authenticated = Authenticated {
        token_hash,
        session,
        state,
    };
    authenticated.check(access, now)?;
    Ok(authenticated)
}

impl Authenticated {
    /// Applies an access rule to this session at time `now`.
    pub fn check(&self, access: Access, now: i64) -> Result<(), AppError> {
        let is_fresh = now - self.session.authenticated_at <= FRESH_SECONDS;
        match (self.session.kind, access) {
            (SessionKind::Full, Access::Full) => Ok(()),
            (SessionKind::Full, Access::Fresh | Access::FreshOrEnrollment) if is_fresh => Ok(()),
            (SessionKind::Full, _) => Err(AppError::ReauthenticationRequired),
            (SessionKind::Enrollment, Access::FreshOrEnrollment) if !self.state.has_active_factor() => Ok(()),
            (SessionKind::Enrollment, _) => Err(AppError::Forbidden(
                "an enrollment session can only enroll a first factor".into(),
            )),
        }
    }

    pub fn is_enrollment(&self) -> bool {
        self.session.kind == SessionKind::Enrollment
    }

    pub fn user_id(&self) -> &str {
        &self.state.user.user_id
    }
}
