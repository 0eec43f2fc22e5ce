//! The compact signed token of an unsubscribe link.
//!
//! The layout is a contract, because tokens go out in emails and texts and must keep
//! verifying for as long as their key is kept. A token is the base64url encoding,
//! without padding, of:
//!
//! | bytes  | field          | meaning                                                          |
//! |--------|----------------|------------------------------------------------------------------|
//! | 1      | `kid`          | the id of the key that signed the token                          |
//! | 8      | `link_id`      | names the (tenant, address) record the server keeps ([`link_id`]) |
//! | 1      | `scope`        | 0 = all, 1..=6 = sms, voice, whatsapp, messenger, instagram, email |
//! | 4      | `expires`      | big-endian Unix minutes at which the link lapses; 0 = never       |
//! | 1      | `campaign_len` | 0..=12                                                           |
//! | 0..=12 | `campaign`     | ASCII `[A-Za-z0-9_-]`                                            |
//! | 12     | `mac`          | the first 12 bytes of HMAC-SHA256(key\[kid\], every byte before it) |
//!
//! That is 27 to 39 bytes, so 36 to 52 characters: always within the
//! [`MAX_TOKEN_CHARS`] an SMS link allows.
//!
//! [`verify`] finds the MAC by the decoded length alone, picks the key by `kid`, and
//! compares the MAC in constant time before it reads any other field: a field is never
//! trusted, and never named in an error, unless the key's holder wrote it.
//!
//! Rotation: add a new key to the [`KeyRing`] and make it current; keep the old one until
//! every link it signed may have lapsed. Removing a key retires every token it signed
//! ([`TokenError::UnknownKey`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::event::{Channel, Scope};
use crate::secret::{Secret, constant_time_eq};

/// The longest token [`verify`] decodes, in characters: what an SMS link leaves for it.
/// A token from [`mint`] is at most 52.
pub const MAX_TOKEN_CHARS: usize = 64;

/// The longest campaign a token carries, in bytes.
pub const MAX_CAMPAIGN_LEN: usize = 12;

/// The shortest key a [`KeyRing`] accepts, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// The length of the truncated HMAC-SHA256 at the end of a token, in bytes.
pub const MAC_LEN: usize = 12;

/// `kid`, `link_id`, `scope`, `expires`, `campaign_len`.
const HEADER_LEN: usize = 1 + 8 + 1 + 4 + 1;
const MIN_TOKEN_BYTES: usize = HEADER_LEN + MAC_LEN;
const MAX_TOKEN_BYTES: usize = MIN_TOKEN_BYTES + MAX_CAMPAIGN_LEN;

/// What [`link_id`] signs before the tenant. Tenant ids are `[a-z0-9_-]` (see
/// [`valid_tenant_id`](crate::config::valid_tenant_id)), so this input can never also
/// be the signed part of a token, whose tenth byte is a scope byte (0..=6).
const LINK_ID_CONTEXT: &[u8] = b"link-id\0";

type HmacSha256 = Hmac<Sha256>;

/// Why a key ring could not be built, a token could not be minted, or a token was
/// refused. Messages are one line and never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not one [`mint`] could have produced: too long, not base64url, the
    /// wrong length, or (under a valid MAC) a bad scope or campaign.
    #[error("malformed link token: {0}")]
    Malformed(&'static str),
    /// The token names a key id that is not in the ring: retired or never known.
    #[error(
        "link token signed by key id {0}, which is not in the key ring (retired or never configured)"
    )]
    UnknownKey(u8),
    /// The MAC does not match under the key the token names: forged or altered.
    #[error("link token signature does not match: the token was forged or altered")]
    Forged,
    /// The token is genuine but its expiry minute has begun.
    #[error("link token expired at Unix minute {at_min}")]
    Expired {
        /// The Unix minute from which the link no longer works.
        at_min: u32,
    },
    /// The claims cannot be put in a token (campaign too long or with other
    /// characters, an expiry of minute 0).
    #[error("cannot mint a link token: {0}")]
    InvalidClaims(&'static str),
    /// A key ring needs at least one key.
    #[error("the link key ring is empty: configure at least one key")]
    EmptyRing,
    /// The key chosen to sign with is not in the ring.
    #[error("the current link key id {0} is not in the key ring")]
    CurrentKeyMissing(u8),
    /// Two keys share an id, so a token could not say which one signed it.
    #[error("link key id {0} appears more than once in the key ring")]
    DuplicateKey(u8),
    /// A key is too short to resist guessing.
    #[error("link key id {kid} is shorter than {min} bytes", min = MIN_KEY_LEN)]
    ShortKey {
        /// The id of the short key.
        kid: u8,
    },
}

/// The keys that sign and verify link tokens, by one-byte id, and the id new tokens are
/// signed with. A key's bytes are its secret's text as configured.
#[derive(Debug, Clone)]
pub struct KeyRing {
    /// Sorted by id, ids unique.
    keys: Vec<(u8, Secret)>,
    current: u8,
}

impl KeyRing {
    /// Build a ring from `(id, secret)` pairs, signing new tokens with `current`.
    ///
    /// Refuses an empty ring, a `current` id not in it, an id given twice, and a secret
    /// shorter than [`MIN_KEY_LEN`] bytes.
    pub fn new(
        keys: impl IntoIterator<Item = (u8, Secret)>,
        current: u8,
    ) -> Result<KeyRing, TokenError> {
        let mut ring: Vec<(u8, Secret)> = Vec::new();
        for (kid, secret) in keys {
            if ring.iter().any(|(k, _)| *k == kid) {
                return Err(TokenError::DuplicateKey(kid));
            }
            if secret.expose().len() < MIN_KEY_LEN {
                return Err(TokenError::ShortKey { kid });
            }
            ring.push((kid, secret));
        }
        if ring.is_empty() {
            return Err(TokenError::EmptyRing);
        }
        if !ring.iter().any(|(k, _)| *k == current) {
            return Err(TokenError::CurrentKeyMissing(current));
        }
        ring.sort_by_key(|(k, _)| *k);
        Ok(KeyRing {
            keys: ring,
            current,
        })
    }

    /// The id of the key that signs new tokens.
    pub fn current_id(&self) -> u8 {
        self.current
    }

    /// The ids of every key in the ring, in ascending order.
    pub fn key_ids(&self) -> impl Iterator<Item = u8> + '_ {
        self.keys.iter().map(|(k, _)| *k)
    }

    fn key(&self, kid: u8) -> Option<&Secret> {
        self.keys.iter().find(|(k, _)| *k == kid).map(|(_, s)| s)
    }

    fn current_key(&self) -> &Secret {
        self.key(self.current)
            .expect("KeyRing::new checked that the current key is in the ring")
    }
}

/// What a link token says: which record, which scope, until when, for which campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    /// Names the (tenant, address) record the server keeps; see [`link_id`].
    pub link_id: [u8; 8],
    /// The scope the contact leaves by following the link.
    pub scope: Scope,
    /// The Unix minute from which the link no longer works (exclusive: the link works
    /// until the millisecond before it); `None` for a link that never expires.
    pub expires_min: Option<u32>,
    /// The campaign the link was sent in: 1 to [`MAX_CAMPAIGN_LEN`] bytes of
    /// `[A-Za-z0-9_-]`.
    pub campaign: Option<String>,
}

/// Mint a token for `claims`, signed with the ring's current key.
///
/// Refuses a campaign that is empty, longer than [`MAX_CAMPAIGN_LEN`] bytes or holds a
/// character outside `[A-Za-z0-9_-]`, and an expiry of `Some(0)` (which the layout
/// reserves for "never": use `None`).
pub fn mint(ring: &KeyRing, claims: &LinkClaims) -> Result<String, TokenError> {
    let campaign = match claims.campaign.as_deref() {
        None => &[][..],
        Some("") => {
            return Err(TokenError::InvalidClaims(
                "the campaign is empty: use None for no campaign",
            ));
        }
        Some(c) if c.len() > MAX_CAMPAIGN_LEN => {
            return Err(TokenError::InvalidClaims(
                "the campaign is longer than 12 bytes",
            ));
        }
        Some(c) if !c.bytes().all(is_campaign_byte) => {
            return Err(TokenError::InvalidClaims(
                "the campaign may hold only A-Z, a-z, 0-9, '_' and '-'",
            ));
        }
        Some(c) => c.as_bytes(),
    };
    let expires = match claims.expires_min {
        None => 0,
        Some(0) => {
            return Err(TokenError::InvalidClaims(
                "expiry minute 0 means never in a token: use None",
            ));
        }
        Some(minute) => minute,
    };

    let mut bytes = Vec::with_capacity(MAX_TOKEN_BYTES);
    bytes.push(ring.current);
    bytes.extend_from_slice(&claims.link_id);
    bytes.push(scope_byte(claims.scope));
    bytes.extend_from_slice(&expires.to_be_bytes());
    bytes.push(u8::try_from(campaign.len()).expect("checked above: at most 12"));
    bytes.extend_from_slice(campaign);
    let mac = token_mac(ring.current_key(), &bytes);
    bytes.extend_from_slice(&mac);
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Verify `token` at `now_ms` (milliseconds since the Unix epoch) and return its claims.
///
/// A token over [`MAX_TOKEN_CHARS`] characters is refused before decoding. The MAC is
/// compared in constant time under the key the token names before any other field is
/// read. A token is [`Expired`](TokenError::Expired) from the first millisecond of its
/// expiry minute on: the boundary is exclusive.
pub fn verify(ring: &KeyRing, token: &str, now_ms: i64) -> Result<LinkClaims, TokenError> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(TokenError::Malformed("longer than 64 characters"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| TokenError::Malformed("not base64url without padding"))?;
    if !(MIN_TOKEN_BYTES..=MAX_TOKEN_BYTES).contains(&bytes.len()) {
        return Err(TokenError::Malformed("wrong length"));
    }
    let (signed, given) = bytes.split_at(bytes.len() - MAC_LEN);
    let kid = signed[0];
    let key = ring.key(kid).ok_or(TokenError::UnknownKey(kid))?;
    if !constant_time_eq(&token_mac(key, signed), given) {
        return Err(TokenError::Forged);
    }

    // From here on every byte is the key holder's.
    let link_id: [u8; 8] = signed[1..9].try_into().expect("the length was checked");
    let scope = scope_from_byte(signed[9]).ok_or(TokenError::Malformed("unknown scope byte"))?;
    let expires = u32::from_be_bytes(signed[10..14].try_into().expect("the length was checked"));
    let campaign = &signed[HEADER_LEN..];
    if usize::from(signed[14]) != campaign.len() {
        return Err(TokenError::Malformed(
            "the campaign length does not match the token length",
        ));
    }
    if !campaign.iter().copied().all(is_campaign_byte) {
        return Err(TokenError::Malformed(
            "the campaign holds a byte outside A-Z, a-z, 0-9, '_' and '-'",
        ));
    }
    if expires != 0 && now_ms >= i64::from(expires) * 60_000 {
        return Err(TokenError::Expired { at_min: expires });
    }
    Ok(LinkClaims {
        link_id,
        scope,
        expires_min: (expires != 0).then_some(expires),
        campaign: (!campaign.is_empty())
            .then(|| campaign.iter().copied().map(char::from).collect()),
    })
}

/// The link id of `address` at `tenant`: the first 8 bytes of HMAC-SHA256 under the
/// ring's current key of `link-id\0`, the tenant, `\0` and the address.
///
/// Deterministic, so minting twice for one contact reuses one server-side record; keyed,
/// so it reveals nothing about the address. It follows the current key: after a
/// rotation the same contact gets a new id (and so a new record), while links with the
/// old id keep verifying as long as the old key is kept.
pub fn link_id(ring: &KeyRing, tenant: &str, address: &str) -> [u8; 8] {
    let mut mac = new_mac(ring.current_key());
    mac.update(LINK_ID_CONTEXT);
    mac.update(tenant.as_bytes());
    mac.update(b"\0");
    mac.update(address.as_bytes());
    let digest: [u8; 32] = mac.finalize().into_bytes().into();
    digest[..8]
        .try_into()
        .expect("a SHA-256 digest has 32 bytes")
}

fn new_mac(key: &Secret) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new_from_slice(key.expose().as_bytes())
        .expect("HMAC takes a key of any length")
}

/// The first [`MAC_LEN`] bytes of HMAC-SHA256(key, signed).
fn token_mac(key: &Secret, signed: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = new_mac(key);
    mac.update(signed);
    let digest: [u8; 32] = mac.finalize().into_bytes().into();
    digest[..MAC_LEN]
        .try_into()
        .expect("a SHA-256 digest has 32 bytes")
}

fn is_campaign_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The scope byte of the layout. Spelled out rather than derived from
/// [`Channel::ALL`], so reordering channels cannot change tokens already sent.
fn scope_byte(scope: Scope) -> u8 {
    match scope {
        Scope::All => 0,
        Scope::Channel(Channel::Sms) => 1,
        Scope::Channel(Channel::Voice) => 2,
        Scope::Channel(Channel::Whatsapp) => 3,
        Scope::Channel(Channel::Messenger) => 4,
        Scope::Channel(Channel::Instagram) => 5,
        Scope::Channel(Channel::Email) => 6,
    }
}

fn scope_from_byte(b: u8) -> Option<Scope> {
    Some(match b {
        0 => Scope::All,
        1 => Scope::Channel(Channel::Sms),
        2 => Scope::Channel(Channel::Voice),
        3 => Scope::Channel(Channel::Whatsapp),
        4 => Scope::Channel(Channel::Messenger),
        5 => Scope::Channel(Channel::Instagram),
        6 => Scope::Channel(Channel::Email),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_1: &str = "k1-0123456789abcdef-test-only";
    const KEY_2: &str = "k2-fedcba9876543210-test-only";
    /// 2026-01-01T00:00:00Z in milliseconds.
    const NOW_MS: i64 = 1_767_225_600_000;
    const NOW_MIN: u32 = (NOW_MS / 60_000) as u32;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    fn ring_1() -> KeyRing {
        KeyRing::new([(1, Secret::new(KEY_1))], 1).unwrap()
    }

    fn every_scope() -> Vec<Scope> {
        let mut scopes = vec![Scope::All];
        scopes.extend(Channel::ALL.map(Scope::Channel));
        scopes
    }

    fn claims(scope: Scope, expires_min: Option<u32>, campaign: Option<&str>) -> LinkClaims {
        LinkClaims {
            link_id: [0xA5, 1, 2, 3, 4, 5, 6, 0xFF],
            scope,
            expires_min,
            campaign: campaign.map(str::to_string),
        }
    }

    /// A token of arbitrary signed bytes under a valid MAC, for what `mint` never writes.
    fn sign_raw(key: &str, signed: &[u8]) -> String {
        let mut bytes = signed.to_vec();
        bytes.extend_from_slice(&token_mac(&Secret::new(key), signed));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Every token shape the tests attack: shortest, longest, with and without expiry.
    fn sample_tokens() -> Vec<(String, LinkClaims)> {
        let ring = ring_1();
        [
            claims(Scope::All, None, None),
            claims(
                Scope::Channel(Channel::Sms),
                Some(NOW_MIN + 60),
                Some("spring-26"),
            ),
            claims(
                Scope::Channel(Channel::Email),
                Some(u32::MAX),
                Some("ABCdef_-0129"),
            ),
        ]
        .into_iter()
        .map(|c| (mint(&ring, &c).unwrap(), c))
        .collect()
    }

    #[test]
    fn round_trip_every_scope_with_and_without_campaign_and_expiry() {
        let ring = ring_1();
        for scope in every_scope() {
            for expires in [None, Some(1), Some(NOW_MIN + 1), Some(u32::MAX)] {
                for campaign in [None, Some("x"), Some("spring-26"), Some("ABCdef_-0129")] {
                    let c = claims(scope, expires, campaign);
                    let token = mint(&ring, &c).unwrap();
                    let bytes = 27 + campaign.map_or(0, str::len);
                    assert_eq!(token.len(), (bytes * 4).div_ceil(3), "{c:?}");
                    // Minute 1 is long past: only the clock at the epoch accepts it.
                    let now = if expires == Some(1) { 59_999 } else { NOW_MS };
                    assert_eq!(verify(&ring, &token, now), Ok(c));
                }
            }
        }
    }

    #[test]
    fn scope_bytes_are_the_contract() {
        let ring = ring_1();
        let table = [
            (Scope::All, 0),
            (Scope::Channel(Channel::Sms), 1),
            (Scope::Channel(Channel::Voice), 2),
            (Scope::Channel(Channel::Whatsapp), 3),
            (Scope::Channel(Channel::Messenger), 4),
            (Scope::Channel(Channel::Instagram), 5),
            (Scope::Channel(Channel::Email), 6),
        ];
        for (scope, byte) in table {
            let token = mint(&ring, &claims(scope, None, None)).unwrap();
            let bytes = URL_SAFE_NO_PAD.decode(token).unwrap();
            assert_eq!(bytes[9], byte, "{scope}");
        }
    }

    /// The layout, pinned byte for byte: the MAC was computed outside Rust (Python's
    /// `hmac`), so a change to the format or the MAC input fails here.
    #[test]
    fn known_vector() {
        let ring = KeyRing::new([(7, Secret::new("0123456789abcdef"))], 7).unwrap();
        let c = LinkClaims {
            link_id: [1, 2, 3, 4, 5, 6, 7, 8],
            scope: Scope::Channel(Channel::Whatsapp),
            expires_min: Some(0x0102_0304),
            campaign: Some("ab".into()),
        };
        let token = mint(&ring, &c).unwrap();
        assert_eq!(token, KNOWN_TOKEN);
        assert_eq!(verify(&ring, KNOWN_TOKEN, 0), Ok(c));
    }
    const KNOWN_TOKEN: &str = "BwECAwQFBgcIAwECAwQCYWK7nHyo_BUtyodZ9tY";

    #[test]
    fn every_single_character_change_is_rejected() {
        let ring = ring_1();
        for (token, _) in sample_tokens() {
            for pos in 0..token.len() {
                for &c in ALPHABET {
                    if token.as_bytes()[pos] == c {
                        continue;
                    }
                    let mut changed = token.clone().into_bytes();
                    changed[pos] = c;
                    let changed = String::from_utf8(changed).unwrap();
                    let result = verify(&ring, &changed, NOW_MS);
                    assert!(result.is_err(), "{changed} verified as {result:?}");
                }
            }
        }
    }

    #[test]
    fn truncated_and_extended_tokens_are_rejected() {
        let ring = ring_1();
        for (token, c) in sample_tokens() {
            assert_eq!(verify(&ring, &token, NOW_MS), Ok(c));
            for end in 0..token.len() {
                assert!(verify(&ring, &token[..end], NOW_MS).is_err(), "{end}");
                assert!(verify(&ring, &token[1 + end..], NOW_MS).is_err(), "{end}");
            }
            for extra in 1..=MAX_TOKEN_CHARS + 1 - token.len() {
                for &c in ALPHABET {
                    let longer = format!("{token}{}", char::from(c).to_string().repeat(extra));
                    assert!(verify(&ring, &longer, NOW_MS).is_err(), "{longer}");
                }
            }
            for suffix in ["=", "==", " ", "\n", "%3D"] {
                assert!(verify(&ring, &format!("{token}{suffix}"), NOW_MS).is_err());
            }
        }
    }

    #[test]
    fn malformed_tokens_name_what_is_wrong() {
        let ring = ring_1();
        let cases: &[(&str, &str)] = &[
            // Not even valid base64: still refused for its length first.
            (&"!".repeat(65), "longer than 64 characters"),
            (&"A".repeat(65), "longer than 64 characters"),
            (&"A".repeat(64), "wrong length"),
            (&"A".repeat(37), "not base64url without padding"),
            ("", "wrong length"),
            (&"A".repeat(32), "wrong length"),
            (&"A".repeat(56), "wrong length"),
            ("AAAA+AAA", "not base64url without padding"),
            ("AAAA/AAA", "not base64url without padding"),
            ("AAAAAA==", "not base64url without padding"),
            ("AAAA AAA", "not base64url without padding"),
            ("AAAAAAé", "not base64url without padding"),
        ];
        for (token, why) in cases {
            assert_eq!(
                verify(&ring, token, NOW_MS),
                Err(TokenError::Malformed(why)),
                "{token:?}"
            );
        }
    }

    #[test]
    fn fields_are_checked_after_the_mac() {
        let ring = ring_1();
        let header = |scope: u8, campaign_len: u8| {
            vec![1, 0, 0, 0, 0, 0, 0, 0, 0, scope, 0, 0, 0, 0, campaign_len]
        };
        let with = |mut b: Vec<u8>, tail: &[u8]| {
            b.extend_from_slice(tail);
            b
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (header(7, 0), "unknown scope byte"),
            (header(255, 0), "unknown scope byte"),
            (
                with(header(0, 3), b"ab"),
                "the campaign length does not match the token length",
            ),
            (
                with(header(0, 1), b"ab"),
                "the campaign length does not match the token length",
            ),
            (
                header(0, 1),
                "the campaign length does not match the token length",
            ),
            (
                with(header(0, 2), b"a "),
                "the campaign holds a byte outside A-Z, a-z, 0-9, '_' and '-'",
            ),
            (
                with(header(0, 2), b"a."),
                "the campaign holds a byte outside A-Z, a-z, 0-9, '_' and '-'",
            ),
            (
                with(header(0, 1), &[0xC3]),
                "the campaign holds a byte outside A-Z, a-z, 0-9, '_' and '-'",
            ),
        ];
        for (signed, why) in cases {
            let token = sign_raw(KEY_1, &signed);
            assert_eq!(
                verify(&ring, &token, NOW_MS),
                Err(TokenError::Malformed(why)),
                "{signed:?}"
            );
            // The same bytes under a wrong MAC say only that the MAC is wrong.
            let forged = sign_raw(KEY_2, &signed);
            assert_eq!(verify(&ring, &forged, NOW_MS), Err(TokenError::Forged));
        }
    }

    #[test]
    fn rotation_keeps_old_links_until_their_key_is_removed() {
        let old = ring_1();
        let c = claims(Scope::Channel(Channel::Voice), None, Some("q3"));
        let token = mint(&old, &c).unwrap();

        let rotated = KeyRing::new([(1, Secret::new(KEY_1)), (2, Secret::new(KEY_2))], 2).unwrap();
        assert_eq!(verify(&rotated, &token, NOW_MS), Ok(c.clone()));
        let new_token = mint(&rotated, &c).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(&new_token).unwrap()[0], 2);
        assert_eq!(verify(&rotated, &new_token, NOW_MS), Ok(c.clone()));

        let retired = KeyRing::new([(2, Secret::new(KEY_2))], 2).unwrap();
        assert_eq!(
            verify(&retired, &token, NOW_MS),
            Err(TokenError::UnknownKey(1))
        );
        assert_eq!(verify(&retired, &new_token, NOW_MS), Ok(c.clone()));
        assert_eq!(
            verify(&old, &new_token, NOW_MS),
            Err(TokenError::UnknownKey(2))
        );
    }

    #[test]
    fn another_key_under_the_same_id_is_forged() {
        let token = mint(&ring_1(), &claims(Scope::All, None, None)).unwrap();
        let impostor = KeyRing::new([(1, Secret::new(KEY_2))], 1).unwrap();
        assert_eq!(verify(&impostor, &token, NOW_MS), Err(TokenError::Forged));
    }

    #[test]
    fn expiry_is_exclusive_at_the_minute_boundary() {
        let ring = ring_1();
        let at = NOW_MIN + 10;
        let c = claims(Scope::All, Some(at), None);
        let token = mint(&ring, &c).unwrap();
        let boundary_ms = i64::from(at) * 60_000;
        let table = [
            (i64::MIN, Ok(c.clone())),
            (0, Ok(c.clone())),
            (boundary_ms - 60_000, Ok(c.clone())),
            (boundary_ms - 1, Ok(c.clone())),
            (boundary_ms, Err(TokenError::Expired { at_min: at })),
            (boundary_ms + 1, Err(TokenError::Expired { at_min: at })),
            (i64::MAX, Err(TokenError::Expired { at_min: at })),
        ];
        for (now, want) in table {
            assert_eq!(verify(&ring, &token, now), want, "at {now}");
        }
        // A link that never expires works at the end of time.
        let never = mint(&ring, &claims(Scope::All, None, None)).unwrap();
        assert!(verify(&ring, &never, i64::MAX).is_ok());
    }

    #[test]
    fn the_longest_token_fits_an_sms_link() {
        let ring = ring_1();
        let c = claims(
            Scope::Channel(Channel::Instagram),
            Some(u32::MAX),
            Some("abcdefghijkl"),
        );
        let token = mint(&ring, &c).unwrap();
        assert_eq!(token.len(), 52);
        assert!(token.len() <= MAX_TOKEN_CHARS);
        assert!(token.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(verify(&ring, &token, NOW_MS), Ok(c));
        let shortest = mint(&ring, &claims(Scope::All, None, None)).unwrap();
        assert_eq!(shortest.len(), 36);
    }

    #[test]
    fn mint_refuses_claims_a_token_cannot_carry() {
        let ring = ring_1();
        let table: &[(Option<&str>, Option<u32>, &str)] = &[
            (
                Some("abcdefghijklm"),
                None,
                "the campaign is longer than 12 bytes",
            ),
            (
                Some(""),
                None,
                "the campaign is empty: use None for no campaign",
            ),
            (
                Some("spring 26"),
                None,
                "the campaign may hold only A-Z, a-z, 0-9, '_' and '-'",
            ),
            (
                Some("été"),
                None,
                "the campaign may hold only A-Z, a-z, 0-9, '_' and '-'",
            ),
            (
                Some("a+b"),
                None,
                "the campaign may hold only A-Z, a-z, 0-9, '_' and '-'",
            ),
            (
                Some("a/b.c"),
                None,
                "the campaign may hold only A-Z, a-z, 0-9, '_' and '-'",
            ),
            (
                None,
                Some(0),
                "expiry minute 0 means never in a token: use None",
            ),
        ];
        for (campaign, expires, why) in table {
            let c = claims(Scope::All, *expires, *campaign);
            assert_eq!(
                mint(&ring, &c),
                Err(TokenError::InvalidClaims(why)),
                "{c:?}"
            );
        }
    }

    #[test]
    fn link_id_is_stable_and_separates_tenants_and_addresses() {
        let ring = ring_1();
        let id = link_id(&ring, "acme", "+14155550100");
        assert_eq!(id, link_id(&ring, "acme", "+14155550100"));
        assert_eq!(id, link_id(&ring_1(), "acme", "+14155550100"));
        let others = [
            link_id(&ring, "globex", "+14155550100"),
            link_id(&ring, "acme", "+14155550101"),
            link_id(&ring, "acm", "e+14155550100"),
            link_id(&ring, "acme+", "14155550100"),
            link_id(&ring, "", "acme+14155550100"),
        ];
        for other in others {
            assert_ne!(id, other);
        }
        // Keyed: another current key gives another id; an old key in the ring does not
        // matter.
        let rotated = KeyRing::new([(1, Secret::new(KEY_1)), (2, Secret::new(KEY_2))], 2).unwrap();
        assert_ne!(id, link_id(&rotated, "acme", "+14155550100"));
        let still_1 = KeyRing::new([(1, Secret::new(KEY_1)), (2, Secret::new(KEY_2))], 1).unwrap();
        assert_eq!(id, link_id(&still_1, "acme", "+14155550100"));
    }

    #[test]
    fn key_ring_construction_errors() {
        let long = |s: &str| Secret::new(format!("{s}-0123456789abcdef"));
        type Keys = Vec<(u8, Secret)>;
        let table: Vec<(Keys, u8, Result<(), TokenError>)> = vec![
            (vec![], 0, Err(TokenError::EmptyRing)),
            (
                vec![(1, long("a"))],
                2,
                Err(TokenError::CurrentKeyMissing(2)),
            ),
            (
                vec![(1, long("a")), (1, long("b"))],
                1,
                Err(TokenError::DuplicateKey(1)),
            ),
            (
                vec![(1, long("a")), (3, Secret::new("fifteen-bytes!!"))],
                1,
                Err(TokenError::ShortKey { kid: 3 }),
            ),
            (
                vec![(4, Secret::new(""))],
                4,
                Err(TokenError::ShortKey { kid: 4 }),
            ),
            (vec![(0, Secret::new("sixteen-bytes!!!"))], 0, Ok(())),
            (
                vec![(9, long("a")), (255, long("b")), (0, long("c"))],
                255,
                Ok(()),
            ),
        ];
        for (keys, current, want) in table {
            let ids: Vec<u8> = keys.iter().map(|(k, _)| *k).collect();
            let got = KeyRing::new(keys, current);
            assert_eq!(
                got.as_ref().map(|_| ()),
                want.as_ref().map(|_| ()),
                "{ids:?}"
            );
            if let Ok(ring) = got {
                assert_eq!(ring.current_id(), current);
                let mut sorted = ids.clone();
                sorted.sort_unstable();
                assert_eq!(ring.key_ids().collect::<Vec<_>>(), sorted);
            }
        }
    }

    #[test]
    fn no_message_or_debug_shows_key_material() {
        let ring = ring_1();
        let errors = [
            TokenError::Malformed("wrong length"),
            TokenError::UnknownKey(9),
            TokenError::Forged,
            TokenError::Expired { at_min: 5 },
            TokenError::InvalidClaims("x"),
            TokenError::EmptyRing,
            TokenError::CurrentKeyMissing(1),
            TokenError::DuplicateKey(1),
            TokenError::ShortKey { kid: 1 },
        ];
        for e in errors {
            let text = e.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert!(!text.contains(KEY_1), "{text}");
        }
        assert_eq!(
            TokenError::ShortKey { kid: 3 }.to_string(),
            "link key id 3 is shorter than 16 bytes"
        );
        assert!(!format!("{ring:?}").contains(KEY_1));
    }
}
