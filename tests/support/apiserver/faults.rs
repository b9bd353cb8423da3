//! Test hooks that make calls fail: the next N matching calls answer an error code, or every
//! matching call is denied (403), as missing RBAC would. And calls that are held for a while
//! before they are served, unless abandoned meanwhile (as a call in flight when its client is
//! killed never reaches the store).

use std::sync::Mutex;
use std::time::Duration;

use super::RecordedCall;
use super::errors::ApiError;

type Matcher = Box<dyn Fn(&RecordedCall) -> bool + Send + Sync>;

struct Rule {
    matcher: Matcher,
    /// `None`: forever.
    remaining: Option<usize>,
    code: u16,
}

struct Delay {
    matcher: Matcher,
    delay: Duration,
}

/// The active rules, first match wins.
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    delays: Mutex<Vec<Delay>>,
    /// Bumped to abandon every call being held.
    abandoned: tokio::sync::watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rules: Mutex::new(Vec::new()),
            delays: Mutex::new(Vec::new()),
            abandoned: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Faults {
    /// Adds a rule.
    pub fn add(&self, matcher: Matcher, remaining: Option<usize>, code: u16) {
        self.lock().push(Rule {
            matcher,
            remaining,
            code,
        });
    }

    /// The failure for this call, if a rule matches it (and uses up one of its times).
    pub fn check(&self, call: &RecordedCall) -> Option<ApiError> {
        let mut rules = self.lock();
        let index = rules
            .iter()
            .position(|rule| rule.remaining != Some(0) && (rule.matcher)(call))?;
        let rule = &mut rules[index];
        if let Some(remaining) = rule.remaining.as_mut() {
            *remaining -= 1;
        }
        Some(match rule.code {
            403 => ApiError::forbidden(
                &call.user,
                &call.call.verb,
                &call.call.resource,
                call.call.namespace.as_deref(),
            ),
            code => ApiError::injected(code),
        })
    }

    /// Every call that `matcher` accepts is held for `delay` before it is served.
    pub fn add_delay(&self, matcher: Matcher, delay: Duration) {
        self.delays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Delay { matcher, delay });
    }

    /// Holds the call if a delay rule matches it; false when it was abandoned meanwhile (it
    /// must not be served).
    pub async fn hold(&self, call: &RecordedCall) -> bool {
        let delay = {
            let delays = self.delays.lock().unwrap_or_else(|e| e.into_inner());
            delays.iter().find(|d| (d.matcher)(call)).map(|d| d.delay)
        };
        let Some(delay) = delay else {
            return true;
        };
        let mut abandoned = self.abandoned.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = abandoned.changed() => false,
        }
    }

    /// Every call being held now is answered 503 without being served.
    pub fn abandon_held(&self) {
        self.abandoned.send_modify(|epoch| *epoch += 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }
}
