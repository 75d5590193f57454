//! Load-time diagnostics: every problem in a probe file names the file, the line and the
//! key, so `probe check` output can be acted on without opening a debugger.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found while loading probe files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; `None` when the problem is not tied to a place (unreadable file).
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    /// Dotted key path, e.g. `step.verify.request.url`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, ": line {l}, column {c}")?,
            (Some(l), None) => write!(f, ": line {l}")?,
            _ => {}
        }
        if let Some(k) = &self.key {
            write!(f, ": {k}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why probes could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The probe directory itself could not be listed.
    #[error("{}: cannot read probe directory: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One or more files are invalid; one diagnostic per line.
    #[error("{}", render_all(.0))]
    Invalid(Vec<Diagnostic>),
}

impl LoadError {
    /// The individual problems (empty for [`LoadError::Dir`]).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            LoadError::Invalid(d) => d,
            LoadError::Dir { .. } => &[],
        }
    }
}

fn render_all(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects diagnostics for one source text, turning byte spans into lines and columns.
pub(crate) struct Sink<'a> {
    pub file: &'a Path,
    pub src: &'a str,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub fn new(file: &'a Path, src: &'a str) -> Self {
        Sink {
            file,
            src,
            diags: Vec::new(),
        }
    }

    /// Records a problem at `span` (a byte range into the source).
    pub fn at(&mut self, span: &Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let (line, column) = line_col(self.src, span.start);
        let key = key.into();
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: Some(line),
            column: Some(column),
            key: (!key.is_empty()).then_some(key),
            message: message.into(),
        });
    }
}

/// 1-based line and column (in characters) of byte offset `pos` in `src`.
pub fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let mut pos = pos.min(src.len());
    while !src.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &src[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 9), (2, 3));
        assert_eq!(line_col(src, 8), (2, 2)); // inside a char: clamps back
        assert_eq!(line_col(src, 999), (3, 1));
    }

    #[test]
    fn display_forms() {
        let d = Diagnostic {
            file: "probes/x.toml".into(),
            line: Some(7),
            column: Some(1),
            key: Some("step.a.timeout".into()),
            message: "bad".into(),
        };
        assert_eq!(
            d.to_string(),
            "probes/x.toml: line 7, column 1: step.a.timeout: bad"
        );
        let e = LoadError::Invalid(vec![d.clone(), d]);
        assert_eq!(e.to_string().lines().count(), 2);
    }
}
