//! Patterns in RE2 syntax: what CEL's `matches` and Go's `regexp` accept. The `regex` crate
//! reads a superset of it; this refuses the extensions RE2 has not, so that a policy that
//! tagbinder accepts behaves the same in the admission policy (CEL) and in the reconciler.

use regex::Regex;
use regex_syntax::ast::{self, Ast, ClassSetBinaryOp, ClassSetItem, Flag, FlagsItemKind, Visitor};

/// RE2's largest repetition count (`{n}`, `{n,m}`).
const MAX_REPEAT: u32 = 1000;
/// Largest compiled program the reconciler builds for one pattern.
const SIZE_LIMIT: usize = 1 << 20;

/// Why a pattern is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// It does not parse.
    #[error("invalid pattern {pattern:?}: {kind}")]
    Syntax {
        /// The pattern.
        pattern: String,
        /// What the parser says.
        kind: String,
    },
    /// It uses what RE2 has not.
    #[error("invalid pattern {pattern:?}: {extension} is not RE2 syntax (as CEL and Go read it)")]
    NotRe2 {
        /// The pattern.
        pattern: String,
        /// The extension.
        extension: NotRe2,
    },
    /// It does not compile within the size limit.
    #[error("invalid pattern {pattern:?}: {error}")]
    Compile {
        /// The pattern.
        pattern: String,
        /// What the compiler says.
        error: String,
    },
}

/// An extension of the `regex` crate that RE2 has not.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotRe2 {
    /// `{n}` with n over [`MAX_REPEAT`].
    #[error("a repetition count above {MAX_REPEAT}")]
    Repetition,
    /// `\b{start}` and the like.
    #[error("a word-boundary assertion other than \\b and \\B")]
    WordBoundary,
    /// `[a[b]]`.
    #[error("a nested character class")]
    NestedClass,
    /// `&&`, `--`, `~~` in a class.
    #[error("a character class operation (&&, --, ~~)")]
    ClassOperation,
    /// The `x`, `R` or `u` flag.
    #[error("the flag {0:?}")]
    Flag(char),
}

/// Compiles `pattern`, or says why RE2 (or this size limit) refuses it.
pub fn compile(pattern: &str) -> Result<Regex, PatternError> {
    let parsed =
        ast::parse::Parser::new()
            .parse(pattern)
            .map_err(|error| PatternError::Syntax {
                pattern: pattern.to_string(),
                kind: error.kind().to_string(),
            })?;
    ast::visit(&parsed, Re2Only).map_err(|extension| PatternError::NotRe2 {
        pattern: pattern.to_string(),
        extension,
    })?;
    regex::RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|error| PatternError::Compile {
            pattern: pattern.to_string(),
            error: error.to_string(),
        })
}

struct Re2Only;

impl Visitor for Re2Only {
    type Output = ();
    type Err = NotRe2;

    fn finish(self) -> Result<(), NotRe2> {
        Ok(())
    }

    fn visit_pre(&mut self, ast: &Ast) -> Result<(), NotRe2> {
        match ast {
            Ast::Repetition(repetition) => {
                if let ast::RepetitionKind::Range(range) = &repetition.op.kind {
                    let largest = match *range {
                        ast::RepetitionRange::Exactly(n) | ast::RepetitionRange::AtLeast(n) => n,
                        ast::RepetitionRange::Bounded(_, n) => n,
                    };
                    if largest > MAX_REPEAT {
                        return Err(NotRe2::Repetition);
                    }
                }
                Ok(())
            }
            Ast::Assertion(assertion) => match assertion.kind {
                ast::AssertionKind::WordBoundaryStart
                | ast::AssertionKind::WordBoundaryEnd
                | ast::AssertionKind::WordBoundaryStartAngle
                | ast::AssertionKind::WordBoundaryEndAngle
                | ast::AssertionKind::WordBoundaryStartHalf
                | ast::AssertionKind::WordBoundaryEndHalf => Err(NotRe2::WordBoundary),
                _ => Ok(()),
            },
            Ast::Flags(set) => flags(&set.flags),
            Ast::Group(group) => match &group.kind {
                ast::GroupKind::NonCapturing(set) => flags(set),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), NotRe2> {
        match item {
            ClassSetItem::Bracketed(_) => Err(NotRe2::NestedClass),
            _ => Ok(()),
        }
    }

    fn visit_class_set_binary_op_pre(&mut self, _op: &ClassSetBinaryOp) -> Result<(), NotRe2> {
        Err(NotRe2::ClassOperation)
    }
}

fn flags(flags: &ast::Flags) -> Result<(), NotRe2> {
    for item in &flags.items {
        if let FlagsItemKind::Flag(flag @ (Flag::IgnoreWhitespace | Flag::CRLF | Flag::Unicode)) =
            item.kind
        {
            let letter = match flag {
                Flag::IgnoreWhitespace => 'x',
                Flag::CRLF => 'R',
                _ => 'u',
            };
            return Err(NotRe2::Flag(letter));
        }
    }
    Ok(())
}
