//! The parameters of an RPC request: the union of the query string and an
//! `application/x-www-form-urlencoded` body, decoded, each name at most once.

use std::collections::BTreeMap;

use super::errors::RpcError;

/// Name/value pairs as received, in order, before duplicates are checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Received {
    pairs: Vec<(String, String)>,
}

impl Received {
    /// Decodes the query string and, when `form_body` is true, the body. Decoding follows the
    /// form rules (`+` is a space), so any correct client encoding gives the same text.
    pub fn decode(query: Option<&str>, body: Option<&[u8]>) -> Self {
        let mut pairs: Vec<(String, String)> = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        if let Some(body) = body {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        Received { pairs }
    }

    /// The first value of `name`, even when the name is repeated (used to pick the answer
    /// format and the action for the statistics before validation).
    pub fn first(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The parameters, or `InvalidParameter` naming the first parameter sent twice.
    pub fn into_params(self) -> Result<Params, RpcError> {
        let mut values = BTreeMap::new();
        for (name, value) in self.pairs {
            if values.contains_key(&name) {
                return Err(RpcError::invalid(None, &name));
            }
            values.insert(name, value);
        }
        Ok(Params { values })
    }
}

/// The parameters of a request, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Params {
    values: BTreeMap<String, String>,
}

/// One `Tag.N` as sent: either part may be missing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawTag {
    /// `Tag.N.Key`.
    pub key: Option<String>,
    /// `Tag.N.Value`.
    pub value: Option<String>,
}

impl Params {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of a required parameter, or `MissingParameter.<name>`.
    pub fn require(&self, name: &str) -> Result<&str, RpcError> {
        self.get(name)
            .ok_or_else(|| RpcError::missing(Some(name), name))
    }

    /// Every parameter, as the signature covers them.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The values of `<prefix>.N` (e.g. `ResourceId.N`), sorted by N. Indexes need not be
    /// contiguous; an index that is not a canonical decimal number is `InvalidParameter`.
    pub fn list(&self, prefix: &str) -> Result<Vec<&str>, RpcError> {
        let mut items = Vec::new();
        for (name, value) in self.with_prefix(prefix) {
            let index = parse_index(name, &name[prefix.len() + 1..])?;
            items.push((index, value.as_str()));
        }
        items.sort_by_key(|(index, _)| *index);
        Ok(items.into_iter().map(|(_, value)| value).collect())
    }

    /// The `Tag.N.Key`/`Tag.N.Value` pairs, sorted by N.
    pub fn tags(&self) -> Result<Vec<RawTag>, RpcError> {
        let mut tags: BTreeMap<u64, RawTag> = BTreeMap::new();
        for (name, value) in self.with_prefix("Tag") {
            let rest = &name["Tag.".len()..];
            let (index, field) = rest
                .split_once('.')
                .ok_or_else(|| RpcError::invalid(None, name))?;
            let tag = tags.entry(parse_index(name, index)?).or_default();
            match field {
                "Key" => tag.key = Some(value.clone()),
                "Value" => tag.value = Some(value.clone()),
                _ => return Err(RpcError::invalid(None, name)),
            }
        }
        Ok(tags.into_values().collect())
    }

    /// The parameters named `<prefix>.<anything>`.
    fn with_prefix(&self, prefix: &str) -> impl Iterator<Item = (&String, &String)> + use<'_> {
        let dotted = format!("{prefix}.");
        self.values
            .iter()
            .filter(move |(name, _)| name.starts_with(&dotted))
    }
}

/// A list index: decimal digits without leading zeros (so that `Tag.1` and `Tag.01` cannot
/// both name the first tag).
fn parse_index(name: &str, index: &str) -> Result<u64, RpcError> {
    match index.parse::<u64>() {
        Ok(n) if n.to_string() == index => Ok(n),
        _ => Err(RpcError::invalid(None, name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str, body: &str) -> Result<Params, RpcError> {
        Received::decode(Some(query), Some(body.as_bytes())).into_params()
    }

    #[test]
    fn query_and_body_are_united_and_decoded() {
        let params = params(
            "Action=TagResources&Tag.1.Value=a%20b",
            "Tag.1.Key=x+y&Star=%2A",
        )
        .unwrap();
        assert_eq!(params.get("Action"), Some("TagResources"));
        assert_eq!(params.get("Tag.1.Value"), Some("a b"));
        assert_eq!(params.get("Tag.1.Key"), Some("x y"));
        assert_eq!(params.get("Star"), Some("*"));
    }

    #[test]
    fn a_name_sent_twice_is_invalid_even_across_query_and_body() {
        let error = params("Action=A", "Action=A").unwrap_err();
        assert_eq!(error.code, "InvalidParameter");
        assert!(error.message.contains("\"Action\""));
    }

    #[test]
    fn lists_sort_by_index_and_tolerate_gaps() {
        let params = params(
            "ResourceId.10=c&ResourceId.2=b&ResourceId.1=a&ResourceIdX=z",
            "",
        )
        .unwrap();
        assert_eq!(params.list("ResourceId").unwrap(), ["a", "b", "c"]);
        let bad = self::params("ResourceId.01=a", "").unwrap();
        assert!(bad.list("ResourceId").is_err());
    }

    #[test]
    fn tags_pair_keys_and_values_by_index() {
        let params = params(
            "Tag.2.Key=b&Tag.1.Key=a&Tag.1.Value=1&Tag.3.Value=orphan",
            "",
        )
        .unwrap();
        let tags = params.tags().unwrap();
        assert_eq!(tags.len(), 3);
        assert_eq!(
            tags[0],
            RawTag {
                key: Some("a".into()),
                value: Some("1".into())
            }
        );
        assert_eq!(
            tags[1],
            RawTag {
                key: Some("b".into()),
                value: None
            }
        );
        assert_eq!(
            tags[2],
            RawTag {
                key: None,
                value: Some("orphan".into())
            }
        );
        let bad = self::params("Tag.1.Name=x", "").unwrap();
        assert!(bad.tags().is_err());
    }
}
