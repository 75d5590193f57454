//! The one loading path for `probe check`, `probe list` and `probe run`: read
//! `probes/*.toml`, parse, validate, and report every problem with file, line and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::definition::ProbeDef;
use super::diag::{Diagnostic, LoadError, Sink, line_col};
use super::model::Probe;
use super::validate;

/// Variables the runner always provides; templates may use these, `fixture.*` (values from
/// the config's fixtures) and anything captured by an earlier step.
pub const DEFAULT_BUILTINS: &[&str] = &[
    "backend",
    "apple",
    "google",
    "user",
    "run_id",
    "package_name",
    "bundle_id",
];

/// Loads every `*.toml` directly in `dir` (sorted by file name; dotfiles skipped).
/// Diagnostics from all files are collected; probe names must be unique across files.
pub fn load_dir(dir: &Path, builtins: &[&str]) -> Result<Vec<Probe>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| LoadError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let visible = !entry.file_name().to_string_lossy().starts_with('.');
        if visible && path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();

    let mut diags = Vec::new();
    let mut probes = Vec::new();
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in &files {
        match read_and_parse(file, builtins) {
            Ok((probe, name_at)) => {
                if let Some(first) = names.get(&probe.name) {
                    diags.push(Diagnostic {
                        file: file.clone(),
                        line: Some(name_at.0),
                        column: Some(name_at.1),
                        key: Some("name".into()),
                        message: format!(
                            "duplicate probe name {:?}, also defined in {}",
                            probe.name,
                            first.display()
                        ),
                    });
                } else {
                    names.insert(probe.name.clone(), file.clone());
                }
                probes.push(probe);
            }
            Err(mut d) => diags.append(&mut d),
        }
    }
    if diags.is_empty() {
        Ok(probes)
    } else {
        Err(LoadError::Invalid(diags))
    }
}

/// Loads and validates one probe file.
pub fn load_file(path: &Path, builtins: &[&str]) -> Result<Probe, LoadError> {
    read_and_parse(path, builtins)
        .map(|(p, _)| p)
        .map_err(LoadError::Invalid)
}

/// Parses and validates probe text; `path` is used in messages and as [`Probe::source`]
/// (for probes embedded in the binary, pass a descriptive path).
pub fn load_str(src: &str, path: &Path, builtins: &[&str]) -> Result<Probe, LoadError> {
    parse(src, path, builtins)
        .map(|(p, _)| p)
        .map_err(LoadError::Invalid)
}

type Parsed = Result<(Probe, (usize, usize)), Vec<Diagnostic>>;

fn read_and_parse(path: &Path, builtins: &[&str]) -> Parsed {
    match std::fs::read_to_string(path) {
        Ok(src) => parse(&src, path, builtins),
        Err(e) => Err(vec![Diagnostic {
            file: path.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read: {e}"),
        }]),
    }
}

fn parse(src: &str, path: &Path, builtins: &[&str]) -> Parsed {
    let def: ProbeDef = toml::from_str(src).map_err(|e| vec![toml_diagnostic(path, src, &e)])?;
    let mut sink = Sink::new(path, src);
    let probe = validate::probe(&def, path, &mut sink, builtins);
    if sink.diags.is_empty() {
        Ok((probe, line_col(src, def.name.span().start)))
    } else {
        let mut diags = sink.diags;
        diags.sort_by_key(|d| (d.line, d.column));
        Err(diags)
    }
}

/// Keeps toml's message; adds the file, the line and column, and the key path when toml
/// knows it (it does for value errors such as a bad duration).
fn toml_diagnostic(path: &Path, src: &str, e: &toml::de::Error) -> Diagnostic {
    let pos = e.span().map(|s| line_col(src, s.start));
    // Without its input, toml's Display appends "in `a.b.c`": the key path.
    let mut bare = e.clone();
    bare.set_input(None);
    let rendered = bare.to_string();
    let key = rendered
        .lines()
        .find_map(|l| l.strip_prefix("in `").and_then(|l| l.strip_suffix('`')))
        .map(|k| name_the_step(src, e.span(), k));
    Diagnostic {
        file: path.to_path_buf(),
        line: pos.map(|p| p.0),
        column: pos.map(|p| p.1),
        key,
        message: e.message().trim().replace('\n', "; "),
    }
}

/// toml's key paths skip array indices (`step.slo.p99`); name the step like validation
/// does (`step.verify.slo.p99`, or `step.#2...` when it has no usable name).
fn name_the_step(src: &str, span: Option<std::ops::Range<usize>>, key: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Loose {
        #[serde(default)]
        step: Vec<toml::Spanned<toml::Table>>,
    }
    let (Some(span), Some(rest)) = (span, key.strip_prefix("step")) else {
        return key.to_string();
    };
    if !(rest.is_empty() || rest.starts_with('.')) {
        return key.to_string();
    }
    let Ok(loose) = toml::from_str::<Loose>(src) else {
        return key.to_string();
    };
    // A `[[step]]` element's span is its header only: a step runs until the next one.
    let found = loose
        .step
        .iter()
        .enumerate()
        .rev()
        .find(|(_, s)| s.span().start <= span.start);
    match found {
        Some((i, s)) => {
            let label = match s.get_ref().get("name").and_then(|n| n.as_str()) {
                Some(n) if super::validate_parts::valid_name(n) => n.to_string(),
                _ => format!("#{}", i + 1),
            };
            format!("step.{label}{rest}")
        }
        None => key.to_string(),
    }
}
