//! The parameters of an RPC request: the union of the query string and an
//! `application/x-www-form-urlencoded` body, decoded.
//!
//! A name given both in the query and in the body takes the body's value: the official SDK
//! signs exactly that union (aliyun-python-sdk-core 2.16.1 `get_signed_url`:
//! `dict(query).update(body)`, and it adds `RegionId` to the query when a caller put it in
//! the body) [sdk]. A name given twice in the same part is refused, naming the part
//! [inferred: the SDKs never send one].

use std::collections::BTreeMap;

use super::errors::RpcError;

/// Name/value pairs as received, in order, before duplicates are checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Received {
    query: Vec<(String, String)>,
    body: Vec<(String, String)>,
}

impl Received {
    /// Decodes the query string and, when given, the form body. Decoding follows the form
    /// rules (`+` is a space), so any correct client encoding gives the same text.
    pub fn decode(query: Option<&str>, body: Option<&[u8]>) -> Self {
        let query = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let body = body
            .map(|b| form_urlencoded::parse(b).into_owned().collect())
            .unwrap_or_default();
        Received { query, body }
    }

    /// The value of `name` as it will count (the body's when both parts carry it), even when
    /// the name is repeated (used to pick the answer format and the action for the
    /// statistics before validation).
    pub fn first(&self, name: &str) -> Option<&str> {
        find(&self.body, name).or_else(|| find(&self.query, name))
    }

    /// The query string's pairs alone (what a V3 signature covers).
    pub fn query_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.query.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The parameters, or `InvalidParameter` naming the first parameter sent twice in the
    /// same part.
    pub fn into_params(self) -> Result<Params, RpcError> {
        let query = unique(self.query, "query string")?;
        let mut values = query;
        values.extend(unique(self.body, "form body")?);
        Ok(Params { values })
    }
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn unique(pairs: Vec<(String, String)>, part: &str) -> Result<BTreeMap<String, String>, RpcError> {
    let mut values = BTreeMap::new();
    for (name, value) in pairs {
        if values.contains_key(&name) {
            return Err(RpcError::given_twice(&name, part));
        }
        values.insert(name, value);
    }
    Ok(values)
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
    fn the_body_wins_over_the_query_and_a_name_twice_in_one_part_is_named() {
        // NB: what aliyun-python-sdk-core signs when a caller puts RegionId in the body.
        let united = params("RegionId=cn-beijing&Action=A", "RegionId=cn-hangzhou").unwrap();
        assert_eq!(united.get("RegionId"), Some("cn-hangzhou"));
        let received = Received::decode(Some("RegionId=a"), Some(b"RegionId=b"));
        assert_eq!(received.first("RegionId"), Some("b"));
        let error = params("Action=A&Action=B", "").unwrap_err();
        assert_eq!(error.code, "InvalidParameter");
        assert!(
            error.message.contains("\"Action\"") && error.message.contains("query string"),
            "{}",
            error.message
        );
        let error = self::params("", "Tag.1.Key=a&Tag.1.Key=b").unwrap_err();
        assert!(error.message.contains("form body"), "{}", error.message);
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
