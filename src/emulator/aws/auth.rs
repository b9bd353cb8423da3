//! SigV4 as the AWS endpoints check it (spec section 2): the signature (with
//! [`crate::cloud::sign::aws::verify`], the emulator's reading of the documentation, pinned
//! by AWS's test suite), the credential scope's service, the clock skew, and the session
//! token of temporary credentials.

use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, Uri};
use secrecy::ExposeSecret;

use super::{AwsError, sts};
use crate::cloud::sign::aws::{Verification, VerifyError, verify as verify_signature};
use crate::emulator::App;

/// Who called, as the signature says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The AWS account.
    pub account: String,
    /// The region of the credential scope.
    pub region: String,
    /// The principal's ARN (GetCallerIdentity's `Arn`).
    pub arn: String,
    /// The access key id (GetCallerIdentity's `UserId` for a user).
    pub access_key_id: String,
}

fn invalid_signature(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidSignatureException", message)
}

fn unrecognized() -> AwsError {
    AwsError::new(
        400,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
}

/// Verifies the request's signature for `service` (`tagging`, `sts`).
pub(crate) fn verify(
    app: &App,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    service: &str,
) -> Result<Caller, AwsError> {
    if !headers.contains_key("authorization") {
        return Err(AwsError::new(
            400,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token: the request carries no SigV4 Authorization header",
        ));
    }
    let header_list: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let request = Verification {
        method: "POST",
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: header_list,
        body,
    };
    let issued_of = |key: &str| app.aws_state.issued(key);
    let scope = verify_signature(&request, |key| {
        if let Some(secret) = app.accounts.secret(key) {
            return Some(secret.expose_secret().to_string());
        }
        issued_of(key).map(|issued| issued.secret.expose_secret().to_string())
    });
    let scope = match scope {
        Ok(scope) => scope,
        Err(VerifyError::UnknownKey(_)) => return Err(unrecognized()),
        Err(rule) => return Err(invalid_signature(rule.to_string())),
    };
    if scope.service != service {
        return Err(invalid_signature(format!(
            "Credential should be scoped to correct service: '{service}' (not '{}')",
            scope.service
        )));
    }
    let now = SystemTime::from(app.faults.now());
    let skew = match now.duration_since(scope.time) {
        Ok(behind) => behind,
        Err(ahead) => ahead.duration(),
    };
    if skew > app.clock_skew {
        return Err(invalid_signature(format!(
            "Signature expired: the request's X-Amz-Date is {} s from the server's time; at most \
             {} s are accepted",
            skew.as_secs(),
            app.clock_skew.as_secs()
        )));
    }
    let account = app.aws_account.clone();
    match issued_of(&scope.access_key_id) {
        Some(issued) => {
            let token_matches = scope.session_token.as_deref().is_some_and(|token| {
                crate::emulator::constant_time_eq(
                    token.as_bytes(),
                    issued.session_token.expose_secret().as_bytes(),
                )
            });
            if !token_matches {
                return Err(unrecognized());
            }
            if now >= issued.expires {
                return Err(AwsError::new(
                    400,
                    "ExpiredTokenException",
                    "The security token included in the request is expired",
                ));
            }
            Ok(Caller {
                account,
                region: scope.region,
                arn: issued.assumed_role_arn.clone(),
                access_key_id: scope.access_key_id,
            })
        }
        None => {
            if scope.session_token.is_some() {
                // NB: a long-term key with a session token is not a credential AWS issued.
                return Err(unrecognized());
            }
            Ok(Caller {
                arn: format!(
                    "arn:{}:iam::{account}:user/{}",
                    sts::partition_of(&scope.region),
                    scope.access_key_id
                ),
                account,
                region: scope.region,
                access_key_id: scope.access_key_id,
            })
        }
    }
}

/// How long temporary credentials last when the request does not say (STS: one hour).
pub(crate) const DEFAULT_SESSION: Duration = Duration::from_secs(3600);
