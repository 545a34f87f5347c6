//! The local HTTP server: every API route through `twofa_core::api::handle`, as in Lambda, and
//! `GET /_local/outbox` listing the SMS and emails sent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use twofa_core::error::AppError;
use twofa_core::http::{ApiRequest, ApiResponse, MAX_BODY_BYTES};
use twofa_core::ports::RecordingOutbox;
use twofa_core::service::App;

/// State shared by every request of the local server.
pub struct LocalState {
    pub app: Arc<App>,
    /// The recorded messages, `None` with `--aws-messaging`.
    pub outbox: Option<Arc<RecordingOutbox>>,
    requests: AtomicU64,
}

impl LocalState {
    pub fn new(app: Arc<App>, outbox: Option<Arc<RecordingOutbox>>) -> Self {
        Self {
            app,
            outbox,
            requests: AtomicU64::new(0),
        }
    }
}

/// Builds the router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`, because
/// the socket peer is the source IP of every request.
pub fn router(state: Arc<LocalState>) -> Router {
    Router::new()
        .route("/_local/outbox", get(list_outbox))
        .fallback(serve_api)
        .with_state(state)
}

/// Serves one API request through the same dispatch as the Lambda functions, all routes at once.
async fn serve_api(
    State(state): State<Arc<LocalState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let number = state.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let request = match to_api_request(request, peer, format!("local-{number}")).await {
        Ok(request) => request,
        Err(error) => return to_axum_response(ApiResponse::error(&error)),
    };
    to_axum_response(twofa_core::api::handle(&state.app, request, None).await)
}

/// Lists the messages sent so far, oldest first, as `{"messages": [...]}`.
async fn list_outbox(State(state): State<Arc<LocalState>>) -> Response {
    let response = match &state.outbox {
        Some(outbox) => ApiResponse::json(200, &serde_json::json!({ "messages": outbox.messages() })),
        None => ApiResponse::error(&AppError::NotFound(
            "messages go to SNS and SES with --aws-messaging; there is no local outbox".into(),
        )),
    };
    to_axum_response(response)
}

/// Converts an axum request. The source IP is the socket peer; headers the client sends, such as
/// `X-Forwarded-For`, are passed on as headers and never used as the source.
async fn to_api_request(request: Request, peer: SocketAddr, request_id: String) -> Result<ApiRequest, AppError> {
    let (parts, body) = request.into_parts();
    // Reading one byte more than the limit lets the handler reject an oversized body itself.
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES + 1)
        .await
        .map_err(|_| AppError::invalid_request(format!("request body exceeds {MAX_BODY_BYTES} bytes")))?;

    let mut headers = std::collections::HashMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|joined: &mut String| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }

    Ok(ApiRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        headers,
        body: body.to_vec(),
        source_ip: peer.ip().to_string(),
        request_id,
    })
}

fn to_axum_response(response: ApiResponse) -> Response {
    let mut builder = Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::from(response.body)).unwrap_or_else(|error| {
        tracing::error!(reason = %error, "building the response failed");
        let mut fallback = Response::new(Body::from(r#"{"error":"internal_error","message":"internal error"}"#));
        *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}
