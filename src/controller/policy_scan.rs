//! TagPolicy scans in the controller (issue 24): each `spec.scan[]` entry is read every
//! `interval` (default 1h; 20 s after a failed read) through its provider's client, with the calls of an Observe
//! selector ([`crate::reconcile::scan`]), and its resources counted under its policy. Reads
//! only: a scan never writes. A scan whose read fails keeps its last counts, and the log says
//! why.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tokio::time::Instant;

use super::context::Context;
use super::policy_status::scan_holder;
use crate::api::{PolicyScan, TagPolicy};
use crate::policy::Scope;

/// How often the scans are looked at (reading is on each scan's own interval).
pub const CHECK: Duration = Duration::from_secs(10);
/// A scan's interval when it names none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

/// How soon a scan whose read failed (its provider's Secret not cached yet, the cloud
/// failing) is read again.
pub const RETRY: Duration = Duration::from_secs(20);

/// When each scan is due next, and under which generation of its policy it was read.
type LastRead = HashMap<String, (Option<i64>, Instant)>;

/// Reads the scans that are due, forever (the caller aborts it).
pub async fn run(ctx: Arc<Context>) {
    let Some(policies) = ctx.policies.clone() else {
        return;
    };
    let mut last: LastRead = HashMap::new();
    loop {
        let objects = {
            policies.current().await;
            policies.objects()
        };
        let valid = policies.now();
        tracing::trace!(policies = objects.len(), "looking for due scans");
        let mut wanted = std::collections::HashSet::new();
        let mut read_any = false;
        for policy in &objects {
            if !valid.iter().any(|v| v.name == policy.name_any()) {
                continue;
            }
            for (index, scan) in policy.spec.scan.iter().enumerate() {
                let holder = scan_holder(&policy.name_any(), index);
                wanted.insert(holder.clone());
                if !due(&last, &holder, policy, Instant::now()) {
                    continue;
                }
                tracing::debug!(policy = %policy.name_any(), index, "reading a scan");
                let read = read(&ctx, &valid, policy, scan, &holder).await;
                let next = Instant::now() + if read { interval(scan) } else { RETRY };
                last.insert(holder.clone(), (policy.metadata.generation, next));
                read_any |= read;
            }
        }
        let mut forgot = false;
        for holder in ctx.policy_status.scans() {
            if !wanted.contains(&holder) {
                ctx.policy_status.forget(&holder);
                last.remove(&holder);
                forgot = true;
            }
        }
        if read_any || forgot {
            ctx.policy_status.changed();
        }
        tokio::time::sleep(CHECK).await;
    }
}

/// Whether a scan is due: never read, its policy changed since, or its time came.
fn due(last: &LastRead, holder: &str, policy: &TagPolicy, now: Instant) -> bool {
    let Some((generation, at)) = last.get(holder) else {
        return true;
    };
    *generation != policy.metadata.generation || now >= *at
}

/// A scan's interval (the CRD's pattern and CEL rule make it parse, and at least 1m).
pub fn interval(scan: &PolicyScan) -> Duration {
    scan.interval
        .as_deref()
        .and_then(|text| humantime::parse_duration(text).ok())
        .unwrap_or(DEFAULT_INTERVAL)
        .max(Duration::from_secs(60))
}

/// Reads one scan and records what it found; false when nothing could be read.
async fn read(
    ctx: &Context,
    policies: &[crate::policy::Policy],
    policy: &TagPolicy,
    scan: &PolicyScan,
    holder: &str,
) -> bool {
    let name = policy.name_any();
    let provider_name = &scan.provider_ref.name;
    let Some(provider) = ctx.providers.get(&ObjectRef::new(provider_name)) else {
        tracing::warn!(policy = %name, provider = %provider_name, "a scan names a TagProvider that does not exist; nothing read");
        return false;
    };
    let client = match ctx.cloud_client(&provider).await {
        Ok(Ok(client)) => client,
        Ok(Err(error)) => {
            tracing::warn!(policy = %name, provider = %provider_name, error = ?error, "the scan's provider has no usable client; nothing read");
            return false;
        }
        Err(error) => {
            tracing::warn!(policy = %name, provider = %provider_name, %error, "cannot build the scan's client; nothing read");
            return false;
        }
    };
    let participant = client.participant(&scan.resource_type);
    let read =
        crate::reconcile::scan::read(&participant, &scan.resource_type, &scan.match_tags).await;
    match read {
        Ok(tags) => {
            tracing::debug!(policy = %name, provider = %provider_name, resources = tags.len(), "scan read");
            let scope = Scope {
                provider: provider_name,
                resource_type: &scan.resource_type,
                namespace_labels: None,
            };
            ctx.policy_status
                .scanned(holder, policies, &name, &scope, &tags);
            true
        }
        Err(error) => {
            tracing::warn!(policy = %name, provider = %provider_name, %error, "a scan read nothing");
            false
        }
    }
}
