//! Tokens into a tree of statements: each statement is the words of one line, with the
//! block that follows it (`name words { ... }`, the `{` on the same or the next line).
//! `include PATTERN` statements are replaced by the files they name (relative to the
//! including file's directory, `*` and `?` in the last component), at any level.
//!
//! Bounded: [`MAX_DEPTH`] nested blocks, [`MAX_INCLUDE_DEPTH`] nested includes,
//! [`MAX_FILES`] files and [`MAX_BYTES`] of text in all, [`MAX_STATEMENTS`] statements.

use std::path::{Path, PathBuf};

use super::lexer::{self, Kind, Line, Token};
use super::{ImportError, Note, Pos};

pub const MAX_DEPTH: usize = 16;
pub const MAX_INCLUDE_DEPTH: usize = 8;
pub const MAX_FILES: usize = 64;
pub const MAX_BYTES: usize = 4 << 20;
pub const MAX_STATEMENTS: usize = 200_000;

#[derive(Debug, Clone)]
pub struct Node {
    pub words: Vec<Token>,
    /// The block after the words, `None` without braces.
    pub block: Option<Vec<Node>>,
}

impl Node {
    pub fn pos(&self) -> Pos {
        self.words[0].pos
    }

    pub fn key(&self) -> &str {
        &self.words[0].text
    }

    /// The words after the key.
    pub fn args(&self) -> &[Token] {
        &self.words[1..]
    }

    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i + 1).map(|t| t.text.as_str())
    }

    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Reads files (the first is the one given), keeps their names for notes and errors.
pub struct Loader<'a> {
    pub files: Vec<String>,
    bytes: usize,
    statements: usize,
    config_id: Option<&'a str>,
    /// Whether `include` may read files (false for text given without a file).
    read_includes: bool,
}

impl<'a> Loader<'a> {
    pub fn new(config_id: Option<&'a str>, read_includes: bool) -> Self {
        Loader {
            files: Vec::new(),
            bytes: 0,
            statements: 0,
            config_id,
            read_includes,
        }
    }

    /// Parses `text` as file `name` (in directory `dir`, for relative includes).
    pub fn parse_text(
        &mut self,
        name: &str,
        text: &str,
        dir: Option<&Path>,
        include_depth: usize,
        notes: &mut Vec<Note>,
    ) -> Result<Vec<Node>, ImportError> {
        self.bytes += text.len();
        if self.bytes > MAX_BYTES {
            return Err(ImportError::TooLarge(format!(
                "{name}: more than {MAX_BYTES} bytes of configuration in all"
            )));
        }
        let file = self.files.len();
        self.files.push(name.to_string());
        let lines = lexer::lex(text, file, self.config_id, notes)?;
        let mut p = Parser {
            tokens: lines
                .into_iter()
                .flat_map(|Line { tokens }| {
                    let end = tokens.last().map(|t| t.pos);
                    tokens.into_iter().map(Some).chain(end.map(|_| None))
                })
                .collect::<Vec<_>>()
                .into_iter()
                .peekable(),
            last_pos: Pos { file, line: 1 },
        };
        let nodes = p.block(self, 0, None)?;
        self.expand_includes(nodes, dir, include_depth, notes)
    }

    fn expand_includes(
        &mut self,
        nodes: Vec<Node>,
        dir: Option<&Path>,
        depth: usize,
        notes: &mut Vec<Note>,
    ) -> Result<Vec<Node>, ImportError> {
        let mut out = Vec::with_capacity(nodes.len());
        for mut n in nodes {
            if n.key() != "include" {
                if let Some(block) = n.block.take() {
                    n.block = Some(self.expand_includes(block, dir, depth, notes)?);
                }
                out.push(n);
                continue;
            }
            let Some(pattern) = n.arg(0) else {
                notes.push(Note::new(n.pos(), "include", "names no file: ignored"));
                continue;
            };
            if !self.read_includes {
                notes.push(Note::new(
                    n.pos(),
                    format!("include {pattern}"),
                    "not read (the input is not a file)",
                ));
                continue;
            }
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(ImportError::syntax(
                    n.pos(),
                    format!("include {pattern}"),
                    format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
                ));
            }
            let paths = resolve(dir, pattern);
            if paths.is_empty() {
                notes.push(Note::new(
                    n.pos(),
                    format!("include {pattern}"),
                    "matches no file: ignored",
                ));
            }
            for path in paths {
                if self.files.len() >= MAX_FILES {
                    return Err(ImportError::TooLarge(format!(
                        "more than {MAX_FILES} files included"
                    )));
                }
                let shown = path.display().to_string();
                let text = read_text(&path, MAX_BYTES.saturating_sub(self.bytes))?;
                let sub_dir = path.parent().map(Path::to_path_buf);
                let nodes = self.parse_text(&shown, &text, sub_dir.as_deref(), depth + 1, notes)?;
                out.extend(nodes);
            }
        }
        Ok(out)
    }
}

/// The UTF-8 text of the file at `path`, at most `limit` bytes; errors name the file.
pub fn read_text(path: &Path, limit: usize) -> Result<String, ImportError> {
    let shown = path.display();
    let bytes = read_bounded(path, limit).map_err(|e| ImportError::Io(format!("{shown}: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        ImportError::Io(format!(
            "{shown}: not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Reads at most `limit` bytes; a longer file is an error, not a truncated config.
fn read_bounded(path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(limit as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > limit {
        return Err(std::io::Error::other(format!(
            "larger than the {MAX_BYTES}-byte limit of the whole configuration"
        )));
    }
    Ok(buf)
}

/// The files an include pattern names, sorted (as glob(3) returns them).
fn resolve(dir: Option<&Path>, pattern: &str) -> Vec<PathBuf> {
    let p = Path::new(pattern);
    let p = match dir {
        Some(d) if p.is_relative() => d.join(p),
        _ => p.to_path_buf(),
    };
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
    let Some(name) = name.filter(|n| n.contains(['*', '?'])) else {
        return if p.is_file() { vec![p] } else { Vec::new() };
    };
    let parent = p.parent().unwrap_or(Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            !n.starts_with('.') && wildcard(name.as_bytes(), n.as_bytes())
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// `*` and `?` matching, iteratively (no backtracking blow-up).
fn wildcard(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i, mut star, mut mark) = (0, 0, None, 0);
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some(p);
            mark = i;
            p += 1;
        } else if let Some(sp) = star {
            p = sp + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

struct Parser {
    /// Tokens, `None` at the end of each line.
    tokens: std::iter::Peekable<std::vec::IntoIter<Option<Token>>>,
    last_pos: Pos,
}

impl Parser {
    fn block(
        &mut self,
        loader: &mut Loader<'_>,
        depth: usize,
        opened: Option<&Token>,
    ) -> Result<Vec<Node>, ImportError> {
        let mut nodes: Vec<Node> = Vec::new();
        // Whether the last statement ended with its line (so a `{` on the next line opens
        // its block).
        let mut may_open = false;
        loop {
            let Some(tok) = self.tokens.next() else {
                return match opened {
                    Some(o) => Err(ImportError::syntax(
                        o.pos,
                        "{",
                        format!(
                            "block opened here is not closed by the end of the file (line {})",
                            self.last_pos.line
                        ),
                    )),
                    None => Ok(nodes),
                };
            };
            let Some(tok) = tok else {
                continue;
            };
            self.last_pos = tok.pos;
            match tok.kind {
                Kind::Close => {
                    return match opened {
                        Some(_) => Ok(nodes),
                        None => Err(ImportError::syntax(tok.pos, "}", "closes no block")),
                    };
                }
                Kind::Open => {
                    let last = nodes.last_mut().filter(|n| may_open && n.block.is_none());
                    let Some(_) = last else {
                        return Err(ImportError::syntax(
                            tok.pos,
                            "{",
                            "a block must follow a keyword",
                        ));
                    };
                    let block = self.nested(loader, depth, &tok)?;
                    if let Some(last) = nodes.last_mut() {
                        last.block = Some(block);
                    }
                    may_open = false;
                }
                Kind::Word => {
                    loader.statements += 1;
                    if loader.statements > MAX_STATEMENTS {
                        return Err(ImportError::TooLarge(format!(
                            "more than {MAX_STATEMENTS} statements"
                        )));
                    }
                    let mut words = vec![tok];
                    may_open = true;
                    let mut block = None;
                    loop {
                        match self.tokens.peek() {
                            None | Some(None) => break,
                            Some(Some(t)) if t.kind == Kind::Word => {
                                if let Some(Some(t)) = self.tokens.next() {
                                    words.push(t);
                                }
                            }
                            Some(Some(t)) if t.kind == Kind::Open => {
                                let Some(Some(open)) = self.tokens.next() else {
                                    break;
                                };
                                block = Some(self.nested(loader, depth, &open)?);
                                may_open = false;
                                break;
                            }
                            // A `}` ends the statement and then the block (next turn).
                            Some(Some(_)) => {
                                may_open = false;
                                break;
                            }
                        }
                    }
                    nodes.push(Node { words, block });
                }
            }
        }
    }

    fn nested(
        &mut self,
        loader: &mut Loader<'_>,
        depth: usize,
        open: &Token,
    ) -> Result<Vec<Node>, ImportError> {
        if depth + 1 > MAX_DEPTH {
            return Err(ImportError::syntax(
                open.pos,
                "{",
                format!("blocks nested deeper than {MAX_DEPTH}"),
            ));
        }
        self.block(loader, depth + 1, Some(open))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Node>, ImportError> {
        Loader::new(None, false).parse_text("t.conf", text, None, 0, &mut Vec::new())
    }

    #[test]
    fn statements_blocks_and_next_line_braces() {
        let n = parse("a 1 {\n b\n c { d }\n}\ne\n{\n f\n}\ng { h } \n").unwrap();
        assert_eq!(n.len(), 3);
        assert_eq!(n[0].key(), "a");
        assert_eq!(n[0].arg(0), Some("1"));
        assert_eq!(n[0].children().len(), 2);
        assert_eq!(n[0].children()[1].children()[0].key(), "d");
        assert_eq!(n[1].children()[0].key(), "f");
        assert_eq!(n[2].children()[0].key(), "h");
        assert_eq!(n[2].pos().line, 9);
    }

    #[test]
    fn unbalanced_and_deep_input_is_an_error_with_its_line() {
        let e = parse("a {\n b\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("not closed"), "{e}");
        let e = parse("a\n}\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("closes no block"), "{e}");
        let e = parse("{\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let deep = "a {\n".repeat(MAX_DEPTH + 1);
        let e = parse(&deep).unwrap_err().to_string();
        assert!(e.contains("deeper"), "{e}");
        // Very deep input fails fast without exhausting the stack.
        let e = parse(&"a {".repeat(100_000)).unwrap_err().to_string();
        assert!(e.contains("deeper"), "{e}");
    }

    #[test]
    fn wildcards() {
        assert!(wildcard(b"*.conf", b"a.conf"));
        assert!(wildcard(b"a?c*", b"abcdef"));
        assert!(!wildcard(b"*.conf", b"a.conf.bak"));
        assert!(wildcard(b"*", b""));
    }
}
