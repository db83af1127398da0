//! One error type for handlers: what the person sees is kept apart from what is logged.
//!
//! Client mistakes (bad form, forbidden, not found) are answered and logged at debug level at
//! most; only server faults (database, rendering) are logged as errors, with their cause, while
//! the browser gets a short message that reveals nothing about the server.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub enum AppError {
    /// The request is malformed: the message is shown to the person.
    BadRequest(String),
    /// The session may not do this (a viewer changing something, a failed CSRF check).
    Forbidden(&'static str),
    NotFound,
    /// Something on the server failed: `cause` is logged, the person sees a generic message.
    Internal {
        cause: String,
    },
}

impl AppError {
    pub fn internal(cause: impl Into<String>) -> AppError {
        AppError::Internal {
            cause: cause.into(),
        }
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> AppError {
        AppError::internal(e.to_string())
    }
}

impl From<crate::store::query::QueryError> for AppError {
    fn from(e: crate::store::query::QueryError) -> AppError {
        AppError::internal(e.to_string())
    }
}

impl From<crate::auth::AuthError> for AppError {
    fn from(e: crate::auth::AuthError) -> AppError {
        AppError::internal(e.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            AppError::BadRequest(m) => {
                tracing::debug!(message = %m, "bad request");
                (StatusCode::BAD_REQUEST, m)
            }
            AppError::Forbidden(m) => {
                tracing::debug!(message = m, "forbidden");
                (StatusCode::FORBIDDEN, m.to_string())
            }
            AppError::NotFound => (StatusCode::NOT_FOUND, "There is no such page.".to_string()),
            AppError::Internal { cause } => {
                tracing::error!(error = %cause, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on the lanmeter server; the details are in its log."
                        .to_string(),
                )
            }
        };
        error_page(status, &message)
    }
}

/// A minimal page for errors: no layout, so it renders even when templates or the database fail.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{code} · lanmeter</title><link rel=\"stylesheet\" href=\"{css}\"></head>\
         <body><main class=\"narrow\"><h1>{code}</h1><p>{msg}</p><p><a href=\"/\">Back to the overview</a></p></main></body></html>",
        code = status.as_u16(),
        css = super::assets::url("app.css"),
        msg = escape(message),
    );
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// HTML-escapes text for the few responses built without askama.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let r = AppError::internal("secret path /var/lib/x").into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let r = AppError::BadRequest("<b>".into()).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }
}
