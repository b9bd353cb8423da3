//! A credentials Secret as both hosts read it (the controller from the API server, the CLI
//! from a Secret document among the files): its keys, and the access key they hold. Each host
//! says where the Secret is; [`SecretKeyError`] says which key is wrong. A value never appears
//! in an error.

use crate::cloud::AccessKey;

/// The access key's id (every cloud).
pub const ACCESS_KEY_ID: &str = "accessKeyId";
/// The access key's secret (every cloud).
pub const ACCESS_KEY_SECRET: &str = "accessKeySecret";
/// The access key's secret as AWS's own tools name it, accepted in place of
/// [`ACCESS_KEY_SECRET`].
pub const SECRET_ACCESS_KEY: &str = "secretAccessKey";
/// Optional: the STS token of temporary credentials (Alibaba Cloud, JD Cloud).
pub const SECURITY_TOKEN: &str = "securityToken";
/// Optional: the session token of temporary AWS credentials, accepted in place of
/// [`SECURITY_TOKEN`].
pub const SESSION_TOKEN: &str = "sessionToken";

/// What is wrong with a credentials Secret's keys.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretKeyError {
    /// A key the access key needs is absent or empty.
    #[error(
        "has no {0:?} key (it needs {ACCESS_KEY_ID:?} and {ACCESS_KEY_SECRET:?}, and \
         {SECURITY_TOKEN:?} with temporary credentials)"
    )]
    Missing(&'static str),
    /// A key's value is not UTF-8 text.
    #[error("key {0:?} is not UTF-8 text")]
    NotText(&'static str),
}

impl SecretKeyError {
    /// The key at fault.
    pub fn key(&self) -> &'static str {
        match self {
            SecretKeyError::Missing(key) | SecretKeyError::NotText(key) => key,
        }
    }
}

/// The access key a Secret holds; `value(key)` answers a key's value (`None`: absent;
/// `Some(None)`: not UTF-8). Values are trimmed; an empty one counts as absent. A token key
/// that is present must hold a token.
pub fn access_key(
    value: impl Fn(&str) -> Option<Option<String>>,
) -> Result<AccessKey, SecretKeyError> {
    let get = |key: &'static str| -> Result<Option<String>, SecretKeyError> {
        match value(key) {
            None => Ok(None),
            Some(None) => Err(SecretKeyError::NotText(key)),
            Some(Some(text)) => {
                let text = text.trim();
                Ok((!text.is_empty()).then(|| text.to_string()))
            }
        }
    };
    let required = |key: &'static str| get(key)?.ok_or(SecretKeyError::Missing(key));
    let id = required(ACCESS_KEY_ID)?;
    let secret = match get(ACCESS_KEY_SECRET)? {
        Some(secret) => secret,
        None => get(SECRET_ACCESS_KEY)?.ok_or(SecretKeyError::Missing(ACCESS_KEY_SECRET))?,
    };
    // NB: AWS's Secret may hold the `sessionToken` of temporary credentials, as the AWS CLI
    // names it; the others' STS token is `securityToken`.
    let token = match [SECURITY_TOKEN, SESSION_TOKEN]
        .into_iter()
        .find(|key| value(key).is_some())
    {
        Some(key) => Some(required(key)?),
        None => None,
    };
    Ok(AccessKey::new(id, secret).with_session_token(token))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn read(data: &[(&str, Option<&str>)]) -> Result<AccessKey, SecretKeyError> {
        let data: BTreeMap<String, Option<String>> = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        access_key(|key| data.get(key).cloned())
    }

    #[test]
    fn every_cloud_s_keys_are_read_and_a_wrong_one_is_named_without_its_value() {
        let key = read(&[
            (ACCESS_KEY_ID, Some(" AKID ")),
            (SECRET_ACCESS_KEY, Some("s3cr3t")),
            (SESSION_TOKEN, Some("tok")),
        ])
        .expect("AWS's key names");
        assert_eq!(key.id, "AKID");
        assert!(key.session_token().is_some());

        let missing = read(&[(ACCESS_KEY_ID, Some("AKID"))]).unwrap_err();
        assert_eq!(missing, SecretKeyError::Missing(ACCESS_KEY_SECRET));
        let empty_token = read(&[
            (ACCESS_KEY_ID, Some("AKID")),
            (ACCESS_KEY_SECRET, Some("s3cr3t")),
            (SECURITY_TOKEN, Some("  ")),
        ])
        .unwrap_err();
        assert_eq!(empty_token, SecretKeyError::Missing(SECURITY_TOKEN));
        let binary = read(&[(ACCESS_KEY_ID, None)]).unwrap_err();
        assert_eq!(binary.key(), ACCESS_KEY_ID);
    }

    #[test]
    fn no_error_shows_a_value_the_secret_holds() {
        // NB: every present key holds a value of its own, so an error that printed any of
        // them (the key at fault's or another's) would show it.
        let values = ["id-VALUE", "secret-VALUE", "token-VALUE"];
        let cases: [&[(&str, Option<&str>)]; 5] = [
            &[
                (ACCESS_KEY_ID, Some(values[0])),
                (SECURITY_TOKEN, Some(values[2])),
            ],
            &[(ACCESS_KEY_ID, None), (ACCESS_KEY_SECRET, Some(values[1]))],
            &[
                (ACCESS_KEY_ID, Some(values[0])),
                (ACCESS_KEY_SECRET, Some(values[1])),
                (SECURITY_TOKEN, Some("  ")),
            ],
            &[
                (ACCESS_KEY_ID, Some(values[0])),
                (SECRET_ACCESS_KEY, Some(values[1])),
                (SESSION_TOKEN, None),
            ],
            &[
                (ACCESS_KEY_SECRET, Some(values[1])),
                (SECURITY_TOKEN, Some(values[2])),
            ],
        ];
        for data in cases {
            let error = read(data).expect_err("a wrong Secret");
            for printed in [error.to_string(), format!("{error:?}")] {
                for value in values {
                    assert!(!printed.contains(value), "{printed:?} shows {value:?}");
                }
            }
        }
    }
}
