//! Framework-neutral HTTP request and response types, and request parsing at the edge.
//!
//! The Lambda adapter and the local server both convert their native requests into
//! [`ApiRequest`], so every route runs through the same handler code.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::AppError;

/// The largest request body accepted, in bytes. Every body of the API fits in far less.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// An HTTP request as the handlers see it.
#[derive(Clone, Default)]
pub struct ApiRequest {
    pub method: String,
    /// The path without the API Gateway stage, such as `/login`.
    pub path: String,
    /// Headers with lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The client address from the API Gateway request context, never from a client header.
    pub source_ip: String,
    pub request_id: String,
}

impl std::fmt::Debug for ApiRequest {
    /// Prints only what is safe to log: bodies and headers can carry passwords, codes and tokens.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ApiRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl ApiRequest {
    /// Returns a header by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Returns the bearer token of the `Authorization` header, if any.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }

    /// Parses the JSON body into `T`, naming the field at fault on error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        parse_json_body(self.header("content-type"), &self.body)
    }
}

/// Parses a JSON request body, rejecting oversized bodies, other content types and bad JSON with an
/// `invalid_request` error that names the field when one is at fault.
pub fn parse_json_body<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T, AppError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(AppError::invalid_request(format!(
            "request body exceeds {MAX_BODY_BYTES} bytes"
        )));
    }
    if let Some(content_type) = content_type {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return Err(AppError::invalid_request("content type must be application/json"));
        }
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        json_error(&path, &inner)
    })?;
    deserializer
        .end()
        .map_err(|_| AppError::invalid_request("request body has data after the JSON value"))?;
    Ok(parsed)
}

/// Turns a serde error into an `invalid_request` naming the field.
fn json_error(path: &str, error: &serde_json::Error) -> AppError {
    let text = error.to_string();
    let description = text.split(" at line ").next().unwrap_or_default();
    if let Some(field) = description
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return AppError::invalid_field(field, format!("missing field {field}"));
    }
    if error.is_syntax() || error.is_eof() {
        return AppError::invalid_request("request body is not valid JSON");
    }
    // A path such as `[0]` means the body was an array, not an object with fields.
    let names_a_field = path.starts_with(|first: char| first.is_ascii_alphabetic() || first == '_');
    if !names_a_field {
        return AppError::invalid_request("request body must be a JSON object");
    }
    AppError::invalid_field(path, format!("invalid {path}: {description}"))
}

/// An HTTP response as the handlers produce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl ApiResponse {
    /// Builds a JSON response. If serialisation fails, the client gets a 500 rather than a
    /// half-written body.
    pub fn json<T: Serialize>(status: u16, body: &T) -> Self {
        match serde_json::to_string(body) {
            Ok(body) => Self::with_json_body(status, body),
            Err(_) => Self::error(&AppError::Internal("response serialisation failed".into())),
        }
    }

    /// Builds `200 {"status": "ok"}`.
    pub fn ok() -> Self {
        Self::with_json_body(200, r#"{"status":"ok"}"#.to_owned())
    }

    /// Builds the error response of an [`AppError`], with `Retry-After` when it has one.
    pub fn error(error: &AppError) -> Self {
        let mut response = Self::json(error.status(), &error.body());
        if let Some(seconds) = error.retry_after() {
            response
                .headers
                .push(("retry-after".into(), seconds.max(1).to_string()));
        }
        response
    }

    fn with_json_body(status: u16, body: String) -> Self {
        let headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("cache-control".to_owned(), "no-store".to_owned()),
        ];
        Self { status, headers, body }
    }

    /// Returns a header by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        code: String,
        #[allow(dead_code)]
        enabled: Option<bool>,
    }

    fn field_of(body: &str) -> Option<String> {
        match parse_json_body::<Body>(None, body.as_bytes()) {
            Err(AppError::InvalidRequest { field, .. }) => field,
            other => Some(format!("unexpected {other:?}")),
        }
    }

    #[test]
    fn missing_field_is_named() {
        assert_eq!(field_of("{}"), Some("code".into()));
        assert_eq!(field_of(""), Some("code".into()));
    }

    #[test]
    fn wrong_type_is_named() {
        assert_eq!(field_of(r#"{"code": 123456}"#), Some("code".into()));
        assert_eq!(field_of(r#"{"code": "1", "enabled": "yes"}"#), Some("enabled".into()));
    }

    #[test]
    fn malformed_json_is_invalid_request() {
        assert_eq!(field_of("{\"code\": "), None);
        assert_eq!(field_of("[1,2"), None);
        assert_eq!(field_of(r#"{"code": "1"} trailing"#), None);
    }

    #[test]
    fn oversized_body_is_rejected() {
        let body = format!(r#"{{"code": "{}"}}"#, "1".repeat(MAX_BODY_BYTES));
        assert!(matches!(
            parse_json_body::<Body>(None, body.as_bytes()),
            Err(AppError::InvalidRequest { .. })
        ));
    }

    #[test]
    fn other_content_type_is_rejected() {
        let result = parse_json_body::<Body>(Some("text/plain"), br#"{"code": "1"}"#);
        assert!(matches!(result, Err(AppError::InvalidRequest { .. })));
        let result = parse_json_body::<Body>(Some("application/json; charset=utf-8"), br#"{"code": "1"}"#);
        assert!(result.is_ok());
    }

    #[test]
    fn bearer_token_is_read() {
        let mut request = ApiRequest::default();
        request.headers.insert("authorization".into(), "Bearer abc".into());
        assert_eq!(request.bearer_token(), Some("abc"));
        request.headers.insert("authorization".into(), "Basic abc".into());
        assert_eq!(request.bearer_token(), None);
    }
}
