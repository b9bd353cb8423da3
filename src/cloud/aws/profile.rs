//! AWS's shared files (`~/.aws/credentials`, `~/.aws/config`): the static key of a profile,
//! as the AWS CLI reads it, for the CLI host.

use crate::cloud::AccessKey;

/// The environment variables of the AWS CLI's shared files.
pub mod profile_env {
    /// The profile to use (default `default`).
    pub const PROFILE: &str = "AWS_PROFILE";
    /// The shared credentials file (default `~/.aws/credentials`).
    pub const SHARED_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
    /// The shared config file (default `~/.aws/config`).
    pub const CONFIG_FILE: &str = "AWS_CONFIG_FILE";
}

/// The keys of one section of an AWS shared file (INI: `[section]`, `key = value`, comments
/// after `#` or `;` at a line's start); `None` when the section is absent.
fn ini_section(text: &str, wanted: &str) -> Option<Vec<(String, String)>> {
    let mut found: Option<Vec<(String, String)>> = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            inside = name == wanted;
            if inside && found.is_none() {
                found = Some(Vec::new());
            }
            continue;
        }
        if inside && let Some((key, value)) = line.split_once('=') {
            let keys = found.get_or_insert_with(Vec::new);
            keys.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    found
}

/// Why a profile gives no access key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The profile is there, without a whole static key.
    #[error(
        "profile {profile:?} in {file} has no aws_access_key_id and aws_secret_access_key \
         (tagbinder reads static keys from profiles; for roles, SSO or a credential process, \
         export the credentials, e.g. with `aws configure export-credentials --format env`)"
    )]
    NoStaticKey {
        /// The profile.
        profile: String,
        /// Which file holds it.
        file: &'static str,
    },
    /// `AWS_PROFILE` names a profile that neither file has.
    #[error(
        "{} is {profile:?}, but neither ~/.aws/credentials ([{profile}]) nor ~/.aws/config \
         ([profile {profile}]) has that profile",
        profile_env::PROFILE
    )]
    Absent {
        /// The profile.
        profile: String,
    },
}

/// The static key of profile `profile` in the shared credentials file (`[NAME]`), else in the
/// config file (`[profile NAME]`, or `[default]`), as the AWS CLI reads them: `Ok(None)` when
/// neither has the profile; `Err` names a profile without a whole key.
pub fn profile_key(
    credentials_file: Option<&str>,
    config_file: Option<&str>,
    profile: &str,
) -> Result<Option<AccessKey>, ProfileError> {
    let config_section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let section = credentials_file
        .and_then(|text| ini_section(text, profile))
        .map(|keys| (keys, "the shared credentials file"))
        .or_else(|| {
            config_file
                .and_then(|text| ini_section(text, &config_section))
                .map(|keys| (keys, "the shared config file"))
        });
    let Some((keys, file)) = section else {
        return Ok(None);
    };
    let get = |name: &str| {
        keys.iter()
            .rev()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.clone())
    };
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Some(
            AccessKey::new(id, secret).with_session_token(get("aws_session_token")),
        )),
        _ => Err(ProfileError::NoStaticKey {
            profile: profile.to_string(),
            file,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_come_from_the_credentials_file_then_the_config_file() {
        let credentials = "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\
                           # a comment\n[team]\naws_access_key_id=AKIATEAM\n\
                           aws_secret_access_key=s2\naws_session_token = tok\n";
        let config = "[default]\nregion = us-east-1\n[profile ops]\nregion = eu-west-1\n\
                      aws_access_key_id = AKIAOPS\naws_secret_access_key = s3\n\
                      [profile sso]\nsso_session = corp\n";
        let key = |profile: &str| profile_key(Some(credentials), Some(config), profile);
        assert_eq!(key("default").unwrap().unwrap().id, "AKIADEFAULT");
        let team = key("team").unwrap().unwrap();
        assert_eq!(
            (team.id.as_str(), team.session_token()),
            ("AKIATEAM", Some("tok"))
        );
        assert_eq!(key("ops").unwrap().unwrap().id, "AKIAOPS");
        assert!(key("nobody").unwrap().is_none());
        let error = key("sso").unwrap_err().to_string();
        assert!(
            error.contains("\"sso\"") && error.contains("export-credentials"),
            "{error}"
        );
        assert!(profile_key(None, None, "default").unwrap().is_none());
    }
}
