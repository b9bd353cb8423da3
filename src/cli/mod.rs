//! `tagbinder plan|apply -f PATH...`: the reconcile over manifests read from files, for GitOps
//! pipelines and for trying tagbinder without a cluster (DESIGN.md section 5).

pub mod credentials;
mod files;
pub mod journal;
pub mod manifests;
pub mod output;
pub mod policy;
pub mod progress;
mod run;
mod schema;
pub mod state;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub use run::{Command, run, run_with};

/// Credentials and examples, after `tagbinder plan --help`.
pub const PLAN_HELP: &str = "\
Credentials: the Secret a provider references, when it is among the files; otherwise
  Alibaba Cloud: ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET
  JD Cloud:      JDCLOUD_ACCESS_KEY, JDCLOUD_SECRET_KEY

Exit codes: 0 planned (no changes, with --detailed-exitcode), 2 changes pending (with
--detailed-exitcode), 1 an error or a binding that could not be read or planned.

Examples:
  tagbinder plan -f examples/quickstart/ --embedded-cloud     # try it, no account needed
  tagbinder plan -f bindings/ --detailed-exitcode              # in CI: 2 when changes are pending
  kustomize build overlays/prod | tagbinder plan -f -          # other kinds are skipped with a note
  tagbinder plan -f bindings/ --prune-removed                  # also what removed bindings would prune
  tagbinder plan -f bindings/ -o json > plan.json              # formatVersion, summary, errors[]";

/// Credentials and examples, after `tagbinder apply --help`.
pub const APPLY_HELP: &str = "\
Credentials: the Secret a provider references, when it is among the files; otherwise
  Alibaba Cloud: ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET
  JD Cloud:      JDCLOUD_ACCESS_KEY, JDCLOUD_SECRET_KEY

Exit codes: 0 every binding Ready, 1 otherwise.

Examples:
  tagbinder apply -f examples/quickstart/ --embedded-cloud    # try it, no account needed
  tagbinder apply -f bindings/                                 # on a terminal: shows the plan, asks
  tagbinder apply -f bindings/ --auto-approve                  # no question (pipelines never ask)
  tagbinder apply -f bindings/ --prune-removed                 # also prune bindings removed from the files";

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
    /// No colour, even on a terminal (`NO_COLOR` set to anything does the same).
    #[arg(long)]
    pub no_color: bool,
    /// Refuse documents of kinds tagbinder does not read (a ConfigMap, a Kustomization).
    /// Without it they are skipped with a note, so that `kustomize build | tagbinder plan -f
    /// -` works.
    #[arg(long)]
    pub strict: bool,
    /// Progress on stderr while the run calls the cloud: bindings passed, calls made against
    /// the lower bound, the current rate and the time left. `auto`: when stderr is a terminal,
    /// the output is text and colour is not off (`--no-color`, `NO_COLOR`).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = progress::ProgressMode::Auto)]
    pub progress: progress::ProgressMode,
    /// The cluster's name: the value of `tagsFrom[].valueFrom.clusterName`, as
    /// `tagbinder run --cluster-name` gives it to the controller.
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
}

/// `tagbinder plan`.
#[derive(Clone, Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Exit 0 when nothing would change, 2 when changes are pending, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also show, key by key, what `apply --prune-removed` would remove for bindings that are
    /// in the state file but no longer in the files.
    #[arg(long)]
    pub prune_removed: bool,
    /// Print only the TagPolicy report (each policy's bindings and resources counted, its
    /// noncompliant resources, every binding that breaks a policy), for a CI job to archive;
    /// exit 1 when a binding breaks a Deny policy.
    #[arg(long)]
    pub policy_report: bool,
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
    /// Write without asking. On a terminal, against a real cloud, `apply` otherwise shows the
    /// plan and asks for `yes` first (in a pipeline, where nobody can answer, it never asks).
    #[arg(long)]
    pub auto_approve: bool,
}

/// `args` with the state file's path resolved ([`state::resolve`]): once, before anything
/// else, so that the whole run locks, reads and writes one file.
fn resolved(args: &CommonArgs) -> Result<CommonArgs, Vec<String>> {
    let state = state::resolve(&args.state).map_err(|error| vec![error.to_string()])?;
    Ok(CommonArgs {
        state,
        ..args.clone()
    })
}

/// Runs `tagbinder plan` and returns the process exit code.
pub async fn plan(args: PlanArgs) -> ExitCode {
    set_colour(&args.common);
    let command = Command::Plan {
        prune_removed: args.prune_removed,
    };
    let format = args.common.output;
    let common = match resolved(&args.common) {
        Ok(common) => common,
        Err(errors) => return print_errors("plan", &errors, format),
    };
    let mut report = match run(&common, command, None).await {
        Ok(report) => report,
        Err(errors) => return print_errors("plan", &errors, format),
    };
    report.finish();
    if args.policy_report {
        let compliance = policy::ComplianceReport {
            format_version: output::FORMAT_VERSION,
            policies: report.policies,
            violations: report.policy_violations,
        };
        print_compliance(&compliance, format);
        return if compliance.denies() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
    }
    print_report(&report, format);
    let failed = report.summary.failed > 0 || report.removed.iter().any(|r| r.action == "failed");
    // NB: a suspended binding plans no write calls: its changes are not pending.
    let pending = report.summary.write_calls > 0;
    match (failed, args.detailed_exitcode, pending) {
        (true, _, _) => ExitCode::from(1),
        (false, true, true) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    }
}

/// Runs `tagbinder apply` and returns the process exit code: 0 when every binding is Ready.
pub async fn apply(args: ApplyArgs) -> ExitCode {
    set_colour(&args.common);
    let command = Command::Apply {
        prune_removed: args.prune_removed,
    };
    let format = args.common.output;
    let common = match resolved(&args.common) {
        Ok(common) => common,
        Err(errors) => return print_errors("apply", &errors, format),
    };
    // NB: Terraform's rule: against a real cloud, on a terminal, `apply` shows the plan and
    // asks; `--auto-approve` (or a pipeline, where no one can answer) skips the question.
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let ask = interactive && !args.auto_approve && common.embedded_cloud.is_none();
    if ask && format == Format::Json {
        let error = "apply -o json on a terminal needs --auto-approve: the JSON report cannot \
                     carry the question"
            .to_string();
        return print_errors("apply", &[error], format);
    }
    let confirm = |plan: &output::Report| -> bool { confirm_plan(plan) };
    let confirm: Option<run::Confirm<'_>> = if ask { Some(&confirm) } else { None };
    let mut report = match run(&common, command, confirm).await {
        Ok(report) => report,
        Err(errors) => return print_errors("apply", &errors, format),
    };
    report.finish();
    print_report(&report, format);
    let removed_failed = report.removed.iter().any(|r| r.action == "failed");
    if report.bindings.iter().all(|b| b.ready) && !removed_failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Shows the plan and asks on the terminal; `true` only for `yes`. A plan with nothing to
/// write asks nothing.
fn confirm_plan(plan: &output::Report) -> bool {
    use std::io::{BufRead as _, Write as _};
    let mut plan = plan.clone();
    plan.finish();
    if plan.summary.write_calls == 0 {
        return true;
    }
    print_report(&plan, Format::Text);
    let mut stderr = anstream::stderr();
    let _ = write!(
        stderr,
        "\nDo you want to make these changes in the cloud?\n  Only 'yes' will be accepted \
         (--auto-approve skips this question): "
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    answer.trim() == "yes"
}

/// `--no-color` turns colour off for the whole process; otherwise `anstream` decides
/// (standard output a terminal, `NO_COLOR` and `CLICOLOR_FORCE` as they are set).
fn set_colour(args: &CommonArgs) {
    if args.no_color {
        anstream::ColorChoice::Never.write_global();
    }
}

fn print_report(report: &output::Report, format: Format) {
    use std::io::Write as _;
    let mut stdout = anstream::stdout();
    let written = match format {
        Format::Text => write!(stdout, "{}", output::render_text(report)),
        Format::Json => match serde_json::to_string_pretty(report) {
            Ok(json) => writeln!(stdout, "{json}"),
            Err(error) => {
                eprintln!("error: cannot render the report as JSON: {error}");
                Ok(())
            }
        },
    };
    if let Err(error) = written {
        eprintln!("error: cannot write the report: {error}");
    }
}

fn print_compliance(compliance: &policy::ComplianceReport, format: Format) {
    use std::io::Write as _;
    let mut stdout = anstream::stdout();
    let text = match format {
        Format::Json => serde_json::to_string_pretty(compliance)
            .map(|json| json + "\n")
            .unwrap_or_else(|error| format!("error: cannot render the report as JSON: {error}\n")),
        Format::Text => output::render_compliance(compliance),
    };
    if let Err(error) = write!(stdout, "{text}") {
        eprintln!("error: cannot write the report: {error}");
    }
}

/// Input errors: one line each on standard error; under `-o json`, also the JSON document
/// (with `errors[]`) on standard output, so that a CI job reads every outcome the same way.
fn print_errors(command: &'static str, errors: &[String], format: Format) -> ExitCode {
    for error in errors {
        eprintln!("error: {}", output::clean(error));
    }
    if format == Format::Json {
        print_report(&output::Report::input_errors(command, errors), format);
    }
    ExitCode::from(1)
}
