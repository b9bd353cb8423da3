//! The regions each cloud documents, to catch a typo in `spec.region` before it looks like a
//! cloud without resources (a wrong region answers reads with no tags, as a missing resource
//! does). A warning only: clouds open regions, and `spec.endpoint` reaches any of them.
//!
//! Alibaba Cloud: the region IDs of its public and finance clouds, as the Tag service's
//! endpoint list (`api-tag-2018-08-28-endpoint`) and the region list (`72379`) give them.
//! JD Cloud: the regions of its resource-tag service, and `cn-all` for CDN (spec/).

use super::Cloud;

/// Alibaba Cloud's region IDs.
pub const ALIBABA: &[&str] = &[
    "cn-qingdao",
    "cn-beijing",
    "cn-zhangjiakou",
    "cn-huhehaote",
    "cn-wulanchabu",
    "cn-hangzhou",
    "cn-shanghai",
    "cn-nanjing",
    "cn-fuzhou",
    "cn-shenzhen",
    "cn-heyuan",
    "cn-guangzhou",
    "cn-chengdu",
    "cn-hongkong",
    "cn-zhengzhou-jva",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-3",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ap-southeast-8",
    "us-east-1",
    "us-west-1",
    "us-southeast-1",
    "na-south-1",
    "eu-west-1",
    "eu-central-1",
    "me-east-1",
    "me-central-1",
    "cn-hangzhou-finance",
    "cn-shanghai-finance-1",
    "cn-shenzhen-finance-1",
    "cn-beijing-finance-1",
];

/// JD Cloud's region IDs.
pub const JDCLOUD: &[&str] = &[
    "cn-north-1",
    "cn-east-1",
    "cn-east-2",
    "cn-south-1",
    "cn-all",
];

/// The regions tagbinder knows for `cloud`.
pub fn known(cloud: Cloud) -> &'static [&'static str] {
    match cloud {
        Cloud::Alibaba => ALIBABA,
        Cloud::Jdcloud => JDCLOUD,
    }
}

/// `None` for a known region; otherwise the closest known one, if any is close.
pub fn unknown(cloud: Cloud, region: &str) -> Option<Option<&'static str>> {
    let regions = known(cloud);
    if regions.contains(&region) {
        return None;
    }
    let closest = regions
        .iter()
        .map(|known| (strsim::levenshtein(region, known), *known))
        .filter(|(distance, _)| *distance <= 3)
        .min()
        .map(|(_, known)| known);
    Some(closest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_is_caught_with_the_region_meant() {
        assert_eq!(unknown(Cloud::Alibaba, "cn-hangzhou"), None);
        assert_eq!(
            unknown(Cloud::Alibaba, "cn-hangzou"),
            Some(Some("cn-hangzhou"))
        );
        assert_eq!(
            unknown(Cloud::Jdcloud, "cn-north1"),
            Some(Some("cn-north-1"))
        );
        assert_eq!(unknown(Cloud::Jdcloud, "mars-1"), Some(None));
    }
}
