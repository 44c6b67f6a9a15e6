//! Gate checks. Findings are data: each names a stable kebab-case code, a severity, what it
//! is about (cluster, phase, file), whether it passed, and a one-line hint. The CLI renders a
//! [`Report`] as text, JSON or JUnit and maps it to an exit code.

pub mod cluster;
pub mod common;
pub mod dump;
pub mod live;
pub mod matrix;
pub mod offline;

use serde::Serialize;

pub use crate::gates::{Code, Severity};

/// One gate's result for one subject.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub passed: bool,
    /// `cluster/phase` or `fleet`, and the file when there is one.
    pub subject: String,
    pub file: Option<String>,
    pub message: String,
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

/// One cell of the transition handshake matrix.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixCell {
    pub cluster: String,
    /// The transition this cell belongs to: phase `transition` → `transition + 1`.
    pub transition: u8,
    /// The phase whose signing intermediate issued the client's leaf.
    pub client_leaf_phase: u8,
    /// The phase whose bundle the client trusts.
    pub client_trust_phase: u8,
    pub server_cluster: String,
    pub server_leaf_phase: u8,
    pub server_trust_phase: u8,
    pub ok: bool,
    /// `client` or `server`: who refused the other's certificate.
    pub rejected_by: Option<String>,
    pub reason: Option<String>,
}

/// Everything one verify run found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub matrix: Vec<MatrixCell>,
}

impl Report {
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

    /// Human text: one line per gate, failures with their hint, then the matrix.
    pub fn to_text(&self, color: bool) -> String {
        let paint = |s: &str, code: &str| {
            if color {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s.to_string()
            }
        };
        let mut o = String::new();
        for f in &self.findings {
            let status = match (f.passed, f.severity) {
                _ if f.not_checked.is_some() => paint("SKIP", "36"),
                (true, _) => paint("PASS", "32"),
                (false, Severity::Error) => paint("FAIL", "31"),
                (false, Severity::Warning) => paint("WARN", "33"),
            };
            o.push_str(&format!(
                "{status} {:<24} {:<28} {}",
                f.code.as_str(),
                f.subject,
                f.message
            ));
            o.push('\n');
            if !f.passed {
                if let Some(file) = &f.file {
                    o.push_str(&format!("     file: {file}\n"));
                }
                if !f.hint.is_empty() {
                    o.push_str(&format!("     hint: {}\n", f.hint));
                }
            }
        }
        if !self.matrix.is_empty() {
            o.push_str("\ntransition handshake matrix (leaf from phase N or N+1 × trusting phase N or N+1, client × server)\n");
            let mut groups: std::collections::BTreeMap<(String, u8, String), (usize, usize)> =
                Default::default();
            for c in &self.matrix {
                let n = c.transition;
                let e = groups
                    .entry((c.cluster.clone(), n, c.server_cluster.clone()))
                    .or_default();
                e.1 += 1;
                if c.ok {
                    e.0 += 1;
                }
            }
            for ((cluster, n, peer), (ok, total)) in &groups {
                let verdict = if ok == total {
                    paint("ok", "32")
                } else {
                    paint("FAIL", "31")
                };
                let with = if peer == cluster {
                    "within the cluster".to_string()
                } else {
                    format!("with {peer}")
                };
                o.push_str(&format!(
                    "  {cluster:<14} phase {n}→{}  {with:<24} {ok:>3}/{total:<3} {verdict}\n",
                    n + 1
                ));
            }
            for c in self.matrix.iter().filter(|c| !c.ok).take(20) {
                o.push_str(&format!(
                    "    FAIL {}: client leaf {}/trust {} → {} server leaf {}/trust {}: {}\n",
                    c.cluster,
                    c.client_leaf_phase,
                    c.client_trust_phase,
                    c.server_cluster,
                    c.server_leaf_phase,
                    c.server_trust_phase,
                    c.reason.as_deref().unwrap_or("failed")
                ));
            }
        }
        let failed = self
            .findings
            .iter()
            .filter(|f| f.is_failure() && f.severity == Severity::Error)
            .count();
        let warned = self
            .findings
            .iter()
            .filter(|f| f.is_failure() && f.severity == Severity::Warning)
            .count();
        o.push_str(&format!(
            "\n{} passed, {failed} failed, {warned} warnings; matrix {} of {} cells ok\n",
            self.count(true),
            self.matrix.iter().filter(|c| c.ok).count(),
            self.matrix.len()
        ));
        o
    }

    /// JUnit XML: one test case per finding and per matrix cell.
    pub fn to_junit(&self, suite: &str) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let failures = self
            .findings
            .iter()
            .filter(|f| !f.passed && f.severity == Severity::Error)
            .count()
            + self.matrix.iter().filter(|c| !c.ok).count();
        let tests = self.findings.len() + self.matrix.len();
        let mut o = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\">\n",
            esc(suite)
        );
        for f in &self.findings {
            o.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\">",
                esc(&f.subject),
                esc(f.code.as_str())
            ));
            if !f.passed {
                let tag = if f.severity == Severity::Error {
                    "failure"
                } else {
                    "skipped"
                };
                o.push_str(&format!(
                    "<{tag} message=\"{}\">{}</{tag}>",
                    esc(&f.message),
                    esc(&f.hint)
                ));
            }
            o.push_str("</testcase>\n");
        }
        for c in &self.matrix {
            o.push_str(&format!(
                "    <testcase classname=\"{}/handshake-matrix\" name=\"client {}/{} to {} {}/{}\">",
                esc(&c.cluster),
                c.client_leaf_phase,
                c.client_trust_phase,
                esc(&c.server_cluster),
                c.server_leaf_phase,
                c.server_trust_phase
            ));
            if !c.ok {
                o.push_str(&format!(
                    "<failure message=\"{}\"/>",
                    esc(c.reason.as_deref().unwrap_or("handshake failed"))
                ));
            }
            o.push_str("</testcase>\n");
        }
        o.push_str("  </testsuite>\n</testsuites>\n");
        o
    }
}
