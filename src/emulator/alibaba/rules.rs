//! What the emulated Alibaba Cloud accepts: the products (API versions and their resource
//! types), the batch limits and the tag rules of spec sections 1 and 6.

use std::collections::BTreeMap;

use super::errors::RpcError;
use super::tag_service::{Aliases, TagServiceLimits};

/// The Alibaba Cloud side's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlibabaConfig {
    /// Products served, by API `Version`. A request for another version is answered
    /// `InvalidVersion`.
    pub products: BTreeMap<String, Product>,
    /// Batch limits and tag rules.
    pub limits: AlibabaLimits,
    /// The Tag service's own limits (its tag rules are [`AlibabaConfig::limits`]').
    pub tag_service: TagServiceLimits,
    /// Product codes of Tag-service ARNs (e.g. `ecs`) that name the resources of a product
    /// served here through its own API, by that product's `Version`.
    pub tag_service_products: BTreeMap<String, String>,
}

/// One product's tag API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    /// Product code in the error answers' `Recommend` link, e.g. `CloudAPI`.
    pub code: String,
    /// Accepted `ResourceType` values (case-sensitive).
    pub resource_types: Vec<String>,
}

/// Batch limits and tag rules (spec section 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlibabaLimits {
    /// Most `ResourceId.N` in one call.
    pub resources_per_call: usize,
    /// Most `Tag.N` in one call.
    pub tags_per_call: usize,
    /// Most `TagKey.N` in one UntagResources call.
    pub keys_per_untag_call: usize,
    /// Most custom tags one resource may carry (system tags do not count).
    pub tags_per_resource: usize,
    /// Longest key, in characters.
    pub key_max_chars: usize,
    /// Longest value, in characters.
    pub value_max_chars: usize,
    /// Prefixes no custom key or value may start with (case-sensitive, as the documents
    /// write them); keys with them are system tags.
    pub reserved_prefixes: Vec<String>,
    /// Substrings no key or value may contain.
    pub forbidden_substrings: Vec<String>,
}

/// Entries, (resource, tag) pairs, per ListTagResources page of a product's own tag API, as
/// Alibaba Cloud documents them (spec alibaba-rpc-tagging.md section 5, ListTagResources,
/// "Pagination": "Pages hold up to 50 entries"). The emulator's default `--page-size`.
pub const LIST_PAGE_ENTRIES: usize = 50;

/// Version of API Gateway (product code `CloudAPI`).
pub const API_GATEWAY_VERSION: &str = "2016-07-14";
/// Version of ECS.
pub const ECS_VERSION: &str = "2014-05-26";
/// Product code used in `Recommend` before the version is known.
pub(crate) const DEFAULT_PRODUCT_CODE: &str = "CloudAPI";

impl Default for AlibabaConfig {
    fn default() -> Self {
        let product = |code: &str, types: &[&str]| Product {
            code: code.to_string(),
            resource_types: types.iter().map(|t| t.to_string()).collect(),
        };
        let products = BTreeMap::from([
            (
                API_GATEWAY_VERSION.to_string(),
                product("CloudAPI", &["apiGroup", "plugin", "app", "api"]),
            ),
            (
                ECS_VERSION.to_string(),
                product(
                    "Ecs",
                    &[
                        "instance",
                        "disk",
                        "snapshot",
                        "image",
                        "securitygroup",
                        "volume",
                        "eni",
                        "ddh",
                        "keypair",
                        "launchtemplate",
                    ],
                ),
            ),
        ]);
        AlibabaConfig {
            products,
            limits: AlibabaLimits::default(),
            tag_service: TagServiceLimits::default(),
            tag_service_products: BTreeMap::from([
                ("apigateway".to_string(), API_GATEWAY_VERSION.to_string()),
                ("ecs".to_string(), ECS_VERSION.to_string()),
            ]),
        }
    }
}

impl Default for AlibabaLimits {
    fn default() -> Self {
        AlibabaLimits {
            resources_per_call: 50,
            tags_per_call: 20,
            keys_per_untag_call: 20,
            tags_per_resource: 20,
            key_max_chars: 128,
            value_max_chars: 128,
            reserved_prefixes: vec!["aliyun".to_string(), "acs:".to_string()],
            forbidden_substrings: vec!["http://".to_string(), "https://".to_string()],
        }
    }
}

impl AlibabaConfig {
    /// Where Tag-service ARNs find the resources of the products served here.
    pub(crate) fn tag_service_aliases(&self) -> Aliases {
        let by_product = self
            .tag_service_products
            .iter()
            .filter_map(|(code, version)| {
                let product = self.products.get(version)?;
                Some((code.clone(), product.resource_types.clone()))
            })
            .collect();
        Aliases { by_product }
    }
}

impl Product {
    /// Checks a `ResourceType` against this product's.
    pub(crate) fn check_resource_type(&self, resource_type: &str) -> Result<(), RpcError> {
        if self.resource_types.iter().any(|t| t == resource_type) {
            Ok(())
        } else {
            Err(RpcError::resource_type_not_found())
        }
    }
}

impl AlibabaLimits {
    /// True for a system tag key (one with a reserved prefix): never written through the
    /// API and not counted in the per-resource quota.
    pub(crate) fn is_system_key(&self, key: &str) -> bool {
        self.reserved_prefixes
            .iter()
            .any(|p| key.starts_with(p.as_str()))
    }

    /// A key that may be written or removed through the API.
    pub(crate) fn check_key(&self, key: &str) -> Result<(), RpcError> {
        if self.is_malformed(key) || key.chars().count() > self.key_max_chars {
            Err(RpcError::malformed_key())
        } else {
            Ok(())
        }
    }

    /// A value that may be written through the API (empty is allowed).
    pub(crate) fn check_value(&self, value: &str) -> Result<(), RpcError> {
        if self.is_malformed(value) || value.chars().count() > self.value_max_chars {
            Err(RpcError::malformed_value())
        } else {
            Ok(())
        }
    }

    fn is_malformed(&self, text: &str) -> bool {
        self.reserved_prefixes
            .iter()
            .any(|p| text.starts_with(p.as_str()))
            || self
                .forbidden_substrings
                .iter()
                .any(|s| text.contains(s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules_follow_the_spec_case_sensitively() {
        let limits = AlibabaLimits::default();
        for good in ["env", "Aliyun-team", "ACS:x", "环境", &"k".repeat(128)] {
            assert!(limits.check_key(good).is_ok(), "{good:?} is a valid key");
        }
        for bad in [
            "aliyun-x",
            "acs:rm",
            "see http://x",
            "https://x",
            &"k".repeat(129),
        ] {
            assert_eq!(
                limits.check_key(bad).unwrap_err().code,
                "InvalidTagKey.Malformed",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn value_rules_allow_empty_and_count_characters() {
        let limits = AlibabaLimits::default();
        assert!(limits.check_value("").is_ok());
        assert!(limits.check_value(&"环".repeat(128)).is_ok());
        assert!(limits.check_value(&"环".repeat(129)).is_err());
        assert_eq!(
            limits.check_value("acs:x").unwrap_err().code,
            "InvalidTagValue.Malformed"
        );
    }

    #[test]
    fn products_know_their_resource_types() {
        let config = AlibabaConfig::default();
        let gateway = &config.products[API_GATEWAY_VERSION];
        assert!(gateway.check_resource_type("apiGroup").is_ok());
        assert_eq!(
            gateway.check_resource_type("instance").unwrap_err().code,
            "InvalidResourceType.NotFound"
        );
        assert!(
            config.products[ECS_VERSION]
                .check_resource_type("instance")
                .is_ok()
        );
    }
}
