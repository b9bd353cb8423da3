//! Test hooks that make calls fail: the next N matching calls answer an error code, or every
//! matching call is denied (403), as missing RBAC would.

use std::sync::Mutex;

use super::RecordedCall;
use super::errors::ApiError;

type Matcher = Box<dyn Fn(&RecordedCall) -> bool + Send + Sync>;

struct Rule {
    matcher: Matcher,
    /// `None`: forever.
    remaining: Option<usize>,
    code: u16,
}

/// The active rules, first match wins.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }
}
