//! Product presets: the API version, endpoint and resource types of the Alibaba Cloud
//! products whose own tag API (ResourceType + ResourceId.N) tagbinder knows
//! (spec: alibaba-rpc-tagging.md section 1).

/// A product preset: API version and endpoint pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductPreset {
    /// Product name as users write it in `spec.alibaba.product`.
    pub product: &'static str,
    /// API version, e.g. `2016-07-14`.
    pub api_version: &'static str,
    /// Endpoint host pattern with `{region}`.
    pub endpoint_pattern: &'static str,
    /// Accepted `ResourceType` values.
    pub resource_types: &'static [&'static str],
}

impl ProductPreset {
    /// The public endpoint URL of this product in a region, e.g.
    /// `https://apigateway.cn-hangzhou.aliyuncs.com`.
    pub fn endpoint(&self, region: &str) -> String {
        format!(
            "https://{}",
            self.endpoint_pattern.replace("{region}", region)
        )
    }
}

/// API Gateway (product code `CloudAPI`).
pub const APIGATEWAY: ProductPreset = ProductPreset {
    product: "apigateway",
    api_version: "2016-07-14",
    endpoint_pattern: "apigateway.{region}.aliyuncs.com",
    resource_types: &["apiGroup", "plugin", "app", "api"],
};

/// Elastic Compute Service.
pub const ECS: ProductPreset = ProductPreset {
    product: "ecs",
    api_version: "2014-05-26",
    endpoint_pattern: "ecs.{region}.aliyuncs.com",
    resource_types: &[
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
};

/// Every known preset.
pub const PRESETS: &[ProductPreset] = &[APIGATEWAY, ECS];

/// The preset of a product, by name (ASCII case-insensitive).
pub fn preset(product: &str) -> Option<&'static ProductPreset> {
    PRESETS
        .iter()
        .find(|preset| preset.product.eq_ignore_ascii_case(product))
}

/// The public endpoint URL of a product in a region, when the product has a preset.
pub fn endpoint_for(product: &str, region: &str) -> Option<String> {
    preset(product).map(|preset| preset.endpoint(region))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_gateway_preset_matches_the_spec() {
        let preset = preset("apigateway").expect("apigateway is a preset");
        assert_eq!(preset.api_version, "2016-07-14");
        assert_eq!(
            preset.endpoint("cn-hangzhou"),
            "https://apigateway.cn-hangzhou.aliyuncs.com"
        );
        assert_eq!(preset.resource_types, ["apiGroup", "plugin", "app", "api"]);
    }

    #[test]
    fn ecs_preset_matches_the_spec() {
        let preset = preset("ECS").expect("product names ignore ASCII case");
        assert_eq!(preset.api_version, "2014-05-26");
        assert_eq!(
            endpoint_for("ecs", "eu-central-1").as_deref(),
            Some("https://ecs.eu-central-1.aliyuncs.com")
        );
        assert!(preset.resource_types.contains(&"launchtemplate"));
        assert_eq!(preset.resource_types.len(), 10);
    }

    #[test]
    fn unknown_product_has_no_preset() {
        assert_eq!(preset("tag"), None);
        assert_eq!(endpoint_for("nosuchproduct", "cn-hangzhou"), None);
    }
}
