//! `TagProvider.status` (issue 25, item 0): a provider whose key was revoked must not look
//! healthy in `kubectl get tp`. The passes of its bindings tell how its calls go; the
//! provider's `Ready` condition says it (`Reachable`, or `CredentialsInvalid`,
//! `ProviderError`, `InvalidSpec`), with the time of the last successful call.
//!
//! Written only when the condition's status or reason changes, or when the recorded time of
//! the last successful call is older than [`REFRESH`]: a fleet's rounds do not each write.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource};

use super::FIELD_MANAGER;
use super::context::Context;
use crate::api::conditions::{READY, reason};
use crate::api::{TagProvider, TagProviderStatus};

/// How stale `status.lastSuccessfulCallTime` may get while calls keep succeeding.
pub const REFRESH: Duration = Duration::from_secs(300);

/// How the provider's calls went in a pass of one of its bindings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// The cloud answered.
    Reachable,
    /// The provider cannot be used: the reason (one of [`reason`]) and what to do.
    Failing {
        /// `CredentialsInvalid`, `ProviderError` or `InvalidSpec`.
        reason: &'static str,
        /// For people; never a secret (the messages of the gate and of cloud errors carry
        /// none).
        message: String,
    },
}

/// What was last written (or is being written) per provider.
#[derive(Clone, Debug, PartialEq)]
struct Written {
    generation: Option<i64>,
    ready: bool,
    reason: String,
    message: String,
    since: jiff::Timestamp,
    last_success: Option<jiff::Timestamp>,
}

/// The providers' last written health, so that a round's passes write a change once.
/// Disabled by default (a namespaced controller writes no provider status).
#[derive(Debug, Default)]
pub struct ProviderHealth {
    enabled: bool,
    written: Mutex<HashMap<String, Written>>,
}

impl ProviderHealth {
    /// One that writes.
    pub fn enabled() -> Self {
        ProviderHealth {
            enabled: true,
            written: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Written>> {
        // NB: every critical section leaves the map consistent; a poisoned lock is safe.
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a binding's Ready reason says of its provider's calls, if anything.
pub fn health_of(readiness: &crate::reconcile::Readiness) -> Option<Health> {
    match readiness.reason {
        reason::CREDENTIALS_INVALID | reason::PROVIDER_ERROR => Some(Health::Failing {
            reason: readiness.reason,
            message: readiness.message.clone(),
        }),
        // NB: each of these read the cloud first.
        reason::SYNCED
        | reason::PARTIAL_FAILURE
        | reason::CONFLICT
        | reason::PROGRESSING
        | reason::OBSERVED
        | reason::TOO_MANY_RESOURCES => Some(Health::Reachable),
        _ => None,
    }
}

/// Records how `provider`'s calls went, and writes its status when that changed.
pub async fn report(ctx: &Context, provider: &str, health: Health) {
    if !ctx.provider_health.enabled {
        return;
    }
    let Some(cached) = ctx.providers.get(&ObjectRef::new(provider)) else {
        return;
    };
    let now = jiff::Timestamp::now();
    let next = {
        let mut written = ctx.provider_health.lock();
        let before = written
            .get(provider)
            .cloned()
            .or_else(|| from_status(&cached));
        let next = next_state(before.as_ref(), &health, cached.metadata.generation, now);
        if !must_write(before.as_ref(), &next, now) {
            return;
        }
        written.insert(provider.to_string(), next.clone());
        next
    };
    let api: Api<TagProvider> = Api::all(ctx.client.clone());
    let status = status_of(&next);
    let patch = serde_json::json!({
        "apiVersion": TagProvider::api_version(&()),
        "kind": TagProvider::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            provider,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await;
    if let Err(error) = written {
        tracing::warn!(provider, %error, "cannot write the provider's status");
        // NB: forgotten, so that the next pass writes it again.
        ctx.provider_health.lock().remove(provider);
    } else if next.ready {
        tracing::debug!(provider, "provider Ready");
    } else {
        tracing::info!(provider, reason = %next.reason, "provider not Ready");
    }
}

fn next_state(
    before: Option<&Written>,
    health: &Health,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Written {
    let (ready, reason, message, last_success) = match health {
        Health::Reachable => (
            true,
            reason::REACHABLE.to_string(),
            "the cloud answers the provider's calls".to_string(),
            Some(now),
        ),
        Health::Failing { reason, message } => (
            false,
            reason.to_string(),
            message.clone(),
            before.and_then(|b| b.last_success),
        ),
    };
    let since = match before {
        Some(before) if before.ready == ready => before.since,
        _ => now,
    };
    Written {
        generation,
        ready,
        reason,
        message,
        since,
        last_success,
    }
}

/// Whether `next` is news: another status, reason or generation, or a last success that the
/// written status shows [`REFRESH`] late.
fn must_write(before: Option<&Written>, next: &Written, now: jiff::Timestamp) -> bool {
    let Some(before) = before else {
        return true;
    };
    if (before.ready, &before.reason, before.generation)
        != (next.ready, &next.reason, next.generation)
    {
        return true;
    }
    let stale = |at: Option<jiff::Timestamp>| {
        at.is_none_or(|at| now.duration_since(at).unsigned_abs() >= REFRESH)
    };
    next.ready && stale(before.last_success)
}

fn status_of(state: &Written) -> TagProviderStatus {
    TagProviderStatus {
        observed_generation: state.generation,
        conditions: vec![Condition {
            type_: READY.to_string(),
            status: if state.ready { "True" } else { "False" }.to_string(),
            reason: state.reason.clone(),
            message: state.message.clone(),
            last_transition_time: Time(state.since),
            observed_generation: state.generation,
        }],
        last_successful_call_time: state.last_success.map(|at| at.to_string()),
    }
}

/// The state a provider's status shows (after a restart, so that nothing is written anew).
fn from_status(provider: &TagProvider) -> Option<Written> {
    let status = provider.status.as_ref()?;
    let ready = status.conditions.iter().find(|c| c.type_ == READY)?;
    Some(Written {
        generation: status.observed_generation,
        ready: ready.status == "True",
        reason: ready.reason.clone(),
        message: ready.message.clone(),
        since: ready.last_transition_time.0,
        last_success: status
            .last_successful_call_time
            .as_deref()
            .and_then(|at| at.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn failing(reason: &'static str) -> Health {
        Health::Failing {
            reason,
            message: format!("{reason} (request id changes every call)"),
        }
    }

    #[test]
    fn writes_on_a_change_of_reason_and_refreshes_the_last_success_every_five_minutes() {
        let first = next_state(None, &Health::Reachable, Some(1), at(0));
        assert!(must_write(None, &first, at(0)));
        let again = next_state(Some(&first), &Health::Reachable, Some(1), at(60));
        assert!(!must_write(Some(&first), &again, at(60)), "a minute later");
        let later = next_state(Some(&first), &Health::Reachable, Some(1), at(301));
        assert!(
            must_write(Some(&first), &later, at(301)),
            "five minutes later"
        );
        let revoked = next_state(
            Some(&later),
            &failing(reason::CREDENTIALS_INVALID),
            Some(1),
            at(302),
        );
        assert!(must_write(Some(&later), &revoked, at(302)));
        assert!(!revoked.ready);
        assert_eq!(
            revoked.last_success,
            Some(at(301)),
            "the last success stays"
        );
        let same = next_state(
            Some(&revoked),
            &failing(reason::CREDENTIALS_INVALID),
            Some(1),
            at(900),
        );
        assert!(
            !must_write(Some(&revoked), &same, at(900)),
            "the same reason with another message is no news"
        );
        assert_eq!(same.since, revoked.since, "lastTransitionTime stays");
        let status = status_of(&same);
        assert_eq!(status.conditions[0].reason, reason::CREDENTIALS_INVALID);
        assert_eq!(status.conditions[0].status, "False");
        assert_eq!(
            status.last_successful_call_time.as_deref(),
            Some(at(301).to_string().as_str())
        );
    }
}
