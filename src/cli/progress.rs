//! Progress of a long `plan` or `apply` on stderr (issue 25, item 5): a 10,000-binding apply at
//! 20 calls/s runs for minutes. The bar counts the cloud calls made against the lower bound of
//! the run's calls ([`crate::plan::bound`], from the declarations alone, as if no resource
//! carried a tag yet: an upper estimate for a run that finds tags in place), and says the
//! bindings passed, the current rate and the time left at the providers' rate limits.
//!
//! Shown with `--progress=always`, or with `auto` (the default) when stderr is a terminal, the
//! output is text and colour is not off (`--no-color`, `NO_COLOR`: a screen without escape
//! sequences); never with `never`. It is erased before the report is printed.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Format;
use crate::cloud::CallObserver;

/// `--progress`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// On a terminal (stderr), with text output.
    #[default]
    Auto,
    /// Always, on stderr, even when it is not a terminal.
    Always,
    /// Never.
    Never,
}

/// How often the bar is redrawn at most (and its rate and time left with it).
const TICK: Duration = Duration::from_millis(250);

/// The progress of one run (hidden: counts only).
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    calls: AtomicU64,
    bound: AtomicU64,
    bindings: AtomicU64,
    passed: AtomicU64,
    /// Calls per second the run's providers allow, in all (`f64` bits).
    rate_limit: AtomicU64,
}

impl Progress {
    /// The progress of a run in `mode` whose report is printed as `format`; `plain` (colour
    /// off: `--no-color` or `NO_COLOR`) asks for a screen without escape sequences, which a
    /// redrawn bar needs, so `auto` shows none then.
    pub fn new(mode: ProgressMode, format: Format, plain: bool) -> Self {
        let stderr_is_terminal = std::io::stderr().is_terminal();
        let shown = match mode {
            ProgressMode::Never => false,
            ProgressMode::Always => true,
            ProgressMode::Auto => stderr_is_terminal && format == Format::Text && !plain,
        };
        if !shown {
            return Self::hidden();
        }
        // NB: indicatif draws nothing on a stderr that is not a terminal; `always` asks for it.
        let target = if stderr_is_terminal {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), 4)
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        // NB: the template is a constant: it parses, or the unit test below fails.
        let style = ProgressStyle::with_template("[{bar:20}] {pos}/{len} calls (bound) | {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        Progress {
            bar: Some(bar),
            ..Self::hidden()
        }
    }

    /// Counts, shows nothing.
    pub fn hidden() -> Self {
        Progress {
            bar: None,
            calls: AtomicU64::new(0),
            bound: AtomicU64::new(0),
            bindings: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            rate_limit: AtomicU64::new(0),
        }
    }

    /// Whether anything is drawn.
    pub fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    /// The run's work is known: `bindings` to pass, at least `bound` calls, at most
    /// `rate_limit` calls per second in all (0: unlimited).
    pub fn start(&self, bindings: usize, bound: usize, rate_limit: f64) {
        self.bindings.store(bindings as u64, Ordering::Relaxed);
        self.bound.store(bound as u64, Ordering::Relaxed);
        self.rate_limit
            .store(rate_limit.to_bits(), Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length((bound as u64).max(self.calls.load(Ordering::Relaxed)));
            // NB: from here on only: nothing is drawn before the run calls the cloud (an
            // apply's confirmation prompt comes before).
            bar.enable_steady_tick(TICK);
        }
        self.redraw();
    }

    /// `bindings` more have passed.
    pub fn passed(&self, bindings: usize) {
        self.passed.fetch_add(bindings as u64, Ordering::Relaxed);
        self.redraw();
    }

    /// Erases the bar (before the report is printed).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// The line after the bar: bindings passed, current rate, time left.
    pub fn message(&self, per_second: f64) -> String {
        let calls = self.calls.load(Ordering::Relaxed);
        let bound = self.bound.load(Ordering::Relaxed);
        let rate_limit = f64::from_bits(self.rate_limit.load(Ordering::Relaxed));
        let left = bound.saturating_sub(calls);
        let eta = if left == 0 {
            "ETA -".to_string()
        } else if rate_limit > 0.0 {
            let seconds = (left as f64 / rate_limit).ceil() as u64;
            format!(
                "ETA {} at {rate_limit:.0}/s",
                humantime::format_duration(Duration::from_secs(seconds))
            )
        } else {
            "ETA unknown (no rate limit)".to_string()
        };
        format!(
            "bindings {}/{} | {per_second:.1}/s | {eta}",
            self.passed.load(Ordering::Relaxed),
            self.bindings.load(Ordering::Relaxed),
        )
    }

    fn redraw(&self) {
        let Some(bar) = &self.bar else { return };
        let calls = self.calls.load(Ordering::Relaxed);
        if bar.length().is_some_and(|len| calls > len) {
            bar.set_length(calls);
        }
        bar.set_position(calls);
        bar.set_message(self.message(bar.per_sec()));
    }
}

impl CallObserver for Progress {
    fn observe(&self, _cloud: &'static str, _action: &'static str, _outcome: &str) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.redraw();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses() {
        assert!(
            ProgressStyle::with_template("[{bar:20}] {pos}/{len} calls (bound) | {msg}").is_ok()
        );
    }

    #[test]
    fn the_message_counts_bindings_and_sets_the_time_left_by_the_rate_limit() {
        let progress = Progress::hidden();
        progress.start(10, 100, 20.0);
        for _ in 0..40 {
            progress.observe("alibaba", "TagResources", "ok");
        }
        progress.passed(4);
        assert_eq!(
            progress.message(19.5),
            "bindings 4/10 | 19.5/s | ETA 3s at 20/s"
        );
        progress.start(10, 30, 0.0);
        assert_eq!(progress.message(1.0), "bindings 4/10 | 1.0/s | ETA -");
    }
}
