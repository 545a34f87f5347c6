//! The Lambda adapter of the HTTP functions: converts API Gateway events into [`ApiRequest`] and
//! [`ApiResponse`] back into the runtime's response, and runs a function's event loop.
//!
//! Both API Gateway payloads are accepted: the HTTP API (payload format 2.0) that the SAM template
//! deploys, and the REST API proxy event (1.0). The client address always comes from the request
//! context that API Gateway fills in, never from `X-Forwarded-For`, which the client controls.

use std::collections::HashMap;

use lambda_http::request::RequestContext;
use lambda_http::tracing::subscriber::filter::{EnvFilter, LevelFilter};
use lambda_http::{service_fn, Body, Request, RequestExt, Response};

use crate::api;
use crate::aws::bootstrap;
use crate::http::{ApiRequest, ApiResponse};
use crate::routes::Function;
use crate::service::App;

/// The source IP recorded when the event carries none, as in a hand-written test event.
pub const UNKNOWN_SOURCE_IP: &str = "unknown";

/// Runs an HTTP function: sets up logging, builds the [`App`] once at cold start and serves
/// every invocation with [`handle`].
pub async fn run_http_function(function: Function) -> Result<(), lambda_http::Error> {
    init_tracing();
    let app = app_at_cold_start(function.name()).await?;
    lambda_http::run(service_fn(|request| handle(&app, function, request))).await
}

/// Builds the [`App`] of a function at cold start from the environment.
///
/// Each configuration problem is logged on its own line and the error is returned, so the process
/// exits non-zero and Lambda reports an init error instead of serving with bad settings.
pub async fn app_at_cold_start(function: &str) -> Result<App, bootstrap::BootstrapError> {
    match bootstrap::app_from_env().await {
        Ok(app) => {
            tracing::info!(function, "cold start complete");
            Ok(app)
        }
        Err(error) => {
            for problem in error.problems() {
                tracing::error!(function, problem = %problem, "cold start failed");
            }
            Err(error)
        }
    }
}

/// Serves one invocation through the same dispatch as the local API. Every failure is already an
/// HTTP response, so this never returns an error; an `Err` would reach the client as a 502.
pub async fn handle(app: &App, function: Function, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    let request = to_api_request(request);
    let response = api::handle(app, request, Some(function)).await;
    Ok(to_lambda_response(response))
}

/// Converts an API Gateway request into an [`ApiRequest`].
///
/// The path is the one the client called without the stage; header names are lower-case, and
/// repeated headers are joined with `", "`. `lambda_http` has already decoded a base64 body.
pub fn to_api_request(request: Request) -> ApiRequest {
    let context = request.request_context_ref();
    let path = path_without_stage(request.raw_http_path(), context);
    let source_ip = context
        .and_then(source_ip_of)
        .unwrap_or_else(|| UNKNOWN_SOURCE_IP.to_owned());
    let request_id = context
        .and_then(request_id_of)
        .or_else(|| request.lambda_context_ref().map(|lambda| lambda.request_id.clone()))
        .unwrap_or_default();

    let mut headers: HashMap<String, String> = HashMap::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }

    let method = request.method().as_str().to_owned();
    let body = match request.into_body() {
        Body::Empty => Vec::new(),
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };

    ApiRequest {
        method,
        path,
        headers,
        body,
        source_ip,
        request_id,
    }
}

/// Converts an [`ApiResponse`] into the response the runtime returns to API Gateway.
pub fn to_lambda_response(response: ApiResponse) -> Response<Body> {
    let mut builder = Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    match builder.body(Body::Text(response.body)) {
        Ok(response) => response,
        Err(error) => {
            // Only an invalid header name or value gets here, and every header is our own.
            tracing::error!(reason = %error, "building the Lambda response failed");
            let mut fallback = Response::new(Body::Text(
                r#"{"error":"internal_error","message":"internal error"}"#.to_owned(),
            ));
            *fallback.status_mut() = lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        }
    }
}

/// Sets up logging as the runtime's default subscriber does: the level from `AWS_LAMBDA_LOG_LEVEL`
/// (else `RUST_LOG`, else INFO), JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON`, no timestamps (the
/// Lambda log adds them). Unlike the default, the AWS SDK's own logs stay at WARN; see [`log_filter`].
pub fn init_tracing() {
    let subscriber = lambda_http::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(log_filter(LevelFilter::INFO));
    let is_json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    // A second initialisation, as in tests that run several functions, keeps the first subscriber.
    let _ = if is_json {
        subscriber.json().try_init()
    } else {
        subscriber.try_init()
    };
}

/// Builds the log filter of the functions and tools: the level from `AWS_LAMBDA_LOG_LEVEL`, else the
/// directives of `RUST_LOG`, else `default`. The AWS SDK, its HTTP client and TLS stay at WARN
/// whatever the level, because at DEBUG and below they log whole requests, secrets included.
pub fn log_filter(default: LevelFilter) -> EnvFilter {
    let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .and_then(|level| level.parse::<LevelFilter>().ok());
    let builder = EnvFilter::builder().with_default_directive(lambda_level.unwrap_or(default).into());
    let mut filter = match (lambda_level, std::env::var("RUST_LOG")) {
        (None, Ok(directives)) => builder.parse_lossy(directives),
        _ => builder.parse_lossy(""),
    };
    for target in QUIET_TARGETS {
        if let Ok(directive) = format!("{target}=warn").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Log targets held at WARN by [`log_filter`].
const QUIET_TARGETS: &[&str] = &[
    "aws_config",
    "aws_runtime",
    "aws_sdk_dynamodb",
    "aws_sdk_secretsmanager",
    "aws_sdk_sesv2",
    "aws_sdk_sns",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "h2",
    "hyper",
    "hyper_util",
    "rustls",
];

/// Strips the stage from an HTTP API path. HTTP API events carry it in `rawPath` when the stage is
/// not `$default` (`/prod/login`), except through a custom domain, where the path has no stage
/// segment and is kept as it is. REST API events carry the path without the stage.
fn path_without_stage(raw_path: &str, context: Option<&RequestContext>) -> String {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    let stage = match context {
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.as_deref(),
        _ => None,
    };
    match stage {
        Some(stage) if stage != "$default" && !stage.is_empty() => {
            let prefix = format!("/{stage}");
            match path.strip_prefix(&prefix) {
                Some("") => "/".to_owned(),
                Some(rest) if rest.starts_with('/') => rest.to_owned(),
                _ => path.to_owned(),
            }
        }
        _ => path.to_owned(),
    }
}

fn source_ip_of(context: &RequestContext) -> Option<String> {
    let source_ip = match context {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.clone(),
        RequestContext::ApiGatewayV1(context) => context.identity.source_ip.clone(),
        _ => None,
    };
    source_ip.filter(|ip| !ip.trim().is_empty())
}

fn request_id_of(context: &RequestContext) -> Option<String> {
    let request_id = match context {
        RequestContext::ApiGatewayV2(context) => context.request_id.clone(),
        RequestContext::ApiGatewayV1(context) => context.request_id.clone(),
        _ => None,
    };
    request_id.filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_api_event(stage: &str, raw_path: &str, body: &str, is_base64: bool) -> String {
        serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /login",
            "rawPath": raw_path,
            "rawQueryString": "",
            "headers": {
                "Content-Type": "application/json",
                "x-forwarded-for": "203.0.113.99",
                "authorization": "Bearer abc"
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "api.example.com",
                "http": {"method": "POST", "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.10", "userAgent": "curl"},
                "requestId": "req-v2",
                "routeKey": "POST /login",
                "stage": stage,
                "time": "01/Jan/2026:00:00:00 +0000",
                "timeEpoch": 1767225600000_i64
            },
            "body": body,
            "isBase64Encoded": is_base64
        })
        .to_string()
    }

    fn rest_api_event() -> String {
        serde_json::json!({
            "resource": "/security",
            "path": "/security",
            "httpMethod": "GET",
            "headers": {"Authorization": "Bearer xyz", "X-Forwarded-For": "203.0.113.99"},
            "multiValueHeaders": {"Authorization": ["Bearer xyz"], "X-Forwarded-For": ["203.0.113.99"]},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "httpMethod": "GET",
                "path": "/prod/security",
                "requestId": "req-v1",
                "resourcePath": "/security",
                "stage": "prod",
                "identity": {"sourceIp": "198.51.100.20"}
            },
            "body": null,
            "isBase64Encoded": false
        })
        .to_string()
    }

    fn convert(event: &str) -> ApiRequest {
        let request =
            lambda_http::request::from_str(event).unwrap_or_else(|error| unreachable!("bad test event: {error}"));
        to_api_request(request)
    }

    #[test]
    fn http_api_event_converts() {
        let request = convert(&http_api_event("$default", "/login", r#"{"username":"a"}"#, false));
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/login");
        assert_eq!(request.body, br#"{"username":"a"}"#);
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.bearer_token(), Some("abc"));
        assert_eq!(request.request_id, "req-v2");
    }

    #[test]
    fn source_ip_ignores_forwarded_for() {
        let request = convert(&http_api_event("$default", "/login", "", false));
        assert_eq!(request.source_ip, "198.51.100.10");
        let request = convert(&rest_api_event());
        assert_eq!(request.source_ip, "198.51.100.20");
    }

    #[test]
    fn named_stage_is_stripped() {
        let request = convert(&http_api_event("prod", "/prod/login", "", false));
        assert_eq!(request.path, "/login");
        let request = convert(&http_api_event("prod", "/login", "", false));
        assert_eq!(request.path, "/login");
        let request = convert(&http_api_event("prod", "/prod", "", false));
        assert_eq!(request.path, "/");
    }

    #[test]
    fn rest_api_event_converts() {
        let request = convert(&rest_api_event());
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/security");
        assert_eq!(request.bearer_token(), Some("xyz"));
        assert_eq!(request.request_id, "req-v1");
        assert!(request.body.is_empty());
    }

    #[test]
    fn base64_body_is_decoded() {
        let request = convert(&http_api_event("$default", "/login", "eyJhIjoxfQ==", true));
        assert_eq!(request.body, br#"{"a":1}"#);
    }

    #[test]
    fn response_keeps_status_headers_body() {
        let mut response = ApiResponse::json(429, &serde_json::json!({"error": "rate_limited"}));
        response.headers.push(("retry-after".into(), "30".into()));
        let converted = to_lambda_response(response);
        assert_eq!(converted.status(), 429);
        assert_eq!(
            converted
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok()),
            Some("30")
        );
        assert_eq!(
            converted
                .headers()
                .get("content-type")
                .and_then(|value| value.to_str().ok()),
            Some("application/json")
        );
        assert!(matches!(converted.body(), Body::Text(text) if text.contains("rate_limited")));
    }
}
