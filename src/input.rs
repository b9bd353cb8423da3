//! Reading untrusted input within bounds, for the CLI's manifests and state file and the
//! emulator's inventory: the bytes actually read are counted (a device, a pipe or a growing
//! file reports no useful size), and a YAML text is checked for nesting depth and for the size
//! its aliases expand to before `serde_yaml` builds anything from it.

use std::io::Read;
use std::path::Path;

use saphyr_parser::{Event, Parser};

/// Largest manifest file read (the apiserver's own request limit is 3 MiB).
pub const MAX_FILE_BYTES: u64 = 3 * 1024 * 1024;
/// Deepest nesting of YAML collections accepted. tagbinder's objects nest 6 levels; the
/// margin is for users' own annotations.
pub const MAX_YAML_DEPTH: usize = 64;

/// What a YAML file may expand to, aliases expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YamlLimits {
    /// Most nodes (scalars, sequences, mappings).
    pub nodes: u64,
    /// Most bytes of scalars.
    pub scalar_bytes: u64,
}

impl YamlLimits {
    /// The limits for a file of at most `max_bytes`: as many nodes as such a file can hold
    /// written out without aliases (a node takes at least 3 bytes: `a, `), twice its bytes of
    /// scalars. A file without aliases never reaches them.
    pub const fn for_file(max_bytes: u64) -> Self {
        YamlLimits {
            nodes: max_bytes / 3,
            scalar_bytes: 2 * max_bytes,
        }
    }
}

/// Why an input was refused.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The input could not be read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// More than `limit` bytes.
    #[error("input is larger than {} ({limit} bytes), the limit", mib(*limit))]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Not UTF-8.
    #[error("not UTF-8 text (invalid byte at offset {0})")]
    NotUtf8(usize),
}

/// A size in MiB with one decimal, for messages.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Reads at most `limit` bytes from `reader`: more is an error, found after reading
/// `limit + 1` bytes, whatever size the source claims.
pub fn read_bounded(reader: impl Read, limit: u64) -> Result<Vec<u8>, InputError> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge { limit });
    }
    Ok(bytes)
}

/// Reads a file as UTF-8 text of at most `limit` bytes (a leading byte-order mark dropped).
pub fn read_text_file(path: &Path, limit: u64) -> Result<String, InputError> {
    let file = std::fs::File::open(path)?;
    text_of(read_bounded(file, limit)?)
}

/// UTF-8 text of `bytes`, without a leading byte-order mark (editors on Windows write one;
/// YAML and JSON parsers would read it as content).
pub fn text_of(bytes: Vec<u8>) -> Result<String, InputError> {
    let mut text =
        String::from_utf8(bytes).map_err(|e| InputError::NotUtf8(e.utf8_error().valid_up_to()))?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// A YAML text that breaks a bound, or that the parser refuses: which document, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{rule}")]
pub struct YamlLimitError {
    /// 1-based document number.
    pub document: usize,
    /// What is wrong, with the line.
    pub rule: String,
}

/// Checks a (multi-document) YAML text against [`MAX_YAML_DEPTH`] and `limits`, in one pass
/// over the parser's events, stopping at the first breach: the cost is linear in the text,
/// however it nests or aliases. A syntax error is reported too (the bounds cannot be checked
/// past it).
pub fn check_yaml(text: &str, limits: YamlLimits) -> Result<(), YamlLimitError> {
    let mut budget = Budget {
        limits,
        document: 0,
        total: Size::default(),
        open: Vec::new(),
        anchors: std::collections::HashMap::new(),
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|error| YamlLimitError {
            document: budget.document.max(1),
            // NB: the scanner looks ahead, and stops deep flow nesting itself (at 256 levels
            // or so) before the parser's events reach MAX_YAML_DEPTH.
            rule: if error.info().contains("recursion limit exceeded") {
                format!(
                    "YAML nests deeper than {MAX_YAML_DEPTH} levels, the limit (line {})",
                    error.marker().line()
                )
            } else {
                format!("malformed YAML: {error}")
            },
        })?;
        budget.on_event(event).map_err(|rule| YamlLimitError {
            document: budget.document.max(1),
            rule: format!("{rule} (line {})", span.start.line()),
        })?;
    }
    Ok(())
}

/// What a text expands to so far.
#[derive(Clone, Copy, Debug, Default)]
struct Size {
    nodes: u64,
    scalar_bytes: u64,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.scalar_bytes = self.scalar_bytes.saturating_add(other.scalar_bytes);
    }

    fn since(self, start: Size) -> Size {
        Size {
            nodes: self.nodes - start.nodes,
            scalar_bytes: self.scalar_bytes - start.scalar_bytes,
        }
    }
}

/// A bound of [`YamlLimits`] (or [`MAX_YAML_DEPTH`]) that a text breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
enum YamlBreach {
    /// Nested deeper than [`MAX_YAML_DEPTH`].
    #[error("YAML nests deeper than {MAX_YAML_DEPTH} levels, the limit")]
    Depth,
    /// More nodes than the limit, aliases expanded.
    #[error("YAML expands to more than {0} nodes (aliases expanded), the limit")]
    Nodes(u64),
    /// More scalar text than the limit, aliases expanded.
    #[error("YAML expands to more than {} of text (aliases expanded), the limit", mib(*.0))]
    Text(u64),
}

struct Budget {
    limits: YamlLimits,
    document: usize,
    total: Size,
    /// Open collections: their anchor id (0: none) and the total when they opened.
    open: Vec<(usize, Size)>,
    /// Expanded size of each anchor defined so far, by the parser's anchor id.
    anchors: std::collections::HashMap<usize, Size>,
}

impl Budget {
    fn on_event(&mut self, event: Event<'_>) -> Result<(), YamlBreach> {
        match event {
            Event::DocumentStart(_) => {
                self.document += 1;
                self.anchors.clear();
            }
            Event::Scalar(value, _, anchor, _) => {
                let size = Size {
                    nodes: 1,
                    scalar_bytes: value.len() as u64,
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, size);
                }
                self.total.add(size);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.open.len() >= MAX_YAML_DEPTH {
                    return Err(YamlBreach::Depth);
                }
                self.open.push((anchor, self.total));
                self.total.add(Size {
                    nodes: 1,
                    scalar_bytes: 0,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, start)) = self.open.pop()
                    && anchor != 0
                {
                    self.anchors.insert(anchor, self.total.since(start));
                }
            }
            Event::Alias(anchor) => {
                // NB: an alias to an anchor still open (a recursive alias) or unknown is
                // refused by serde_yaml afterwards; it expands to nothing here.
                let size = self.anchors.get(&anchor).copied().unwrap_or_default();
                self.total.add(size);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        if self.total.nodes > self.limits.nodes {
            return Err(YamlBreach::Nodes(self.limits.nodes));
        }
        if self.total.scalar_bytes > self.limits.scalar_bytes {
            return Err(YamlBreach::Text(self.limits.scalar_bytes));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: YamlLimits = YamlLimits::for_file(MAX_FILE_BYTES);

    #[test]
    fn reads_at_most_the_limit_from_an_endless_source() {
        let error = read_bounded(std::io::repeat(0), 1024).unwrap_err();
        assert!(error.to_string().contains("1024 bytes"), "{error}");
        assert_eq!(read_bounded(&b"abc"[..], 3).unwrap(), b"abc");
    }

    #[test]
    fn drops_a_byte_order_mark() {
        let text = text_of(b"\xef\xbb\xbfkind: Secret\n".to_vec()).unwrap();
        assert_eq!(text, "kind: Secret\n");
        assert!(matches!(
            text_of(vec![b'a', 0xff]),
            Err(InputError::NotUtf8(1))
        ));
    }

    #[test]
    fn refuses_deep_nesting_early() {
        let deep = "[".repeat(3 * 1024 * 1024);
        let error = check_yaml(&deep, LIMITS).unwrap_err();
        assert!(error.rule.contains("deeper than 64"), "{error}");
        let block: String = (0..70).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        assert!(
            check_yaml(&block, LIMITS)
                .unwrap_err()
                .rule
                .contains("deeper")
        );
        let fine = "a: [[[1]]]\n";
        check_yaml(fine, LIMITS).unwrap();
    }

    #[test]
    fn counts_what_aliases_expand_to() {
        // A 1 MiB string aliased 600 times: small text, large expansion.
        let big = "x".repeat(1024 * 1024);
        let aliases = vec!["*a"; 600].join(", ");
        let text = format!("s: &a {big}\nl: [{aliases}]\n");
        let error = check_yaml(&text, LIMITS).unwrap_err();
        assert!(error.rule.contains("aliases expanded"), "{error}");
        // Nested aliases: each level doubles; 30 levels would be 2^30 nodes.
        let mut nested = String::from("a0: &a0 [x, x]\n");
        for level in 1..30 {
            let previous = level - 1;
            nested.push_str(&format!(
                "a{level}: &a{level} [*a{previous}, *a{previous}]\n"
            ));
        }
        let error = check_yaml(&nested, LIMITS).unwrap_err();
        assert!(error.rule.contains("nodes"), "{error}");
        // A few aliases of a small anchor are fine.
        check_yaml("base: &b {env: prod}\nother: *b\nthird: *b\n", LIMITS).unwrap();
    }

    #[test]
    fn names_the_document_of_a_breach_or_a_syntax_error() {
        let text = format!("a: 1\n---\nb: {}\n", "[".repeat(100));
        assert_eq!(check_yaml(&text, LIMITS).unwrap_err().document, 2);
        let error = check_yaml("a: [unclosed\n", LIMITS).unwrap_err();
        assert!(error.rule.contains("malformed YAML"), "{error}");
    }
}
