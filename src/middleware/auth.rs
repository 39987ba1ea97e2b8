//! Optional bearer-token authentication: `authorization: Bearer <token>`.

use http::HeaderMap;
use subtle::ConstantTimeEq as _;
use tonic::Status;

#[derive(Clone)]
pub struct Auth {
    token: Vec<u8>,
}

impl Auth {
    /// Reads the token from a file (surrounding whitespace ignored).
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        Self::new(text.trim()).map_err(|e| format!("the token file {}: {e}", path.display()))
    }

    pub fn new(token: &str) -> Result<Self, String> {
        if token.is_empty() {
            return Err("the token is empty".into());
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the token must not contain spaces or control characters".into());
        }
        Ok(Self {
            token: token.as_bytes().to_vec(),
        })
    }

    /// `UNAUTHENTICATED` unless the request carries the token. The compare
    /// takes the same time wherever the first wrong byte is.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Status> {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| {
                Status::unauthenticated("missing `authorization: Bearer <token>` metadata")
            })?
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .ok_or_else(|| {
                Status::unauthenticated("the authorization metadata must be `Bearer <token>`")
            })?;
        if bool::from(presented.ct_eq(&self.token)) {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid bearer token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let auth = Auth::new("s3cret").unwrap();
        assert!(auth.check(&headers("Bearer s3cret")).is_ok());
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "bearer s3cret",
            "s3cret",
            "Bearer ",
        ] {
            let err = auth.check(&headers(bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad}");
        }
        assert_eq!(
            auth.check(&HeaderMap::new()).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn empty_or_spaced_tokens_are_refused() {
        assert!(Auth::new("").is_err());
        assert!(Auth::new("a b").is_err());
    }
}
