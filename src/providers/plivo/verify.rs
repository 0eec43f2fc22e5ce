//! Plivo's signature V3: base64 HMAC-SHA256, keyed with the Auth Token, of the URL
//! Plivo called as Plivo rebuilds it (the parameters sorted into it), a dot, and the
//! nonce of `X-Plivo-Signature-V3-Nonce`.
//!
//! The string Plivo signs (what its SDKs rebuild: plivo-python
//! `plivo/utils/signature_v3.py`, plivo-go `utils.go` `GenerateUrl`):
//!
//! - the base: `scheme://host[:port]/path`, the query and any fragment left off;
//! - GET: `?` and every query parameter, decoded, as `name=value`, names sorted
//!   byte-wise (values of one name sorted too), joined with `&`; nothing when there
//!   are none;
//! - POST: `?` when the URL has a query or the form has parameters; the query as for
//!   GET; `.` when both exist; then the form parameters, decoded, as `namevalue` with
//!   no separator, sorted the same way;
//! - then `.` and the nonce.
//!
//! `X-Plivo-Signature-V3` may hold several signatures separated by commas (one per
//! Auth Token while Plivo has more than one active): one match is enough.
//! `X-Plivo-Signature-Ma-V3`, sent beside it, is the same HMAC keyed with the main
//! account's token (V3 uses the token of the account or subaccount that owns the
//! number); its entries are tried too, so a tenant may configure either token.
//!
//! The scheme signs no time, so the nonce is no replay guard on its own: a replay
//! is stopped by the store's dedup on `MessageUUID` (see the road, `super`). The
//! legacy V2 (URL and nonce only, parameters unsigned) and V1 (HMAC-SHA1) headers are
//! never accepted.

use base64::Engine as _;

use crate::secret::{Secret, constant_time_eq};
use crate::signature::{SignatureError, hmac_sha256};

/// The header that carries the signature(s).
pub const SIGNATURE_HEADER: &str = "x-plivo-signature-v3";

/// The header that carries the nonce, part of what is signed.
pub const NONCE_HEADER: &str = "x-plivo-signature-v3-nonce";

/// The header with the same signature keyed with the main account's Auth Token.
pub const MAIN_ACCOUNT_HEADER: &str = "x-plivo-signature-ma-v3";

/// Longest signature header read: a few base64 HMAC-SHA256s (44 characters each)
/// and commas. Anything longer is refused before any decoding.
const MAX_SIGNATURE_HEADER_LEN: usize = 1024;

/// Most signatures read from one header (Plivo sends one per active Auth Token).
const MAX_SIGNATURES: usize = 8;

/// Longest nonce read (Plivo's are about 20 digits).
const MAX_NONCE_LEN: usize = 256;

/// The HTTP method Plivo called with: it builds the signed string differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Parameters in the query string.
    Get,
    /// Parameters in a form body (the default for Plivo's message URLs).
    Post,
}

/// The headers of a request that the scheme reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Headers<'a> {
    /// `X-Plivo-Signature-V3`.
    pub signature: Option<&'a str>,
    /// `X-Plivo-Signature-V3-Nonce`.
    pub nonce: Option<&'a str>,
    /// `X-Plivo-Signature-Ma-V3`.
    pub main_account: Option<&'a str>,
}

/// Verify a Plivo request.
///
/// `url` is the full URL Plivo called (the configured public URL and the path and
/// query as received); `params` the decoded form parameters of a POST (empty for a
/// GET, whose parameters are the query); `tokens` the tenant's Auth Tokens, tried in
/// turn. Checked in this order: the signature header present and holding at least one
/// base64 32-byte value, the nonce present, a token configured, the query readable,
/// and some token's HMAC equal to some signature.
pub fn verify_plivo(
    url: &str,
    method: Method,
    params: &[(String, String)],
    headers: Headers<'_>,
    tokens: &[Secret],
) -> Result<(), SignatureError> {
    let header = headers
        .signature
        .ok_or(SignatureError::MissingHeader(SIGNATURE_HEADER))?;
    let mut given = signatures(SIGNATURE_HEADER, header)?;
    // The main account's header only adds candidates; a malformed one is ignored
    // rather than refused, since the V3 header alone may verify.
    if let Some(main) = headers.main_account {
        given.extend(signatures(MAIN_ACCOUNT_HEADER, main).unwrap_or_default());
    }
    let nonce = headers
        .nonce
        .ok_or(SignatureError::MissingHeader(NONCE_HEADER))?
        .trim();
    if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
        return Err(SignatureError::Malformed {
            header: NONCE_HEADER,
            why: "it is empty or too long to be a Plivo nonce",
        });
    }
    if tokens.is_empty() {
        return Err(SignatureError::NoSecret("plivo"));
    }
    let signed = signed_string(url, method, params).map_err(|why| SignatureError::Malformed {
        header: SIGNATURE_HEADER,
        why,
    })?;
    let mut message = Vec::with_capacity(signed.len() + 1 + nonce.len());
    message.extend_from_slice(signed.as_bytes());
    message.push(b'.');
    message.extend_from_slice(nonce.as_bytes());
    // Every token against every signature, without stopping at a match: the time
    // taken does not tell which token matched.
    let matched = tokens.iter().fold(false, |found, token| {
        let expected = hmac_sha256(token.expose().as_bytes(), &[&message]);
        given
            .iter()
            .fold(found, |found, sig| constant_time_eq(&expected, sig) | found)
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(SIGNATURE_HEADER))
    }
}

/// The signatures of a comma-separated header: each entry trimmed and base64-decoded;
/// an entry that is not base64 of 32 bytes is skipped (it may be a signature of
/// another scheme). Malformed when no entry is one, or the header is far too long.
fn signatures(header: &'static str, value: &str) -> Result<Vec<[u8; 32]>, SignatureError> {
    let malformed = |why| SignatureError::Malformed { header, why };
    if value.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(malformed("it is too long to hold Plivo signatures"));
    }
    let found: Vec<[u8; 32]> = value
        .split(',')
        .take(MAX_SIGNATURES)
        .filter_map(|entry| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(entry.trim())
                .ok()?;
            <[u8; 32]>::try_from(bytes.as_slice()).ok()
        })
        .collect();
    if found.is_empty() {
        return Err(malformed("no entry is the base64 of a 32-byte HMAC-SHA256"));
    }
    Ok(found)
}

/// The string Plivo signs for a request to `url` (before `.` and the nonce); why not,
/// when the URL's query is not valid `x-www-form-urlencoded`.
pub fn signed_string(
    url: &str,
    method: Method,
    params: &[(String, String)],
) -> Result<String, &'static str> {
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let query = super::normalise::decode_pairs(query.as_bytes())?;
    let query = sorted(&query)
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut out = String::with_capacity(url.len() + 64);
    out.push_str(base);
    match method {
        Method::Get => {
            if !query.is_empty() {
                out.push('?');
                out.push_str(&query);
            }
        }
        Method::Post => {
            if !query.is_empty() || !params.is_empty() {
                out.push('?');
            }
            out.push_str(&query);
            if !query.is_empty() && !params.is_empty() {
                out.push('.');
            }
            for (name, value) in sorted(params) {
                out.push_str(name);
                out.push_str(value);
            }
        }
    }
    Ok(out)
}

/// Pairs sorted by name, then by value (Plivo's SDKs sort the values of a repeated
/// name too); byte order, which for UTF-8 is code point order.
fn sorted(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut sorted: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sorted.sort_unstable();
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testkit::{self, secrets as tokens};

    const URL: &str = "https://hooks.example.com/webhooks/plivo/acme";
    const TOKEN: &str = "MzA2NzNiOGE1ZjQ1ZTI4ZTUzNWY2YjQ5";
    const NONCE: &str = "05429567804466091622";

    fn form(body: &str) -> Vec<(String, String)> {
        super::super::normalise::decode_pairs(body.as_bytes()).expect("test form")
    }

    /// Sign as Plivo does, written from its documentation (independent of
    /// `signed_string` for the POST case without a query, the one the road meets).
    fn sign(token: &str, url: &str, params: &[(String, String)], nonce: &str) -> String {
        let mut sorted = params.to_vec();
        sorted.sort();
        let mut s = url.to_string();
        if !sorted.is_empty() {
            s.push('?');
        }
        for (k, v) in &sorted {
            s.push_str(k);
            s.push_str(v);
        }
        s.push('.');
        s.push_str(nonce);
        base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(token.as_bytes(), &[s.as_bytes()]))
    }

    fn headers<'a>(sig: &'a str, nonce: &'a str) -> Headers<'a> {
        Headers {
            signature: Some(sig),
            nonce: Some(nonce),
            main_account: None,
        }
    }

    fn inbound() -> Vec<(String, String)> {
        form(
            "From=14155550100&To=14155550199&Text=STOP&Type=sms&MessageUUID=abc&MessageIntent=optout",
        )
    }

    /// Every Plivo entry of research/vectors.json (copied into
    /// tests/providers/plivo/vectors.json). V3 entries go through the verifier as the
    /// road calls it; the legacy V2 and V1 entries, which the gateway never accepts,
    /// are refused by it (no V3 header), and their published signatures are checked
    /// with the legacy formulas here so the data stays honest.
    #[test]
    fn vectors() {
        let vectors = testkit::vectors(include_str!("../../../tests/providers/plivo/vectors.json"));
        assert_eq!(vectors.len(), 11);
        let (mut good, mut bad, mut legacy) = (0, 0, 0);
        for v in &vectors {
            let name = v["name"].as_str().unwrap();
            let get = |n: &str| testkit::vector_header(v, n);
            let secret = v["secret"].as_str().unwrap();
            let url = v["url"].as_str().unwrap();
            let body = v["body"].as_str().unwrap();
            let method = match v["method"].as_str().unwrap() {
                "GET" => Method::Get,
                _ => Method::Post,
            };
            let params = if method == Method::Post {
                form(body)
            } else {
                Vec::new()
            };
            let h = Headers {
                signature: get(SIGNATURE_HEADER),
                nonce: get(NONCE_HEADER),
                main_account: get(MAIN_ACCOUNT_HEADER),
            };
            let result = verify_plivo(url, method, &params, h, &tokens(&[secret]));
            match v["scheme"].as_str().unwrap() {
                "plivo-signature-v3" => {
                    if testkit::assert_vector_verdict(
                        v,
                        &result,
                        SignatureError::Mismatch(SIGNATURE_HEADER),
                    ) {
                        good += 1;
                    } else {
                        bad += 1;
                    }
                    if let Some(expected) = v["string_to_sign"].as_str() {
                        let signed = signed_string(url, method, &params).unwrap();
                        let nonce = get(NONCE_HEADER).unwrap();
                        assert_eq!(format!("{signed}.{nonce}"), expected, "{name}");
                    }
                }
                scheme => {
                    assert_eq!(
                        result,
                        Err(SignatureError::MissingHeader(SIGNATURE_HEADER)),
                        "{name}: legacy schemes are never accepted"
                    );
                    let valid = legacy_signature_matches(scheme, secret, url, body, v);
                    assert_eq!(valid, v["expected_valid"].as_bool().unwrap(), "{name}");
                    legacy += 1;
                }
            }
        }
        assert_eq!((good, bad, legacy), (5, 2, 4));
    }

    /// The published V2 (HMAC-SHA256 of URL without query, then nonce) and V1
    /// (HMAC-SHA1 of URL and sorted `namevalue`) signatures, recomputed.
    fn legacy_signature_matches(
        scheme: &str,
        secret: &str,
        url: &str,
        body: &str,
        v: &serde_json::Value,
    ) -> bool {
        use hmac::{Hmac, KeyInit, Mac};
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        match scheme {
            "plivo-signature-v2" => {
                let nonce = testkit::vector_header(v, "X-Plivo-Signature-V2-Nonce").unwrap();
                let given = testkit::vector_header(v, "X-Plivo-Signature-V2").unwrap();
                let base = url.split('?').next().unwrap();
                let msg = format!("{base}{nonce}");
                b64(&hmac_sha256(secret.as_bytes(), &[msg.as_bytes()])) == given
            }
            "plivo-signature-v1-legacy" => {
                let given = testkit::vector_header(v, "X-Plivo-Signature").unwrap();
                let mut msg = url.to_string();
                for (k, val) in sorted(&form(body)) {
                    msg.push_str(k);
                    msg.push_str(val);
                }
                let mut mac =
                    <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
                mac.update(msg.as_bytes());
                b64(&mac.finalize().into_bytes()) == given
            }
            other => panic!("unknown scheme {other}"),
        }
    }

    #[test]
    fn sign_verify_tamper() {
        let params = inbound();
        let sig = sign(TOKEN, URL, &params, NONCE);
        let t = tokens(&[TOKEN]);
        let verify = |url: &str, params: &[(String, String)], sig: &str, nonce: &str| {
            verify_plivo(url, Method::Post, params, headers(sig, nonce), &t)
        };
        assert_eq!(verify(URL, &params, &sig, NONCE), Ok(()));

        let mut tampered = params.clone();
        tampered[2].1 = "START".into();
        assert_eq!(
            verify(URL, &tampered, &sig, NONCE),
            Err(SignatureError::Mismatch(SIGNATURE_HEADER))
        );
        let mut added = params.clone();
        added.push(("ErrorCode".into(), "200".into()));
        assert!(
            verify(URL, &added, &sig, NONCE).is_err(),
            "an unsigned extra parameter"
        );
        assert!(verify(&URL.replace("acme", "evil"), &params, &sig, "x").is_err());
        assert!(
            verify(URL, &params, &sig, "05429567804466091623").is_err(),
            "the nonce is signed"
        );
        // Parameter order does not matter; spaces around the values of headers do not.
        let mut shuffled = params.clone();
        shuffled.reverse();
        assert_eq!(
            verify(URL, &shuffled, &format!(" {sig} "), &format!("{NONCE} ")),
            Ok(())
        );
    }

    #[test]
    fn rotation_and_comma_lists() {
        let params = inbound();
        let old = sign("old-token", URL, &params, NONCE);
        let new = sign("new-token", URL, &params, NONCE);
        let both = tokens(&["old-token", "new-token"]);
        for sig in [&old, &new] {
            assert_eq!(
                verify_plivo(URL, Method::Post, &params, headers(sig, NONCE), &both),
                Ok(())
            );
        }
        // Plivo lists one signature per active token: any entry may match.
        let listed = format!("{old},{new}");
        let only_new = tokens(&["new-token"]);
        assert_eq!(
            verify_plivo(
                URL,
                Method::Post,
                &params,
                headers(&listed, NONCE),
                &only_new
            ),
            Ok(())
        );
        assert_eq!(
            verify_plivo(URL, Method::Post, &params, headers(&old, NONCE), &only_new),
            Err(SignatureError::Mismatch(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn main_account_signature_is_tried_too() {
        let params = inbound();
        let sub = sign("subaccount-token", URL, &params, NONCE);
        let main = sign("main-token", URL, &params, NONCE);
        let h = Headers {
            signature: Some(&sub),
            nonce: Some(NONCE),
            main_account: Some(&main),
        };
        let t = tokens(&["main-token"]);
        assert_eq!(verify_plivo(URL, Method::Post, &params, h, &t), Ok(()));
        let garbage = Headers {
            main_account: Some("not base64!"),
            ..h
        };
        assert_eq!(
            verify_plivo(URL, Method::Post, &params, garbage, &t),
            Err(SignatureError::Mismatch(SIGNATURE_HEADER)),
            "a malformed main-account header adds nothing"
        );
    }

    #[test]
    fn signed_string_shapes() {
        let p = form("b=2&a=1&a=0");
        let cases = [
            (
                "https://h.com/x",
                Method::Post,
                &p,
                "https://h.com/x?a0a1b2",
            ),
            (
                "https://h.com/x?z=9&y=8",
                Method::Post,
                &p,
                "https://h.com/x?y=8&z=9.a0a1b2",
            ),
            (
                "https://h.com/x?z=9",
                Method::Post,
                &Vec::new(),
                "https://h.com/x?z=9",
            ),
            (
                "https://h.com/x",
                Method::Post,
                &Vec::new(),
                "https://h.com/x",
            ),
            (
                "https://h.com/x/?b=a%20b&a=%3C1%3E#frag",
                Method::Get,
                &Vec::new(),
                "https://h.com/x/?a=<1>&b=a b",
            ),
            (
                "https://h.com/x",
                Method::Get,
                &Vec::new(),
                "https://h.com/x",
            ),
        ];
        for (url, method, params, want) in cases {
            assert_eq!(signed_string(url, method, params).unwrap(), want, "{url}");
        }
        assert!(signed_string("https://h.com/x?a=%zz", Method::Get, &[]).is_err());
    }

    #[test]
    fn refusals_name_the_failed_check() {
        let params = inbound();
        let sig = sign(TOKEN, URL, &params, NONCE);
        let t = tokens(&[TOKEN]);
        let run = |h: Headers<'_>, t: &[Secret]| verify_plivo(URL, Method::Post, &params, h, t);
        assert_eq!(
            run(
                Headers {
                    nonce: Some(NONCE),
                    ..Headers::default()
                },
                &t
            ),
            Err(SignatureError::MissingHeader(SIGNATURE_HEADER))
        );
        assert_eq!(
            run(
                Headers {
                    signature: Some(&sig),
                    ..Headers::default()
                },
                &t
            ),
            Err(SignatureError::MissingHeader(NONCE_HEADER))
        );
        let long = "A".repeat(MAX_SIGNATURE_HEADER_LEN + 1);
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 20]);
        for garbage in ["", "!!!", "AAAA", short.as_str(), long.as_str(), ",,,"] {
            let err = run(headers(garbage, NONCE), &t).unwrap_err();
            assert!(
                matches!(
                    err,
                    SignatureError::Malformed {
                        header: SIGNATURE_HEADER,
                        ..
                    }
                ),
                "{garbage:?}: {err:?}"
            );
        }
        let long_nonce = "1".repeat(MAX_NONCE_LEN + 1);
        for nonce in ["", "  ", long_nonce.as_str()] {
            let err = run(headers(&sig, nonce), &t).unwrap_err();
            assert!(
                matches!(
                    err,
                    SignatureError::Malformed {
                        header: NONCE_HEADER,
                        ..
                    }
                ),
                "{nonce:?}: {err:?}"
            );
        }
        assert_eq!(
            run(headers(&sig, NONCE), &[]),
            Err(SignatureError::NoSecret("plivo"))
        );
        for e in [
            SignatureError::MissingHeader(SIGNATURE_HEADER),
            SignatureError::Mismatch(SIGNATURE_HEADER),
            SignatureError::NoSecret("plivo"),
        ] {
            let gateway: crate::error::Error = e.into();
            assert_eq!(gateway.kind, crate::error::Kind::Unauthorized);
            assert!(!gateway.message.contains('\n') && !gateway.message.contains(TOKEN));
        }
    }
}
