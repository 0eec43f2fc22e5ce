//! Signing webhooks the way providers do: for `dndgate simulate`, and for the tests'
//! fixture folders (`tests/providers/`), which use this same code.
//!
//! A [`Signer`] is data: a fixture folder's `cases.toml` writes one as a `sign` table
//! (`tests/providers/README.md`). Most schemes are a [`Template`]: an algorithm and a key
//! over a message made of request parts (`{timestamp}.{body}`), encoded, prefixed and put
//! into a header. The rest cannot be said that way and have a name each: Twilio (the URL
//! plus the sorted form parameters), Mailgun (the signature object inside the body) and
//! HTTP basic auth. (SNS, whose signature rests on a certificate AWS serves, is signed
//! only by the tests, which serve one: `tests/common/sign.rs`.)
//!
//! Written independently of the providers' verifiers, which never call it, so a test
//! cannot pass by sharing their bug; `tests/providers.rs` checks it against the
//! providers' published vectors.

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
    /// HTTP basic auth (Postmark): `key` is `user:password`.
    Basic { key: String },
    /// Plivo V3: base64 HMAC-SHA256(auth token `key`, URL without its query, `?`, the
    /// query's parameters sorted as `name=value&...`, `.` when both, the form
    /// parameters sorted as `namevalue...`, then `.` and `nonce`) in
    /// `X-Plivo-Signature-V3`, the nonce in `X-Plivo-Signature-V3-Nonce`.
    Plivo {
        key: String,
        #[serde(default = "plivo_nonce")]
        nonce: String,
    },
    /// Mandrill: base64 HMAC-SHA1(webhook key `key`, URL + each form parameter's name
    /// and value, sorted by name) in `X-Mandrill-Signature`.
    Mandrill { key: String },
    /// SignalWire's compatibility API: Twilio's signature (see [`twilio`]) with the
    /// project's Signing Key `key`, in `X-SignalWire-Signature`.
    Signalwire { key: String },
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

fn plivo_nonce() -> String {
    "31627761595286130198".into()
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
    /// Sign `req` in place (its headers, and the body for Mailgun).
    pub fn sign(&self, req: &mut Request) -> Result<(), String> {
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
                } else if req.method == "GET" {
                    let query = req.url.split_once('?').map_or("", |(_, q)| q);
                    let params: Vec<(String, String)> = serde_urlencoded::from_str(query)
                        .map_err(|e| format!("vonage signs query parameters: {e}"))?;
                    let sig = vonage_sig(key, method, &params)?;
                    req.url = format!("{}&sig={sig}", req.url);
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
            Signer::Signalwire { key } => {
                let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&req.body)
                    .map_err(|e| format!("signalwire signs form parameters: {e}"))?;
                let signature = twilio(key, &req.url, &params);
                req.set_header("X-SignalWire-Signature", &signature);
            }
            Signer::Mandrill { key } => {
                let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&req.body)
                    .map_err(|e| format!("mandrill signs form parameters: {e}"))?;
                let signature = mandrill(key, &req.url, &params);
                req.set_header("X-Mandrill-Signature", &signature);
            }
            Signer::Plivo { key, nonce } => {
                // A GET's parameters are in the URL's query, which `plivo` signs.
                let params: Vec<(String, String)> = if req.method == "GET" {
                    Vec::new()
                } else {
                    serde_urlencoded::from_bytes(&req.body)
                        .map_err(|e| format!("plivo signs form parameters: {e}"))?
                };
                let signature = plivo(key, &req.url, &params, nonce)?;
                req.set_header("X-Plivo-Signature-V3", &signature);
                req.set_header("X-Plivo-Signature-V3-Nonce", nonce);
            }
        }
        Ok(())
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

/// Plivo's V3 signature of a POST to `url` with form `params` and `nonce` (HMAC-SHA256,
/// base64), as Plivo's SDKs rebuild it: values sorted within a name, the query decoded.
pub fn plivo(
    token: &str,
    url: &str,
    params: &[(String, String)],
    nonce: &str,
) -> Result<String, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut query: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| format!("plivo: the URL's query is not a form: {e}"))?;
    query.sort();
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = base.to_string();
    if !query.is_empty() || !sorted.is_empty() {
        data.push('?');
    }
    data.push_str(&query.join("&"));
    if !query.is_empty() && !sorted.is_empty() {
        data.push('.');
    }
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    data.push('.');
    data.push_str(nonce);
    Ok(B64.encode(hmac_sha256(token.as_bytes(), data.as_bytes())))
}

/// Mandrill's signature over `url` and form `params` (HMAC-SHA1, base64): the URL, then
/// each parameter's name and value, sorted by name (a stable sort: a repeated name keeps
/// its order), as Mandrill's "How to Authenticate Webhook Requests" describes.
pub fn mandrill(key: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut data = url.as_bytes().to_vec();
    for (name, value) in sorted {
        data.extend_from_slice(name.as_bytes());
        data.extend_from_slice(value.as_bytes());
    }
    B64.encode(hmac_sha1(key.as_bytes(), &data))
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
