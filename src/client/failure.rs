//! What a failed command reports: one line for stderr and an exit code that
//! tells scripts what kind of failure it was.

use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// Exit codes by gRPC status class; documented in `client --help`.
pub fn exit_code(code: Code) -> u8 {
    match code {
        Code::Ok => 0,
        Code::NotFound => 3,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 4,
        Code::AlreadyExists | Code::Aborted => 5,
        Code::Unavailable => 6,
        Code::DeadlineExceeded | Code::Cancelled => 7,
        Code::Unauthenticated | Code::PermissionDenied => 8,
        Code::ResourceExhausted => 9,
        _ => 1,
    }
}

/// A failure to report: the line to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The line to print, without the request id.
    pub message: String,
    /// The process's exit code.
    pub code: u8,
    /// For a failed call: the gRPC status code and its message (violations
    /// folded in), as `--output json` reports them.
    pub status: Option<(Code, String)>,
    /// For a failed call: the request id the server returned.
    pub request_id: Option<String>,
}

impl Failure {
    pub fn new(message: impl Into<String>, code: u8) -> Self {
        Self {
            message: message.into(),
            code,
            status: None,
            request_id: None,
        }
    }

    /// What stderr shows: the message, and the request id if there is one.
    pub fn line(&self) -> String {
        match &self.request_id {
            Some(id) => format!("{} (request id {id})", self.message),
            None => self.message.clone(),
        }
    }

    /// The failure as one JSON object, for `--output json`:
    /// `{"code":"NOT_FOUND","message":...,"request_id":...,"exit":3}`.
    pub fn json(&self) -> serde_json::Value {
        let (code, message) = match &self.status {
            Some((code, message)) => (code_name(*code), message.as_str()),
            None => (
                match self.code {
                    2 => "USAGE",
                    6 => "UNAVAILABLE",
                    7 => "DEADLINE_EXCEEDED",
                    _ => "UNKNOWN",
                },
                self.message.as_str(),
            ),
        };
        serde_json::json!({
            "code": code,
            "message": message,
            "request_id": self.request_id,
            "exit": self.code,
        })
    }
    /// Bad usage or input: exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(message, 2)
    }

    /// Any other failure: exit code 1.
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(message, 1)
    }

    /// The status on one line: its code and message, the field violations
    /// (`google.rpc.BadRequest`) the message does not already say folded
    /// in, and the request id the server returned, so the failed call can
    /// be quoted and found in the server's log.
    pub fn status(status: &Status) -> Self {
        // A call that failed below gRPC (TLS refused, connection reset) comes
        // back as UNKNOWN or CANCELLED with the transport error as source:
        // report it as the connection failure it is, with its cause.
        // (tonic's own deadline, "Timeout expired", is handled by the caller.)
        if let Some(source) = std::error::Error::source(status)
            && source.is::<tonic::transport::Error>()
            && status.message() != "Timeout expired"
        {
            return Self::new(
                format!(
                    "the connection to the server failed: {}",
                    root_cause(source)
                ),
                exit_code(Code::Unavailable),
            );
        }
        let mut said = status.message().to_owned();
        if let Some(bad_request) = status.get_details_bad_request() {
            for v in &bad_request.field_violations {
                let violation = format!("{}: {}", v.field, v.description);
                if !said.contains(&violation) {
                    if !said.is_empty() {
                        said.push_str("; ");
                    }
                    said.push_str(&violation);
                }
            }
        }
        // One line, whatever the server wrote.
        let said = said.replace(['\n', '\r'], " ");
        let message = if said.is_empty() {
            format!("{:?}", status.code())
        } else {
            format!("{:?}: {said}", status.code())
        };
        Self {
            message,
            code: exit_code(status.code()),
            status: Some((status.code(), said)),
            request_id: request_id(status).map(str::to_owned),
        }
    }
}

/// The `x-request-id` the server returned with a failed call (in the
/// headers, or a stream's trailers: tonic puts either in the status).
pub fn request_id(status: &Status) -> Option<&str> {
    status
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty())
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Self::status(&status)
    }
}

/// The canonical name of a gRPC status code (`NOT_FOUND`), as grpcurl and
/// the gRPC specification spell it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The innermost error message, which names the actual problem
/// ("Connection refused") instead of tonic's generic "transport error".
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
