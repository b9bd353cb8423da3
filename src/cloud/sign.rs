//! Signing primitives, shared by the clients (which sign) and the emulator (which verifies).
//! Pinned by the official-SDK vectors in `../shared/spec/vectors/`.

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
    let mut pairs: Vec<(String, String)> = params
        .into_iter()
        .filter(|(name, _)| *name != "Signature")
        .map(|(name, value)| (rpc_percent_encode(name), rpc_percent_encode(value)))
        .collect();
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
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{access_key_secret}&").as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}
