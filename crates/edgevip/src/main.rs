#![forbid(unsafe_code)]
use std::process::ExitCode;

use clap::Parser;
use edgevip::cli::{Cli, Command, ImportFrom, LogFormat, ManifestKind};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that only print: no runtime, no logging.
    match &cli.command {
        Command::Import {
            from: ImportFrom::Keepalived { file, config_id },
        } => return edgevip::convert::import_keepalived(file, config_id.clone()),
        Command::Completions { shell } => return edgevip::convert::completions(*shell),
        Command::Man { dir } => return edgevip::convert::man(dir.as_deref()),
        _ => {}
    }
    if matches!(cli.command, Command::Run { .. })
        && let Some(code) = edgevip::init::run_if_pid1()
    {
        return code;
    }
    init_logging(cli.log_format, &cli.log_level);
    if matches!(cli.command, Command::Run { .. }) {
        let fds = edgevip::daemon::raise_fd_limit();
        tracing::info!(limit = fds, "file descriptor limit");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgevip: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        Command::Check { config } => match edgevip_config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: OK, {} instance(s)",
                    config.display(),
                    c.instances.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: invalid\n{e}", config.display());
                ExitCode::from(2)
            }
        },
        Command::Run {
            config: Some(config),
            ..
        } => rt.block_on(edgevip::daemon::run(edgevip::daemon::ConfigSource::File(
            config,
        ))),
        Command::Run {
            config_env: Some(var),
            ..
        } => rt.block_on(edgevip::daemon::run(edgevip::daemon::ConfigSource::Env(
            var,
        ))),
        Command::Manifest {
            kind: ManifestKind::StaticPod(args),
        } => match edgevip::manifest::static_pod(&args) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("edgevip manifest static-pod: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run { kube, .. } => rt.block_on(edgevip::kube_mode::run(*kube)),
        Command::Status { api, json } => rt.block_on(edgevip::client::status(api, json)),
        Command::Import { .. } | Command::Completions { .. } | Command::Man { .. } => {
            ExitCode::SUCCESS
        }
    };
    // A config read still stuck (a hung mount) must not keep the process from exiting.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().flatten_event(true).init(),
        LogFormat::Text => b.init(),
    }
}
