//! Amazon SNS message signatures, versions 1 and 2.
//!
//! SNS signs a canonical string built from the envelope's fields, not the raw body:
//! `name\nvalue\n` for each field of the message type, in a fixed order, absent fields
//! skipped ([`string_to_sign`]). `SignatureVersion` 1 is RSA PKCS#1 v1.5 with SHA-1, 2
//! the same with SHA-256. The key is in an X.509 certificate that SNS names in
//! `SigningCertURL`, so the trust rests on where that certificate comes from: it is
//! fetched only over HTTPS from a host on the configured allow-list
//! (`sns.REGION.amazonaws.com` and `sns.REGION.amazonaws.com.cn` by default, where
//! `REGION` must be shaped like an AWS region, so no S3 bucket or other look-alike
//! under `amazonaws.com` passes; [`cert_url_allowed`]), with a path ending in `.pem`,
//! and only after the caller has checked the topic against its allow-list, so an
//! unknown sender cannot make the gateway fetch anything.
//!
//! The certificate itself must then be issued for SNS at that host and be valid now
//! ([`signing_certificate`], as AWS's Java SDK checks it): its DNS names (or its common
//! name, without any) must include the name SNS's certificates carry in that region
//! ([`expected_cert_names`]: `sns.amazonaws.com` in most, `sns-signing.REGION...` in
//! opt-in ones, the GovCloud and China names) or the host itself. The chain is not
//! checked: SNS serves the leaf alone, without the intermediates a path would need;
//! the HTTPS fetch from the allow-listed host is what vouches for the certificate, and
//! the name and dates make sure it is a current SNS signing certificate. Certificates
//! are cached by URL ([`CertCache`]), their dates checked at every use; SNS names a new
//! URL when it rotates its key.
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

use super::normalise::{Envelope, MessageType};
use crate::error::Error;
use crate::fetch::Fetch;

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
/// `*` standing for exactly one AWS region name ([`is_region`]). So
/// `sns.*.amazonaws.com` takes `sns.eu-west-1.amazonaws.com` and
/// `sns.us-gov-west-1.amazonaws.com` but neither `sns.amazonaws.com`,
/// `sns.a.b.amazonaws.com`, `sns.x.amazonaws.com.evil.com` nor the S3 virtual host of a
/// bucket named `sns`, `sns.s3.amazonaws.com`.
pub fn host_matches(host: &str, pattern: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.split_once('*') {
        None => host == pattern,
        Some((before, after)) => {
            host.len() > before.len() + after.len()
                && host.starts_with(before)
                && host.ends_with(after)
                && is_region(&host[before.len()..host.len() - after.len()])
        }
    }
}

/// Whether `label` is shaped like an AWS region name: lower-case words joined by `-`,
/// at least two of them, the first of two letters or more, and a last part of one or
/// two digits (`us-east-1`, `us-gov-west-1`, `cn-northwest-1`, `ap-southeast-7`). Not
/// `s3`, `s3-external-1`, `compute-1` or `elb`: the other services under
/// `amazonaws.com` whose host names anyone can take a label of.
fn is_region(label: &str) -> bool {
    let parts: Vec<&str> = label.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    words.len() >= 2
        && words[0].len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && (1..=2).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Opt-in regions whose SNS signing certificates are issued for
/// `sns-signing.REGION.amazonaws.com` (from AWS's Java SDK, `SnsHostProvider`).
const SNS_SIGNING_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-west-1",
    "eu-central-2",
    "eu-south-1",
    "eu-south-2",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
];

/// The names a signing certificate fetched from `host` may be issued for: the host
/// itself, and for an SNS endpoint `sns.REGION.amazonaws.com[.cn]` the name SNS's
/// certificates carry in that region, as AWS's Java SDK (`SnsHostProvider`) resolves
/// it: `sns-REGION.amazonaws.com.cn` in China (`sns.amazonaws.com.cn` for a region it
/// does not know), `sns-us-gov-west-1.amazonaws.com` in GovCloud,
/// `sns-signing.REGION.amazonaws.com` in the opt-in regions, and `sns.amazonaws.com`
/// elsewhere. A region too new for the table is also allowed
/// `sns-signing.REGION.amazonaws.com`, the form AWS gives new regions.
pub fn expected_cert_names(host: &str) -> Vec<String> {
    let mut names = vec![host.to_string()];
    let Some(rest) = host.strip_prefix("sns.") else {
        return names;
    };
    if let Some(region) = rest.strip_suffix(".amazonaws.com.cn") {
        if matches!(region, "cn-north-1" | "cn-northwest-1") {
            names.push(format!("sns-{region}.amazonaws.com.cn"));
        } else {
            names.push("sns.amazonaws.com.cn".to_string());
        }
    } else if let Some(region) = rest.strip_suffix(".amazonaws.com") {
        if region.starts_with("us-gov-") {
            names.push("sns-us-gov-west-1.amazonaws.com".to_string());
        } else if SNS_SIGNING_REGIONS.contains(&region) {
            names.push(format!("sns-signing.{region}.amazonaws.com"));
        } else {
            names.push("sns.amazonaws.com".to_string());
            names.push(format!("sns-signing.{region}.amazonaws.com"));
        }
    }
    names
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
    cert_url_host(url, cert_hosts).map(|_| ())
}

/// [`cert_url_allowed`], returning the URL's host (lower-cased).
fn cert_url_host(url: &str, cert_hosts: &[String]) -> Result<String, SnsError> {
    let refuse = |why: String| SnsError::CertUrl {
        url: url.to_string(),
        why,
    };
    let (host, rest) = allowed_https_url(url, cert_hosts).map_err(refuse)?;
    if rest.contains(['?', '#']) {
        return Err(refuse("it has a query or fragment".into()));
    }
    if !rest.starts_with('/') || !rest.ends_with(".pem") {
        return Err(refuse("its path does not end in .pem".into()));
    }
    Ok(host)
}

/// Check a `SubscribeURL` before fetching it: `https` and a host on `hosts` (the same
/// allow-list as certificates: SNS confirms on its own regional endpoint).
pub fn subscribe_url_allowed(url: &str, hosts: &[String]) -> Result<(), String> {
    allowed_https_url(url, hosts).map(|_| ())
}

/// The RSA public key of a PEM X.509 certificate.
pub fn certificate_key(pem: &[u8]) -> Result<RsaPublicKey, SnsError> {
    let cert = parse_certificate(pem)?;
    rsa_key(&cert)
}

fn parse_certificate(pem: &[u8]) -> Result<Certificate, SnsError> {
    Certificate::from_pem(pem)
        .map_err(|e| SnsError::Certificate(format!("not a PEM X.509 certificate: {e}")))
}

fn rsa_key(cert: &Certificate) -> Result<RsaPublicKey, SnsError> {
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| SnsError::Certificate(format!("unreadable public key: {e}")))?;
    RsaPublicKey::from_public_key_der(&spki)
        .map_err(|e| SnsError::Certificate(format!("not an RSA public key: {e}")))
}

/// A signing certificate that was issued for its host: its key, and the dates between
/// which it may be used (checked at every use, [`SigningCert::check_valid_at`]).
#[derive(Debug)]
pub struct SigningCert {
    /// The RSA key messages are verified with.
    pub key: RsaPublicKey,
    /// `notBefore`, milliseconds since the Unix epoch.
    pub not_before_ms: i64,
    /// `notAfter`, milliseconds since the Unix epoch.
    pub not_after_ms: i64,
}

impl SigningCert {
    /// Refuse the certificate outside its validity period.
    pub fn check_valid_at(&self, now_ms: i64) -> Result<(), SnsError> {
        if now_ms < self.not_before_ms {
            return Err(SnsError::Certificate(format!(
                "it is not valid before {}",
                crate::time::format_rfc3339_ms(self.not_before_ms)
            )));
        }
        if now_ms > self.not_after_ms {
            return Err(SnsError::Certificate(format!(
                "it expired at {}",
                crate::time::format_rfc3339_ms(self.not_after_ms)
            )));
        }
        Ok(())
    }
}

/// Read the signing certificate fetched from `host` (a host on `sns.cert_hosts`): a PEM
/// X.509 certificate with an RSA key whose DNS names (subject alternative names, or the
/// subject's common name when it has none) include one of [`expected_cert_names`].
pub fn signing_certificate(pem: &[u8], host: &str) -> Result<SigningCert, SnsError> {
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let cert = parse_certificate(pem)?;
    let tbs = cert.tbs_certificate();
    let unreadable =
        |e: x509_cert::der::Error| SnsError::Certificate(format!("its names cannot be read: {e}"));
    let mut names: Vec<String> = match tbs.get_extension::<SubjectAltName>().map_err(unreadable)? {
        Some((_, san)) => san
            .0
            .iter()
            .filter_map(|name| match name {
                GeneralName::DnsName(dns) => Some(dns.to_string()),
                _ => None,
            })
            .collect(),
        None => Vec::new(),
    };
    if names.is_empty() {
        names.extend(
            tbs.subject()
                .common_name()
                .map_err(unreadable)?
                .map(|cn| cn.value().into_owned()),
        );
    }
    let expected = expected_cert_names(host);
    if !names
        .iter()
        .any(|n| expected.iter().any(|e| n.eq_ignore_ascii_case(e)))
    {
        let shown: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        return Err(SnsError::Certificate(crate::error::one_line(format!(
            "it is issued for [{}], not for SNS at {host} ({})",
            shown.join(", "),
            expected.join(" or ")
        ))));
    }
    let ms = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_millis()).unwrap_or(i64::MAX)
    };
    let validity = tbs.validity();
    Ok(SigningCert {
        key: rsa_key(&cert)?,
        not_before_ms: ms(validity.not_before),
        not_after_ms: ms(validity.not_after),
    })
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
    keys: Mutex<HashMap<String, Arc<SigningCert>>>,
    fetching: tokio::sync::Mutex<()>,
}

impl CertCache {
    /// An empty cache.
    pub fn new() -> CertCache {
        CertCache::default()
    }

    /// The certificate at `url`, fetched from `host` (which the caller has checked
    /// with [`cert_url_allowed`]), from the cache or fetched through `fetch` and
    /// checked with [`signing_certificate`]; refused outside its validity at `now_ms`.
    pub async fn certificate(
        &self,
        url: &str,
        host: &str,
        fetch: &dyn Fetch,
        now_ms: i64,
    ) -> Result<Arc<SigningCert>, SnsError> {
        let cert = match self.cached(url) {
            Some(cert) => cert,
            None => self.fetch_certificate(url, host, fetch).await?,
        };
        cert.check_valid_at(now_ms)?;
        Ok(cert)
    }

    async fn fetch_certificate(
        &self,
        url: &str,
        host: &str,
        fetch: &dyn Fetch,
    ) -> Result<Arc<SigningCert>, SnsError> {
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(cert) = self.cached(url) {
            return Ok(cert);
        }
        let pem = fetch.get(url).await.map_err(SnsError::Fetch)?;
        let cert = Arc::new(signing_certificate(&pem, host)?);
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_CACHED_CERTS {
            keys.clear();
        }
        keys.insert(url.to_string(), cert.clone());
        Ok(cert)
    }

    /// How many certificates are cached.
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cached(&self, url: &str) -> Option<Arc<SigningCert>> {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned()
    }
}

/// Verify an SNS message received at `now_ms`: the signature version, the certificate
/// URL against `cert_hosts` (before anything is fetched), the certificate (from
/// `cache`, else through `fetch`: issued for SNS at that host, valid now), then the
/// signature. The caller must already have checked the `TopicArn` against its
/// allow-list: that is what binds the message to us, and doing it first means an
/// unknown sender makes us fetch nothing.
pub async fn verify(
    envelope: &Envelope,
    cert_hosts: &[String],
    cache: &CertCache,
    fetch: &dyn Fetch,
    now_ms: i64,
) -> Result<(), SnsError> {
    if !matches!(envelope.signature_version.as_str(), "1" | "2") {
        return Err(SnsError::UnsupportedVersion(
            envelope.signature_version.clone(),
        ));
    }
    let host = cert_url_host(&envelope.signing_cert_url, cert_hosts)?;
    let cert = cache
        .certificate(&envelope.signing_cert_url, &host, fetch, now_ms)
        .await?;
    verify_with_key(envelope, &cert.key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::BoxFuture;
    use crate::providers::ses::normalise::parse_envelope;
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
        serde_json::from_str(include_str!("../../../tests/providers/ses/vectors.json"))
            .expect("JSON")
    }

    fn default_hosts() -> Vec<String> {
        vec!["sns.*.amazonaws.com".to_string()]
    }

    /// 2022-01-01: inside the vectors' certificate's validity (2021-09-07 to
    /// 2022-08-17), when those messages were signed.
    const VECTORS_NOW_MS: i64 = 1_640_995_200_000;

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
            let got = verify(
                &envelope,
                &default_hosts(),
                &cache,
                &fixture,
                VECTORS_NOW_MS,
            )
            .await;
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

    /// Issue 12 item 10: with the default `sns.cert_hosts`, only SNS's own endpoints:
    /// `sns.REGION.amazonaws.com` (GovCloud regions included) and China's
    /// `sns.REGION.amazonaws.com.cn`. A label that is not a region (an S3
    /// virtual-hosted bucket named `sns`, an EC2 or S3 endpoint) is refused.
    #[test]
    fn item_10_cert_url_host_table() {
        let hosts = crate::providers::ses::SnsSettings::default().cert_hosts;
        for (host, want) in [
            ("sns.us-east-1.amazonaws.com", true),
            ("sns.eu-central-2.amazonaws.com", true),
            ("sns.ap-southeast-7.amazonaws.com", true),
            ("sns.me-central-1.amazonaws.com", true),
            ("sns.us-gov-west-1.amazonaws.com", true),
            ("sns.us-gov-east-1.amazonaws.com", true),
            ("sns.cn-north-1.amazonaws.com.cn", true),
            ("sns.cn-northwest-1.amazonaws.com.cn", true),
            ("sns.s3.amazonaws.com", false),
            ("sns.s3-external-1.amazonaws.com", false),
            ("sns.s3-us-west-2.amazonaws.com", false),
            ("sns.s3-website-us-east-1.amazonaws.com", false),
            ("sns.s3.cn-north-1.amazonaws.com.cn", false),
            ("sns.compute-1.amazonaws.com", false),
            ("sns.elb.amazonaws.com", false),
            ("sns.us-east.amazonaws.com", false),
            ("sns.useast1.amazonaws.com", false),
            ("sns.us-east-1-.amazonaws.com", false),
            ("sns.-us-east-1.amazonaws.com", false),
            ("sns.us-east-123.amazonaws.com", false),
            ("sns.amazonaws.com", false),
            ("sns.us-east-1.amazonaws.com.evil.com", false),
            ("sns.us-east-1.amazonaws.co", false),
        ] {
            let url = format!("https://{host}/SimpleNotificationService-x.pem");
            let got = cert_url_allowed(&url, &hosts);
            assert_eq!(got.is_ok(), want, "{url}: {got:?}");
        }
    }

    /// Issue 12 item 10: the names a certificate may carry for each kind of SNS host
    /// (AWS's Java SDK's table), and the genuine us-east-2 certificate of the vectors
    /// (`CN=sns.amazonaws.com`) is accepted there and nowhere that expects another name.
    #[test]
    fn item_10_expected_certificate_names() {
        for (host, want) in [
            (
                "sns.us-east-1.amazonaws.com",
                &[
                    "sns.us-east-1.amazonaws.com",
                    "sns.amazonaws.com",
                    "sns-signing.us-east-1.amazonaws.com",
                ][..],
            ),
            (
                "sns.me-south-1.amazonaws.com",
                &[
                    "sns.me-south-1.amazonaws.com",
                    "sns-signing.me-south-1.amazonaws.com",
                ],
            ),
            (
                "sns.us-gov-east-1.amazonaws.com",
                &[
                    "sns.us-gov-east-1.amazonaws.com",
                    "sns-us-gov-west-1.amazonaws.com",
                ],
            ),
            (
                "sns.cn-north-1.amazonaws.com.cn",
                &[
                    "sns.cn-north-1.amazonaws.com.cn",
                    "sns-cn-north-1.amazonaws.com.cn",
                ],
            ),
            (
                "sns.cn-south-9.amazonaws.com.cn",
                &["sns.cn-south-9.amazonaws.com.cn", "sns.amazonaws.com.cn"],
            ),
            ("certs.example.com", &["certs.example.com"]),
        ] {
            assert_eq!(expected_cert_names(host), want, "{host}");
        }
        let v = &vectors()[0];
        let pem = v["signing_cert_pem"].as_str().unwrap().as_bytes();
        let cert = signing_certificate(pem, "sns.us-east-2.amazonaws.com").unwrap();
        assert_eq!(cert.check_valid_at(VECTORS_NOW_MS), Ok(()));
        for host in [
            "sns.me-south-1.amazonaws.com",
            "sns.us-gov-west-1.amazonaws.com",
            "certs.example.com",
        ] {
            let err = signing_certificate(pem, host).unwrap_err();
            assert!(
                matches!(&err, SnsError::Certificate(why) if why.contains("\"sns.amazonaws.com\"") && why.contains(host)),
                "{host}: {err:?}"
            );
        }
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
        let host = "sns.us-east-2.amazonaws.com";
        for _ in 0..3 {
            cache
                .certificate(&url, host, &fixture, VECTORS_NOW_MS)
                .await
                .unwrap();
        }
        assert_eq!(fixture.asked.lock().unwrap().len(), 1);
        assert_eq!(cache.len(), 1);
        // Cached, and refused once expired (2022-08-17): the dates count at every use.
        let expired = cache
            .certificate(&url, host, &fixture, 1_700_000_000_000)
            .await;
        assert!(
            matches!(&expired, Err(SnsError::Certificate(why)) if why.contains("expired")),
            "{expired:?}"
        );
        assert_eq!(fixture.asked.lock().unwrap().len(), 1);
        let junk = cache
            .certificate(
                "https://sns.x.amazonaws.com/junk.pem",
                host,
                &fixture,
                VECTORS_NOW_MS,
            )
            .await;
        assert!(matches!(junk, Err(SnsError::Certificate(_))), "{junk:?}");
        let missing = cache
            .certificate(
                "https://sns.x.amazonaws.com/none.pem",
                host,
                &fixture,
                VECTORS_NOW_MS,
            )
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
        let got = verify(
            &envelope,
            &default_hosts(),
            &CertCache::new(),
            &fixture,
            VECTORS_NOW_MS,
        )
        .await;
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
