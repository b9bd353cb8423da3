//! `tagbinder emulator`: command-line flags and the serve-until-signal loop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::faults::FaultConfig;
use super::inventory::Inventory;
use super::{
    AwsConfig, EmulatorConfig, EmulatorError, JdcloudConfig, JdcloudLimits, MAX_CLOCK_OFFSET_SECS,
    ServerLimits, start,
};

/// Flags of `tagbinder emulator`.
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on. Keep it on loopback: the `/_emulator/` endpoints need no
    /// signature.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8780")]
    pub listen: SocketAddr,
    /// Accounts and resources to start with (YAML or JSON; a manifest set works too, its
    /// CloudInventory document is used).
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Where resources and tags persist; loaded at start when it exists, written after every
    /// change and at exit.
    #[arg(long = "state", value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// Entries per ListTagResources page (default: Alibaba Cloud's documented 50).
    #[arg(long, value_name = "N", default_value_t = super::ALIBABA_LIST_PAGE_ENTRIES as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub page_size: u64,
    /// Throttle requests beyond this many per second (token bucket).
    #[arg(long, value_name = "RPS", value_parser = parse_rate)]
    pub throttle_above: Option<f64>,
    /// Share of requests throttled at random (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_ratio)]
    pub throttle_ratio: f64,
    /// Share of requests answered with a 500 or 503 at random (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_ratio)]
    pub error_ratio: f64,
    /// Latency added to every cloud request, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u64,
    /// Seed of the random faults, for a reproducible sequence.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Share of requests whose connection is dropped before they are handled.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_ratio)]
    pub drop_ratio: f64,
    /// Share of requests handled (writes happen) whose answer is lost on a dropped connection.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_ratio)]
    pub lost_answer_ratio: f64,
    /// Share of requests answered only after --slow-ms (e.g. past the client's timeout).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_ratio)]
    pub slow_ratio: f64,
    /// Delay of a slow answer, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 60_000)]
    pub slow_ms: u64,
    /// Offset of the emulator's clock from the host's, in seconds (negative: behind), for
    /// the signature date and timestamp checks; at most 100 years either way.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 0,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i64).range(-MAX_CLOCK_OFFSET_SECS..=MAX_CLOCK_OFFSET_SECS)
    )]
    pub clock_offset_secs: i64,
    /// Lifetime, in seconds, of the temporary credentials it issues (STS AssumeRoleWithOIDC
    /// and AssumeRoleWithWebIdentity, the ECS metadata service); default: the DurationSeconds asked of STS, six hours for
    /// the metadata service. Short lifetimes test renewal before expiry.
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=43_200))]
    pub credentials_ttl: Option<u64>,
    /// Connections served at once; more wait until one closes.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Longest a client may take to send a request's headers (and an idle kept-alive
    /// connection may stay open), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,
    /// JD Cloud: most tags one resource may carry (an assumed default: JD Cloud's API pages
    /// state no figure).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub jdcloud_tags_per_resource: u64,
    /// JD Cloud: most tags in one tagResources or unTagResources call.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub jdcloud_tags_per_call: u64,
    /// JD Cloud: most resources in one call.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub jdcloud_resources_per_call: u64,
    /// AWS: seconds a GetResources PaginationToken stays valid (AWS documents 15 minutes).
    #[arg(long, value_name = "S", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub aws_pagination_token_ttl_secs: u64,
    /// AWS: answer ThrottledException above the documented per-action rates, per account and
    /// region (GetResources 15/s, TagResources and UntagResources 5/s).
    #[arg(long)]
    pub aws_enforce_rates: bool,
    /// AWS fault: the first N TagResources or UntagResources of each ARN report it in
    /// FailedResourcesMap as InternalServiceException, without applying it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub aws_internal_errors: u32,
    /// With --aws-internal-errors: apply those writes all the same (only the answer fails).
    #[arg(long)]
    pub aws_internal_error_applies: bool,
}

impl EmulatorArgs {
    /// The configuration these flags describe; reads the inventory file.
    pub fn to_config(&self) -> Result<EmulatorConfig, EmulatorError> {
        let inventory = match &self.inventory {
            Some(path) => Inventory::load(path)?,
            None => Inventory::default(),
        };
        Ok(EmulatorConfig {
            inventory,
            state_file: self.state_file.clone(),
            // NB: clap bounds the page size to 1.., and a page never needs more than usize.
            page_size: usize::try_from(self.page_size).unwrap_or(usize::MAX),
            faults: FaultConfig {
                throttle_above: self.throttle_above,
                throttle_ratio: self.throttle_ratio,
                error_ratio: self.error_ratio,
                latency: Duration::from_millis(self.latency_ms),
                seed: self.seed,
                drop_ratio: self.drop_ratio,
                lost_answer_ratio: self.lost_answer_ratio,
                slow_ratio: self.slow_ratio,
                slow_answer: Duration::from_millis(self.slow_ms),
                clock_offset: jiff::SignedDuration::from_secs(self.clock_offset_secs),
            },
            jdcloud: JdcloudConfig {
                limits: JdcloudLimits {
                    tags_per_resource: count(self.jdcloud_tags_per_resource),
                    tags_per_call: count(self.jdcloud_tags_per_call),
                    resources_per_call: count(self.jdcloud_resources_per_call),
                    ..JdcloudLimits::default()
                },
                ..JdcloudConfig::default()
            },
            aws: AwsConfig {
                pagination_token_ttl: Duration::from_secs(self.aws_pagination_token_ttl_secs),
                enforce_rates: self.aws_enforce_rates,
                internal_errors: self.aws_internal_errors,
                internal_error_applies: self.aws_internal_error_applies,
                ..AwsConfig::default()
            },
            server: ServerLimits {
                header_read_timeout: Duration::from_millis(self.header_timeout_ms),
                max_connections: count(self.max_connections),
                ..ServerLimits::default()
            },
            credentials_ttl: self.credentials_ttl.map(Duration::from_secs),
            ..EmulatorConfig::default()
        })
    }
}

/// A count bounded by clap to 1.., as a usize.
fn count(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{text:?} is not a number from 0 to 1")),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive number of requests per second"
        )),
    }
}

/// Serves until Ctrl-C or SIGTERM, then stops gracefully and persists the state.
pub async fn run(args: EmulatorArgs) -> Result<(), EmulatorError> {
    let config = args.to_config()?;
    if !args.listen.ip().is_loopback() {
        // NB: the `/_emulator/` endpoints change tags with no signature; they refuse a
        // non-loopback Host, but anyone who can reach the port can still call the clouds' APIs
        // with the inventory's keys.
        tracing::warn!(
            listen = %args.listen,
            "emulator: listening beyond loopback: anyone who can reach this address can call \
             the emulated clouds (keep --listen on 127.0.0.1 or [::1])"
        );
    }
    if config.inventory.accounts.is_empty() {
        tracing::warn!("emulator: no accounts in the inventory; every signed call will fail");
    }
    let config_accounts: Vec<String> = config
        .inventory
        .accounts
        .iter()
        .map(|a| a.access_key_id.clone())
        .collect();
    let emulator = start(args.listen, config)
        .await
        .map_err(|source| EmulatorError::Start {
            listen: args.listen,
            source,
        })?;
    // NB: on stdout, so that a script can read where to point its providers.
    println!("tagbinder emulator: serving {}", emulator.url());
    for account in &config_accounts {
        // NB: the Tag service's ARNs carry this UID (or `*`); the key id is not secret.
        println!(
            "tagbinder emulator: access key {} is account {}",
            account,
            super::account_uid(account)
        );
    }
    tracing::info!(url = %emulator.url(), "emulator: serving");
    shutdown_signal().await.map_err(EmulatorError::Signal)?;
    tracing::info!("emulator: stopping");
    emulator.shutdown().await.map_err(EmulatorError::Shutdown)
}

/// Waits for Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: EmulatorArgs,
    }

    #[test]
    fn flags_have_the_documented_defaults_and_bounds() {
        let args = Command::try_parse_from(["emulator"]).unwrap().args;
        assert_eq!(args.listen, "127.0.0.1:8780".parse().unwrap());
        assert_eq!(args.page_size, 50);
        let config = args.to_config().unwrap();
        assert_eq!(config.faults, FaultConfig::default());
        let faulty = Command::try_parse_from([
            "emulator",
            "--throttle-ratio",
            "0.5",
            "--error-ratio",
            "1",
            "--seed",
            "3",
            "--latency-ms",
            "20",
            "--throttle-above",
            "5",
            "--page-size",
            "2",
        ])
        .unwrap()
        .args
        .to_config()
        .unwrap();
        assert_eq!(faulty.page_size, 2);
        assert_eq!(faulty.faults.throttle_above, Some(5.0));
        assert_eq!(faulty.faults.latency, Duration::from_millis(20));
        assert_eq!(faulty.faults.seed, Some(3));
        for bad in [
            ["emulator", "--throttle-ratio", "1.5"],
            ["emulator", "--error-ratio", "-0.1"],
            ["emulator", "--page-size", "0"],
            ["emulator", "--throttle-above", "0"],
        ] {
            assert!(Command::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
