//! The commands that only print: `import` (another daemon's config as edgevip's),
//! `completions` and `man` (both generated from the clap definition in `cli`).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use edgevip_config::import::keepalived::{self, ImportError, Options};

use crate::cli::Cli;

/// Prints the edgevip YAML for a keepalived.conf on stdout and every construct not
/// carried over on stderr (`FILE:LINE: construct: why`). Exit 0 when a config was written
/// (notes or not), 1 when the file has no usable `vrrp_instance`, 2 when it cannot be read
/// or parsed.
pub fn import_keepalived(file: &Path, config_id: Option<String>) -> ExitCode {
    match keepalived::import_file(file, &Options { config_id }) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(out.yaml.as_bytes()).is_err() || stdout.flush().is_err() {
                return ExitCode::FAILURE;
            }
            for line in out.note_lines() {
                eprintln!("{line}");
            }
            eprintln!(
                "edgevip: {} instance(s) imported, {} construct(s) not carried over as they were (listed above)",
                out.instances,
                out.notes.len()
            );
            ExitCode::SUCCESS
        }
        Err(e @ (ImportError::NoInstances(_) | ImportError::NothingUsable(_))) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::from(1)
        }
        Err(e) => {
            let shown = e.display_with_file();
            if shown.starts_with(&file.display().to_string())
                || matches!(e, ImportError::Syntax { .. })
            {
                eprintln!("edgevip: {shown}");
            } else {
                eprintln!("edgevip: {}: {shown}", file.display());
            }
            ExitCode::from(2)
        }
    }
}

pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "edgevip", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// The man page on stdout, or (`dir`) `edgevip.1` and `edgevip-SUB[-SUB].1` for every
/// subcommand, written into `dir`.
pub fn man(dir: Option<&Path>) -> ExitCode {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let mut out = Vec::new();
        if let Err(e) = clap_mangen::Man::new(cmd).render(&mut out) {
            eprintln!("edgevip: man page: {e}");
            return ExitCode::FAILURE;
        }
        return match std::io::stdout().write_all(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    };
    // Built, subcommands carry their display names (`edgevip-import-keepalived`), which
    // titles and cross-references of the pages use.
    let mut cmd = cmd;
    cmd.build();
    match write_pages(&cmd, dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgevip: man pages in {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn write_pages(cmd: &clap::Command, dir: &Path) -> std::io::Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    std::fs::write(dir.join(format!("{name}.1")), out)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, dir)?;
    }
    Ok(())
}
