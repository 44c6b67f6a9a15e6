//! Gate checks. Findings are data: each names a stable kebab-case code, a severity, what it
//! is about (cluster, phase, file), whether it passed, and a one-line hint. The CLI renders a
//! [`Report`] as text, JSON or JUnit and maps it to an exit code.

pub mod offline;

use serde::Serialize;

/// How much a failed gate matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One gate's result for one subject.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub passed: bool,
    /// `cluster/phase` or `fleet`, and the file when there is one.
    pub subject: String,
    pub file: Option<String>,
    pub message: String,
    pub hint: String,
}

/// One cell of the transition handshake matrix.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixCell {
    pub cluster: String,
    /// The phase whose signing intermediate issued the client's leaf.
    pub client_leaf_phase: u8,
    /// The phase whose bundle the client trusts.
    pub client_trust_phase: u8,
    pub server_cluster: String,
    pub server_leaf_phase: u8,
    pub server_trust_phase: u8,
    pub ok: bool,
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
    pub fn failed(&self, strict: bool) -> bool {
        self.findings
            .iter()
            .any(|f| !f.passed && (f.severity == Severity::Error || strict))
    }
    pub fn count(&self, passed: bool) -> usize {
        self.findings.iter().filter(|f| f.passed == passed).count()
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
                (true, _) => paint("PASS", "32"),
                (false, Severity::Error) => paint("FAIL", "31"),
                (false, Severity::Warning) => paint("WARN", "33"),
            };
            o.push_str(&format!(
                "{status} {:<24} {:<28} {}",
                f.code, f.subject, f.message
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
            o.push_str("\ntransition handshake matrix (client leaf/trust → server leaf/trust)\n");
            for c in &self.matrix {
                let verdict = if c.ok {
                    paint("ok", "32")
                } else {
                    paint("FAIL", "31")
                };
                let peer = if c.server_cluster == c.cluster {
                    String::new()
                } else {
                    format!(" @{}", c.server_cluster)
                };
                o.push_str(&format!(
                    "  {:<12} client {}/{} → server{peer} {}/{}  {verdict}",
                    c.cluster,
                    c.client_leaf_phase,
                    c.client_trust_phase,
                    c.server_leaf_phase,
                    c.server_trust_phase
                ));
                if let Some(r) = &c.reason {
                    o.push_str(&format!("  ({r})"));
                }
                o.push('\n');
            }
        }
        let failed = self
            .findings
            .iter()
            .filter(|f| !f.passed && f.severity == Severity::Error)
            .count();
        let warned = self
            .findings
            .iter()
            .filter(|f| !f.passed && f.severity == Severity::Warning)
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
                esc(f.code)
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
