//! Inputs for fuzzing the answer parsers with proptest: arbitrary bytes, and JSON documents
//! built from a parser's own vocabulary (so that they get past the first `{` and reach the
//! nested cases), with every value type in every position.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// A JSON value whose object keys come from `keys`, nested up to a few levels.
pub(crate) fn json_value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        Just(Value::String("-1".into())),
        Just(Value::String(String::new())),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(keys), inner), 0..6).prop_map(|entries| {
                let map: Map<String, Value> = entries
                    .into_iter()
                    .map(|(key, value)| (key.to_string(), value))
                    .collect();
                Value::Object(map)
            }),
        ]
    })
}

/// Answer bodies: documents of the vocabulary, their truncations, and arbitrary text.
pub(crate) fn body(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => json_value(keys).prop_map(|value| value.to_string()),
        2 => (json_value(keys), any::<prop::sample::Index>()).prop_map(|(value, cut)| {
            let text = value.to_string();
            let mut end = cut.index(text.len() + 1);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].to_string()
        }),
        1 => any::<String>(),
        1 => prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ]
}
