//! Resource addressing on AWS (spec: aws-resource-groups-tagging.md sections 3 and 4): a
//! binding's `resourceType` (`SERVICE[:TYPE]`, as `ResourceTypeFilters` names it) and its
//! ids, bare or ARNs, as the canonical ARN the API takes; ARNs of another partition, region,
//! account or type refused.

/// Why a resource type or id has no ARN of this provider.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    /// A `resourceType` that is not `SERVICE[:TYPE]`.
    #[error(
        "resource type {0:?} is not SERVICE[:TYPE] as the Resource Groups Tagging API's \
         ResourceTypeFilters name it, e.g. ec2:instance, rds:db, s3"
    )]
    ResourceType(String),
    /// An empty id.
    #[error("a resource id is empty")]
    EmptyId,
    /// A bare id of a type whose ARNs tagbinder does not compose.
    #[error(
        "{id:?} is a bare id of resource type {resource_type:?}, whose ARN tagbinder does not \
         compose: give the ARN (arn:{partition}:...); bare ids are composed for {composed}"
    )]
    NotComposed {
        /// The id.
        id: String,
        /// The binding's resource type.
        resource_type: String,
        /// The provider's partition.
        partition: String,
        /// The types whose bare ids are composed, comma-separated.
        composed: String,
    },
    /// A bare id, and the provider names no account to compose its ARN with.
    #[error(
        "{0:?} is a bare id: set the provider's aws.accountId to compose its ARN, or give the ARN"
    )]
    NoAccount(String),
    /// An id with `/` or `:` that is not an ARN.
    #[error("{id:?} is neither a bare id of {resource_type} nor an ARN: give the ARN")]
    NeitherBareNorArn {
        /// The id.
        id: String,
        /// The binding's resource type.
        resource_type: String,
    },
    /// An id that starts like an ARN but is none.
    #[error("{0:?} is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)")]
    NotAnArn(String),
    /// An ARN of another partition.
    #[error("{arn} is in partition {found}; this provider's is {expected}")]
    Partition {
        /// The ARN.
        arn: String,
        /// Its partition.
        found: String,
        /// The provider's.
        expected: String,
    },
    /// An ARN of another region.
    #[error(
        "{arn} is in region {found}; this provider's is {expected} (use a provider of that region)"
    )]
    Region {
        /// The ARN.
        arn: String,
        /// Its region.
        found: String,
        /// The provider's.
        expected: String,
    },
    /// An ARN of another account.
    #[error("{arn} is in account {found}; this provider's is {expected}")]
    Account {
        /// The ARN.
        arn: String,
        /// Its account.
        found: String,
        /// The provider's.
        expected: String,
    },
    /// An ARN of another resource type.
    #[error("{arn} is a {found}, not a {expected} (the binding's resourceType)")]
    Type {
        /// The ARN.
        arn: String,
        /// Its resource type.
        found: String,
        /// The binding's.
        expected: String,
    },
}

/// Where a provider's resources are: composes and checks ARNs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArnScope {
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
    /// The provider's region.
    pub region: String,
    /// The 12-digit account id, when the provider names it.
    pub account_id: Option<String>,
}

/// The partition of a region: `cn-*` is `aws-cn`, `us-gov-*` is `aws-us-gov`, others `aws`.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The resource types whose bare ids tagbinder composes into ARNs, with the ARN's resource
/// part before the id (`TYPE/` or `TYPE:`), or `""` for a service whose ARN ends with the
/// name alone. S3 buckets' ARNs name neither region nor account.
const COMPOSED: [(&str, &str); 20] = [
    ("ec2:instance", "instance/"),
    ("ec2:volume", "volume/"),
    ("ec2:vpc", "vpc/"),
    ("ec2:subnet", "subnet/"),
    ("ec2:security-group", "security-group/"),
    ("ec2:snapshot", "snapshot/"),
    ("ec2:image", "image/"),
    ("ec2:network-interface", "network-interface/"),
    ("ec2:natgateway", "natgateway/"),
    ("s3", ""),
    ("rds:db", "db:"),
    ("rds:cluster", "cluster:"),
    ("lambda:function", "function:"),
    ("dynamodb:table", "table/"),
    ("sqs", ""),
    ("sns", ""),
    ("elasticloadbalancing:loadbalancer", "loadbalancer/"),
    ("elasticloadbalancing:targetgroup", "targetgroup/"),
    ("ecs:cluster", "cluster/"),
    ("eks:cluster", "cluster/"),
];

/// Log groups: `logs:log-group`, `log-group:NAME`.
const LOG_GROUP: (&str, &str) = ("logs:log-group", "log-group:");

/// Checks a `resourceType`: `SERVICE` or `SERVICE:TYPE`, lowercase service of letters, digits
/// and `-`; a type of ASCII letters, digits, `-`, `_` and `.`.
pub fn check_resource_type(resource_type: &str) -> Result<(), ArnError> {
    let (service, kind) = match resource_type.split_once(':') {
        Some((service, kind)) => (service, Some(kind)),
        None => (resource_type, None),
    };
    let service_ok = !service.is_empty()
        && service.len() <= 64
        && service
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let kind_ok = kind.is_none_or(|kind| {
        !kind.is_empty()
            && kind.len() <= 128
            && kind
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    });
    if service_ok && kind_ok {
        Ok(())
    } else {
        Err(ArnError::ResourceType(resource_type.to_string()))
    }
}

/// The parts of an ARN.
struct Parts<'a> {
    partition: &'a str,
    service: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

fn parts(arn: &str) -> Option<Parts<'_>> {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, service, region, account, resource] = fields[..] else {
        return None;
    };
    (!partition.is_empty() && !service.is_empty() && !resource.is_empty()).then_some(Parts {
        partition,
        service,
        region,
        account,
        resource,
    })
}

/// The `SERVICE[:TYPE]` of an ARN: the resource part's type before `/` or `:`, or the service
/// alone when it has none (`arn:aws:s3:::bucket` is `s3`).
pub fn resource_type_of(arn: &str) -> Option<String> {
    let parts = parts(arn)?;
    Some(match parts.resource.find(['/', ':']) {
        Some(end) => format!("{}:{}", parts.service, &parts.resource[..end]),
        None => parts.service.to_string(),
    })
}

/// The bare id that names the resource of `arn` when tagbinder composes ARNs of its type
/// ([`ArnScope::arn`] in reverse, whatever the scope): `i-0abc` of
/// `arn:aws:ec2:REGION:ACCOUNT:instance/i-0abc`, the bucket of `arn:aws:s3:::NAME`. `None`
/// for anything else: not an ARN of the AWS partitions, or a type whose bare ids are not
/// composed. The claim index keys both names of one resource by it.
pub fn bare_id_of(arn: &str) -> Option<&str> {
    // NB: the claim index asks this of every id of every cloud: most are no ARN at all.
    if !arn.starts_with("arn:aws") {
        return None;
    }
    let parts = parts(arn)?;
    if !matches!(parts.partition, "aws" | "aws-cn" | "aws-us-gov") {
        return None;
    }
    let resource_type = resource_type_of(arn)?;
    let (_, prefix) = COMPOSED
        .iter()
        .chain(std::iter::once(&LOG_GROUP))
        .find(|(known, _)| *known == resource_type)?;
    let bare = parts.resource.strip_prefix(prefix)?;
    (!bare.is_empty()).then_some(bare)
}

impl ArnScope {
    /// The canonical ARN of `id` (bare or an ARN) of `resource_type`, or why there is none.
    pub fn arn(&self, resource_type: &str, id: &str) -> Result<String, ArnError> {
        if id.starts_with("arn:") {
            return self.check_arn(resource_type, id).map(|()| id.to_string());
        }
        if id.is_empty() {
            return Err(ArnError::EmptyId);
        }
        let composed = COMPOSED
            .iter()
            .chain(std::iter::once(&LOG_GROUP))
            .find(|(known, _)| *known == resource_type);
        let Some((_, prefix)) = composed else {
            return Err(ArnError::NotComposed {
                id: id.to_string(),
                resource_type: resource_type.to_string(),
                partition: self.partition.clone(),
                composed: COMPOSED
                    .iter()
                    .chain(std::iter::once(&LOG_GROUP))
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let service = resource_type.split(':').next().unwrap_or(resource_type);
        if service == "s3" {
            return Ok(format!("arn:{}:s3:::{id}", self.partition));
        }
        let account = self
            .account_id
            .as_deref()
            .ok_or_else(|| ArnError::NoAccount(id.to_string()))?;
        // NB: an SQS queue may be named by its URL, https://sqs.REGION.amazonaws.com/ACCOUNT/NAME.
        let name = if service == "sqs" && id.contains("://") {
            id.rsplit('/').next().unwrap_or(id)
        } else {
            id
        };
        if name.contains(['/', ':']) && !matches!(service, "elasticloadbalancing" | "logs") {
            return Err(ArnError::NeitherBareNorArn {
                id: id.to_string(),
                resource_type: resource_type.to_string(),
            });
        }
        Ok(format!(
            "arn:{}:{service}:{}:{account}:{prefix}{name}",
            self.partition, self.region
        ))
    }

    /// Refuses an ARN of another partition, region, account or type than this provider's.
    fn check_arn(&self, resource_type: &str, arn: &str) -> Result<(), ArnError> {
        let parts = parts(arn).ok_or_else(|| ArnError::NotAnArn(arn.to_string()))?;
        if parts.partition != self.partition {
            return Err(ArnError::Partition {
                arn: arn.to_string(),
                found: parts.partition.to_string(),
                expected: self.partition.clone(),
            });
        }
        if !parts.region.is_empty() && parts.region != self.region {
            return Err(ArnError::Region {
                arn: arn.to_string(),
                found: parts.region.to_string(),
                expected: self.region.clone(),
            });
        }
        if let Some(account) = &self.account_id
            && !parts.account.is_empty()
            && parts.account != account
        {
            return Err(ArnError::Account {
                arn: arn.to_string(),
                found: parts.account.to_string(),
                expected: account.clone(),
            });
        }
        let arn_type = resource_type_of(arn).unwrap_or_default();
        let same_type = arn_type == resource_type
            || (!resource_type.contains(':') && arn_type.split(':').next() == Some(resource_type));
        if !same_type {
            return Err(ArnError::Type {
                arn: arn.to_string(),
                found: arn_type,
                expected: resource_type.to_string(),
            });
        }
        let _ = parts.service;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(account: Option<&str>) -> ArnScope {
        ArnScope {
            partition: "aws".to_string(),
            region: "us-east-1".to_string(),
            account_id: account.map(str::to_string),
        }
    }

    #[test]
    fn bare_ids_of_the_listed_types_become_arns() {
        let scope = scope(Some("123456789012"));
        let cases = [
            (
                "ec2:instance",
                "i-0abc",
                "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
            ),
            (
                "ec2:security-group",
                "sg-1",
                "arn:aws:ec2:us-east-1:123456789012:security-group/sg-1",
            ),
            ("s3", "my-bucket", "arn:aws:s3:::my-bucket"),
            (
                "rds:db",
                "orders",
                "arn:aws:rds:us-east-1:123456789012:db:orders",
            ),
            (
                "rds:cluster",
                "c1",
                "arn:aws:rds:us-east-1:123456789012:cluster:c1",
            ),
            (
                "lambda:function",
                "f",
                "arn:aws:lambda:us-east-1:123456789012:function:f",
            ),
            (
                "dynamodb:table",
                "t",
                "arn:aws:dynamodb:us-east-1:123456789012:table/t",
            ),
            (
                "sqs",
                "https://sqs.us-east-1.amazonaws.com/123456789012/q1",
                "arn:aws:sqs:us-east-1:123456789012:q1",
            ),
            ("sqs", "q1", "arn:aws:sqs:us-east-1:123456789012:q1"),
            ("sns", "alerts", "arn:aws:sns:us-east-1:123456789012:alerts"),
            (
                "elasticloadbalancing:loadbalancer",
                "app/web/50dc6c495c0c9188",
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188",
            ),
            (
                "ecs:cluster",
                "prod",
                "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
            ),
            (
                "eks:cluster",
                "prod",
                "arn:aws:eks:us-east-1:123456789012:cluster/prod",
            ),
            (
                "logs:log-group",
                "/aws/app",
                "arn:aws:logs:us-east-1:123456789012:log-group:/aws/app",
            ),
        ];
        for (resource_type, id, arn) in cases {
            assert_eq!(
                scope.arn(resource_type, id).as_deref(),
                Ok(arn),
                "{resource_type} {id}"
            );
            assert_eq!(
                scope.arn(resource_type, arn).as_deref(),
                Ok(arn),
                "an ARN is canonical already"
            );
        }
    }

    #[test]
    fn other_partitions_regions_accounts_and_types_are_refused() {
        let scope = scope(Some("123456789012"));
        let refused = [
            (
                "ec2:instance",
                "arn:aws-cn:ec2:us-east-1:123456789012:instance/i-1",
                "partition",
            ),
            (
                "ec2:instance",
                "arn:aws:ec2:eu-west-1:123456789012:instance/i-1",
                "region",
            ),
            (
                "ec2:instance",
                "arn:aws:ec2:us-east-1:999999999999:instance/i-1",
                "account",
            ),
            (
                "ec2:instance",
                "arn:aws:ec2:us-east-1:123456789012:volume/vol-1",
                "not a ec2:instance",
            ),
            ("ec2:instance", "arn:aws", "not an ARN"),
        ];
        for (resource_type, arn, word) in refused {
            let error = scope.arn(resource_type, arn).unwrap_err().to_string();
            assert!(error.contains(word), "{arn}: {error}");
        }
        let error = scope.arn("kafka:cluster", "c-1").unwrap_err().to_string();
        assert!(error.contains("give the ARN"), "{error}");
        let error = self::scope(None)
            .arn("ec2:instance", "i-1")
            .unwrap_err()
            .to_string();
        assert!(error.contains("aws.accountId"), "{error}");
        assert_eq!(
            self::scope(None).arn("s3", "b").as_deref(),
            Ok("arn:aws:s3:::b")
        );
    }

    #[test]
    fn the_bare_id_of_a_composed_arn_is_the_id_it_was_composed_from() {
        let scope = scope(Some("123456789012"));
        for (resource_type, id) in [
            ("ec2:instance", "i-0abc"),
            ("s3", "my-bucket"),
            ("rds:db", "orders"),
            ("sqs", "q1"),
            (
                "elasticloadbalancing:loadbalancer",
                "app/web/50dc6c495c0c9188",
            ),
            ("logs:log-group", "/aws/app"),
        ] {
            let arn = scope.arn(resource_type, id).unwrap();
            assert_eq!(bare_id_of(&arn), Some(id), "{arn}");
        }
        assert_eq!(bare_id_of("i-0abc"), None);
        assert_eq!(
            bare_id_of("arn:aws:kafka:us-east-1:123456789012:cluster/c/1"),
            None
        );
        assert_eq!(bare_id_of("arn:acs:ecs:cn-hangzhou:1:instance/i-1"), None);
    }

    #[test]
    fn partitions_follow_the_region() {
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("eu-west-1"), "aws");
        assert!(check_resource_type("ec2:instance").is_ok());
        assert!(check_resource_type("s3").is_ok());
        assert!(check_resource_type("EC2:instance").is_err());
    }
}
