//! STS `AssumeRoleWithOIDC` (version 2015-04-01), RRSA's call: anonymous (the OIDC token is
//! the proof), served on the same path as the tag APIs, so that `ALIBABA_CLOUD_STS_ENDPOINT`
//! may be the emulator's URL.
//!
//! The role's account is the inventory account whose UID (see
//! [`crate::emulator::inventory::account_uid`]) is in `RoleArn`; the temporary credentials
//! issued act for that account on every API of the emulator, until they expire (the
//! requested `DurationSeconds`, or the emulator's `--credentials-ttl`). The OIDC token is not
//! verified cryptographically: it must be a JWT (three base64url parts) whose payload, if it
//! has an `exp`, is not expired.
//!
//! Error codes, from the STS API reference of AssumeRoleWithOIDC [doc]: `MissingParameter`
//! (`MissingRoleArn` and the like), `InvalidParameter.RoleArn`,
//! `InvalidParameter.OIDCProviderArn`, `InvalidParameter.RoleSessionName`,
//! `InvalidParameter.DurationSeconds`, `EntityNotExist.Role`,
//! `AuthenticationFail.OIDCToken.Invalid`, `AuthenticationFail.OIDCToken.Expired`.

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;

use super::errors::RpcError;
use super::params::Params;
use super::render::Node;
use crate::emulator::App;

/// STS API version.
pub(crate) const VERSION: &str = "2015-04-01";
/// The action.
pub(crate) const ASSUME_ROLE_WITH_OIDC: &str = "AssumeRoleWithOIDC";

fn invalid(code: &str, message: impl Into<String>) -> RpcError {
    RpcError::sts(StatusCode::BAD_REQUEST, code, message)
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, RpcError> {
    params.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
        invalid(
            &format!("Missing{name}"),
            format!("{name} is mandatory for this action."),
        )
    })
}

/// `acs:ram::UID:KIND/NAME` -> UID.
fn arn_uid<'a>(arn: &'a str, kind: &str) -> Option<&'a str> {
    let rest = arn.strip_prefix("acs:ram::")?;
    let (uid, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix(kind)?.strip_prefix('/')?;
    (!uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty()).then_some(uid)
}

/// Checks the OIDC token's shape and `exp`.
fn check_token(token: &str, now: jiff::Timestamp) -> Result<serde_json::Value, RpcError> {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = match parts.as_slice() {
        [header, payload, signature]
            if !header.is_empty() && !payload.is_empty() && !signature.is_empty() =>
        {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        }
        _ => None,
    }
    .ok_or_else(|| {
        invalid(
            "AuthenticationFail.OIDCToken.Invalid",
            "The OIDCToken is not a JWT.",
        )
    })?;
    if let Some(exp) = payload.get("exp").and_then(serde_json::Value::as_i64)
        && exp <= now.as_second()
    {
        return Err(invalid(
            "AuthenticationFail.OIDCToken.Expired",
            "The OIDCToken is expired.",
        ));
    }
    Ok(payload)
}

/// Answers `AssumeRoleWithOIDC`: the fields after `RequestId`.
pub(crate) fn assume_role_with_oidc(
    app: &App,
    params: &Params,
) -> Result<Vec<(&'static str, Node)>, RpcError> {
    let role_arn = required(params, "RoleArn")?;
    let provider_arn = required(params, "OIDCProviderArn")?;
    let token = required(params, "OIDCToken")?;
    let session = required(params, "RoleSessionName")?;
    let uid = arn_uid(role_arn, "role").ok_or_else(|| {
        invalid(
            "InvalidParameter.RoleArn",
            "The parameter RoleArn is not an ARN of the form acs:ram::UID:role/NAME.",
        )
    })?;
    if arn_uid(provider_arn, "oidc-provider") != Some(uid) {
        return Err(invalid(
            "InvalidParameter.OIDCProviderArn",
            "The parameter OIDCProviderArn is not acs:ram::UID:oidc-provider/NAME of the role's account.",
        ));
    }
    if !(2..=64).contains(&session.len())
        || !session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
    {
        return Err(invalid(
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName must be 2 to 64 letters, digits, '.', '@', '-' or '_'.",
        ));
    }
    let duration = match params.get("DurationSeconds") {
        None => 3600,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|d| (900..=43_200).contains(d))
            .ok_or_else(|| {
                invalid(
                    "InvalidParameter.DurationSeconds",
                    "The parameter DurationSeconds must be between 900 and 43200.",
                )
            })?,
    };
    let now = app.faults.now();
    let claims = check_token(token, now)?;
    let owner = app.accounts.by_uid(uid).ok_or_else(|| {
        RpcError::sts(
            StatusCode::NOT_FOUND,
            "EntityNotExist.Role",
            "The specified Role not exists.",
        )
    })?;
    let ttl = app.credentials_ttl.unwrap_or(Duration::from_secs(duration));
    let issued = app.accounts.issue(&owner, ttl, now);
    let role_name = role_arn.rsplit('/').next().unwrap_or_default();
    let text = |name: &str| {
        claims
            .get(name)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default()
    };
    Ok(vec![
        (
            "AssumedRoleUser",
            Node::Fields(vec![
                (
                    "Arn",
                    Node::Text(format!("acs:ram::{uid}:assumed-role/{role_name}/{session}")),
                ),
                (
                    "AssumedRoleId",
                    Node::Text(format!("3{}:{session}", &uid[..uid.len().min(17)])),
                ),
            ]),
        ),
        (
            "Credentials",
            Node::Fields(vec![
                ("AccessKeyId", Node::Text(issued.access_key_id)),
                ("AccessKeySecret", Node::Text(issued.access_key_secret)),
                ("SecurityToken", Node::Text(issued.security_token)),
                (
                    "Expiration",
                    Node::Text(issued.expiration.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                ),
            ]),
        ),
        (
            "OIDCTokenInfo",
            Node::Fields(vec![
                ("Subject", Node::Text(text("sub"))),
                ("Issuer", Node::Text(text("iss"))),
                ("ClientIds", Node::Text(text("aud"))),
            ]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_their_account() {
        assert_eq!(arn_uid("acs:ram::1234:role/r", "role"), Some("1234"));
        assert_eq!(
            arn_uid("acs:ram::1234:oidc-provider/p", "oidc-provider"),
            Some("1234")
        );
        assert_eq!(arn_uid("acs:ram::1234:role/", "role"), None);
        assert_eq!(arn_uid("acs:ram::me:role/r", "role"), None);
        assert_eq!(arn_uid("acs:ram::1234:user/r", "role"), None);
    }

    #[test]
    fn tokens_must_be_unexpired_jwts() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let encode = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let token = |exp: i64| {
            format!(
                "{}.{}.sig",
                encode("{}"),
                encode(&format!("{{\"exp\":{exp}}}"))
            )
        };
        assert!(check_token(&token(now.as_second() + 60), now).is_ok());
        assert_eq!(
            check_token(&token(now.as_second() - 1), now)
                .unwrap_err()
                .code,
            "AuthenticationFail.OIDCToken.Expired"
        );
        assert_eq!(
            check_token("not-a-jwt", now).unwrap_err().code,
            "AuthenticationFail.OIDCToken.Invalid"
        );
    }
}
