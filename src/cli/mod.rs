//! `tagbinder plan|apply -f PATH...`: the reconcile over manifests read from files, for GitOps
//! pipelines and for trying tagbinder without a cluster (DESIGN.md section 5).

pub mod credentials;
mod files;
pub mod journal;
pub mod manifests;
pub mod output;
pub mod progress;
mod run;
mod schema;
pub mod state;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub use run::{Command, Strategy, run, run_with};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable, like Terraform's plan.
    Text,
    /// One JSON document.
    Json,
}

/// Flags shared by `plan` and `apply`.
#[derive(Clone, Debug, clap::Args)]
pub struct CommonArgs {
    /// Manifest file, directory (read recursively), or `-` for standard input. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// Run against tagbinder's emulator, started inside this process, keeping the emulated
    /// cloud's tags in STATE.
    #[arg(
        long,
        value_name = "STATE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ".tagbinder/cloud.json"
    )]
    pub embedded_cloud: Option<PathBuf>,
    /// Where the ownership record of each binding is kept between runs.
    #[arg(long, value_name = "FILE", default_value = ".tagbinder/state.json")]
    pub state: PathBuf,
    /// How long to wait for another run on the same state file to end (`apply` holds an
    /// exclusive lock on it for the whole run), e.g. `30s`, `5m`. 0: fail at once.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub lock_timeout: Duration,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Refuse documents of kinds tagbinder does not read (a ConfigMap, a Kustomization)
    /// instead of skipping them with a note, so that `kustomize build | tagbinder plan -f -`
    /// works.
    #[arg(long)]
    pub strict: bool,
    /// Progress on stderr while the run calls the cloud: bindings passed, calls made against
    /// the lower bound, the current rate and the time left. `auto`: when stderr is a terminal
    /// and the output is text.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = progress::ProgressMode::Auto)]
    pub progress: progress::ProgressMode,
}

/// `tagbinder plan`.
#[derive(Clone, Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Exit 0 when nothing would change, 2 when changes are pending, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// `tagbinder apply`.
#[derive(Clone, Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Also remove the tags of bindings that are in the state file but no longer in the files
    /// (by their deletionPolicy).
    #[arg(long)]
    pub prune_removed: bool,
}

/// `args` with the state file's path resolved ([`state::resolve`]): once, before anything
/// else, so that the whole run locks, reads and writes one file.
fn resolved(args: &CommonArgs) -> Result<CommonArgs, Vec<String>> {
    let state = state::resolve(&args.state).map_err(|error| vec![error])?;
    Ok(CommonArgs {
        state,
        ..args.clone()
    })
}

/// Runs `tagbinder plan` and returns the process exit code.
pub async fn plan(args: PlanArgs) -> ExitCode {
    let common = match resolved(&args.common) {
        Ok(common) => common,
        Err(errors) => return print_errors(&errors),
    };
    let report = match run(&common, Command::Plan).await {
        Ok(report) => report,
        Err(errors) => return print_errors(&errors),
    };
    print_report(&report, args.common.output);
    let failed = report.bindings.iter().any(output::BindingReport::failed);
    // NB: a suspended binding plans no write calls: its changes are not pending.
    let pending = report.bindings.iter().any(|b| b.write_calls > 0);
    match (failed, args.detailed_exitcode, pending) {
        (true, _, _) => ExitCode::from(1),
        (false, true, true) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    }
}

/// Runs `tagbinder apply` and returns the process exit code: 0 when every binding is Ready.
pub async fn apply(args: ApplyArgs) -> ExitCode {
    let command = Command::Apply {
        prune_removed: args.prune_removed,
    };
    let common = match resolved(&args.common) {
        Ok(common) => common,
        Err(errors) => return print_errors(&errors),
    };
    let report = match run(&common, command).await {
        Ok(report) => report,
        Err(errors) => return print_errors(&errors),
    };
    print_report(&report, args.common.output);
    let removed_failed = report.removed.iter().any(|r| r.action == "failed");
    if report.bindings.iter().all(|b| b.ready) && !removed_failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_report(report: &output::Report, format: Format) {
    match format {
        Format::Text => print!("{}", output::render_text(report)),
        Format::Json => match serde_json::to_string_pretty(report) {
            Ok(json) => println!("{json}"),
            Err(error) => eprintln!("error: cannot render the report as JSON: {error}"),
        },
    }
}

fn print_errors(errors: &[String]) -> ExitCode {
    for error in errors {
        eprintln!("error: {}", output::clean(error));
    }
    ExitCode::from(1)
}
