//! Resource addressing on the Tag service (spec: alibaba-rpc-tagging.md section 1): a
//! binding's `resourceType: PRODUCT:TYPE` and plain ids, composed into ARNs
//! `arn:acs:{product}:{region}:{accountId}:{type}/{id}`, and ARNs of answers read back.

/// The account id that the Tag service reads as the caller's own account.
pub const ANY_ACCOUNT: &str = "*";

/// Longest product code or resource type accepted.
const MAX_PART_CHARS: usize = 64;

/// A binding's `resourceType` on the Tag service: which product, which of its types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArnType<'a> {
    /// Product code as ARNs spell it, e.g. `ecs`, `rds`, `oss`.
    pub product: &'a str,
    /// Resource type within the product, e.g. `instance`, `dbinstance`, `bucket`.
    pub resource_type: &'a str,
}

/// Why a `resourceType` is not the Tag service's `PRODUCT:TYPE`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResourceTypeError {
    /// No `:`.
    #[error(
        "resource type {0:?} is not PRODUCT:TYPE; the Tag service addresses resources by \
         product and type, e.g. ecs:instance, rds:dbinstance, oss:bucket"
    )]
    NotProductType(String),
    /// The product part breaks its rule.
    #[error(
        "product {product:?} of resource type {text:?} {rule}: lowercase ASCII letters, digits \
         and '-', starting with a letter, at most {MAX_PART_CHARS} characters (e.g. ecs, rds, \
         oss)"
    )]
    Product {
        /// The product part.
        product: String,
        /// The whole resource type.
        text: String,
        /// What is wrong with it.
        rule: &'static str,
    },
    /// The type part breaks its rule.
    #[error(
        "type {part:?} of resource type {text:?} {rule}: ASCII letters, digits, '-', '_' and \
         '.', starting with a letter, at most {MAX_PART_CHARS} characters (e.g. instance, \
         dbinstance, bucket)"
    )]
    Type {
        /// The type part.
        part: String,
        /// The whole resource type.
        text: String,
        /// What is wrong with it.
        rule: &'static str,
    },
}

/// An `accountId` that is neither `*` nor a numeric UID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an account id: expected * (the caller's account) or the account's numeric UID"
)]
pub struct AccountIdError(pub String);

/// Parses `PRODUCT:TYPE`, refusing a malformed one with the rule it breaks. The set of
/// products is open: only the shape is checked. A product is lowercase ASCII letters, digits
/// and `-`, starting with a letter; a type is ASCII letters, digits, `-`, `_` and `.`,
/// starting with a letter; each at most 64 characters.
pub fn parse_resource_type(text: &str) -> Result<ArnType<'_>, ResourceTypeError> {
    let Some((product, resource_type)) = text.split_once(':') else {
        return Err(ResourceTypeError::NotProductType(text.to_string()));
    };
    if let Some(rule) = part_rule(product, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    }) {
        return Err(ResourceTypeError::Product {
            product: product.to_string(),
            text: text.to_string(),
            rule,
        });
    }
    if let Some(rule) = part_rule(resource_type, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
    }) {
        return Err(ResourceTypeError::Type {
            part: resource_type.to_string(),
            text: text.to_string(),
            rule,
        });
    }
    Ok(ArnType {
        product,
        resource_type,
    })
}

/// What is wrong with one part, if anything.
fn part_rule(part: &str, allowed: impl Fn(char) -> bool) -> Option<&'static str> {
    if part.is_empty() {
        Some("is empty; expected")
    } else if part.chars().count() > MAX_PART_CHARS {
        Some("is too long; expected")
    } else if !part.starts_with(|c: char| c.is_ascii_alphabetic()) || !part.chars().all(allowed) {
        Some("is malformed; expected")
    } else {
        None
    }
}

/// Checks an `accountId`: `*` (the caller's account) or the account's numeric UID.
pub fn check_account_id(account_id: &str) -> Result<(), AccountIdError> {
    if account_id == ANY_ACCOUNT
        || (!account_id.is_empty()
            && account_id.len() <= 32
            && account_id.chars().all(|c| c.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(AccountIdError(account_id.to_string()))
    }
}

/// The ARN of one resource: `arn:acs:{product}:{region}:{account}:{type}/{id}`.
pub fn arn(kind: &ArnType<'_>, region: &str, account_id: &str, id: &str) -> String {
    format!(
        "arn:acs:{}:{region}:{account_id}:{}/{id}",
        kind.product, kind.resource_type
    )
}

/// The parts of an ARN of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedArn<'a> {
    /// Product code.
    pub product: &'a str,
    /// Region (may be empty or `*`).
    pub region: &'a str,
    /// Account id (the real one where `*` was sent).
    pub account_id: &'a str,
    /// Resource type.
    pub resource_type: &'a str,
    /// Resource id (everything after the first `/`).
    pub id: &'a str,
}

impl ParsedArn<'_> {
    /// True when this ARN names resource `id` of `kind`, whatever its region and account
    /// (answers may carry the real account id where `*` was sent). Product and type compare
    /// ASCII case-insensitively, the id exactly.
    pub fn names(&self, kind: &ArnType<'_>, id: &str) -> bool {
        self.names_kind(kind) && self.id == id
    }

    /// True when this ARN is of `kind`.
    pub fn names_kind(&self, kind: &ArnType<'_>) -> bool {
        self.product.eq_ignore_ascii_case(kind.product)
            && self.resource_type.eq_ignore_ascii_case(kind.resource_type)
    }
}

/// Reads an ARN, with or without the leading `arn:` (official examples show both).
pub fn parse_arn(text: &str) -> Option<ParsedArn<'_>> {
    let text = text.trim();
    let text = text.strip_prefix("arn:").unwrap_or(text);
    let rest = text.strip_prefix("acs:")?;
    let mut parts = rest.splitn(4, ':');
    let product = parts.next()?;
    let region = parts.next()?;
    let account_id = parts.next()?;
    let (resource_type, id) = parts.next()?.split_once('/')?;
    if product.is_empty() || resource_type.is_empty() || id.is_empty() {
        return None;
    }
    Some(ParsedArn {
        product,
        region,
        account_id,
        resource_type,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_product_and_type_of_any_product() {
        for text in [
            "ecs:instance",
            "rds:dbinstance",
            "oss:bucket",
            "slb:instance",
            "vpc:vpc",
            "kvstore:instance",
            "cs:cluster",
            "alikafka:instance",
            "ecs:launch_template.v2",
        ] {
            assert!(parse_resource_type(text).is_ok(), "{text}");
        }
        let kind = parse_resource_type("rds:dbinstance").unwrap();
        assert_eq!((kind.product, kind.resource_type), ("rds", "dbinstance"));
    }

    #[test]
    fn refuses_malformed_types_naming_the_rule() {
        let cases = [
            ("instance", "not PRODUCT:TYPE"),
            ("ECS:instance", "lowercase"),
            (":instance", "is empty"),
            ("ecs:", "is empty"),
            ("ecs:inst/ance", "is malformed"),
            ("ecs:a:b", "is malformed"),
            ("1ecs:instance", "starting with a letter"),
            ("ecs:_x", "is malformed"),
        ];
        for (text, needle) in cases {
            let rule = parse_resource_type(text).expect_err(text).to_string();
            assert!(rule.contains(needle), "{text}: {rule}");
            assert!(rule.contains(&format!("{text:?}")), "{text}: {rule}");
        }
        let long = format!("ecs:{}", "a".repeat(65));
        assert!(
            parse_resource_type(&long)
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
    }

    #[test]
    fn composes_and_reads_arns() {
        let kind = parse_resource_type("ecs:instance").unwrap();
        let text = arn(&kind, "cn-hangzhou", ANY_ACCOUNT, "i-bp1");
        assert_eq!(text, "arn:acs:ecs:cn-hangzhou:*:instance/i-bp1");
        let parsed = parse_arn(&text).unwrap();
        assert!(parsed.names(&kind, "i-bp1"));
        assert!(!parsed.names(&kind, "i-bp2"));
        let real = parse_arn("arn:acs:ecs:cn-hangzhou:1234567890123456:instance/i-bp1").unwrap();
        assert_eq!(real.account_id, "1234567890123456");
        assert!(real.names(&kind, "i-bp1"), "the real account id matches *");
        let bare = parse_arn("acs:ECS:cn-hangzhou:123:Instance/i-bp1").unwrap();
        assert!(bare.names(&kind, "i-bp1"), "no arn: prefix, other case");
        let other = parse_resource_type("ecs:disk").unwrap();
        assert!(!parsed.names(&other, "i-bp1"));
        let with_slash = parse_arn("arn:acs:oss::1:bucket/a/b").unwrap();
        assert_eq!(with_slash.id, "a/b");
        for bad in [
            "",
            "arn:aws:ecs:r:a:instance/i",
            "arn:acs:ecs:r:a:instance",
            "arn:acs:ecs",
        ] {
            assert_eq!(parse_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn account_ids_are_star_or_digits() {
        assert!(check_account_id("*").is_ok());
        assert!(check_account_id("1234567890123456").is_ok());
        for bad in ["", "**", "12a", "-1", &"1".repeat(33)] {
            assert!(check_account_id(bad).is_err(), "{bad}");
        }
    }
}
