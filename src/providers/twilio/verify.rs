//! Twilio's signature: HMAC-SHA1 with the account's auth token over the URL the provider
//! called, followed by the form parameters sorted by name; a JSON body is bound instead
//! by a `bodySHA256` query parameter, and only the URL is signed. Since a form's signed
//! string can read as a URL, `bodySHA256` counts only once, last and well formed (see
//! [`verify_twilio`]), and the road takes JSON only where a tenant set `event_streams`.
//! Twilio's own back end is inconsistent about ports and query encoding, so the URL is
//! tried in the same spellings Twilio's SDKs accept (see [`twilio_url_variants`]).

use sha2::{Digest, Sha256};

use crate::secret::{Secret, constant_time_eq};
use crate::signature::{
    SignatureError, hmac_sha1_base64_header, hmac_sha1_url_params, signature_header,
};

/// The header that carries Twilio's signature.
pub const TWILIO_SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The query parameter through which Twilio binds a JSON body to the signed URL.
pub const TWILIO_BODY_HASH_PARAM: &str = "bodySHA256";

/// What Twilio signed besides the URL, chosen by the request's content type.
#[derive(Debug, Clone, Copy)]
pub enum TwilioSigned<'a> {
    /// `application/x-www-form-urlencoded`: the decoded parameters, in any order, repeated
    /// names kept. Every received parameter must be here: Twilio adds parameters without
    /// notice and signs them all.
    Form(&'a [(String, String)]),
    /// `application/json`: the raw body bytes, checked against `bodySHA256`.
    Json(&'a [u8]),
}

/// Verify Twilio's `X-Twilio-Signature`.
///
/// `url` is the full public URL Twilio called (scheme, optional userinfo, host, optional
/// port, path, query), built from the configured public URL and never from proxy
/// headers. `signature` is the header value, if any. Every token in `tokens` is tried so
/// an auth token can be rotated; the request is accepted if any token matches any URL
/// spelling of [`twilio_url_variants`]. For JSON, the URL's `bodySHA256` must occur
/// once, as the last query parameter, as 64 lowercase hex digits, or the request is
/// refused before any HMAC is computed.
pub fn verify_twilio(
    url: &str,
    signed: TwilioSigned<'_>,
    signature: Option<&str>,
    tokens: &[Secret],
) -> Result<(), SignatureError> {
    verify_as(
        TWILIO_SIGNATURE_HEADER,
        "twilio",
        url,
        signed,
        signature,
        tokens,
    )
}

/// [`verify_twilio`] for a provider that signs Twilio's way under its own name:
/// `header` names the header in every refusal and `provider` the missing secret.
/// SignalWire's compatibility API signs so (see `providers::signalwire`).
pub(crate) fn verify_as(
    header: &'static str,
    provider: &'static str,
    url: &str,
    signed: TwilioSigned<'_>,
    signature: Option<&str>,
    tokens: &[Secret],
) -> Result<(), SignatureError> {
    let given = signature_header(
        header,
        signature,
        |value| hmac_sha1_base64_header(header, value),
        provider,
        tokens,
    )?;

    let (params, body) = match signed {
        TwilioSigned::Form(params) => (sorted_unique_params(params), None),
        TwilioSigned::Json(body) => (Vec::new(), Some((body_hash_param(url)?, body))),
    };

    let matches = |variant: &str| {
        tokens.iter().any(|token| {
            let expected = hmac_sha1_url_params(token.expose().as_bytes(), variant, &params);
            constant_time_eq(&expected, &given)
        })
    };
    // The URL as configured first: what Twilio signs in the common case. The other
    // spellings (port, query re-encoding) are built only when it does not match.
    let matched = matches(url)
        || twilio_url_variants(url)
            .iter()
            .filter(|v| v.as_str() != url)
            .any(|v| matches(v));
    if !matched {
        return Err(SignatureError::Mismatch(header));
    }

    // The signature covers only the URL for JSON, so without this check anyone holding a
    // signed URL could post any body to it.
    if let Some((claimed, body)) = body {
        let actual = hex::encode(Sha256::digest(body));
        if !constant_time_eq(claimed.as_bytes(), actual.as_bytes()) {
            return Err(SignatureError::BodyHashMismatch);
        }
    }
    Ok(())
}

/// Twilio's parameter order: by name, then by value, exact duplicates once. Sorting the
/// pairs lexicographically gives exactly that, because names compare first.
fn sorted_unique_params(params: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

/// The `bodySHA256` of a JSON request's URL, exactly as Twilio adds it: present once
/// (the name compared without regard to case), the last query parameter, and 64
/// lowercase hex digits.
///
/// The form scheme signs the URL followed by the parameters' names and values with no
/// separators, and the JSON scheme the URL alone, so the string signed for a form
/// posted to a URL with a query can itself read as a URL with a query. A value the
/// contact chose (an SMS body of `&bodySHA256=HASH&z=`) would then bind any JSON body
/// to a signature Twilio really made. Twilio appends `bodySHA256` to the URL it signs,
/// and after a form's concatenated parameters come those Twilio fills in (`To`,
/// `WaId`, ...), so a hash that must be last, once, and nothing but a digest cannot be
/// planted that way.
fn body_hash_param(url: &str) -> Result<&str, SignatureError> {
    let Some((_, query)) = url.split_once('?') else {
        return Err(SignatureError::BodyHashMissing);
    };
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let is_hash = |pair: &&str| {
        pair.split_once('=')
            .map_or(*pair, |(key, _)| key)
            .eq_ignore_ascii_case(TWILIO_BODY_HASH_PARAM)
    };
    match query.split('&').filter(is_hash).count() {
        0 => return Err(SignatureError::BodyHashMissing),
        1 => {}
        _ => return Err(SignatureError::BodyHashMalformed("occurs more than once")),
    }
    let last = query.rsplit('&').next().unwrap_or_default();
    let digest = last
        .strip_prefix(TWILIO_BODY_HASH_PARAM)
        .and_then(|rest| rest.strip_prefix('='))
        .ok_or(SignatureError::BodyHashMalformed(
            "is not the last query parameter",
        ))?;
    if digest.len() != 64
        || !digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(SignatureError::BodyHashMalformed(
            "is not 64 lowercase hex digits",
        ));
    }
    Ok(digest)
}

/// The spellings of `url` that Twilio may have signed, without duplicates, the URL as
/// received among them.
///
/// Twilio's back end sometimes signs the URL with the default port and sometimes
/// without, so its SDKs try both: the URL with any port removed, and the URL with the
/// scheme's default port (`:443` for https, `:80` otherwise) added when none is present
/// (an explicit port is kept). twilio-node also re-serialises the URL the way the WHATWG
/// URL parser does, which percent-encodes a few characters in the query (a raw `'`
/// becomes `%27`); each port spelling is tried with that query too.
///
/// Not tried: twilio-node's legacy `querystring` re-stringification, which rewrites the
/// whole query (`+` to `%20`, repeated keys regrouped) and matches no signature seen
/// from Twilio in the official vectors.
pub fn twilio_url_variants(url: &str) -> Vec<String> {
    let mut variants: Vec<String> = Vec::with_capacity(4);
    let mut push = |v: String| {
        if !variants.contains(&v) {
            variants.push(v);
        }
    };
    let reencoded = whatwg_query(url);
    for base in [url, reencoded.as_str()] {
        match UrlParts::split(base) {
            Some(parts) => {
                push(parts.without_port());
                push(parts.with_port());
            }
            // Not a URL we can take apart: only the URL as given can match.
            None => push(base.to_string()),
        }
    }
    // Both port spellings can differ from the URL as received (an empty port, `host:`,
    // is dropped by one and filled in by the other); it is always tried too.
    push(url.to_string());
    variants
}

/// The pieces of an absolute URL that the port spellings need; `rest` is the path,
/// query and fragment, untouched.
struct UrlParts<'a> {
    scheme: &'a str,
    /// Including the trailing `@`, or empty.
    userinfo: &'a str,
    /// Including brackets for an IPv6 literal.
    host: &'a str,
    port: Option<&'a str>,
    rest: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Option<UrlParts<'a>> {
        let (scheme, after) = url.split_once("://")?;
        if scheme.is_empty() {
            return None;
        }
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(end);
        // The last `@` ends the userinfo: a password may itself contain `@` only
        // percent-encoded, but a host never does.
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(at) => authority.split_at(at + 1),
            None => ("", authority),
        };
        let (host, port) = if host_port.starts_with('[') {
            let close = host_port.find(']')?;
            let (host, after_host) = host_port.split_at(close + 1);
            match after_host {
                "" => (host, None),
                _ => (host, Some(after_host.strip_prefix(':')?)),
            }
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
                    (host, Some(port))
                }
                _ => (host_port, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(UrlParts {
            scheme,
            userinfo,
            host,
            port: port.filter(|p| !p.is_empty()),
            rest,
        })
    }

    fn without_port(&self) -> String {
        format!(
            "{}://{}{}{}",
            self.scheme, self.userinfo, self.host, self.rest
        )
    }

    fn with_port(&self) -> String {
        let default = if self.scheme.eq_ignore_ascii_case("https") {
            "443"
        } else {
            "80"
        };
        let port = self.port.unwrap_or(default);
        format!(
            "{}://{}{}:{}{}",
            self.scheme, self.userinfo, self.host, port, self.rest
        )
    }
}

/// `url` with its query percent-encoded as the WHATWG URL serialiser does for special
/// schemes (http, https): C0 controls, space, `"`, `#`, `<`, `>`, `'` and everything
/// above `~`. Existing `%XX` escapes are left alone.
fn whatwg_query(url: &str) -> String {
    let Some(q) = url.find('?') else {
        return url.to_string();
    };
    let end = url[q..].find('#').map_or(url.len(), |f| q + f);
    let mut out = String::with_capacity(url.len() + 8);
    out.push_str(&url[..=q]);
    for &b in &url.as_bytes()[q + 1..end] {
        if b <= b' ' || b >= 0x7f || matches!(b, b'"' | b'#' | b'<' | b'>' | b'\'') {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out.push_str(&url[end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testkit::{self, secrets as tokens};
    use base64::Engine as _;

    fn form(body: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(body).expect("test body is form-encoded")
    }

    /// Verify a form request signed `sig` at `url` under the tokens `toks`.
    fn verify_form(
        url: &str,
        params: &[(String, String)],
        sig: &str,
        toks: &[&str],
    ) -> Result<(), SignatureError> {
        verify_twilio(url, TwilioSigned::Form(params), Some(sig), &tokens(toks))
    }

    /// Sign the way Twilio does, for the sign-verify-tamper tests.
    fn sign(token: &str, url: &str, params: &[(String, String)]) -> String {
        let mac = hmac_sha1_url_params(token.as_bytes(), url, &sorted_unique_params(params));
        base64::engine::general_purpose::STANDARD.encode(mac)
    }

    #[test]
    fn shared_vectors() {
        let vectors =
            testkit::vectors(include_str!("../../../tests/providers/twilio/vectors.json"));
        assert!(vectors.len() >= 20, "vector file lost entries");
        for v in &vectors {
            let name = v["name"].as_str().expect("name");
            let url = v["url"].as_str().expect("url");
            let body = v["body"].as_str().expect("body");
            let secret = v["secret"].as_str().expect("secret");
            let header = v["headers"]["X-Twilio-Signature"].as_str();
            let params;
            let signed = match v["scheme"].as_str().expect("scheme") {
                "twilio-hmac-sha1-form" => {
                    params = form(body);
                    TwilioSigned::Form(&params)
                }
                "twilio-hmac-sha1-json-bodysha256" => TwilioSigned::Json(body.as_bytes()),
                other => panic!("{name}: unknown scheme {other}"),
            };
            let got = verify_twilio(url, signed, header, &tokens(&[secret]));
            testkit::assert_vector_validity(v, &got);
        }
    }

    const URL: &str = "https://hooks.example.com/webhooks/twilio/acme?x=1";

    fn inbound() -> Vec<(String, String)> {
        form("MessageSid=SM1&From=%2B15558675310&To=%2B15017122661&Body=STOP&NumMedia=0")
    }

    #[test]
    fn sign_verify_tamper() {
        let params = inbound();
        let sig = sign("tok", URL, &params);
        let ok = verify_form(URL, &params, &sig, &["tok"]);
        assert_eq!(ok, Ok(()));

        let mut tampered = params.clone();
        tampered[3].1 = "START".into();
        let err = verify_form(URL, &tampered, &sig, &["tok"]);
        assert_eq!(err, Err(SignatureError::Mismatch(TWILIO_SIGNATURE_HEADER)));

        let mut added = params.clone();
        added.push(("OptOutType".into(), "STOP".into()));
        let err = verify_form(URL, &added, &sig, &["tok"]);
        assert!(err.is_err(), "an unsigned extra parameter must not verify");

        let other_url = URL.replace("acme", "evil");
        let err = verify_form(&other_url, &params, &sig, &["tok"]);
        assert!(err.is_err(), "a signature is bound to its URL");
    }

    #[test]
    fn parameter_order_and_duplicates_do_not_matter() {
        let params = form("b=2&a=1&a=0&a=1");
        let sig = sign("tok", URL, &params);
        let shuffled = form("a=0&a=1&b=2");
        let ok = verify_form(URL, &shuffled, &sig, &["tok"]);
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn key_rotation_accepts_any_configured_token() {
        let params = inbound();
        let sig = sign("new-token", URL, &params);
        let ok = verify_form(URL, &params, &sig, &["old-token", "new-token"]);
        assert_eq!(ok, Ok(()));
        let err = verify_form(URL, &params, &sig, &["old-token", "other"]);
        assert_eq!(err, Err(SignatureError::Mismatch(TWILIO_SIGNATURE_HEADER)));
    }

    #[test]
    fn refusals_name_the_failed_check() {
        let params = inbound();
        let sig = sign("tok", URL, &params);
        let f = TwilioSigned::Form(&params);
        let t = tokens(&["tok"]);

        let err = verify_twilio(URL, f, None, &t).unwrap_err();
        assert_eq!(err, SignatureError::MissingHeader(TWILIO_SIGNATURE_HEADER));

        for garbage in [
            "",
            "!!!not base64!!!",
            "AAAA",
            "dG9vIHNob3J0",
            &"A".repeat(200),
        ] {
            let err = verify_twilio(URL, f, Some(garbage), &t).unwrap_err();
            assert!(
                matches!(err, SignatureError::Malformed { .. }),
                "{garbage:?}: {err:?}"
            );
        }

        let err = verify_twilio(URL, f, Some(&sig), &[]).unwrap_err();
        assert_eq!(err, SignatureError::NoSecret("twilio"));

        // Every message is one line, says what failed, and never carries the token.
        for e in [
            SignatureError::MissingHeader(TWILIO_SIGNATURE_HEADER),
            SignatureError::NoSecret("twilio"),
            SignatureError::Mismatch(TWILIO_SIGNATURE_HEADER),
            SignatureError::BodyHashMissing,
            SignatureError::BodyHashMalformed("is not the last query parameter"),
            SignatureError::BodyHashMismatch,
        ] {
            let gateway: crate::error::Error = e.clone().into();
            assert_eq!(gateway.kind, crate::error::Kind::Unauthorized);
            assert!(!gateway.message.contains('\n') && !gateway.message.contains("tok"));
        }
    }

    #[test]
    fn json_body_is_bound_by_body_sha256() {
        let body = br#"{"a":1}"#;
        let hash = hex::encode(Sha256::digest(body));
        let url = format!("{URL}&bodySHA256={hash}");
        let sig = sign("tok", &url, &[]);
        let t = tokens(&["tok"]);
        assert_eq!(
            verify_twilio(&url, TwilioSigned::Json(body), Some(&sig), &t),
            Ok(())
        );
        assert_eq!(
            verify_twilio(&url, TwilioSigned::Json(br#"{"a":2}"#), Some(&sig), &t),
            Err(SignatureError::BodyHashMismatch)
        );
        let upper = format!("{URL}&bodySHA256={}", hash.to_uppercase());
        let sig_upper = sign("tok", &upper, &[]);
        assert_eq!(
            verify_twilio(&upper, TwilioSigned::Json(body), Some(&sig_upper), &t),
            Err(SignatureError::BodyHashMalformed(
                "is not 64 lowercase hex digits"
            )),
            "Twilio sends lowercase hex; nothing else is its hash"
        );
        let sig_plain = sign("tok", URL, &[]);
        assert_eq!(
            verify_twilio(URL, TwilioSigned::Json(body), Some(&sig_plain), &t),
            Err(SignatureError::BodyHashMissing)
        );
    }

    /// Issue 12 item 7: `bodySHA256` binds a JSON body only where Twilio puts it: once,
    /// last, 64 lowercase hex digits. Each URL is signed with the right token, so only
    /// the placement can refuse it.
    #[test]
    fn item_07_body_hash_must_be_once_last_and_well_formed() {
        let body = br#"[{"type":"com.twilio.messaging.inbound-message.received"}]"#;
        let h = hex::encode(Sha256::digest(body));
        let base = "https://hooks.example.com/webhooks/twilio/acme";
        let t = tokens(&["tok"]);
        let cases: Vec<(String, Result<(), SignatureError>)> = vec![
            (format!("{base}?bodySHA256={h}"), Ok(())),
            (format!("{base}?src=sms&bodySHA256={h}"), Ok(())),
            (base.to_string(), Err(SignatureError::BodyHashMissing)),
            (
                format!("{base}?src=sms"),
                Err(SignatureError::BodyHashMissing),
            ),
            (
                format!("{base}?bodySHA256={h}&z=From+15550000071"),
                Err(SignatureError::BodyHashMalformed(
                    "is not the last query parameter",
                )),
            ),
            (
                format!("{base}?src=smsBody&bodySHA256={h}&z=1&bodySHA256={h}"),
                Err(SignatureError::BodyHashMalformed("occurs more than once")),
            ),
            (
                format!("{base}?BODYSHA256={h}&bodySHA256={h}"),
                Err(SignatureError::BodyHashMalformed("occurs more than once")),
            ),
            (
                format!("{base}?bodySHA256={h}0"),
                Err(SignatureError::BodyHashMalformed(
                    "is not 64 lowercase hex digits",
                )),
            ),
            (
                format!("{base}?bodySHA256={}", &h[..63]),
                Err(SignatureError::BodyHashMalformed(
                    "is not 64 lowercase hex digits",
                )),
            ),
            (
                format!("{base}?bodySHA256={h}From+15550000071"),
                Err(SignatureError::BodyHashMalformed(
                    "is not 64 lowercase hex digits",
                )),
            ),
            (
                format!("{base}?x=1&bodysha256={h}"),
                Err(SignatureError::BodyHashMalformed(
                    "is not the last query parameter",
                )),
            ),
        ];
        for (url, want) in cases {
            let sig = sign("tok", &url, &[]);
            let got = verify_twilio(&url, TwilioSigned::Json(body), Some(&sig), &t);
            assert_eq!(got, want, "{url}");
        }
    }

    #[test]
    fn url_variants_table() {
        let cases: &[(&str, &[&str])] = &[
            (
                "https://h.com/p?q=1",
                &["https://h.com/p?q=1", "https://h.com:443/p?q=1"],
            ),
            ("http://h.com/p", &["http://h.com/p", "http://h.com:80/p"]),
            (
                "https://h.com:8443/p",
                &["https://h.com/p", "https://h.com:8443/p"],
            ),
            (
                "https://h.com:443/p",
                &["https://h.com/p", "https://h.com:443/p"],
            ),
            (
                "https://u:p@h.com/p",
                &["https://u:p@h.com/p", "https://u:p@h.com:443/p"],
            ),
            (
                "http://[::1]:8080/p",
                &["http://[::1]/p", "http://[::1]:8080/p"],
            ),
            (
                "https://h.com?q=1",
                &["https://h.com?q=1", "https://h.com:443?q=1"],
            ),
            (
                "https://h.com/p?b=It's",
                &[
                    "https://h.com/p?b=It's",
                    "https://h.com:443/p?b=It's",
                    "https://h.com/p?b=It%27s",
                    "https://h.com:443/p?b=It%27s",
                ],
            ),
            ("not a url", &["not a url"]),
        ];
        for (url, want) in cases {
            assert_eq!(twilio_url_variants(url), *want, "{url}");
        }
    }

    #[test]
    fn explicit_port_is_not_swapped_for_the_default() {
        let params = inbound();
        let received = "https://hooks.example.com:8443/t";
        let t = tokens(&["tok"]);
        for (signed_url, valid) in [
            ("https://hooks.example.com:8443/t", true),
            ("https://hooks.example.com/t", true),
            ("https://hooks.example.com:443/t", false),
        ] {
            let sig = sign("tok", signed_url, &params);
            let got = verify_twilio(received, TwilioSigned::Form(&params), Some(&sig), &t);
            assert_eq!(got.is_ok(), valid, "{signed_url}");
        }
    }

    /// Found by the signatures fuzz target: with an empty port (`host:`) neither port
    /// spelling was the URL as received, so a signature over it could not match.
    #[test]
    fn url_with_an_empty_port_is_tried_as_received() {
        let url = "https://hooks.example.com:/webhooks/twilio";
        let variants = twilio_url_variants(url);
        assert!(variants.contains(&url.to_string()), "{variants:?}");
        assert!(variants.contains(&"https://hooks.example.com/webhooks/twilio".to_string()));
    }
}
