//! The shared controller on AWS (issue 22): a provider of the Resource Groups Tagging API
//! against a cloud emulator of its own whose inventory is the AWS example's (EC2 instances, an
//! RDS instance, an S3 bucket), its account named by STS. The example's bindings converge; a
//! bare id and its ARN are one resource for conflicts and for the prune of a deletion.

use std::sync::Arc;

use kube::api::DeleteParams;

use crate::Env;
use crate::support::fixtures::{Tenant, eventually, provider, tags};
use crate::support::processes::PersistentCloud;
use tagbinder::api::{AwsSettings, Cloud};

const WEB1: &str = "arn:aws:ec2:us-east-1:123456789012:instance/i-0e2eweb000000001";
const WEB2: &str = "arn:aws:ec2:us-east-1:123456789012:instance/i-0e2eweb000000002";
const DB: &str = "arn:aws:rds:us-east-1:123456789012:db:e2e-orders";
const BUCKET: &str = "arn:aws:s3:::tagbinder-e2e-media";

pub async fn aws_converges_and_a_bare_id_and_its_arn_are_one_resource(env: Arc<Env>) {
    let cloud = PersistentCloud::start(
        &env.scratch("aws"),
        &[
            (
                "aws",
                "us-east-1",
                "ec2:instance",
                WEB1,
                &[
                    ("created-by", "terraform"),
                    ("aws:cloudformation:stack-name", "web"),
                ],
            ),
            ("aws", "us-east-1", "ec2:instance", WEB2, &[]),
            ("aws", "us-east-1", "rds:db", DB, &[]),
            ("aws", "us-east-1", "s3", BUCKET, &[]),
        ],
    )
    .await;
    let mut aws = provider("awse2e", &cloud.url, "awse2e-creds");
    aws.spec.cloud = Cloud::Aws;
    aws.spec.region = "us-east-1".into();
    aws.spec.alibaba = None;
    // NB: no accountId: STS names it (GetCallerIdentity, once per provider client).
    aws.spec.aws = Some(AwsSettings {
        account_id: None,
        partition: None,
    });
    let tenant = Tenant::with_provider(&env.client, "awse2e", aws).await;
    let binding = |name: &str, kind: &str, ids: &[&str], declared: &[(&str, &str)]| {
        let mut binding = tenant.binding(name, ids, declared);
        binding.spec.resource_type = kind.into();
        binding
    };
    let web1 = || async { cloud.tags("aws", "ec2:instance", WEB1).await };

    // The example: instances by bare id and by ARN, the database and the bucket by bare id.
    tenant
        .create(&binding(
            "by-arn",
            "ec2:instance",
            &[WEB1],
            &[("owner", "team-web"), ("tier", "front")],
        ))
        .await;
    tenant.ready("by-arn").await;
    tenant
        .create(&binding(
            "db",
            "rds:db",
            &["e2e-orders"],
            &[("backup", "daily")],
        ))
        .await;
    tenant
        .create(&binding(
            "bucket",
            "s3",
            &["tagbinder-e2e-media"],
            &[("owner", "team-media")],
        ))
        .await;
    tenant.ready("db").await;
    tenant.ready("bucket").await;
    assert_eq!(
        web1().await,
        tags(&[
            ("owner", "team-web"),
            ("tier", "front"),
            ("created-by", "terraform"),
            ("aws:cloudformation:stack-name", "web"),
        ])
    );
    assert_eq!(
        cloud.tags("aws", "rds:db", DB).await,
        tags(&[("backup", "daily")])
    );
    assert_eq!(
        cloud.tags("aws", "s3", BUCKET).await,
        tags(&[("owner", "team-media")])
    );

    // A younger binding naming i-0e2eweb000000001 by its bare id loses the conflict.
    tenant
        .create(&binding(
            "rival",
            "ec2:instance",
            &["i-0e2eweb000000001"],
            &[("owner", "platform")],
        ))
        .await;
    let lost = tenant.not_ready("rival", "Conflict").await;
    let message = lost
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("by-arn"), "names the winner: {message}");
    // NB: two of the rival's intervals (2 s): the value never flips.
    for _ in 0..4 {
        assert_eq!(
            web1().await.get("owner").map(String::as_str),
            Some("team-web")
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    tenant
        .bindings
        .delete("rival", &DeleteParams::default())
        .await
        .expect("delete the rival");
    tenant.gone("rival").await;

    // Another binding declares owner on the instance by bare id; deleting the one that named
    // it by ARN prunes its own tier and leaves owner.
    tenant
        .create(&binding(
            "instances",
            "ec2:instance",
            &["i-0e2eweb000000001", WEB2],
            &[("env", "prod"), ("owner", "team-web")],
        ))
        .await;
    tenant.ready("instances").await;
    tenant
        .bindings
        .delete("by-arn", &DeleteParams::default())
        .await
        .expect("delete by-arn");
    tenant.gone("by-arn").await;
    eventually("tier pruned from the instance", || async {
        let now = web1().await;
        if now.contains_key("tier") {
            Err(format!("{now:?}"))
        } else {
            Ok(())
        }
    })
    .await;
    assert_eq!(
        web1().await,
        tags(&[
            ("env", "prod"),
            ("owner", "team-web"),
            ("created-by", "terraform"),
            ("aws:cloudformation:stack-name", "web"),
        ]),
        "owner is still declared by the other binding"
    );
    assert_eq!(
        cloud.tags("aws", "ec2:instance", WEB2).await,
        tags(&[("env", "prod"), ("owner", "team-web")])
    );
    assert_eq!(
        cloud.calls("aws", "GetCallerIdentity").await,
        1,
        "STS once for the provider's client"
    );
}
