//! A small backtracking regular-expression matcher for the encryption-rule patterns stored in
//! sops files (`encrypted_regex`, `unencrypted_regex`), which sops matches with Go RE2 as an
//! unanchored search on each key name.
//!
//! Supported: literals, `.`, `^`, `$`, `\A`, `\z`, groups `(...)` / `(?:...)` / named groups,
//! alternation, `*` `+` `?` `{n}` `{n,}` `{n,m}` (lazy forms too), classes `[...]` with ranges
//! and negation, and the escapes `\d \D \w \W \s \S` plus escaped punctuation. Anything else
//! (flags, backreferences, Unicode classes...) is refused, so an unsupported rule is an error
//! rather than a wrong answer.

#[derive(Clone)]
enum Re {
    Char(char),
    Any,
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    Start,
    End,
    Concat(Vec<Re>),
    Alt(Vec<Re>),
    Repeat {
        inner: Box<Re>,
        min: u32,
        max: Option<u32>,
    },
}

/// A compiled pattern.
pub(crate) struct Regex {
    re: Re,
}

const DIGIT: &[(char, char)] = &[('0', '9')];
const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
const SPACE: &[(char, char)] = &[('\t', '\n'), ('\u{c}', '\r'), (' ', ' ')];

struct P<'a> {
    c: &'a [char],
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    fn alt(&mut self) -> Result<Re, String> {
        let mut alts = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.i += 1;
            alts.push(self.concat()?);
        }
        Ok(if alts.len() == 1 {
            alts.remove(0)
        } else {
            Re::Alt(alts)
        })
    }

    fn concat(&mut self) -> Result<Re, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Re::Concat(items))
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.c[start..self.i]
            .iter()
            .collect::<String>()
            .parse()
            .ok()
    }

    fn quantified(&mut self, atom: Re) -> Result<Re, String> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                let save = self.i;
                self.i += 1;
                let Some(min) = self.number() else {
                    // RE2 treats a `{` that is not a repetition as a literal.
                    self.i = save;
                    return Ok(atom);
                };
                let max = if self.peek() == Some(',') {
                    self.i += 1;
                    if self.peek() == Some('}') {
                        None
                    } else {
                        Some(self.number().ok_or("bad repetition")?)
                    }
                } else {
                    Some(min)
                };
                if self.peek() != Some('}') {
                    self.i = save;
                    return Ok(atom);
                }
                if max.is_some_and(|m| m < min) || min > 1000 {
                    return Err("bad repetition".into());
                }
                (min, max)
            }
            _ => return Ok(atom),
        };
        self.i += 1;
        if self.peek() == Some('?') {
            // Lazy: the same set of matches, which is all a yes/no search needs.
            self.i += 1;
        }
        if matches!(self.peek(), Some('*') | Some('+') | Some('?')) {
            return Err("nested repetition".into());
        }
        Ok(Re::Repeat {
            inner: Box::new(atom),
            min,
            max,
        })
    }

    fn atom(&mut self) -> Result<Re, String> {
        let c = self.peek().ok_or("unexpected end")?;
        self.i += 1;
        match c {
            '.' => Ok(Re::Any),
            '^' => Ok(Re::Start),
            '$' => Ok(Re::End),
            '(' => {
                if self.peek() == Some('?') {
                    self.i += 1;
                    match self.peek() {
                        Some(':') => self.i += 1,
                        Some('P') | Some('<') => {
                            while let Some(c) = self.peek() {
                                self.i += 1;
                                if c == '>' {
                                    break;
                                }
                            }
                        }
                        _ => return Err("regex flags are not supported".into()),
                    }
                }
                let inner = self.alt()?;
                if self.peek() != Some(')') {
                    return Err("missing `)`".into());
                }
                self.i += 1;
                Ok(inner)
            }
            '[' => self.class(),
            '\\' => self.escape(false).map(|r| match r {
                Esc::Re(re) => re,
                Esc::Char(c) => Re::Char(c),
                Esc::Class(ranges, negated) => Re::Class { ranges, negated },
            }),
            '*' | '+' | '?' => Err("repetition without an operand".into()),
            ')' => Err("unexpected `)`".into()),
            c => Ok(Re::Char(c)),
        }
    }

    fn escape(&mut self, in_class: bool) -> Result<Esc, String> {
        let c = self.peek().ok_or("trailing backslash")?;
        self.i += 1;
        Ok(match c {
            'd' => Esc::Class(DIGIT.to_vec(), false),
            'D' => Esc::Class(DIGIT.to_vec(), true),
            'w' => Esc::Class(WORD.to_vec(), false),
            'W' => Esc::Class(WORD.to_vec(), true),
            's' => Esc::Class(SPACE.to_vec(), false),
            'S' => Esc::Class(SPACE.to_vec(), true),
            'n' => Esc::Char('\n'),
            't' => Esc::Char('\t'),
            'r' => Esc::Char('\r'),
            'f' => Esc::Char('\u{c}'),
            'v' => Esc::Char('\u{b}'),
            'A' if !in_class => Esc::Re(Re::Start),
            'z' if !in_class => Esc::Re(Re::End),
            c if c.is_ascii_punctuation() => Esc::Char(c),
            _ => return Err(format!("escape `\\{c}` is not supported")),
        })
    }

    fn class(&mut self) -> Result<Re, String> {
        let mut negated = false;
        if self.peek() == Some('^') {
            negated = true;
            self.i += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = self.peek().ok_or("missing `]`")?;
            self.i += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            if c == '[' && self.peek() == Some(':') {
                return Err("POSIX classes are not supported".into());
            }
            let lo = if c == '\\' {
                match self.escape(true)? {
                    Esc::Char(c) => c,
                    Esc::Class(r, false) => {
                        ranges.extend(r);
                        continue;
                    }
                    _ => return Err("negated escapes inside classes are not supported".into()),
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.c.get(self.i + 1).is_some_and(|c| *c != ']') {
                self.i += 1;
                let mut hi = self.peek().ok_or("missing `]`")?;
                self.i += 1;
                if hi == '\\' {
                    match self.escape(true)? {
                        Esc::Char(c) => hi = c,
                        _ => return Err("bad class range".into()),
                    }
                }
                if hi < lo {
                    return Err("bad class range".into());
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Ok(Re::Class { ranges, negated })
    }
}

enum Esc {
    Re(Re),
    Char(char),
    Class(Vec<(char, char)>, bool),
}

impl Regex {
    /// Compile a pattern; the error names the unsupported or invalid construct.
    pub(crate) fn new(pattern: &str) -> Result<Regex, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut p = P { c: &chars, i: 0 };
        let re = p.alt()?;
        if p.i != chars.len() {
            return Err("unbalanced `)`".into());
        }
        Ok(Regex { re })
    }

    /// Unanchored search, like Go `regexp.MatchString`.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        let s: Vec<char> = text.chars().collect();
        (0..=s.len()).any(|start| m(&self.re, &s, start, &mut |_| true))
    }
}

/// Match `re` at `i`, calling `k` with each possible end position until it returns true.
fn m(re: &Re, s: &[char], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match re {
        Re::Char(c) => s.get(i) == Some(c) && k(i + 1),
        Re::Any => s.get(i).is_some_and(|c| *c != '\n') && k(i + 1),
        Re::Class { ranges, negated } => match s.get(i) {
            Some(c) => {
                let inside = ranges.iter().any(|(lo, hi)| lo <= c && c <= hi);
                inside != *negated && k(i + 1)
            }
            None => false,
        },
        Re::Start => i == 0 && k(i),
        Re::End => i == s.len() && k(i),
        Re::Concat(items) => concat(items, s, i, k),
        Re::Alt(alts) => alts.iter().any(|a| m(a, s, i, k)),
        Re::Repeat { inner, min, max } => repeat(inner, *min, *max, 0, s, i, k),
    }
}

fn concat(items: &[Re], s: &[char], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match items.split_first() {
        None => k(i),
        Some((first, rest)) => m(first, s, i, &mut |j| concat(rest, s, j, k)),
    }
}

fn repeat(
    inner: &Re,
    min: u32,
    max: Option<u32>,
    count: u32,
    s: &[char],
    i: usize,
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    if max.is_none_or(|mx| count < mx)
        && m(inner, s, i, &mut |j| {
            // A zero-width iteration cannot make progress; stop repeating it.
            j != i && repeat(inner, min, max, count + 1, s, j, k)
        })
    {
        return true;
    }
    count >= min && k(i)
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn re(p: &str) -> Regex {
        match Regex::new(p) {
            Ok(r) => r,
            Err(e) => panic!("{p}: {e}"),
        }
    }

    #[test]
    fn matches_like_re2() {
        let r = re("^(data|stringData)$");
        assert!(r.is_match("data"));
        assert!(r.is_match("stringData"));
        assert!(!r.is_match("metadata"));
        assert!(!r.is_match("data2"));
        let r = re("data");
        assert!(r.is_match("metadata"));
        let r = re("^(apiVersion|metadata|kind|type)$");
        assert!(r.is_match("kind") && !r.is_match("data"));
        let r = re(r"^[a-z]+\.(key|crt)$");
        assert!(r.is_match("tls.key") && !r.is_match("tls_key") && !r.is_match("TLS.key"));
        let r = re("^pass(word)?s?$");
        assert!(r.is_match("pass") && r.is_match("passwords") && !r.is_match("passw"));
        let r = re(r"\d{2,3}x");
        assert!(r.is_match("a12x") && !r.is_match("1x"));
        let r = re("(a*)*b");
        assert!(!r.is_match("aaaaaaaaaaaa"));
        assert!(Regex::new("(?i)data").is_err());
        assert!(Regex::new("(").is_err());
    }
}
