//! The on-disk SOPS format: how Go's YAML library types plain scalars, how sops turns values
//! into bytes (`ToBytes`), Go time formats, the `ENC[...]` value syntax and the encryption rules.
//!
//! Times are parsed here rather than with the `time` crate's RFC 3339 parser because Go's rules
//! differ from RFC 3339's: `T` and `Z` only in upper case, a `,` fraction accepted, no leap second.

use super::re2::Regex;
use super::yaml::is_special_unicode;

/// The type gopkg.in/yaml.v3 gives a plain scalar when decoding into `interface{}`.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    /// Above i64::MAX: sops cannot turn it into bytes.
    Uint,
    Float(f64),
    Time(GoTime),
    Merge,
    Str,
}

/// Resolve a plain scalar like yaml.v3 `resolve("", s)` does.
pub(crate) fn resolve_plain(s: &str) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        "<<" => return Resolved::Merge,
        _ => {}
    }
    let first = s.as_bytes()[0];
    match first {
        b'.' => match s.parse::<f64>() {
            Ok(f) if f.is_finite() && is_go_decimal_float(s) => Resolved::Float(f),
            _ => Resolved::Str,
        },
        b'0'..=b'9' | b'+' | b'-' => {
            if first.is_ascii_digit()
                && let Some(t) = parse_yaml_timestamp(s)
            {
                return Resolved::Time(t);
            }
            let plain: String = s.chars().filter(|c| *c != '_').collect();
            match go_parse_int_base0(&plain) {
                IntParse::Ok(v) => return Resolved::Int(v),
                IntParse::Uint => return Resolved::Uint,
                IntParse::Invalid => {}
            }
            if is_yaml_style_float(&plain)
                && let Ok(f) = plain.parse::<f64>()
                && f.is_finite()
            {
                return Resolved::Float(f);
            }
            Resolved::Str
        }
        _ => Resolved::Str,
    }
}

/// `.5`, `.5e3`: what Go's ParseFloat accepts for a string starting with a dot.
fn is_go_decimal_float(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
}

enum IntParse {
    Ok(i64),
    /// Parses as an unsigned 64-bit integer but not as a signed one.
    Uint,
    Invalid,
}

/// strconv.ParseInt(s, 0, 64), then strconv.ParseUint(s, 0, 64).
fn go_parse_int_base0(s: &str) -> IntParse {
    let (neg, signed, body) = match s.as_bytes().first() {
        Some(b'-') => (true, true, &s[1..]),
        Some(b'+') => (false, true, &s[1..]),
        _ => (false, false, s),
    };
    let lower = body.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &body[2..]),
        Some("0o") => (8, &body[2..]),
        Some("0b") => (2, &body[2..]),
        _ if body.len() > 1 && body.starts_with('0') => (8, &body[1..]),
        _ => (10, body),
    };
    if digits.is_empty() {
        return IntParse::Invalid;
    }
    let mut n: u64 = 0;
    let mut overflow = false;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else {
            return IntParse::Invalid;
        };
        match n
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => n = v,
            None => overflow = true,
        }
    }
    if overflow {
        return IntParse::Invalid;
    }
    if neg {
        if n <= 1u64 << 63 {
            return IntParse::Ok((n as i128).wrapping_neg() as i64);
        }
        return IntParse::Invalid;
    }
    if n <= i64::MAX as u64 {
        IntParse::Ok(n as i64)
    } else if !signed {
        IntParse::Uint
    } else {
        IntParse::Invalid
    }
}

/// yaml.v3 `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-') | Some(b'+')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e') | Some(b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-') | Some(b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Whether a string can be written as a plain scalar and still be read back as this same
/// string by yaml.v3 (sops, kustomize), go-yaml v2 (kubectl) and YAML 1.2 readers.
pub(crate) fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if "-?:,[]{}#&*!|>'\"%@` \t".contains(first) {
        return false;
    }
    if s.ends_with([' ', '\t', ':']) || s.starts_with("...") {
        return false;
    }
    if s.contains(": ") || s.contains(":\t") || s.contains(" #") || s.contains("\t#") {
        return false;
    }
    if s.chars().any(|c| c.is_control() || is_special_unicode(c)) {
        return false;
    }
    if !matches!(resolve_plain(s), Resolved::Str) {
        return false;
    }
    // YAML 1.1 (go-yaml v2, used by kubectl) also reads these as booleans.
    if matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
            | "="
    ) {
        return false;
    }
    // YAML 1.1 sexagesimal numbers (`1:20`) and anything else that starts like a number and
    // contains a colon.
    if first.is_ascii_digit() && s.contains(':') {
        return false;
    }
    true
}

/// Go `strconv.FormatFloat(f, 'f', -1, 64)`.
pub(crate) fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f == f64::INFINITY {
        "+Inf".to_string()
    } else if f == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's Display prints the shortest round-tripping digits without an exponent, as
        // Go's 'f' format with precision -1 does.
        format!("{f}")
    }
}

/// Go `strconv.ParseBool`.
pub(crate) fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A Go `time.Time` as far as parsing and RFC3339 formatting need it.
#[derive(Clone, Copy, PartialEq)]
pub(crate) struct GoTime {
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    nanos: u32,
    offset_secs: i32,
}

impl GoTime {
    /// Format like Go `t.Format(time.RFC3339)` (nanos = false) or `t.MarshalText()` /
    /// `time.RFC3339Nano` (nanos = true). None when the year has more than four digits.
    pub(crate) fn format(&self, nanos: bool) -> Option<String> {
        if !(0..=9999).contains(&self.year) {
            return None;
        }
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if nanos && self.nanos > 0 {
            let frac = format!("{:09}", self.nanos);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        if self.offset_secs == 0 {
            s.push('Z');
        } else {
            let sign = if self.offset_secs < 0 { '-' } else { '+' };
            let abs = self.offset_secs.unsigned_abs();
            s.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, (abs / 60) % 60));
        }
        Some(s)
    }

    fn new(
        ymd: (i32, u32, u32),
        hms: (u32, u32, u32),
        nanos: u32,
        offset_secs: i32,
    ) -> Option<GoTime> {
        let (year, month, day) = ymd;
        let (hour, minute, second) = hms;
        let m = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
        time::Date::from_calendar_date(year, m, u8::try_from(day).ok()?).ok()?;
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        Some(GoTime {
            year,
            month: month as u8,
            day: day as u8,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
            nanos,
            offset_secs,
        })
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        while self.i < self.b.len() && self.i - start < max && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if self.i - start < min {
            return None;
        }
        std::str::from_utf8(&self.b[start..self.i])
            .ok()?
            .parse()
            .ok()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn eat_any(&mut self, cs: &[u8]) -> bool {
        match self.b.get(self.i) {
            Some(c) if cs.contains(c) => {
                self.i += 1;
                true
            }
            _ => false,
        }
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }

    /// Optional `.digits` (or `,digits`) fraction; Go keeps the first nine digits.
    fn fraction(&mut self, comma_ok: bool) -> u32 {
        let sep_ok =
            self.b.get(self.i) == Some(&b'.') || (comma_ok && self.b.get(self.i) == Some(&b','));
        if !sep_ok || !self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit) {
            return 0;
        }
        self.i += 1;
        let start = self.i;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        let mut digits: String = String::from_utf8_lossy(&self.b[start..self.i])
            .chars()
            .take(9)
            .collect();
        while digits.len() < 9 {
            digits.push('0');
        }
        digits.parse().unwrap_or(0)
    }

    /// `Z` or `±hh:mm`.
    fn zone(&mut self) -> Option<i32> {
        if self.eat(b'Z') {
            return Some(0);
        }
        let neg = match self.b.get(self.i) {
            Some(b'+') => false,
            Some(b'-') => true,
            _ => return None,
        };
        self.i += 1;
        let h = self.digits(2, 2)?;
        if !self.eat(b':') {
            return None;
        }
        let m = self.digits(2, 2)?;
        if h > 23 || m > 59 {
            return None;
        }
        let secs = (h * 3600 + m * 60) as i32;
        Some(if neg { -secs } else { secs })
    }
}

/// yaml.v3 `parseTimestamp`: the formats yaml.v3 reads as a timestamp from a plain scalar.
pub(crate) fn parse_yaml_timestamp(s: &str) -> Option<GoTime> {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let mut c = Cursor { b, i: 0 };
    let year = c.digits(4, 4)? as i32;
    c.eat(b'-');
    let month = c.digits(1, 2)?;
    if !c.eat(b'-') {
        return None;
    }
    let day = c.digits(1, 2)?;
    if c.done() {
        return GoTime::new((year, month, day), (0, 0, 0), 0, 0);
    }
    let with_zone = if c.eat_any(b"Tt") {
        true
    } else if c.eat(b' ') {
        false
    } else {
        return None;
    };
    let hour = c.digits(1, 2)?;
    if !c.eat(b':') {
        return None;
    }
    let minute = c.digits(1, 2)?;
    if !c.eat(b':') {
        return None;
    }
    let second = c.digits(1, 2)?;
    let nanos = c.fraction(true);
    let offset = if with_zone { c.zone()? } else { 0 };
    if !c.done() {
        return None;
    }
    GoTime::new((year, month, day), (hour, minute, second), nanos, offset)
}

/// Go `time.Parse(time.RFC3339, s)`: two-digit fields (Go also takes a one-digit hour, which no
/// sops writes and whose MAC could not verify), fractional seconds after `.` or `,`.
pub(crate) fn parse_rfc3339(s: &str) -> Option<GoTime> {
    let b = s.as_bytes();
    let mut c = Cursor { b, i: 0 };
    let year = c.digits(4, 4)? as i32;
    let ok = c.eat(b'-');
    let month = c.digits(2, 2)?;
    let ok = ok && c.eat(b'-');
    let day = c.digits(2, 2)?;
    let ok = ok && c.eat(b'T');
    let hour = c.digits(2, 2)?;
    let ok = ok && c.eat(b':');
    let minute = c.digits(2, 2)?;
    let ok = ok && c.eat(b':');
    let second = c.digits(2, 2)?;
    if !ok {
        return None;
    }
    let nanos = c.fraction(true);
    let offset = c.zone()?;
    if !c.done() {
        return None;
    }
    GoTime::new((year, month, day), (hour, minute, second), nanos, offset)
}

// ------------------------------------------------------------------------------------------------
// ENC[...] values

/// The parts of an `ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]` value (still base64).
pub(crate) struct EncParts<'a> {
    pub(crate) data: &'a str,
    pub(crate) iv: &'a str,
    pub(crate) tag: &'a str,
    pub(crate) ty: &'a str,
}

/// Parse like sops' `^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]` (greedy groups,
/// no end anchor).
pub(crate) fn parse_enc(s: &str) -> Option<EncParts<'_>> {
    let rest = s.strip_prefix("ENC[AES256_GCM,data:")?;
    let close = rest.rfind(']')?;
    let body = &rest[..close];
    let type_at = body.rfind(",type:")?;
    let tag_at = body[..type_at].rfind(",tag:")?;
    let iv_at = body[..tag_at].rfind(",iv:")?;
    let parts = EncParts {
        data: &body[..iv_at],
        iv: &body[iv_at + 4..tag_at],
        tag: &body[tag_at + 5..type_at],
        ty: &body[type_at + 6..],
    };
    if parts.data.is_empty() || parts.iv.is_empty() || parts.tag.is_empty() || parts.ty.is_empty() {
        return None;
    }
    Some(parts)
}

// ------------------------------------------------------------------------------------------------
// Encryption rules

/// The single key-selection rule stored in a file's metadata.
pub(crate) enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
}

/// The rule rootroll writes into a phase Secret: only the private-key entries (`ca-key.pem`,
/// `tls.key`) are ciphertext; certificates and bundles stay readable (the MAC still covers
/// every value).
pub const PRIVATE_KEYS_REGEX: &str = "^(ca-key\\.pem|tls\\.key)$";

/// The rule rootroll writes into any other document (the key state): every `data` and
/// `stringData` value is ciphertext.
pub const ALL_DATA_REGEX: &str = "^(data|stringData)$";

impl Rule {
    /// sops `shouldBeEncrypted`-style evaluation over every component of the key path.
    pub(crate) fn encrypts(&self, path: &[String]) -> bool {
        match self {
            Rule::UnencryptedSuffix(sfx) => !path.iter().any(|k| k.ends_with(sfx.as_str())),
            Rule::EncryptedSuffix(sfx) => path.iter().any(|k| k.ends_with(sfx.as_str())),
            Rule::UnencryptedRegex(re) => !path.iter().any(|k| re.is_match(k)),
            Rule::EncryptedRegex(re) => path.iter().any(|k| re.is_match(k)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_yaml_v3() {
        assert!(resolve_plain("2") == Resolved::Int(2));
        assert!(resolve_plain("0x1F") == Resolved::Int(31));
        assert!(resolve_plain("0777") == Resolved::Int(511));
        assert!(resolve_plain("1_000") == Resolved::Int(1000));
        assert!(resolve_plain("-5") == Resolved::Int(-5));
        assert!(resolve_plain("08") == Resolved::Float(8.0));
        assert!(resolve_plain("2.50") == Resolved::Float(2.5));
        assert!(resolve_plain("1e3") == Resolved::Float(1000.0));
        assert!(resolve_plain(".5") == Resolved::Float(0.5));
        assert!(resolve_plain("18446744073709551615") == Resolved::Uint);
        assert!(resolve_plain("True") == Resolved::Bool(true));
        assert!(resolve_plain("yes") == Resolved::Str);
        assert!(resolve_plain("~") == Resolved::Null);
        assert!(resolve_plain("3.11.0") == Resolved::Str);
        assert!(resolve_plain("1e400") == Resolved::Str);
        assert!(matches!(
            resolve_plain("2024-01-02T03:04:05Z"),
            Resolved::Time(_)
        ));
        assert!(matches!(resolve_plain("2024-1-2"), Resolved::Time(_)));
        assert!(resolve_plain("2024-13-02") == Resolved::Str);
    }

    #[test]
    fn go_formats() {
        assert_eq!(go_format_float(2.5), "2.5");
        assert_eq!(go_format_float(3.0), "3");
        assert_eq!(go_format_float(1e21), "1000000000000000000000");
        assert_eq!(go_format_float(0.000001), "0.000001");
        let t = parse_yaml_timestamp("2024-1-2t3:04:05.120+02:00").and_then(|t| t.format(true));
        assert_eq!(t.as_deref(), Some("2024-01-02T03:04:05.12+02:00"));
        let t = parse_rfc3339("2026-11-22T12:49:13.123+00:00").and_then(|t| t.format(false));
        assert_eq!(t.as_deref(), Some("2026-11-22T12:49:13Z"));
        assert!(parse_rfc3339("2026-11-22 12:49:13Z").is_none());
        assert!(parse_rfc3339("2026-11-22t12:49:13Z").is_none());
        assert!(parse_rfc3339("2026-11-22T12:49:13z").is_none());
        assert!(parse_rfc3339("2026-11-22T12:49:13+0000").is_none());
        assert!(parse_rfc3339("2026-11-22T12:49:60Z").is_none());
        let t = parse_rfc3339("2026-11-22T12:49:13,5Z").and_then(|t| t.format(false));
        assert_eq!(t.as_deref(), Some("2026-11-22T12:49:13Z"));
        let t = parse_yaml_timestamp("2024-01-02").and_then(|t| t.format(true));
        assert_eq!(t.as_deref(), Some("2024-01-02T00:00:00Z"));
    }

    #[test]
    fn plain_safety() {
        for s in [
            "v1",
            "Secret",
            "ENC[AES256_GCM,data:a+b/c=,iv:x,tag:y,type:str]",
            "3.11.0",
            "^(data|stringData)$",
            ".dockerconfigjson",
            "a:b",
            "x#y",
        ] {
            assert!(is_plain_safe(s), "{s}");
        }
        for s in [
            "",
            "2",
            "true",
            "yes",
            "null",
            "~",
            "a: b",
            "x #y",
            " a",
            "a ",
            "-a",
            "{{x}}",
            "1:20",
            "2024-01-01T00:00:00Z",
            "a\nb",
            "...",
            "'",
            "@x",
        ] {
            assert!(!is_plain_safe(s), "{s}");
        }
    }

    #[test]
    fn enc_parsing() {
        let p = parse_enc("ENC[AES256_GCM,data:AAA=,iv:BBB=,tag:CCC=,type:str]").expect("parses");
        assert_eq!((p.data, p.iv, p.tag, p.ty), ("AAA=", "BBB=", "CCC=", "str"));
        assert!(parse_enc("ENC[AES256_GCM,data:,iv:B,tag:C,type:str]").is_none());
        assert!(parse_enc("v1").is_none());
    }
}
