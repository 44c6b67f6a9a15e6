//! Gate checks. Findings are data: each names a stable kebab-case code, a severity, what it
//! is about (cluster, phase, file), whether it passed, and a one-line hint. [`report`] renders
//! a [`Report`] as text, markdown or JUnit (JSON is its serde form); the CLI prints it and maps
//! it to an exit code.

#[cfg(feature = "live")]
pub mod cluster;
pub mod common;
pub mod dump;
pub mod live;
pub mod matrix;
pub mod offline;
pub mod pairs;
pub mod report;

use serde::Serialize;

pub use crate::gates::{Code, Severity};

/// One gate's result for one subject.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The gate, from the catalogue in [`crate::gates`].
    pub code: Code,
    /// Whether a failure of this gate fails the run or only warns.
    pub severity: Severity,
    /// `true` when the gate held.
    pub passed: bool,
    /// `cluster/phase` or `fleet`, and the file when there is one.
    pub subject: String,
    /// The file in the rendered tree the finding is about, when there is one.
    pub file: Option<String>,
    /// What was checked and what was found.
    pub message: String,
    /// How to fix a failure; empty when the gate passed.
    pub hint: String,
    /// Per-object detail (pods, namespaces) behind an aggregated finding.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// Why the gate did not run, when it did not. Such a finding neither passes nor fails:
    /// the root cause is its own failed finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_checked: Option<String>,
}

impl Finding {
    /// A gate that ran: its severity and hint come from the catalogue.
    pub fn new(code: Code, passed: bool, subject: &str, message: impl Into<String>) -> Self {
        let gate = code.gate();
        Self {
            code,
            severity: gate.severity,
            passed,
            subject: subject.to_string(),
            file: None,
            message: message.into(),
            hint: if passed {
                String::new()
            } else {
                gate.hint.to_string()
            },
            details: Vec::new(),
            not_checked: None,
        }
    }

    /// A gate that could not run, and why. Never counted as passed, nor as failed.
    pub fn not_checked(code: Code, subject: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            not_checked: Some(reason.clone()),
            ..Self::new(code, false, subject, format!("not checked: {reason}"))
        }
    }

    /// The file the finding is about.
    pub fn in_file(mut self, file: Option<&str>) -> Self {
        self.file = file.map(str::to_string);
        self
    }

    /// A hint for this case instead of the catalogue's (shown only on failure).
    pub fn hint(mut self, hint: &str) -> Self {
        if !self.passed {
            self.hint = hint.to_string();
        }
        self
    }

    /// The objects behind an aggregated finding.
    pub fn details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    /// `true` when the gate ran and failed.
    pub fn is_failure(&self) -> bool {
        !self.passed && self.not_checked.is_none()
    }
}

/// What became of one matrix cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellStatus {
    /// The handshake completed.
    Ok,
    /// One side refused the other, or the handshake failed.
    Failed,
    /// A phase the cell needs could not be read, or no leaf could be issued from it: nothing
    /// was judged (never counted as ok).
    NotChecked,
}

/// One cell of the transition handshake matrix.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixCell {
    /// The cluster whose workload is the client.
    pub cluster: String,
    /// The transition this cell belongs to: phase `transition` → `transition + 1`.
    pub transition: u8,
    /// The phase whose signing intermediate issued the client's leaf.
    pub client_leaf_phase: u8,
    /// The phase whose bundle the client trusts.
    pub client_trust_phase: u8,
    /// The cluster whose workload is the server.
    pub server_cluster: String,
    /// The phase whose signing intermediate issued the server's leaf.
    pub server_leaf_phase: u8,
    /// The phase whose bundle the server trusts.
    pub server_trust_phase: u8,
    /// Whether the cell passed, failed, or could not be checked.
    pub status: CellStatus,
    /// `status` is `ok` (kept for readers of earlier reports).
    pub ok: bool,
    /// `client` or `server`: who refused the other's certificate.
    pub rejected_by: Option<String>,
    /// Why the handshake failed, or why the cell was not checked (`not checked, because …`).
    pub reason: Option<String>,
}

/// How the handshake matrix decided its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatrixMode {
    /// Leaves issued from the CA keys, real TLS 1.3 handshakes.
    Handshakes,
    /// No identity: the public probe chains judged by the same verifiers, trust decisions only
    /// (no proof of possession).
    Probes,
}

/// Everything one verify run found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Every gate result, in the order checked.
    pub findings: Vec<Finding>,
    /// The handshake matrix cells, when the matrix was run.
    pub matrix: Vec<MatrixCell>,
    /// Per cluster: when its CAs expire and the next rotation must start (`verify offline`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expiry: Vec<offline::expiry::ClusterExpiry>,
    /// How the matrix was decided, when it was run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix_mode: Option<MatrixMode>,
}

impl Report {
    /// Adds a finding.
    pub fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }
    /// `true` when a gate failed (warnings count only when `strict`).
    pub fn failed(&self, strict: bool) -> bool {
        self.findings
            .iter()
            .any(|f| f.is_failure() && (f.severity == Severity::Error || strict))
    }
    /// Findings that passed (`true`) or failed (`false`); not-checked ones are neither.
    pub fn count(&self, passed: bool) -> usize {
        self.findings
            .iter()
            .filter(|f| f.not_checked.is_none() && f.passed == passed)
            .count()
    }
}
