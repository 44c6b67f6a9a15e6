//! Plan YAML → [`RawPlan`]. serde-saphyr parses; `serde_path_to_error` names the field the
//! parser was reading when it stopped (`spec.clusters[1].intermediates.new`); the parser's own
//! events say what was written where a mapping or a list was expected. A schema error thus
//! reads "spec.clusters[0]: expected a mapping here, found a list", not only "expected a
//! mapping here".

use serde_saphyr::granit_parser::{Event, Parser};
use serde_saphyr::{Error, Location};

use super::raw::RawPlan;

/// A plan that is not YAML, or not the plan schema: where, and what is wrong.
pub(super) struct YamlProblem {
    pub at: Location,
    pub message: String,
}

impl YamlProblem {
    fn new(at: Location, message: impl Into<String>) -> Self {
        Self {
            at,
            message: message.into(),
        }
    }
}

/// Parses the plan's bytes.
pub(super) fn parse(bytes: &[u8]) -> Result<RawPlan, YamlProblem> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        YamlProblem::new(
            Location::UNKNOWN,
            format!(
                "the file is not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(YamlProblem::new(
            Location::UNKNOWN,
            "the file is empty (or only comments)",
        ));
    }
    let mut path = None;
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize::<_, RawPlan>(de).map_err(|e| {
            path = Some(e.path().clone());
            e.into_inner()
        })
    });
    parsed.map_err(|e| {
        let at = e.location().unwrap_or(Location::UNKNOWN);
        let Some(field) = schema_error(&e, path.as_ref()) else {
            return YamlProblem::new(at, parser_message(&e));
        };
        let message = match original(&e) {
            Error::Unexpected { expected, .. } => {
                let what = match *expected {
                    "sequence start" => "a list",
                    "mapping start" => "a mapping",
                    "string scalar" => "a string",
                    "scalar" => "a single value",
                    other => other,
                };
                let found = node_at(text, at)
                    .map(|n| format!(", found {n}"))
                    .unwrap_or_default();
                format!("expected {what} here{found}")
            }
            Error::NullIntoString { .. } => "expected a string here, found nothing (null)".into(),
            _ => parser_message(&e),
        };
        YamlProblem::new(at, format!("{field}: {message}"))
    })
}

/// The error under alias and snippet wrappers.
fn original(e: &Error) -> &Error {
    match e.without_snippet() {
        Error::AliasError { error, .. } => original(error),
        other => other,
    }
}

/// For an error about the plan's schema (a type, a field), the field it is about: its path
/// from the top of the document, or "the top level". `None` for YAML syntax and safety-limit
/// errors, where the path the parser was on says nothing.
fn schema_error(e: &Error, path: Option<&serde_path_to_error::Path>) -> Option<String> {
    use serde_path_to_error::Segment;
    let about_a_key = match original(e) {
        Error::SerdeUnknownField { .. } | Error::DuplicateMappingKey { .. } => true,
        Error::Unexpected { .. }
        | Error::SerdeInvalidType { .. }
        | Error::SerdeInvalidValue { .. }
        | Error::SerdeInvalidLength { .. }
        | Error::SerdeMissingField { .. }
        | Error::SerdeUnknownVariant { .. }
        | Error::NullIntoString { .. }
        | Error::InvalidScalar { .. }
        | Error::TaggedScalarCannotDeserializeIntoString { .. } => false,
        _ => return None,
    };
    let mut segments: Vec<&Segment> = path?
        .iter()
        // `Spanned<T>` reads its value through an inner `value` field: not the user's.
        .filter(|s| !matches!(s, Segment::Map { key } if key == "value"))
        .filter(|s| !matches!(s, Segment::Unknown | Segment::Enum { .. }))
        .collect();
    if about_a_key && matches!(segments.last(), Some(Segment::Map { .. })) {
        // The unknown or repeated key itself ends the path; the message names it.
        if matches!(original(e), Error::SerdeUnknownField { .. }) {
            segments.pop();
        }
    }
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    Some(if out.is_empty() {
        "the top level".to_string()
    } else {
        out
    })
}

/// The parser's message without the place (the diagnostic carries it) and without parser
/// vocabulary.
fn parser_message(e: &Error) -> String {
    let msg = e.without_snippet().to_string();
    // The parser prefixes "line L column C: ".
    let msg = match msg.find(": ") {
        Some(i) if msg.starts_with("line ") => msg[i + 2..].to_string(),
        _ => msg,
    };
    tidy_parser_message(msg.lines().next().unwrap_or_default())
}

/// Drops the parser's own "at line L, column C" (the diagnostic carries the place) and
/// rewords messages that name parser internals.
fn tidy_parser_message(msg: &str) -> String {
    let mut msg = msg.trim().to_string();
    if let Some(i) = msg.rfind(" at line ")
        && msg[i..].contains(", column ")
    {
        msg.truncate(i);
    }
    if let Some(rest) = msg.strip_prefix("budget breached: ") {
        let limit = rest.split([' ', '{', '(']).next().unwrap_or(rest);
        return format!(
            "the YAML expands past a safety limit ({limit}): anchors and aliases that repeat content, or very deep nesting, are refused"
        );
    }
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        return format!("`{key}` is given twice in the same mapping");
    }
    if msg.starts_with("multiple YAML documents") {
        return "the file holds more than one YAML document (`---`); a plan is one document"
            .to_string();
    }
    msg.replace("expected sequence start", "expected a list here")
        .replace("expected mapping start", "expected a mapping here")
}

/// What the node starting at `at` is, in words ("a list", "the value `east`"), read from the
/// parser's events without expanding aliases.
fn node_at(text: &str, at: Location) -> Option<String> {
    if at == Location::UNKNOWN {
        return None;
    }
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        let start = (span.start.line() as u64, span.start.col() as u64 + 1);
        if start < (at.line(), at.column()) {
            continue;
        }
        if start > (at.line(), at.column()) {
            return None;
        }
        return match event {
            Event::SequenceStart(..) => Some("a list".into()),
            Event::MappingStart(..) => Some("a mapping".into()),
            Event::Alias(_) => Some("an alias (`*…`)".into()),
            Event::Scalar(v, ..) if v.is_empty() || v == "~" || v == "null" => {
                Some("nothing (null)".into())
            }
            Event::Scalar(v, ..) => {
                let mut shown: String = v.chars().take(40).collect();
                if shown.len() < v.len() {
                    shown.push('…');
                }
                Some(format!("the value `{}`", shown.escape_debug()))
            }
            _ => continue,
        };
    }
    None
}
