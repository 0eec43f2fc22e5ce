//! Amazon SNS message signatures, versions 1 and 2.
//!
//! SNS signs a canonical string built from the envelope's fields, not the raw body:
//! `name\nvalue\n` for each field of the message type, in a fixed order, absent fields
//! skipped ([`string_to_sign`]). `SignatureVersion` 1 is RSA PKCS#1 v1.5 with SHA-1, 2
//! the same with SHA-256. The key is in an X.509 certificate that SNS names in
//! `SigningCertURL`, so the trust rests on where that certificate comes from: it is
//! fetched only over HTTPS from a host on the configured allow-list
//! (`sns.*.amazonaws.com` by default, [`cert_url_allowed`]), with a path ending in
//! `.pem`, and only after the caller has checked the topic against its allow-list, so
//! an unknown sender cannot make the gateway fetch anything.
//!
//! The certificate's validity dates and chain are not checked, as in AWS's own
//! validators: the HTTPS fetch from an AWS host is what vouches for it, and SNS keeps
//! serving a retired certificate's URL for messages it signed with it. Certificates are
//! cached by URL ([`CertCache`]); SNS names a new URL when it rotates its key, so a
//! cached entry never goes stale.
//!
//! No signed timestamp window is defined by SNS; replays are the caller's to stop (the
//! gateway dedups on `MessageId` and refuses messages older than its dedup memory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rsa::PublicKey as RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use sha1::Sha1;
use sha2::Sha256;
use x509_cert::Certificate;
use x509_cert::der::{DecodePem, Encode};

use crate::error::Error;
use crate::fetch::Fetch;
use crate::ses::{Envelope, MessageType};

/// Most certificates one cache keeps. SNS uses one per region at a time; the bound only
/// stops a stream of distinct (allow-listed) URLs from growing memory.
const MAX_CACHED_CERTS: usize = 32;

/// Why an SNS message was refused. Each says which check failed; none carries a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    /// `SignatureVersion` is neither 1 nor 2.
    #[error("SNS SignatureVersion {0:?} is not supported: expected 1 or 2")]
    UnsupportedVersion(String),
    /// The certificate URL is not one we fetch from.
    #[error("SNS SigningCertURL {url:?} is refused: {why}")]
    CertUrl {
        /// The URL as received.
        url: String,
        /// Which rule it breaks.
        why: String,
    },
    /// The certificate could not be fetched; a later retry may succeed.
    #[error("SNS signing certificate could not be fetched: {0}")]
    Fetch(String),
    /// What was fetched is not an X.509 certificate with an RSA key.
    #[error("SNS signing certificate is unusable: {0}")]
    Certificate(String),
    /// `Signature` is not base64 of an RSA signature.
    #[error("SNS Signature is malformed: {0}")]
    Malformed(&'static str),
    /// The signature does not match the message under the certificate's key.
    #[error("SNS Signature does not match the message: it was altered or not signed by SNS")]
    Mismatch,
}

impl From<SnsError> for Error {
    fn from(e: SnsError) -> Error {
        match e {
            // The certificate host was down or slow: SNS retries on a 5xx.
            SnsError::Fetch(_) => Error::new(crate::error::Kind::Unavailable, e.to_string()),
            SnsError::Mismatch => Error::unauthorized(e.to_string()).with_reason("mismatch"),
            SnsError::Malformed(_) | SnsError::UnsupportedVersion(_) => {
                Error::unauthorized(e.to_string()).with_reason("malformed")
            }
            _ => Error::unauthorized(e.to_string()).with_reason("certificate"),
        }
    }
}

/// The canonical string SNS signs for `envelope`: `name\nvalue\n` per field, in this
/// order, absent fields skipped.
///
/// - `Notification`: `Message`, `MessageId`, `Subject` (only when present), `Timestamp`,
///   `TopicArn`, `Type`;
/// - `SubscriptionConfirmation` and `UnsubscribeConfirmation`: `Message`, `MessageId`,
///   `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type`.
pub fn string_to_sign(envelope: &Envelope) -> String {
    let mut fields: Vec<(&str, Option<&str>)> = vec![
        ("Message", Some(&envelope.message)),
        ("MessageId", Some(&envelope.message_id)),
    ];
    match envelope.message_type {
        MessageType::Notification => {
            fields.push(("Subject", envelope.subject.as_deref()));
            fields.push(("Timestamp", Some(&envelope.timestamp)));
        }
        MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
            fields.push(("SubscribeURL", envelope.subscribe_url.as_deref()));
            fields.push(("Timestamp", Some(&envelope.timestamp)));
            fields.push(("Token", envelope.token.as_deref()));
        }
    }
    fields.push(("TopicArn", Some(&envelope.topic_arn)));
    fields.push(("Type", Some(envelope.message_type.as_str())));
    let mut out = String::new();
    for (name, value) in fields {
        if let Some(value) = value {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        }
    }
    out
}

/// Whether `host` (already lower-case) matches `pattern`: equal, or equal with the one
/// `*` standing for exactly one DNS label (letters, digits and `-`). So
/// `sns.*.amazonaws.com` takes `sns.eu-west-1.amazonaws.com` but neither
/// `sns.amazonaws.com`, `sns.a.b.amazonaws.com` nor `sns.x.amazonaws.com.evil.com`.
pub fn host_matches(host: &str, pattern: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.split_once('*') {
        None => host == pattern,
        Some((before, after)) => {
            host.len() > before.len() + after.len()
                && host.starts_with(before)
                && host.ends_with(after)
                && {
                    let label = &host[before.len()..host.len() - after.len()];
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }
        }
    }
}

/// The lower-cased host of an `https://` URL whose host matches one of `hosts`, and the
/// rest of the URL (path, query, fragment); the error says which rule failed. Userinfo,
/// ports and any character not allowed in a DNS name are refused outright, so no
/// parser disagreement (`https://sns.x.amazonaws.com\@evil.com/`) can smuggle another
/// host past the match.
fn allowed_https_url<'a>(url: &'a str, hosts: &[String]) -> Result<(String, &'a str), String> {
    let after = url
        .get(..8)
        .filter(|scheme| scheme.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])
        .ok_or_else(|| "it is not an https:// URL".to_string())?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (host, rest) = after.split_at(end);
    let host = host.to_ascii_lowercase();
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    {
        return Err("its host is not a plain DNS name (no userinfo or port allowed)".into());
    }
    if !hosts.iter().any(|pattern| host_matches(&host, pattern)) {
        return Err(format!(
            "host {host} is not on sns.cert_hosts ({})",
            hosts.join(", ")
        ));
    }
    Ok((host, rest))
}

/// Check a `SigningCertURL`: `https`, a host on `cert_hosts` (see [`host_matches`]), a
/// path ending in `.pem`, and no query or fragment.
pub fn cert_url_allowed(url: &str, cert_hosts: &[String]) -> Result<(), SnsError> {
    let refuse = |why: String| SnsError::CertUrl {
        url: url.to_string(),
        why,
    };
    let (_, rest) = allowed_https_url(url, cert_hosts).map_err(refuse)?;
    if rest.contains(['?', '#']) {
        return Err(refuse("it has a query or fragment".into()));
    }
    if !rest.starts_with('/') || !rest.ends_with(".pem") {
        return Err(refuse("its path does not end in .pem".into()));
    }
    Ok(())
}

/// Check a `SubscribeURL` before fetching it: `https` and a host on `hosts` (the same
/// allow-list as certificates: SNS confirms on its own regional endpoint).
pub fn subscribe_url_allowed(url: &str, hosts: &[String]) -> Result<(), String> {
    allowed_https_url(url, hosts).map(|_| ())
}

/// The RSA public key of a PEM X.509 certificate.
pub fn certificate_key(pem: &[u8]) -> Result<RsaPublicKey, SnsError> {
    let cert = Certificate::from_pem(pem)
        .map_err(|e| SnsError::Certificate(format!("not a PEM X.509 certificate: {e}")))?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| SnsError::Certificate(format!("unreadable public key: {e}")))?;
    RsaPublicKey::from_public_key_der(&spki)
        .map_err(|e| SnsError::Certificate(format!("not an RSA public key: {e}")))
}

/// Check `envelope`'s signature under `key`: version 1 SHA1withRSA, version 2
/// SHA256withRSA, PKCS#1 v1.5, over [`string_to_sign`].
pub fn verify_with_key(envelope: &Envelope, key: &RsaPublicKey) -> Result<(), SnsError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(envelope.signature.trim())
        .map_err(|_| SnsError::Malformed("it is not standard base64"))?;
    let signature = Signature::try_from(raw.as_slice())
        .map_err(|_| SnsError::Malformed("not an RSA signature"))?;
    let message = string_to_sign(envelope);
    let ok = match envelope.signature_version.as_str() {
        "1" => VerifyingKey::<Sha1>::new(key.clone())
            .verify(message.as_bytes(), &signature)
            .is_ok(),
        "2" => VerifyingKey::<Sha256>::new(key.clone())
            .verify(message.as_bytes(), &signature)
            .is_ok(),
        other => return Err(SnsError::UnsupportedVersion(other.to_string())),
    };
    if ok { Ok(()) } else { Err(SnsError::Mismatch) }
}

/// Signing certificates' keys by URL, fetched on first use.
///
/// Misses are fetched one at a time, so a burst of messages after a start or a key
/// rotation fetches the certificate once, not once per message.
#[derive(Debug, Default)]
pub struct CertCache {
    keys: Mutex<HashMap<String, Arc<RsaPublicKey>>>,
    fetching: tokio::sync::Mutex<()>,
}

impl CertCache {
    /// An empty cache.
    pub fn new() -> CertCache {
        CertCache::default()
    }

    /// The key of the certificate at `url` (which the caller has checked with
    /// [`cert_url_allowed`]), from the cache or fetched through `fetch`.
    pub async fn key(&self, url: &str, fetch: &dyn Fetch) -> Result<Arc<RsaPublicKey>, SnsError> {
        if let Some(key) = self.cached(url) {
            return Ok(key);
        }
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(key) = self.cached(url) {
            return Ok(key);
        }
        let pem = fetch.get(url).await.map_err(SnsError::Fetch)?;
        let key = Arc::new(certificate_key(&pem)?);
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_CACHED_CERTS {
            keys.clear();
        }
        keys.insert(url.to_string(), key.clone());
        Ok(key)
    }

    /// How many certificates are cached.
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cached(&self, url: &str) -> Option<Arc<RsaPublicKey>> {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned()
    }
}

/// Verify an SNS message: the signature version, the certificate URL against
/// `cert_hosts` (before anything is fetched), the certificate (from `cache`, else
/// through `fetch`), then the signature. The caller must already have checked the
/// `TopicArn` against its allow-list: that is what binds the message to us, and doing
/// it first means an unknown sender makes us fetch nothing.
pub async fn verify(
    envelope: &Envelope,
    cert_hosts: &[String],
    cache: &CertCache,
    fetch: &dyn Fetch,
) -> Result<(), SnsError> {
    if !matches!(envelope.signature_version.as_str(), "1" | "2") {
        return Err(SnsError::UnsupportedVersion(
            envelope.signature_version.clone(),
        ));
    }
    cert_url_allowed(&envelope.signing_cert_url, cert_hosts)?;
    let key = cache.key(&envelope.signing_cert_url, fetch).await?;
    verify_with_key(envelope, &key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::BoxFuture;
    use crate::ses::parse_envelope;
    use serde_json::Value;

    /// Serves the vectors' certificate by URL and records what was asked for.
    #[derive(Default)]
    struct Fixture {
        certs: HashMap<String, String>,
        asked: Mutex<Vec<String>>,
    }

    impl Fetch for Fixture {
        fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, String>> {
            self.asked.lock().unwrap().push(url.to_string());
            let found = self.certs.get(url).map(|pem| pem.clone().into_bytes());
            Box::pin(async move { found.ok_or_else(|| "404".to_string()) })
        }
    }

    fn vectors() -> Vec<Value> {
        serde_json::from_str(include_str!("../../tests/vectors/sns.json")).expect("JSON")
    }

    fn default_hosts() -> Vec<String> {
        vec!["sns.*.amazonaws.com".to_string()]
    }

    /// Every SNS vector, positive and negative, through the whole check with a fixture
    /// fetcher: the real SNS signatures verify, the negatives are refused for the
    /// reason they were made for, and the bad-host one fetches nothing.
    #[tokio::test]
    async fn shared_vectors() {
        let mut run = 0;
        for v in vectors() {
            run += 1;
            let name = v["name"].as_str().unwrap();
            let url = v["signing_cert_url"].as_str().unwrap();
            let fixture = Fixture {
                certs: HashMap::from([(
                    url.to_string(),
                    v["signing_cert_pem"].as_str().unwrap().to_string(),
                )]),
                ..Fixture::default()
            };
            let envelope = parse_envelope(v["body"].as_str().unwrap().as_bytes()).unwrap();
            if let Some(want) = v["string_to_sign"].as_str().filter(|s| !s.is_empty()) {
                assert_eq!(string_to_sign(&envelope), want, "{name}");
            }
            let cache = CertCache::new();
            let got = verify(&envelope, &default_hosts(), &cache, &fixture).await;
            let want = v["expected_valid"].as_bool().unwrap();
            assert_eq!(got.is_ok(), want, "{name}: {got:?}");
            let asked = fixture.asked.lock().unwrap().clone();
            if name.contains("host") {
                assert!(matches!(got, Err(SnsError::CertUrl { .. })), "{name}");
                assert!(asked.is_empty(), "{name}: fetched {asked:?}");
            } else {
                assert_eq!(asked, vec![url.to_string()], "{name}");
                if !want {
                    assert_eq!(got, Err(SnsError::Mismatch), "{name}");
                }
            }
        }
        assert_eq!(run, 7, "vector file lost entries");
    }

    #[test]
    fn string_to_sign_per_type() {
        let notification = |subject: Option<&str>| Envelope {
            message_type: MessageType::Notification,
            message_id: "id".into(),
            topic_arn: "arn".into(),
            subject: subject.map(str::to_string),
            message: "m\nx".into(),
            timestamp: "ts".into(),
            signature_version: "1".into(),
            signature: String::new(),
            signing_cert_url: String::new(),
            subscribe_url: Some("ignored".into()),
            token: Some("ignored".into()),
        };
        assert_eq!(
            string_to_sign(&notification(None)),
            "Message\nm\nx\nMessageId\nid\nTimestamp\nts\nTopicArn\narn\nType\nNotification\n"
        );
        assert_eq!(
            string_to_sign(&notification(Some("s"))),
            "Message\nm\nx\nMessageId\nid\nSubject\ns\nTimestamp\nts\nTopicArn\narn\nType\nNotification\n"
        );
        for (kind, name) in [
            (
                MessageType::SubscriptionConfirmation,
                "SubscriptionConfirmation",
            ),
            (
                MessageType::UnsubscribeConfirmation,
                "UnsubscribeConfirmation",
            ),
        ] {
            let mut e = notification(Some("never signed"));
            e.message_type = kind;
            e.subscribe_url = Some("https://u".into());
            e.token = Some("tok".into());
            assert_eq!(
                string_to_sign(&e),
                format!(
                    "Message\nm\nx\nMessageId\nid\nSubscribeURL\nhttps://u\nTimestamp\nts\nToken\ntok\nTopicArn\narn\nType\n{name}\n"
                )
            );
        }
    }

    #[test]
    fn cert_url_table() {
        let hosts = default_hosts();
        let cases: &[(&str, bool)] = &[
            (
                "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
                true,
            ),
            ("https://sns.eu-west-3.amazonaws.com/x.pem", true),
            ("https://SNS.AP-SOUTHEAST-2.AMAZONAWS.COM/x.pem", true),
            ("HTTPS://sns.us-gov-west-1.amazonaws.com/a/b.pem", true),
            ("http://sns.us-east-1.amazonaws.com/x.pem", false),
            ("https://sns.us-east-1.amazonaws.com.evil.com/x.pem", false),
            ("https://evil.com/sns.us-east-1.amazonaws.com/x.pem", false),
            ("https://evil.com/x.pem?sns.us-east-1.amazonaws.com", false),
            ("https://sns.amazonaws.com/x.pem", false),
            ("https://sns.a.b.amazonaws.com/x.pem", false),
            ("https://snsXus-east-1.amazonaws.com/x.pem", false),
            ("https://evilsns.us-east-1.amazonaws.com/x.pem", false),
            ("https://sns.us-east-1.amazonaws.com@evil.com/x.pem", false),
            ("https://evil.com@sns.us-east-1.amazonaws.com/x.pem", false),
            (
                "https://sns.us-east-1.amazonaws.com\\@evil.com/x.pem",
                false,
            ),
            ("https://sns.us-east-1.amazonaws.com:8443/x.pem", false),
            ("https://sns.us_east-1.amazonaws.com/x.pem", false),
            ("https://sns.us-east-1.amazonaws.com/x.txt", false),
            ("https://sns.us-east-1.amazonaws.com/x.pem?a=b", false),
            ("https://sns.us-east-1.amazonaws.com/x.pem#f", false),
            ("https://sns.us-east-1.amazonaws.com", false),
            ("https://sns.us-east-1.amazonaws.com.pem", false),
            ("ftp://sns.us-east-1.amazonaws.com/x.pem", false),
            ("", false),
        ];
        for (url, want) in cases {
            let got = cert_url_allowed(url, &hosts);
            assert_eq!(got.is_ok(), *want, "{url}: {got:?}");
        }
        let china = vec!["sns.*.amazonaws.com.cn".to_string()];
        assert!(cert_url_allowed("https://sns.cn-north-1.amazonaws.com.cn/x.pem", &china).is_ok());
        assert!(cert_url_allowed("https://sns.cn-north-1.amazonaws.com/x.pem", &china).is_err());
        let exact = vec!["certs.example.com".to_string()];
        assert!(cert_url_allowed("https://certs.example.com/x.pem", &exact).is_ok());
        assert!(cert_url_allowed("https://a.certs.example.com/x.pem", &exact).is_err());
    }

    #[test]
    fn subscribe_url_table() {
        let hosts = default_hosts();
        for (url, want) in [
            (
                "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn&Token=t",
                true,
            ),
            (
                "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
                false,
            ),
            ("https://evil.com/?sns.us-west-2.amazonaws.com", false),
            ("https://sns.us-west-2.amazonaws.com.evil.com/", false),
        ] {
            assert_eq!(subscribe_url_allowed(url, &hosts).is_ok(), want, "{url}");
        }
    }

    #[tokio::test]
    async fn cache_fetches_once_and_refuses_bad_certificates() {
        let v = &vectors()[0];
        let url = v["signing_cert_url"].as_str().unwrap().to_string();
        let fixture = Fixture {
            certs: HashMap::from([
                (
                    url.clone(),
                    v["signing_cert_pem"].as_str().unwrap().to_string(),
                ),
                ("https://sns.x.amazonaws.com/junk.pem".into(), "junk".into()),
            ]),
            ..Fixture::default()
        };
        let cache = CertCache::new();
        for _ in 0..3 {
            cache.key(&url, &fixture).await.unwrap();
        }
        assert_eq!(fixture.asked.lock().unwrap().len(), 1);
        assert_eq!(cache.len(), 1);
        let junk = cache
            .key("https://sns.x.amazonaws.com/junk.pem", &fixture)
            .await;
        assert!(matches!(junk, Err(SnsError::Certificate(_))), "{junk:?}");
        let missing = cache
            .key("https://sns.x.amazonaws.com/none.pem", &fixture)
            .await;
        assert!(matches!(missing, Err(SnsError::Fetch(_))));
        assert_eq!(
            Error::from(missing.unwrap_err()).kind,
            crate::error::Kind::Unavailable,
            "an unreachable certificate host is worth a retry"
        );
        assert_eq!(cache.len(), 1, "failures are not cached");
    }

    #[tokio::test]
    async fn unsupported_versions_and_malformed_signatures() {
        let v = &vectors()[0];
        let fixture = Fixture::default();
        let mut envelope = parse_envelope(v["body"].as_str().unwrap().as_bytes()).unwrap();
        envelope.signature_version = "3".into();
        let got = verify(&envelope, &default_hosts(), &CertCache::new(), &fixture).await;
        assert_eq!(got, Err(SnsError::UnsupportedVersion("3".into())));
        assert!(fixture.asked.lock().unwrap().is_empty(), "nothing fetched");

        let key = certificate_key(v["signing_cert_pem"].as_str().unwrap().as_bytes()).unwrap();
        envelope.signature_version = "1".into();
        envelope.signature = "***".into();
        assert!(matches!(
            verify_with_key(&envelope, &key),
            Err(SnsError::Malformed(_))
        ));
        for e in [
            SnsError::Mismatch,
            SnsError::Malformed("x"),
            SnsError::UnsupportedVersion("3".into()),
        ] {
            assert_eq!(Error::from(e).kind, crate::error::Kind::Unauthorized);
        }
    }
}
