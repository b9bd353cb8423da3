//! One file, one meaning: the plain (unquoted) scalars that kubectl reads otherwise than the
//! CLI does. kubectl reads manifests as YAML 1.1 (sigs.k8s.io/yaml, a fork of go-yaml v2),
//! where `yes`, `on`, `y` are booleans, `010` is octal 8, `0x1F` is 31 and `1_000` is 1000;
//! the CLI reads YAML 1.2 (`serde_yaml`), where they are strings or other numbers. A file the
//! CLI accepts would then mean another thing to the apiserver, or be refused by the CRD.
//!
//! Only plain scalars without a tag are read by these rules: a quoted `"yes"` is a string in
//! both. go-yaml v2 does not read base-60 numbers (`12:30:00` is a string to kubectl too),
//! and keeps timestamp-like scalars as strings when decoding into untyped objects, as kubectl
//! does.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// What go-yaml v2 reads a plain scalar as, when not a string.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Yaml11 {
    /// `true`, `yes`, `on`, `y`... and their negatives.
    Bool(bool),
    /// An integer in decimal, octal (`010`, `0o10`), hex (`0x1F`) or binary (`0b101`), with
    /// `_` separators.
    Int(i128),
    /// A float (`1.5`, `1e3`, `.inf`, `.nan`, `08`).
    Float(f64),
}

impl std::fmt::Display for Yaml11 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Yaml11::Bool(value) => write!(f, "the boolean {value}"),
            Yaml11::Int(value) => write!(f, "the integer {value}"),
            Yaml11::Float(value) => write!(f, "the number {value}"),
        }
    }
}

/// go-yaml v2's reading of an untagged plain scalar (its `resolve`), or `None` for a string
/// or a null.
pub fn resolve(text: &str) -> Option<Yaml11> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            return Some(Yaml11::Bool(true));
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Some(Yaml11::Bool(false));
        }
        ".nan" | ".NaN" | ".NAN" => return Some(Yaml11::Float(f64::NAN)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Yaml11::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Yaml11::Float(f64::NEG_INFINITY)),
        _ => {}
    }
    match text.as_bytes().first()? {
        b'.' => float(text),
        b'+' | b'-' | b'0'..=b'9' => {
            if looks_like_timestamp(text) {
                return None;
            }
            let plain = text.replace('_', "");
            integer(&plain).or_else(|| float_literal(&plain))
        }
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint`: a sign, then a base prefix (`0x`,
/// `0o`, `0b`, or a leading `0` for octal).
fn integer(plain: &str) -> Option<Yaml11> {
    let (negative, unsigned) = match plain.as_bytes().first()? {
        b'-' => (true, &plain[1..]),
        b'+' => (false, &plain[1..]),
        _ => (false, plain),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest)
    } else if lower.len() > 1
        && let Some(rest) = lower.strip_prefix('0')
    {
        (8, rest)
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    let fits = i64::try_from(value).is_ok() || (!negative && u64::try_from(value).is_ok());
    fits.then_some(Yaml11::Int(value))
}

/// go-yaml v2's float pattern `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn float_literal(plain: &str) -> Option<Yaml11> {
    let bytes = plain.as_bytes();
    let mut at = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let whole = digits(at);
    at += whole;
    if bytes.get(at) == Some(&b'.') {
        let fraction = digits(at + 1);
        if whole == 0 && fraction == 0 {
            return None;
        }
        at += 1 + fraction;
    } else if whole == 0 {
        return None;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        at += usize::from(matches!(bytes.get(at), Some(b'+' | b'-')));
        let exponent = digits(at);
        if exponent == 0 {
            return None;
        }
        at += exponent;
    }
    (at == bytes.len()).then(|| float(plain)).flatten()
}

/// Go's `strconv.ParseFloat`, for the texts that reach it.
fn float(text: &str) -> Option<Yaml11> {
    text.parse::<f64>().ok().map(Yaml11::Float)
}

/// go-yaml v2's timestamp forms (`2006-1-2`, with a time after `T`, `t` or a space): kept as
/// strings when decoded into untyped objects, as kubectl decodes.
fn looks_like_timestamp(text: &str) -> bool {
    let date = text.split(['T', 't', ' ']).next().unwrap_or_default();
    let parts: Vec<&str> = date.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// How YAML 1.2 (`serde_yaml`, as the CLI reads) reads the same plain scalar; `None` for an
/// integer beyond 64 bits, which `serde_yaml` parses but cannot hold (its error would quote
/// the digits).
fn yaml12(text: &str) -> Option<serde_yaml::Value> {
    serde_yaml::from_str(text).ok()
}

/// Whether both readings are the same value.
fn same(yaml11: Yaml11, yaml12: &serde_yaml::Value) -> bool {
    match (yaml11, yaml12) {
        (Yaml11::Bool(a), serde_yaml::Value::Bool(b)) => a == *b,
        (Yaml11::Int(a), serde_yaml::Value::Number(b)) => {
            b.as_i64().map(i128::from) == Some(a) || b.as_u64().map(i128::from) == Some(a)
        }
        (Yaml11::Float(a), serde_yaml::Value::Number(b)) => b
            .as_f64()
            .is_some_and(|b| b == a || (a.is_nan() && b.is_nan())),
        _ => false,
    }
}

/// How a YAML 1.2 value is named in messages.
fn describe(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::String(text) => format!("the string {text:?}"),
        serde_yaml::Value::Bool(value) => format!("the boolean {value}"),
        serde_yaml::Value::Number(number) => format!("the number {number}"),
        _ => "another value".to_string(),
    }
}

/// A plain scalar whose meaning differs between YAML 1.1 (kubectl) and YAML 1.2 (the CLI).
#[derive(Clone, Debug, PartialEq)]
pub struct Ambiguous {
    /// 1-based document number.
    pub document: usize,
    /// Where it is, as `spec.tags.env` or `spec.resourceIds[0]`; for a key, the mapping's
    /// path.
    pub field: String,
    /// True when it is a mapping's key.
    pub is_key: bool,
    /// The scalar as written.
    pub text: String,
    /// What kubectl reads.
    pub yaml11: Yaml11,
    /// What the CLI reads, for messages; `None`: a number the CLI cannot hold.
    pub yaml12: Option<String>,
    /// The document's top-level `kind`, if it has one.
    pub kind: Option<String>,
}

impl Ambiguous {
    /// True for a number beyond 64 bits: no reader here can hold it.
    pub fn is_oversized(&self) -> bool {
        self.yaml12.is_none()
    }

    /// Why the scalar is refused, with "quote it"; `secret`: the value is not shown. An
    /// oversized number is never shown (it is a long digit string: as likely a credential as
    /// anything).
    pub fn rule(&self, secret: bool) -> String {
        let what = if self.is_key { "key" } else { "value" };
        let Some(yaml12) = &self.yaml12 else {
            return format!(
                "the unquoted {what} is a number beyond 64 bits, which YAML readers do not \
                 agree on; quote it (the value is not shown)"
            );
        };
        if secret && !self.is_key {
            return format!(
                "the unquoted {what} is a {} to kubectl (YAML 1.1) but not to tagbinder \
                 (YAML 1.2), so the two would read another value; quote it (the value is not \
                 shown)",
                match self.yaml11 {
                    Yaml11::Bool(_) => "boolean",
                    Yaml11::Int(_) | Yaml11::Float(_) => "number",
                }
            );
        }
        format!(
            "the unquoted {what} {} is {} to kubectl (YAML 1.1) but {} to tagbinder (YAML \
             1.2); quote it (\"{}\") where a string is meant",
            self.text, self.yaml11, yaml12, self.text
        )
    }
}

/// One open collection while walking the events.
enum Frame {
    Mapping {
        path: String,
        /// The key whose value comes next; `None` while a key is expected.
        key: Option<String>,
    },
    Sequence {
        path: String,
        index: usize,
    },
}

impl Frame {
    /// The path of the next value in this collection, and whether that node is a key.
    fn next_node(&self) -> (String, bool) {
        match self {
            Frame::Mapping { path, key: None } => (path.clone(), true),
            Frame::Mapping {
                path,
                key: Some(key),
            } => (join(path, key), false),
            Frame::Sequence { path, index } => (format!("{path}[{index}]"), false),
        }
    }

    /// Moves past one node: a key, a value, or an item.
    fn advance(&mut self, scalar: Option<&str>) {
        match self {
            Frame::Mapping { key, .. } => {
                *key = match key {
                    None => Some(scalar.unwrap_or("?").to_string()),
                    Some(_) => None,
                }
            }
            Frame::Sequence { index, .. } => *index += 1,
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Every untagged plain scalar of a (multi-document) YAML text that YAML 1.1 reads otherwise
/// than YAML 1.2, in document order. A text the parser refuses yields what came before the
/// error (the caller reports the error itself).
pub fn ambiguous_scalars(text: &str) -> Vec<Ambiguous> {
    let mut found: Vec<Ambiguous> = Vec::new();
    let mut kinds = std::collections::HashMap::new();
    let mut document = 0;
    let mut open: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(text) {
        let Ok((event, _)) = event else {
            break;
        };
        match event {
            Event::DocumentStart(_) => {
                document += 1;
                open.clear();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let (path, _) = open
                    .last()
                    .map(Frame::next_node)
                    .unwrap_or((String::new(), false));
                open.push(match event {
                    Event::MappingStart(..) => Frame::Mapping { path, key: None },
                    _ => Frame::Sequence { path, index: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                open.pop();
                if let Some(parent) = open.last_mut() {
                    parent.advance(None);
                }
            }
            Event::Scalar(value, style, _, tag) => {
                let (field, is_key) = open
                    .last()
                    .map(Frame::next_node)
                    .unwrap_or((String::new(), false));
                if style == ScalarStyle::Plain
                    && tag.is_none()
                    && let Some(yaml11) = resolve(&value)
                {
                    let yaml12 = yaml12(&value);
                    if !yaml12.as_ref().is_some_and(|v| same(yaml11, v)) {
                        found.push(Ambiguous {
                            document,
                            field: field.clone(),
                            is_key,
                            text: Cow::into_owned(value.clone()),
                            yaml11,
                            yaml12: yaml12.as_ref().map(describe),
                            kind: None,
                        });
                    }
                }
                if field == "kind" && !is_key && open.len() == 1 {
                    kinds.insert(document, value.to_string());
                }
                if let Some(parent) = open.last_mut() {
                    parent.advance(Some(&value));
                }
            }
            Event::Alias(_) => {
                if let Some(parent) = open.last_mut() {
                    parent.advance(None);
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
    for scalar in &mut found {
        scalar.kind = kinds.get(&scalar.document).cloned();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_scalars_as_go_yaml_v2_does() {
        for (text, expected) in [
            ("yes", Some(Yaml11::Bool(true))),
            ("Off", Some(Yaml11::Bool(false))),
            ("y", Some(Yaml11::Bool(true))),
            ("010", Some(Yaml11::Int(8))),
            ("0o17", Some(Yaml11::Int(15))),
            ("0x1F", Some(Yaml11::Int(31))),
            ("-0x1F", Some(Yaml11::Int(-31))),
            ("0b101", Some(Yaml11::Int(5))),
            ("1_000", Some(Yaml11::Int(1000))),
            ("08", Some(Yaml11::Float(8.0))),
            ("1e3", Some(Yaml11::Float(1000.0))),
            (".5", Some(Yaml11::Float(0.5))),
            (
                "12345678901234567890123",
                Some(Yaml11::Float(1.2345678901234568e22)),
            ),
            ("12:30:00", None),
            ("2024-01-02", None),
            ("2024-01-02T03:04:05Z", None),
            ("yES", None),
            ("285bb759342649a1b70c2093a772e087", None),
            ("1.2.3", None),
            ("-", None),
            ("prod", None),
            ("", None),
        ] {
            assert_eq!(resolve(text), expected, "{text}");
        }
    }

    #[test]
    fn finds_scalars_that_kubectl_reads_otherwise_with_their_fields() {
        let text = "kind: ResourceTagBinding\nspec:\n  resourceIds: [a, 010]\n  \
                    tags: {env: yes, yes: x, quoted: \"on\", tagged: !!str off, n: 10, \
                    hex: 0x1F, t: 12:30:00}\n---\nstringData: {s: 1_000}\n";
        let found: Vec<(usize, String, bool, String)> = ambiguous_scalars(text)
            .into_iter()
            .map(|a| (a.document, a.field, a.is_key, a.text))
            .collect();
        assert_eq!(
            found,
            [
                (1, "spec.resourceIds[1]".into(), false, "010".into()),
                (1, "spec.tags.env".into(), false, "yes".into()),
                (1, "spec.tags".into(), true, "yes".into()),
                // NB: `n` is the boolean false to YAML 1.1: kubectl makes it the key "false".
                (1, "spec.tags".into(), true, "n".into()),
                (2, "stringData.s".into(), false, "1_000".into()),
            ]
        );
    }

    #[test]
    fn a_number_beyond_64_bits_is_found_and_never_shown() {
        let found = ambiguous_scalars("kind: Secret\nstringData: {s: 123456789012345678901234}\n");
        assert_eq!(found.len(), 1);
        assert!(found[0].is_oversized());
        assert_eq!(found[0].kind.as_deref(), Some("Secret"));
        let rule = found[0].rule(false);
        assert!(
            rule.contains("quote it") && !rule.contains("1234"),
            "{rule}"
        );
    }

    #[test]
    fn a_secret_value_is_not_shown() {
        let found = ambiguous_scalars("stringData: {s: 0777}\n");
        let rule = found[0].rule(true);
        assert!(rule.contains("quote it") && !rule.contains("777"), "{rule}");
        assert!(found[0].rule(false).contains("0777"));
    }
}
