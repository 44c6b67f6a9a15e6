//! The `sops:` metadata block, read the way sops reads it, so that what sops refuses is refused
//! here too, each refusal naming the field, what it is and what it should be.
//!
//! sops (`stores/stores.go`, the sops 3.11 release the tests run) decodes the block with yaml.v3
//! into typed Go structs, then checks it (`Metadata.ToInternal`, then the semver check of
//! `version`). The [`SOPS`] schema below is those structs; decoding follows yaml.v3 into Go
//! types:
//! - a string field takes any scalar (its text as written) and null (empty);
//! - a bool takes YAML 1.2 booleans and, quoted or not, the YAML 1.1 words yes/no/on/off/y/n;
//! - an int takes plain integers and floats (truncated);
//! - a list takes a sequence, whose null items are skipped, or null;
//! - a struct takes a mapping, whose unknown fields are ignored;
//! - anything else is a type error, reported as sops reports it: "cannot unmarshal".
//!
//! Then: `lastmodified` must be an RFC 3339 time; at least one key must be listed (the top-level
//! lists if any is non-empty, otherwise `key_groups`); every non-age key's `created_at` must be an
//! RFC 3339 time and an `hckms` `key_id` must be `region:uuid`; at most one of the six key rules
//! may be set; `version` must be a semantic version (one leading `v` allowed).
//!
//! Deliberately stricter than sops 3.11, each for a file no sops release writes:
//! - a `version` starting with `1.` that is not a semantic version (sops skips its check for
//!   those, from its 1.x days);
//! - an age entry whose `enc` is empty (sops skips it when another key opens the file; here the
//!   file is damaged for that recipient and is refused);
//! - a key rule that Go's regexp cannot compile or reads differently from the `regex` crate
//!   ([`super::re2`]; sops then silently selects no key);
//! - `mac` that is not an `ENC[AES256_GCM,...,type:str]` value is refused here, before the data
//!   key is opened; sops refuses it too, after decrypting every value.
//!
//! Not supported (refused as such): several key groups (Shamir secret sharing), the comment
//! rules `encrypted_comment_regex` / `unencrypted_comment_regex`, and files listing only keys
//! other than age.

use super::format::{self, Resolved, Rule};
use super::re2::Regex;
use super::yaml::{MapItem, Node, SeqItem};
use super::{SopsError, shown};

/// A Go field type of sops' metadata structs, with what the field holds (for errors).
#[derive(Clone, Copy)]
enum Ty {
    /// A string whose value may be quoted in an error.
    Str(&'static str),
    /// A string never quoted in an error (ciphertext: `enc`, `mac`).
    Opaque(&'static str),
    Bool,
    Int,
    /// `map[string]*string` (an AWS KMS encryption context).
    StrMap,
    /// A list of structs.
    List(&'static Shape),
}

/// A Go struct: how errors name a list of them and one of them, and its fields.
struct Shape {
    plural: &'static str,
    one: &'static str,
    fields: &'static [(&'static str, Ty)],
}

const STRING: Ty = Ty::Str("a string");
const TIME: Ty = Ty::Str("an RFC 3339 time like 2026-01-02T03:04:05Z");
const KEY: Ty = Ty::Opaque("the encrypted data key (a string)");

static AGE: Shape = Shape {
    plural: "age entries",
    one: "an age entry (a mapping with recipient and enc)",
    fields: &[
        ("recipient", Ty::Str("an age recipient (age1...)")),
        (
            "enc",
            Ty::Opaque("the data key as an armored age file (a string)"),
        ),
    ],
};
static PGP: Shape = Shape {
    plural: "pgp entries",
    one: "a pgp entry (a mapping)",
    fields: &[("created_at", TIME), ("enc", KEY), ("fp", STRING)],
};
static KMS: Shape = Shape {
    plural: "AWS KMS entries",
    one: "an AWS KMS entry (a mapping)",
    fields: &[
        ("arn", STRING),
        ("role", STRING),
        ("context", Ty::StrMap),
        ("created_at", TIME),
        ("enc", KEY),
        ("aws_profile", STRING),
    ],
};
static GCP_KMS: Shape = Shape {
    plural: "GCP KMS entries",
    one: "a GCP KMS entry (a mapping)",
    fields: &[("resource_id", STRING), ("created_at", TIME), ("enc", KEY)],
};
static HCKMS: Shape = Shape {
    plural: "HuaweiCloud KMS entries",
    one: "a HuaweiCloud KMS entry (a mapping)",
    fields: &[
        ("key_id", Ty::Str("region:key-uuid")),
        ("created_at", TIME),
        ("enc", KEY),
    ],
};
static AZURE_KV: Shape = Shape {
    plural: "Azure Key Vault entries",
    one: "an Azure Key Vault entry (a mapping)",
    fields: &[
        ("vault_url", STRING),
        ("name", STRING),
        ("version", STRING),
        ("created_at", TIME),
        ("enc", KEY),
    ],
};
static HC_VAULT: Shape = Shape {
    plural: "HashiCorp Vault entries",
    one: "a HashiCorp Vault entry (a mapping)",
    fields: &[
        ("vault_address", STRING),
        ("engine_path", STRING),
        ("key_name", STRING),
        ("created_at", TIME),
        ("enc", KEY),
    ],
};

/// The key lists, at the top level and in each key group.
const KEY_LISTS: [(&str, &Shape); 7] = [
    ("kms", &KMS),
    ("gcp_kms", &GCP_KMS),
    ("hckms", &HCKMS),
    ("azure_kv", &AZURE_KV),
    ("hc_vault", &HC_VAULT),
    ("age", &AGE),
    ("pgp", &PGP),
];

static KEY_GROUP: Shape = Shape {
    plural: "key groups",
    one: "a key group (a mapping of key lists)",
    fields: &[
        ("pgp", Ty::List(&PGP)),
        ("kms", Ty::List(&KMS)),
        ("gcp_kms", Ty::List(&GCP_KMS)),
        ("hckms", Ty::List(&HCKMS)),
        ("azure_kv", Ty::List(&AZURE_KV)),
        ("hc_vault", Ty::List(&HC_VAULT)),
        ("age", Ty::List(&AGE)),
    ],
};

/// The six key rules; at most one may be set.
const RULES: [&str; 6] = [
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
];

/// The key rules' values.
const PATTERN: Ty = Ty::Str("a regular expression (a string)");
const SUFFIX: Ty = Ty::Str("a key suffix (a string)");

/// `stores.Metadata`.
static SOPS: Shape = Shape {
    plural: "",
    one: "the sops metadata (a mapping)",
    fields: &[
        ("shamir_threshold", Ty::Int),
        ("key_groups", Ty::List(&KEY_GROUP)),
        ("kms", Ty::List(&KMS)),
        ("gcp_kms", Ty::List(&GCP_KMS)),
        ("hckms", Ty::List(&HCKMS)),
        ("azure_kv", Ty::List(&AZURE_KV)),
        ("hc_vault", Ty::List(&HC_VAULT)),
        ("age", Ty::List(&AGE)),
        ("lastmodified", TIME),
        ("mac", Ty::Opaque(MAC)),
        ("pgp", Ty::List(&PGP)),
        ("unencrypted_suffix", SUFFIX),
        ("encrypted_suffix", SUFFIX),
        ("unencrypted_regex", PATTERN),
        ("encrypted_regex", PATTERN),
        ("unencrypted_comment_regex", PATTERN),
        ("encrypted_comment_regex", PATTERN),
        ("mac_only_encrypted", Ty::Bool),
        ("version", Ty::Str(VERSION)),
    ],
};

const MAC: &str = "the encrypted MAC, ENC[AES256_GCM,data:...,iv:...,tag:...,type:str]";
const VERSION: &str = "the semantic version of the sops that wrote the file, like 3.11.0";

/// One `sops.age[]` entry.
pub(crate) struct AgeStanza {
    pub(crate) recipient: String,
    pub(crate) enc: String,
}

/// The parts of the `sops:` block that decryption needs, checked.
pub(crate) struct Metadata {
    pub(crate) age: Vec<AgeStanza>,
    /// `lastmodified` as sops formats it back for the MAC's additional data.
    pub(crate) mac_aad: String,
    /// The `ENC[...]` MAC; `None` when missing or empty.
    pub(crate) mac: Option<String>,
    pub(crate) rule: Rule,
    /// The rule as written (`encrypted_regex` and its value), `None` for sops' default.
    pub(crate) rule_source: Option<(&'static str, String)>,
    pub(crate) mac_only_encrypted: bool,
}

/// A metadata field's value: its node and the line of its key (the line of the enclosing field
/// for list items, which have no key).
#[derive(Clone, Copy)]
struct At<'a> {
    node: &'a Node,
    line: usize,
}

struct Reader<'a> {
    file: &'a str,
}

/// A plain scalar that yaml.v3 reads as null (`~`, `null`, ...), or no value at all.
fn is_null(node: &Node) -> bool {
    match node {
        Node::Null => true,
        Node::Scalar(s) => s.plain && format::resolve_plain(&s.text) == Resolved::Null,
        Node::Map(_) | Node::Seq(_) => false,
    }
}

fn pairs(items: &[MapItem]) -> impl Iterator<Item = (&str, At<'_>)> {
    items.iter().filter_map(|i| match i {
        MapItem::Pair { key, value, line } => Some((
            key.as_str(),
            At {
                node: value,
                line: *line,
            },
        )),
        MapItem::Comment { .. } => None,
    })
}

fn field<'a>(items: &'a [MapItem], name: &str) -> Option<At<'a>> {
    pairs(items).find(|(k, _)| *k == name).map(|(_, at)| at)
}

/// Text of a string field (already type-checked): empty when missing or null.
fn text<'a>(items: &'a [MapItem], name: &str) -> &'a str {
    match field(items, name).map(|at| at.node) {
        Some(n @ Node::Scalar(s)) if !is_null(n) => &s.text,
        _ => "",
    }
}

/// The non-null items of a (type-checked) list field, with their index in the file.
fn entries<'a>(items: &'a [MapItem], name: &str) -> Vec<(usize, &'a [MapItem], usize)> {
    let Some(at) = field(items, name) else {
        return Vec::new();
    };
    let Node::Seq(list) = at.node else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|i| match i {
            SeqItem::Value(v) => Some(v),
            SeqItem::Comment { .. } => None,
        })
        .enumerate()
        .filter_map(|(n, v)| match v {
            Node::Map(m) => Some((n, m.as_slice(), at.line)),
            _ => None,
        })
        .collect()
}

/// What a node is, for an error. Scalars are quoted only for fields that are never secret.
fn found(node: &Node, ty: Ty) -> String {
    match node {
        Node::Null => "empty".to_string(),
        Node::Map(_) => "a mapping".to_string(),
        Node::Seq(_) => "a list".to_string(),
        Node::Scalar(s) if is_null(node) => format!("null ({})", shown(&s.text)),
        Node::Scalar(s) if s.text.is_empty() => "an empty string".to_string(),
        Node::Scalar(_) if matches!(ty, Ty::Opaque(_)) => "a string".to_string(),
        Node::Scalar(s) if s.plain => shown(&s.text),
        Node::Scalar(s) => format!("the quoted string {}", shown(&s.text)),
    }
}

fn expected(ty: Ty) -> String {
    match ty {
        Ty::Str(what) | Ty::Opaque(what) => what.to_string(),
        Ty::Bool => "true or false".to_string(),
        Ty::Int => "an integer".to_string(),
        Ty::StrMap => "a mapping of strings".to_string(),
        Ty::List(shape) => format!("a list of {}", shape.plural),
    }
}

/// yaml.v3 decoding a bool field: YAML 1.2 booleans, or the YAML 1.1 words as any scalar.
fn go_yaml_bool(node: &Node) -> Option<bool> {
    let Node::Scalar(s) = node else {
        return None;
    };
    if s.plain
        && let Resolved::Bool(b) = format::resolve_plain(&s.text)
    {
        return Some(b);
    }
    match s.text.as_str() {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// yaml.v3 decoding an int field: plain integers, and plain floats up to i64::MAX (truncated).
fn go_yaml_int_ok(node: &Node) -> bool {
    let Node::Scalar(s) = node else {
        return false;
    };
    if !s.plain {
        return false;
    }
    match format::resolve_plain(&s.text) {
        Resolved::Int(_) => true,
        Resolved::Float(f) => f.is_finite() && f <= i64::MAX as f64,
        _ => false,
    }
}

impl Reader<'_> {
    fn err(&self, path: &str, line: Option<usize>, found: String, expected: String) -> SopsError {
        SopsError::MetadataField {
            file: self.file.to_string(),
            field: path.to_string(),
            line,
            found,
            expected,
        }
    }

    /// Type-checks a value against a Go type, the way yaml.v3 decodes it.
    fn check(&self, path: &str, at: At<'_>, ty: Ty) -> Result<(), SopsError> {
        if is_null(at.node) {
            // Null decodes to the zero value of every type.
            return Ok(());
        }
        let wrong = || self.err(path, Some(at.line), found(at.node, ty), expected(ty));
        match (ty, at.node) {
            (Ty::Str(_) | Ty::Opaque(_), Node::Scalar(_)) => Ok(()),
            (Ty::Bool, n) if go_yaml_bool(n).is_some() => Ok(()),
            (Ty::Int, n) if go_yaml_int_ok(n) => Ok(()),
            (Ty::StrMap, Node::Map(items)) => {
                for (key, value) in pairs(items) {
                    self.check(&format!("{path}.{key}"), value, STRING)?;
                }
                Ok(())
            }
            (Ty::List(shape), Node::Seq(list)) => {
                let values = list.iter().filter_map(|i| match i {
                    SeqItem::Value(v) => Some(v),
                    SeqItem::Comment { .. } => None,
                });
                for (n, item) in values.enumerate() {
                    let item_path = format!("{path}[{n}]");
                    match item {
                        // yaml.v3 skips null items of a list of structs.
                        i if is_null(i) => {}
                        Node::Map(fields) => self.check_struct(&item_path, fields, shape)?,
                        other => {
                            return Err(self.err(
                                &item_path,
                                Some(at.line),
                                found(other, STRING),
                                shape.one.to_string(),
                            ));
                        }
                    }
                }
                Ok(())
            }
            _ => Err(wrong()),
        }
    }

    fn check_struct(&self, path: &str, items: &[MapItem], shape: &Shape) -> Result<(), SopsError> {
        for (key, value) in pairs(items) {
            // Unknown fields are ignored, as yaml.v3 does.
            if let Some((_, ty)) = shape.fields.iter().find(|(name, _)| *name == key) {
                self.check(&format!("{path}.{key}"), value, *ty)?;
            }
        }
        Ok(())
    }

    /// A field that must be a Go RFC 3339 time (`lastmodified`, `created_at`).
    fn time(&self, path: &str, items: &[MapItem], name: &str) -> Result<String, SopsError> {
        let value = text(items, name);
        let at = field(items, name);
        format::parse_rfc3339(value)
            .and_then(|t| t.format(false))
            .ok_or_else(|| {
                self.err(
                    &format!("{path}.{name}"),
                    at.map(|a| a.line),
                    match at {
                        None => "missing".to_string(),
                        Some(a) => found(a.node, STRING),
                    },
                    expected(TIME),
                )
            })
    }

    /// The keys of one group: type-checked already; checks what `toInternal` checks.
    fn group(&self, path: &str, items: &[MapItem]) -> Result<(Vec<AgeStanza>, usize), SopsError> {
        let mut age = Vec::new();
        let mut others = 0;
        for (list, _) in KEY_LISTS {
            for (n, entry, line) in entries(items, list) {
                let entry_path = format!("{path}{list}[{n}]");
                if list == "age" {
                    let enc = text(entry, "enc");
                    if enc.trim().is_empty() {
                        let at = field(entry, "enc");
                        return Err(self.err(
                            &format!("{entry_path}.enc"),
                            Some(at.map_or(line, |a| a.line)),
                            if at.is_some() { "empty" } else { "missing" }.to_string(),
                            "the data key encrypted to this recipient, as an armored age file"
                                .to_string(),
                        ));
                    }
                    age.push(AgeStanza {
                        recipient: text(entry, "recipient").to_string(),
                        enc: enc.to_string(),
                    });
                    continue;
                }
                others += 1;
                self.time(&entry_path, entry, "created_at")?;
                if list == "hckms" {
                    let id = text(entry, "key_id").trim();
                    let valid = id.split_once(':').is_some_and(|(region, uuid)| {
                        !region.trim().is_empty() && !uuid.trim().is_empty()
                    });
                    if !valid {
                        return Err(self.err(
                            &format!("{entry_path}.key_id"),
                            Some(field(entry, "key_id").map_or(line, |a| a.line)),
                            field(entry, "key_id")
                                .map_or("missing".to_string(), |a| found(a.node, STRING)),
                            "region:key-uuid (sops: \"invalid key ID format\")".to_string(),
                        ));
                    }
                }
            }
        }
        Ok((age, others))
    }
}

impl Metadata {
    /// Reads and checks the value of the top-level `sops` key. `line` is the line of that key.
    pub(crate) fn parse(file: &str, sops: &Node, line: usize) -> Result<Metadata, SopsError> {
        let r = Reader { file };
        let items = match sops {
            Node::Map(items) => items.as_slice(),
            n if is_null(n) => {
                return Err(r.err(
                    "sops",
                    Some(line),
                    found(n, STRING),
                    "a mapping with the SOPS metadata (sops: \"sops metadata not found\")"
                        .to_string(),
                ));
            }
            n => {
                return Err(r.err(
                    "sops",
                    Some(line),
                    found(n, STRING),
                    "a mapping with the SOPS metadata".to_string(),
                ));
            }
        };
        r.check_struct("sops", items, &SOPS)?;

        let mac_aad = r.time("sops", items, "lastmodified")?;

        // The top-level key lists when any is non-empty, otherwise the key groups.
        let top_level = KEY_LISTS
            .iter()
            .any(|(list, _)| !entries(items, list).is_empty());
        let (age, others) = if top_level {
            r.group("sops.", items)?
        } else {
            match entries(items, "key_groups").as_slice() {
                [] => {
                    return Err(r.err(
                        "sops.age",
                        field(items, "age").map(|a| a.line),
                        match field(items, "age") {
                            None => "missing".to_string(),
                            Some(a) if matches!(a.node, Node::Seq(_)) => "empty".to_string(),
                            Some(a) => found(a.node, STRING),
                        },
                        "at least one age entry: the file lists no key that could open its data \
                         key (sops: \"No keys found in file\")"
                            .to_string(),
                    ));
                }
                [(n, group, _)] => r.group(&format!("sops.key_groups[{n}]."), group)?,
                several => {
                    return Err(SopsError::Unsupported {
                        file: file.to_string(),
                        feature: format!(
                            "{} key groups in `sops.key_groups` (Shamir secret sharing)",
                            several.len()
                        ),
                    });
                }
            }
        };
        if age.is_empty() {
            return Err(SopsError::Unsupported {
                file: file.to_string(),
                feature: format!(
                    "keys other than age only ({others} pgp, kms or vault keys and no age entry)"
                ),
            });
        }

        let set: Vec<&'static str> = RULES
            .iter()
            .copied()
            .filter(|name| !text(items, name).is_empty())
            .collect();
        if set.len() > 1 {
            let line = field(items, set[1]).map(|a| a.line);
            return Err(r.err(
                &format!("sops.{}", set[1]),
                line,
                format!("set as well as `sops.{}`", set[0]),
                "at most one key rule (sops: \"Cannot use more than one of encrypted_suffix, \
                 unencrypted_suffix, ...\")"
                    .to_string(),
            ));
        }
        let rule_source = set
            .first()
            .map(|name| (*name, text(items, name).to_string()));
        let rule = match &rule_source {
            None => Rule::UnencryptedSuffix("_unencrypted".to_string()),
            Some((name, value)) => match *name {
                "unencrypted_suffix" => Rule::UnencryptedSuffix(value.clone()),
                "encrypted_suffix" => Rule::EncryptedSuffix(value.clone()),
                "unencrypted_regex" => Rule::UnencryptedRegex(compile_rule(file, name, value)?),
                "encrypted_regex" => Rule::EncryptedRegex(compile_rule(file, name, value)?),
                _ => {
                    return Err(SopsError::Unsupported {
                        file: file.to_string(),
                        feature: format!("the key rule `sops.{name}`"),
                    });
                }
            },
        };

        r.version(items)?;

        let mac_only_encrypted = field(items, "mac_only_encrypted")
            .and_then(|a| go_yaml_bool(a.node))
            .unwrap_or(false);

        let mac = text(items, "mac");
        let mac = if mac.is_empty() {
            None
        } else {
            let at = field(items, "mac");
            let line = at.map(|a| a.line);
            match format::parse_enc(mac) {
                None => {
                    return Err(r.err(
                        "sops.mac",
                        line,
                        "a string that is not an ENC[...] value".to_string(),
                        MAC.to_string(),
                    ));
                }
                Some(parts) if parts.ty != "str" => {
                    return Err(r.err(
                        "sops.mac",
                        line,
                        format!("an ENC[...] value of type:{}", shown(parts.ty)),
                        "type:str".to_string(),
                    ));
                }
                Some(_) => Some(mac.to_string()),
            }
        };

        Ok(Metadata {
            age,
            mac_aad,
            mac,
            rule,
            rule_source,
            mac_only_encrypted,
        })
    }
}

impl Reader<'_> {
    /// `version` as sops' `AIsNewerThanB("3.3.0", version)` reads it: a semantic version after one
    /// leading `v` (blang/semver, whose numeric pre-release parts are 64-bit integers).
    fn version(&self, items: &[MapItem]) -> Result<(), SopsError> {
        let at = field(items, "version");
        let value = text(items, "version");
        let bad = |why: String| {
            self.err(
                "sops.version",
                at.map(|a| a.line),
                match at {
                    None => "missing".to_string(),
                    Some(_) if value.is_empty() => "empty".to_string(),
                    Some(a) => found(a.node, STRING),
                },
                format!("{VERSION} ({why})"),
            )
        };
        if value.is_empty() {
            return Err(bad("sops: \"Version string empty\"".to_string()));
        }
        if value.starts_with("1.") && semver::Version::parse(value).is_err() {
            return Err(bad(
                "sops skips its check for versions starting with 1., but no sops that writes \
                 this format is 1.x"
                    .to_string(),
            ));
        }
        let v = value.strip_prefix('v').unwrap_or(value);
        if v.split('.').count() < 3 {
            return Err(bad(
                "sops: \"No Major.Minor.Patch elements found\"".to_string()
            ));
        }
        let parsed = semver::Version::parse(v).map_err(|e| bad(format!("sops refuses it: {e}")))?;
        for part in parsed.pre.split('.') {
            if !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_digit())
                && part.parse::<u64>().is_err()
            {
                return Err(bad(format!(
                    "sops refuses it: the pre-release number {part} is above 2^64-1"
                )));
            }
        }
        Ok(())
    }
}

/// Compiles a key rule's pattern the way sops matches it, or names the file, field and pattern.
fn compile_rule(file: &str, field: &str, pattern: &str) -> Result<Regex, SopsError> {
    Regex::new(pattern).map_err(|e| SopsError::RulePattern {
        file: file.to_string(),
        field: field.to_string(),
        pattern: shown(pattern),
        reason: e.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: &str = "    age:\n        - recipient: age1x\n          enc: AGE\n";
    const REST: &str = "    lastmodified: \"2026-01-02T03:04:05Z\"\n    mac: ENC[AES256_GCM,data:a,iv:b,tag:c,type:str]\n    encrypted_regex: ^(data|stringData)$\n    version: 3.11.0\n";

    fn parse(block: &str) -> Result<Metadata, SopsError> {
        let doc = format!("a: b\nsops:\n{block}");
        let root =
            super::super::yaml::parse_document(&doc).unwrap_or_else(|e| panic!("{}", e.message));
        let sops = super::super::yaml::map_get(&root, "sops").expect("sops");
        Metadata::parse("f.yaml", sops, 2)
    }

    fn message(block: &str) -> String {
        match parse(block) {
            Ok(_) => panic!("accepted:\n{block}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn decodes_fields_as_yaml_v3_decodes_go_types() {
        assert!(parse(&format!("{AGE}{REST}")).is_ok());
        // Bools: YAML 1.2 forms, and YAML 1.1 words even quoted; not "true" quoted, not 1.
        for (v, b) in [
            ("True", true),
            ("\"yes\"", true),
            ("off", false),
            ("~", false),
        ] {
            let m = parse(&format!("{AGE}{REST}    mac_only_encrypted: {v}\n")).expect(v);
            assert_eq!(m.mac_only_encrypted, b, "{v}");
        }
        for v in ["\"true\"", "1", "[a]"] {
            let e = message(&format!("{AGE}{REST}    mac_only_encrypted: {v}\n"));
            assert!(e.contains("`sops.mac_only_encrypted` (line 10)"), "{e}");
            assert!(e.contains("expected true or false"), "{e}");
        }
        // Ints take plain floats; not quoted numbers.
        assert!(parse(&format!("{AGE}{REST}    shamir_threshold: 2.5\n")).is_ok());
        assert!(
            message(&format!("{AGE}{REST}    shamir_threshold: \"2\"\n")).contains("an integer")
        );
        // Strings take any scalar; unknown fields are ignored; null list items are skipped.
        assert!(parse(&format!("{AGE}{REST}    banana: [1]\n    pgp: [~]\n")).is_ok());
        // Top-level key lists win over key groups (which are still type-checked).
        assert!(parse(&format!("{AGE}{REST}    key_groups: [{{}}, {{}}]\n")).is_ok());
        assert!(message(&format!("{AGE}{REST}    key_groups: [x]\n")).contains("a key group"));
    }

    #[test]
    fn each_refusal_names_the_field_what_it_is_and_what_it_should_be() {
        let e = message(&format!("    age: \"string\"\n{REST}"));
        assert!(
            e.contains(
                "`sops.age` (line 3) is the quoted string `string`, expected a list of age entries"
            ),
            "{e}"
        );
        let e = message(&format!(
            "{AGE}{}",
            REST.replace(
                "mac: ENC[AES256_GCM,data:a,iv:b,tag:c,type:str]",
                "mac: [a, list]"
            )
        ));
        assert!(
            e.contains("`sops.mac` (line 7) is a list, expected the encrypted MAC"),
            "{e}"
        );
        let e = message(&format!(
            "{AGE}{}",
            REST.replace("version: 3.11.0", "version: banana")
        ));
        assert!(e.contains("`sops.version` (line 9) is `banana`"), "{e}");
        assert!(e.contains("No Major.Minor.Patch elements found"), "{e}");
        let e = message(&format!(
            "{AGE}{}",
            REST.replace("    version: 3.11.0\n", "")
        ));
        assert!(e.contains("`sops.version` is missing"), "{e}");
        // The MAC and the data key are ciphertext: never quoted.
        let e = message(&format!(
            "{AGE}{}",
            REST.replace("ENC[AES256_GCM,data:a,iv:b,tag:c,type:str]", "SECRETISH")
        ));
        assert!(!e.contains("SECRETISH"), "{e}");
    }
}
