//! Read and write SOPS v3 files encrypted with age, byte-compatible with the `sops` CLI, Flux's
//! kustomize-controller and KSOPS.
//!
//! Writing follows the recipe of the project's SOPS format notes: one random 32-byte data key per
//! file; the values the file's key rule selects are AES-256-GCM encrypted with a fresh 32-byte
//! IV and their key path as additional data; a SHA-512 MAC over all leaves in file order (the
//! plaintext ones too) is encrypted with `lastmodified` as additional data; the data key is
//! wrapped in one armored age file per recipient. The rule follows least privilege: in a
//! Kubernetes Secret only the private-key entries are ciphertext ([`PRIVATE_KEYS_REGEX`]), so
//! certificate and bundle changes are readable in a pull request; any other document (the key
//! state) has every `data`/`stringData` value encrypted ([`ALL_DATA_REGEX`]).
//!
//! The writer is hand-written: `rops`, the one SOPS crate (0.1.x), was considered and rejected.
//! It writes no `version`, so sops 3.11 refuses its files ("Version string empty"), and it fails
//! to read the legacy empty key lists (`kms: []`) that sops up to 3.9 writes (sops-format notes
//! §7).
//!
//! Reading accepts files written by sops 3.x too (any one key rule, legacy empty key lists,
//! metadata anywhere, typed values) and always verifies the MAC. It is at least as strict as
//! sops 3.11: the `sops` block is decoded the way sops decodes it (`metadata.rs`), key rules are
//! matched the way Go's regexp matches them (`re2.rs`), and what sops refuses is refused here too,
//! naming the file, the field, what it holds and what it should hold. [`claims_sops`] tells a
//! malformed SOPS file from a file that is not SOPS at all.
//!
//! Secrets: the data key and decrypted values live in zeroize-on-drop buffers, no type that holds
//! key material implements `Debug`, and no error message contains a value or key.

mod crypto;
pub(crate) mod format;
mod metadata;
mod re2;
mod yaml;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crypto::{DataKey, EncryptValueError, ValueError};
pub use format::{ALL_DATA_REGEX, PRIVATE_KEYS_REGEX};
use format::{Resolved, Rule};
use metadata::Metadata;
use yaml::{MapItem, Node, Scalar, SeqItem, map_get};

/// The sops version written into new files.
const SOPS_VERSION: &str = "3.11.0";
/// Indentation of emitted YAML, as sops writes it.
const INDENT: usize = 4;

/// Errors from reading or writing SOPS files. Each names the file (the display name passed in)
/// and the check that failed; none contains a secret value or key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SopsError {
    /// A recipient string is not an age X25519 recipient (`age1...`).
    #[error("{message}; {hint}")]
    InvalidRecipient {
        /// What was found (a secret key is described, never shown).
        message: String,
        /// What to use instead.
        hint: String,
    },
    /// `encrypt_yaml` was called without recipients.
    #[error("cannot encrypt {file}: no age recipients given")]
    NoRecipients {
        /// Display name of the file.
        file: String,
    },
    /// The YAML could not be read (or uses a feature this reader refuses).
    #[error("cannot read the YAML of {file} at line {line}: {message}")]
    Yaml {
        /// Display name of the file.
        file: String,
        /// 1-based line of the problem.
        line: usize,
        /// What was wrong (never quotes the input).
        message: String,
    },
    /// The plaintext to encrypt already has a top-level `sops` key.
    #[error("cannot encrypt {file}: it already has a top-level `sops` key (already encrypted?)")]
    AlreadyEncrypted {
        /// Display name of the file.
        file: String,
    },
    /// A key outside the values the file's `encrypted_regex` is meant for matches it (a key
    /// named `data` or `stringData` below the top level, or a private-key name such as
    /// `tls.key` outside `data`); sops' unanchored per-key rule would encrypt it too.
    #[error(
        "cannot encrypt {file}: key `{path}` at line {line} matches the encrypted_regex \
         `{rule}` outside the values it selects, so sops would encrypt it too; rename it"
    )]
    ReservedKeyName {
        /// Display name of the file.
        file: String,
        /// Key path, components joined with `:`.
        path: String,
        /// 1-based line of the key.
        line: usize,
        /// The rule the file is written with.
        rule: &'static str,
    },
    /// A comment inside (or directly after) `data`/`stringData`, where sops would encrypt it.
    #[error(
        "cannot encrypt {file}: comment at line {line} is inside or right after `{section}`; remove it"
    )]
    CommentInEncryptedSection {
        /// Display name of the file.
        file: String,
        /// `data` or `stringData`.
        section: String,
        /// 1-based line of the comment.
        line: usize,
    },
    /// The lastmodified time cannot be written as `YYYY-MM-DDTHH:MM:SSZ`.
    #[error("cannot encrypt {file}: lastmodified is outside the years 0000-9999")]
    LastModifiedRange {
        /// Display name of the file.
        file: String,
    },
    /// The OS random number generator failed.
    #[error(
        "failed to get random bytes from the operating system while encrypting {file}: {reason}"
    )]
    Random {
        /// Display name of the file.
        file: String,
        /// The RNG error (getrandom's error type is not `std::error::Error` without its `std`
        /// feature, so it is kept as text).
        reason: String,
    },
    /// AES-GCM refused to encrypt a value (should not happen).
    #[error("failed to encrypt the value at `{path}` in {file}")]
    EncryptValue {
        /// Display name of the file.
        file: String,
        /// Key path, components joined with `:`.
        path: String,
    },
    /// age could not encrypt the data key to a recipient.
    #[error("failed to encrypt the data key of {file} to age recipient {recipient}")]
    AgeEncrypt {
        /// Display name of the file.
        file: String,
        /// The recipient.
        recipient: String,
        /// The age error (boxed: it is large).
        #[source]
        source: Box<age::EncryptError>,
    },
    /// The document has no top-level `sops` key.
    #[error("{file} is not a sops file: no top-level `sops` metadata")]
    MetadataMissing {
        /// Display name of the file.
        file: String,
    },
    /// A field of the `sops` block has the wrong type or an invalid value.
    #[error(
        "malformed sops metadata in {file}: `{field}`{} is {found}, expected {expected}",
        line.map(|l| format!(" (line {l})")).unwrap_or_default()
    )]
    MetadataField {
        /// Display name of the file.
        file: String,
        /// The field's path, e.g. `sops.age[0].enc`.
        field: String,
        /// 1-based line of the field, when it is there.
        line: Option<usize>,
        /// What the file has (`missing`, `a list`, a quoted value of a non-secret field...).
        found: String,
        /// What sops needs there.
        expected: String,
    },
    /// A field of the `sops` block is invalid.
    #[error("malformed sops metadata in {file}: `{field}` {problem}")]
    Metadata {
        /// Display name of the file.
        file: String,
        /// The field, e.g. `lastmodified`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A key rule (`encrypted_regex`, `unencrypted_regex`) is not a pattern that can be matched
    /// the way sops matches it.
    #[error(
        "cannot use the key rule of {file}: `sops.{field}` is {pattern}: {reason} (rootroll \
         accepts only patterns that Go's regexp, which sops uses, reads the same way)"
    )]
    RulePattern {
        /// Display name of the file.
        file: String,
        /// `encrypted_regex` or `unencrypted_regex`.
        field: String,
        /// The pattern, quoted and shortened (see `shown`).
        pattern: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The file uses a sops feature this implementation does not support.
    #[error("{file} uses an unsupported sops feature: {feature}")]
    Unsupported {
        /// Display name of the file.
        file: String,
        /// The feature.
        feature: String,
    },
    /// None of the identities decrypts any `sops.age[].enc` stanza.
    #[error(
        "cannot decrypt the data key of {file}: it is encrypted to {recipients}, and none of the \
         {identities} age identities given is one of them; give the identity (age secret key) of \
         one of these recipients"
    )]
    NoMatchingIdentity {
        /// Display name of the file.
        file: String,
        /// Number of identities tried.
        identities: usize,
        /// Number of age stanzas in the file.
        stanzas: usize,
        /// The recipients the file names (public keys), at most five, for the message.
        recipients: String,
    },
    /// The stanza for a recipient whose identity was given does not open with it.
    #[error(
        "the age stanza of {file} for {recipient} does not open with that recipient's identity: \
         it was modified or cut short"
    )]
    AgeStanzaBroken {
        /// Display name of the file.
        file: String,
        /// The stanza's recipient.
        recipient: String,
    },
    /// An age stanza decrypted to something other than a 32-byte key.
    #[error("the data key of {file} decrypted to {len} bytes instead of 32")]
    DataKeyLength {
        /// Display name of the file.
        file: String,
        /// Length found.
        len: usize,
    },
    /// A value the file's rule says is encrypted is not in `ENC[...]` form.
    #[error(
        "value at `{path}` in {file} should be encrypted ({why}) but is not in sops' ENC[...] \
         format"
    )]
    NotEncrypted {
        /// Display name of the file.
        file: String,
        /// Key path, components joined with `:`.
        path: String,
        /// Which rule selects it.
        why: String,
    },
    /// An `ENC[...]` value is malformed (bad base64, IV or tag length, type).
    #[error("value at `{path}` in {file} is malformed: {problem}")]
    MalformedValue {
        /// Display name of the file.
        file: String,
        /// Key path, components joined with `:`.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// A value failed AES-GCM authentication: it was changed, or its key renamed or moved.
    #[error(
        "value at `{path}` in {file} failed authentication: it was modified, or its key was \
         renamed or moved"
    )]
    ValueAuth {
        /// Display name of the file.
        file: String,
        /// Key path, components joined with `:`.
        path: String,
    },
    /// `sops.mac` is missing or empty.
    #[error(
        "{file} has no mac (`sops.mac` is missing or empty), so nothing proves its values were \
         not changed; refusing to trust it"
    )]
    MacMissing {
        /// Display name of the file.
        file: String,
    },
    /// `sops.mac` cannot be decrypted: `lastmodified` or `mac` was edited.
    #[error("cannot decrypt the mac of {file}: sops.lastmodified or sops.mac was modified")]
    MacUndecryptable {
        /// Display name of the file.
        file: String,
    },
    /// The MAC does not match the values: values were changed, reordered, added or removed.
    #[error(
        "mac mismatch in {file}: values were modified, reordered, added or removed after \
         encryption{hint}"
    )]
    MacMismatch {
        /// Display name of the file.
        file: String,
        /// What else the walk saw that explains the mismatch (empty, or `; ...`).
        hint: String,
    },
    /// An identity file could not be read.
    #[error("failed to read age identities from '{path}'")]
    ReadIdentities {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of an identity source is not a valid age identity.
    #[error("invalid age identity in {origin} at line {line}")]
    InvalidIdentity {
        /// The file path or environment variable.
        origin: String,
        /// 1-based line.
        line: usize,
    },
    /// No identity was found anywhere.
    #[error("no age identities found (looked in: {searched})")]
    NoIdentities {
        /// The places searched.
        searched: String,
    },
}

/// Parse an age X25519 recipient (`age1...`).
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, SopsError> {
    check_recipient(s).map_err(|p| SopsError::InvalidRecipient {
        message: p.message,
        hint: p.hint,
    })
}

/// Why a text is not an age X25519 recipient rootroll can encrypt to: what it is, and what to
/// use instead. A secret key is never echoed.
#[derive(Debug, Clone)]
pub struct RecipientProblem {
    /// What was found (a secret key is described, never shown).
    pub message: String,
    /// What to use instead.
    pub hint: String,
}

/// Parses an age X25519 recipient with the age crate's own parser, naming what anything else
/// is (a secret key, a post-quantum or plugin recipient, an SSH key). The one rule for plan
/// recipients and `--age-recipient`.
pub fn check_recipient(text: &str) -> Result<age::x25519::Recipient, RecipientProblem> {
    let v = text.trim();
    let keygen = "use the X25519 public key `age-keygen -y KEYFILE` prints (age1…, 62 characters)";
    if v.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        // Never echo it: the plan is not the place for a secret, and errors are logged.
        return Err(RecipientProblem {
            message: "an age secret key (not shown) is listed as a recipient".into(),
            hint: format!(
                "{keygen}; the secret key is now in the plan file: treat it as leaked and replace it"
            ),
        });
    }
    let shown = || {
        let mut s: String = v.chars().take(70).collect();
        if s.len() < v.len() {
            s.push('…');
        }
        s.escape_debug().to_string()
    };
    if v.starts_with("age1pq1") {
        return Err(RecipientProblem {
            message: format!(
                "`{}` is a post-quantum (ML-KEM hybrid) age recipient: the age crate rootroll encrypts with (0.12) cannot encrypt to it yet (str4d/rage#621)",
                shown()
            ),
            hint: format!("{keygen}; sops and Flux read X25519 recipients too"),
        });
    }
    match v.parse::<age::x25519::Recipient>() {
        Ok(parsed) => Ok(parsed),
        Err(why) => {
            let plugin = why == "incorrect HRP"
                && v.rsplit_once('1')
                    .is_some_and(|(hrp, _)| hrp.to_ascii_lowercase().starts_with("age1"));
            let message = if v.starts_with("ssh-") {
                format!(
                    "`{}` is an SSH public key; rootroll and sops encrypt to age X25519 recipients",
                    shown()
                )
            } else if plugin {
                format!(
                    "`{}` is an age plugin recipient; rootroll encrypts only to X25519 recipients",
                    shown()
                )
            } else {
                format!("`{}` is not an age X25519 recipient ({why})", shown())
            };
            Err(RecipientProblem {
                message,
                hint: keygen.to_string(),
            })
        }
    }
}

fn parse_yaml(file: &str, src: &str) -> Result<Vec<MapItem>, SopsError> {
    yaml::parse_document(src).map_err(|e| SopsError::Yaml {
        file: file.to_string(),
        line: e.line,
        message: e.message,
    })
}

/// A metadata value quoted for an error message: control characters escaped, at most 60
/// characters. Only for `sops` metadata (never secret); never for values of the document.
pub(crate) fn shown(value: &str) -> String {
    const MAX: usize = 60;
    let mut out = String::from("`");
    for (n, c) in value.chars().enumerate() {
        if n == MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}

fn join_path(path: &[String]) -> String {
    path.join(":")
}

fn aad(path: &[String]) -> String {
    let mut s = path.join(":");
    s.push(':');
    s
}

/// Upper-case hex of a SHA-512 digest, as Go's `fmt.Sprintf("%X")` writes the MAC.
fn hex_upper(digest: &[u8; 64]) -> Zeroizing<String> {
    let mut buf = Zeroizing::new([0u8; 128]);
    // 64 bytes always fit the 128-byte buffer.
    let hex = base16ct::upper::encode_str(digest, &mut buf[..]).unwrap_or_default();
    Zeroizing::new(hex.to_string())
}

// ------------------------------------------------------------------------------------------------
// Encryption

/// Encrypt a plaintext YAML document (one mapping) to every recipient, the way
/// `sops encrypt --encrypted-regex RULE` does, with the rule [`encrypted_regex_for`] picks:
/// a `v1` `Secret` gets only its private-key entries encrypted, any other document every
/// `data`/`stringData` value. The MAC covers every value either way.
///
/// Every scalar is a string exactly as written (`2` becomes the string "2" and is written
/// `"2"`); empty values stay null. Keys keep their input order; the `sops:` block comes last.
/// Refuses keys the rule would select outside the values it is meant for (`data` below the top
/// level; `tls.key` outside `data`) and, with the `data` rule, comments inside (or right after)
/// the top-level `data`/`stringData`.
pub fn encrypt_yaml(
    display_name: &str,
    plaintext_yaml: &str,
    recipients: &[age::x25519::Recipient],
    lastmodified: time::OffsetDateTime,
) -> Result<String, SopsError> {
    let file = display_name;
    if recipients.is_empty() {
        return Err(SopsError::NoRecipients {
            file: file.to_string(),
        });
    }
    let mut root = parse_yaml(file, plaintext_yaml)?;
    let regex = rule_for(&root);
    check_plaintext(file, &root, regex)?;
    let lm = format_lastmodified(file, lastmodified)?;

    let random_err = |e: getrandom::Error| SopsError::Random {
        file: file.to_string(),
        reason: e.to_string(),
    };
    let key = DataKey::generate().map_err(random_err)?;
    let rule = Rule::EncryptedRegex(
        re2::Regex::new(regex).expect("the built-in encrypted_regex is valid"),
    );
    let mut walk = EncryptWalk {
        file,
        key: &key,
        rule: &rule,
        hasher: Sha512::new(),
    };
    let mut path = Vec::new();
    walk.map(&mut root, &mut path)?;
    let digest = Zeroizing::new(<[u8; 64]>::from(walk.hasher.finalize()));
    let mac_plain = hex_upper(&digest);
    let mac = crypto::encrypt_value(&key, mac_plain.as_bytes(), lm.as_bytes(), "str").map_err(
        |e| match e {
            EncryptValueError::Random(source) => random_err(source),
            EncryptValueError::Cipher => SopsError::EncryptValue {
                file: file.to_string(),
                path: "sops:mac".to_string(),
            },
        },
    )?;

    let mut age_entries = Vec::new();
    for r in recipients {
        let enc = crypto::wrap_key(r, &key).map_err(|source| SopsError::AgeEncrypt {
            file: file.to_string(),
            recipient: r.to_string(),
            source: Box::new(source),
        })?;
        age_entries.push(SeqItem::Value(Node::Map(vec![
            pair("recipient", Node::Scalar(Scalar::string(r.to_string()))),
            pair("enc", Node::Scalar(Scalar::string(enc))),
        ])));
    }
    let meta = vec![
        pair("age", Node::Seq(age_entries)),
        pair("lastmodified", Node::Scalar(Scalar::string(lm))),
        pair("mac", Node::Scalar(Scalar::string(mac))),
        pair(
            "encrypted_regex",
            Node::Scalar(Scalar::string(regex.to_string())),
        ),
        pair(
            "version",
            Node::Scalar(Scalar::string(SOPS_VERSION.to_string())),
        ),
    ];
    root.push(pair("sops", Node::Map(meta)));
    Ok(yaml::emit_document(&root, INDENT))
}

fn pair(key: &str, value: Node) -> MapItem {
    MapItem::Pair {
        key: key.to_string(),
        value,
        line: 0,
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC, like Go's `time.Now().UTC().Format(time.RFC3339)`.
fn format_lastmodified(file: &str, t: time::OffsetDateTime) -> Result<String, SopsError> {
    let t = t.to_offset(time::UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return Err(SopsError::LastModifiedRange {
            file: file.to_string(),
        });
    }
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

fn is_reserved(key: &str) -> bool {
    key == "data" || key == "stringData"
}

/// The `encrypted_regex` rootroll writes into a document: [`PRIVATE_KEYS_REGEX`] for a
/// Kubernetes Secret (`apiVersion: v1`, `kind: Secret`), [`ALL_DATA_REGEX`] for anything
/// else, so a document that is not a Secret never has a value left readable by accident.
/// `None` when the text is not a YAML mapping.
pub fn encrypted_regex_for(plaintext_yaml: &str) -> Option<&'static str> {
    yaml::parse_document(plaintext_yaml)
        .ok()
        .map(|root| rule_for(&root))
}

fn rule_for(root: &[MapItem]) -> &'static str {
    let is = |key: &str, want: &str| matches!(map_get(root, key), Some(Node::Scalar(s)) if s.text.as_str() == want);
    if is("apiVersion", "v1") && is("kind", "Secret") {
        PRIVATE_KEYS_REGEX
    } else {
        ALL_DATA_REGEX
    }
}

/// The checks `encrypt_yaml` makes before encrypting anything.
fn check_plaintext(file: &str, root: &[MapItem], regex: &'static str) -> Result<(), SopsError> {
    if regex == PRIVATE_KEYS_REGEX {
        return check_private_key_names(file, root);
    }
    let mut after_section: Option<&str> = None;
    for item in root {
        match item {
            MapItem::Pair { key, value, .. } => {
                if key == "sops" {
                    return Err(SopsError::AlreadyEncrypted {
                        file: file.to_string(),
                    });
                }
                let mut path = vec![key.clone()];
                check_nested_keys(file, value, &mut path)?;
                if is_reserved(key) {
                    if let Some(line) = first_comment_line(value) {
                        return Err(SopsError::CommentInEncryptedSection {
                            file: file.to_string(),
                            section: key.clone(),
                            line,
                        });
                    }
                    after_section = Some(key);
                } else {
                    after_section = None;
                }
            }
            MapItem::Comment { line, .. } => {
                if let Some(section) = after_section {
                    return Err(SopsError::CommentInEncryptedSection {
                        file: file.to_string(),
                        section: section.to_string(),
                        line: *line,
                    });
                }
            }
        }
    }
    Ok(())
}

fn check_nested_keys(file: &str, node: &Node, path: &mut Vec<String>) -> Result<(), SopsError> {
    match node {
        Node::Map(items) => {
            for item in items {
                if let MapItem::Pair { key, value, line } = item {
                    path.push(key.clone());
                    if is_reserved(key) {
                        return Err(SopsError::ReservedKeyName {
                            file: file.to_string(),
                            path: join_path(path),
                            line: *line,
                            rule: ALL_DATA_REGEX,
                        });
                    }
                    check_nested_keys(file, value, path)?;
                    path.pop();
                }
            }
        }
        Node::Seq(items) => {
            for item in items {
                if let SeqItem::Value(v) = item {
                    check_nested_keys(file, v, path)?;
                }
            }
        }
        Node::Null | Node::Scalar(_) => {}
    }
    Ok(())
}

/// With [`PRIVATE_KEYS_REGEX`]: a private-key name is allowed only as a direct entry of the
/// top-level `data`/`stringData`; anywhere else sops would encrypt it (and all below it) too.
/// Comments never match it (their path is the enclosing map), so they stay as they are.
fn check_private_key_names(file: &str, root: &[MapItem]) -> Result<(), SopsError> {
    let re = re2::Regex::new(PRIVATE_KEYS_REGEX).expect("the built-in encrypted_regex is valid");
    fn map(
        file: &str,
        re: &re2::Regex,
        items: &[MapItem],
        path: &mut Vec<String>,
    ) -> Result<(), SopsError> {
        for item in items {
            let MapItem::Pair { key, value, line } = item else {
                continue;
            };
            if path.is_empty() && key == "sops" {
                return Err(SopsError::AlreadyEncrypted {
                    file: file.to_string(),
                });
            }
            path.push(key.clone());
            let allowed = path.len() == 2
                && is_reserved(&path[0])
                && matches!(value, Node::Scalar(_) | Node::Null);
            if re.is_match(key) && !allowed {
                return Err(SopsError::ReservedKeyName {
                    file: file.to_string(),
                    path: join_path(path),
                    line: *line,
                    rule: PRIVATE_KEYS_REGEX,
                });
            }
            node(file, re, value, path)?;
            path.pop();
        }
        Ok(())
    }
    fn node(
        file: &str,
        re: &re2::Regex,
        n: &Node,
        path: &mut Vec<String>,
    ) -> Result<(), SopsError> {
        match n {
            Node::Map(items) => map(file, re, items, path),
            Node::Seq(items) => items.iter().try_for_each(|item| match item {
                SeqItem::Value(v) => node(file, re, v, path),
                SeqItem::Comment { .. } => Ok(()),
            }),
            Node::Null | Node::Scalar(_) => Ok(()),
        }
    }
    map(file, &re, root, &mut Vec::new())
}

fn first_comment_line(node: &Node) -> Option<usize> {
    match node {
        Node::Map(items) => items.iter().find_map(|i| match i {
            MapItem::Comment { line, .. } => Some(*line),
            MapItem::Pair { value, .. } => first_comment_line(value),
        }),
        Node::Seq(items) => items.iter().find_map(|i| match i {
            SeqItem::Comment { line, .. } => Some(*line),
            SeqItem::Value(v) => first_comment_line(v),
        }),
        Node::Null | Node::Scalar(_) => None,
    }
}

struct EncryptWalk<'a> {
    file: &'a str,
    key: &'a DataKey,
    rule: &'a Rule,
    hasher: Sha512,
}

impl EncryptWalk<'_> {
    fn map(&mut self, items: &mut [MapItem], path: &mut Vec<String>) -> Result<(), SopsError> {
        for item in items {
            if let MapItem::Pair { key, value, .. } = item {
                path.push(key.clone());
                self.node(value, path)?;
                path.pop();
            }
        }
        Ok(())
    }

    fn node(&mut self, node: &mut Node, path: &mut Vec<String>) -> Result<(), SopsError> {
        match node {
            Node::Null => Ok(()),
            Node::Map(items) => self.map(items, path),
            Node::Seq(items) => {
                for item in items {
                    if let SeqItem::Value(v) = item {
                        self.node(v, path)?;
                    }
                }
                Ok(())
            }
            Node::Scalar(s) => {
                // Every scalar is a string exactly as written.
                s.plain = false;
                self.hasher.update(s.text.as_bytes());
                if !s.text.is_empty() && self.rule.encrypts(path) {
                    let enc = crypto::encrypt_value(
                        self.key,
                        s.text.as_bytes(),
                        aad(path).as_bytes(),
                        "str",
                    )
                    .map_err(|e| match e {
                        EncryptValueError::Random(e) => SopsError::Random {
                            file: self.file.to_string(),
                            reason: e.to_string(),
                        },
                        EncryptValueError::Cipher => SopsError::EncryptValue {
                            file: self.file.to_string(),
                            path: join_path(path),
                        },
                    })?;
                    *s = Scalar::string(enc);
                }
                Ok(())
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Decryption

/// Removes the `sops` block from a file's top level and reads it, with the sentence that says
/// which key rule chose the encrypted values (for messages about a value).
fn take_metadata(file: &str, root: &mut Vec<MapItem>) -> Result<(Metadata, String), SopsError> {
    let missing = || SopsError::MetadataMissing {
        file: file.to_string(),
    };
    let idx = root
        .iter()
        .position(|i| matches!(i, MapItem::Pair { key, .. } if key == "sops"))
        .ok_or_else(missing)?;
    let MapItem::Pair {
        value: sops, line, ..
    } = root.remove(idx)
    else {
        return Err(missing());
    };
    let meta = Metadata::parse(file, &sops, line)?;
    let rule_note = match &meta.rule_source {
        Some((name, value)) => format!("the key rule `sops.{name}` {} selects it", shown(value)),
        None => "the file has no key rule, and sops' default encrypts every value whose key does \
                 not end in _unencrypted"
            .to_string(),
    };
    Ok((meta, rule_note))
}

/// Decrypt a SOPS YAML file (written by rootroll or by sops 3.x) with any of the identities,
/// verifying every value and the MAC. Returns the plaintext document as YAML.
pub fn decrypt_yaml(
    display_name: &str,
    encrypted_yaml: &str,
    identities: &[age::x25519::Identity],
) -> Result<Zeroizing<String>, SopsError> {
    let file = display_name;
    let mut root = parse_yaml(file, encrypted_yaml)?;
    let (meta, rule_note) = take_metadata(file, &mut root)?;
    let key = data_key(file, &meta, identities)?;
    let mut walk = DecryptWalk {
        rule_note: &rule_note,
        file,
        key: &key,
        rule: &meta.rule,
        mac_only_encrypted: meta.mac_only_encrypted,
        hasher: Sha512::new(),
        ciphertext_outside_rule: None,
    };
    let mut path = Vec::new();
    walk.map(&mut root, &mut path)?;
    let digest = Zeroizing::new(<[u8; 64]>::from(walk.hasher.finalize()));
    let computed = hex_upper(&digest);

    let mac = meta.mac.as_deref().ok_or_else(|| SopsError::MacMissing {
        file: file.to_string(),
    })?;
    let undecryptable = || SopsError::MacUndecryptable {
        file: file.to_string(),
    };
    let parts = format::parse_enc(mac).ok_or_else(undecryptable)?;
    let stored = crypto::decrypt_value(&key, &parts, meta.mac_aad.as_bytes())
        .map_err(|_| undecryptable())?;
    if stored.as_slice() != computed.as_bytes() {
        let hint = match (&walk.ciphertext_outside_rule, &meta.rule_source) {
            (Some(p), Some((name, value))) => format!(
                "; the value at `{p}` is sops ciphertext that the key rule `sops.{name}` {} \
                 does not select: the rule was changed after encryption",
                shown(value)
            ),
            (Some(p), None) => format!(
                "; the value at `{p}` is sops ciphertext but the file has no key rule (sops' \
                 default encrypts every value but those ending in _unencrypted): a rule was \
                 removed after encryption"
            ),
            (None, _) => String::new(),
        };
        return Err(SopsError::MacMismatch {
            file: file.to_string(),
            hint,
        });
    }
    Ok(Zeroizing::new(yaml::emit_document(&root, INDENT)))
}

/// A SOPS file read without its data key: what anyone may read of it.
pub struct PublicDocument {
    /// The document without its `sops` block and without the values the file's key rule
    /// selects (YAML). Nothing in it was decrypted, and its MAC was not checked: that needs
    /// the data key.
    pub yaml: String,
    /// The key paths (components joined with `:`) of the values left out: each was sops
    /// ciphertext (or empty), as the rule requires.
    pub withheld: Vec<String>,
    /// Key paths of values kept in `yaml` that are nonetheless sops ciphertext: the rule was
    /// changed after encryption, and sops will refuse the file (its MAC hashes them as text).
    pub unselected_ciphertext: Vec<String>,
}

/// Reads a SOPS file without any identity: its `sops` block is checked as [`decrypt_yaml`]
/// checks it, every value the file's key rule selects must be sops ciphertext (or empty, as
/// sops leaves those) and is left out, and the rest is returned as it is. With
/// [`PRIVATE_KEYS_REGEX`] that is a Secret's certificates and bundle; the MAC over all values
/// can only be verified by [`decrypt_yaml`].
pub fn public_document(
    display_name: &str,
    encrypted_yaml: &str,
) -> Result<PublicDocument, SopsError> {
    let file = display_name;
    let mut root = parse_yaml(file, encrypted_yaml)?;
    let (meta, why) = take_metadata(file, &mut root)?;
    let mut found = Found::default();
    withhold(
        file,
        &meta.rule,
        &why,
        &mut root,
        &mut Vec::new(),
        &mut found,
    )?;
    Ok(PublicDocument {
        yaml: yaml::emit_document(&root, INDENT),
        withheld: found.withheld,
        unselected_ciphertext: found.unselected,
    })
}

/// What [`withhold`] finds: the values it left out, and ciphertext it kept.
#[derive(Default)]
struct Found {
    withheld: Vec<String>,
    unselected: Vec<String>,
}

/// Removes from `items` every entry the rule selects, after checking that each value under it
/// is ciphertext, empty or null.
fn withhold(
    file: &str,
    rule: &Rule,
    why: &str,
    items: &mut Vec<MapItem>,
    path: &mut Vec<String>,
    found: &mut Found,
) -> Result<(), SopsError> {
    fn sealed(file: &str, why: &str, node: &Node, path: &mut Vec<String>) -> Result<(), SopsError> {
        match node {
            Node::Null => Ok(()),
            Node::Scalar(s) if s.plain && format::resolve_plain(&s.text) == Resolved::Null => {
                Ok(())
            }
            Node::Scalar(s) if s.text.is_empty() || format::parse_enc(&s.text).is_some() => Ok(()),
            Node::Scalar(_) => Err(SopsError::NotEncrypted {
                file: file.to_string(),
                path: join_path(path),
                why: why.to_string(),
            }),
            Node::Map(items) => items.iter().try_for_each(|i| match i {
                MapItem::Pair { key, value, .. } => {
                    path.push(key.clone());
                    let r = sealed(file, why, value, path);
                    path.pop();
                    r
                }
                MapItem::Comment { .. } => Ok(()),
            }),
            Node::Seq(items) => items.iter().try_for_each(|i| match i {
                SeqItem::Value(v) => sealed(file, why, v, path),
                SeqItem::Comment { .. } => Ok(()),
            }),
        }
    }
    let mut kept = Vec::with_capacity(items.len());
    for mut item in std::mem::take(items) {
        if let MapItem::Pair { key, value, .. } = &mut item {
            path.push(key.clone());
            if rule.encrypts(path) {
                sealed(file, why, value, path)?;
                found.withheld.push(join_path(path));
                path.pop();
                continue;
            }
            match value {
                Node::Map(inner) => withhold(file, rule, why, inner, path, found)?,
                Node::Scalar(s) if format::parse_enc(&s.text).is_some() => {
                    found.unselected.push(join_path(path));
                }
                _ => {}
            }
            path.pop();
        }
        kept.push(item);
    }
    *items = kept;
    Ok(())
}

/// Whether a value is sops ciphertext (`ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`).
pub fn is_ciphertext(value: &str) -> bool {
    format::parse_enc(value).is_some()
}

/// Try every identity against every age stanza.
fn data_key(
    file: &str,
    meta: &Metadata,
    identities: &[age::x25519::Identity],
) -> Result<DataKey, SopsError> {
    if meta.age.is_empty() {
        // Metadata::parse refuses files without age entries; kept so this never reads as a
        // wrong identity.
        return Err(SopsError::Metadata {
            file: file.to_string(),
            field: "sops.age".to_string(),
            problem: "has no entries".to_string(),
        });
    }
    let mut broken = None;
    for stanza in &meta.age {
        // Identities whose public key is the stanza's recipient go first.
        let mut ordered: Vec<&age::x25519::Identity> = identities.iter().collect();
        ordered.sort_by_key(|id| id.to_public().to_string() != stanza.recipient);
        for id in ordered {
            if let Some(plain) = crypto::unwrap_key(id, &stanza.enc) {
                return DataKey::from_slice(&plain).ok_or(SopsError::DataKeyLength {
                    file: file.to_string(),
                    len: plain.len(),
                });
            }
            if id.to_public().to_string() == stanza.recipient {
                broken.get_or_insert_with(|| stanza.recipient.clone());
            }
        }
    }
    if let Some(recipient) = broken {
        return Err(SopsError::AgeStanzaBroken {
            file: file.to_string(),
            recipient,
        });
    }
    let mut named: Vec<String> = meta
        .age
        .iter()
        .take(5)
        .map(|s| match s.recipient.trim() {
            "" => "a recipient the file does not name".to_string(),
            r if r.len() <= 100 && r.bytes().all(|b| b.is_ascii_alphanumeric()) => r.to_string(),
            r => shown(r),
        })
        .collect();
    if meta.age.len() > 5 {
        named.push(format!("{} more", meta.age.len() - 5));
    }
    Err(SopsError::NoMatchingIdentity {
        file: file.to_string(),
        identities: identities.len(),
        stanzas: meta.age.len(),
        recipients: named.join(", "),
    })
}

struct DecryptWalk<'a> {
    file: &'a str,
    key: &'a DataKey,
    rule: &'a Rule,
    mac_only_encrypted: bool,
    hasher: Sha512,
    /// The first value the rule leaves plaintext that is nonetheless sops ciphertext: when the
    /// MAC then fails, the rule was most likely changed.
    ciphertext_outside_rule: Option<String>,
    /// Which rule selects the values to encrypt, for errors.
    rule_note: &'a str,
}

impl DecryptWalk<'_> {
    fn map(&mut self, items: &mut [MapItem], path: &mut Vec<String>) -> Result<(), SopsError> {
        for item in items {
            match item {
                MapItem::Pair { key, value, .. } => {
                    path.push(key.clone());
                    self.node(value, path)?;
                    path.pop();
                }
                MapItem::Comment { text, .. } => self.comment(text, path),
            }
        }
        Ok(())
    }

    fn node(&mut self, node: &mut Node, path: &mut Vec<String>) -> Result<(), SopsError> {
        match node {
            Node::Null => Ok(()),
            Node::Map(items) => self.map(items, path),
            Node::Seq(items) => {
                for item in items {
                    match item {
                        SeqItem::Value(v) => self.node(v, path)?,
                        SeqItem::Comment { text, .. } => self.comment(text, path),
                    }
                }
                Ok(())
            }
            Node::Scalar(s) => self.leaf(s, path),
        }
    }

    /// Encrypted comments are decrypted when possible and otherwise kept, as sops does; they
    /// are never part of the MAC.
    fn comment(&self, text: &mut String, path: &[String]) {
        if !self.rule.encrypts(path) {
            return;
        }
        let Some(parts) = format::parse_enc(text.trim()) else {
            return;
        };
        if parts.ty != "comment" {
            return;
        }
        if let Ok(plain) = crypto::decrypt_value(self.key, &parts, aad(path).as_bytes())
            && let Ok(s) = std::str::from_utf8(&plain)
        {
            *text = s.to_string();
        }
    }

    fn err_path(&self, path: &[String]) -> (String, String) {
        (self.file.to_string(), join_path(path))
    }

    fn unsupported(&self, path: &[String], what: &str) -> SopsError {
        SopsError::Unsupported {
            file: self.file.to_string(),
            feature: format!("{what} at `{}`", join_path(path)),
        }
    }

    fn leaf(&mut self, s: &mut Scalar, path: &[String]) -> Result<(), SopsError> {
        let typed = if s.plain {
            format::resolve_plain(&s.text)
        } else {
            Resolved::Str
        };
        if typed == Resolved::Null {
            // sops leaves nulls alone: neither encrypted nor part of the MAC.
            return Ok(());
        }
        if !self.rule.encrypts(path) {
            if self.ciphertext_outside_rule.is_none()
                && typed == Resolved::Str
                && format::parse_enc(&s.text).is_some()
            {
                self.ciphertext_outside_rule = Some(join_path(path));
            }
            if self.mac_only_encrypted {
                return Ok(());
            }
            // sops `ToBytes` of the value yaml.v3 decoded.
            match typed {
                Resolved::Str => self.hasher.update(s.text.as_bytes()),
                Resolved::Null => {}
                Resolved::Bool(b) => self.hasher.update(if b { "True" } else { "False" }),
                Resolved::Int(i) => self.hasher.update(i.to_string()),
                Resolved::Float(f) => self.hasher.update(format::go_format_float(f)),
                Resolved::Time(t) => match t.format(true) {
                    Some(v) => self.hasher.update(v),
                    None => return Err(self.unsupported(path, "a timestamp outside years 0-9999")),
                },
                Resolved::Uint => return Err(self.unsupported(path, "an integer above 2^63-1")),
                Resolved::Merge => return Err(self.unsupported(path, "a yaml merge key")),
            }
            return Ok(());
        }
        let (file, p) = self.err_path(path);
        let why = self.rule_note.to_string();
        if !matches!(typed, Resolved::Str) {
            return Err(SopsError::NotEncrypted { file, path: p, why });
        }
        if s.text.is_empty() {
            // sops never encrypts empty strings.
            return Ok(());
        }
        let Some(parts) = format::parse_enc(&s.text) else {
            return Err(SopsError::NotEncrypted { file, path: p, why });
        };
        let malformed = |problem: &str| SopsError::MalformedValue {
            file: self.file.to_string(),
            path: join_path(path),
            problem: problem.to_string(),
        };
        let plain =
            crypto::decrypt_value(self.key, &parts, aad(path).as_bytes()).map_err(|e| match e {
                ValueError::Auth => SopsError::ValueAuth {
                    file: self.file.to_string(),
                    path: join_path(path),
                },
                ValueError::Malformed(problem) => malformed(problem),
            })?;
        let text = || -> Result<&str, SopsError> {
            std::str::from_utf8(&plain).map_err(|_| malformed("its plaintext is not UTF-8"))
        };
        let new = match parts.ty {
            "str" => {
                self.hasher.update(&plain[..]);
                Scalar::string(text()?.to_string())
            }
            "bytes" => {
                self.hasher.update(&plain[..]);
                Scalar::string(text()?.to_string())
            }
            "int" => {
                let v: i64 = text()?
                    .parse()
                    .map_err(|_| malformed("its int plaintext is not an integer"))?;
                let s = v.to_string();
                self.hasher.update(&s);
                Scalar::plain(s)
            }
            "float" => {
                let t = text()?;
                let v: f64 = t
                    .parse()
                    .map_err(|_| malformed("its float plaintext is not a number"))?;
                self.hasher.update(format::go_format_float(v));
                Scalar::plain(t.to_string())
            }
            "bool" => {
                let v = format::go_parse_bool(text()?)
                    .ok_or_else(|| malformed("its bool plaintext is not a boolean"))?;
                self.hasher.update(if v { "True" } else { "False" });
                Scalar::plain(v.to_string())
            }
            "time" => {
                let v = format::parse_rfc3339(text()?)
                    .and_then(|t| t.format(true))
                    .ok_or_else(|| malformed("its time plaintext is not an RFC3339 timestamp"))?;
                self.hasher.update(&v);
                Scalar::plain(v)
            }
            _ => return Err(malformed("it has an unknown type")),
        };
        *s = new;
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------------
// Inspection

/// Whether a text presents itself as a SOPS file: false only when it is readable YAML whose
/// (first) document has no top-level `sops` key. Text that cannot be read as YAML may be a
/// damaged SOPS file and counts: [`decrypt_yaml`] then names what is wrong with it.
///
/// This answers "is this SOPS at all?", so that a SOPS file with a malformed `sops` block is
/// reported as malformed, not as "not SOPS". [`is_encrypted`] is Flux's stricter test, which such
/// a file fails. Read from granit-parser's event stream, which builds nothing and does not
/// recurse, so files this module's reader refuses (aliases, deep nesting) are still recognised.
pub fn claims_sops(yaml: &str) -> bool {
    use granit_parser::{Event, Parser};
    // Open collections, and whether the next node of the root mapping is a key.
    let mut depth = 0usize;
    let mut key_next = false;
    for event in Parser::new_from_str(yaml) {
        let Ok((event, _)) = event else {
            return true;
        };
        let node_at_root_level = match event {
            Event::MappingStart(..) if depth == 0 => {
                depth = 1;
                key_next = true;
                false
            }
            Event::MappingStart(..) | Event::SequenceStart(..) if depth > 0 => {
                depth += 1;
                false
            }
            Event::MappingEnd | Event::SequenceEnd => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return false;
                }
                depth == 1
            }
            Event::Scalar(..) | Event::Alias(..) | Event::UnresolvedAlias(..) if depth == 1 => {
                if key_next && matches!(&event, Event::Scalar(v, ..) if v == "sops") {
                    return true;
                }
                true
            }
            Event::Scalar(..) | Event::Alias(..) | Event::UnresolvedAlias(..) => false,
            // The root is not a mapping, or the first document ended.
            Event::SequenceStart(..) | Event::DocumentEnd | Event::StreamEnd => return false,
            Event::StreamStart
            | Event::DocumentStart(..)
            | Event::Comment(..)
            | Event::Anchor(..) => false,
            // An event this code does not know: it cannot tell, so the file counts.
            _ => return true,
        };
        if node_at_root_level {
            key_next = !key_next;
        }
    }
    false
}

/// True when the document has a top-level `sops` mapping with a non-empty `mac` (Flux's
/// `isSOPSEncryptedResource`).
pub fn is_encrypted(yaml: &str) -> bool {
    let Ok(root) = yaml::parse_document(yaml) else {
        return false;
    };
    match map_get(&root, "sops") {
        Some(Node::Map(meta)) => matches!(
            map_get(meta, "mac"),
            Some(Node::Scalar(s)) if !s.text.is_empty()
        ),
        _ => false,
    }
}

/// A document's public part: what decides, without any key, whether an encrypted file still
/// stands for fresh plaintext.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicPart {
    /// Every top-level entry but `sops`, and of `data` and `stringData` the entries that
    /// [`encrypted_regex_for`] leaves readable, as a value that is equal for equal YAML content
    /// (each scalar typed the way sops' YAML library resolves it). An encrypted file whose
    /// `encrypted_regex` is not that rule, or whose selected entry is not ciphertext, gets a
    /// marker entry, so it never stands for fresh plaintext (it must be encrypted anew).
    pub value: serde_json::Value,
    /// The age recipients the `sops` block lists.
    pub recipients: BTreeSet<String>,
    /// The document has a `sops` block with a MAC (see [`is_encrypted`]).
    pub encrypted: bool,
}

/// Reads a document's [`PublicPart`] with this module's YAML reader (one pass, private
/// values skipped). `None` when the reader refuses the document (anchors, tags, duplicate
/// keys, ...): compare another way then.
pub fn public_part(yaml: &str) -> Option<PublicPart> {
    let root = yaml::parse_document(yaml).ok()?;
    let regex = rule_for(&root);
    let rule = Rule::EncryptedRegex(re2::Regex::new(regex).ok()?);
    let mut rest = serde_json::Map::new();
    let mut recipients = BTreeSet::new();
    let mut encrypted = false;
    let mut written_rule = None;
    let mut plaintext_private = false;
    for item in &root {
        let MapItem::Pair { key, value, .. } = item else {
            continue;
        };
        match key.as_str() {
            "data" | "stringData" => {
                let Node::Map(entries) = value else {
                    if rest.insert(key.clone(), comparable(value)?).is_some() {
                        return None;
                    }
                    continue;
                };
                let mut public = serde_json::Map::new();
                for entry in entries {
                    let MapItem::Pair {
                        key: k, value: v, ..
                    } = entry
                    else {
                        continue;
                    };
                    if rule.encrypts(&[key.clone(), k.clone()]) {
                        let ciphertext = match v {
                            Node::Scalar(s) => {
                                s.text.is_empty() || format::parse_enc(&s.text).is_some()
                            }
                            Node::Null => true,
                            _ => false,
                        };
                        plaintext_private |= !ciphertext;
                        continue;
                    }
                    if public.insert(k.clone(), comparable(v)?).is_some() {
                        return None;
                    }
                }
                if rest
                    .insert(key.clone(), serde_json::Value::Object(public))
                    .is_some()
                {
                    return None;
                }
            }
            "sops" => {
                if let Node::Map(meta) = value
                    && let Some(Node::Scalar(r)) = map_get(meta, "encrypted_regex")
                {
                    written_rule = Some(r.text.to_string());
                }
                if let Node::Map(meta) = value {
                    encrypted = matches!(
                        map_get(meta, "mac"),
                        Some(Node::Scalar(s)) if !s.text.is_empty()
                    );
                }
                if let Node::Map(meta) = value
                    && let Some(Node::Seq(age)) = map_get(meta, "age")
                {
                    for stanza in age {
                        if let SeqItem::Value(Node::Map(m)) = stanza
                            && let Some(Node::Scalar(r)) = map_get(m, "recipient")
                        {
                            recipients.insert(r.text.to_string());
                        }
                    }
                }
            }
            _ => {
                if rest.insert(key.clone(), comparable(value)?).is_some() {
                    return None;
                }
            }
        }
    }
    if encrypted && (written_rule.as_deref() != Some(regex) || plaintext_private) {
        // Never equal to a plaintext document's part (no value of one has this key).
        rest.insert(
            "sops".to_string(),
            serde_json::Value::String(format!(
                "rule {} with private entries {}",
                written_rule
                    .as_deref()
                    .map_or_else(|| "none".to_string(), shown),
                if plaintext_private {
                    "in plaintext"
                } else {
                    "encrypted"
                }
            )),
        );
    }
    Some(PublicPart {
        value: serde_json::Value::Object(rest),
        recipients,
        encrypted,
    })
}

/// A node as a value that is equal for equal YAML content: strings as `s:<text>`, other plain
/// scalars tagged with their resolved type. `None` on a duplicate key.
fn comparable(node: &Node) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match node {
        Node::Null => Value::Null,
        Node::Scalar(s) if !s.plain => Value::String(format!("s:{}", s.text.as_str())),
        Node::Scalar(s) => match format::resolve_plain(&s.text) {
            Resolved::Null => Value::Null,
            Resolved::Bool(b) => Value::Bool(b),
            Resolved::Int(i) => Value::String(format!("i:{i}")),
            Resolved::Str => Value::String(format!("s:{}", s.text.as_str())),
            Resolved::Float(_) => Value::String(format!("f:{}", s.text.as_str())),
            Resolved::Uint => Value::String(format!("u:{}", s.text.as_str())),
            Resolved::Time(_) => Value::String(format!("t:{}", s.text.as_str())),
            Resolved::Merge => Value::String("m:<<".to_string()),
        },
        Node::Map(items) => {
            let mut m = serde_json::Map::new();
            for item in items {
                if let MapItem::Pair { key, value, .. } = item
                    && m.insert(key.clone(), comparable(value)?).is_some()
                {
                    return None;
                }
            }
            Value::Object(m)
        }
        Node::Seq(items) => Value::Array(
            items
                .iter()
                .filter_map(|i| match i {
                    SeqItem::Value(v) => Some(comparable(v)),
                    SeqItem::Comment { .. } => None,
                })
                .collect::<Option<Vec<_>>>()?,
        ),
    })
}

// ------------------------------------------------------------------------------------------------
// Identities

/// Find age identities the way sops does, in this order: the `explicit` files, `SOPS_AGE_KEY`
/// (keys separated by whitespace or newlines), the file named by `SOPS_AGE_KEY_FILE`, then
/// `$XDG_CONFIG_HOME/sops/age/keys.txt` (or `$HOME/.config/sops/age/keys.txt`) if it exists.
/// All sources found are merged. `#` lines and empty lines are ignored; post-quantum and plugin
/// identities are skipped (unsupported). `env` looks up environment variables.
pub fn load_identities(
    explicit: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<age::x25519::Identity>, SopsError> {
    let mut out = Vec::new();
    let mut searched = Vec::new();
    for p in explicit {
        read_identity_file(p, &mut out)?;
        searched.push(p.display().to_string());
    }
    let var = |name: &str| {
        env(name)
            .filter(|v| !v.trim().is_empty())
            .map(Zeroizing::new)
    };
    if let Some(keys) = var("SOPS_AGE_KEY") {
        parse_identities("SOPS_AGE_KEY", &keys, &mut out)?;
    }
    searched.push("SOPS_AGE_KEY".to_string());
    if let Some(p) = var("SOPS_AGE_KEY_FILE") {
        read_identity_file(Path::new(p.as_str()), &mut out)?;
        searched.push(format!("SOPS_AGE_KEY_FILE ({})", p.as_str()));
    } else {
        searched.push("SOPS_AGE_KEY_FILE".to_string());
    }
    let config_dir = match var("XDG_CONFIG_HOME") {
        Some(x) => Some(PathBuf::from(x.as_str())),
        None => var("HOME").map(|h| Path::new(h.as_str()).join(".config")),
    };
    if let Some(dir) = config_dir {
        let default = dir.join("sops").join("age").join("keys.txt");
        match std::fs::read_to_string(&default) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                parse_identities(&default.display().to_string(), &text, &mut out)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SopsError::ReadIdentities {
                    path: default,
                    source,
                });
            }
        }
        searched.push(default.display().to_string());
    }
    if out.is_empty() {
        return Err(SopsError::NoIdentities {
            searched: searched.join(", "),
        });
    }
    Ok(out)
}

fn read_identity_file(path: &Path, out: &mut Vec<age::x25519::Identity>) -> Result<(), SopsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SopsError::ReadIdentities {
        path: path.to_path_buf(),
        source,
    })?;
    let text = Zeroizing::new(text);
    parse_identities(&path.display().to_string(), &text, out)
}

fn parse_identities(
    origin: &str,
    text: &str,
    out: &mut Vec<age::x25519::Identity>,
) -> Result<(), SopsError> {
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        for token in line.split_whitespace() {
            if token.starts_with("AGE-PLUGIN-") || token.starts_with("AGE-SECRET-KEY-PQ-") {
                continue;
            }
            let id =
                token
                    .parse::<age::x25519::Identity>()
                    .map_err(|_| SopsError::InvalidIdentity {
                        origin: origin.to_string(),
                        line: n + 1,
                    })?;
            out.push(id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> time::OffsetDateTime {
        time::macros::datetime!(2026-01-02 03:04:05 UTC)
    }

    #[test]
    fn roundtrip_and_tamper() {
        let id = age::x25519::Identity::generate();
        // Not a Secret: every data and stringData value is encrypted.
        let src = "apiVersion: v1\nkind: Thing\nmetadata:\n  name: x\n  labels:\n    replicas: 2\ntype: Opaque\ndata:\n  a: aGVsbG8=\n  b: \"\"\nstringData:\n  c: |\n    multi\n    line\n";
        let enc = encrypt_yaml("t.yaml", src, &[id.to_public()], now()).expect("encrypts");
        assert!(is_encrypted(&enc));
        assert!(!is_encrypted(src));
        assert!(
            enc.contains("lastmodified: \"2026-01-02T03:04:05Z\""),
            "{enc}"
        );
        assert!(enc.contains("        replicas: \"2\"\n"), "{enc}");
        let dec = decrypt_yaml("t.yaml", &enc, std::slice::from_ref(&id)).expect("decrypts");
        assert!(dec.contains("a: aGVsbG8=\n"), "{}", dec.as_str());
        assert!(
            dec.contains("c: |\n        multi\n        line\n"),
            "{}",
            dec.as_str()
        );
        let other = age::x25519::Identity::generate();
        assert!(matches!(
            decrypt_yaml("t.yaml", &enc, &[other]),
            Err(SopsError::NoMatchingIdentity { .. })
        ));
        let tampered = enc.replace("name: x", "name: y");
        assert!(matches!(
            decrypt_yaml("t.yaml", &tampered, std::slice::from_ref(&id)),
            Err(SopsError::MacMismatch { .. })
        ));
        let tampered = enc.replace("    a: ENC", "    z: ENC");
        match decrypt_yaml("t.yaml", &tampered, std::slice::from_ref(&id)) {
            Err(SopsError::ValueAuth { path, .. }) => assert_eq!(path, "data:z"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("tampered file decrypted"),
        }
    }

    #[test]
    fn a_secret_has_only_its_private_keys_encrypted_and_every_value_under_the_mac() {
        let id = age::x25519::Identity::generate();
        let src = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ntype: Opaque\ndata:\n  ca-cert.pem: Y2VydA==\n  ca-key.pem: a2V5\nstringData:\n  tls.key: key\n  note: hi\n";
        assert_eq!(encrypted_regex_for(src), Some(PRIVATE_KEYS_REGEX));
        assert_eq!(
            encrypted_regex_for("kind: KeyState\ndata:\n  a: b\n"),
            Some(ALL_DATA_REGEX)
        );
        let enc = encrypt_yaml("s.yaml", src, &[id.to_public()], now()).expect("encrypts");
        assert!(enc.contains("    ca-cert.pem: Y2VydA==\n"), "{enc}");
        assert!(enc.contains("    note: hi\n"), "{enc}");
        assert!(enc.contains("    ca-key.pem: ENC[AES256_GCM,"), "{enc}");
        assert!(enc.contains("    tls.key: ENC[AES256_GCM,"), "{enc}");
        assert!(!enc.contains("a2V5"), "{enc}");
        assert!(
            enc.contains("    encrypted_regex: ^(ca-key\\.pem|tls\\.key)$\n"),
            "{enc}"
        );
        let dec = decrypt_yaml("s.yaml", &enc, std::slice::from_ref(&id)).expect("decrypts");
        assert!(dec.contains("ca-key.pem: a2V5\n"), "{}", dec.as_str());
        // The plaintext certificate is under the MAC.
        let tampered = enc.replace("Y2VydA==", "b3RoZXI=");
        assert!(matches!(
            decrypt_yaml("s.yaml", &tampered, std::slice::from_ref(&id)),
            Err(SopsError::MacMismatch { .. })
        ));
        // Without a key: the certificate, never the key.
        let public = public_document("s.yaml", &enc).expect("reads");
        assert_eq!(public.withheld, ["data:ca-key.pem", "stringData:tls.key"]);
        assert!(
            public.yaml.contains("ca-cert.pem: Y2VydA=="),
            "{}",
            public.yaml
        );
        assert!(!public.yaml.contains("ca-key.pem"), "{}", public.yaml);
        assert!(!public.yaml.contains("sops"), "{}", public.yaml);
        // A private value in plaintext under the rule is refused, without quoting it.
        let plain_key = enc.replacen(
            &enc[enc.find("    ca-key.pem: ").unwrap()..][..enc
                [enc.find("    ca-key.pem: ").unwrap()..]
                .find('\n')
                .unwrap()],
            "    ca-key.pem: a2V5",
            1,
        );
        match public_document("s.yaml", &plain_key) {
            Err(e @ SopsError::NotEncrypted { .. }) => {
                assert!(e.to_string().contains("data:ca-key.pem"), "{e}");
                assert!(!e.to_string().contains("a2V5"), "{e}");
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a plaintext private key was accepted"),
        }
        // The public part: certificates compared, the key not.
        let part = public_part(&enc).expect("part");
        assert_eq!(part.value, public_part(src).expect("part").value);
        let changed = src.replace("Y2VydA==", "b3RoZXI=");
        assert_ne!(part.value, public_part(&changed).expect("part").value);
        assert_eq!(
            part.value,
            public_part(&src.replace("a2V5", "b3RoZXI="))
                .expect("part")
                .value
        );
        // An encrypted file whose private value is not ciphertext never stands for plaintext.
        assert_ne!(
            public_part(&plain_key).expect("part").value,
            public_part(src).expect("part").value
        );
        // Private-key names elsewhere would be encrypted by sops too.
        let misplaced = "apiVersion: v1\nkind: Secret\nmetadata:\n  annotations:\n    tls.key: x\ndata:\n  a: b\n";
        assert!(matches!(
            encrypt_yaml("m", misplaced, &[id.to_public()], now()),
            Err(SopsError::ReservedKeyName { path, .. }) if path == "metadata:annotations:tls.key"
        ));
        // Comments stay readable under this rule, so they are allowed in data.
        let commented =
            "apiVersion: v1\nkind: Secret\ndata:\n  # the CA\n  ca-cert.pem: Y2VydA==\n";
        assert!(encrypt_yaml("c", commented, &[id.to_public()], now()).is_ok());
    }

    #[test]
    fn refuses_bad_plaintext() {
        let r = [age::x25519::Identity::generate().to_public()];
        let nested = "metadata:\n  labels:\n    data: x\n";
        assert!(matches!(
            encrypt_yaml("n", nested, &r, now()),
            Err(SopsError::ReservedKeyName { path, .. }) if path == "metadata:labels:data"
        ));
        let comment = "kind: Secret\ndata:\n  # hi\n  a: b\n";
        assert!(matches!(
            encrypt_yaml("c", comment, &r, now()),
            Err(SopsError::CommentInEncryptedSection { line: 3, .. })
        ));
        let after = "data:\n  a: b\n# trailing\n";
        assert!(matches!(
            encrypt_yaml("c", after, &r, now()),
            Err(SopsError::CommentInEncryptedSection { .. })
        ));
        let ok = "# top\nkind: Secret # k\ndata:\n  a: b\ntype: Opaque\n";
        assert!(encrypt_yaml("c", ok, &r, now()).is_ok());
        assert!(matches!(
            encrypt_yaml("s", "a: b\nsops:\n  mac: x\n", &r, now()),
            Err(SopsError::AlreadyEncrypted { .. })
        ));
        assert!(matches!(
            encrypt_yaml("s", "a: b\n", &[], now()),
            Err(SopsError::NoRecipients { .. })
        ));
    }

    #[test]
    fn claims_sops_is_about_the_top_level_sops_key() {
        for (yaml, claims) in [
            ("a: b\nsops:\n  mac: x\n", true),
            ("sops: ~\n", true),
            ("\"sops\": [1]\n", true),
            ("a: &x b\nc: *x\nsops:\n  mac: [a, list]\n", true),
            ("a: [[[[]]]]\nsops: {}\n", true),
            ("a:\n  sops: x\n", false),
            ("a: {sops: x}\nb: [sops]\n", false),
            ("a: sops\nb: c\n", false),
            ("- sops\n", false),
            ("sops\n", false),
            ("", false),
            ("# only a comment\n", false),
            ("a: b\n---\nsops: {}\n", false),
            ("? [a, b]\n: c\nsops: {}\n", true),
            // Not YAML: it may be a damaged SOPS file, decrypt_yaml says what is wrong.
            ("a: [\n", true),
            ("a: *missing\n", true),
        ] {
            assert_eq!(claims_sops(yaml), claims, "{yaml:?}");
        }
        let deep = format!("a: {}{}\nsops: {{}}\n", "[".repeat(5000), "]".repeat(5000));
        assert!(claims_sops(&deep));
    }

    #[test]
    fn recipient_parsing() {
        let id = age::x25519::Identity::generate();
        let r = id.to_public().to_string();
        assert!(parse_recipient(&r).is_ok());
        assert!(parse_recipient(&format!("  {r}\n")).is_ok());
        assert!(parse_recipient("ssh-ed25519 AAAA").is_err());
        assert!(parse_recipient("age1notvalid").is_err());
        let secret = id.to_string();
        use age::secrecy::ExposeSecret;
        let e = parse_recipient(secret.expose_secret()).expect_err("secret key is no recipient");
        assert!(!e.to_string().contains(secret.expose_secret()));
    }
}
