//! Plan diagnostics: every problem found in a plan, with a stable code, a place and a fix.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How bad a diagnostic is. Errors stop `plan` and `render`; warnings are printed only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable kebab-case identifier; never renamed once shipped.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub file: PathBuf,
    /// 1-based; 0 when the place is unknown.
    pub line: u64,
    pub column: u64,
    /// How to fix it.
    pub hint: String,
}

impl Diagnostic {
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
        if !self.hint.is_empty() {
            write!(f, "\n  = help: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one plan file.
#[derive(Debug)]
pub struct Diagnostics {
    file: PathBuf,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            items: Vec::new(),
        }
    }

    pub fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        at: serde_saphyr::Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.items.push(Diagnostic {
            code,
            severity,
            message: message.into(),
            file: self.file.clone(),
            line: at.line(),
            column: at.column(),
            hint: hint.into(),
        });
    }

    pub fn error(
        &mut self,
        code: &'static str,
        at: serde_saphyr::Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Severity::Error, code, at, message, hint);
    }

    pub fn warn(
        &mut self,
        code: &'static str,
        at: serde_saphyr::Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Severity::Warning, code, at, message, hint);
    }

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
