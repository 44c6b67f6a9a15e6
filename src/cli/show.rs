//! How results are shown: the render outcome, verify reports, status, explain and inspect.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use rootroll::pki;
use rootroll::render::Outcome;
use rootroll::repo::Change;
use rootroll::verify::Report;

use super::args::{Format, ReportArgs, ReportFormat};

/// Encrypted files that were kept after comparing only their public part.
fn print_not_compared(files: &[String]) {
    for f in files {
        println!(
            "not compared {f} (encrypted; no identity opens it: only its public part was compared)"
        );
    }
    if !files.is_empty() {
        println!(
            "{} encrypted file(s) could not be compared; give --identity FILE (or SOPS_AGE_KEY_FILE) to compare their content",
            files.len()
        );
    }
}

pub(super) fn show_render(out: &Path, outcome: &Outcome) -> ExitCode {
    match outcome {
        Outcome::UpToDate { not_compared } => {
            print_not_compared(not_compared);
            println!("{} is up to date", out.display());
            ExitCode::SUCCESS
        }
        Outcome::DriftLocked { id } => {
            println!("changed   certificate {id} (its spec changed), and every file holding it");
            println!(
                "{} is out of date; give --identity to list every file",
                out.display()
            );
            ExitCode::from(1)
        }
        Outcome::Drift(drift) => {
            for (p, c) in drift {
                println!("{:<9} {}", format!("{c:?}").to_lowercase(), p);
            }
            println!(
                "{} file(s) of {} would change; run `rootroll render` and commit",
                drift.len(),
                out.display()
            );
            ExitCode::from(1)
        }
        Outcome::Written {
            changes,
            wrote,
            generated,
            recipients,
            not_compared,
        } => {
            print_not_compared(not_compared);
            let count = |k: Change| changes.values().filter(|c| **c == k).count();
            if !generated.is_empty() {
                // A fleet generates thousands: name the first few.
                let shown: Vec<String> =
                    generated.iter().take(8).map(ToString::to_string).collect();
                let more = generated.len() - shown.len();
                eprintln!(
                    "generated {} CA(s): {}{}",
                    generated.len(),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                );
            }
            if *recipients > 0 {
                eprintln!("private keys encrypted with SOPS/age to {recipients} recipient(s)");
            } else {
                eprintln!(
                    "warning: private keys were written unencrypted (--insecure-plaintext); do not commit {}",
                    out.display()
                );
            }
            if !wrote {
                println!(
                    "{} is up to date: nothing was written ({} files)",
                    out.display(),
                    count(Change::Unchanged)
                );
                return ExitCode::SUCCESS;
            }
            println!(
                "wrote {}: {} added, {} changed, {} unchanged, {} removed",
                out.display(),
                count(Change::Added),
                count(Change::Changed),
                count(Change::Unchanged),
                count(Change::Removed)
            );
            ExitCode::SUCCESS
        }
    }
}

/// Prints a verify report in `format` and maps it to the exit code: 1 when a gate failed
/// (a warning only with `strict`; a gate that could not run never fails by itself), else 0.
pub(super) fn show_report(report: &Report, suite: &str, a: ReportArgs) -> Result<ExitCode> {
    match a.format {
        // anstream drops the styles for NO_COLOR, CLICOLOR=0 or a pipe (CLICOLOR_FORCE keeps them).
        ReportFormat::Text => write!(anstream::stdout().lock(), "{}", report.to_text(a.verbose))?,
        ReportFormat::Json => writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(report)?
        )?,
        ReportFormat::Junit => write!(
            std::io::stdout().lock(),
            "{}",
            report
                .to_junit(suite)
                .context("cannot write the JUnit report")?
        )?,
        ReportFormat::Markdown => write!(
            std::io::stdout().lock(),
            "{}",
            report.to_markdown(suite, a.strict)
        )?,
    }
    Ok(if report.failed(a.strict) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) fn cmd_status(dir: &Path, format: Format, now: OffsetDateTime) -> Result<ExitCode> {
    let st = rootroll::promote::status(dir, now)?;
    let mut stdout = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&st)?)?,
        Format::Text => {
            writeln!(
                stdout,
                "{:<16} {:<18} {:<26} {:<14} next gates",
                "CLUSTER", "PHASE", "PROMOTED", "SOAK LEFT"
            )?;
            // Grouped by wave when the plan has several.
            let waves = st.iter().any(|c| c.wave != Some(1));
            for (i, c) in st.iter().enumerate() {
                if waves && (i == 0 || st[i - 1].wave != c.wave) {
                    match c.wave {
                        Some(w) => writeln!(stdout, "wave {w}")?,
                        None => writeln!(stdout, "in no wave (not in the rollout)")?,
                    }
                }
                let promoted = c
                    .promoted_at
                    .and_then(|t| t.format(&Rfc3339).ok())
                    .unwrap_or_else(|| "unknown (not in Git)".into());
                let soak = match (c.soak_left, c.min_soak) {
                    (Some(l), _) if l.as_secs() == 0 => "done".to_string(),
                    (Some(l), _) => l.to_string(),
                    (None, Some(m)) => format!("≥{m}"),
                    _ => "-".into(),
                };
                let gates: Vec<&str> = c.next_gates.iter().map(|g| g.as_str()).collect();
                writeln!(
                    stdout,
                    "{:<16} {:<18} {:<26} {:<14} {}",
                    c.cluster,
                    c.active_name.as_deref().unwrap_or("unreadable"),
                    promoted,
                    soak,
                    gates.join(", ")
                )?;
            }
            for c in &st {
                write!(stdout, "{}", cluster_details(c, now))?;
            }
        }
    }
    // A CA whose expiry cannot be known is a problem too (fail closed), reported on stderr.
    for p in st.iter().filter_map(|c| c.expiry_problem.as_ref()) {
        eprintln!("error: {p}");
    }
    // A pointer that cannot be read is an error, not a phase: name it, and exit 2.
    let problems: Vec<&String> = st.iter().filter_map(|c| c.problem.as_ref()).collect();
    for p in &problems {
        eprintln!("error: {p}");
    }
    Ok(
        if problems.is_empty() && st.iter().all(|c| c.expiry_problem.is_none()) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        },
    )
}

/// One cluster's block under the status table: the expiry of its active phase's CAs, the
/// start-by date, and the next commands with what they wait for.
fn cluster_details(c: &rootroll::promote::ClusterStatus, now: OffsetDateTime) -> String {
    use rootroll::verify::offline::expiry::{Level, left};
    use rootroll::verify::offline::validity::minute;
    let mut o = format!(
        "\n{} ({})\n",
        c.cluster,
        c.active_name.as_deref().unwrap_or("pointer unreadable")
    );
    if let Some(e) = &c.expiry {
        let labels: Vec<String> = e.cas.iter().map(|ca| ca.label()).collect();
        let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        o.push_str(&format!("  {:<width$}  {:<21} LEFT\n", "CA", "NOT AFTER"));
        for (ca, label) in e.cas.iter().zip(&labels) {
            o.push_str(&format!(
                "  {label:<width$}  {:<21} {}\n",
                minute(ca.not_after),
                left(now, ca.not_after)
            ));
        }
        let level = match e.level {
            Level::Ok => "ok".to_string(),
            Level::Warn => format!("WARNING: less than {}", e.thresholds.warn),
            Level::Fail => format!("FAIL: less than {}", e.thresholds.fail),
        };
        o.push_str(&format!(
            "  start the next rotation by {} ({} left, {level}): set by {}, which expires {}, minus {} (shortest rotation + workload TTL + margin)\n",
            minute(e.start_by),
            left(now, e.start_by),
            e.set_by,
            minute(e.not_after),
            e.lead_time
        ));
    }
    if let Some(n) = &c.next {
        if n.finished {
            o.push_str(&format!("  {}\n", rootroll::promote::FINISHED));
        }
        for (i, cmd) in n.commands.iter().enumerate() {
            let head = if i == 0 { "next:" } else { "then:" };
            o.push_str(&format!("  {head:<5} {cmd}\n"));
        }
        for w in &n.waits_for {
            o.push_str(&format!("  waits for {w}\n"));
        }
    }
    o
}

pub(super) fn cmd_explain(code: Option<&str>, format: Format) -> Result<ExitCode> {
    use rootroll::gates::{self, Code, Planes, Scope};
    let gates: Vec<&gates::Gate> = match code {
        None => gates::all().collect(),
        Some(c) => vec![c.parse::<Code>().map_err(anyhow::Error::msg)?.gate()],
    };
    let mut stdout = std::io::stdout().lock();
    if let Format::Json = format {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&gates)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let scope = |g: &gates::Gate| match g.scope {
        Scope::Offline => "offline",
        Scope::Live => "live",
    };
    if code.is_none() {
        for g in &gates {
            writeln!(
                stdout,
                "{:<26} {:<8} {:<8} {}",
                g.code,
                scope(g),
                format!("{:?}", g.severity).to_lowercase(),
                g.title
            )?;
        }
        writeln!(
            stdout,
            "\n{} gates; `rootroll explain CODE` for one",
            gates.len()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let g = gates[0];
    let phases = if g.phases.is_empty() {
        "every phase / fleet-wide".to_string()
    } else {
        g.phases
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let planes = match g.planes {
        Planes::All => "sidecar and ambient",
        Planes::Ambient => "ambient only",
    };
    writeln!(stdout, "{}: {}\n", g.code, g.title)?;
    writeln!(stdout, "  runs in      verify {}", scope(g))?;
    writeln!(stdout, "  phases       {phases}")?;
    writeln!(stdout, "  data planes  {planes}")?;
    writeln!(
        stdout,
        "  severity     {}",
        format!("{:?}", g.severity).to_lowercase()
    )?;
    writeln!(stdout, "  proves       {}", g.proves)?;
    writeln!(stdout, "  on failure   {}\n", g.hint)?;
    writeln!(stdout, "{}", g.doc)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn cmd_inspect(file: &Path, format: Format) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (summaries, skipped) = match pki::inspect_pem(&bytes) {
        Ok(found) => found,
        Err(pki::PkiError::NoCertificate) => bail!("{} holds no certificate", file.display()),
        Err(e @ pki::PkiError::Pem { .. }) => {
            return Err(anyhow::Error::new(e).context(format!("{} is not PEM", file.display())));
        }
        Err(e) => return Err(anyhow::Error::new(e).context(file.display().to_string())),
    };
    let mut stdout = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&summaries)?)?,
        Format::Text => {
            for (i, s) in summaries.iter().enumerate() {
                writeln!(stdout, "certificate {} of {}", i + 1, summaries.len())?;
                write!(stdout, "{}", s.to_text())?;
            }
        }
    }
    for s in skipped {
        eprintln!("note: {}: {s}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
