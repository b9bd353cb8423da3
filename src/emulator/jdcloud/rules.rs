//! JD Cloud's product lines, limits and tag rules, as the emulator applies them
//! (spec: jdcloud-resource-tag.md sections 4 and 5). Section 5's values are not confirmed by
//! JD Cloud's pages, so every one of them is configurable.

use super::JdError;
use super::ops::CDN_REGION;

/// Limits and tag rules of spec section 5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JdcloudLimits {
    /// Most tags one resource may carry.
    pub tags_per_resource: usize,
    /// Longest key, in characters (at least 1).
    pub key_max_chars: usize,
    /// Longest value, in characters (empty allowed).
    pub value_max_chars: usize,
    /// Key prefixes reserved for the system (compared case-insensitively).
    pub reserved_key_prefixes: Vec<String>,
    /// Most resources in one call.
    pub resources_per_call: usize,
    /// Most tags in one call.
    pub tags_per_call: usize,
}

impl Default for JdcloudLimits {
    fn default() -> Self {
        JdcloudLimits {
            tags_per_resource: 10,
            key_max_chars: 127,
            value_max_chars: 255,
            reserved_key_prefixes: vec!["jrn:".to_string(), "jdc-".to_string()],
            resources_per_call: 50,
            tags_per_call: 10,
        }
    }
}

/// The product lines of spec section 4, as the tag system lists them, in the spec's order.
///
/// NB: the emulator's own copy, written from the spec and not from the client's table
/// (`cloud::jdcloud::SERVICE_CODES`): a code wrong on both sides would pass every test that
/// sends a client's request to the emulator. The test below holds this list to the spec's text.
pub(crate) const SERVICE_CODES: [&str; 24] = [
    "vm",
    "disk",
    "sqlserver",
    "es",
    "mongodb",
    "ip",
    "memcached",
    "redis",
    "drds",
    "rds",
    "database",
    "db_ro",
    "percona",
    "percona_ro",
    "mariadb",
    "mariadb_ro",
    "pg",
    "cdn",
    "nativecontainer",
    "pod",
    "zfs",
    "jqs",
    "kubernetesNodegroup",
    "jcq",
];

/// The JD Cloud side's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JdcloudConfig {
    /// Accepted serviceCode values (section 4: the 24 documented product lines).
    pub service_codes: Vec<String>,
    /// Accepted service names of the credential scope (section 1: `resourcetag`).
    pub signing_services: Vec<String>,
    /// Limits and tag rules.
    pub limits: JdcloudLimits,
}

impl Default for JdcloudConfig {
    fn default() -> Self {
        JdcloudConfig {
            service_codes: SERVICE_CODES.iter().map(|code| code.to_string()).collect(),
            signing_services: vec!["resourcetag".to_string()],
            limits: JdcloudLimits::default(),
        }
    }
}

impl JdcloudConfig {
    /// A serviceCode must be a known product line, and `cdn` lives in region `cn-all` alone.
    pub(crate) fn check_service_code(
        &self,
        member: &str,
        code: &str,
        region: &str,
    ) -> Result<(), JdError> {
        if !self.service_codes.iter().any(|known| known == code) {
            return Err(JdError::invalid_argument(format!(
                "Invalid parameter {member}: serviceCode {code:?} is not a product line of the \
                 tag system"
            )));
        }
        let cdn = code == "cdn";
        if cdn != (region == CDN_REGION) {
            return Err(JdError::invalid_argument(if cdn {
                format!(
                    "Invalid parameter regionId: cdn resources are in region {CDN_REGION}, not {region}"
                )
            } else {
                format!("Invalid parameter regionId: only cdn resources are in region {CDN_REGION}")
            }));
        }
        Ok(())
    }

    /// The reserved prefix `key` starts with (compared case-insensitively), if any.
    fn reserved_prefix_of(&self, key: &str) -> Option<&String> {
        let lower = key.to_lowercase();
        self.limits
            .reserved_key_prefixes
            .iter()
            .find(|prefix| lower.starts_with(&prefix.to_lowercase()))
    }

    /// True for a system tag's key (a reserved prefix).
    pub(crate) fn is_reserved(&self, key: &str) -> bool {
        self.reserved_prefix_of(key).is_some()
    }

    /// A key of 1 to `key_max_chars` characters without a reserved prefix, a value of at
    /// most `value_max_chars` characters.
    pub(crate) fn check_tag(&self, field: &str, key: &str, value: &str) -> Result<(), JdError> {
        let limits = &self.limits;
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > limits.key_max_chars {
            return Err(JdError::invalid_argument(format!(
                "Invalid parameter {field}.key: {key_chars} characters; keys have 1 to {} \
                 characters",
                limits.key_max_chars
            )));
        }
        if let Some(prefix) = self.reserved_prefix_of(key) {
            return Err(JdError::invalid_argument(format!(
                "Invalid parameter {field}.key: {key:?} starts with the reserved prefix {prefix}"
            )));
        }
        let value_chars = value.chars().count();
        if value_chars > limits.value_max_chars {
            return Err(JdError::invalid_argument(format!(
                "Invalid parameter {field}.value: {value_chars} characters; at most {}",
                limits.value_max_chars
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product lines listed in section 4 of the spec, before the SDK's other counters.
    fn spec_service_codes() -> Vec<String> {
        let path = format!(
            "{}/spec/jdcloud-resource-tag.md",
            env!("CARGO_MANIFEST_DIR")
        );
        let spec = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let section = spec
            .split("## 4. serviceCode values")
            .nth(1)
            .expect("section 4");
        let listed = section
            .split("Product lines the tag system lists")
            .nth(1)
            .and_then(|rest| rest.split("(`cdn`").next())
            .expect("the list of section 4");
        let listed = listed.split_once('\n').map_or(listed, |(_, list)| list);
        listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn service_codes_are_the_specs() {
        assert_eq!(spec_service_codes(), SERVICE_CODES);
        assert_eq!(
            JdcloudConfig::default().service_codes,
            SERVICE_CODES.map(String::from)
        );
    }
}
