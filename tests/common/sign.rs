//! Signing webhooks the way providers do, for the tests.
//!
//! The schemes themselves live in the crate, in [`dndgate::simulate::sign`], because
//! `dndgate simulate` signs the fixture folders' requests with them too; they are
//! written independently of the providers' verifiers, which never call them. This file
//! adds what only a test can do: SNS (RSA over the envelope, with a certificate the test
//! serves at the envelope's `SigningCertURL`), and the small helpers the e2e tests use.

use base64::Engine as _;
use serde::Deserialize;

#[allow(unused_imports)]
pub use dndgate::simulate::sign::{
    Algorithm, Encoding, KeyEncoding, Request, Template, basic, mailgun, twilio,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A document the gateway may fetch while verifying (an SNS signing certificate):
/// the test's fetcher serves `body` at `url`.
#[derive(Debug, Clone)]
pub struct Served {
    pub url: String,
    pub body: Vec<u8>,
}

/// A fixture's `sign` table: one of the crate's schemes, or SNS.
#[derive(Debug, Clone)]
pub enum Signer {
    /// SNS (SES): RSA PKCS#1 v1.5 (version 1: SHA-1, 2: SHA-256) with `key` (PKCS#8
    /// PEM) over SNS's canonical string of the envelope's fields. A `Message` written as
    /// a JSON object is turned into the string SNS carries. Sets the `x-amz-sns-*`
    /// headers and serves a certificate for the key at the envelope's `SigningCertURL`.
    Sns { key: String, version: u8 },
    /// Every other scheme (`tests/providers/README.md`).
    Crate(dndgate::simulate::sign::Signer),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnsTable {
    #[allow(dead_code)]
    scheme: String,
    key: String,
    #[serde(default = "sns_version")]
    version: u8,
}

fn sns_version() -> u8 {
    2
}

impl Signer {
    /// Read a `sign` table.
    pub fn from_table(table: toml::Table) -> Result<Signer, String> {
        let value = toml::Value::Table(table);
        if value.get("scheme").and_then(toml::Value::as_str) == Some("sns") {
            let t: SnsTable = value.try_into().map_err(|e| format!("sign: {e}"))?;
            return Ok(Signer::Sns {
                key: t.key,
                version: t.version,
            });
        }
        value
            .try_into()
            .map(Signer::Crate)
            .map_err(|e| format!("sign: {e}"))
    }

    /// Sign `req` in place; returns what the gateway may fetch to verify it.
    pub fn sign(&self, req: &mut Request) -> Result<Vec<Served>, String> {
        let (key, version) = match self {
            Signer::Crate(s) => return s.sign(req).map(|()| Vec::new()),
            Signer::Sns { key, version } => (key, *version),
        };
        let mut envelope: serde_json::Value = serde_json::from_slice(&req.body)
            .map_err(|e| format!("sns signs a JSON envelope: {e}"))?;
        if envelope["Message"].is_object() || envelope["Message"].is_array() {
            envelope["Message"] = envelope["Message"].to_string().into();
        }
        sns(&mut envelope, key, version)?;
        req.body = envelope.to_string().into_bytes();
        for (header, field) in [
            ("x-amz-sns-message-type", "Type"),
            ("x-amz-sns-message-id", "MessageId"),
            ("x-amz-sns-topic-arn", "TopicArn"),
        ] {
            if let Some(v) = envelope[field].as_str() {
                req.set_header(header, v);
            }
        }
        let field = ["SigningCertURL", "SigningCertUrl"]
            .into_iter()
            .find_map(|f| envelope[f].as_str());
        Ok(match field {
            Some(url) => vec![Served {
                url: url.to_string(),
                body: sns_certificate(key).into_bytes(),
            }],
            None => Vec::new(),
        })
    }
}

/// Sign an SNS envelope in place: `SignatureVersion` and `Signature` over SNS's
/// canonical string (`name\nvalue\n` for the type's fields, in order, those present).
pub fn sns(envelope: &mut serde_json::Value, key_pem: &str, version: u8) -> Result<(), String> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::Signer as _;
    let names: &[&str] = match envelope["Type"].as_str() {
        Some("Notification") => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        Some("SubscriptionConfirmation" | "UnsubscribeConfirmation") => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
        other => return Err(format!("sns: no canonical string for Type {other:?}")),
    };
    let mut text = String::new();
    for name in names {
        if let Some(value) = envelope[*name].as_str() {
            text.push_str(&format!("{name}\n{value}\n"));
        }
    }
    let key = rsa::PrivateKey::from_pkcs8_pem(key_pem).map_err(|e| format!("sns key: {e}"))?;
    let signature: Box<[u8]> = match version {
        1 => rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key)
            .sign(text.as_bytes())
            .into(),
        2 => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key)
            .sign(text.as_bytes())
            .into(),
        v => return Err(format!("sns: SignatureVersion {v} (1 or 2)")),
    };
    envelope["SignatureVersion"] = version.to_string().into();
    envelope["Signature"] = B64.encode(signature).into();
    Ok(())
}

/// A certificate for `key_pem` as SNS's are issued (`sns.amazonaws.com`), valid from an
/// hour ago for a day.
pub fn sns_certificate(key_pem: &str) -> String {
    let now = super::now_ms() / 1000;
    super::self_signed_cert_pem(
        key_pem,
        "sns.amazonaws.com",
        &["sns.amazonaws.com"],
        now - 3600,
        now + 86_400,
    )
}

/// The Meta signature header value: `sha256=` hex HMAC-SHA256(app secret, body).
pub fn meta(app_secret: &str, body: &[u8]) -> String {
    let t = Template {
        algorithm: Algorithm::HmacSha256,
        key: app_secret.to_string(),
        key_encoding: KeyEncoding::Text,
        key_prefix: String::new(),
        message: "{body}".into(),
        encoding: Encoding::Hex,
        prefix: "sha256=".into(),
        header: "X-Hub-Signature-256".into(),
        timestamp: None,
        timestamp_header: None,
        id: None,
        id_header: None,
    };
    t.signature(&body_only(body)).expect("a fixed template")
}

/// The SendGrid signature header value: base64 DER ECDSA P-256 over timestamp then
/// body, with the private scalar `key_hex`.
pub fn sendgrid(key_hex: &str, timestamp: &str, body: &[u8]) -> String {
    let t = Template {
        algorithm: Algorithm::EcdsaP256Sha256,
        key: key_hex.to_string(),
        key_encoding: KeyEncoding::Hex,
        key_prefix: String::new(),
        message: "{timestamp}{body}".into(),
        encoding: Encoding::Base64,
        prefix: String::new(),
        header: "X-Twilio-Email-Event-Webhook-Signature".into(),
        timestamp: Some(timestamp.to_string()),
        timestamp_header: None,
        id: None,
        id_header: None,
    };
    t.signature(&body_only(body)).expect("a P-256 scalar")
}

/// The Standard Webhooks signature header value: `v1,` base64 HMAC-SHA256 over
/// `id.timestamp.body` with the key from `whsec_BASE64`.
pub fn standard_webhooks(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let t = Template {
        algorithm: Algorithm::HmacSha256,
        key: secret.to_string(),
        key_encoding: KeyEncoding::Base64,
        key_prefix: "whsec_".into(),
        message: "{id}.{timestamp}.{body}".into(),
        encoding: Encoding::Base64,
        prefix: "v1,".into(),
        header: "webhook-signature".into(),
        timestamp: Some(timestamp.to_string()),
        timestamp_header: None,
        id: Some(id.to_string()),
        id_header: None,
    };
    t.signature(&body_only(body)).expect("a whsec_ secret")
}

fn body_only(body: &[u8]) -> Request {
    Request {
        method: "POST".into(),
        url: String::new(),
        headers: Vec::new(),
        body: body.to_vec(),
    }
}
