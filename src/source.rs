//! The source map: every input text (interface files, policy files, call
//! graphs) that a diagnostic may point into, and the `Span` type that points.
//!
//! Stages never read files; the CLI loads texts here and hands out `FileId`s.

use codespan_reporting::files::{Files, SimpleFiles};

/// Index of a file in the [`SourceMap`].
pub type FileId = usize;

/// A byte range in one source file.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        Span { file, start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// A 1-based line and column; the column counts Unicode scalar values.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

/// All texts that diagnostics can point into.
#[derive(Default)]
pub struct SourceMap {
    files: SimpleFiles<String, String>,
    count: usize,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a text under a display name (a path, or `bundled:NAME` for an
    /// embedded interface).
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.count += 1;
        self.files.add(name.into(), text.into())
    }

    pub fn name(&self, file: FileId) -> &str {
        self.files.get(file).map(|f| f.name().as_str()).unwrap_or("<unknown>")
    }

    pub fn text(&self, file: FileId) -> &str {
        self.files.get(file).map(|f| f.source().as_str()).unwrap_or("")
    }

    /// Line and column of a byte offset (clamped to the text).
    pub fn line_col(&self, file: FileId, offset: usize) -> LineCol {
        let text = self.text(file);
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        match self.files.location(file, offset) {
            Ok(loc) => LineCol {
                line: loc.line_number,
                column: loc.column_number,
            },
            Err(_) => LineCol { line: 1, column: 1 },
        }
    }

    /// Byte offset of a 1-based line and column (as serde_json reports them).
    pub fn offset_of(&self, file: FileId, line: usize, column: usize) -> usize {
        let text = self.text(file);
        let mut offset = 0;
        for (i, l) in text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let col_bytes: usize = l.chars().take(column.saturating_sub(1)).map(char::len_utf8).sum();
                return (offset + col_bytes).min(text.len());
            }
            offset += l.len();
        }
        text.len()
    }

    pub fn files(&self) -> &SimpleFiles<String, String> {
        &self.files
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}
