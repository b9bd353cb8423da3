//! Alibaba Cloud's V3 signature, `ACS3-HMAC-SHA256` (spec alibaba-rpc-tagging.md section 4),
//! pinned by `spec/vectors/alibaba_acs3_v3.json`. Pure primitives: what is signed
//! and how; which headers a request carries is the signer's or the verifier's business.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::rpc_percent_encode;

/// The algorithm name, first word of `Authorization` and first line of the string to sign.
pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Lowercase hex SHA-256 of the body bytes (`x-acs-content-sha256`, last line of the
/// canonical request).
pub fn payload_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The canonical query string (section 4 step 1): pairs sorted by encoded name (byte order,
/// then by encoded value), name and value encoded as in section 3 step 2 (space `%20`, `*`
/// `%2A`, `~` literal), `name=value` joined by `&`; an empty value gives `name=`.
pub fn canonical_query<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    // NB: the documentation encodes names too; the Python SDK encodes values only, which is
    // the same text for the names RPC parameters have (section 4 step 1).
    let pairs: Vec<(String, String)> = params
        .into_iter()
        .map(|(name, value)| (rpc_percent_encode(name), rpc_percent_encode(value)))
        .collect();
    super::sorted_query(pairs)
}

/// Canonical headers and the signed-header list (section 4 step 1): each header as
/// `lowercase-name:trimmed-value\n`, sorted by name, values of a repeated name joined by `,`
/// (sorted, as the SDK does); the list is the lowercase names joined by `;`.
pub fn canonical_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (String, String) {
    let mut by_name: std::collections::BTreeMap<String, Vec<&str>> =
        std::collections::BTreeMap::new();
    for (name, value) in headers {
        by_name
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.trim());
    }
    let mut canonical = String::new();
    for (name, values) in &mut by_name {
        values.sort_unstable();
        canonical.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let signed = by_name.keys().cloned().collect::<Vec<_>>().join(";");
    (canonical, signed)
}

/// What the canonical request is made of.
#[derive(Clone, Copy, Debug)]
pub struct CanonicalInput<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The canonical URI: `/` for RPC operations.
    pub uri: &'a str,
    /// [`canonical_query`].
    pub query: &'a str,
    /// First part of [`canonical_headers`] (ends with `\n`).
    pub headers: &'a str,
    /// Second part of [`canonical_headers`].
    pub signed_headers: &'a str,
    /// [`payload_hash`].
    pub payload_hash: &'a str,
}

/// `METHOD\nURI\nQUERY\nHEADERS\nSIGNED\nPAYLOADHASH` (section 4 step 1); an empty line
/// separates the headers from the signed-header list because the headers end with `\n`.
pub fn canonical_request(input: &CanonicalInput<'_>) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method.to_ascii_uppercase(),
        input.uri,
        input.query,
        input.headers,
        input.signed_headers,
        input.payload_hash
    )
}

/// `ACS3-HMAC-SHA256\n` + lowercase hex SHA-256 of the canonical request (step 3).
pub fn string_to_sign(canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// Lowercase hex HMAC-SHA256 keyed with the secret itself, no `&` suffix (step 4).
pub fn signature(access_key_secret: &str, string_to_sign: &str) -> String {
    // NB: HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(access_key_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<list>,Signature=<hex>` (step 5).
pub fn authorization(access_key_id: &str, signed_headers: &str, signature: &str) -> String {
    format!(
        "{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}"
    )
}

/// The parts of an `Authorization` header of this scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAuthorization {
    /// `Credential`: the access key id.
    pub access_key_id: String,
    /// `SignedHeaders`, as sent.
    pub signed_headers: String,
    /// `Signature`, as sent.
    pub signature: String,
}

/// Reads an `Authorization` header of this scheme; `None` when it is of another scheme or
/// lacks a part. Spaces after the commas are tolerated.
pub fn parse_authorization(header: &str) -> Option<ParsedAuthorization> {
    let rest = header.strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return None,
        };
        if slot.replace(value.to_string()).is_some() {
            return None;
        }
    }
    Some(ParsedAuthorization {
        access_key_id: credential.filter(|c| !c.is_empty())?,
        signed_headers: signed.filter(|s| !s.is_empty())?,
        signature: signature.filter(|s| !s.is_empty())?,
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::{Map, Value};

    use super::*;

    const PATH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/spec/vectors/alibaba_acs3_v3.json"
    );

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        access_key_id: String,
        access_key_secret: String,
        http_method: String,
        canonical_uri: String,
        query_params: Map<String, Value>,
        headers: Map<String, Value>,
        body: String,
        canonical_query_string: String,
        canonical_headers: String,
        signed_headers: String,
        hashed_payload: String,
        canonical_request: String,
        string_to_sign: String,
        signature: String,
        authorization: String,
        published_signature: Option<String>,
    }

    #[derive(Deserialize)]
    struct File {
        vectors: Vec<Vector>,
    }

    fn strings(map: &Map<String, Value>) -> Vec<(&str, &str)> {
        map.iter()
            .map(|(k, v)| (k.as_str(), v.as_str().expect("vector values are strings")))
            .collect()
    }

    #[test]
    fn reproduces_every_official_v3_vector() {
        let text = std::fs::read_to_string(PATH).expect("the vector file is readable");
        let file: File = serde_json::from_str(&text).expect("the vector file parses");
        assert_eq!(file.vectors.len(), 4, "the spec promises 4 V3 vectors");
        for v in &file.vectors {
            let name = &v.name;
            assert_eq!(payload_hash(v.body.as_bytes()), v.hashed_payload, "{name}");
            let query = canonical_query(strings(&v.query_params));
            assert_eq!(query, v.canonical_query_string, "{name}");
            let (headers, signed) = canonical_headers(strings(&v.headers));
            assert_eq!(headers, v.canonical_headers, "{name}");
            assert_eq!(signed, v.signed_headers, "{name}");
            let request = canonical_request(&CanonicalInput {
                method: &v.http_method,
                uri: &v.canonical_uri,
                query: &query,
                headers: &headers,
                signed_headers: &signed,
                payload_hash: &v.hashed_payload,
            });
            assert_eq!(request, v.canonical_request, "{name}");
            let sts = string_to_sign(&request);
            assert_eq!(sts, v.string_to_sign, "{name}");
            let sig = signature(&v.access_key_secret, &sts);
            assert_eq!(sig, v.signature, "{name}");
            if let Some(published) = &v.published_signature {
                assert_eq!(&sig, published, "{name}: the documented example");
            }
            let auth = authorization(&v.access_key_id, &signed, &sig);
            assert_eq!(auth, v.authorization, "{name}");
            assert_eq!(
                parse_authorization(&auth),
                Some(ParsedAuthorization {
                    access_key_id: v.access_key_id.clone(),
                    signed_headers: signed.clone(),
                    signature: sig.clone(),
                }),
                "{name}"
            );
        }
    }

    #[test]
    fn parsing_refuses_other_schemes_and_missing_parts() {
        assert!(
            parse_authorization("ACS3-HMAC-SM3 Credential=a,SignedHeaders=h,Signature=s").is_none()
        );
        assert!(parse_authorization("ACS3-HMAC-SHA256 Credential=a,SignedHeaders=h").is_none());
        assert!(
            parse_authorization("ACS3-HMAC-SHA256 Credential=,SignedHeaders=h,Signature=s")
                .is_none()
        );
        assert!(
            parse_authorization(
                "ACS3-HMAC-SHA256 Credential=a,Credential=b,SignedHeaders=h,Signature=s"
            )
            .is_none()
        );
        assert_eq!(
            parse_authorization("ACS3-HMAC-SHA256 Credential=a, SignedHeaders=host, Signature=s")
                .map(|p| p.signed_headers),
            Some("host".to_string())
        );
    }
}
