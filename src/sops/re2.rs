//! The key rules stored in sops files (`encrypted_regex`, `unencrypted_regex`) as sops matches
//! them: Go's `regexp` (RE2 syntax, linear time), as an unanchored search on each key name.
//!
//! Matching is the `regex` crate's, which has RE2's syntax and its linear-time guarantee. A rule
//! is read from the file's metadata, which the MAC does not cover, before any key is opened, so a
//! backtracking engine would let a file hang the reader.
//!
//! The two dialects agree on everything a key rule uses except a few points, settled here on the
//! pattern's syntax tree (`regex-syntax`) before it is compiled; no crate translates between them:
//! - `\d`, `\w`, `\s` and `\b` are ASCII in Go and Unicode in `regex`: they are rewritten to
//!   Go's classes (`[0-9]`, `[0-9A-Za-z_]`, `[\t\n\f\r ]` (Go's `\s` has no `\v`), and `(?-u:\b)`).
//!   `.`, negated classes and `(?i)` stay Unicode-aware, as in Go: `.` matches one character, not
//!   one byte, and case folding is Unicode simple folding in both.
//! - Syntax that only `regex` has, which Go refuses or reads differently, is refused: nested
//!   classes and class set operations (`[a[b]]`, `[a&&b]`: literal `[` and `&` to Go), `\<`, `\>`
//!   and `\b{start}` (literal text to Go), `\u`/`\U` escapes, the flags `x`, `u` and `R`,
//!   `\p{..}` beyond Unicode general categories (`regex` also knows long names and loose
//!   matching), capture names beyond `[A-Za-z0-9_]`, a repetition of a repetition (`a**`) and
//!   counts above 1000 (Go's limits). Syntax only Go has (`\Q...\E`, octal `\123`, `\p{^Lu}`)
//!   and text Go reads literally (`a{,5}`) are refused by the parser.
//!
//! Go's `regexp.Match` ignores a pattern it cannot compile (sops then matches no key at all);
//! rootroll refuses the file instead, naming the pattern and why.

use regex_syntax::ast::{self, Ast, ClassSetItem, Visitor};

/// A compiled key rule.
pub(crate) struct Regex(regex::Regex);

/// Why a pattern cannot be used.
#[derive(Debug)]
pub(crate) struct RegexError {
    /// What is wrong, in a sentence fragment (`backreferences are not supported`).
    pub(crate) reason: String,
}

/// Go's limit on `{n,m}` counts.
const GO_MAX_REPEAT: u32 = 1000;
/// Deepest nesting accepted (Go allows 1000; real rules nest a few levels).
const NEST_LIMIT: u32 = 100;

impl Regex {
    /// Compiles `pattern` with Go's semantics, or says why it cannot.
    pub(crate) fn new(pattern: &str) -> Result<Regex, RegexError> {
        let tree = ast::parse::ParserBuilder::new()
            .nest_limit(NEST_LIMIT)
            .octal(false)
            .empty_min_range(false)
            .build()
            .parse(pattern)
            .map_err(|e| RegexError {
                reason: e.kind().to_string(),
            })?;
        let edits = ast::visit(&tree, GoDialect::default()).map_err(|reason| RegexError {
            reason: reason.to_string(),
        })?;
        let mut rewritten = String::with_capacity(pattern.len() + 16 * edits.len());
        let mut at = 0;
        for (start, end, text) in edits {
            rewritten.push_str(&pattern[at..start]);
            rewritten.push_str(text);
            at = end;
        }
        rewritten.push_str(&pattern[at..]);
        regex::RegexBuilder::new(&rewritten)
            .build()
            .map(Regex)
            .map_err(|e| RegexError {
                reason: match e {
                    regex::Error::CompiledTooBig(_) => {
                        "it compiles to a program too large to run".to_string()
                    }
                    other => other.to_string(),
                },
            })
    }

    /// Whether the pattern matches anywhere in `key` (Go `regexp.Match`).
    pub(crate) fn is_match(&self, key: &str) -> bool {
        self.0.is_match(key)
    }
}

/// Collects the rewrites of Go-ASCII classes (byte ranges of the pattern, in order) and refuses
/// syntax the dialects disagree on.
#[derive(Default)]
struct GoDialect {
    edits: Vec<(usize, usize, &'static str)>,
}

fn perl_class(kind: &ast::ClassPerlKind, negated: bool, in_brackets: bool) -> &'static str {
    use ast::ClassPerlKind::{Digit, Space, Word};
    match (kind, negated, in_brackets) {
        (Digit, false, false) => "[0-9]",
        (Digit, false, true) => "0-9",
        (Digit, true, _) => "[^0-9]",
        (Word, false, false) => "[0-9A-Za-z_]",
        (Word, false, true) => "0-9A-Za-z_",
        (Word, true, _) => "[^0-9A-Za-z_]",
        (Space, false, false) => r"[\t\n\f\r ]",
        (Space, false, true) => r"\t\n\f\r ",
        (Space, true, _) => r"[^\t\n\f\r ]",
    }
}

/// The Unicode general categories Go's `\p{..}` knows (`unicode.Categories`).
const GO_CATEGORIES: &[&str] = &[
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N",
    "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So",
    "Z", "Zl", "Zp", "Zs",
];

fn check_unicode_class(class: &ast::ClassUnicode) -> Result<(), &'static str> {
    match &class.kind {
        ast::ClassUnicodeKind::OneLetter(c) if GO_CATEGORIES.contains(&c.to_string().as_str()) => {
            Ok(())
        }
        ast::ClassUnicodeKind::Named(name) if GO_CATEGORIES.contains(&name.as_str()) => Ok(()),
        _ => Err(
            "only Unicode general categories (\\pL, \\p{Lu}, ...) are accepted in \\p{..}: Go and \
             the regex crate name other properties differently",
        ),
    }
}

impl Visitor for GoDialect {
    type Output = Vec<(usize, usize, &'static str)>;
    type Err = &'static str;

    fn finish(self) -> Result<Self::Output, Self::Err> {
        Ok(self.edits)
    }

    fn visit_pre(&mut self, node: &Ast) -> Result<(), Self::Err> {
        match node {
            Ast::ClassPerl(c) => {
                let text = perl_class(&c.kind, c.negated, false);
                self.edits
                    .push((c.span.start.offset, c.span.end.offset, text));
            }
            Ast::Assertion(a) => match a.kind {
                ast::AssertionKind::WordBoundary => {
                    self.edits
                        .push((a.span.start.offset, a.span.end.offset, r"(?-u:\b)"));
                }
                ast::AssertionKind::NotWordBoundary => {
                    self.edits
                        .push((a.span.start.offset, a.span.end.offset, r"(?-u:\B)"));
                }
                ast::AssertionKind::StartLine
                | ast::AssertionKind::EndLine
                | ast::AssertionKind::StartText
                | ast::AssertionKind::EndText => {}
                _ => {
                    return Err(
                        "word-start and word-end assertions (\\<, \\>, \\b{start}, ...) are not \
                         Go syntax: Go reads them as literal text",
                    );
                }
            },
            Ast::Literal(l) => check_literal(l)?,
            Ast::ClassUnicode(c) => check_unicode_class(c)?,
            Ast::Flags(f) => check_flags(&f.flags)?,
            Ast::Group(g) => match &g.kind {
                ast::GroupKind::NonCapturing(flags) => check_flags(flags)?,
                ast::GroupKind::CaptureName { name, .. } => {
                    if !name
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        return Err("Go allows only letters, digits and `_` in capture names");
                    }
                }
                ast::GroupKind::CaptureIndex(_) => {}
            },
            Ast::Repetition(r) => {
                if matches!(*r.ast, Ast::Repetition(_)) {
                    return Err(
                        "a repetition of a repetition (`a**`, `a{2}*`) is refused by Go; group it \
                         first: (?:a*)*",
                    );
                }
                if let ast::RepetitionKind::Range(range) = &r.op.kind {
                    let (ast::RepetitionRange::Exactly(n)
                    | ast::RepetitionRange::AtLeast(n)
                    | ast::RepetitionRange::Bounded(_, n)) = range;
                    let low = match range {
                        ast::RepetitionRange::Bounded(m, _) => *m,
                        _ => *n,
                    };
                    if *n > GO_MAX_REPEAT || low > GO_MAX_REPEAT {
                        return Err("Go refuses repetition counts above 1000");
                    }
                }
            }
            Ast::Empty(_)
            | Ast::Dot(_)
            | Ast::ClassBracketed(_)
            | Ast::Alternation(_)
            | Ast::Concat(_) => {}
        }
        Ok(())
    }

    fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), Self::Err> {
        match item {
            ClassSetItem::Perl(c) => {
                let text = perl_class(&c.kind, c.negated, true);
                self.edits
                    .push((c.span.start.offset, c.span.end.offset, text));
            }
            ClassSetItem::Bracketed(_) => {
                return Err(
                    "nested character classes (`[a[b]]`) are not Go syntax: Go reads the inner \
                     `[` as a literal",
                );
            }
            ClassSetItem::Literal(l) => check_literal(l)?,
            ClassSetItem::Range(r) => {
                check_literal(&r.start)?;
                check_literal(&r.end)?;
            }
            ClassSetItem::Unicode(c) => check_unicode_class(c)?,
            ClassSetItem::Empty(_) | ClassSetItem::Ascii(_) | ClassSetItem::Union(_) => {}
        }
        Ok(())
    }

    fn visit_class_set_binary_op_pre(
        &mut self,
        _op: &ast::ClassSetBinaryOp,
    ) -> Result<(), Self::Err> {
        Err("class set operations (`&&`, `--`, `~~`) are not Go syntax: Go reads them as literals")
    }
}

fn check_literal(l: &ast::Literal) -> Result<(), &'static str> {
    match l.kind {
        ast::LiteralKind::HexFixed(ast::HexLiteralKind::UnicodeShort)
        | ast::LiteralKind::HexFixed(ast::HexLiteralKind::UnicodeLong)
        | ast::LiteralKind::HexBrace(ast::HexLiteralKind::UnicodeShort)
        | ast::LiteralKind::HexBrace(ast::HexLiteralKind::UnicodeLong) => {
            Err("\\u and \\U escapes are not Go syntax; write \\x{...}")
        }
        _ => Ok(()),
    }
}

fn check_flags(flags: &ast::Flags) -> Result<(), &'static str> {
    for item in &flags.items {
        if let ast::FlagsItemKind::Flag(
            ast::Flag::IgnoreWhitespace | ast::Flag::Unicode | ast::Flag::CRLF,
        ) = item.kind
        {
            return Err("Go knows only the flags i, m, s and U");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, key: &str) -> bool {
        match Regex::new(pattern) {
            Ok(re) => re.is_match(key),
            Err(e) => panic!("{pattern}: {}", e.reason),
        }
    }

    fn refused(pattern: &str) -> String {
        match Regex::new(pattern) {
            Ok(_) => panic!("{pattern} was accepted"),
            Err(e) => e.reason,
        }
    }

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        assert!(matches(r"^\d$", "7"));
        assert!(
            !matches(r"^\d$", "\u{663}"),
            "Arabic-Indic three is not Go's \\d"
        );
        assert!(matches(r"^\D$", "\u{663}"));
        assert!(!matches(r"^\w$", "é"));
        assert!(matches(r"^\W$", "é"));
        assert!(matches(r"^[\w]+$", "a_1"));
        assert!(!matches(r"^[\w]$", "é"));
        assert!(matches(r"^[\W]$", "é"));
        assert!(matches(r"^[^\d]$", "x"));
        assert!(!matches(r"^\s$", "\u{b}"), "Go's \\s has no vertical tab");
        assert!(!matches(r"^\s$", "\u{a0}"));
        assert!(matches(r"^\s$", "\u{c}"));
        assert!(matches(r"^\S$", "\u{b}"));
        assert!(matches(r"^[\s]$", " "));
        assert!(matches(r"\bkey\b", "a key"));
        assert!(
            matches(r"\bkey\b", "ékey"),
            "é is not an ASCII word character"
        );
        assert!(matches(r"\Bb", "ab"));
        // Escapes that are not classes stay as they are.
        assert!(matches(r"^\\d$", r"\d"));
        assert!(matches(r"^a\.b$", "a.b"));
    }

    #[test]
    fn dot_and_folding_are_unicode_as_in_go() {
        assert!(matches("^.$", "é"));
        assert!(matches("^[^a]$", "é"));
        assert!(!matches("^.$", "\n"));
        assert!(matches("(?s)^.$", "\n"));
        assert!(matches("(?i)^k$", "\u{212a}"), "Kelvin sign folds to k");
        assert!(matches(r"^\pL+$", "éa"));
        assert!(matches(r"^\p{Lu}$", "É"));
        assert!(matches("^[[:alpha:]]+$", "ab"));
        assert!(!matches("^[[:alpha:]]$", "é"));
        assert!(matches("^(data|stringData)$", "stringData"));
        assert!(matches("data", "metadata"), "unanchored search");
    }

    #[test]
    fn pathological_patterns_run_in_linear_time() {
        let re = Regex::new("^(a|a)*(a|a)*(a|a)*(a|a)*c$").expect("compiles");
        let key = format!("{}b", "a".repeat(100_000));
        let start = std::time::Instant::now();
        assert!(!re.is_match(&key));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn what_go_refuses_or_reads_differently_is_refused() {
        assert!(refused(r"(a)\1").contains("backreferences"));
        assert!(refused("(?=data)").contains("look-around"));
        assert!(refused("(?<!a)b").contains("look-around"));
        assert!(refused("[a[b]]").contains("nested"));
        assert!(refused("[a&&b]").contains("set operations"));
        assert!(refused("[a--b]").contains("set operations"));
        assert!(refused(r"\<data").contains("word-start"));
        assert!(refused(r"data\b{end}").contains("word-start"));
        assert!(refused(r"\u0041").contains("\\u"));
        assert!(refused("(?x)a b").contains("flags"));
        assert!(refused("(?u)a").contains("flags"));
        assert!(refused(r"\p{Greek}").contains("general categories"));
        assert!(refused(r"\p{letter}").contains("general categories"));
        assert!(refused("a{1001}").contains("1000"));
        assert!(refused("a{2,1001}").contains("1000"));
        assert!(refused("a**").contains("repetition"));
        assert!(refused("a{2}{3}").contains("repetition of a repetition"));
        // Go reads these as literal text; the regex crate refuses them (so does rootroll).
        assert!(!refused("a{,5}").is_empty());
        assert!(!refused(r"\p{^Lu}").is_empty());
        assert!(!refused(r"\Qa.b\E").is_empty());
        assert!(!refused(r"\123").is_empty(), "Go reads \\123 as octal");
        assert!(!refused("(").is_empty());
        assert!(!refused("(?P<a.b>x)").is_empty());
        // Go accepts these, and so does rootroll.
        assert!(matches("(?P<name>x)", "x"));
        assert!(matches("(?<name>x)", "x"));
        assert!(matches("a{1000}", &"a".repeat(1000)));
        assert!(matches("(?:a*)*b", "aab"));
        assert!(matches(r"^\x41\x{42}$", "AB"));
        assert!(matches(r"^\%$", "%"));
        assert!(matches("(?i-s:A.)", "ab"));
    }
}
