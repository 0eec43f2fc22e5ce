//! Signing webhooks the way providers do, once for every test.
//!
//! A [`Signer`] is data: a fixture folder's `cases.toml` writes one as a `sign` table
//! (`tests/providers/README.md`), and the e2e tests build one in code through the small
//! helpers at the bottom of this file. Most schemes are a [`Template`]: an algorithm and a
//! key over a message made of request parts (`{timestamp}.{body}`), encoded, prefixed and
//! put into a header. The rest cannot be said that way and have a name each: Twilio (the
//! URL plus the sorted form parameters), Mailgun (the signature object inside the body),
//! SNS (RSA over fields of the JSON envelope, with a certificate to serve) and HTTP basic
//! auth (Postmark).
//!
//! Written independently of the crate's verifiers, so a test cannot pass by sharing
//! their bug; `tests/providers.rs` checks it against the providers' published vectors.

use base64::Engine as _;
use serde::Deserialize;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A request as the provider sends it, which a [`Signer`] completes.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST`, usually.
    pub method: String,
    /// The URL the provider calls, as it signs it: the gateway's public URL and the path.
    pub url: String,
    /// Headers, in order; a signer adds its own (replacing any of the same name).
    pub headers: Vec<(String, String)>,
    /// The raw body, exactly as sent.
    pub body: Vec<u8>,
}

impl Request {
    /// Set `name` to `value`, replacing a header of the same name (any case).
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
    }
}

/// A document the gateway may fetch while verifying (an SNS signing certificate):
/// the test's fetcher serves `body` at `url`.
#[derive(Debug, Clone)]
pub struct Served {
    pub url: String,
    pub body: Vec<u8>,
}

/// How a provider signs (or authenticates) a request. `scheme` names the variant.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Signer {
    /// Nothing: the request goes unsigned.
    None,
    /// An algorithm over a template of request parts, into a header.
    Template(Template),
    /// Twilio: base64 HMAC-SHA1(auth token `key`, URL + each form parameter's name and
    /// value, sorted by name) in `X-Twilio-Signature`.
    Twilio { key: String },
    /// Mailgun: hex HMAC-SHA256(signing key `key`, timestamp + token), both read from
    /// the JSON body's `signature` object, written into its `signature.signature`.
    Mailgun { key: String },
    /// SNS (SES): RSA PKCS#1 v1.5 (version 1: SHA-1, 2: SHA-256) with `key` (PKCS#8
    /// PEM) over SNS's canonical string of the envelope's fields. A `Message` written as
    /// a JSON object is turned into the string SNS carries. Sets the `x-amz-sns-*`
    /// headers and serves a certificate for the key at the envelope's `SigningCertURL`.
    Sns {
        key: String,
        #[serde(default = "sns_version")]
        version: u8,
    },
    /// HTTP basic auth (Postmark): `key` is `user:password`.
    Basic { key: String },
    /// Vonage, with signature secret `key`. `method` `md5hash`, `md5`, `sha1`, `sha256`
    /// or `sha512` (the SMS API): a hex `sig` over the body's parameters (a form, or a
    /// flat JSON object), each `&name=value` sorted by name with `&` and `=` in values
    /// as `_`, then (md5hash) MD5 of that and the key, or the HMAC keyed by it; `sig`
    /// is added to the body. `method = "jwt"` (the Messages API): an HS256 token with
    /// `iat` (`iat`), `api_key` (`api_key`) and `payload_hash` (SHA-256 hex of the body)
    /// in `Authorization: Bearer`.
    Vonage {
        key: String,
        method: String,
        api_key: Option<String>,
        iat: Option<String>,
    },
}

fn sns_version() -> u8 {
    2
}

/// A signature algorithm over a template of request parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub algorithm: Algorithm,
    /// The secret (HMAC) or the private key (Ed25519 seed, P-256 scalar, or PKCS#8 PEM).
    pub key: String,
    #[serde(default)]
    pub key_encoding: KeyEncoding,
    /// Taken off the key before decoding (`whsec_`).
    #[serde(default)]
    pub key_prefix: String,
    /// What is signed: text with `{body}`, `{timestamp}`, `{id}`, `{url}`, `{method}`.
    pub message: String,
    #[serde(default)]
    pub encoding: Encoding,
    /// Written before the encoded signature (`sha256=`, `v1,`).
    #[serde(default)]
    pub prefix: String,
    /// The header that carries the signature.
    pub header: String,
    /// `{timestamp}`'s value, sent in `timestamp_header`.
    pub timestamp: Option<String>,
    pub timestamp_header: Option<String>,
    /// `{id}`'s value, sent in `id_header`.
    pub id: Option<String>,
    pub id_header: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    HmacSha256,
    HmacSha1,
    Ed25519,
    /// The signature as DER (SendGrid's form).
    EcdsaP256Sha256,
}

/// How `key` is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyEncoding {
    /// The bytes of the text itself.
    #[default]
    Text,
    Base64,
    Hex,
    /// PKCS#8, PEM (Ed25519 and P-256 private keys).
    Pem,
}

/// How the signature bytes are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    #[default]
    Base64,
    /// Lowercase.
    Hex,
}

impl Signer {
    /// Sign `req` in place (headers, and the body for Mailgun and SNS); returns what
    /// the gateway may fetch to verify it.
    pub fn sign(&self, req: &mut Request) -> Result<Vec<Served>, String> {
        match self {
            Signer::None => {}
            Signer::Template(t) => {
                let signature = t.signature(req)?;
                req.set_header(&t.header, &signature);
                let parts = [
                    (&t.timestamp_header, &t.timestamp, "timestamp"),
                    (&t.id_header, &t.id, "id"),
                ];
                for (header, value, what) in parts {
                    match (header, value) {
                        (Some(h), Some(v)) => req.set_header(h, v),
                        (Some(h), None) => return Err(format!("{h}: no `{what}` value to send")),
                        _ => {}
                    }
                }
            }
            Signer::Twilio { key } => {
                let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&req.body)
                    .map_err(|e| format!("twilio signs form parameters: {e}"))?;
                let signature = twilio(key, &req.url, &params);
                req.set_header("X-Twilio-Signature", &signature);
            }
            Signer::Mailgun { key } => {
                let mut body: serde_json::Value = serde_json::from_slice(&req.body)
                    .map_err(|e| format!("mailgun signs a JSON body: {e}"))?;
                let text = |v: &serde_json::Value| match v {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                let sig = &body["signature"];
                let (Some(timestamp), Some(token)) = (text(&sig["timestamp"]), text(&sig["token"]))
                else {
                    return Err("mailgun: the body has no signature.timestamp and .token".into());
                };
                body["signature"]["signature"] = mailgun(key, &timestamp, &token).into();
                req.body = body.to_string().into_bytes();
            }
            Signer::Sns { key, version } => {
                let mut envelope: serde_json::Value = serde_json::from_slice(&req.body)
                    .map_err(|e| format!("sns signs a JSON envelope: {e}"))?;
                if envelope["Message"].is_object() || envelope["Message"].is_array() {
                    envelope["Message"] = envelope["Message"].to_string().into();
                }
                sns(&mut envelope, key, *version)?;
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
                if let Some(url) = field {
                    return Ok(vec![Served {
                        url: url.to_string(),
                        body: sns_certificate(key).into_bytes(),
                    }]);
                }
            }
            Signer::Basic { key } => {
                req.set_header("Authorization", &basic(key));
            }
            Signer::Vonage {
                key,
                method,
                api_key,
                iat,
            } => {
                if method == "jwt" {
                    let iat = iat.as_deref().ok_or("vonage jwt: no `iat` to sign")?;
                    let token = vonage_jwt(key, iat, api_key.as_deref(), &req.body)?;
                    req.set_header("Authorization", &format!("Bearer {token}"));
                } else if req.body.first() == Some(&b'{') {
                    let mut object: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_slice(&req.body)
                            .map_err(|e| format!("vonage signs a flat JSON object: {e}"))?;
                    let params: Vec<(String, String)> = object
                        .iter()
                        .map(|(k, v)| match v {
                            serde_json::Value::String(s) => (k.clone(), s.clone()),
                            other => (k.clone(), other.to_string()),
                        })
                        .collect();
                    object.insert("sig".into(), vonage_sig(key, method, &params)?.into());
                    req.body = serde_json::Value::Object(object).to_string().into_bytes();
                } else {
                    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&req.body)
                        .map_err(|e| format!("vonage signs form parameters: {e}"))?;
                    let sig = vonage_sig(key, method, &params)?;
                    while req.body.last() == Some(&b'\n') {
                        req.body.pop();
                    }
                    req.body.extend_from_slice(format!("&sig={sig}").as_bytes());
                }
            }
        }
        Ok(Vec::new())
    }
}

impl Template {
    /// The header value: prefix and encoded signature over the rendered message.
    pub fn signature(&self, req: &Request) -> Result<String, String> {
        let message = self.render(req)?;
        let key = self.key.strip_prefix(&self.key_prefix).unwrap_or(&self.key);
        let bytes = match self.algorithm {
            Algorithm::HmacSha256 => hmac_sha256(&self.key_bytes(key)?, &message),
            Algorithm::HmacSha1 => hmac_sha1(&self.key_bytes(key)?, &message),
            Algorithm::Ed25519 => {
                use ed25519_dalek::Signer as _;
                use ed25519_dalek::pkcs8::DecodePrivateKey;
                let key = if self.key_encoding == KeyEncoding::Pem {
                    ed25519_dalek::SigningKey::from_pkcs8_der(&pem_to_der(key)?)
                        .map_err(|e| format!("ed25519 key: {e}"))?
                } else {
                    let seed: [u8; 32] = self.key_bytes(key)?.try_into().map_err(|_| {
                        "ed25519 key: a 32-byte seed (or key_encoding = \"pem\")".to_string()
                    })?;
                    ed25519_dalek::SigningKey::from_bytes(&seed)
                };
                key.sign(&message).to_bytes().to_vec()
            }
            Algorithm::EcdsaP256Sha256 => {
                use p256::ecdsa::signature::Signer as _;
                use p256::pkcs8::DecodePrivateKey;
                let key = if self.key_encoding == KeyEncoding::Pem {
                    p256::ecdsa::SigningKey::from_pkcs8_der(&pem_to_der(key)?)
                        .map_err(|e| format!("p-256 key: {e}"))?
                } else {
                    p256::ecdsa::SigningKey::from_slice(&self.key_bytes(key)?)
                        .map_err(|e| format!("p-256 key: a 32-byte scalar: {e}"))?
                };
                let signature: p256::ecdsa::Signature = key.sign(&message);
                signature.to_der().as_bytes().to_vec()
            }
        };
        let encoded = match self.encoding {
            Encoding::Base64 => B64.encode(bytes),
            Encoding::Hex => hex::encode(bytes),
        };
        Ok(format!("{}{encoded}", self.prefix))
    }

    /// The message: `self.message` with each `{part}` replaced by its bytes.
    pub fn render(&self, req: &Request) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut rest = self.message.as_str();
        while let Some(open) = rest.find('{') {
            out.extend_from_slice(&rest.as_bytes()[..open]);
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("message {:?}: an unclosed {{", self.message))?;
            let part = &rest[open + 1..open + close];
            let missing = || format!("message uses {{{part}}} but the signer has no `{part}`");
            match part {
                "body" => out.extend_from_slice(&req.body),
                "timestamp" => {
                    out.extend_from_slice(self.timestamp.as_ref().ok_or_else(missing)?.as_bytes())
                }
                "id" => out.extend_from_slice(self.id.as_ref().ok_or_else(missing)?.as_bytes()),
                "url" => out.extend_from_slice(req.url.as_bytes()),
                "method" => out.extend_from_slice(req.method.as_bytes()),
                other => {
                    return Err(format!(
                        "message {:?}: unknown part {{{other}}} (body, timestamp, id, url, method)",
                        self.message
                    ));
                }
            }
            rest = &rest[open + close + 1..];
        }
        out.extend_from_slice(rest.as_bytes());
        Ok(out)
    }

    fn key_bytes(&self, key: &str) -> Result<Vec<u8>, String> {
        match self.key_encoding {
            KeyEncoding::Text => Ok(key.as_bytes().to_vec()),
            KeyEncoding::Base64 => B64.decode(key).map_err(|e| format!("key: not base64: {e}")),
            KeyEncoding::Hex => hex::decode(key).map_err(|e| format!("key: not hex: {e}")),
            KeyEncoding::Pem => pem_to_der(key),
        }
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The DER inside a PEM block.
fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    B64.decode(b64).map_err(|e| format!("key: not PEM: {e}"))
}

/// Twilio's signature over `url` and form `params` (HMAC-SHA1, base64): parameters
/// sorted by name, a repeated name's values sorted and told once, as Twilio's SDKs do.
pub fn twilio(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut data = url.as_bytes().to_vec();
    for (name, value) in sorted {
        data.extend_from_slice(name.as_bytes());
        data.extend_from_slice(value.as_bytes());
    }
    B64.encode(hmac_sha1(token.as_bytes(), &data))
}

/// Mailgun's signature: lowercase hex HMAC-SHA256(key, timestamp + token).
pub fn mailgun(key: &str, timestamp: &str, token: &str) -> String {
    hex::encode(hmac_sha256(
        key.as_bytes(),
        format!("{timestamp}{token}").as_bytes(),
    ))
}

/// `Basic base64(user:password)`.
pub fn basic(credentials: &str) -> String {
    format!("Basic {}", B64.encode(credentials))
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

/// Vonage's SMS API signature (hex) of `params` with `method` and secret `key`.
pub fn vonage_sig(key: &str, method: &str, params: &[(String, String)]) -> Result<String, String> {
    use hmac::{KeyInit, Mac};
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "sig").collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let signed: String = sorted
        .iter()
        .map(|(k, v)| format!("&{k}={}", v.replace(['&', '='], "_")))
        .collect();
    fn mac<M: Mac + KeyInit>(key: &str, signed: &str) -> Vec<u8> {
        let mut m = <M as KeyInit>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
        m.update(signed.as_bytes());
        m.finalize().into_bytes().to_vec()
    }
    let bytes = match method {
        "md5hash" => {
            use md5::Digest;
            md5::Md5::digest(format!("{signed}{key}").as_bytes()).to_vec()
        }
        "md5" => mac::<hmac::Hmac<md5::Md5>>(key, &signed),
        "sha1" => mac::<hmac::Hmac<sha1::Sha1>>(key, &signed),
        "sha256" => mac::<hmac::Hmac<sha2::Sha256>>(key, &signed),
        "sha512" => mac::<hmac::Hmac<sha2::Sha512>>(key, &signed),
        other => {
            return Err(format!(
                "vonage: method {other:?} (md5hash, md5, sha1, sha256, sha512 or jwt)"
            ));
        }
    };
    Ok(hex::encode(bytes))
}

/// A Vonage Messages API token: HS256 over `{"alg":"HS256","typ":"JWT"}` and the claims.
pub fn vonage_jwt(
    key: &str,
    iat: &str,
    api_key: Option<&str>,
    body: &[u8],
) -> Result<String, String> {
    use sha2::Digest;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let iat: i64 = iat
        .parse()
        .map_err(|_| format!("vonage jwt: iat {iat:?} is not Unix seconds"))?;
    let mut claims = serde_json::json!({
        "iat": iat,
        "jti": format!("jti-{iat}-{}", hex::encode(sha2::Sha256::digest(body))),
        "iss": "Vonage",
        "payload_hash": hex::encode(sha2::Sha256::digest(body)),
        "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
    });
    if let Some(api_key) = api_key {
        claims["api_key"] = api_key.into();
    }
    let input = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    );
    Ok(format!(
        "{input}.{}",
        b64.encode(hmac_sha256(key.as_bytes(), input.as_bytes()))
    ))
}
