//! The HTTP routes of the service and the Lambda function that serves each.
//!
//! This table is the single list of routes: the Lambda binaries dispatch through it, the local API
//! serves all of it, and a test checks that `template.yaml` and `docs/openapi.yaml` name the same set.

/// A Lambda function of the service, named as in `template.yaml` and `functions/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    LoginChallenge,
    Sms,
    Otp,
    Settings,
}

impl Function {
    /// Returns the binary and crate name of the function.
    pub fn name(self) -> &'static str {
        match self {
            Function::LoginChallenge => "login-challenge",
            Function::Sms => "sms",
            Function::Otp => "otp",
            Function::Settings => "settings",
        }
    }
}

/// An HTTP route of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Login,
    LoginSmsResend,
    LoginSmsVerify,
    LoginOtpVerify,
    GetSecurity,
    PutLoginMethod,
    PutTwoFactor,
    GetSecurityContact,
    PutSecurityContact,
    PutSmsNumber,
    SendSmsNumberCode,
    VerifySmsNumber,
    DeleteSmsNumber,
    ConnectOtpDevice,
    VerifyOtpDevice,
    DeleteOtpDevice,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub route: Route,
    pub method: &'static str,
    pub path: &'static str,
    pub function: Function,
}

const fn spec(route: Route, method: &'static str, path: &'static str, function: Function) -> RouteSpec {
    RouteSpec {
        route,
        method,
        path,
        function,
    }
}

/// Every route of the HTTP API.
pub const ROUTES: &[RouteSpec] = &[
    spec(Route::Login, "POST", "/login", Function::LoginChallenge),
    spec(Route::LoginSmsResend, "POST", "/login/sms/resend", Function::Sms),
    spec(Route::LoginSmsVerify, "POST", "/login/sms/verify", Function::Sms),
    spec(Route::LoginOtpVerify, "POST", "/login/otp/verify", Function::Otp),
    spec(Route::GetSecurity, "GET", "/security", Function::Settings),
    spec(Route::PutLoginMethod, "PUT", "/security/method", Function::Settings),
    spec(Route::PutTwoFactor, "PUT", "/security/two-factor", Function::Settings),
    spec(
        Route::GetSecurityContact,
        "GET",
        "/account/security-contact",
        Function::Settings,
    ),
    spec(
        Route::PutSecurityContact,
        "PUT",
        "/account/security-contact",
        Function::Settings,
    ),
    spec(Route::PutSmsNumber, "PUT", "/security/sms/number", Function::Sms),
    spec(
        Route::SendSmsNumberCode,
        "POST",
        "/security/sms/number/send-code",
        Function::Sms,
    ),
    spec(
        Route::VerifySmsNumber,
        "POST",
        "/security/sms/number/verify",
        Function::Sms,
    ),
    spec(Route::DeleteSmsNumber, "DELETE", "/security/sms/number", Function::Sms),
    spec(Route::ConnectOtpDevice, "POST", "/security/otp/device", Function::Otp),
    spec(
        Route::VerifyOtpDevice,
        "POST",
        "/security/otp/device/verify",
        Function::Otp,
    ),
    spec(Route::DeleteOtpDevice, "DELETE", "/security/otp/device", Function::Otp),
];

/// The result of matching a method and path against [`ROUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMatch {
    Found(&'static RouteSpec),
    /// The path exists, but not with this method.
    MethodNotAllowed,
    NotFound,
}

/// Finds the route for a method and path. A trailing slash and a stage prefix are not stripped here.
pub fn match_route(method: &str, path: &str) -> RouteMatch {
    let mut path_exists = false;
    for spec in ROUTES {
        if spec.path == path {
            if spec.method.eq_ignore_ascii_case(method) {
                return RouteMatch::Found(spec);
            }
            path_exists = true;
        }
    }
    if path_exists {
        RouteMatch::MethodNotAllowed
    } else {
        RouteMatch::NotFound
    }
}
