//! Mandrill's signature (Mailchimp Transactional): `X-Mandrill-Signature` is the base64
//! of HMAC-SHA1, under the webhook's key, of the webhook URL exactly as it was entered
//! in Mandrill, followed by each POST parameter's name and value, sorted by name, with
//! no separators. In practice the one parameter is `mandrill_events`, so the signed
//! string is `URL + "mandrill_events" + <the decoded JSON>`.
//!
//! Source: "How to Authenticate Webhook Requests",
//! <https://mandrill.zendesk.com/hc/en-us/articles/360039232513-How-to-Authenticate-Webhook-Requests>.
//! The URL is not re-spelt in any way: Mandrill signs the exact URL, and "a difference
//! as small as including or removing a trailing slash will prevent the signature from
//! validating" (same page). The scheme signs no time, so there is no window to check.

use base64::Engine as _;

use crate::secret::{Secret, constant_time_eq};
use crate::signature::{
    SignatureError, hmac_sha1_base64_header, hmac_sha1_url_params, signature_header,
};

/// The header that carries Mandrill's signature.
pub const SIGNATURE_HEADER: &str = "X-Mandrill-Signature";

/// Verify `X-Mandrill-Signature` (`signature`, `None` when absent) over `url` (the
/// public URL the webhook was registered with) and the decoded form `params`, with each
/// of the tenant's webhook `keys` in turn (several while rotating).
///
/// Refused, one [`SignatureError`] per check: no header; a header that is not the
/// base64 of 20 bytes; no key configured; a signature no key reproduces.
pub fn verify_mandrill(
    url: &str,
    params: &[(String, String)],
    signature: Option<&str>,
    keys: &[Secret],
) -> Result<(), SignatureError> {
    let given = signature_header(
        SIGNATURE_HEADER,
        signature,
        |v| hmac_sha1_base64_header(SIGNATURE_HEADER, v),
        "mandrill",
        keys,
    )?;
    let sorted = sorted_params(params);
    let matched = keys.iter().any(|key| {
        let expected = hmac_sha1_url_params(key.expose().as_bytes(), url, &sorted);
        constant_time_eq(&expected, &given)
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(SIGNATURE_HEADER))
    }
}

/// The header value Mandrill would send for `url` and `params` under `key`: for tests
/// and the fuzz target.
pub fn sign_mandrill(key: &str, url: &str, params: &[(String, String)]) -> String {
    let sorted = sorted_params(params);
    base64::engine::general_purpose::STANDARD.encode(hmac_sha1_url_params(
        key.as_bytes(),
        url,
        &sorted,
    ))
}

/// The parameters in Mandrill's order: by name (PHP's `ksort` in Mandrill's own
/// example). A name given twice keeps its values in the order received: a stable sort
/// by name alone (Mandrill posts one parameter, so this never matters for its requests,
/// and no order of a repeated name can make a forged request verify).
fn sorted_params(params: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testkit;
    use crate::providers::twilio::normalise::parse_form;

    const URL: &str = "https://hooks.example.com/webhooks/mandrill/acme";

    fn events(json: &str) -> Vec<(String, String)> {
        vec![("mandrill_events".to_string(), json.to_string())]
    }

    fn keys(values: &[&str]) -> Vec<Secret> {
        testkit::secrets(values)
    }

    const BOUNCE: &str =
        r#"[{"event":"hard_bounce","_id":"abc","ts":1700000000,"msg":{"email":"a@example.com"}}]"#;

    #[test]
    fn sign_verify_tamper() {
        let params = events(BOUNCE);
        let sig = sign_mandrill("key", URL, &params);
        assert_eq!(
            verify_mandrill(URL, &params, Some(&sig), &keys(&["key"])),
            Ok(())
        );

        let tampered = events(&BOUNCE.replace("hard_bounce", "soft_bounce"));
        assert_eq!(
            verify_mandrill(URL, &tampered, Some(&sig), &keys(&["key"])),
            Err(SignatureError::Mismatch(SIGNATURE_HEADER))
        );

        let mut added = params.clone();
        added.push(("extra".into(), "1".into()));
        assert!(
            verify_mandrill(URL, &added, Some(&sig), &keys(&["key"])).is_err(),
            "an unsigned extra parameter must not verify"
        );

        for other in [
            format!("{URL}/"),
            URL.replace("acme", "evil"),
            format!("{URL}?x=1"),
        ] {
            assert_eq!(
                verify_mandrill(&other, &params, Some(&sig), &keys(&["key"])),
                Err(SignatureError::Mismatch(SIGNATURE_HEADER)),
                "a signature is bound to its exact URL: {other}"
            );
        }
    }

    #[test]
    fn parameters_are_sorted_by_name() {
        let a = vec![
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ];
        let b = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ];
        let sig = sign_mandrill("key", URL, &a);
        assert_eq!(
            verify_mandrill(URL, &b, Some(&sig), &keys(&["key"])),
            Ok(())
        );
        // By hand: the URL, then "a1", then "b2".
        let by_hand = hmac_sha1_url_params(b"key", URL, &[("a", "1"), ("b", "2")]);
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&sig)
                .unwrap(),
            by_hand
        );
    }

    #[test]
    fn key_rotation_accepts_any_configured_key() {
        let params = events(BOUNCE);
        let sig = sign_mandrill("new-key", URL, &params);
        let ok = verify_mandrill(URL, &params, Some(&sig), &keys(&["old-key", "new-key"]));
        assert_eq!(ok, Ok(()));
        let err = verify_mandrill(URL, &params, Some(&sig), &keys(&["old-key", "other"]));
        assert_eq!(err, Err(SignatureError::Mismatch(SIGNATURE_HEADER)));
    }

    #[test]
    fn refusals_name_the_failed_check() {
        let params = events(BOUNCE);
        let sig = sign_mandrill("key", URL, &params);
        let k = keys(&["key"]);
        assert_eq!(
            verify_mandrill(URL, &params, None, &k),
            Err(SignatureError::MissingHeader(SIGNATURE_HEADER))
        );
        for garbage in [
            "",
            "!!!not base64!!!",
            "AAAA",
            "dG9vIHNob3J0",
            &"A".repeat(200),
        ] {
            let err = verify_mandrill(URL, &params, Some(garbage), &k).unwrap_err();
            assert!(
                matches!(err, SignatureError::Malformed { .. }),
                "{garbage:?}: {err:?}"
            );
        }
        assert_eq!(
            verify_mandrill(URL, &params, Some(&sig), &[]),
            Err(SignatureError::NoSecret("mandrill"))
        );
        // Surrounding whitespace in the header is not part of the signature.
        assert_eq!(
            verify_mandrill(URL, &params, Some(&format!(" {sig} ")), &k),
            Ok(())
        );
    }

    /// Every Mandrill entry of research/vectors.json (copied into
    /// tests/providers/mandrill/vectors.json): the signed ones verify with their key at
    /// their URL, the negative ones (trailing slash, wrong key) are refused as a
    /// mismatch. The HEAD probe is behaviour, not cryptography: see `mod.rs`.
    #[test]
    fn vectors() {
        let vectors = testkit::vectors(include_str!(
            "../../../tests/providers/mandrill/vectors.json"
        ));
        let signed: Vec<_> = vectors.iter().filter(|v| v["method"] == "POST").collect();
        assert_eq!(signed.len(), 3);
        let mut verdicts = (0, 0);
        for v in signed {
            let params = parse_form(v["body"].as_str().unwrap().as_bytes()).unwrap();
            let url = v["url"].as_str().unwrap();
            let header = testkit::vector_header(v, SIGNATURE_HEADER);
            let secret = keys(&[v["secret"].as_str().unwrap()]);
            let result = verify_mandrill(url, &params, header, &secret);
            let valid = testkit::assert_vector_verdict(
                v,
                &result,
                SignatureError::Mismatch(SIGNATURE_HEADER),
            );
            if valid {
                assert_eq!(
                    Some(sign_mandrill(v["secret"].as_str().unwrap(), url, &params).as_str()),
                    v["expected_signature"].as_str()
                );
                verdicts.0 += 1;
            } else {
                verdicts.1 += 1;
            }
        }
        assert_eq!(verdicts, (1, 2));
    }
}
