//! Answer bodies in JSON or XML (`Format`; spec section 2 and 7).
//!
//! `Format=JSON` (any case) gives JSON; any other value, or none, gives XML, the documented
//! default. XML follows the real service: the success root is `<{Action}Response>`, errors sit
//! in `<Error>`, and a list repeats its element name (`<TagResources><TagResource>..`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::errors::RpcError;

/// The answer format a request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `Format=JSON`, in any case.
    Json,
    /// `Format=XML`, anything else, or no `Format`.
    Xml,
}

impl Format {
    /// The format a V3 request without `Format` gets: JSON, unless its `Accept` names XML
    /// and not JSON.
    pub fn of_accept(accept: Option<&axum::http::HeaderValue>) -> Self {
        let accept = accept
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if accept.contains("xml") && !accept.contains("json") {
            Format::Xml
        } else {
            Format::Json
        }
    }

    /// The format asked for by a `Format` parameter.
    pub fn of(format: Option<&str>) -> Self {
        match format {
            Some(f) if f.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Xml,
        }
    }
}

/// An answer body, with its field order (XML keeps it; JSON objects are unordered anyway).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// A string.
    Text(String),
    /// An object: named fields.
    Fields(Vec<(&'static str, Node)>),
    /// An array; in XML each item repeats the enclosing field's name.
    List(Vec<Node>),
}

impl Node {
    /// A text node.
    pub fn text(text: impl Into<String>) -> Node {
        Node::Text(text.into())
    }

    fn to_json(&self) -> Value {
        match self {
            Node::Text(text) => Value::String(text.clone()),
            Node::Fields(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(name, node)| (name.to_string(), node.to_json()))
                    .collect::<Map<_, _>>(),
            ),
            Node::List(items) => Value::Array(items.iter().map(Node::to_json).collect()),
        }
    }

    fn write_xml(&self, name: &str, out: &mut String) {
        match self {
            Node::List(items) => items.iter().for_each(|item| item.write_xml(name, out)),
            Node::Text(text) => {
                out.push_str(&format!("<{name}>{}</{name}>", escape_xml(text)));
            }
            Node::Fields(fields) => {
                out.push_str(&format!("<{name}>"));
                fields
                    .iter()
                    .for_each(|(field, node)| node.write_xml(field, out));
                out.push_str(&format!("</{name}>"));
            }
        }
    }
}

/// Escapes text for an XML element.
fn escape_xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Renders `body` under `root` (XML) or as a JSON object.
fn respond(status: StatusCode, format: Format, root: &str, body: &Node) -> Response {
    let (content_type, text) = match format {
        Format::Json => ("application/json;charset=utf-8", body.to_json().to_string()),
        Format::Xml => {
            let mut xml = String::from("<?xml version='1.0' encoding='UTF-8'?>");
            body.write_xml(root, &mut xml);
            ("text/xml;charset=utf-8", xml)
        }
    };
    (status, [(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// A success answer: `RequestId` first, then `fields`.
pub(crate) fn success(
    format: Format,
    action: &str,
    request_id: &str,
    fields: Vec<(&'static str, Node)>,
) -> Response {
    let mut body = vec![("RequestId", Node::text(request_id))];
    body.extend(fields);
    respond(
        StatusCode::OK,
        format,
        &format!("{action}Response"),
        &Node::Fields(body),
    )
}

/// Where an error answer comes from, for its `HostId` and `Recommend` fields.
pub(crate) struct ErrorContext<'a> {
    /// The request's id.
    pub request_id: &'a str,
    /// The `Host` the request was sent to.
    pub host: &'a str,
    /// Product code for the `Recommend` link.
    pub product_code: &'a str,
}

/// An error answer: `{"RequestId","HostId","Code","Message","Recommend"}` (spec section 7),
/// plus `x-acs-retry-after` when the error says when to retry.
pub(crate) fn error(format: Format, context: &ErrorContext<'_>, error: &RpcError) -> Response {
    let recommend = format!(
        "https://api.aliyun.com/troubleshoot?q={}&product={}&requestId={}",
        error.code, context.product_code, context.request_id
    );
    let body = Node::Fields(vec![
        ("RequestId", Node::text(context.request_id)),
        ("HostId", Node::text(context.host)),
        ("Code", Node::text(&error.code)),
        ("Message", Node::text(&error.message)),
        ("Recommend", Node::text(recommend)),
    ]);
    let mut response = respond(error.status, format, "Error", &body);
    if let Some(seconds) = error.retry_after {
        response
            .headers_mut()
            .insert("x-acs-retry-after", HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Node {
        Node::Fields(vec![
            ("RequestId", Node::text("R")),
            (
                "TagResources",
                Node::Fields(vec![(
                    "TagResource",
                    Node::List(vec![
                        Node::Fields(vec![("TagKey", Node::text("a&b"))]),
                        Node::Fields(vec![("TagKey", Node::text("<c>"))]),
                    ]),
                )]),
            ),
        ])
    }

    #[test]
    fn json_nests_lists_as_arrays() {
        let json = sample().to_json();
        assert_eq!(json["TagResources"]["TagResource"][1]["TagKey"], "<c>");
    }

    #[test]
    fn xml_repeats_list_elements_and_escapes_text() {
        let mut xml = String::new();
        sample().write_xml("ListTagResourcesResponse", &mut xml);
        assert_eq!(
            xml,
            "<ListTagResourcesResponse><RequestId>R</RequestId><TagResources>\
             <TagResource><TagKey>a&amp;b</TagKey></TagResource>\
             <TagResource><TagKey>&lt;c&gt;</TagKey></TagResource>\
             </TagResources></ListTagResourcesResponse>"
        );
    }

    #[test]
    fn format_is_case_insensitive_and_defaults_to_xml() {
        assert_eq!(Format::of(Some("json")), Format::Json);
        assert_eq!(Format::of(Some("JSON")), Format::Json);
        assert_eq!(Format::of(Some("XML")), Format::Xml);
        assert_eq!(Format::of(None), Format::Xml);
    }
}
