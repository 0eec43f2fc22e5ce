//! The signature header parsers, on untrusted header text: Twilio `X-Twilio-Signature`
//! (and the URL spellings it is checked against), Meta `sha256=`, SendGrid's base64
//! DER, Standard Webhooks `v1,` lists, Mailgun's hex, HTTP Basic, Telnyx's Ed25519, Plivo's
//! V3 comma lists and nonce, the SNS certificate URL and PEM, and Brevo's Basic-or-Bearer
//! `Authorization`. The first byte picks the scheme; the rest is split on newlines into
//! header values and a body.
//!
//! Invariants: a refusal is a one-line message; nothing verifies unless it is the
//! signature the scheme would compute; the signature the scheme computes verifies.
#![no_main]

use base64::Engine as _;
use dndgate::secret::Secret;
use dndgate::providers::brevo::verify as brevo;
use dndgate::providers::standard_webhooks::verify::{self as sw, SignedHeaders, UNBRANDED};
use dndgate::providers::bandwidth::verify as bandwidth;
use dndgate::providers::mailgun::verify as mailgun;
use dndgate::providers::mandrill::verify as mandrill;
use dndgate::providers::meta::verify as meta;
use dndgate::providers::plivo::verify as plivo;
use dndgate::providers::postmark::verify as basic_auth;
use dndgate::providers::sendgrid::verify as sendgrid;
use dndgate::providers::sparkpost::verify as sparkpost;
use dndgate::providers::signalwire::verify as signalwire;
use dndgate::providers::ses::verify as sns;
use dndgate::providers::telnyx::verify as telnyx;
use dndgate::providers::twilio::verify::{self as twilio, TwilioSigned};
use dndgate_fuzz::check_line;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::{Signature, SigningKey, signature::Signer};

const NOW_SECS: i64 = 1_767_225_600;
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    // Header lines first, then the body: the body keeps any further newlines.
    let mut parts = rest.splitn(4, |&b| b == b'\n');
    let a = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let b = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let c = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let refused = |e: &dyn std::fmt::Display| check_line(&e.to_string());

    match which % 16 {
        0 => {
            let url = "https://gw.example.com/webhooks/twilio/acme";
            let params = vec![(b.clone(), c.clone())];
            let tokens = [Secret::new("twilio-token")];
            match twilio::verify_twilio(url, TwilioSigned::Form(&params), Some(&a), &tokens) {
                Ok(()) => assert_eq!(a.trim().len(), 28, "only a real HMAC-SHA1 verifies"),
                Err(e) => refused(&e),
            }
            let json_url = format!("{url}?bodySHA256={b}");
            if let Err(e) =
                twilio::verify_twilio(&json_url, TwilioSigned::Json(body), Some(&a), &tokens)
            {
                refused(&e);
            }
        }
        1 => {
            let variants = twilio::twilio_url_variants(&a);
            assert!(variants.contains(&a), "the URL as received is always tried");
            assert!(variants.len() <= 5);
        }
        2 => {
            let secrets = [Secret::new("meta-app-secret")];
            let good = meta::sign_meta("meta-app-secret", body);
            assert!(meta::verify_meta(body, Some(&good), &secrets).is_ok());
            match meta::verify_meta(body, Some(&a), &secrets) {
                Ok(()) => assert_eq!(a.trim(), good),
                Err(e) => refused(&e),
            }
        }
        3 => {
            let signing = SigningKey::from_slice(&[7u8; 32]).expect("a valid scalar");
            let keys = [*signing.verifying_key()];
            match sendgrid::verify_sendgrid(body, Some(&a), Some(&b), &keys) {
                Ok(()) => {}
                Err(e) => refused(&e),
            }
            let mut message = b.as_bytes().to_vec();
            message.extend_from_slice(body);
            let sig: Signature = signing.sign(&message);
            let header = base64::engine::general_purpose::STANDARD.encode(sig.to_der());
            let verdict = sendgrid::verify_sendgrid(body, Some(&header), Some(&b), &keys);
            if !b.is_empty() && b.len() <= 32 {
                assert!(verdict.is_ok(), "a real signature is refused: {verdict:?}");
            }
        }
        4 => {
            let secrets = [Secret::new(SW_SECRET)];
            let get = |name: &str| match name {
                n if n == UNBRANDED.id => Some(a.as_str()),
                n if n == UNBRANDED.timestamp => Some(b.as_str()),
                n if n == UNBRANDED.signature => Some(c.as_str()),
                _ => None,
            };
            let headers = SignedHeaders::from_request(get);
            match sw::verify_standard_webhooks(&headers, body, &secrets, NOW_SECS) {
                Ok(id) => assert_eq!(id, a.trim()),
                Err(e) => refused(&e),
            }
            let ts = NOW_SECS.to_string();
            let good = sw::sign_whsec(SW_SECRET, a.trim(), &ts, body)
                .expect("the secret decodes");
            let signed = SignedHeaders {
                names: UNBRANDED,
                id: Some(&a),
                timestamp: Some(&ts),
                signature: Some(&good),
            };
            let verdict = sw::verify_standard_webhooks(&signed, body, &secrets, NOW_SECS);
            let id = a.trim();
            if !id.is_empty() && id.len() <= 256 && !id.chars().any(char::is_control) {
                assert!(verdict.is_ok(), "a real signature is refused: {verdict:?}");
            }
        }
        5 => {
            let keys = [Secret::new("mailgun-signing-key")];
            match mailgun::verify_mailgun(&a, &b, &c, &keys) {
                Ok(()) => assert_eq!(c, mailgun::sign_mailgun("mailgun-signing-key", &a, &b)),
                Err(e) => refused(&e),
            }
        }
        6 => {
            let creds = [Secret::new("user:password")];
            match basic_auth::verify_basic_auth(Some(&a), &creds, "postmark") {
                Ok(()) => {}
                Err(e) => refused(&e),
            }
            let good = basic_auth::basic_auth_header("user:password");
            assert!(basic_auth::verify_basic_auth(Some(&good), &creds, "postmark").is_ok());
        }
        8 => {
            use ed25519_dalek::Signer as _;
            let signing = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
            let keys = [signing.verifying_key()];
            let now = NOW_SECS;
            match telnyx::verify_telnyx(body, Some(&a), Some(&b), &keys, now) {
                Ok(()) => {}
                Err(e) => refused(&e),
            }
            // The signature the scheme computes verifies; one flipped body bit does not.
            let ts = now.to_string();
            let mut message = format!("{ts}|").into_bytes();
            message.extend_from_slice(body);
            let header = base64::engine::general_purpose::STANDARD
                .encode(signing.sign(&message).to_bytes());
            assert!(telnyx::verify_telnyx(body, Some(&header), Some(&ts), &keys, now).is_ok());
            if let Some((&first, tail)) = body.split_first() {
                let mut tampered = vec![first ^ 1];
                tampered.extend_from_slice(tail);
                assert!(
                    telnyx::verify_telnyx(&tampered, Some(&header), Some(&ts), &keys, now)
                        .is_err()
                );
            }
        }
        9 => {
            let creds = [Secret::new("user:password")];
            let tokens = [Secret::new("brevo-token")];
            match brevo::verify_brevo(Some(&a), &creds, &tokens) {
                Ok(()) => {}
                Err(e) => refused(&e),
            }
            let good = basic_auth::basic_auth_header("user:password");
            assert!(brevo::verify_brevo(Some(&good), &creds, &tokens).is_ok());
            let bearer = brevo::bearer_header("brevo-token");
            assert!(brevo::verify_brevo(Some(&bearer), &creds, &tokens).is_ok());
            // A token is never basic credentials, nor the other way round.
            assert!(brevo::verify_brevo(Some(&bearer), &creds, &[]).is_err());
            assert!(brevo::verify_brevo(Some(&good), &[], &tokens).is_err());
        }
        10 => {
            // Plivo V3: a = X-Plivo-Signature-V3, b = its nonce, c = the main account's;
            // the body is the form (and, as text, a query for the GET string).
            let url = "https://gw.example.com/webhooks/plivo/acme";
            let tokens = [Secret::new("plivo-token")];
            let Ok(params) = dndgate::providers::plivo::normalise::decode_pairs(body) else {
                return;
            };
            let headers = plivo::Headers {
                signature: Some(&a),
                nonce: Some(&b),
                main_account: Some(&c),
            };
            let post = plivo::Method::Post;
            if let Err(e) = plivo::verify_plivo(url, post, &params, headers, &tokens) {
                refused(&e);
            }
            let query = format!("{url}?{}", String::from_utf8_lossy(body));
            let _ = plivo::signed_string(&query, plivo::Method::Get, &[]);
            // The signature the scheme computes verifies; another nonce does not.
            let nonce = "31627761595286130198";
            let signed = plivo::signed_string(url, post, &params)
                .expect("a URL without a query always builds");
            let mac = dndgate::signature::hmac_sha256(
                b"plivo-token",
                &[signed.as_bytes(), b".", nonce.as_bytes()],
            );
            let good = base64::engine::general_purpose::STANDARD.encode(mac);
            let ok = plivo::Headers {
                signature: Some(&good),
                nonce: Some(nonce),
                main_account: None,
            };
            assert!(plivo::verify_plivo(url, post, &params, ok, &tokens).is_ok());
            let other = plivo::Headers {
                nonce: Some("31627761595286130199"),
                ..ok
            };
            assert!(plivo::verify_plivo(url, post, &params, other, &tokens).is_err());
        }
        11 => {
            let auth = sparkpost::Auth {
                credentials: vec![Secret::new("sp_user:sp_pass")],
                header: Some(sparkpost::HeaderAuth {
                    name: "x-api-key".to_string(),
                    values: vec![Secret::new("sp-header-value")],
                }),
            };
            match sparkpost::verify(&auth, Some(&a), Some(&b)) {
                Ok(()) => assert_eq!(b.trim(), "sp-header-value"),
                Err(e) => refused(&e),
            }
            // The credentials SparkPost sends verify; one more byte in either does not.
            let good = basic_auth::basic_auth_header("sp_user:sp_pass");
            assert!(sparkpost::verify(&auth, Some(&good), Some("sp-header-value")).is_ok());
            assert!(
                sparkpost::verify(&auth, Some(&good), Some(&format!("sp-header-value{c}x")))
                    .is_err()
            );
            if let Err(e) = sparkpost::check_header_name(&c) {
                check_line(&e);
            }
        }
        12 => {
            // Mandrill: the form parameter named by the second line, with the body as
            // its value, signed over a fixed URL.
            let url = "https://gw.example.com/webhooks/mandrill/acme";
            let params = vec![(b.clone(), String::from_utf8_lossy(body).into_owned())];
            let keys = [Secret::new("mandrill-key")];
            let good = mandrill::sign_mandrill("mandrill-key", url, &params);
            match mandrill::verify_mandrill(url, &params, Some(&a), &keys) {
                Ok(()) => assert_eq!(a.trim(), good, "only the computed signature verifies"),
                Err(e) => refused(&e),
            }
            assert!(mandrill::verify_mandrill(url, &params, Some(&good), &keys).is_ok());
            let mut tampered = params.clone();
            tampered[0].1.push('x');
            assert!(mandrill::verify_mandrill(url, &tampered, Some(&good), &keys).is_err());
        }
        13 => {
            let url = "https://gw.example.com/webhooks/signalwire/acme";
            let params = vec![(b.clone(), c.clone())];
            let keys = [Secret::new("PSKsigning-key")];
            // `a` under the header SignalWire documents, then under its Twilio alias.
            for name in [signalwire::SIGNALWIRE_SIGNATURE_HEADER, signalwire::TWILIO_ALIAS_HEADER] {
                let (header, value) = signalwire::signature_of(|h| (h == name).then_some(a.as_str()));
                assert_eq!(header, name);
                match signalwire::verify_signalwire(url, &params, header, value, &keys) {
                    Ok(()) => assert_eq!(a.trim().len(), 28, "only a real HMAC-SHA1 verifies"),
                    Err(e) => refused(&e),
                }
            }
            let (header, value) = signalwire::signature_of(|_| None);
            assert!(signalwire::verify_signalwire(url, &params, header, value, &keys).is_err());
        }
        14 => {
            // Bandwidth: HTTP basic auth with the application's callback credentials.
            let creds = [Secret::new("15jPWZmXdm:xxv3jPsPR2")];
            match bandwidth::verify_bandwidth(Some(&a), &creds) {
                // Only the one base64 spelling of the credentials verifies (any case of
                // the scheme name, any spaces around the token).
                Ok(()) => assert!(a.contains("MTVqUFdabVhkbTp4eHYzalBzUFIy"), "{a:?}"),
                Err(e) => refused(&e),
            }
            let good = bandwidth::basic_auth_header("15jPWZmXdm:xxv3jPsPR2");
            assert!(bandwidth::verify_bandwidth(Some(&good), &creds).is_ok());
            assert!(bandwidth::verify_bandwidth(None, &creds).is_err());
        }
        15 => {
            use dndgate::providers::vonage::verify as vonage;
            const SECRET: &str = "vonage-signature-secret";
            let secrets = [Secret::new(SECRET)];
            // Messages API: any Authorization header over any body.
            let _ = vonage::unverified_api_key(&a);
            match vonage::verify_messages(Some(&a), body, &secrets, NOW_SECS) {
                Ok(claims) => assert!(claims.payload_hash.is_some() && claims.iat.is_some()),
                Err(e) => refused(&e),
            }
            // SMS API: the body as a form, under the method `b`'s length picks.
            let method = vonage::SigMethod::ALL[b.len() % vonage::SigMethod::ALL.len()];
            if let Ok(mut params) = dndgate::providers::twilio::normalise::parse_form(body) {
                match vonage::verify_sms(&params, method, &secrets, NOW_SECS) {
                    Ok(()) => {}
                    Err(e) => refused(&e),
                }
                // The signature the scheme computes verifies (names unique, a fresh
                // timestamp); one changed value does not.
                let mut seen = std::collections::BTreeSet::new();
                params.retain(|(n, _)| n != "sig" && n != "timestamp" && seen.insert(n.clone()));
                params.push(("timestamp".into(), NOW_SECS.to_string()));
                let sig: String = method
                    .sign(SECRET.as_bytes(), &vonage::signed_string(&params))
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                params.push(("sig".into(), sig));
                assert!(vonage::verify_sms(&params, method, &secrets, NOW_SECS).is_ok());
                params[0].1.push('x');
                if params[0].0 != "sig" {
                    assert!(vonage::verify_sms(&params, method, &secrets, NOW_SECS).is_err());
                }
            }
        }
        _ => {
            let hosts = ["sns.*.amazonaws.com".to_string()];
            match sns::cert_url_allowed(&a, &hosts) {
                Ok(()) => assert!(a.to_ascii_lowercase().starts_with("https://")),
                Err(e) => refused(&e),
            }
            let _ = sns::host_matches(&b, &c);
            if let Err(e) = sns::certificate_key(body) {
                refused(&e);
            }
        }
    }
});
