//! The YAML tree of a SOPS file, read from granit-parser's events, and a small writer.
//!
//! The reader builds the tree from granit-parser (the YAML 1.2 parser serde-saphyr uses), which
//! reports each scalar's style and every comment with its position. On top of it: one document
//! whose root is a mapping; anchors, aliases, tags, directives, non-scalar keys, duplicate keys,
//! several documents and nesting deeper than [`MAX_DEPTH`] are refused with an error. Comments
//! are placed as the hand-written parser this replaced placed them (see the test
//! `comments_land_where_they_were`). Measured in a debug build, a 7 KB rendered Secret parses in
//! about 1.2 ms here against 0.45 ms with that parser.
//!
//! The tree keeps mapping order, comments (as items, where they appeared) and whether each scalar
//! was written plain, because a plain scalar may mean a number, bool, null or timestamp to the Go
//! YAML library that sops uses.
//!
//! Parse errors carry a line number and a description only; they never quote a value, because
//! values may be plaintext secrets (a duplicate key is named: sops never encrypts keys).

use zeroize::Zeroizing;

use super::format::{Resolved, is_plain_safe, resolve_plain};

/// One YAML node.
pub(crate) enum Node {
    /// An empty value or an empty plain scalar.
    Null,
    Scalar(Scalar),
    Map(Vec<MapItem>),
    Seq(Vec<SeqItem>),
}

/// A scalar value. `text` is zeroized on drop because it may be plaintext secret material.
pub(crate) struct Scalar {
    pub(crate) text: Zeroizing<String>,
    /// The scalar was written plain (not quoted, not a block scalar), so its YAML type is decided
    /// by its text. When false, it is a string whatever its text.
    pub(crate) plain: bool,
}

impl Scalar {
    /// A scalar that is a string whatever its text.
    pub(crate) fn string(text: String) -> Self {
        Scalar {
            text: Zeroizing::new(text),
            plain: false,
        }
    }

    /// A plain scalar whose text is emitted verbatim (a number, bool, timestamp...).
    pub(crate) fn plain(text: String) -> Self {
        Scalar {
            text: Zeroizing::new(text),
            plain: true,
        }
    }
}

pub(crate) enum MapItem {
    Pair {
        key: String,
        value: Node,
        line: usize,
    },
    Comment {
        text: String,
        line: usize,
    },
}

pub(crate) enum SeqItem {
    Value(Node),
    Comment { text: String, line: usize },
}

/// The value of the first entry named `name`.
pub(crate) fn map_get<'a>(items: &'a [MapItem], name: &str) -> Option<&'a Node> {
    items.iter().find_map(|i| match i {
        MapItem::Pair { key, value, .. } if key == name => Some(value),
        _ => None,
    })
}

/// A parse failure: line (1-based) and what was wrong. Never contains a value.
pub(crate) struct ParseError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

type PResult<T> = Result<T, ParseError>;

/// The keys of one mapping so far. A key said twice is refused: readers disagree on which value
/// wins (kubectl and Flux take the last, sops refuses it at the top level and hashes both
/// elsewhere), so the file would mean different things to each.
#[derive(Default)]
struct Keys(std::collections::HashMap<String, usize>);

impl Keys {
    fn insert(&mut self, key: &str, line: usize) -> PResult<()> {
        match self.0.insert(key.to_string(), line) {
            None => Ok(()),
            Some(first) => Err(ParseError {
                line,
                message: format!(
                    "the mapping key {} is there twice (first at line {first}); each key must \
                     be written once",
                    super::shown(key)
                ),
            }),
        }
    }
}

/// Deepest nesting of mappings and sequences accepted. Real SOPS files nest a few levels;
/// the bound keeps the recursive walker and emitter far from the stack's end.
pub(crate) const MAX_DEPTH: usize = 128;

fn too_deep(line: usize) -> ParseError {
    ParseError {
        line,
        message: format!(
            "mappings and sequences nested deeper than {MAX_DEPTH} levels are refused (a \
             Kubernetes Secret nests a few)"
        ),
    }
}

/// A comment not yet placed: it goes before the next entry of the block it is in, or, when that
/// block ends first, to the end of the innermost block it is indented into.
struct Pending {
    col: usize,
    text: String,
    line: usize,
}

/// A collection being built.
enum Frame {
    Map {
        items: Vec<MapItem>,
        keys: Keys,
        /// The key whose value comes next, with its line.
        key: Option<(String, usize)>,
        /// Column of the first key (block mappings).
        indent: usize,
        flow: bool,
    },
    Seq {
        items: Vec<SeqItem>,
        /// Column of the first `-` (block sequences).
        indent: usize,
        flow: bool,
    },
}

impl Frame {
    fn flow(&self) -> bool {
        match self {
            Frame::Map { flow, .. } | Frame::Seq { flow, .. } => *flow,
        }
    }
}

struct Builder {
    stack: Vec<Frame>,
    pending: Vec<Pending>,
    root: Option<Vec<MapItem>>,
}

impl Builder {
    /// Comments seen since the last entry become items of the block about to get one.
    fn flush_pending(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { items, .. }) => {
                items.extend(self.pending.drain(..).map(|c| MapItem::Comment {
                    text: c.text,
                    line: c.line,
                }));
            }
            Some(Frame::Seq { items, .. }) => {
                items.extend(self.pending.drain(..).map(|c| SeqItem::Comment {
                    text: c.text,
                    line: c.line,
                }));
            }
            None => {}
        }
    }

    /// A node event at `line`: a key or a value of the open mapping, or an item of the open
    /// sequence. `node` is `None` for a collection start (its frame is pushed by the caller).
    fn node(&mut self, node: Option<Node>, line: usize) -> PResult<()> {
        let complex = || ParseError {
            line,
            message: "complex mapping keys (a mapping or list as a key) are not supported"
                .to_string(),
        };
        match self.stack.last_mut() {
            Some(Frame::Map {
                key: key @ None, ..
            }) => {
                let text = match node {
                    Some(Node::Scalar(s)) => s.text.to_string(),
                    Some(Node::Null) => String::new(),
                    _ => return Err(complex()),
                };
                *key = Some((text, line));
                self.flush_pending();
            }
            Some(Frame::Map { .. }) => {
                if let Some(n) = node {
                    self.attach(n)?;
                }
            }
            Some(Frame::Seq { .. }) => {
                self.flush_pending();
                if let Some(n) = node {
                    self.attach(n)?;
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Puts a finished node where it belongs: the value of the open mapping's key, or the next
    /// item of the open sequence.
    fn attach(&mut self, node: Node) -> PResult<()> {
        match self.stack.last_mut() {
            Some(Frame::Map {
                items, keys, key, ..
            }) => {
                let (k, line) = key.take().unwrap_or_default();
                keys.insert(&k, line)?;
                items.push(MapItem::Pair {
                    key: k,
                    value: node,
                    line,
                });
            }
            Some(Frame::Seq { items, .. }) => items.push(SeqItem::Value(node)),
            None => {}
        }
        Ok(())
    }

    /// The open collection ends: comments indented into it stay in it, and it becomes a node
    /// of its parent (or the document's root mapping).
    fn end(&mut self) -> PResult<()> {
        let Some(mut frame) = self.stack.pop() else {
            return Ok(());
        };
        if !frame.flow() {
            let indent = match &frame {
                Frame::Map { indent, .. } | Frame::Seq { indent, .. } => *indent,
            };
            let n = self.pending.iter().take_while(|c| c.col >= indent).count();
            let closing = self.pending.drain(..n);
            match &mut frame {
                Frame::Map { items, .. } => items.extend(closing.map(|c| MapItem::Comment {
                    text: c.text,
                    line: c.line,
                })),
                Frame::Seq { items, .. } => items.extend(closing.map(|c| SeqItem::Comment {
                    text: c.text,
                    line: c.line,
                })),
            }
        }
        let node = match frame {
            Frame::Map { items, .. } => Node::Map(items),
            Frame::Seq { items, .. } => Node::Seq(items),
        };
        if self.stack.is_empty() {
            let Node::Map(mut items) = node else {
                return Ok(());
            };
            items.extend(self.pending.drain(..).map(|c| MapItem::Comment {
                text: c.text,
                line: c.line,
            }));
            self.root = Some(items);
            return Ok(());
        }
        self.attach(node)
    }
}

/// Parse a single YAML document whose root is a mapping, from granit-parser's events.
pub(crate) fn parse_document(src: &str) -> PResult<Vec<MapItem>> {
    use granit_parser::{ErrorKind, Event, ScalarStyle, StructureStyle};

    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let options = granit_parser::options! {
        flow_nesting_limit: MAX_DEPTH,
        block_nesting_limit: MAX_DEPTH,
    };
    let mut b = Builder {
        stack: Vec::new(),
        pending: Vec::new(),
        root: None,
    };
    let mut documents = 0;
    let mut last_line = 1;
    for event in granit_parser::Parser::new_from_str_with_options(src, options) {
        let (event, span) = event.map_err(|e| {
            if matches!(e.kind(), ErrorKind::RecursionLimitExceeded) {
                too_deep(e.marker().line())
            } else {
                ParseError {
                    line: e.marker().line(),
                    message: e.kind().to_string(),
                }
            }
        })?;
        let line = span.start.line();
        last_line = line;
        let err = |message: &str| ParseError {
            line,
            message: message.to_string(),
        };
        let anchors = || {
            err(
                "yaml anchors (&name) and aliases (*name) are refused in SOPS files: rootroll \
                 never writes them, and an alias lets one value stand for many",
            )
        };
        let props = |anchor: usize, tagged: bool| -> PResult<()> {
            if anchor != 0 {
                return Err(anchors());
            }
            if tagged {
                return Err(err(
                    "yaml tags (!tag) are refused in SOPS files: rootroll never writes them",
                ));
            }
            Ok(())
        };
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_, version) => {
                if version.is_some() {
                    return Err(err("yaml directives are not supported"));
                }
                documents += 1;
                if documents > 1 {
                    return Err(err("multiple yaml documents are not supported"));
                }
            }
            Event::Comment(text, _) => {
                if !b.stack.iter().any(Frame::flow) {
                    b.pending.push(Pending {
                        col: span.start.col(),
                        text: text.into_owned(),
                        line,
                    });
                }
            }
            Event::Alias(_) | Event::UnresolvedAlias(_) => return Err(anchors()),
            Event::Scalar(value, style, anchor, tag) => {
                props(anchor, tag.is_some())?;
                if b.stack.is_empty() {
                    return Err(err("the document root is not a mapping"));
                }
                let node = match style {
                    ScalarStyle::Plain if span.start.index() == span.end.index() => Node::Null,
                    ScalarStyle::Plain => Node::Scalar(Scalar::plain(value.into_owned())),
                    _ => Node::Scalar(Scalar::string(value.into_owned())),
                };
                b.node(Some(node), line)?;
            }
            Event::MappingStart(style, anchor, ref tag)
            | Event::SequenceStart(style, anchor, ref tag) => {
                props(anchor, tag.is_some())?;
                let is_map = matches!(event, Event::MappingStart(..));
                if b.stack.is_empty() && (!is_map || b.root.is_some()) {
                    return Err(err("the document root is not a mapping"));
                }
                if b.stack.len() >= MAX_DEPTH {
                    return Err(too_deep(line));
                }
                b.node(None, line)?;
                let flow = style == StructureStyle::Flow;
                let indent = span.start.col();
                b.stack.push(if is_map {
                    Frame::Map {
                        items: Vec::new(),
                        keys: Keys::default(),
                        key: None,
                        indent,
                        flow,
                    }
                } else {
                    Frame::Seq {
                        items: Vec::new(),
                        indent,
                        flow,
                    }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => b.end()?,
            Event::Anchor(..) => {}
            _ => return Err(err("unexpected yaml event")),
        }
    }
    b.root.ok_or(ParseError {
        line: last_line,
        message: "the document is empty; expected a mapping".to_string(),
    })
}

// ------------------------------------------------------------------------------------------------
// Emitter

/// Emit a root mapping as block YAML with `step` spaces of indentation, sequences indented under
/// their key (as yaml.v3 does with `SetIndent(4)`).
pub(crate) fn emit_document(items: &[MapItem], step: usize) -> String {
    let mut out = String::new();
    emit_map(&mut out, items, 0, step, step, None);
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Emit mapping items at column `col`; nested nodes go at column `child_col`. When
/// `first_prefix` is given, the first line is written right after it (a `- ` of an enclosing
/// sequence) instead of being indented.
fn emit_map(
    out: &mut String,
    items: &[MapItem],
    col: usize,
    child_col: usize,
    step: usize,
    first_prefix: Option<&str>,
) {
    let mut first = true;
    for item in items {
        if first {
            if let Some(p) = first_prefix {
                out.push_str(p);
            } else {
                pad(out, col);
            }
        } else {
            pad(out, col);
        }
        first = false;
        match item {
            MapItem::Comment { text, .. } => {
                out.push('#');
                out.push_str(text);
                out.push('\n');
            }
            MapItem::Pair { key, value, .. } => {
                emit_key(out, key);
                out.push(':');
                emit_value(out, value, child_col, step);
            }
        }
    }
}

fn emit_key(out: &mut String, key: &str) {
    if is_plain_safe(key) {
        out.push_str(key);
    } else {
        double_quote(out, key);
    }
}

fn has_pairs(items: &[MapItem]) -> bool {
    items.iter().any(|i| matches!(i, MapItem::Pair { .. }))
}

fn has_values(items: &[SeqItem]) -> bool {
    items.iter().any(|i| matches!(i, SeqItem::Value(_)))
}

/// Emit the value of a mapping entry (the `:` was just written); nested lines go at `col`.
fn emit_value(out: &mut String, value: &Node, col: usize, step: usize) {
    match value {
        Node::Null => out.push('\n'),
        Node::Scalar(s) => {
            out.push(' ');
            emit_scalar(out, s, col);
        }
        Node::Map(items) if !has_pairs(items) => out.push_str(" {}\n"),
        Node::Seq(items) if !has_values(items) => out.push_str(" []\n"),
        Node::Map(items) => {
            out.push('\n');
            emit_map(out, items, col, col + step, step, None);
        }
        Node::Seq(items) => {
            out.push('\n');
            emit_seq(out, items, col, step, None);
        }
    }
}

fn emit_seq(
    out: &mut String,
    items: &[SeqItem],
    col: usize,
    step: usize,
    first_prefix: Option<&str>,
) {
    let mut first = true;
    for item in items {
        if first {
            if let Some(p) = first_prefix {
                out.push_str(p);
            } else {
                pad(out, col);
            }
        } else {
            pad(out, col);
        }
        first = false;
        match item {
            SeqItem::Comment { text, .. } => {
                out.push('#');
                out.push_str(text);
                out.push('\n');
            }
            SeqItem::Value(Node::Null) => out.push_str("-\n"),
            SeqItem::Value(Node::Scalar(s)) => {
                out.push_str("- ");
                emit_scalar(out, s, col + step.max(2));
            }
            SeqItem::Value(Node::Map(m)) if !has_pairs(m) => out.push_str("- {}\n"),
            SeqItem::Value(Node::Seq(s)) if !has_values(s) => out.push_str("- []\n"),
            // Like yaml.v3: the mapping's keys follow the dash, and what nests under them is
            // indented from the dash's column.
            SeqItem::Value(Node::Map(m)) => {
                emit_map(out, m, col + 2, (col + step).max(col + 4), step, Some("- "));
            }
            SeqItem::Value(Node::Seq(s)) => emit_seq(out, s, col + 2, step, Some("- ")),
        }
    }
}

/// Emit a scalar (after `key: ` or `- `) followed by a line break. Block scalar content goes at
/// column `content_col`.
fn emit_scalar(out: &mut String, s: &Scalar, content_col: usize) {
    let text: &str = &s.text;
    if s.plain && !matches!(resolve_plain(text), Resolved::Str) {
        out.push_str(text);
        out.push('\n');
        return;
    }
    if is_plain_safe(text) {
        out.push_str(text);
        out.push('\n');
        return;
    }
    if let Some(chomp) = literal_block_style(text) {
        out.push('|');
        out.push_str(chomp);
        out.push('\n');
        let body = text.trim_end_matches('\n');
        for line in body.split('\n') {
            if !line.is_empty() {
                pad(out, content_col);
                out.push_str(line);
            }
            out.push('\n');
        }
        if chomp == "+" {
            let extra = text.len() - body.len() - 1;
            out.extend(std::iter::repeat_n('\n', extra));
        }
        return;
    }
    double_quote(out, text);
    out.push('\n');
}

/// Whether a multi-line string can be written as a literal block scalar, and with which chomping
/// indicator.
fn literal_block_style(text: &str) -> Option<&'static str> {
    if !text.contains('\n') {
        return None;
    }
    if text
        .chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || is_special_unicode(c))
    {
        return None;
    }
    let body = text.trim_end_matches('\n');
    let first = body.split('\n').find(|l| !l.is_empty())?;
    if first.starts_with([' ', '\t']) {
        return None;
    }
    // Like libyaml, avoid block style when a line ends in whitespace (this includes lines of
    // only whitespace): readers differ on whether such lines are content or chomped.
    if body.split('\n').any(|l| l.ends_with([' ', '\t'])) {
        return None;
    }
    match text.len() - body.len() {
        0 => Some("-"),
        1 => Some(""),
        _ => Some("+"),
    }
}

pub(crate) fn is_special_unicode(c: char) -> bool {
    matches!(
        c,
        '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
    )
}

/// Write `s` as a YAML double-quoted scalar.
pub(crate) fn double_quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            c if c.is_control() || is_special_unicode(c) => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Vec<MapItem> {
        match parse_document(s) {
            Ok(v) => v,
            Err(e) => panic!("parse failed at line {}: {}", e.line, e.message),
        }
    }

    fn get<'a>(items: &'a [MapItem], k: &str) -> &'a Node {
        for i in items {
            if let MapItem::Pair { key, value, .. } = i
                && key == k
            {
                return value;
            }
        }
        panic!("no key {k}");
    }

    fn text(n: &Node) -> &str {
        match n {
            Node::Scalar(s) => &s.text,
            _ => panic!("not a scalar"),
        }
    }

    #[test]
    fn parses_sops_like_output() {
        let src = "apiVersion: v1\ndata:\n    a: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n    b: \"\"\nsops:\n    kms: []\n    age:\n        - recipient: age1abc\n          enc: |\n            -----BEGIN AGE ENCRYPTED FILE-----\n            QUJD\n            -----END AGE ENCRYPTED FILE-----\n    lastmodified: \"2026-01-01T00:00:00Z\"\n    version: 3.11.0\n";
        let root = parse(src);
        assert_eq!(text(get(&root, "apiVersion")), "v1");
        let Node::Map(sops) = get(&root, "sops") else {
            panic!()
        };
        let Node::Seq(age) = get(sops, "age") else {
            panic!()
        };
        let SeqItem::Value(Node::Map(entry)) = &age[0] else {
            panic!()
        };
        assert_eq!(
            text(get(entry, "enc")),
            "-----BEGIN AGE ENCRYPTED FILE-----\nQUJD\n-----END AGE ENCRYPTED FILE-----\n"
        );
        assert!(matches!(get(sops, "kms"), Node::Seq(v) if v.is_empty()));
        let Node::Map(data) = get(&root, "data") else {
            panic!()
        };
        assert_eq!(text(get(data, "b")), "");
    }

    #[test]
    fn scalars_and_folding() {
        let src = "a: 'it''s'\nb: \"x\\ty\\u00e9\"\nc: plain\n  continued\nd: |-\n  l1\n\n   l3\ne: >\n  f1\n  f2\n\n  f3\nf: \"q1\n  q2\"\ng:\nh: -1\nseq:\n- x\n- y: 1\n  z: 2\n";
        let root = parse(src);
        assert_eq!(text(get(&root, "a")), "it's");
        assert_eq!(text(get(&root, "b")), "x\tyé");
        assert_eq!(text(get(&root, "c")), "plain continued");
        assert_eq!(text(get(&root, "d")), "l1\n\n l3");
        assert_eq!(text(get(&root, "e")), "f1 f2\nf3\n");
        assert_eq!(text(get(&root, "f")), "q1 q2");
        assert!(matches!(get(&root, "g"), Node::Null));
        assert_eq!(text(get(&root, "h")), "-1");
        let Node::Seq(s) = get(&root, "seq") else {
            panic!()
        };
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn refuses_unsupported() {
        for src in [
            "a: &x 1\n",
            "a: *x\n",
            "a: !!str 1\n",
            "a: 1\n---\nb: 2\n",
            "- a\n",
            "? [a, b]\n: c\n",
            "a: b\na: c\n",
            "a: {b: 1, b: 2}\n",
            "",
            "# only a comment\n",
        ] {
            assert!(parse_document(src).is_err(), "{src:?} should fail");
        }
        // An explicit key that is a scalar is an ordinary key (yaml.v3 reads it so too).
        assert_eq!(text(get(&parse("? a\n: b\n"), "a")), "b");
    }

    /// Where comments land (the decrypt walk decrypts encrypted comments in place, with their
    /// enclosing mapping's path): before the next entry of the block they are in, or at the end
    /// of the innermost block they are indented into; none inside flow collections. The same
    /// placement as the hand-written parser this replaced.
    #[test]
    fn comments_land_where_they_were() {
        let src = "# top\nkind: Secret # k\ndata:\n  # in data\n  a: x # after a\n  b:\n    - 1\n    # in seq\n    - 2\n      # deeper\n  # end of data\n# root level\nc: [1, # in flow\n  2]\nd: |\n  # not a comment\ne:\nf: {g: h} # after flow\n# last\n";
        let want = "# top\nkind: Secret\n# k\ndata:\n  # in data\n  a: x\n  # after a\n  b:\n    - 1\n    # in seq\n    - 2\n    # deeper\n  # end of data\n# root level\nc:\n  - 1\n  - 2\nd: |\n  # not a comment\ne:\nf:\n  g: h\n# after flow\n# last\n";
        assert_eq!(emit_document(&parse(src), 2), want);
    }

    #[test]
    fn nesting_is_bounded_with_a_clear_error() {
        for src in [
            format!("a: {}{}\n", "[".repeat(5000), "]".repeat(5000)),
            format!(
                "a:\n{}",
                (1..300)
                    .map(|i| format!("{}-\n", " ".repeat(i)))
                    .collect::<String>()
            ),
        ] {
            match parse_document(&src) {
                Ok(_) => panic!("deep nesting accepted"),
                Err(e) => assert!(
                    e.message.contains("nested deeper than 128"),
                    "{}",
                    e.message
                ),
            }
        }
    }

    #[test]
    fn emit_roundtrip() {
        let strings = [
            "",
            "true",
            "2",
            "a: b",
            "x #y",
            " lead",
            "trail ",
            "multi\nline\n",
            "multi\nno-nl",
            "three\n\n\n",
            "\n\nlead-nl",
            "  indented\nsecond",
            "{{ x }}",
            "é ü 日本",
            "tab\there",
            "quote\"s and 'single'",
            "back\\slash",
            "-dash",
            "null",
            "~",
            "3.11.0",
            "2024-01-01",
            "line\n  \nwith-space-line",
            "ctrl\u{1}x",
            "\u{2028}",
        ];
        let items: Vec<MapItem> = strings
            .iter()
            .enumerate()
            .map(|(i, s)| MapItem::Pair {
                key: format!("k{i}"),
                value: Node::Scalar(Scalar::string((*s).to_string())),
                line: 0,
            })
            .collect();
        for step in [2, 4] {
            let out = emit_document(&items, step);
            let back = parse(&out);
            for (i, s) in strings.iter().enumerate() {
                let n = get(&back, &format!("k{i}"));
                let Node::Scalar(sc) = n else {
                    panic!("k{i} not scalar in {out}")
                };
                assert_eq!(&*sc.text, *s, "k{i} in\n{out}");
                assert!(
                    !sc.plain || matches!(resolve_plain(&sc.text), Resolved::Str),
                    "k{i} would not read back as a string:\n{out}"
                );
            }
        }
    }
}
