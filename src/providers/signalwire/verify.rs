//! SignalWire's compatibility-API signature: base64 HMAC-SHA1, keyed with the project's
//! Signing Key, over the URL SignalWire called followed by the form parameters sorted
//! by name: Twilio's scheme, so the work is Twilio's
//! ([`crate::providers::twilio::verify`]): the same URL spellings (with and without
//! the default port, as SignalWire's SDKs try them), the same constant-time comparison,
//! every key tried so a Signing Key can be reset. Only the header and the name differ.
//!
//! SignalWire sends the signature in `X-SignalWire-Signature`; its SDKs accept
//! `X-Twilio-Signature` as an alias (migrations from Twilio's SDKs), so that header is
//! read when the first one is absent.

use crate::providers::twilio::verify::{TwilioSigned, verify_as};
use crate::secret::Secret;
use crate::signature::SignatureError;

/// The header SignalWire signs in.
pub const SIGNALWIRE_SIGNATURE_HEADER: &str = "X-SignalWire-Signature";

/// The alias SignalWire's SDKs also read.
pub const TWILIO_ALIAS_HEADER: &str = "X-Twilio-Signature";

/// Which header carries the signature, and its value: `X-SignalWire-Signature` when
/// present, else `X-Twilio-Signature`; with neither, `X-SignalWire-Signature` and no
/// value (the refusal names the header SignalWire documents).
pub fn signature_of<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
) -> (&'static str, Option<&'a str>) {
    match header(SIGNALWIRE_SIGNATURE_HEADER) {
        Some(value) => (SIGNALWIRE_SIGNATURE_HEADER, Some(value)),
        None => match header(TWILIO_ALIAS_HEADER) {
            Some(value) => (TWILIO_ALIAS_HEADER, Some(value)),
            None => (SIGNALWIRE_SIGNATURE_HEADER, None),
        },
    }
}

/// Verify a SignalWire form webhook.
///
/// `url` is the full public URL SignalWire called (from the configured public URL, never
/// from proxy headers); `params` are the decoded form pairs, every one of them, in any
/// order; `header` is the header `signature` came from (see [`signature_of`]); every key
/// in `keys` is tried. One [`SignatureError`] per failed check: no header, a value that
/// is not a base64 HMAC-SHA1, no key configured, no key and URL spelling that matches.
pub fn verify_signalwire(
    url: &str,
    params: &[(String, String)],
    header: &'static str,
    signature: Option<&str>,
    keys: &[Secret],
) -> Result<(), SignatureError> {
    verify_as(
        header,
        "signalwire",
        url,
        TwilioSigned::Form(params),
        signature,
        keys,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testkit::{self, secrets as keys};
    use base64::Engine as _;
    use hmac::{Hmac, KeyInit, Mac};
    use sha1::Sha1;

    fn form(body: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(body).expect("test body is form-encoded")
    }

    /// Sign as SignalWire documents it, written here independently of Twilio's code:
    /// the URL, then each name and value, sorted by name (then value).
    fn sign(key: &str, url: &str, params: &[(String, String)]) -> String {
        let mut sorted: Vec<&(String, String)> = params.iter().collect();
        sorted.sort();
        let mut data = url.to_string();
        for (k, v) in sorted {
            data.push_str(k);
            data.push_str(v);
        }
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key.as_bytes()).expect("any key");
        mac.update(data.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    const URL: &str = "https://hooks.example.com/webhooks/signalwire/acme";
    const PROJECT: &str = "b3877c40-da60-4998-90ad-b792e98472af";

    fn inbound() -> Vec<(String, String)> {
        form(&format!(
            "MessageSid=b3877c40-da60-4998-90ad-b792e98472ms&AccountSid={PROJECT}&From=%2B15551234567&To=%2B15559876543&Body=STOP&NumMedia=0"
        ))
    }

    #[test]
    fn shared_vectors() {
        let vectors = testkit::vectors(include_str!(
            "../../../tests/providers/signalwire/vectors.json"
        ));
        assert!(vectors.len() >= 15, "vector file lost entries");
        for v in &vectors {
            let name = v["name"].as_str().expect("name");
            assert_eq!(
                v["scheme"].as_str(),
                Some("signalwire-hmac-sha1-form"),
                "{name}"
            );
            let url = v["url"].as_str().expect("url");
            let params = form(v["body"].as_str().expect("body"));
            let secret = v["secret"].as_str().expect("secret");
            let headers = &v["headers"];
            let (header, signature) = signature_of(|h| headers[h].as_str());
            let got = verify_signalwire(url, &params, header, signature, &keys(&[secret]));
            testkit::assert_vector_validity(v, &got);
        }
    }

    #[test]
    fn sign_verify_tamper() {
        let params = inbound();
        let sig = sign("PSKkey", URL, &params);
        let h = SIGNALWIRE_SIGNATURE_HEADER;
        let k = keys(&["PSKkey"]);
        assert_eq!(verify_signalwire(URL, &params, h, Some(&sig), &k), Ok(()));

        let mut tampered = params.clone();
        tampered[4].1 = "START".into();
        assert_eq!(
            verify_signalwire(URL, &tampered, h, Some(&sig), &k),
            Err(SignatureError::Mismatch(SIGNALWIRE_SIGNATURE_HEADER))
        );

        let mut added = params.clone();
        added.push(("OptOutType".into(), "STOP".into()));
        assert!(
            verify_signalwire(URL, &added, h, Some(&sig), &k).is_err(),
            "an unsigned extra parameter must not verify"
        );

        let other_url = URL.replace("acme", "globex");
        assert!(
            verify_signalwire(&other_url, &params, h, Some(&sig), &k).is_err(),
            "a signature is bound to its URL"
        );
    }

    #[test]
    fn the_api_token_is_not_the_signing_key() {
        let params = inbound();
        let sig = sign("PSKsigning", URL, &params);
        let err = verify_signalwire(
            URL,
            &params,
            SIGNALWIRE_SIGNATURE_HEADER,
            Some(&sig),
            &keys(&["PTapitoken"]),
        );
        assert_eq!(
            err,
            Err(SignatureError::Mismatch(SIGNALWIRE_SIGNATURE_HEADER))
        );
    }

    #[test]
    fn key_rotation_accepts_any_configured_key() {
        let params = inbound();
        let sig = sign("PSKnew", URL, &params);
        let h = SIGNALWIRE_SIGNATURE_HEADER;
        assert_eq!(
            verify_signalwire(URL, &params, h, Some(&sig), &keys(&["PSKold", "PSKnew"])),
            Ok(())
        );
        assert_eq!(
            verify_signalwire(URL, &params, h, Some(&sig), &keys(&["PSKold", "other"])),
            Err(SignatureError::Mismatch(h))
        );
    }

    #[test]
    fn default_port_spellings_verify_and_others_do_not() {
        let params = inbound();
        let k = keys(&["PSKkey"]);
        let received = "https://hooks.example.com/webhooks/signalwire/acme";
        for (signed_url, valid) in [
            ("https://hooks.example.com/webhooks/signalwire/acme", true),
            (
                "https://hooks.example.com:443/webhooks/signalwire/acme",
                true,
            ),
            ("http://hooks.example.com/webhooks/signalwire/acme", false),
            (
                "https://hooks.example.com:8443/webhooks/signalwire/acme",
                false,
            ),
        ] {
            let sig = sign("PSKkey", signed_url, &params);
            let got = verify_signalwire(
                received,
                &params,
                SIGNALWIRE_SIGNATURE_HEADER,
                Some(&sig),
                &k,
            );
            assert_eq!(got.is_ok(), valid, "{signed_url}");
        }
    }

    #[test]
    fn the_header_and_its_twilio_alias() {
        let sw = "signalwire-value";
        let tw = "twilio-value";
        let both = |h: &str| match h {
            SIGNALWIRE_SIGNATURE_HEADER => Some(sw),
            TWILIO_ALIAS_HEADER => Some(tw),
            _ => None,
        };
        assert_eq!(signature_of(both), (SIGNALWIRE_SIGNATURE_HEADER, Some(sw)));
        let alias_only = |h: &str| (h == TWILIO_ALIAS_HEADER).then_some(tw);
        assert_eq!(signature_of(alias_only), (TWILIO_ALIAS_HEADER, Some(tw)));
        assert_eq!(signature_of(|_| None), (SIGNALWIRE_SIGNATURE_HEADER, None));

        // A signature sent only under the alias verifies, and a refusal names the
        // header the signature came from.
        let params = inbound();
        let sig = sign("PSKkey", URL, &params);
        let k = keys(&["PSKkey"]);
        let (h, v) = signature_of(|name| (name == TWILIO_ALIAS_HEADER).then_some(sig.as_str()));
        assert_eq!(verify_signalwire(URL, &params, h, v, &k), Ok(()));
        let wrong = sign("other", URL, &params);
        let (h, v) = signature_of(|name| (name == TWILIO_ALIAS_HEADER).then_some(wrong.as_str()));
        assert_eq!(
            verify_signalwire(URL, &params, h, v, &k),
            Err(SignatureError::Mismatch(TWILIO_ALIAS_HEADER))
        );
    }

    #[test]
    fn refusals_name_the_failed_check() {
        let params = inbound();
        let sig = sign("PSKkey", URL, &params);
        let h = SIGNALWIRE_SIGNATURE_HEADER;
        let k = keys(&["PSKkey"]);

        assert_eq!(
            verify_signalwire(URL, &params, h, None, &k),
            Err(SignatureError::MissingHeader(h))
        );
        for garbage in [
            "",
            "!!!not base64!!!",
            "AAAA",
            "dG9vIHNob3J0",
            &"A".repeat(200),
        ] {
            let err = verify_signalwire(URL, &params, h, Some(garbage), &k).unwrap_err();
            assert!(
                matches!(err, SignatureError::Malformed { header, .. } if header == h),
                "{garbage:?}: {err:?}"
            );
        }
        // RELAY's hex signature is not a compatibility-API signature.
        let hex = "b18500437ebb010220ddd770cbe6fd531ea0ba0d";
        assert!(matches!(
            verify_signalwire(URL, &params, h, Some(hex), &k),
            Err(SignatureError::Malformed { .. })
        ));
        assert_eq!(
            verify_signalwire(URL, &params, h, Some(&sig), &[]),
            Err(SignatureError::NoSecret("signalwire"))
        );
        for e in [
            SignatureError::MissingHeader(h),
            SignatureError::NoSecret("signalwire"),
            SignatureError::Mismatch(h),
        ] {
            let gateway: crate::error::Error = e.into();
            assert_eq!(gateway.kind, crate::error::Kind::Unauthorized);
            assert!(!gateway.message.contains('\n') && !gateway.message.contains("PSKkey"));
        }
    }
}
