//! `edgevip import keepalived FILE`: a keepalived.conf's `vrrp_instance`s as an edgevip
//! config, and a note with file and line for everything that is not carried over.
//!
//! Three steps, each bounded against hostile input: [`lexer`] (words, quotes, comments,
//! conditional `@id` lines), [`parse`] (statements and nested blocks, `include`),
//! [`translate`] (keepalived's meaning into edgevip's schema). The YAML written is parsed
//! and validated again before it is returned, so what `import` prints `check` accepts.

mod lexer;
mod parse;
mod translate;

use std::path::Path;

pub use parse::{MAX_BYTES, MAX_DEPTH, MAX_INCLUDE_DEPTH};

/// A place in the input: file number (index into [`Import::files`]) and line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pos {
    pub file: usize,
    pub line: u32,
}

/// Something in the keepalived file that the edgevip config does not carry, or carries
/// differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub pos: Pos,
    /// The keepalived construct, e.g. `vrrp_sync_group VG1` or `use_vmac`.
    pub construct: String,
    pub why: String,
}

impl Note {
    pub fn new(pos: Pos, construct: impl Into<String>, why: impl Into<String>) -> Note {
        Note {
            pos,
            construct: construct.into(),
            why: why.into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// keepalived's `-i` config id, for `@id` conditional lines; `None`: such lines are
    /// left out (negated ones, `@^id`, kept).
    pub config_id: Option<String>,
}

/// The result: the edgevip YAML and the notes, in file order.
#[derive(Debug, Clone)]
pub struct Import {
    pub yaml: String,
    pub instances: usize,
    pub notes: Vec<Note>,
    /// File names, for [`Pos::file`]: the one given first, then the included ones.
    pub files: Vec<String>,
}

impl Import {
    /// `FILE:LINE: CONSTRUCT: WHY`, one per note.
    pub fn note_lines(&self) -> Vec<String> {
        self.notes
            .iter()
            .map(|n| {
                let file = self.files.get(n.pos.file).map_or("?", String::as_str);
                format!("{file}:{}: {}: {}", n.pos.line, n.construct, n.why)
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("line {}: {token:?}: {message}", .pos.line)]
    Syntax {
        pos: Pos,
        /// The offending token (or its start).
        token: String,
        message: String,
        /// The file's name, filled in by [`import_file`] / [`import_str`].
        file: Option<String>,
    },
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Io(String),
    /// The file parsed but has no `vrrp_instance`: nothing to import.
    #[error("no vrrp_instance in the file: nothing to import (constructs found: {0})")]
    NoInstances(String),
    /// Every instance was refused; the notes say why.
    #[error("no vrrp_instance could be carried over:\n{0}")]
    NothingUsable(String),
    #[error("internal error: the generated config does not validate:\n{0}")]
    Internal(String),
}

impl ImportError {
    fn syntax(pos: Pos, token: impl Into<String>, message: impl Into<String>) -> ImportError {
        ImportError::Syntax {
            pos,
            token: token.into(),
            message: message.into(),
            file: None,
        }
    }

    /// Prefixes a syntax error with its file name.
    pub fn display_with_file(&self) -> String {
        match self {
            ImportError::Syntax {
                pos,
                token,
                message,
                file: Some(f),
            } => format!("{f}:{}: {token:?}: {message}", pos.line),
            e => e.to_string(),
        }
    }
}

/// Imports the file at `path` (includes are read relative to its directory).
pub fn import_file(path: &Path, opts: &Options) -> Result<Import, ImportError> {
    let text = parse::read_text(path, MAX_BYTES)?;
    run(
        &path.display().to_string(),
        &text,
        path.parent(),
        true,
        opts,
    )
}

/// Imports text given directly (`include` statements are noted, not read).
pub fn import_str(name: &str, text: &str, opts: &Options) -> Result<Import, ImportError> {
    run(name, text, None, false, opts)
}

fn run(
    name: &str,
    text: &str,
    dir: Option<&Path>,
    read_includes: bool,
    opts: &Options,
) -> Result<Import, ImportError> {
    let mut notes = Vec::new();
    let mut loader = parse::Loader::new(opts.config_id.as_deref(), read_includes);
    let nodes = match loader.parse_text(name, text, dir, 0, &mut notes) {
        Ok(n) => n,
        Err(ImportError::Syntax {
            pos,
            token,
            message,
            ..
        }) => {
            return Err(ImportError::Syntax {
                file: loader.files.get(pos.file).cloned(),
                pos,
                token,
                message,
            });
        }
        Err(e) => return Err(e),
    };
    let files = loader.files;
    let out = translate::translate(&nodes, &mut notes, &files)?;
    // Stable: notes of one line stay in the order they were found. A script shared by
    // several instances is noted once.
    notes.sort_by_key(|n| (n.pos.file, n.pos.line));
    let mut seen = std::collections::HashSet::new();
    notes.retain(|n| seen.insert((n.pos, n.construct.clone(), n.why.clone())));
    Ok(Import {
        yaml: out.yaml,
        instances: out.instances,
        notes,
        files,
    })
}
