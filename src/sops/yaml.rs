//! A small YAML reader and writer for the subset that SOPS-encrypted Kubernetes manifests use.
//!
//! Supported on input: one document (optional `---` / `...` markers), block mappings, block
//! sequences (also at the same indentation as their key), flow collections, plain, single- and
//! double-quoted scalars (multi-line too), literal and folded block scalars with chomping and
//! indentation indicators, and comments. Anchors, aliases, tags, directives, complex keys,
//! duplicate keys and multiple documents are refused with an error.
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

/// A parse failure: line (1-based) and what was wrong. Never contains input text.
pub(crate) struct ParseError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

type PResult<T> = Result<T, ParseError>;

struct Pending {
    col: usize,
    text: String,
    line: usize,
}

struct Parser<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
    pending: Vec<Pending>,
    /// Nodes open around the current position (bounded by [`MAX_DEPTH`]).
    depth: usize,
}

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
/// the bound keeps the recursive parser, walker and emitter far from the stack's end.
pub(crate) const MAX_DEPTH: usize = 128;

#[derive(Clone, Copy)]
struct Mark {
    pos: usize,
    line: usize,
    line_start: usize,
}

/// Parse a single YAML document whose root is a mapping.
pub(crate) fn parse_document(src: &str) -> PResult<Vec<MapItem>> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut p = Parser {
        src,
        b: src.as_bytes(),
        pos: 0,
        line: 1,
        line_start: 0,
        pending: Vec::new(),
        depth: 0,
    };
    p.document()
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn is_break(c: Option<u8>) -> bool {
    matches!(c, None | Some(b'\n') | Some(b'\r'))
}

fn is_sep(c: Option<u8>) -> bool {
    matches!(
        c,
        None | Some(b' ') | Some(b'\t') | Some(b'\n') | Some(b'\r')
    )
}

impl<'a> Parser<'a> {
    fn err<T>(&self, message: impl Into<String>) -> PResult<T> {
        Err(ParseError {
            line: self.line,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.b.get(self.pos + n).copied()
    }

    fn col(&self) -> usize {
        self.pos - self.line_start
    }

    fn eof(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn mark(&self) -> Mark {
        Mark {
            pos: self.pos,
            line: self.line,
            line_start: self.line_start,
        }
    }

    fn reset(&mut self, m: Mark) {
        self.pos = m.pos;
        self.line = m.line;
        self.line_start = m.line_start;
    }

    fn skip_blanks(&mut self) {
        while let Some(c) = self.peek() {
            if is_blank(c) {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Consume one line break (`\n` or `\r\n`); returns false if not at a break.
    fn eat_break(&mut self) -> bool {
        match self.peek() {
            Some(b'\n') => {
                self.pos += 1;
            }
            Some(b'\r') if self.peek_at(1) == Some(b'\n') => {
                self.pos += 2;
            }
            Some(b'\r') => {
                self.pos += 1;
            }
            _ => return false,
        }
        self.line += 1;
        self.line_start = self.pos;
        true
    }

    /// The rest of the current line, from pos, without the line break.
    fn rest_of_line(&self) -> &'a str {
        let start = self.pos;
        let mut end = start;
        while end < self.b.len() && self.b[end] != b'\n' && self.b[end] != b'\r' {
            end += 1;
        }
        &self.src[start..end]
    }

    /// At a `#`: record the comment as pending and move to the end of the line.
    fn take_comment(&mut self) {
        let col = self.col();
        let rest = self.rest_of_line();
        self.pending.push(Pending {
            col,
            text: rest[1..].to_string(),
            line: self.line,
        });
        self.pos += rest.len();
    }

    /// After a value on a line: allow blanks and a comment, then require a line break or EOF.
    fn end_line(&mut self) -> PResult<()> {
        self.skip_blanks();
        if self.peek() == Some(b'#') {
            self.take_comment();
        }
        if self.eof() || self.eat_break() {
            Ok(())
        } else {
            self.err("unexpected text after a value")
        }
    }

    /// From the start of a line: skip blank and comment-only lines (recording comments) and stop
    /// at the first content character of the next content line, or EOF.
    fn skip_to_content(&mut self) -> PResult<()> {
        loop {
            if self.eof() {
                return Ok(());
            }
            let mut i = self.pos;
            while i < self.b.len() && self.b[i] == b' ' {
                i += 1;
            }
            // Tabs after the indentation are allowed only on blank or comment lines.
            let mut j = i;
            while j < self.b.len() && is_blank(self.b[j]) {
                j += 1;
            }
            match self.b.get(j).copied() {
                None => {
                    self.pos = j;
                    return Ok(());
                }
                Some(b'\n') | Some(b'\r') => {
                    self.pos = j;
                    self.eat_break();
                }
                Some(b'#') => {
                    self.pos = j;
                    self.take_comment();
                    if !self.eat_break() {
                        return Ok(());
                    }
                }
                Some(_) => {
                    if j != i {
                        return self.err("tab characters are not allowed in indentation");
                    }
                    self.pos = i;
                    return Ok(());
                }
            }
        }
    }

    fn at_document_marker(&self, marker: &[u8]) -> bool {
        self.col() == 0
            && self.b[self.pos..].starts_with(marker)
            && is_sep(self.b.get(self.pos + 3).copied())
    }

    fn document(&mut self) -> PResult<Vec<MapItem>> {
        self.skip_to_content()?;
        if self.peek() == Some(b'%') && self.col() == 0 {
            return self.err("yaml directives are not supported");
        }
        if !self.eof() && self.at_document_marker(b"---") {
            self.pos += 3;
            self.skip_blanks();
            if self.peek() == Some(b'#') {
                self.take_comment();
            }
            if !self.eof() && !self.eat_break() {
                return self.err("content on the `---` line is not supported");
            }
            self.skip_to_content()?;
        }
        if self.eof() || self.at_document_marker(b"...") {
            return self.err("the document is empty; expected a mapping");
        }
        let root = self.block_node(-1)?;
        let mut items = match root {
            Node::Map(items) => items,
            _ => return self.err("the document root is not a mapping"),
        };
        if !self.eof() && self.at_document_marker(b"...") {
            self.pos += 3;
            self.end_line()?;
            self.skip_to_content()?;
        }
        if !self.eof() {
            if self.at_document_marker(b"---") {
                return self.err("multiple yaml documents are not supported");
            }
            return self.err("unexpected content after the document");
        }
        for c in self.pending.drain(..) {
            items.push(MapItem::Comment {
                text: c.text,
                line: c.line,
            });
        }
        Ok(items)
    }

    /// Parse a block node at the current content position, which is inside a parent whose
    /// indentation is `parent` (-1 for the document root).
    /// Counts one more open node; refuses nesting deeper than [`MAX_DEPTH`].
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.depth >= MAX_DEPTH {
            return self.err(format!(
                "mappings and sequences nested deeper than {MAX_DEPTH} levels are refused \
                 (a Kubernetes Secret nests a few)"
            ));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn block_node(&mut self, parent: isize) -> PResult<Node> {
        self.nested(|p| p.block_node_inner(parent))
    }

    fn block_node_inner(&mut self, parent: isize) -> PResult<Node> {
        let col = self.col();
        match self.peek() {
            Some(b'-') if is_sep(self.peek_at(1)) => self.block_seq(col),
            Some(b'[') | Some(b'{') => {
                let node = self.flow_node()?;
                self.end_line()?;
                self.skip_to_content()?;
                Ok(node)
            }
            Some(b'|') | Some(b'>') => {
                let s = self.block_scalar(parent)?;
                self.skip_to_content()?;
                Ok(Node::Scalar(Scalar::string(s)))
            }
            Some(b'&') | Some(b'*') | Some(b'!') => self.unsupported_node_props(),
            Some(b'?') if is_sep(self.peek_at(1)) => {
                self.err("complex mapping keys are not supported")
            }
            _ => {
                if self.line_has_key()? {
                    self.block_map(col)
                } else {
                    let node = self.inline_scalar(parent)?;
                    self.skip_to_content()?;
                    Ok(node)
                }
            }
        }
    }

    fn unsupported_node_props<T>(&self) -> PResult<T> {
        match self.peek() {
            Some(b'&') | Some(b'*') => self.err(
                "yaml anchors (&name) and aliases (*name) are refused in SOPS files: rootroll \
                 never writes them, and an alias lets one value stand for many",
            ),
            _ => self.err("yaml tags (!tag) are refused in SOPS files: rootroll never writes them"),
        }
    }

    /// Does the current line start with a mapping key (`key:` followed by a separator)?
    fn line_has_key(&mut self) -> PResult<bool> {
        let m = self.mark();
        let result = match self.peek() {
            Some(b'"') | Some(b'\'') => {
                let r = self.quoted();
                match r {
                    Ok(_) => {
                        let same_line = self.line == m.line;
                        self.skip_blanks();
                        same_line && self.peek() == Some(b':') && is_sep(self.peek_at(1))
                    }
                    Err(e) => {
                        self.reset(m);
                        return Err(e);
                    }
                }
            }
            _ => self.find_plain_key_colon().is_some(),
        };
        self.reset(m);
        Ok(result)
    }

    /// For a plain key starting at pos: the byte index of its `:` on this line, if any.
    fn find_plain_key_colon(&self) -> Option<usize> {
        let mut i = self.pos;
        while i < self.b.len() {
            match self.b[i] {
                b'\n' | b'\r' => return None,
                b'#' if i > self.pos && is_blank(self.b[i - 1]) => return None,
                b':' if is_sep(self.b.get(i + 1).copied()) => return Some(i),
                _ => i += 1,
            }
        }
        None
    }

    fn block_map(&mut self, indent: usize) -> PResult<Node> {
        let mut items = Vec::new();
        let mut keys = Keys::default();
        loop {
            // Comments seen since the previous entry come before this one.
            for c in self.pending.drain(..) {
                items.push(MapItem::Comment {
                    text: c.text,
                    line: c.line,
                });
            }
            let line = self.line;
            let key = self.map_key()?;
            // At the `:`.
            self.pos += 1;
            self.skip_blanks();
            let value = match self.peek() {
                None | Some(b'\n') | Some(b'\r') | Some(b'#') => {
                    if self.peek() == Some(b'#') {
                        self.take_comment();
                    }
                    self.eat_break();
                    self.skip_to_content()?;
                    if self.eof() {
                        Node::Null
                    } else {
                        let c = self.col();
                        if c > indent {
                            self.block_node(indent as isize)?
                        } else if c == indent
                            && self.peek() == Some(b'-')
                            && is_sep(self.peek_at(1))
                        {
                            self.block_seq(c)?
                        } else {
                            Node::Null
                        }
                    }
                }
                Some(b'|') | Some(b'>') => {
                    let s = self.block_scalar(indent as isize)?;
                    self.skip_to_content()?;
                    Node::Scalar(Scalar::string(s))
                }
                Some(b'[') | Some(b'{') => {
                    let n = self.flow_node()?;
                    self.end_line()?;
                    self.skip_to_content()?;
                    n
                }
                Some(b'&') | Some(b'*') | Some(b'!') => return self.unsupported_node_props(),
                Some(b'-') if is_sep(self.peek_at(1)) => {
                    return self.err("a block sequence cannot start on the same line as its key");
                }
                _ => {
                    let n = self.inline_scalar(indent as isize)?;
                    self.skip_to_content()?;
                    n
                }
            };
            keys.insert(&key, line)?;
            items.push(MapItem::Pair { key, value, line });
            if self.eof() || self.at_document_marker(b"...") || self.at_document_marker(b"---") {
                break;
            }
            let c = self.col();
            if c < indent {
                break;
            }
            if c > indent {
                return self.err("unexpected indentation");
            }
            if self.peek() == Some(b'-') && is_sep(self.peek_at(1)) {
                return self.err("a sequence item where a mapping key was expected");
            }
        }
        self.close_block(
            indent,
            |text, line| MapItem::Comment { text, line },
            &mut items,
        );
        Ok(Node::Map(items))
    }

    /// At the end of a block at `indent`: pending comments indented at least as much belong to it.
    fn close_block<T>(
        &mut self,
        indent: usize,
        mk: impl Fn(String, usize) -> T,
        items: &mut Vec<T>,
    ) {
        let n = self.pending.iter().take_while(|c| c.col >= indent).count();
        for c in self.pending.drain(..n) {
            items.push(mk(c.text, c.line));
        }
    }

    fn map_key(&mut self) -> PResult<String> {
        match self.peek() {
            Some(b'"') | Some(b'\'') => {
                let start_line = self.line;
                let k = self.quoted()?;
                if self.line != start_line {
                    return self.err("multi-line mapping keys are not supported");
                }
                self.skip_blanks();
                if self.peek() != Some(b':') || !is_sep(self.peek_at(1)) {
                    return self.err("expected `:` after a mapping key");
                }
                Ok(k.to_string())
            }
            Some(c) if b"[]{}&*!|>%@`".contains(&c) => {
                self.err("mapping keys starting with a yaml indicator are not supported")
            }
            Some(b'?') if is_sep(self.peek_at(1)) => {
                self.err("complex mapping keys are not supported")
            }
            _ => match self.find_plain_key_colon() {
                Some(i) => {
                    let k = self.src[self.pos..i]
                        .trim_end_matches([' ', '\t'])
                        .to_string();
                    self.pos = i;
                    Ok(k)
                }
                None => self.err("expected a mapping key followed by `:`"),
            },
        }
    }

    fn block_seq(&mut self, indent: usize) -> PResult<Node> {
        let mut items = Vec::new();
        loop {
            for c in self.pending.drain(..) {
                items.push(SeqItem::Comment {
                    text: c.text,
                    line: c.line,
                });
            }
            // At the `-`.
            self.pos += 1;
            self.skip_blanks();
            let value = match self.peek() {
                None | Some(b'\n') | Some(b'\r') | Some(b'#') => {
                    if self.peek() == Some(b'#') {
                        self.take_comment();
                    }
                    self.eat_break();
                    self.skip_to_content()?;
                    if !self.eof() && self.col() > indent {
                        self.block_node(indent as isize)?
                    } else {
                        Node::Null
                    }
                }
                _ => self.block_node(indent as isize)?,
            };
            items.push(SeqItem::Value(value));
            if self.eof() || self.at_document_marker(b"...") || self.at_document_marker(b"---") {
                break;
            }
            let c = self.col();
            if c < indent {
                break;
            }
            if c == indent && self.peek() == Some(b'-') && is_sep(self.peek_at(1)) {
                continue;
            }
            if c == indent {
                // A mapping key at the same indentation ends a sequence used as a mapping value.
                break;
            }
            return self.err("unexpected indentation in a sequence");
        }
        self.close_block(
            indent,
            |text, line| SeqItem::Comment { text, line },
            &mut items,
        );
        Ok(Node::Seq(items))
    }

    /// A scalar that starts on the current line (plain or quoted), ending its line.
    fn inline_scalar(&mut self, parent: isize) -> PResult<Node> {
        match self.peek() {
            Some(b'"') | Some(b'\'') => {
                let s = self.quoted()?;
                self.end_line()?;
                Ok(Node::Scalar(Scalar {
                    text: s,
                    plain: false,
                }))
            }
            _ => {
                let s = self.plain_multiline(parent)?;
                if s.is_empty() {
                    Ok(Node::Null)
                } else {
                    Ok(Node::Scalar(Scalar {
                        text: s,
                        plain: true,
                    }))
                }
            }
        }
    }

    /// One line segment of a plain scalar in block context. Stops at a line break or a comment.
    /// Returns the segment and whether a comment ended it.
    fn plain_segment(&mut self) -> PResult<(&'a str, bool)> {
        let start = self.pos;
        let mut i = start;
        let mut comment = false;
        while i < self.b.len() {
            match self.b[i] {
                b'\n' | b'\r' => break,
                b'#' if i > start && is_blank(self.b[i - 1]) => {
                    comment = true;
                    break;
                }
                b':' if is_sep(self.b.get(i + 1).copied()) => {
                    return self
                        .err("unexpected `:` in a plain scalar (nested mapping on one line?)");
                }
                _ => i += 1,
            }
        }
        let seg = self.src[start..i].trim_end_matches([' ', '\t']);
        self.pos = i;
        Ok((seg, comment))
    }

    /// A plain scalar in block context, possibly continued on more-indented lines. Leaves the
    /// position at the start of the line after it (its comment, if any, recorded).
    fn plain_multiline(&mut self, parent: isize) -> PResult<Zeroizing<String>> {
        let mut out = Zeroizing::new(String::new());
        let (seg, comment) = self.plain_segment()?;
        out.push_str(seg);
        if comment {
            self.end_line()?;
            return Ok(out);
        }
        self.eat_break();
        loop {
            // Look ahead for a continuation line.
            let m = self.mark();
            let mut blank_lines = 0usize;
            let cont = loop {
                if self.eof() {
                    break false;
                }
                let mut i = self.pos;
                while i < self.b.len() && is_blank(self.b[i]) {
                    i += 1;
                }
                let spaces = self.b[self.pos..i]
                    .iter()
                    .take_while(|c| **c == b' ')
                    .count();
                match self.b.get(i).copied() {
                    None => break false,
                    Some(b'\n') | Some(b'\r') => {
                        self.pos = i;
                        self.eat_break();
                        blank_lines += 1;
                    }
                    Some(b'#') => break false,
                    Some(_) => {
                        if (spaces as isize) > parent && !(spaces == 0 && self.doc_marker_at(i)) {
                            self.pos = i;
                            break true;
                        }
                        break false;
                    }
                }
            };
            if !cont {
                self.reset(m);
                return Ok(out);
            }
            let (seg, comment) = self.plain_segment()?;
            if blank_lines == 0 {
                out.push(' ');
            } else {
                for _ in 0..blank_lines {
                    out.push('\n');
                }
            }
            out.push_str(seg);
            if comment {
                self.end_line()?;
                return Ok(out);
            }
            self.eat_break();
        }
    }

    fn doc_marker_at(&self, i: usize) -> bool {
        let rest = &self.b[i..];
        (rest.starts_with(b"---") || rest.starts_with(b"...")) && is_sep(rest.get(3).copied())
    }

    /// A single- or double-quoted scalar starting at pos; leaves pos after the closing quote.
    fn quoted(&mut self) -> PResult<Zeroizing<String>> {
        let double = self.peek() == Some(b'"');
        self.pos += 1;
        let mut out = Zeroizing::new(String::new());
        // Length of `out` up to the last character that is not unescaped trailing whitespace.
        let mut keep = 0usize;
        loop {
            let Some(c) = self.peek() else {
                return self.err("unterminated quoted scalar");
            };
            match c {
                b'"' if double => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\'' if !double => {
                    if self.peek_at(1) == Some(b'\'') {
                        out.push('\'');
                        self.pos += 2;
                        keep = out.len();
                    } else {
                        self.pos += 1;
                        return Ok(out);
                    }
                }
                b'\\' if double => {
                    self.pos += 1;
                    if is_break(self.peek()) && !self.eof() {
                        // Escaped line break: join without a space.
                        self.eat_break();
                        self.skip_blanks();
                        continue;
                    }
                    self.escape(&mut out)?;
                    keep = out.len();
                }
                b'\n' | b'\r' => {
                    out.truncate(keep);
                    self.eat_break();
                    let mut breaks = 0usize;
                    loop {
                        self.skip_blanks();
                        if is_break(self.peek()) && !self.eof() {
                            self.eat_break();
                            breaks += 1;
                        } else {
                            break;
                        }
                    }
                    if self.col() == 0 && self.doc_marker_at(self.pos) {
                        return self.err("document marker inside a quoted scalar");
                    }
                    if breaks == 0 {
                        out.push(' ');
                    } else {
                        for _ in 0..breaks {
                            out.push('\n');
                        }
                    }
                    keep = out.len();
                }
                b' ' | b'\t' => {
                    out.push(c as char);
                    self.pos += 1;
                }
                _ => {
                    let ch = self.src[self.pos..]
                        .chars()
                        .next()
                        .expect("pos is on a character boundary inside the input");
                    out.push(ch);
                    self.pos += ch.len_utf8();
                    keep = out.len();
                }
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> PResult<()> {
        let Some(c) = self.peek() else {
            return self.err("unterminated escape in a double-quoted scalar");
        };
        self.pos += 1;
        let ch = match c {
            b'0' => '\0',
            b'a' => '\u{7}',
            b'b' => '\u{8}',
            b't' | b'\t' => '\t',
            b'n' => '\n',
            b'v' => '\u{b}',
            b'f' => '\u{c}',
            b'r' => '\r',
            b'e' => '\u{1b}',
            b' ' => ' ',
            b'"' => '"',
            b'/' => '/',
            b'\\' => '\\',
            b'N' => '\u{85}',
            b'_' => '\u{a0}',
            b'L' => '\u{2028}',
            b'P' => '\u{2029}',
            b'x' | b'u' | b'U' => {
                let n = match c {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let Some(hex) = self.src.get(self.pos..self.pos + n) else {
                    return self.err("truncated escape in a double-quoted scalar");
                };
                let Ok(v) = u32::from_str_radix(hex, 16) else {
                    return self.err("invalid hex escape in a double-quoted scalar");
                };
                let Some(ch) = char::from_u32(v) else {
                    return self.err("invalid unicode escape in a double-quoted scalar");
                };
                self.pos += n;
                ch
            }
            _ => return self.err("unknown escape in a double-quoted scalar"),
        };
        out.push(ch);
        Ok(())
    }

    /// A literal (`|`) or folded (`>`) block scalar. `parent` is the indentation of the node that
    /// owns it. Leaves pos at the start of the first line after the scalar.
    fn block_scalar(&mut self, parent: isize) -> PResult<String> {
        let folded = self.peek() == Some(b'>');
        self.pos += 1;
        let mut chomp = 0i8; // -1 strip, 0 clip, 1 keep
        let mut explicit: Option<usize> = None;
        for _ in 0..2 {
            match self.peek() {
                Some(b'-') if chomp == 0 => {
                    chomp = -1;
                    self.pos += 1;
                }
                Some(b'+') if chomp == 0 => {
                    chomp = 1;
                    self.pos += 1;
                }
                Some(d @ b'1'..=b'9') if explicit.is_none() => {
                    explicit = Some((d - b'0') as usize);
                    self.pos += 1;
                }
                _ => break,
            }
        }
        if !is_sep(self.peek()) {
            return self.err("invalid block scalar header");
        }
        self.end_line()?;
        let base = if parent < 0 { 0 } else { parent as usize };
        // Find the content indentation.
        let indent = match explicit {
            Some(d) => {
                if parent < 0 {
                    d
                } else {
                    base + d
                }
            }
            None => {
                let mut i = self.pos;
                let mut found = None;
                while i < self.b.len() {
                    let mut j = i;
                    while j < self.b.len() && self.b[j] == b' ' {
                        j += 1;
                    }
                    match self.b.get(j).copied() {
                        None => break,
                        Some(b'\n') | Some(b'\r') => {
                            i = j + 1;
                            if self.b.get(j) == Some(&b'\r') && self.b.get(j + 1) == Some(&b'\n') {
                                i += 1;
                            }
                        }
                        Some(_) => {
                            found = Some(j - i);
                            break;
                        }
                    }
                }
                match found {
                    Some(n) if (n as isize) > parent => n,
                    // No content: everything after is outside the scalar.
                    _ => usize::MAX,
                }
            }
        };
        // Collect the content lines.
        let mut lines: Vec<&'a str> = Vec::new();
        loop {
            if self.eof() {
                break;
            }
            let line = self.rest_of_line();
            let spaces = line.bytes().take_while(|c| *c == b' ').count();
            let blank = spaces == line.len();
            if blank {
                if indent != usize::MAX && spaces > indent {
                    lines.push(&line[indent..]);
                } else {
                    lines.push("");
                }
            } else if indent != usize::MAX && spaces >= indent {
                lines.push(&line[indent..]);
            } else {
                break;
            }
            self.pos += line.len();
            if !self.eat_break() {
                break;
            }
        }
        // Trailing empty lines belong to chomping, and a block that ended at EOF without a
        // final break still counts its last line as terminated.
        let content_end = lines
            .iter()
            .rposition(|l| !l.is_empty())
            .map_or(0, |p| p + 1);
        let trailing = lines.len() - content_end;
        let body = &lines[..content_end];
        let mut out = String::new();
        if folded {
            let mut prev_normal: Option<bool> = None;
            let mut blanks = 0usize;
            for l in body {
                if l.is_empty() {
                    blanks += 1;
                    continue;
                }
                let normal = !l.starts_with([' ', '\t']);
                match prev_normal {
                    None => out.extend(std::iter::repeat_n('\n', blanks)),
                    Some(p) => {
                        if p && normal {
                            if blanks == 0 {
                                out.push(' ');
                            } else {
                                out.extend(std::iter::repeat_n('\n', blanks));
                            }
                        } else {
                            out.extend(std::iter::repeat_n('\n', blanks + 1));
                        }
                    }
                }
                out.push_str(l);
                prev_normal = Some(normal);
                blanks = 0;
            }
        } else {
            for (i, l) in body.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(l);
            }
        }
        match chomp {
            -1 => {}
            0 => {
                if !body.is_empty() {
                    out.push('\n');
                }
            }
            _ => {
                if !body.is_empty() {
                    out.push('\n');
                }
                out.extend(std::iter::repeat_n('\n', trailing));
            }
        }
        Ok(out)
    }

    fn skip_flow_ws(&mut self) -> PResult<()> {
        loop {
            match self.peek() {
                Some(b' ') | Some(b'\t') => self.pos += 1,
                Some(b'\n') | Some(b'\r') => {
                    self.eat_break();
                }
                Some(b'#') => {
                    if self.pos > 0 && !is_sep(self.b.get(self.pos - 1).copied()) {
                        return self.err("a comment must be separated by whitespace");
                    }
                    self.take_comment();
                }
                _ => return Ok(()),
            }
        }
    }

    fn flow_node(&mut self) -> PResult<Node> {
        self.nested(Self::flow_node_inner)
    }

    fn flow_node_inner(&mut self) -> PResult<Node> {
        self.skip_flow_ws()?;
        match self.peek() {
            Some(b'[') => {
                self.pos += 1;
                let keep = self.pending.len();
                let mut items = Vec::new();
                loop {
                    self.skip_flow_ws()?;
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        break;
                    }
                    let n = self.flow_node()?;
                    items.push(SeqItem::Value(n));
                    self.skip_flow_ws()?;
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            break;
                        }
                        _ => return self.err("expected `,` or `]` in a flow sequence"),
                    }
                }
                self.pending.truncate(keep);
                Ok(Node::Seq(items))
            }
            Some(b'{') => {
                self.pos += 1;
                let keep = self.pending.len();
                let mut items = Vec::new();
                let mut keys = Keys::default();
                loop {
                    self.skip_flow_ws()?;
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        break;
                    }
                    let line = self.line;
                    let key = match self.flow_scalar(true)? {
                        Node::Scalar(s) => s.text.to_string(),
                        Node::Null => String::new(),
                        _ => return self.err("flow mapping keys must be scalars"),
                    };
                    self.skip_flow_ws()?;
                    let value = if self.peek() == Some(b':') {
                        self.pos += 1;
                        self.skip_flow_ws()?;
                        if matches!(self.peek(), Some(b',') | Some(b'}')) {
                            Node::Null
                        } else {
                            self.flow_node()?
                        }
                    } else {
                        Node::Null
                    };
                    keys.insert(&key, line)?;
                    items.push(MapItem::Pair { key, value, line });
                    self.skip_flow_ws()?;
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            break;
                        }
                        _ => return self.err("expected `,` or `}` in a flow mapping"),
                    }
                }
                self.pending.truncate(keep);
                Ok(Node::Map(items))
            }
            _ => self.flow_scalar(false),
        }
    }

    fn flow_scalar(&mut self, is_key: bool) -> PResult<Node> {
        match self.peek() {
            Some(b'"') | Some(b'\'') => {
                let s = self.quoted()?;
                Ok(Node::Scalar(Scalar {
                    text: s,
                    plain: false,
                }))
            }
            Some(b'&') | Some(b'*') | Some(b'!') => self.unsupported_node_props(),
            Some(b'[') | Some(b'{') if is_key => {
                self.err("flow collections as keys are not supported")
            }
            None => self.err("unterminated flow collection"),
            _ => {
                let mut out = Zeroizing::new(String::new());
                loop {
                    let start = self.pos;
                    while let Some(c) = self.peek() {
                        let stop = match c {
                            b',' | b'[' | b']' | b'{' | b'}' | b'\n' | b'\r' => true,
                            b':' => {
                                let n = self.peek_at(1);
                                is_sep(n)
                                    || matches!(
                                        n,
                                        Some(b',')
                                            | Some(b'[')
                                            | Some(b']')
                                            | Some(b'{')
                                            | Some(b'}')
                                    )
                            }
                            b'#' => self.pos > start && is_blank(self.b[self.pos - 1]),
                            _ => false,
                        };
                        if stop {
                            break;
                        }
                        self.pos += 1;
                    }
                    let seg = self.src[start..self.pos].trim_matches([' ', '\t']);
                    if !seg.is_empty() {
                        if !out.is_empty() {
                            out.push(' ');
                        }
                        out.push_str(seg);
                    }
                    // Multi-line plain scalars in flow context fold into one line.
                    if matches!(self.peek(), Some(b'\n') | Some(b'\r')) && !out.is_empty() {
                        self.skip_flow_ws()?;
                        if matches!(
                            self.peek(),
                            Some(b',') | Some(b']') | Some(b'}') | Some(b':') | None
                        ) {
                            break;
                        }
                        continue;
                    }
                    break;
                }
                if out.is_empty() {
                    Ok(Node::Null)
                } else {
                    Ok(Node::Scalar(Scalar {
                        text: out,
                        plain: true,
                    }))
                }
            }
        }
    }
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
            "? a\n: b\n",
        ] {
            assert!(parse_document(src).is_err(), "{src:?} should fail");
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
