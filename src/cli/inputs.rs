//! Reads the command line's input files into the `SourceMap`. The only file
//! reading in copperc; problems become CU0901 diagnostics (exit code 2).

use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, SourceMap};

/// Loads interface files: the given files and every `*.act` in the given
/// folders, or the bundled interfaces when none are given.
pub fn load_interfaces(sources: &mut SourceMap, paths: &[PathBuf]) -> Result<Vec<FileId>, Diagnostic> {
    if paths.is_empty() {
        return Ok(crate::interfaces::BUNDLED
            .iter()
            .map(|(name, text)| sources.add(format!("bundled:{name}"), *text))
            .collect());
    }
    let mut ids = Vec::new();
    for p in paths {
        for f in expand(p, "act")? {
            ids.push(read(sources, &f)?);
        }
    }
    Ok(ids)
}

/// Loads policy files; folders contribute every `*.copper` below them.
pub fn load_policies(sources: &mut SourceMap, paths: &[PathBuf]) -> Result<Vec<FileId>, Diagnostic> {
    let mut ids = Vec::new();
    for p in paths {
        for f in expand(p, "copper")? {
            ids.push(read(sources, &f)?);
        }
    }
    Ok(ids)
}

pub fn read(sources: &mut SourceMap, path: &Path) -> Result<FileId, Diagnostic> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Ok(sources.add(path.display().to_string(), text)),
            Err(e) => Err(Diagnostic::new(
                Code::ReadError,
                format!(
                    "`{}` is not UTF-8 text (invalid byte at offset {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                ),
            )),
        },
        Err(e) => Err(Diagnostic::new(
            Code::ReadError,
            format!("cannot read `{}`: {}", path.display(), io_reason(&e)),
        )),
    }
}

pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".into(),
        std::io::ErrorKind::AlreadyExists => "it already exists".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// A file as itself; a folder as its files with the extension, sorted, recursively.
fn expand(path: &Path, ext: &str) -> Result<Vec<PathBuf>, Diagnostic> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Diagnostic::new(
            Code::ReadError,
            format!("cannot read `{}`: {}", path.display(), io_reason(&e)),
        )
    })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            Diagnostic::new(
                Code::ReadError,
                format!("cannot read folder `{}`: {}", dir.display(), io_reason(&e)),
            )
        })?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Diagnostic::new(
            Code::ReadError,
            format!("folder `{}` has no `*.{ext}` file", path.display()),
        ));
    }
    Ok(out)
}
