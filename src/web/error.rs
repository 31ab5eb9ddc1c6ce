//! One error type for every handler: a status, a message safe to show, and
//! for overload the seconds to wait. Internal details go to the log only.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
    /// Pages answer a missing session with a redirect to the login page.
    pub redirect: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            redirect: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden() -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "your role does not allow this")
    }

    /// For objects that exist but are not the caller's, as for ones that do
    /// not exist: an id reveals nothing.
    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not found")
    }

    pub fn too_many(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    pub fn redirect(to: impl Into<String>) -> ApiError {
        ApiError {
            redirect: Some(to.into()),
            ..ApiError::new(StatusCode::SEE_OTHER, "log in")
        }
    }

    /// Log the cause; tell the client only that it failed.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (see the server log)",
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if let Some(to) = &self.redirect {
            return r.insert_header(("Location", to.as_str())).finish();
        }
        if let Some(secs) = self.retry_after {
            r.insert_header(("Retry-After", secs.to_string()));
        }
        r.json(serde_json::json!({ "error": self.message }))
    }
}

impl From<crate::accounts::AccountError> for ApiError {
    fn from(e: crate::accounts::AccountError) -> ApiError {
        use crate::accounts::AccountError as A;
        match e {
            A::Sqlite(e) => ApiError::internal(e),
            A::Hash(e) => ApiError::internal(e),
            A::NoSuchUser(_) | A::NoSuchGroup(_) | A::NoSuchCollection(_) => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            A::Exists(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        match e {
            crate::store::StoreError::NoSuchDocument(_) => ApiError::not_found(),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::library::LibraryError> for ApiError {
    fn from(e: crate::library::LibraryError) -> ApiError {
        match e {
            crate::library::LibraryError::Store(s) => s.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(e: crate::audit::AuditError) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> ApiError {
        ApiError::internal(e)
    }
}
