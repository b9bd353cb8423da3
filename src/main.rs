//! The `tagbinder` command: the operator, the CLI, the emulator, and the CRDs.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tagbinder::{cli, controller, emulator};

/// tagbinder manages cloud resource tags declaratively, from ResourceTagBinding manifests.
#[derive(Parser, Debug)]
#[command(name = "tagbinder", version, about)]
struct Args {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator: reconcile ResourceTagBindings in a cluster.
    Run(controller::RunArgs),
    /// Show what apply would change, without writing.
    #[command(after_help = cli::PLAN_HELP)]
    Plan(cli::PlanArgs),
    /// Make the cloud match the manifests.
    #[command(after_help = cli::APPLY_HELP)]
    Apply(cli::ApplyArgs),
    /// Serve both clouds' tag APIs (tests, benchmarks, trying tagbinder without an account).
    Emulator(emulator::EmulatorArgs),
    /// Print the CRDs as one multi-document YAML.
    Crd,
    /// Tag policies: what a cluster installs to enforce them.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Print a ValidatingAdmissionPolicy and its binding that refuse, at `kubectl apply`, a
    /// ResourceTagBinding whose literal spec.tags break a Deny TagPolicy (allowedValues,
    /// patterns). Every TagPolicy is a parameter of the one policy: nothing to regenerate
    /// when policies change. Needs Kubernetes 1.30 or later.
    Admission,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    tagbinder::allocator::tune();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    // NB: one process-wide TLS provider (ring) for kube and the cloud clients alike, chosen
    // before either builds a client; installing fails only when one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match args.command {
        Command::Run(run) => match controller::run(run).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(1)
            }
        },
        Command::Plan(plan) => cli::plan(plan).await,
        Command::Apply(apply) => cli::apply(apply).await,
        Command::Emulator(emulator_args) => match emulator::run(emulator_args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(1)
            }
        },
        Command::Crd => {
            print!("{}", tagbinder::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Policy(PolicyCommand::Admission) => {
            print!("{}", tagbinder::policy::admission::manifests());
            ExitCode::SUCCESS
        }
    }
}
