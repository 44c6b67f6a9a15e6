//! Plan diagnostics: every problem found in a plan, with a stable code, a place and a fix.
//!
//! Printed as rustc and cargo do: a `file:line:col: error[code]: message` first line (editors
//! and CI annotations jump to it), then the plan's line with a caret under the place, drawn by
//! annotate-snippets, then the help line.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How bad a diagnostic is. Errors stop `plan` and `render`; warnings are printed only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The plan cannot be used until this is fixed.
    Error,
    /// The plan works, but something is probably not what the user meant.
    Warning,
}

/// One problem in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable kebab-case identifier; never renamed once shipped.
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, naming the field and the value found.
    pub message: String,
    /// The file the problem is in: the plan, or a file it imports.
    pub file: PathBuf,
    /// 1-based; 0 when the place is unknown.
    pub line: u64,
    /// 1-based column at the place; 0 when the place is unknown.
    pub column: u64,
    /// How to fix it.
    pub hint: String,
    /// The plan's line at the place, for the snippet; `None` when the place is unknown, is not
    /// in a plan file, or the line holds a secret.
    #[serde(skip)]
    pub source: Option<SourceLine>,
}

/// Bytes of a long line kept on either side of the place (and of the place itself).
const CONTEXT: usize = 120;

/// One line of the plan and the part of it a diagnostic points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    /// The line, shortened around the place when it is long.
    pub text: String,
    /// Byte range within `text` (may be empty: one caret).
    pub span: Range<usize>,
}

impl SourceLine {
    /// The line of `text` holding byte `offset`, marking up to `len` bytes of it.
    fn at(text: &str, offset: usize, len: usize) -> Option<Self> {
        if offset > text.len() || !text.is_char_boundary(offset) {
            return None;
        }
        let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
        let line = text[start..end].trim_end_matches('\r');
        // Never shown: a line that holds a secret (an age identity given as a recipient, a
        // PEM private key pasted into the plan).
        let upper = line.to_ascii_uppercase();
        if upper.contains("AGE-SECRET-KEY-") || upper.contains("PRIVATE KEY") {
            return None;
        }
        // The place may sit on the `\r` just trimmed (a file ending in a lone CR): the end.
        let from = (offset - start).min(line.len());
        let mut to = from.saturating_add(len).min(line.len()).max(from);
        while !line.is_char_boundary(to) {
            to += 1;
        }
        // A hostile plan can hold one 4 MB line: keep only a window around the place.
        let mut keep_from = from.saturating_sub(CONTEXT);
        while !line.is_char_boundary(keep_from) {
            keep_from -= 1;
        }
        let to = to.min(from + CONTEXT);
        let mut keep_to = (to + CONTEXT).min(line.len());
        while !line.is_char_boundary(keep_to) {
            keep_to += 1;
        }
        let to = if line.is_char_boundary(to) { to } else { from };
        let (pre, post) = (
            if keep_from > 0 { "…" } else { "" },
            if keep_to < line.len() { "…" } else { "" },
        );
        Some(Self {
            text: format!("{pre}{}{post}", &line[keep_from..keep_to]),
            span: from - keep_from + pre.len()..to - keep_from + pre.len(),
        })
    }
}

impl Diagnostic {
    /// `true` for an error (which stops the load), `false` for a warning.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": {sev}[{}]: {}", self.code, self.message)?;
        let Some(src) = self.source.as_ref().filter(|_| self.line > 0) else {
            if !self.hint.is_empty() {
                write!(f, "\n  = help: {}", self.hint)?;
            }
            return Ok(());
        };
        use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
        let level = match self.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let mut group = Group::with_level(level).element(
            Snippet::source(src.text.as_str())
                .line_start(usize::try_from(self.line).unwrap_or(usize::MAX))
                .annotation(AnnotationKind::Primary.span(src.span.clone())),
        );
        if !self.hint.is_empty() {
            group = group.element(Level::HELP.message(self.hint.as_str()));
        }
        write!(f, "\n{}", Renderer::plain().render(&[group]))
    }
}

/// Collects diagnostics for one plan file.
#[derive(Debug)]
pub struct Diagnostics {
    file: PathBuf,
    /// The plan's text, for snippets.
    text: Option<String>,
    /// Every diagnostic pushed so far, in the order found.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Diagnostics for `file` without snippets (its text is not at hand).
    pub fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            text: None,
            items: Vec::new(),
        }
    }

    /// Diagnostics that show `text` (the plan) at their place.
    pub fn with_source(file: &Path, text: &str) -> Self {
        Self {
            text: Some(text.to_string()),
            ..Self::new(file)
        }
    }

    /// Records a problem at `at` in the plan; attaches the plan's line when the text is known.
    pub fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        at: serde_saphyr::Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let span = at.span();
        let source = match (&self.text, span.byte_offset(), span.byte_len()) {
            (Some(text), Some(offset), Some(len)) if at.line() > 0 => SourceLine::at(
                text,
                usize::try_from(offset).unwrap_or(usize::MAX),
                usize::try_from(len).unwrap_or(usize::MAX),
            ),
            _ => None,
        };
        self.items.push(Diagnostic {
            code,
            severity,
            message: message.into(),
            file: self.file.clone(),
            line: at.line(),
            column: at.column(),
            hint: hint.into(),
            source,
        });
    }

    /// Records an error at `at`.
    pub fn error(
        &mut self,
        code: &'static str,
        at: serde_saphyr::Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Severity::Error, code, at, message, hint);
    }

    /// Records a warning at `at`.
    pub fn warn(
        &mut self,
        code: &'static str,
        at: serde_saphyr::Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Severity::Warning, code, at, message, hint);
    }

    /// `true` when any error has been recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// Sorted by place, then code, so output is stable.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items
            .sort_by(|a, b| (a.line, a.column, a.code).cmp(&(b.line, b.column, b.code)));
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::SourceLine;

    #[test]
    fn a_source_line_marks_its_span_and_keeps_a_window_of_a_long_line() {
        let text = "a: 1\nkey: välue\nz: 2\n";
        let at = text.find("välue").unwrap();
        let l = SourceLine::at(text, at, "välue".len()).unwrap();
        assert_eq!(l.text, "key: välue");
        assert_eq!(&l.text[l.span.clone()], "välue");
        // A span past the line's end stops at it; one starting mid-character has no snippet.
        let l = SourceLine::at(text, at, 1000).unwrap();
        assert_eq!(&l.text[l.span.clone()], "välue");
        assert!(SourceLine::at(text, at + 2, 1).is_none());
        assert!(SourceLine::at(text, usize::MAX, usize::MAX).is_none());
        let long = format!("k: [{}x]", "é, ".repeat(100_000));
        let at = long.find('x').unwrap();
        let l = SourceLine::at(&long, at, usize::MAX).unwrap();
        assert!(l.text.len() < 400, "{}", l.text.len());
        assert!(l.text.starts_with('…') && l.text.ends_with(']'));
        assert_eq!(&l.text[l.span.clone()], "x]");
    }

    /// Found by AFL++ (fuzz/crashes/plan_validate/hangs): a place on the lone `\r` that ends
    /// a file looped for ever looking for a character boundary past the trimmed line.
    #[test]
    fn a_place_on_a_trailing_carriage_return_marks_the_line_end() {
        let text = "# a\n# b\r";
        let l = SourceLine::at(text, text.len(), 0).unwrap();
        assert_eq!(l.text, "# b");
        assert_eq!(l.span, 3..3);
        let l = SourceLine::at(text, text.len() - 1, 5).unwrap();
        assert_eq!(l.span, 3..3);
    }

    #[test]
    fn a_line_holding_a_secret_is_never_shown() {
        // Assembled so this source holds no PEM key header (a placeholder only).
        let pem = concat!("x: -----BEGIN PRIVATE", " KEY-----");
        for line in [
            "ageRecipients: [AGE-SECRET-KEY-1QQQQ]",
            "    - age-secret-key-1qqqq",
            pem,
        ] {
            assert!(SourceLine::at(line, 3, 2).is_none(), "{line}");
        }
    }
}
