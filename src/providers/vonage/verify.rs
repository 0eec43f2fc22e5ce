//! Vonage's two webhook signatures, one per API. Both are pure: the time is passed in.
//!
//! **SMS API** (inbound messages and delivery receipts): "signed requests". The
//! parameters carry `sig`, `timestamp` and `nonce`. The signed string is every parameter
//! but `sig`, sorted by name (byte order), each written `&name=value` with every `&` and
//! `=` inside the value replaced by `_`. The account picks one method in the dashboard:
//! `md5hash` (the default: MD5 of the string followed by the secret, not an HMAC), or an
//! HMAC keyed by the secret with MD5, SHA-1, SHA-256 or SHA-512. The signature is hex;
//! Vonage's PHP SDK writes it upper case, the others lower case, so the case is not
//! compared. Sources: <https://developer.vonage.com/en/getting-started/concepts/signing-messages>,
//! `Vonage/vonage-php-sdk-core` `test/Client/SignatureTest.php`,
//! `Vonage/vonage-python-sdk` `http_client/tests/test_auth.py` (their vectors are in
//! `tests/providers/vonage/vectors.json`).
//!
//! The signed `timestamp` (Unix seconds) must be within [`TOLERANCE_SECS`] of our clock,
//! either way: Vonage signs it so that a captured request cannot be replayed later, and
//! its SDKs leave the check to the receiver.
//!
//! **Messages API** (inbound messages and statuses of SMS, MMS, WhatsApp, Messenger,
//! Viber): `Authorization: Bearer <JWT>`, HS256 with the account's signature secret
//! (the dashboard's method does not apply: always SHA-256), claims `iat`, `jti`, `iss`,
//! `api_key`, `application_id` and `payload_hash` (hex SHA-256 of the body). Source:
//! <https://developer.vonage.com/en/messages/concepts/signed-webhooks>. The token is
//! verified strictly: three parts, a header whose `alg` is exactly `HS256` (`none` and
//! every other algorithm are refused before any HMAC), the HMAC in constant time, `exp`
//! and `nbf` when present, `iat` within [`TOLERANCE_SECS`], and `payload_hash` present
//! and equal to the SHA-256 of the raw body. Vonage calls the hash check optional over
//! TLS; without it a token captured inside the window could carry any body, so it is
//! required here.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Digest;

use crate::secret::{Secret, constant_time_eq};
use crate::signature::{SignatureError, TimedError, within_window};

/// The parameter that carries the SMS API signature.
pub const SIG_PARAM: &str = "sig";

/// The signed timestamp parameter of the SMS API.
pub const TIMESTAMP_PARAM: &str = "timestamp";

/// The header that carries the Messages API token.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// How far a signed time (`timestamp`, `iat`) may be from our clock, either way: five
/// minutes, the window SPEC section 4 gives schemes that sign a time.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The longest token read: Vonage's is about 500 characters; anything far longer is
/// refused before it is decoded.
const MAX_TOKEN_LEN: usize = 4096;

/// The SMS API signature method, as the dashboard names it (`signature_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigMethod {
    /// MD5 of the signed string followed by the secret (Vonage's default; not an HMAC).
    Md5Hash,
    /// HMAC-MD5.
    Md5,
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl SigMethod {
    /// Every method.
    pub const ALL: [SigMethod; 5] = [
        SigMethod::Md5Hash,
        SigMethod::Md5,
        SigMethod::Sha1,
        SigMethod::Sha256,
        SigMethod::Sha512,
    ];

    /// The name in the configuration.
    pub const fn name(self) -> &'static str {
        match self {
            SigMethod::Md5Hash => "md5hash",
            SigMethod::Md5 => "md5",
            SigMethod::Sha1 => "sha1",
            SigMethod::Sha256 => "sha256",
            SigMethod::Sha512 => "sha512",
        }
    }

    /// The digest's length in bytes.
    const fn digest_len(self) -> usize {
        match self {
            SigMethod::Md5Hash | SigMethod::Md5 => 16,
            SigMethod::Sha1 => 20,
            SigMethod::Sha256 => 32,
            SigMethod::Sha512 => 64,
        }
    }

    /// The signature of `signed` under `secret`, as bytes.
    pub fn sign(self, secret: &[u8], signed: &[u8]) -> Vec<u8> {
        fn hmac<M: Mac + KeyInit>(secret: &[u8], signed: &[u8]) -> Vec<u8> {
            let mut mac =
                <M as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
            mac.update(signed);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            SigMethod::Md5Hash => {
                let mut md5 = md5::Md5::new();
                md5.update(signed);
                md5.update(secret);
                md5.finalize().to_vec()
            }
            SigMethod::Md5 => hmac::<Hmac<md5::Md5>>(secret, signed),
            SigMethod::Sha1 => hmac::<Hmac<sha1::Sha1>>(secret, signed),
            SigMethod::Sha256 => hmac::<Hmac<sha2::Sha256>>(secret, signed),
            SigMethod::Sha512 => hmac::<Hmac<sha2::Sha512>>(secret, signed),
        }
    }
}

/// The string the SMS API signs: `&name=value` for every parameter but `sig`, sorted
/// by name, with `&` and `=` in each value replaced by `_`.
pub fn signed_string(params: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = params
        .iter()
        .filter(|(name, _)| name != SIG_PARAM)
        .collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = Vec::new();
    for (name, value) in sorted {
        out.push(b'&');
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend(
            value
                .bytes()
                .map(|b| if b == b'&' || b == b'=' { b'_' } else { b }),
        );
    }
    out
}

/// Verify an SMS API webhook: its decoded parameters (query, form or flat JSON, in
/// any order), the account's `method`, the tenant's `secrets` (several while rotating)
/// and our clock. Checked in this order: `sig` present once, no parameter named twice
/// (what was signed would be ambiguous), `timestamp` present and within the window,
/// `sig` the hex digest of `method`, a secret configured, and some secret matching.
pub fn verify_sms(
    params: &[(String, String)],
    method: SigMethod,
    secrets: &[Secret],
    now_secs: i64,
) -> Result<(), TimedError> {
    let malformed = |why| SignatureError::Malformed {
        header: SIG_PARAM,
        why,
    };
    let mut sigs = params.iter().filter(|(n, _)| n == SIG_PARAM);
    let sig = sigs
        .next()
        .ok_or(SignatureError::MissingHeader(SIG_PARAM))?
        .1
        .trim();
    let mut names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(malformed(
            "a parameter occurs more than once, so what was signed is ambiguous",
        )
        .into());
    }
    let timestamp = params
        .iter()
        .find(|(n, _)| n == TIMESTAMP_PARAM)
        .ok_or(SignatureError::MissingHeader(TIMESTAMP_PARAM))?
        .1
        .trim();
    within_window(TIMESTAMP_PARAM, timestamp, now_secs, TOLERANCE_SECS)?;
    if sig.len() != 2 * method.digest_len() {
        return Err(malformed("it is not a hex digest of the configured signature_method").into());
    }
    let given = hex::decode(sig).map_err(|_| malformed("it is not hex"))?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret("vonage").into());
    }
    let signed = signed_string(params);
    // Every secret is tried, without stopping at a match.
    let matched = secrets.iter().fold(false, |found, secret| {
        constant_time_eq(&method.sign(secret.expose().as_bytes(), &signed), &given) | found
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(SIG_PARAM).into())
    }
}

/// The claims of a verified Messages API token that the road reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `api_key`: the account the webhook belongs to.
    pub api_key: Option<String>,
    /// `payload_hash`: hex SHA-256 of the body.
    pub payload_hash: Option<String>,
    /// `iat`, Unix seconds.
    pub iat: Option<i64>,
}

/// The token of an `Authorization: Bearer <token>` header (scheme in any case).
pub fn bearer(header: Option<&str>) -> Result<&str, SignatureError> {
    let header = header
        .ok_or(SignatureError::MissingHeader(AUTHORIZATION_HEADER))?
        .trim();
    let malformed = |why| SignatureError::Malformed {
        header: AUTHORIZATION_HEADER,
        why,
    };
    let (scheme, token) = header
        .split_once(' ')
        .ok_or(malformed("it is not \"Bearer\" and a token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed("its scheme is not Bearer"));
    }
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(malformed("its token is empty or too long to be Vonage's"));
    }
    Ok(token)
}

/// Is `header` a bearer token (the Messages API), rather than absent or another
/// scheme?
pub fn is_bearer(header: Option<&str>) -> bool {
    header
        .and_then(|h| h.trim().split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
}

/// The `api_key` claim of a token that is not verified yet: only to choose the tenant
/// whose secrets then verify it (nothing else of it is used before that).
pub fn unverified_api_key(token: &str) -> Option<String> {
    let claims = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&b64url(claims)?).ok()?;
    claims.get("api_key")?.as_str().map(str::to_string)
}

fn b64url(part: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()
}

/// Verify an HS256 token against `secrets` at `now_secs`: its header (`alg` exactly
/// `HS256`, no `crit`), its HMAC, `exp` (refused at or after it) and `nbf` (refused
/// when more than the window ahead). `iat` and `payload_hash` are read, not checked:
/// [`verify_messages`] checks them.
pub fn verify_jwt(token: &str, secrets: &[Secret], now_secs: i64) -> Result<Claims, TimedError> {
    let malformed = |why| SignatureError::Malformed {
        header: AUTHORIZATION_HEADER,
        why,
    };
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(malformed("its token is not three dot-separated parts").into());
    };
    let header: Map<String, Value> = b64url(header)
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(malformed("its token header is not base64url JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(malformed("its token's alg is not HS256").into());
    }
    if header.contains_key("crit") {
        return Err(malformed("its token names critical extensions").into());
    }
    let given = b64url(signature).ok_or(malformed("its token signature is not base64url"))?;
    if given.len() != 32 {
        return Err(malformed("its token signature is not the 32 bytes of HMAC-SHA256").into());
    }
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret("vonage").into());
    }
    let signing_input = &token.as_bytes()[..token.len() - signature.len() - 1];
    let matched = secrets.iter().fold(false, |found, secret| {
        let expected = crate::signature::hmac_sha256(secret.expose().as_bytes(), &[signing_input]);
        constant_time_eq(&expected, &given) | found
    });
    if !matched {
        return Err(SignatureError::Mismatch(AUTHORIZATION_HEADER).into());
    }
    let claims: Map<String, Value> = b64url(claims)
        .and_then(|c| serde_json::from_slice(&c).ok())
        .ok_or(malformed("its token claims are not base64url JSON"))?;
    let time = |name: &str| -> Result<Option<i64>, SignatureError> {
        match claims.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .map(Some)
                .ok_or(malformed("a time claim of its token is not a number")),
        }
    };
    if let Some(exp) = time("exp")?
        && now_secs >= exp
    {
        return Err(TimedError::TooOld {
            age_secs: now_secs.saturating_sub(exp),
            tolerance_secs: 0,
        });
    }
    if let Some(nbf) = time("nbf")?
        && nbf.saturating_sub(now_secs) > TOLERANCE_SECS
    {
        return Err(TimedError::TooNew {
            ahead_secs: nbf.saturating_sub(now_secs),
            tolerance_secs: TOLERANCE_SECS,
        });
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
    Ok(Claims {
        api_key: text("api_key"),
        payload_hash: text("payload_hash"),
        iat: time("iat")?,
    })
}

/// Verify a Messages API webhook: the `Authorization` header, the raw `body`, the
/// tenant's `secrets` (several while rotating) and our clock. The token is verified
/// ([`verify_jwt`]), then `iat` must be present and within [`TOLERANCE_SECS`] either
/// way, then `payload_hash` present and the SHA-256 of the body.
pub fn verify_messages(
    authorization: Option<&str>,
    body: &[u8],
    secrets: &[Secret],
    now_secs: i64,
) -> Result<Claims, TimedError> {
    let token = bearer(authorization)?;
    let claims = verify_jwt(token, secrets, now_secs)?;
    let iat = claims.iat.ok_or(SignatureError::Malformed {
        header: AUTHORIZATION_HEADER,
        why: "its token has no iat claim",
    })?;
    within_window(
        "iat claim",
        &iat.max(0).to_string(),
        now_secs,
        TOLERANCE_SECS,
    )?;
    let claimed = claims
        .payload_hash
        .as_deref()
        .ok_or(SignatureError::Malformed {
            header: AUTHORIZATION_HEADER,
            why: "its token has no payload_hash claim, so the body is not bound to it",
        })?;
    let actual = hex::encode(sha2::Sha256::digest(body));
    if !constant_time_eq(
        claimed.trim().to_ascii_lowercase().as_bytes(),
        actual.as_bytes(),
    ) {
        return Err(SignatureError::Mismatch("the token's payload_hash").into());
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testkit;

    const SECRET: &str = "my_secret_key_for_testing";
    const NOW: i64 = 1_385_047_698;

    fn params(form: &str) -> Vec<(String, String)> {
        crate::providers::twilio::normalise::parse_form(form.as_bytes()).unwrap()
    }

    fn with_sig(
        mut p: Vec<(String, String)>,
        method: SigMethod,
        secret: &str,
    ) -> Vec<(String, String)> {
        let sig = hex::encode(method.sign(secret.as_bytes(), &signed_string(&p)));
        p.push(("sig".into(), sig));
        p
    }

    const INBOUND: &str = "message-timestamp=2013-11-21%2015%3A27%3A30&messageId=020000001B0FE827&msisdn=14843472194&text=Test%20again&timestamp=1385047698&to=13239877404&type=text";

    /// Every Vonage entry of research/vectors.json (copied into
    /// tests/providers/vonage/vectors.json). A vector without `now` is checked at its
    /// own signed time (the request-signing vectors sign a time too).
    #[test]
    fn vectors() {
        let vectors =
            testkit::vectors(include_str!("../../../tests/providers/vonage/vectors.json"));
        assert_eq!(vectors.len(), 24);
        let (mut good, mut bad) = (0, 0);
        for v in &vectors {
            let name = v["name"].as_str().unwrap();
            let secret = [Secret::new(v["secret"].as_str().unwrap())];
            let body = v["body"].as_str().unwrap().as_bytes();
            let scheme = v["scheme"].as_str().unwrap();
            let valid = if scheme == "vonage-jwt-hs256" {
                let auth = testkit::vector_header(v, "authorization");
                if v["check_payload_hash"].as_bool().unwrap() {
                    let now = v["now"].as_i64().unwrap();
                    testkit::assert_vector_validity(v, &verify_messages(auth, body, &secret, now))
                } else {
                    // A generic token without payload_hash: the signature, alg and exp
                    // are checked at its own iat.
                    let token = bearer(auth).unwrap();
                    let iat =
                        verify_jwt(token, &[Secret::new("qwertyuiopasdfghjklzxcvbnm123456")], 0)
                            .unwrap()
                            .iat
                            .unwrap();
                    testkit::assert_vector_validity(v, &verify_jwt(token, &secret, iat))
                }
            } else {
                let method = match scheme.trim_start_matches("vonage-sms-sig-") {
                    "md5hash" => SigMethod::Md5Hash,
                    "md5" => SigMethod::Md5,
                    "sha1" => SigMethod::Sha1,
                    "sha256" => SigMethod::Sha256,
                    "sha512" => SigMethod::Sha512,
                    other => panic!("{name}: scheme {other}"),
                };
                let p = params(std::str::from_utf8(body).unwrap());
                let ts: i64 = p
                    .iter()
                    .find(|(n, _)| n == "timestamp")
                    .unwrap()
                    .1
                    .parse()
                    .unwrap();
                let now = v["now"].as_i64().unwrap_or(ts);
                let result = verify_sms(&p, method, &secret, now);
                if let Some(expected) = v["expected_signature"].as_str() {
                    let ours =
                        hex::encode(method.sign(secret[0].expose().as_bytes(), &signed_string(&p)));
                    assert!(ours.eq_ignore_ascii_case(expected), "{name}: {ours}");
                }
                testkit::assert_vector_validity(v, &result)
            };
            if valid {
                good += 1;
            } else {
                bad += 1;
            }
        }
        assert_eq!((good, bad), (20, 4));
    }

    #[test]
    fn every_method_signs_verifies_and_refuses_a_tamper() {
        for method in SigMethod::ALL {
            let p = with_sig(params(INBOUND), method, SECRET);
            let secrets = testkit::secrets(&[SECRET]);
            assert_eq!(verify_sms(&p, method, &secrets, NOW), Ok(()), "{method:?}");
            // Upper-case hex (Vonage's PHP SDK) is the same signature.
            let mut upper = p.clone();
            upper.last_mut().unwrap().1.make_ascii_uppercase();
            assert_eq!(
                verify_sms(&upper, method, &secrets, NOW),
                Ok(()),
                "{method:?}"
            );
            let mut tampered = p.clone();
            tampered[3].1 = "STOP".into();
            assert_eq!(
                verify_sms(&tampered, method, &secrets, NOW),
                Err(SignatureError::Mismatch(SIG_PARAM).into()),
                "{method:?}"
            );
            // The wrong method for the account: refused.
            let other = if method == SigMethod::Md5 {
                SigMethod::Md5Hash
            } else {
                SigMethod::Md5
            };
            assert!(verify_sms(&p, other, &secrets, NOW).is_err(), "{method:?}");
        }
    }

    #[test]
    fn rotation_window_and_refusals() {
        let p = with_sig(params(INBOUND), SigMethod::Sha256, SECRET);
        let both = testkit::secrets(&["old", SECRET]);
        assert_eq!(verify_sms(&p, SigMethod::Sha256, &both, NOW), Ok(()));
        let at = |now| verify_sms(&p, SigMethod::Sha256, &both, now);
        assert_eq!(at(NOW + TOLERANCE_SECS), Ok(()));
        assert_eq!(at(NOW - TOLERANCE_SECS), Ok(()));
        assert!(matches!(
            at(NOW + TOLERANCE_SECS + 1),
            Err(TimedError::TooOld { .. })
        ));
        assert!(matches!(
            at(NOW - TOLERANCE_SECS - 1),
            Err(TimedError::TooNew { .. })
        ));
        let without = |name: &str| -> Vec<(String, String)> {
            p.iter().filter(|(n, _)| n != name).cloned().collect()
        };
        assert_eq!(
            verify_sms(&without("sig"), SigMethod::Sha256, &both, NOW),
            Err(SignatureError::MissingHeader(SIG_PARAM).into())
        );
        assert_eq!(
            verify_sms(&without("timestamp"), SigMethod::Sha256, &both, NOW),
            Err(SignatureError::MissingHeader(TIMESTAMP_PARAM).into())
        );
        assert_eq!(
            verify_sms(&p, SigMethod::Sha256, &[], NOW),
            Err(SignatureError::NoSecret("vonage").into())
        );
        let mut twice = p.clone();
        twice.push(("text".into(), "STOP".into()));
        assert!(matches!(
            verify_sms(&twice, SigMethod::Sha256, &both, NOW),
            Err(TimedError::Signature(SignatureError::Malformed { .. }))
        ));
        for bad in ["zz", "abc", &"g".repeat(64)] {
            let mut q = without("sig");
            q.push(("sig".into(), bad.to_string()));
            assert!(
                matches!(
                    verify_sms(&q, SigMethod::Sha256, &both, NOW),
                    Err(TimedError::Signature(SignatureError::Malformed { .. }))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn values_with_ampersand_and_equals_are_signed_with_underscores() {
        let p = params("b=x%26y%3Dz&a=1");
        assert_eq!(signed_string(&p), b"&a=1&b=x_y_z".to_vec());
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn jwt(header: &str, claims: &Value, secret: &str) -> String {
        let input = format!(
            "{}.{}",
            b64(header.as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = crate::signature::hmac_sha256(secret.as_bytes(), &[input.as_bytes()]);
        format!("{input}.{}", b64(&sig))
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
    const BODY: &[u8] = br#"{"channel":"sms","message_uuid":"u1","text":"STOP"}"#;

    fn claims(iat: i64, body: &[u8]) -> Value {
        serde_json::json!({
            "iat": iat, "jti": "j1", "iss": "Vonage", "api_key": "abcd1234",
            "application_id": "app", "payload_hash": hex::encode(sha2::Sha256::digest(body)),
        })
    }

    #[test]
    fn jwt_signs_verifies_and_binds_the_body() {
        let secrets = testkit::secrets(&["s1"]);
        let token = format!("Bearer {}", jwt(HS256, &claims(NOW, BODY), "s1"));
        let got = verify_messages(Some(&token), BODY, &secrets, NOW).unwrap();
        assert_eq!(got.api_key.as_deref(), Some("abcd1234"));
        assert_eq!(
            unverified_api_key(bearer(Some(&token)).unwrap()).as_deref(),
            Some("abcd1234")
        );
        // Another body under the same token.
        assert_eq!(
            verify_messages(Some(&token), b"{}", &secrets, NOW),
            Err(SignatureError::Mismatch("the token's payload_hash").into())
        );
        // Another secret; rotation.
        assert_eq!(
            verify_messages(Some(&token), BODY, &testkit::secrets(&["s2"]), NOW),
            Err(SignatureError::Mismatch(AUTHORIZATION_HEADER).into())
        );
        assert!(verify_messages(Some(&token), BODY, &testkit::secrets(&["s2", "s1"]), NOW).is_ok());
        // iat outside the window either way.
        assert!(matches!(
            verify_messages(Some(&token), BODY, &secrets, NOW + TOLERANCE_SECS + 1),
            Err(TimedError::TooOld { .. })
        ));
        assert!(matches!(
            verify_messages(Some(&token), BODY, &secrets, NOW - TOLERANCE_SECS - 1),
            Err(TimedError::TooNew { .. })
        ));
    }

    #[test]
    fn jwt_refusals() {
        let secrets = testkit::secrets(&["s1"]);
        let check =
            |token: String| verify_messages(Some(&format!("Bearer {token}")), BODY, &secrets, NOW);
        let malformed = |r: Result<Claims, TimedError>| {
            matches!(
                r,
                Err(TimedError::Signature(SignatureError::Malformed { .. }))
            )
        };
        // alg none (no signature), alg HS512, alg missing.
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none"}"#),
            b64(claims(NOW, BODY).to_string().as_bytes())
        );
        assert!(malformed(check(none)));
        assert!(malformed(check(jwt(
            r#"{"alg":"HS512"}"#,
            &claims(NOW, BODY),
            "s1"
        ))));
        assert!(malformed(check(jwt(
            r#"{"typ":"JWT"}"#,
            &claims(NOW, BODY),
            "s1"
        ))));
        assert!(malformed(check(jwt(
            r#"{"alg":"HS256","crit":["x"]}"#,
            &claims(NOW, BODY),
            "s1"
        ))));
        // Not three parts; garbage.
        assert!(malformed(check("a.b".into())));
        assert!(malformed(check("!!.??.**".into())));
        // No payload_hash, no iat.
        let mut c = claims(NOW, BODY);
        c.as_object_mut().unwrap().remove("payload_hash");
        assert!(malformed(check(jwt(HS256, &c, "s1"))));
        let mut c = claims(NOW, BODY);
        c.as_object_mut().unwrap().remove("iat");
        assert!(malformed(check(jwt(HS256, &c, "s1"))));
        // exp passed; nbf far ahead.
        let mut c = claims(NOW, BODY);
        c["exp"] = NOW.into();
        assert!(matches!(
            check(jwt(HS256, &c, "s1")),
            Err(TimedError::TooOld { .. })
        ));
        let mut c = claims(NOW, BODY);
        c["nbf"] = (NOW + TOLERANCE_SECS + 1).into();
        assert!(matches!(
            check(jwt(HS256, &c, "s1")),
            Err(TimedError::TooNew { .. })
        ));
        // Headers.
        assert_eq!(
            verify_messages(None, BODY, &secrets, NOW),
            Err(SignatureError::MissingHeader(AUTHORIZATION_HEADER).into())
        );
        assert!(malformed(verify_messages(
            Some("Basic abc"),
            BODY,
            &secrets,
            NOW
        )));
        assert!(malformed(verify_messages(
            Some("Bearer"),
            BODY,
            &secrets,
            NOW
        )));
        let token = jwt(HS256, &claims(NOW, BODY), "s1");
        assert_eq!(
            verify_messages(Some(&format!("Bearer {token}")), BODY, &[], NOW),
            Err(SignatureError::NoSecret("vonage").into())
        );
        assert!(is_bearer(Some("bearer x")));
        assert!(!is_bearer(Some("Basic x")));
        assert!(!is_bearer(None));
    }
}
