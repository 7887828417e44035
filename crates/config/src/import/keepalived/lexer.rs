//! keepalived.conf into tokens, line by line, as keepalived's own reader splits it: words
//! separated by blanks, `"quoted strings"` as one word, `{` and `}` always tokens of their
//! own, `#` and `!` outside quotes starting a comment, and `@id` / `@^id` line prefixes
//! (conditional configuration, `keepalived -i id`).
//!
//! Bounded: a token longer than [`MAX_TOKEN`] bytes, a control byte, or a quote left open
//! is an error naming its line.

use super::{ImportError, Note, Pos};

/// Longest token accepted (keepalived's own line buffer is 2 KiB).
pub const MAX_TOKEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Word,
    Open,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub text: String,
    pub pos: Pos,
}

/// One non-empty line's tokens.
#[derive(Debug, Clone)]
pub struct Line {
    pub tokens: Vec<Token>,
}

/// Splits `text` (file number `file` in the import) into lines of tokens. Lines that a
/// conditional prefix excludes are left out with a note; so are keepalived 2.x parameter
/// definitions (`$NAME=...`) and sequences (`~SEQ`), which edgevip does not expand.
pub fn lex(
    text: &str,
    file: usize,
    config_id: Option<&str>,
    notes: &mut Vec<Note>,
) -> Result<Vec<Line>, ImportError> {
    let mut out = Vec::new();
    for (n, raw) in text.split('\n').enumerate() {
        let pos = Pos {
            file,
            line: n as u32 + 1,
        };
        let mut line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_start();
        if let Some(cond) = trimmed.strip_prefix('@') {
            let (id, rest) = cond
                .split_once(|c: char| c.is_ascii_whitespace())
                .unwrap_or((cond, ""));
            let (negated, id) = match id.strip_prefix('^') {
                Some(id) => (true, id),
                None => (false, id),
            };
            let applies = match config_id {
                Some(c) => (c == id) != negated,
                None => negated,
            };
            if !applies {
                notes.push(Note::new(
                    pos,
                    format!("@{}{id}", if negated { "^" } else { "" }),
                    match config_id {
                        Some(c) => format!("line is for config id {id:?}, not {c:?}: left out"),
                        None => {
                            "conditional line left out: pass --config-id to choose one".to_string()
                        }
                    },
                ));
                continue;
            }
            line = rest;
        }
        let t = line.trim_start();
        if t.starts_with('$') || t.starts_with("~SEQ") {
            notes.push(Note::new(
                pos,
                t.split_whitespace().next().unwrap_or("$").to_string(),
                "parameter definitions and sequences are not expanded: line left out",
            ));
            continue;
        }
        let tokens = tokens(line, pos)?;
        if !tokens.is_empty() {
            out.push(Line { tokens });
        }
    }
    Ok(out)
}

fn tokens(line: &str, pos: Pos) -> Result<Vec<Token>, ImportError> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(Token {
                kind: Kind::Word,
                text: std::mem::take(word),
                pos,
            });
        }
    };
    while let Some((_, c)) = chars.next() {
        match c {
            '#' | '!' => break,
            ' ' | '\t' => flush(&mut word, &mut out),
            '{' | '}' => {
                flush(&mut word, &mut out);
                out.push(Token {
                    kind: if c == '{' { Kind::Open } else { Kind::Close },
                    text: c.to_string(),
                    pos,
                });
            }
            '"' => {
                // A quoted string is one word, blanks and comment characters included.
                let mut closed = false;
                for (_, q) in chars.by_ref() {
                    if q == '"' {
                        closed = true;
                        break;
                    }
                    check_char(q, pos, &word)?;
                    word.push(q);
                    check_len(&word, pos)?;
                }
                if !closed {
                    return Err(ImportError::syntax(
                        pos,
                        format!("\"{}", short(&word)),
                        "the quoted string is not closed on this line",
                    ));
                }
                // `""` is an empty word of its own.
                if word.is_empty() {
                    out.push(Token {
                        kind: Kind::Word,
                        text: String::new(),
                        pos,
                    });
                }
            }
            c => {
                check_char(c, pos, &word)?;
                word.push(c);
                check_len(&word, pos)?;
            }
        }
    }
    flush(&mut word, &mut out);
    Ok(out)
}

fn check_char(c: char, pos: Pos, word: &str) -> Result<(), ImportError> {
    if c.is_control() && c != '\t' {
        return Err(ImportError::syntax(
            pos,
            format!("{}{}", short(word), c.escape_default()),
            "control character in the file",
        ));
    }
    Ok(())
}

fn check_len(word: &str, pos: Pos) -> Result<(), ImportError> {
    if word.len() > MAX_TOKEN {
        return Err(ImportError::syntax(
            pos,
            format!("{}...", short(word)),
            format!("token longer than {MAX_TOKEN} bytes"),
        ));
    }
    Ok(())
}

/// The start of a long token, for an error message.
pub fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Vec<String>> {
        lex(text, 0, None, &mut Vec::new())
            .unwrap()
            .into_iter()
            .map(|l| l.tokens.into_iter().map(|t| t.text).collect())
            .collect()
    }

    #[test]
    fn comments_quotes_and_braces() {
        assert_eq!(
            words("a b{c}  # x\n! all comment\n script \"x # y\" ! z\nq \"\"\n"),
            vec![
                vec!["a", "b", "{", "c", "}"],
                vec!["script", "x # y"],
                vec!["q", ""],
            ]
        );
    }

    #[test]
    fn conditional_lines_follow_the_config_id() {
        let text = "@high priority 170\n@low priority 85\n@^high prio x\n";
        let mut notes = Vec::new();
        let got = lex(text, 0, Some("low"), &mut notes).unwrap();
        let got: Vec<String> = got.iter().map(|l| l.tokens[1].text.clone()).collect();
        assert_eq!(got, vec!["85", "x"]);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].pos.line, 1);
        let mut notes = Vec::new();
        assert_eq!(lex(text, 0, None, &mut notes).unwrap().len(), 1);
        assert_eq!(notes.len(), 2);
    }

    #[test]
    fn errors_name_line_and_token() {
        let e = lex("a\nscript \"open\n", 0, None, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(e.to_string().contains("\"open"), "{e}");
        let long = "x".repeat(MAX_TOKEN + 1);
        let e = lex(&long, 0, None, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        let e = lex("a \u{1}b", 0, None, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("control"), "{e}");
    }
}
