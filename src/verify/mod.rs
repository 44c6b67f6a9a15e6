//! Gate checks. Findings are data: each names a stable kebab-case code, a severity, what it
//! is about (cluster, phase, file), whether it passed, and a one-line hint. The CLI renders a
//! [`Report`] as text, JSON or JUnit and maps it to an exit code.

pub mod cluster;
pub mod dump;
pub mod live;
pub mod matrix;
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
    /// Per-object detail (pods, namespaces) behind an aggregated finding.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
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
    pub status: CellStatus,
    /// `status` is `ok` (kept for readers of earlier reports).
    pub ok: bool,
    /// `client` or `server`: who refused the other's certificate.
    pub rejected_by: Option<String>,
    /// Why the handshake failed, or why the cell was not checked (`not checked, because …`).
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
            o.push_str("\ntransition handshake matrix (leaf from phase N or N+1 × trusting phase N or N+1, client × server)\n");
            let mut groups: std::collections::BTreeMap<(String, u8, String), MatrixTally> =
                Default::default();
            for c in &self.matrix {
                groups
                    .entry((c.cluster.clone(), c.transition, c.server_cluster.clone()))
                    .or_default()
                    .add(c);
            }
            for ((cluster, n, peer), t) in &groups {
                let verdict = if t.ok == t.total {
                    paint("ok", "32")
                } else {
                    let mut why = Vec::new();
                    if t.failed > 0 {
                        why.push(format!("{} failed", t.failed));
                    }
                    if t.not_checked > 0 {
                        why.push(format!("{} not checked", t.not_checked));
                    }
                    let label = if t.failed > 0 { "FAIL" } else { "NOT CHECKED" };
                    format!("{} ({})", paint(label, "31"), why.join(", "))
                };
                let with = if peer == cluster {
                    "within the cluster".to_string()
                } else {
                    format!("with {peer}")
                };
                o.push_str(&format!(
                    "  {cluster:<14} phase {n}→{}  {with:<24} {:>3}/{:<3} {verdict}\n",
                    n + 1,
                    t.ok,
                    t.total
                ));
            }
            for c in self
                .matrix
                .iter()
                .filter(|c| c.status == CellStatus::Failed)
                .take(20)
            {
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
            .filter(|f| !f.passed && f.severity == Severity::Error)
            .count();
        let warned = self
            .findings
            .iter()
            .filter(|f| !f.passed && f.severity == Severity::Warning)
            .count();
        o.push_str(&format!(
            "\n{} passed, {failed} failed, {warned} warnings; {}\n",
            self.count(true),
            self.matrix_summary()
        ));
        o
    }

    /// `matrix N cells: N ok, M failed, K not checked (K because …)`: cells that were not
    /// checked are counted apart, with their causes, never as ok.
    pub fn matrix_summary(&self) -> String {
        let mut t = MatrixTally::default();
        let mut causes: std::collections::BTreeMap<&str, usize> = Default::default();
        for c in &self.matrix {
            t.add(c);
            if c.status == CellStatus::NotChecked {
                let reason = c.reason.as_deref().unwrap_or_default();
                let cause = reason.strip_prefix(matrix::NOT_CHECKED).unwrap_or(reason);
                *causes.entry(cause).or_default() += 1;
            }
        }
        let mut out = format!(
            "matrix {} cells: {} ok, {} failed, {} not checked",
            t.total, t.ok, t.failed, t.not_checked
        );
        if !causes.is_empty() {
            let mut causes: Vec<(&str, usize)> = causes.into_iter().collect();
            causes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let mut shown: Vec<String> = causes
                .iter()
                .take(3)
                .map(|(cause, n)| format!("{n} because {cause}"))
                .collect();
            if causes.len() > 3 {
                shown.push(format!("{} more cause(s)", causes.len() - 3));
            }
            out.push_str(&format!(" ({})", shown.join("; ")));
        }
        out
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
            + self
                .matrix
                .iter()
                .filter(|c| c.status == CellStatus::Failed)
                .count();
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
            match c.status {
                CellStatus::Ok => {}
                CellStatus::Failed => o.push_str(&format!(
                    "<failure message=\"{}\"/>",
                    esc(c.reason.as_deref().unwrap_or("handshake failed"))
                )),
                CellStatus::NotChecked => o.push_str(&format!(
                    "<skipped message=\"{}\"/>",
                    esc(c.reason.as_deref().unwrap_or("not checked"))
                )),
            }
            o.push_str("</testcase>\n");
        }
        o.push_str("  </testsuite>\n</testsuites>\n");
        o
    }
}

/// Counts of one group of matrix cells.
#[derive(Debug, Default)]
struct MatrixTally {
    total: usize,
    ok: usize,
    failed: usize,
    not_checked: usize,
}

impl MatrixTally {
    fn add(&mut self, c: &MatrixCell) {
        self.total += 1;
        match c.status {
            CellStatus::Ok => self.ok += 1,
            CellStatus::Failed => self.failed += 1,
            CellStatus::NotChecked => self.not_checked += 1,
        }
    }
}
