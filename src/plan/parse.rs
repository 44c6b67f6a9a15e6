//! Plan YAML → [`RawPlan`]. serde-saphyr parses; `serde_path_to_error` names the field the
//! parser was reading when it stopped (`spec.clusters[1].intermediates.new`); the parser's own
//! events say what was written where a mapping or a list was expected. A schema error thus
//! reads `spec.clusters[0]: expected a mapping here, found a list`, not only `expected a
//! mapping here`.

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

/// Most problems reported from one plan: past them, fixing the first ones is the next step.
const MAX_PROBLEMS: usize = 20;

/// Parses the plan's bytes. Reports every unknown and repeated key (serde stops at the first:
/// each is blanked out of a working copy, which keeps every other byte in place, and the copy
/// parsed again), then the first other error. A YAML syntax error or a wrong type ends the
/// parse: the parser recovers only at document boundaries, and a plan is one document.
pub(super) fn parse(bytes: &[u8]) -> Result<RawPlan, Vec<YamlProblem>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        vec![YamlProblem::new(
            Location::UNKNOWN,
            format!(
                "the file is not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )]
    })?;
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(vec![YamlProblem::new(
            Location::UNKNOWN,
            "the file is empty (or only comments)",
        )]);
    }
    let mut work = text.to_string();
    let mut problems = Vec::new();
    loop {
        match parse_once(&work) {
            Ok(raw) if problems.is_empty() => return Ok(raw),
            Ok(_) => return Err(problems),
            Err((problem, key)) => {
                let next = key
                    .and_then(|at| entry_bytes(&work, at))
                    .and_then(|range| blank(&work, range));
                problems.push(problem);
                match next {
                    Some(next) if problems.len() < MAX_PROBLEMS => work = next,
                    _ => return Err(problems),
                }
            }
        }
    }
}

/// One parse: the plan, or the first problem and, when it is about a key that can be left
/// out (unknown, repeated), that key's place.
fn parse_once(text: &str) -> Result<RawPlan, (YamlProblem, Option<Location>)> {
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
            return (YamlProblem::new(at, parser_message(&e)), None);
        };
        let key = matches!(
            original(&e),
            Error::SerdeUnknownField { .. } | Error::DuplicateMappingKey { .. }
        )
        .then_some(at);
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
        (YamlProblem::new(at, format!("{field}: {message}")), key)
    })
}

/// The bytes of the mapping entry whose key starts at `at`: the key, through the end of its
/// value.
fn entry_bytes(text: &str, at: Location) -> Option<std::ops::Range<usize>> {
    let mut events = Parser::new_from_str(text).map_while(Result::ok);
    let (_, key) = events.by_ref().find(|(e, span)| {
        matches!(e, Event::Scalar(..))
            && (span.start.line() as u64, span.start.col() as u64 + 1) == (at.line(), at.column())
    })?;
    let mut depth = 0usize;
    for (event, span) in events {
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
            Event::MappingEnd | Event::SequenceEnd => depth = depth.checked_sub(1)?,
            Event::Scalar(..) | Event::Alias(_) => {}
            _ => continue,
        }
        if depth == 0 {
            return Some(key.start.byte_offset()?..span.end.byte_offset()?);
        }
    }
    None
}

/// `text` with `range` blanked byte for byte (line breaks kept), so every later place keeps
/// its line and byte offset, and with it a comma that would be left dangling in a flow
/// mapping. `None` if `range` does not fall on character boundaries.
fn blank(text: &str, range: std::ops::Range<usize>) -> Option<String> {
    let (start, end) = (range.start, range.end);
    if start > end || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
        return None;
    }
    let mut bytes = text.as_bytes().to_vec();
    let after = end + text[end..].len() - text[end..].trim_start_matches([' ', '\t']).len();
    let comma = (bytes.get(after) == Some(&b',')).then_some(after);
    for i in (start..end).chain(comma) {
        if bytes[i] != b'\n' && bytes[i] != b'\r' {
            bytes[i] = b' ';
        }
    }
    String::from_utf8(bytes).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "apiVersion: rootroll.dev/v1alpha1
kind: RotationPlan
metadata: {extra: 1, name: x, more: [1, 2]}
spec:
  mesh:
    bogus:
      a: 1
      b: [2, 3]
    dataPlane: sidecar
    dataPlane: ambient
  timing: {workloadCertTTL: 24h,
           ttl: 3}
  roots: {current: {generate: {}}, new: {generate: {}}}
  clusters: []
";

    fn problems(text: &str) -> Vec<(u64, u64, String)> {
        match parse(text.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(p) => p
                .into_iter()
                .map(|p| (p.at.line(), p.at.column(), p.message))
                .collect(),
        }
    }

    #[test]
    fn every_unknown_and_repeated_key_is_reported() {
        let got = problems(PLAN);
        let places: Vec<(u64, u64)> = got.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(
            places,
            [(3, 12), (3, 31), (6, 5), (10, 5), (12, 12)],
            "{got:#?}"
        );
        assert!(got[3].2.contains("`dataPlane` is given twice"), "{got:#?}");
        // Without those keys the plan parses.
        let fixed = PLAN
            .replace("extra: 1, ", "")
            .replace(", more: [1, 2]", "")
            .replace("    bogus:\n      a: 1\n      b: [2, 3]\n", "")
            .replace("    dataPlane: ambient\n", "")
            .replace(",\n           ttl: 3", "");
        assert_eq!(problems(&fixed), Vec::new());
    }

    #[test]
    fn a_wrong_type_ends_the_list() {
        let text = PLAN.replace("clusters: []", "clusters: {}");
        let got = problems(&text);
        assert_eq!(got.len(), 6, "{got:#?}");
        assert_eq!(
            got[5].2,
            "spec.clusters: expected a list here, found a mapping"
        );
    }

    #[test]
    fn blanking_keeps_every_other_byte_in_place() {
        let text = "m: {a: 1, b: é, c: 3}\n";
        let start = text.find("b:").unwrap();
        let end = text.find(", c").unwrap();
        let out = blank(text, start..end).unwrap();
        assert_eq!(out.len(), text.len());
        // `b: é` (5 bytes) and the comma after it become spaces.
        assert_eq!(out, format!("m: {{a: 1,{}c: 3}}\n", " ".repeat(8)));
        assert_eq!(blank(text, start..start + 4), None, "mid-character");
    }
}
