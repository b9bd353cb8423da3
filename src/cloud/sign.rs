//! Signing primitives, shared by the clients (which sign) and the emulator (which verifies).
//! Pinned by the official-SDK vectors in `spec/vectors/`.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha1::Sha1;

/// Everything but the RFC 3986 unreserved characters `A-Z a-z 0-9 - _ . ~`.
// NB: spec alibaba-rpc-tagging.md section 3 step 2: space is %20 (never +), `*` is %2A, `~`
// stays. percent-encoding writes uppercase hex, as the spec requires.
const RPC_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Alibaba RPC percent-encoding (spec section 3 step 2) of a name, a value, or the whole
/// canonicalized query string (step 5).
pub fn rpc_percent_encode(text: &str) -> String {
    utf8_percent_encode(text, RPC_ENCODE_SET).to_string()
}

/// The canonicalized query string (spec section 3 steps 2-4): every parameter except
/// `Signature`, encoded, sorted by encoded name (byte order), joined with `&`.
pub fn rpc_canonicalized_query<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let pairs: Vec<(String, String)> = params
        .into_iter()
        .filter(|(name, _)| *name != "Signature")
        .map(|(name, value)| (rpc_percent_encode(name), rpc_percent_encode(value)))
        .collect();
    sorted_query(pairs)
}

/// Encoded `(name, value)` pairs sorted by name, then value (byte order), `name=value`
/// joined by `&`: the canonical query of every signature here (each encodes its own way).
pub(crate) fn sorted_query(mut pairs: Vec<(String, String)>) -> String {
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The string to sign (spec section 3 step 5): `METHOD&%2F&encode(canonicalized query)`.
pub fn rpc_string_to_sign<'a>(
    method: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    format!(
        "{}&%2F&{}",
        method.to_ascii_uppercase(),
        rpc_percent_encode(&rpc_canonicalized_query(params))
    )
}

/// The signature (spec section 3 step 6): Base64(HMAC-SHA1(secret + "&", string to sign)).
pub fn rpc_signature(access_key_secret: &str, string_to_sign: &str) -> String {
    // NB: HMAC accepts keys of any length; new_from_slice cannot fail for it.
    // NB: the key is a copy of the secret: zeroized when dropped.
    let key = zeroize::Zeroizing::new(format!("{access_key_secret}&"));
    let mut mac =
        Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The official-SDK vectors of `spec/vectors/alibaba_rpc_v1.json`, for the tests of
/// the signer and of the clients' wire encoding.
#[cfg(test)]
pub(crate) mod rpc_vectors {
    use serde::Deserialize;
    use serde_json::{Map, Value};

    const PATH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/spec/vectors/alibaba_rpc_v1.json"
    );

    /// One vector, as the generator wrote it.
    #[derive(Debug, Deserialize)]
    pub(crate) struct RpcVector {
        pub name: String,
        pub access_key_secret: String,
        pub http_method: String,
        pub query_params: Map<String, Value>,
        pub body_params: Map<String, Value>,
        pub canonicalized_query_string: String,
        pub string_to_sign: String,
        pub signature: String,
        pub signed_query_string: String,
        pub form_body: Option<String>,
    }

    impl RpcVector {
        /// The query parameters as name/value pairs.
        pub fn query(&self) -> Vec<(&str, &str)> {
            pairs(&self.query_params)
        }

        /// The form body parameters as name/value pairs.
        pub fn body(&self) -> Vec<(&str, &str)> {
            pairs(&self.body_params)
        }

        /// Every signed parameter: query and body together.
        pub fn signed(&self) -> Vec<(&str, &str)> {
            let mut all = self.query();
            all.extend(self.body());
            all
        }
    }

    fn pairs(params: &Map<String, Value>) -> Vec<(&str, &str)> {
        params
            .iter()
            .map(|(name, value)| {
                let value = value.as_str().expect("vector parameters are strings");
                (name.as_str(), value)
            })
            .collect()
    }

    #[derive(Deserialize)]
    struct VectorFile {
        vectors: Vec<RpcVector>,
    }

    /// Every vector of the file.
    pub(crate) fn load() -> Vec<RpcVector> {
        let text = std::fs::read_to_string(PATH).expect("the vector file is readable");
        let file: VectorFile = serde_json::from_str(&text).expect("the vector file parses");
        assert!(!file.vectors.is_empty(), "no vectors in {PATH}");
        file.vectors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_every_official_rpc_vector() {
        let vectors = rpc_vectors::load();
        assert_eq!(vectors.len(), 12, "the spec promises 12 vectors");
        for vector in &vectors {
            let name = &vector.name;
            assert_eq!(
                rpc_canonicalized_query(vector.signed()),
                vector.canonicalized_query_string,
                "canonicalized query string of {name}"
            );
            let string_to_sign = rpc_string_to_sign(&vector.http_method, vector.signed());
            assert_eq!(
                string_to_sign, vector.string_to_sign,
                "string to sign of {name}"
            );
            assert_eq!(
                rpc_signature(&vector.access_key_secret, &string_to_sign),
                vector.signature,
                "signature of {name}"
            );
        }
    }

    #[test]
    fn signature_parameter_is_never_signed() {
        let params = [("Action", "TagResources"), ("Signature", "abc=")];
        assert_eq!(rpc_canonicalized_query(params), "Action=TagResources");
    }

    #[test]
    fn method_is_signed_in_capitals() {
        assert!(rpc_string_to_sign("post", [("A", "b")]).starts_with("POST&%2F&"));
    }

    #[test]
    fn percent_encoding_follows_the_rpc_rules() {
        let cases = [
            ("a b", "a%20b"),
            ("a*b", "a%2Ab"),
            ("a~b", "a~b"),
            ("AZaz09-_.", "AZaz09-_."),
            ("/=&+%:", "%2F%3D%26%2B%25%3A"),
            ("环", "%E7%8E%AF"),
            ("é", "%C3%A9"),
            ("🚀", "%F0%9F%9A%80"),
            ("", ""),
        ];
        for (text, encoded) in cases {
            assert_eq!(rpc_percent_encode(text), encoded, "encoding of {text:?}");
        }
    }

    #[test]
    fn canonical_order_is_byte_order_of_encoded_names() {
        let params = [
            ("Tag.2.Key", "b"),
            ("Tag.10.Key", "a"),
            ("ResourceId.2", "y"),
            ("ResourceId.10", "x"),
            ("lower", "l"),
        ];
        assert_eq!(
            rpc_canonicalized_query(params),
            "ResourceId.10=x&ResourceId.2=y&Tag.10.Key=a&Tag.2.Key=b&lower=l"
        );
    }
}

/// JD Cloud signing (JDCLOUD2/JDCLOUD3-HMAC-SHA256).
pub mod jdcloud;

/// Alibaba Cloud V3 signing (ACS3-HMAC-SHA256).
pub mod acs3;
/// AWS Signature Version 4, through the official `aws-sigv4` crate.
pub mod aws;
