//! A small test harness (the suite is `harness = false`): every scenario runs as a task on one
//! runtime, all at once, each in its own namespace of shared servers where it can, so that the
//! suite takes about as long as its slowest scenario. Output and exit code follow libtest;
//! arguments that are not flags filter scenarios by substring; `--list` lists them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A scenario's body.
pub type Body<E> = fn(Arc<E>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// A named scenario.
pub struct Scenario<E> {
    pub name: &'static str,
    pub body: Body<E>,
}

/// Names a scenario after its async function.
#[macro_export]
macro_rules! scenario {
    ($name:ident) => {
        $crate::support::runner::Scenario {
            name: stringify!($name),
            body: |env| Box::pin($name(env)),
        }
    };
}

/// The scenarios that the command line selects.
pub fn selected<E>(scenarios: Vec<Scenario<E>>) -> (Vec<Scenario<E>>, usize, bool) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = args.iter().any(|a| a == "--list");
    let mut filters = Vec::new();
    let mut skip_value = false;
    for arg in &args {
        if skip_value {
            skip_value = false;
        } else if matches!(
            arg.as_str(),
            "--test-threads" | "--skip" | "--format" | "--color" | "-Z"
        ) {
            skip_value = true;
        } else if !arg.starts_with('-') {
            filters.push(arg.clone());
        }
    }
    let total = scenarios.len();
    let chosen: Vec<Scenario<E>> = scenarios
        .into_iter()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
        .collect();
    let filtered_out = total - chosen.len();
    (chosen, filtered_out, list)
}

/// Runs the scenarios concurrently, each within `limit`; prints libtest's lines; true when
/// every one passed.
pub async fn run<E: Send + Sync + 'static>(
    env: Arc<E>,
    scenarios: Vec<Scenario<E>>,
    filtered_out: usize,
    limit: Duration,
) -> bool {
    let started = Instant::now();
    println!("\nrunning {} tests", scenarios.len());
    let tasks: Vec<_> = scenarios
        .into_iter()
        .map(|scenario| {
            let body = (scenario.body)(env.clone());
            let task = tokio::spawn(async move {
                let begun = Instant::now();
                let outcome = tokio::time::timeout(limit, body).await;
                (outcome.is_ok(), begun.elapsed())
            });
            (scenario.name, task)
        })
        .collect();
    let total = tasks.len();
    let mut failed = Vec::new();
    for (name, task) in tasks {
        match task.await {
            Ok((true, took)) => println!("test {name} ... ok ({:.1}s)", took.as_secs_f64()),
            Ok((false, _)) => {
                println!("test {name} ... FAILED (no result within {limit:?})");
                failed.push(name);
            }
            Err(error) => {
                println!("test {name} ... FAILED ({})", panic_message(error));
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {filtered_out} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        total - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    failed.is_empty()
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".to_string()),
        Err(error) => error.to_string(),
    }
}
