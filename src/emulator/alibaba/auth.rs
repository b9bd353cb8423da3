//! Verification of the RPC signature (spec section 3) and of replays.
//!
//! Order of the checks: required parameters, `SignatureMethod`/`SignatureVersion`, access key,
//! timestamp format and window, signature, nonce. The nonce is recorded only once the
//! signature holds, so that a forged request cannot burn a client's nonce.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use super::errors::RpcError;
use super::params::Params;
use crate::cloud::sign::{rpc_signature, rpc_string_to_sign};
use crate::emulator::constant_time_eq;
use crate::emulator::inventory::{ALIBABA, Accounts};
use crate::emulator::nonce::NonceCache;

/// Parameters every signed request carries, in the order they are checked.
const REQUIRED: [&str; 8] = [
    "Action",
    "Version",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
];

/// What the verifier needs besides the request.
pub(crate) struct Verifier<'a> {
    /// Known access keys.
    pub accounts: &'a Accounts,
    /// Nonces seen.
    pub nonces: &'a NonceCache,
    /// Accepted distance between `Timestamp` and the server clock.
    pub clock_skew: Duration,
}

impl Verifier<'_> {
    /// Checks a V1 request received with `method` (`GET` or `POST`) at `now`; answers the
    /// caller's account (its inventory access key id; for temporary credentials, the
    /// account they were issued for).
    pub fn verify(
        &self,
        method: &str,
        params: &Params,
        now: jiff::Timestamp,
        instant: Instant,
    ) -> Result<String, RpcError> {
        for name in REQUIRED {
            params.require(name)?;
        }
        if params.get("SignatureMethod") != Some("HMAC-SHA1")
            || params.get("SignatureVersion") != Some("1.0")
        {
            return Err(RpcError::incomplete_signature());
        }
        let access_key_id = params.require("AccessKeyId")?;
        let key = self
            .accounts
            .resolve(access_key_id, params.get("SecurityToken"), now)
            .map_err(RpcError::refused_key)?;
        let timestamp: jiff::Timestamp = params
            .require("Timestamp")?
            .parse()
            .map_err(|_| RpcError::timestamp_format())?;
        let remaining = self.remaining_validity(timestamp, now)?;
        check_signature(method, params, &key.secret)?;
        self.remember_nonce(
            access_key_id,
            params.require("SignatureNonce")?,
            remaining,
            instant,
        )?;
        Ok(key.owner)
    }

    /// Records a verified request's nonce (V1 and V3 share one scope per access key), or
    /// `SignatureNonceUsed`.
    pub(super) fn remember_nonce(
        &self,
        access_key_id: &str,
        nonce: &str,
        remaining: Duration,
        instant: Instant,
    ) -> Result<(), RpcError> {
        let scope = format!("{ALIBABA}/{access_key_id}");
        // NB: the nonce is kept for at least the window and as long as the timestamp stays
        // acceptable, so a replay with the same timestamp is refused for as long as it could
        // otherwise pass.
        let expires = instant + remaining.max(self.clock_skew);
        if self.nonces.remember(&scope, nonce, expires, instant) {
            Ok(())
        } else {
            Err(RpcError::nonce_used())
        }
    }

    /// How long `timestamp` stays within the window, or `InvalidTimeStamp.Expired`.
    pub(super) fn remaining_validity(
        &self,
        timestamp: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> Result<Duration, RpcError> {
        let skew =
            jiff::SignedDuration::try_from(self.clock_skew).unwrap_or(jiff::SignedDuration::MAX);
        let offset = now.duration_since(timestamp);
        if offset.abs() > skew {
            return Err(RpcError::timestamp_expired());
        }
        // NB: |offset| <= skew, so skew - offset lies in [0, 2 * skew] and is not negative.
        Ok(Duration::try_from(skew - offset).unwrap_or_default())
    }
}

/// Recomputes the signature over exactly the parameters received (except `Signature`) with
/// the method actually used, and compares.
fn check_signature(method: &str, params: &Params, secret: &SecretString) -> Result<(), RpcError> {
    let string_to_sign = rpc_string_to_sign(method, params.pairs());
    let expected = rpc_signature(secret.expose_secret(), &string_to_sign);
    let received = params.require("Signature")?;
    if constant_time_eq(expected.as_bytes(), received.as_bytes()) {
        Ok(())
    } else {
        Err(RpcError::signature_mismatch(&string_to_sign))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::sign::rpc_vectors;
    use crate::emulator::alibaba::params::Received;
    use crate::emulator::inventory::Account;

    fn account(id: &str, secret: &str) -> Account {
        Account {
            access_key_id: id.to_string(),
            access_key_secret: secret.to_string(),
        }
    }

    /// The official-SDK vectors, decoded from the wire form the SDK sent, verify.
    #[test]
    fn accepts_every_official_vector_from_its_wire_form() {
        for vector in rpc_vectors::load() {
            let body = vector.form_body.as_deref().map(str::as_bytes);
            let params = Received::decode(Some(&vector.signed_query_string), body)
                .into_params()
                .unwrap();
            let secret = SecretString::from(vector.access_key_secret.clone());
            let checked = check_signature(&vector.http_method, &params, &secret);
            assert!(checked.is_ok(), "vector {}: {checked:?}", vector.name);
            let wrong = SecretString::from("not-the-secret".to_string());
            let error = check_signature(&vector.http_method, &params, &wrong).unwrap_err();
            assert!(
                error.message.ends_with(&vector.string_to_sign),
                "vector {}",
                vector.name
            );
        }
    }

    fn signed(secret: &str, nonce: &str, timestamp: &str) -> Params {
        let mut pairs = vec![
            ("AccessKeyId", "key"),
            ("Action", "ListTagResources"),
            ("Format", "JSON"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", nonce),
            ("SignatureVersion", "1.0"),
            ("Timestamp", timestamp),
            ("Version", "2016-07-14"),
        ];
        let signature = rpc_signature(secret, &rpc_string_to_sign("GET", pairs.clone()));
        pairs.push(("Signature", &signature));
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        Received::decode(Some(&query), None).into_params().unwrap()
    }

    #[test]
    fn checks_key_window_and_nonce_in_order() {
        let accounts = Accounts::new(&[account("key", "secret")]);
        let nonces = NonceCache::new(100);
        let verifier = Verifier {
            accounts: &accounts,
            nonces: &nonces,
            clock_skew: Duration::from_secs(900),
        };
        let now: jiff::Timestamp = "2026-01-15T08:30:00Z".parse().unwrap();
        let instant = Instant::now();
        let fresh = signed("secret", "n1", "2026-01-15T08:20:00Z");
        assert_eq!(
            verifier.verify("GET", &fresh, now, instant),
            Ok("key".to_string())
        );
        let replay = verifier.verify("GET", &fresh, now, instant).unwrap_err();
        assert_eq!(replay.code, "SignatureNonceUsed");
        let stale = signed("secret", "n2", "2026-01-15T08:14:59Z");
        assert_eq!(
            verifier
                .verify("GET", &stale, now, instant)
                .unwrap_err()
                .code,
            "InvalidTimeStamp.Expired"
        );
        let future = signed("secret", "n3", "2026-01-15T08:45:01Z");
        assert_eq!(
            verifier
                .verify("GET", &future, now, instant)
                .unwrap_err()
                .code,
            "InvalidTimeStamp.Expired"
        );
        let garbled = signed("secret", "n4", "yesterday");
        assert_eq!(
            verifier
                .verify("GET", &garbled, now, instant)
                .unwrap_err()
                .code,
            "InvalidTimeStamp.Format"
        );
        let forged = signed("other", "n5", "2026-01-15T08:30:00Z");
        assert_eq!(
            verifier
                .verify("GET", &forged, now, instant)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            verifier
                .verify(
                    "POST",
                    &signed("secret", "n6", "2026-01-15T08:30:00Z"),
                    now,
                    instant
                )
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
        );
        let forged_nonce_is_still_free = signed("secret", "n5", "2026-01-15T08:30:00Z");
        assert_eq!(
            verifier.verify("GET", &forged_nonce_is_still_free, now, instant),
            Ok("key".to_string())
        );
    }

    #[test]
    fn names_the_first_missing_parameter_and_unknown_keys() {
        let accounts = Accounts::new(&[account("key", "secret")]);
        let nonces = NonceCache::new(100);
        let verifier = Verifier {
            accounts: &accounts,
            nonces: &nonces,
            clock_skew: Duration::from_secs(900),
        };
        let now = jiff::Timestamp::now();
        let params = Received::decode(Some("Action=A&Version=V"), None)
            .into_params()
            .unwrap();
        let error = verifier
            .verify("GET", &params, now, Instant::now())
            .unwrap_err();
        assert_eq!(error.code, "MissingParameter.AccessKeyId");
        let unknown = Accounts::new(&[]);
        let verifier = Verifier {
            accounts: &unknown,
            ..verifier
        };
        let error = verifier
            .verify(
                "GET",
                &signed("secret", "n", &now.to_string()),
                now,
                Instant::now(),
            )
            .unwrap_err();
        assert_eq!(error.code, "InvalidAccessKeyId.NotFound");
        assert_eq!(error.status, 404);
    }
}
