//! STS (`2011-06-15`, query protocol, XML answers; spec section 7): `GetCallerIdentity`
//! (signed) and `AssumeRoleWithWebIdentity` (unsigned), enough for the IRSA path.
//!
//! The web identity token is not checked against an OIDC provider (the emulator has none):
//! it must look like a JWT (three base64url parts, a JSON payload), and its `exp`, when it has
//! one, must be in the future (`ExpiredTokenException`). The role must be a role of the
//! emulator's account.

use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::Rng;
use secrecy::SecretString;

use super::{AwsError, STS_VERSION, admit, auth, faults};
use crate::emulator::App;
use crate::emulator::inventory::AWS;
use crate::emulator::stats::OK;

/// Temporary credentials STS issued.
#[derive(Clone, Debug)]
pub(crate) struct Issued {
    /// The secret access key.
    pub secret: SecretString,
    /// The session token the requests must carry.
    pub session_token: SecretString,
    /// When they expire.
    pub expires: SystemTime,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub assumed_role_arn: String,
}

/// The partition of a region (spec section 1).
pub(crate) fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The parameters of a form body.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

const ACTIONS: [&str; 2] = ["GetCallerIdentity", "AssumeRoleWithWebIdentity"];

/// Handles one STS request.
pub(crate) async fn handle(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    request_id: &str,
) -> Response {
    let params = Params(form_urlencoded::parse(body).into_owned().collect());
    let action = params
        .get("Action")
        .filter(|action| ACTIONS.contains(action))
        .unwrap_or("-")
        .to_string();
    let result = serve(app, method, uri, headers, body, &params).await;
    let outcome = match &result {
        Ok(_) => OK,
        Err(error) => error.code,
    };
    app.stats.record(AWS, &action, outcome);
    tracing::debug!(cloud = AWS, %action, outcome, "emulator request");
    let (status, xml) = match result {
        Ok(result) => (
            StatusCode::OK,
            format!(
                "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>\
                 {request_id}</RequestId></ResponseMetadata></{action}Response>"
            ),
        ),
        Err(error) => (
            StatusCode::from_u16(error.http).unwrap_or(StatusCode::BAD_REQUEST),
            format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
                 <Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>\
                 {request_id}</RequestId></ErrorResponse>",
                if error.http >= 500 {
                    "Receiver"
                } else {
                    "Sender"
                },
                error.code,
                escape(&error.message)
            ),
        ),
    };
    let mut response = (status, xml).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("text/xml"));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn missing(name: &str) -> AwsError {
    AwsError::new(
        400,
        "MissingParameter",
        format!("The request must contain the parameter {name}"),
    )
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationError", message)
}

async fn serve(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    params: &Params,
) -> Result<String, AwsError> {
    if *method != Method::POST || uri.path() != "/" {
        return Err(AwsError::new(
            400,
            "InvalidAction",
            format!("{method} {}: STS is POST / with a form body", uri.path()),
        ));
    }
    if params.get("Version") != Some(STS_VERSION) {
        return Err(AwsError::new(
            400,
            "InvalidParameterValue",
            format!("Version must be {STS_VERSION}"),
        ));
    }
    match params.get("Action") {
        Some("GetCallerIdentity") => {
            let caller = admit(app, uri, headers, body, "sts", "GetCallerIdentity", None).await?;
            Ok(format!(
                "<Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account>",
                escape(&caller.arn),
                escape(&caller.access_key_id),
                caller.account
            ))
        }
        Some("AssumeRoleWithWebIdentity") => {
            faults(app).await?;
            assume_role_with_web_identity(app, params)
        }
        Some(other) => Err(AwsError::new(
            400,
            "InvalidAction",
            format!(
                "Could not find operation {other} for version {STS_VERSION}; served: {}",
                ACTIONS.join(", ")
            ),
        )),
        None => Err(missing("Action")),
    }
}

fn assume_role_with_web_identity(app: &App, params: &Params) -> Result<String, AwsError> {
    let role_arn = params.get("RoleArn").ok_or_else(|| missing("RoleArn"))?;
    let session = params
        .get("RoleSessionName")
        .ok_or_else(|| missing("RoleSessionName"))?;
    let token = params
        .get("WebIdentityToken")
        .ok_or_else(|| missing("WebIdentityToken"))?;
    let duration = match params.get("DurationSeconds") {
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|seconds| (900..=43_200).contains(seconds))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                validation(format!(
                    "DurationSeconds {text:?} must be a number from 900 to 43200"
                ))
            })?,
        None => auth::DEFAULT_SESSION,
    };
    let valid_session = (2..=64).contains(&session.len())
        && session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if !valid_session {
        return Err(validation(format!(
            "RoleSessionName {session:?} must be 2 to 64 characters of [\\w+=,.@-]"
        )));
    }
    let role = role_arn
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":iam::"))
        .and_then(|(partition, rest)| {
            let (account, name) = rest.split_once(":role/")?;
            Some((partition, account, name))
        });
    let Some((partition, account, role_name)) = role else {
        return Err(validation(format!(
            "RoleArn {role_arn:?} is not a role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)"
        )));
    };
    if account != app.aws_account || role_name.is_empty() {
        return Err(AwsError::new(
            403,
            "AccessDenied",
            format!("Not authorized to perform sts:AssumeRoleWithWebIdentity on {role_arn}"),
        ));
    }
    let now = SystemTime::from(app.faults.now());
    check_web_identity_token(token, now)?;
    let key_id = format!(
        "ASIA{}",
        random_text(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    );
    let secret = random_text(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    );
    let session_token = random_text(
        96,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    );
    // NB: --credentials-ttl shortens every issued credential's life (tests of renewal).
    let expires = now + app.credentials_ttl.unwrap_or(duration);
    let role_base = role_name.rsplit('/').next().unwrap_or(role_name);
    let assumed_role_arn =
        format!("arn:{partition}:sts::{account}:assumed-role/{role_base}/{session}");
    let expiration = jiff::Timestamp::try_from(expires)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let xml = format!(
        "<Credentials><AccessKeyId>{key_id}</AccessKeyId><SecretAccessKey>{secret}\
         </SecretAccessKey><SessionToken>{session_token}</SessionToken><Expiration>{expiration}\
         </Expiration></Credentials><AssumedRoleUser><Arn>{}</Arn><AssumedRoleId>AROA{}:{}\
         </AssumedRoleId></AssumedRoleUser><SubjectFromWebIdentityToken>system:serviceaccount\
         </SubjectFromWebIdentityToken>",
        escape(&assumed_role_arn),
        random_text(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
        escape(session),
    );
    app.aws_state.remember(
        key_id,
        Issued {
            secret: SecretString::from(secret),
            session_token: SecretString::from(session_token),
            expires,
            assumed_role_arn,
        },
        now,
    );
    Ok(xml)
}

/// A JWT's shape, and its `exp` when it has one.
fn check_web_identity_token(token: &str, now: SystemTime) -> Result<(), AwsError> {
    let invalid = || {
        AwsError::new(
            400,
            "InvalidIdentityToken",
            "The web identity token is not a JWT (three base64url parts, a JSON payload)",
        )
    };
    if !(4..=20_000).contains(&token.len()) {
        return Err(invalid());
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [_, payload, _] = parts[..] else {
        return Err(invalid());
    };
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| invalid())?;
    let claims: serde_json::Value = serde_json::from_slice(&decoded).map_err(|_| invalid())?;
    if let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_u64) {
        let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(exp);
        if expires <= now {
            return Err(AwsError::new(
                400,
                "ExpiredTokenException",
                "Token expired: the web identity token's exp is in the past",
            ));
        }
    }
    Ok(())
}

fn random_text(length: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..length)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}
