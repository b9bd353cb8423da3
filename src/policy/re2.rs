//! Patterns in RE2 syntax: what CEL's `matches` and Go's `regexp` accept. The `regex` crate
//! reads a superset of it; this refuses the extensions RE2 has not, so that a policy that
//! tagbinder accepts behaves the same in the admission policy (CEL) and in the reconciler.

use regex::Regex;
use regex_syntax::ast::{self, Ast, ClassSetBinaryOp, ClassSetItem, Flag, FlagsItemKind, Visitor};

/// RE2's largest repetition count (`{n}`, `{n,m}`).
const MAX_REPEAT: u32 = 1000;
/// Largest compiled program the reconciler builds for one pattern.
const SIZE_LIMIT: usize = 1 << 20;

/// Compiles `pattern`, or says why RE2 (or this size limit) refuses it.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    let parsed = ast::parse::Parser::new()
        .parse(pattern)
        .map_err(|error| format!("invalid pattern {pattern:?}: {}", error.kind()))?;
    ast::visit(&parsed, Re2Only).map_err(|what| {
        format!("invalid pattern {pattern:?}: {what} is not RE2 syntax (as CEL and Go read it)")
    })?;
    regex::RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|error| format!("invalid pattern {pattern:?}: {error}"))
}

struct Re2Only;

impl Visitor for Re2Only {
    type Output = ();
    type Err = String;

    fn finish(self) -> Result<(), String> {
        Ok(())
    }

    fn visit_pre(&mut self, ast: &Ast) -> Result<(), String> {
        match ast {
            Ast::Repetition(repetition) => {
                if let ast::RepetitionKind::Range(range) = &repetition.op.kind {
                    let largest = match *range {
                        ast::RepetitionRange::Exactly(n) | ast::RepetitionRange::AtLeast(n) => n,
                        ast::RepetitionRange::Bounded(_, n) => n,
                    };
                    if largest > MAX_REPEAT {
                        return Err(format!("a repetition count above {MAX_REPEAT}"));
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
                | ast::AssertionKind::WordBoundaryEndHalf => {
                    Err("a word-boundary assertion other than \\b and \\B".to_string())
                }
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

    fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), String> {
        match item {
            ClassSetItem::Bracketed(_) => Err("a nested character class".to_string()),
            _ => Ok(()),
        }
    }

    fn visit_class_set_binary_op_pre(&mut self, _op: &ClassSetBinaryOp) -> Result<(), String> {
        Err("a character class operation (&&, --, ~~)".to_string())
    }
}

fn flags(flags: &ast::Flags) -> Result<(), String> {
    for item in &flags.items {
        if let FlagsItemKind::Flag(flag @ (Flag::IgnoreWhitespace | Flag::CRLF | Flag::Unicode)) =
            item.kind
        {
            let letter = match flag {
                Flag::IgnoreWhitespace => 'x',
                Flag::CRLF => 'R',
                _ => 'u',
            };
            return Err(format!("the flag {letter:?}"));
        }
    }
    Ok(())
}
