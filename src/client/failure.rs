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
    pub message: String,
    pub code: u8,
}

impl Failure {
    /// Bad usage or input: exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 2,
        }
    }

    /// Any other failure: exit code 1.
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    /// The status on one line, then one indented line per field violation
    /// (`google.rpc.BadRequest`) the server attached.
    pub fn status(status: &Status) -> Self {
        // A call that failed below gRPC (TLS refused, connection reset) comes
        // back as UNKNOWN or CANCELLED with the transport error as source:
        // report it as the connection failure it is, with its cause.
        // (tonic's own deadline, "Timeout expired", is handled by the caller.)
        if let Some(source) = std::error::Error::source(status)
            && source.is::<tonic::transport::Error>()
            && status.message() != "Timeout expired"
        {
            return Self {
                message: format!(
                    "the connection to the server failed: {}",
                    root_cause(source)
                ),
                code: exit_code(Code::Unavailable),
            };
        }
        let mut message = if status.message().is_empty() {
            format!("{:?}", status.code())
        } else {
            format!("{:?}: {}", status.code(), status.message())
        };
        if let Some(bad_request) = status.get_details_bad_request() {
            for v in &bad_request.field_violations {
                message.push_str(&format!("\n  {}: {}", v.field, v.description));
            }
        }
        Self {
            message,
            code: exit_code(status.code()),
        }
    }
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Self::status(&status)
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
