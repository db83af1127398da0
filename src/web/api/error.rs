//! The one error shape of the API, and the layer that guarantees it.
//!
//! Every failure under `/api/` and `/metrics` answers with the same JSON body: the HTTP status,
//! a machine-readable `code`, a `message` for a person and the `request_id` (also sent as the
//! `X-Request-Id` header, and logged with server faults so a report can be matched to the log).
//! Handlers return [`ApiError`]; failures that come from elsewhere (the guard, axum's own 404/405,
//! a body too large) are rewritten by [`layer`], so no failure class can leak another shape. A
//! server fault's cause is logged, never sent.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest text body of a foreign error response used as the message (axum's rejections are
/// one line); anything longer is replaced by the status's own message.
const FOREIGN_MESSAGE_MAX: usize = 2048;

/// The body of every API failure.
#[derive(Clone, Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The HTTP status code, repeated for clients that only keep the body.
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong, for programs: stable, snake_case.
    #[schema(example = "invalid_query")]
    pub code: String,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// Identifies this request in the server's log.
    pub request_id: String,
    /// Per field, what is wrong and what to write instead (a refused settings change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<std::collections::BTreeMap<String, String>>,
}

/// A failure a handler (or the guard) reports; [`layer`] turns it into an [`ErrorBody`].
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// A server fault's cause, logged with the request id and never sent.
    cause: Option<String>,
    /// Per-field problems, sent as [`ErrorBody::errors`].
    pub errors: Option<std::collections::BTreeMap<String, String>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            cause: None,
            errors: None,
        }
    }

    /// Adds per-field problems to the body.
    pub fn with_errors(mut self, errors: std::collections::BTreeMap<String, String>) -> ApiError {
        self.errors = Some(errors);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("There is no {what}."),
        )
    }

    pub fn internal(cause: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "Something went wrong on the lanmeter server; the details are in its log \
                      under this request id."
                .into(),
            cause: Some(cause.into()),
            errors: None,
        }
    }
}

impl From<crate::web::AppError> for ApiError {
    fn from(e: crate::web::AppError) -> ApiError {
        use crate::web::AppError as A;
        match e {
            A::BadRequest(m) => ApiError::bad_request("bad_request", m),
            A::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            A::NotFound => ApiError::not_found("such resource"),
            A::Internal { cause } => ApiError::internal(cause),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = render(self.status, self.code, &self.message, "");
        r.extensions_mut().insert(self);
        r
    }
}

/// The id of the request being answered (an extension every API request carries).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn render(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response {
    render_with(status, code, message, request_id, None)
}

fn render_with(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
    errors: Option<std::collections::BTreeMap<String, String>>,
) -> Response {
    let body = ErrorBody {
        status: status.as_u16(),
        code: code.to_string(),
        message: message.to_string(),
        request_id: request_id.to_string(),
        errors,
    };
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = (status, Body::from(json)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A client's own request id is kept when it is short and plain; otherwise a fresh one is made.
fn request_id(req: &Request) -> String {
    if let Some(v) = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        && (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return v.to_string();
    }
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // Without randomness the id only needs to be unlikely to repeat within a log.
        b = jiff::Timestamp::now().as_nanosecond().to_le_bytes()[..8]
            .try_into()
            .unwrap_or_default();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The code and message for a failure that did not come from an [`ApiError`].
fn foreign(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("bad_request", "The request is malformed."),
        StatusCode::UNAUTHORIZED => (
            "unauthorized",
            "Log in, or send an API token as `Authorization: Bearer <token>`.",
        ),
        StatusCode::FORBIDDEN => ("forbidden", "This request is not allowed."),
        StatusCode::NOT_FOUND => ("not_found", "There is no such API endpoint."),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "This endpoint does not accept that HTTP method; see /api/v1/openapi.json.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "The request body is too large."),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "Send the body as JSON with `Content-Type: application/json`.",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ("invalid_body", "The request body is not valid."),
        s if s.is_server_error() => (
            "internal",
            "Something went wrong on the lanmeter server; the details are in its log.",
        ),
        _ => ("error", "The request failed."),
    }
}

/// Middleware around the whole router: gives every API request an id and every API failure
/// the [`ErrorBody`] shape. Other paths pass untouched.
pub async fn layer(mut req: Request, next: Next) -> Response {
    if !super::super::guard::is_api(req.uri().path()) {
        return next.run(req).await;
    }
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    let status = res.status();
    let mut res = if !status.is_client_error() && !status.is_server_error() {
        res
    } else if let Some(e) = res.extensions().get::<ApiError>().cloned() {
        match &e.cause {
            Some(cause) => {
                tracing::error!(request_id = %id, %method, %path, error = %cause, "API request failed")
            }
            None => {
                tracing::debug!(request_id = %id, %method, %path, code = e.code, "API request refused")
            }
        }
        render_with(status, e.code, &e.message, &id, e.errors)
    } else {
        let (code, default) = foreign(status);
        let is_text = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"));
        let text = if is_text {
            axum::body::to_bytes(res.into_body(), FOREIGN_MESSAGE_MAX)
                .await
                .ok()
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .filter(|t| !t.is_empty())
        } else {
            None
        };
        if status.is_server_error() {
            tracing::error!(request_id = %id, %method, %path, status = status.as_u16(), "API request failed");
        }
        let message = match (text, status.is_server_error()) {
            (Some(t), false) => t,
            _ => default.to_string(),
        };
        render(status, code, &message, &id)
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_keep_their_cause_out_of_the_message() {
        let e = ApiError::internal("disk I/O error at /var/lib/lanmeter");
        assert!(!e.message.contains("/var/lib"));
        assert_eq!(e.code, "internal");
        assert_eq!(
            foreign(StatusCode::METHOD_NOT_ALLOWED).0,
            "method_not_allowed"
        );
    }
}
