//! The command line (a contract: `run --config`, `check --config`, `status --api`,
//! `--log-format text|json`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "edgevip",
    version,
    about = "Keeps a virtual IP on exactly one healthy edge node (VRRP v2/v3)."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `edgevip=debug`.
    #[arg(long, global = true, env = "EDGEVIP_LOG", default_value = "info")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: SIGHUP reloads the config, SIGTERM/SIGINT hand over and exit.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and print every error with its path and value.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show the instances of a running daemon as a table.
    Status {
        /// The daemon's API address.
        #[arg(long, default_value = "127.0.0.1:9180")]
        api: SocketAddr,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}
