//! How a [`Report`] reads: text for a terminal or a CI log, markdown for a pull-request
//! comment or `$GITHUB_STEP_SUMMARY`, and JUnit XML for CI test views (JSON is the serde form).
//!
//! Text is styled with `anstyle`; the CLI writes it through `anstream`, which drops the styles
//! when NO_COLOR, CLICOLOR or a pipe say so. JUnit is built and serialized by `quick-junit`.
//! Messages can hold text from proxies and the API server, so every format shows control
//! characters as visible escapes ([`printable`]): a report never moves a terminal's cursor and
//! never yields invalid XML. (quick-junit drops C0 controls but passes U+FFFE/U+FFFF, which
//! XML parsers reject, and silently loses what it drops; the small mapping is written below.)

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use super::{Code, Finding, MatrixCell, Report, Severity};

const PASS: Style = AnsiColor::Green.on_default();
const FAIL: Style = AnsiColor::Red.on_default().bold();
const WARN: Style = AnsiColor::Yellow.on_default().bold();
const SKIP: Style = AnsiColor::Cyan.on_default();
const DIM: Style = Style::new().dimmed();

/// At most this many findings are detailed in one markdown row (a PR comment has a size limit).
const MARKDOWN_DETAILS: usize = 10;
/// At most this many failed matrix cells are listed one by one.
const MATRIX_CELLS_SHOWN: usize = 20;

/// What happened to one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Warned,
    NotChecked,
}

fn outcome(f: &Finding) -> Outcome {
    match (f.not_checked.is_some(), f.passed, f.severity) {
        (true, _, _) => Outcome::NotChecked,
        (false, true, _) => Outcome::Passed,
        (false, false, Severity::Error) => Outcome::Failed,
        (false, false, Severity::Warning) => Outcome::Warned,
    }
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Passed => "PASS",
            Outcome::Failed => "FAIL",
            Outcome::Warned => "WARN",
            Outcome::NotChecked => "SKIP",
        }
    }
    fn style(self) -> Style {
        match self {
            Outcome::Passed => PASS,
            Outcome::Failed => FAIL,
            Outcome::Warned => WARN,
            Outcome::NotChecked => SKIP,
        }
    }
    fn painted(self) -> String {
        paint(self.word(), self.style())
    }
}

fn paint(s: &str, style: Style) -> String {
    format!("{style}{s}{style:#}")
}

/// Counts of findings: one gate family, or the whole report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Gates that ran and passed.
    pub passed: usize,
    /// Error-severity gates that ran and failed.
    pub failed: usize,
    /// Warning-severity gates that ran and failed.
    pub warnings: usize,
    /// Gates that could not run; never counted as passed.
    pub not_checked: usize,
}

impl Tally {
    fn add(&mut self, f: &Finding) {
        match outcome(f) {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Warned => self.warnings += 1,
            Outcome::NotChecked => self.not_checked += 1,
        }
    }
    /// Every finding counted, whatever its outcome.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.warnings + self.not_checked
    }
    /// The family's verdict: any failure, else any warning, else anything unchecked.
    fn outcome(&self) -> Outcome {
        if self.failed > 0 {
            Outcome::Failed
        } else if self.warnings > 0 {
            Outcome::Warned
        } else if self.not_checked > 0 {
            Outcome::NotChecked
        } else {
            Outcome::Passed
        }
    }
    /// ", 2 failed, 1 not checked": the counts besides `passed`, or nothing.
    fn rest(&self) -> String {
        let mut s = String::new();
        for (n, what) in [
            (self.failed, "failed"),
            (self.warnings, "warnings"),
            (self.not_checked, "not checked"),
        ] {
            if n > 0 {
                let _ = write!(s, ", {n} {what}");
            }
        }
        s
    }
}

/// `text` with control characters (and the Unicode bidi overrides and non-characters that
/// XML or a terminal would misread) shown as `\u{…}` escapes; newlines kept when `newlines`.
pub fn printable(text: &str, newlines: bool) -> Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && !(newlines && c == '\n'))
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{fffe}' | '\u{ffff}')
    };
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

impl Report {
    /// Counts over every finding.
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for f in &self.findings {
            t.add(f);
        }
        t
    }

    /// Counts per gate family, in catalogue order.
    pub fn families(&self) -> BTreeMap<Code, Tally> {
        let mut m: BTreeMap<Code, Tally> = BTreeMap::new();
        for f in &self.findings {
            m.entry(f.code).or_default().add(f);
        }
        m
    }

    /// Text for a terminal or a CI log, styled with ANSI sequences (write it through
    /// `anstream` so NO_COLOR and pipes are honoured). By default: one line per gate family
    /// with its counts, every failure and warning in full, the not-checked findings grouped by
    /// reason, the matrix summary and a closing count. `verbose` lists every finding instead
    /// of the family lines, and every matrix group.
    pub fn to_text(&self, verbose: bool) -> String {
        let mut o = String::new();
        if verbose {
            for f in &self.findings {
                finding_text(&mut o, f);
            }
        } else {
            self.families_text(&mut o);
            self.problems_text(&mut o);
            self.not_checked_text(&mut o);
        }
        o.push_str(&matrix_text(&self.matrix, verbose));
        // Every ordered pair of clusters (verify::pairs), said under the matrix it rests on.
        if let Some(f) = self
            .findings
            .iter()
            .find(|f| f.code == crate::gates::Code::HandshakeMatrix && f.subject == "fleet")
            && !self.matrix.is_empty()
        {
            let _ = writeln!(o, "  {}", f.message);
        }
        if let Some(line) = mode_line(self) {
            let _ = writeln!(o, "{line}");
        }
        let t = self.tally();
        let _ = writeln!(
            o,
            "\n{} passed, {} failed, {} warnings, {} not checked{}",
            t.passed,
            t.failed,
            t.warnings,
            t.not_checked,
            matrix_count(&self.matrix)
        );
        o
    }

    fn families_text(&self, o: &mut String) {
        for (code, t) in self.families() {
            let counts = format!("{} of {} passed{}", t.passed, t.total(), t.rest());
            let _ = writeln!(
                o,
                "{} {:<24} {counts:<30} {}",
                t.outcome().painted(),
                code.as_str(),
                paint(code.gate().title, DIM),
            );
        }
    }

    fn problems_text(&self, o: &mut String) {
        let problems: Vec<&Finding> = self.findings.iter().filter(|f| f.is_failure()).collect();
        if problems.is_empty() {
            return;
        }
        let _ = writeln!(o, "\nfailures and warnings ({}):", problems.len());
        for f in problems {
            finding_text(o, f);
        }
    }

    fn not_checked_text(&self, o: &mut String) {
        let groups = self.not_checked_by_reason();
        if groups.is_empty() {
            return;
        }
        let n: usize = groups.iter().map(|(_, fs)| fs.len()).sum();
        let _ = writeln!(o, "\nnot checked ({n}), by reason:");
        for (reason, fs) in groups {
            let _ = writeln!(o, "  {} ({}):", printable(reason, false), fs.len());
            for f in fs {
                let _ = writeln!(
                    o,
                    "    {} {:<24} {}",
                    Outcome::NotChecked.painted(),
                    f.code.as_str(),
                    printable(&f.subject, false)
                );
            }
        }
    }

    /// Not-checked findings grouped by their reason, in order of first appearance.
    fn not_checked_by_reason(&self) -> Vec<(&str, Vec<&Finding>)> {
        let mut groups: Vec<(&str, Vec<&Finding>)> = Vec::new();
        for f in &self.findings {
            let Some(reason) = f.not_checked.as_deref() else {
                continue;
            };
            match groups.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, fs)) => fs.push(f),
                None => groups.push((reason, vec![f])),
            }
        }
        groups
    }

    /// A markdown summary for a pull-request comment or `$GITHUB_STEP_SUMMARY`: a verdict, a
    /// table with one row per gate family (result, count, the failures and warnings in
    /// detail, the not-checked reasons), and the matrix summary.
    pub fn to_markdown(&self, title: &str, strict: bool) -> String {
        let t = self.tally();
        let verdict = if self.failed(strict) {
            "❌ failed"
        } else {
            "✅ passed"
        };
        let mut o = format!("### {} — {verdict}\n\n", md(title));
        let _ = writeln!(
            o,
            "{} passed, {} failed, {} warnings, {} not checked{}\n",
            t.passed,
            t.failed,
            t.warnings,
            t.not_checked,
            matrix_count(&self.matrix)
        );
        o.push_str("| Gate | Result | Count | Details |\n|---|---|---|---|\n");
        for (code, tally) in self.families() {
            let details = self.markdown_details(code);
            let _ = writeln!(
                o,
                "| `{}` {} | {} | {} of {}{} | {} |",
                code.as_str(),
                md(code.gate().title),
                markdown_result(tally.outcome()),
                tally.passed,
                tally.total(),
                tally.rest(),
                details.join("<br>")
            );
        }
        o.push_str(&matrix_markdown(&self.matrix));
        if let Some(line) = mode_line(self) {
            let _ = writeln!(o, "\n{line}");
        }
        o
    }

    /// The details cell of a family: each failure and warning with its file and hint, then
    /// each not-checked reason with how many it covers.
    fn markdown_details(&self, code: Code) -> Vec<String> {
        let family = || self.findings.iter().filter(move |f| f.code == code);
        let problems: Vec<&Finding> = family().filter(|f| f.is_failure()).collect();
        let mut cell: Vec<String> = problems
            .iter()
            .take(MARKDOWN_DETAILS)
            .map(|f| {
                let mut s = format!("**{}**: {}", md(&f.subject), md(&f.message));
                if let Some(file) = &f.file {
                    let _ = write!(s, " (file `{}`)", md_code(file));
                }
                for d in f.details.iter().take(MARKDOWN_DETAILS) {
                    let _ = write!(s, "<br>· {}", md(d));
                }
                if f.details.len() > MARKDOWN_DETAILS {
                    let _ = write!(s, "<br>· … {} more", f.details.len() - MARKDOWN_DETAILS);
                }
                if !f.hint.is_empty() {
                    let _ = write!(s, "<br>*hint:* {}", md(&f.hint));
                }
                s
            })
            .collect();
        if problems.len() > MARKDOWN_DETAILS {
            cell.push(format!(
                "… and {} more (the text or JSON report lists every one)",
                problems.len() - MARKDOWN_DETAILS
            ));
        }
        let mut reasons: Vec<(&str, usize)> = Vec::new();
        for f in family() {
            if let Some(r) = f.not_checked.as_deref() {
                match reasons.iter_mut().find(|(x, _)| *x == r) {
                    Some((_, n)) => *n += 1,
                    None => reasons.push((r, 1)),
                }
            }
        }
        for (r, n) in reasons {
            cell.push(format!("not checked ({n}): {}", md(r)));
        }
        cell
    }

    /// JUnit XML (written by quick-junit): one test case per finding, named by its code in the
    /// class of its subject, and one per matrix cell. A failed error gate is a `<failure>`; a
    /// failed warning and a gate that could not run are `<skipped>` with the message (prefixed
    /// `warning:`) or the reason (prefixed `not checked:`). Details and the hint are the
    /// element's text; severity and file are properties of every case that did not pass.
    pub fn to_junit(&self, suite: &str) -> Result<String, quick_junit::SerializeError> {
        let mut ts = quick_junit::TestSuite::new(xml(suite));
        ts.add_test_cases(self.findings.iter().map(junit_finding));
        ts.add_test_cases(self.matrix.iter().map(junit_cell));
        let mut report = quick_junit::Report::new(xml(suite));
        report.add_test_suite(ts);
        report.to_string()
    }
}

/// Text for quick-junit: control characters and non-characters as visible escapes.
fn xml(s: &str) -> String {
    printable(s, true).into_owned()
}

fn junit_finding(f: &Finding) -> quick_junit::TestCase {
    use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus};
    let oc = outcome(f);
    let mut status = match oc {
        Outcome::Passed => TestCaseStatus::success(),
        Outcome::Failed => TestCaseStatus::non_success(NonSuccessKind::Failure),
        Outcome::Warned | Outcome::NotChecked => TestCaseStatus::skipped(),
    };
    match oc {
        Outcome::Passed => {}
        Outcome::NotChecked => {
            let reason = f.not_checked.as_deref().unwrap_or_default();
            status.set_message(xml(&format!("not checked: {reason}")));
        }
        Outcome::Failed | Outcome::Warned => {
            let prefix = if oc == Outcome::Warned {
                "warning: "
            } else {
                ""
            };
            status.set_message(xml(&format!("{prefix}{}", f.message)));
            status.set_type(f.code.as_str());
            let mut text = String::new();
            for d in &f.details {
                let _ = writeln!(text, "{d}");
            }
            if !f.hint.is_empty() {
                let _ = writeln!(text, "hint: {}", f.hint);
            }
            if !text.is_empty() {
                status.set_description(xml(&text));
            }
        }
    }
    let mut tc = TestCase::new(f.code.as_str(), status);
    tc.set_classname(xml(&f.subject));
    if oc != Outcome::Passed {
        tc.add_property(Property::new("severity", severity_str(f.severity)));
        if let Some(file) = &f.file {
            tc.add_property(Property::new("file", xml(file)));
        }
    }
    tc
}

fn junit_cell(c: &MatrixCell) -> quick_junit::TestCase {
    use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus};
    let status = if c.ok {
        TestCaseStatus::success()
    } else {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(xml(c.reason.as_deref().unwrap_or("handshake failed")));
        s.set_type("handshake-matrix");
        s
    };
    let name = format!(
        "client {}/{} to {} {}/{}",
        c.client_leaf_phase,
        c.client_trust_phase,
        c.server_cluster,
        c.server_leaf_phase,
        c.server_trust_phase
    );
    let mut tc = TestCase::new(xml(&name), status);
    tc.set_classname(xml(&format!("{}/handshake-matrix", c.cluster)));
    tc
}

fn severity_str(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// One finding in full: status, code, subject, message; for a failure its file, hint and
/// details.
fn finding_text(o: &mut String, f: &Finding) {
    let oc = outcome(f);
    let message = printable(&f.message, true).replace('\n', "\n     ");
    let _ = writeln!(
        o,
        "{} {:<24} {:<28} {message}",
        oc.painted(),
        f.code.as_str(),
        printable(&f.subject, false)
    );
    if matches!(oc, Outcome::Failed | Outcome::Warned) {
        if let Some(file) = &f.file {
            let _ = writeln!(o, "     file: {}", printable(file, false));
        }
        if !f.hint.is_empty() {
            let _ = writeln!(o, "     hint: {}", printable(&f.hint, false));
        }
        // A fleet can have thousands: the first few, then a count (JSON lists every one).
        for d in f.details.iter().take(TEXT_DETAILS) {
            let _ = writeln!(o, "     - {}", printable(d, false));
        }
        if f.details.len() > TEXT_DETAILS {
            let _ = writeln!(
                o,
                "     - … and {} more (--format json lists every one)",
                f.details.len() - TEXT_DETAILS
            );
        }
    }
}

/// How many details of a finding the text output names.
const TEXT_DETAILS: usize = 5;

fn markdown_result(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "✅ pass",
        Outcome::Failed => "❌ fail",
        Outcome::Warned => "⚠️ warning",
        Outcome::NotChecked => "⏭️ not checked",
    }
}

/// Text safe inside a markdown table cell: `|` and HTML are escaped, newlines become `<br>`,
/// control characters are visible escapes.
fn md(s: &str) -> String {
    let s = printable(s, true);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' => out.push_str("<br>"),
            _ => out.push(c),
        }
    }
    out
}

/// Text inside a markdown code span within a table cell (a backtick would end the span).
fn md_code(s: &str) -> String {
    md(s).replace('`', "'")
}

// ---------------------------------------------------------------------------------------
// The transition handshake matrix: its summary in each format. Kept apart from the findings
// so the matrix's own rules (which cells exist, which count as checked) stay in one place.
// ---------------------------------------------------------------------------------------

/// "; matrix 288 of 288 cells ok": the matrix part of the closing count (nothing for a run
/// without a matrix, such as `verify live`).
fn matrix_count(cells: &[MatrixCell]) -> String {
    if cells.is_empty() {
        return String::new();
    }
    let not_checked = cells
        .iter()
        .filter(|c| c.status == super::CellStatus::NotChecked)
        .count();
    let mut out = format!(
        "; matrix {} of {} cells ok",
        cells.iter().filter(|c| c.ok).count(),
        cells.len()
    );
    // Cells of a phase that could not be read were never judged: counted apart, never as ok.
    if not_checked > 0 {
        out.push_str(&format!(", {not_checked} not checked"));
    }
    out
}

/// Cells of one group of the matrix, by status.
#[derive(Default, Clone, Copy)]
struct CellTally {
    ok: usize,
    failed: usize,
    total: usize,
}

impl CellTally {
    /// Failed when any cell failed; passed only when every cell passed; otherwise some cells
    /// were never judged (their phase could not be read), which is not a pass.
    fn outcome(self) -> Outcome {
        if self.failed > 0 {
            Outcome::Failed
        } else if self.ok == self.total {
            Outcome::Passed
        } else {
            Outcome::NotChecked
        }
    }
    /// The verdict word for the text matrix.
    fn verdict(self) -> String {
        match self.outcome() {
            Outcome::Passed => paint("ok", PASS),
            Outcome::NotChecked => paint("NOT CHECKED", SKIP),
            _ => paint("FAIL", FAIL),
        }
    }
}

/// Cells counted per key.
fn matrix_groups<K: Ord>(
    cells: &[MatrixCell],
    key: impl Fn(&MatrixCell) -> K,
) -> BTreeMap<K, CellTally> {
    let mut groups: BTreeMap<K, CellTally> = BTreeMap::new();
    for c in cells {
        let e = groups.entry(key(c)).or_default();
        e.total += 1;
        match c.status {
            super::CellStatus::Ok => e.ok += 1,
            super::CellStatus::Failed => e.failed += 1,
            super::CellStatus::NotChecked => {}
        }
    }
    groups
}

/// "matrix: decided from probe certificates …": how the matrix ran, when it did.
fn mode_line(r: &Report) -> Option<&'static str> {
    match r.matrix_mode? {
        _ if r.matrix.is_empty() => None,
        super::MatrixMode::Handshakes => Some(
            "matrix: decided by real TLS 1.3 handshakes between leaves issued from the CA keys",
        ),
        super::MatrixMode::Probes => Some(
            "matrix: decided from probe certificates (no identity): trust decisions only, no \
             proof of possession",
        ),
    }
}

/// The matrix in text: one line per transition (by default) or per cluster, transition and
/// peer (`verbose`); a group with a failed cell is always shown, and the failed cells one by
/// one (the first [`MATRIX_CELLS_SHOWN`]).
fn matrix_text(cells: &[MatrixCell], verbose: bool) -> String {
    let mut o = String::new();
    if cells.is_empty() {
        return o;
    }
    o.push_str("\ntransition handshake matrix (leaf from phase N or N+1 × trusting phase N or N+1, client × server)\n");
    for (n, t) in matrix_groups(cells, |c| c.transition) {
        let clusters: std::collections::BTreeSet<&str> = cells
            .iter()
            .filter(|c| c.transition == n)
            .map(|c| c.cluster.as_str())
            .collect();
        let clusters = clusters.len();
        let _ = writeln!(
            o,
            "  phase {n}→{}  {:>5} of {:<5} cells {}  ({clusters} cluster(s))",
            n + 1,
            t.ok,
            t.total,
            t.verdict()
        );
    }
    let groups = matrix_groups(cells, |c| {
        (c.cluster.clone(), c.transition, c.server_cluster.clone())
    });
    for ((cluster, n, peer), t) in &groups {
        if !verbose && t.ok == t.total {
            continue;
        }
        let with = if peer == cluster {
            "within the cluster".to_string()
        } else {
            format!("with {peer}")
        };
        let _ = writeln!(
            o,
            "    {cluster:<14} phase {n}→{}  {with:<24} {:>3}/{:<3} {}",
            n + 1,
            t.ok,
            t.total,
            t.verdict()
        );
    }
    let failed: Vec<&MatrixCell> = cells
        .iter()
        .filter(|c| c.status == super::CellStatus::Failed)
        .collect();
    for c in failed.iter().take(MATRIX_CELLS_SHOWN) {
        let _ = writeln!(o, "      {} {}", paint("FAIL", FAIL), cell_text(c));
    }
    if failed.len() > MATRIX_CELLS_SHOWN {
        let _ = writeln!(
            o,
            "      … and {} more failed cells (--format json lists every cell)",
            failed.len() - MATRIX_CELLS_SHOWN
        );
    }
    o
}

fn cell_text(c: &MatrixCell) -> String {
    format!(
        "{}: client leaf {}/trust {} → {} server leaf {}/trust {}: {}",
        printable(&c.cluster, false),
        c.client_leaf_phase,
        c.client_trust_phase,
        printable(&c.server_cluster, false),
        c.server_leaf_phase,
        c.server_trust_phase,
        printable(c.reason.as_deref().unwrap_or("failed"), false)
    )
}

/// The matrix in markdown: one table row per transition, then the failed cells.
fn matrix_markdown(cells: &[MatrixCell]) -> String {
    let mut o = String::new();
    if cells.is_empty() {
        return o;
    }
    o.push_str("\n**Transition handshake matrix** (leaf from phase N or N+1 × trusting phase N or N+1, client × server)\n\n| Transition | Result | Cells ok |\n|---|---|---|\n");
    for (n, t) in matrix_groups(cells, |c| c.transition) {
        let result = markdown_result(t.outcome());
        let _ = writeln!(
            o,
            "| phase {n}→{} | {result} | {} of {} |",
            n + 1,
            t.ok,
            t.total
        );
    }
    let failed: Vec<&MatrixCell> = cells
        .iter()
        .filter(|c| c.status == super::CellStatus::Failed)
        .collect();
    if !failed.is_empty() {
        o.push_str("\nFailed cells:\n\n");
        for c in failed.iter().take(MATRIX_CELLS_SHOWN) {
            let _ = writeln!(o, "- {}", md(&cell_text(c)));
        }
        if failed.len() > MATRIX_CELLS_SHOWN {
            let _ = writeln!(
                o,
                "- … and {} more (`--format json` lists every cell)",
                failed.len() - MATRIX_CELLS_SHOWN
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "pod \u{1b}[31mred\u{1b}[0m \u{0} <b>&amp; \u{7}\u{fffe}\u{ffff}\u{202e} | a\nb \"q\" ]]> end";

    fn report() -> Report {
        let mut r = Report::default();
        r.push(Finding::new(
            Code::SecretShape,
            true,
            "demo/1-initial",
            "ok",
        ));
        r.push(Finding::new(
            Code::SecretShape,
            true,
            "demo/2-trust-both",
            "ok",
        ));
        r.push(
            Finding::new(Code::SecretShape, false, "demo/3-switch-issuer", HOSTILE)
                .in_file(Some("clusters/demo/x|y.yaml"))
                .details(vec![format!("detail {HOSTILE}")]),
        );
        r.push(Finding::new(
            Code::NoRestart,
            false,
            "fleet",
            "root B has root A's subject",
        ));
        r.push(Finding::not_checked(
            Code::ChainToBundle,
            "demo/3-switch-issuer",
            "phase 3 could not be read",
        ));
        r.push(Finding::not_checked(
            Code::ChainOrder,
            "demo/3-switch-issuer",
            "phase 3 could not be read",
        ));
        r.push(Finding::not_checked(
            Code::SopsMac,
            "demo/1-initial",
            "no age identity",
        ));
        r
    }

    fn plain(s: &str) -> String {
        anstream::adapter::strip_str(s).to_string()
    }

    #[test]
    fn printable_escapes_controls_and_keeps_the_rest() {
        assert_eq!(printable("a\u{1b}[1mb", false), "a\\u{1b}[1mb");
        assert_eq!(printable("a\nb", true), "a\nb");
        assert_eq!(printable("a\nb", false), "a\\u{a}b");
        assert_eq!(printable("\u{ffff}\u{202e}é", false), "\\u{ffff}\\u{202e}é");
        assert!(matches!(printable("plain ✓", false), Cow::Borrowed(_)));
    }

    #[test]
    fn tally_never_counts_not_checked_as_passed() {
        let t = report().tally();
        assert_eq!(
            t,
            Tally {
                passed: 2,
                failed: 1,
                warnings: 1,
                not_checked: 3
            }
        );
        let f = report().families();
        assert_eq!(f[&Code::ChainToBundle].passed, 0);
        assert_eq!(f[&Code::ChainToBundle].outcome(), Outcome::NotChecked);
        assert_eq!(f[&Code::SecretShape].outcome(), Outcome::Failed);
        assert_eq!(f[&Code::NoRestart].outcome(), Outcome::Warned);
    }

    #[test]
    fn text_shows_families_problems_and_reasons_without_raw_escapes() {
        let styled = report().to_text(false);
        let text = plain(&styled);
        // The styles are ours; the message's own escape sequences were neutralised first.
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{0}'),
            "{text:?}"
        );
        assert!(
            styled.contains("\u{1b}["),
            "styled text carries ANSI styles"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(
            &"FAIL secret-shape             2 of 3 passed, 1 failed        each phase is a complete cacerts Secret"
        ), "{text}");
        assert!(
            text.contains(
                "SKIP chain-to-bundle          0 of 1 passed, 1 not checked   the signer"
            )
        );
        assert!(text.contains("WARN no-restart"));
        assert!(text.contains("pod \\u{1b}[31mred\\u{1b}[0m \\u{0} <b>&amp;"));
        assert!(text.contains("     file: clusters/demo/x|y.yaml"));
        // A newline in a message continues on an indented line.
        assert!(text.contains(" | a\n     b \"q\""), "{text}");
        assert!(text.contains(
            "not checked (3), by reason:\n  phase 3 could not be read (2):\n    SKIP chain-to-bundle          demo/3-switch-issuer\n    SKIP chain-order"
        ), "{text}");
        assert!(text.contains("  no age identity (1):\n    SKIP sops-mac"));
        assert!(
            text.ends_with("\n2 passed, 1 failed, 1 warnings, 3 not checked\n"),
            "{text}"
        );
        // Passing findings are counted, not listed.
        assert!(!text.contains("demo/1-initial               ok"));
        let verbose = plain(&report().to_text(true));
        assert!(
            verbose.contains("PASS secret-shape             demo/1-initial               ok"),
            "{verbose}"
        );
    }

    #[test]
    fn markdown_rows_escape_pipes_newlines_and_html() {
        let md = report().to_markdown("rootroll verify offline", false);
        assert!(md.starts_with("### rootroll verify offline — ❌ failed\n"));
        let row = md
            .lines()
            .find(|l| l.starts_with("| `secret-shape`"))
            .expect("a secret-shape row");
        // Exactly the table's own 5 pipes: the message's `|` is escaped, its newline a <br>.
        assert_eq!(
            row.matches('|').count() - row.matches("\\|").count(),
            5,
            "{row}"
        );
        assert!(row.contains("❌ fail | 2 of 3, 1 failed |"), "{row}");
        assert!(row.contains("\\| a<br>b"), "{row}");
        assert!(row.contains("&lt;b&gt;&amp;amp;"), "{row}");
        assert!(
            row.contains("\\u{1b}[31m") && !row.contains('\u{1b}'),
            "{row}"
        );
        assert!(row.contains("(file `clusters/demo/x\\|y.yaml`)"), "{row}");
        let skip = md
            .lines()
            .find(|l| l.starts_with("| `chain-order`"))
            .unwrap();
        assert!(skip.contains("⏭️ not checked | 0 of 1, 1 not checked | not checked (1): phase 3 could not be read |"), "{skip}");
        let strict = report().to_markdown("t", true);
        assert!(strict.starts_with("### t — ❌ failed"));
        let mut warn_only = Report::default();
        warn_only.push(Finding::new(Code::NoRestart, false, "fleet", "same"));
        assert!(
            warn_only
                .to_markdown("t", false)
                .starts_with("### t — ✅ passed")
        );
        assert!(
            warn_only
                .to_markdown("t", true)
                .starts_with("### t — ❌ failed")
        );
    }

    /// Whatever a message holds, the JUnit document parses with a real XML parser (Python's
    /// expat through xml.dom.minidom), and the failure, warning and not-checked cases are
    /// what CI test views read.
    #[test]
    fn junit_with_hostile_messages_is_valid_xml() {
        let xml = report().to_junit("rootroll verify offline").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.xml");
        std::fs::write(&file, &xml).unwrap();
        let script = r#"
import sys, xml.dom.minidom as m
d = m.parse(sys.argv[1])
for t in ('failure', 'skipped'):
    for e in d.getElementsByTagName(t):
        print(t, e.parentNode.getAttribute('name'), repr(e.getAttribute('message')))
"#;
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&file)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "not XML: {}\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
        let parsed = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = parsed.lines().collect();
        assert_eq!(lines.len(), 5, "{parsed}");
        assert!(
            lines[0].starts_with("failure secret-shape 'pod \\\\u{1b}[31mred"),
            "{parsed}"
        );
        assert!(
            lines[0].contains("<b>&amp;"),
            "the parser gives the text back: {parsed}"
        );
        assert!(
            lines.contains(&"skipped no-restart \"warning: root B has root A's subject\""),
            "{parsed}"
        );
        assert!(
            lines.contains(&"skipped chain-order 'not checked: phase 3 could not be read'"),
            "{parsed}"
        );
        assert!(
            xml.contains("tests=\"7\"")
                && xml.contains("failures=\"1\"")
                && xml.contains("skipped=\"4\""),
            "{xml}"
        );
    }
}

#[cfg(test)]
mod matrix_tests {
    use super::*;

    fn cell(cluster: &str, peer: &str, transition: u8, ok: bool) -> MatrixCell {
        MatrixCell {
            cluster: cluster.into(),
            transition,
            client_leaf_phase: transition,
            client_trust_phase: transition + 1,
            server_cluster: peer.into(),
            server_leaf_phase: transition + 1,
            server_trust_phase: transition,
            status: if ok {
                super::super::CellStatus::Ok
            } else {
                super::super::CellStatus::Failed
            },
            ok,
            rejected_by: (!ok).then(|| "server".into()),
            reason: (!ok).then(|| "unknown issuer".into()),
        }
    }

    #[test]
    fn the_default_matrix_summary_is_per_transition_and_shows_every_failed_group() {
        let cells = vec![
            cell("a", "a", 1, true),
            cell("a", "b", 1, true),
            cell("b", "b", 1, true),
            cell("a", "a", 2, true),
            cell("b", "a", 2, false),
        ];
        let text = anstream::adapter::strip_str(&matrix_text(&cells, false)).to_string();
        assert!(
            text.contains("  phase 1→2      3 of 3     cells ok  (2 cluster(s))\n"),
            "{text}"
        );
        assert!(
            text.contains("  phase 2→3      1 of 2     cells FAIL  (2 cluster(s))\n"),
            "{text}"
        );
        assert!(
            text.contains("    b              phase 2→3  with a                     0/1   FAIL\n"),
            "{text}"
        );
        assert!(
            !text.contains("within the cluster"),
            "passing groups are not listed: {text}"
        );
        assert!(text.contains(
            "      FAIL b: client leaf 2/trust 3 → a server leaf 3/trust 2: unknown issuer\n"
        ));
        let verbose = anstream::adapter::strip_str(&matrix_text(&cells, true)).to_string();
        assert_eq!(
            verbose.matches("within the cluster").count(),
            3,
            "{verbose}"
        );
        assert_eq!(matrix_count(&cells), "; matrix 4 of 5 cells ok");
        assert_eq!(matrix_count(&[]), "");
        let md = matrix_markdown(&cells);
        assert!(md.contains("| phase 2→3 | ❌ fail | 1 of 2 |"), "{md}");
        assert!(
            md.contains("- b: client leaf 2/trust 3 → a server leaf 3/trust 2: unknown issuer"),
            "{md}"
        );
    }

    #[test]
    fn a_transition_never_judged_is_not_checked_not_failed() {
        let mut unjudged = cell("a", "a", 2, false);
        unjudged.status = super::super::CellStatus::NotChecked;
        unjudged.reason = Some("phase 3 could not be read".into());
        let mut half = cell("b", "b", 3, true);
        half.transition = 3;
        let mut other = unjudged.clone();
        other.transition = 3;
        let cells = vec![cell("a", "a", 1, true), unjudged, half, other];
        let text = anstream::adapter::strip_str(&matrix_text(&cells, false)).to_string();
        assert!(
            text.contains("  phase 2→3      0 of 1     cells NOT CHECKED  (1 cluster(s))\n"),
            "{text}"
        );
        assert!(
            text.contains("  phase 3→4      1 of 2     cells NOT CHECKED  (2 cluster(s))\n"),
            "{text}"
        );
        assert!(!text.contains("FAIL"), "no cell failed: {text}");
        let md = matrix_markdown(&cells);
        assert!(
            md.contains("| phase 2→3 | ⏭️ not checked | 0 of 1 |"),
            "{md}"
        );
        assert!(!md.contains("fail"), "{md}");
    }
}
