//! Normalised channel events: what a provider told us, in one shape for every provider.
//!
//! Provider modules turn verified requests into [`ChannelEvent`]s; classification turns
//! an event into a [`Decision`](crate::classify::Decision); the store applies it. Nothing
//! here does I/O.

use std::fmt;
use std::str::FromStr;

use crate::address::Address;

/// One string table for a fieldless enum, written once as `Variant => "name"` rows:
/// `ALL` (every value, in the rows' order: complete, since `as_str`'s match is
/// exhaustive), `as_str` (the name, documented by the attributes given first),
/// `from_name` (its inverse) and `Display`. Used wherever a type has a wire or configuration name, so
/// no second hand-kept list of names exists.
macro_rules! names {
    ($(#[$doc:meta])* $ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in a stable order.
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];

            $(#[$doc])*
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }

            /// The value named `name`: the inverse of `as_str`.
            pub fn from_name(name: &str) -> Option<$ty> {
                match name {
                    $($name => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use names;

/// Is `id` usable as a tenant id? It appears in URLs and inside Redis hash tags, so
/// only lower-case letters, digits, `_` and `-`, at most 64.
pub fn valid_tenant_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A messaging channel on which a contact can be put on DND.
///
/// `all` is a scope, not a channel: see [`Scope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// SMS and MMS.
    Sms,
    /// Calls and voicemail.
    Voice,
    /// WhatsApp, through Twilio or the Cloud API.
    Whatsapp,
    /// Facebook Messenger.
    Messenger,
    /// Instagram messaging.
    Instagram,
    /// Email.
    Email,
}

names! {
    /// The lower-case name used in URLs, configuration and Redis fields.
    Channel {
        Sms => "sms",
        Voice => "voice",
        Whatsapp => "whatsapp",
        Messenger => "messenger",
        Instagram => "instagram",
        Email => "email",
    }
}

/// The error for a channel name we do not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel {0:?}: expected one of sms, voice, whatsapp, messenger, instagram, email")]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::from_name(s).ok_or_else(|| UnknownChannel(s.to_string()))
    }
}

/// Where a DND record applies: one channel, or every channel of the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One channel.
    Channel(Channel),
    /// Every channel of the address.
    All,
}

impl Scope {
    /// The name used in Redis fields and URLs (`sms`, ..., `all`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Channel(c) => c.as_str(),
            Scope::All => "all",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            Ok(Scope::All)
        } else {
            s.parse().map(Scope::Channel)
        }
    }
}

/// Who told us about an event: a provider of the registry, an operator, an import or
/// the contact through an unsubscribe link. Only a name: the registry
/// (`crate::providers`), not the vocabulary, knows the providers, so this type names
/// none of them; [`Source::provider`] is how the registry makes a provider's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(&'static str);

impl Source {
    /// An operator, through the API or the CLI.
    pub const OPERATOR: Source = Source("operator");
    /// An import of an existing suppression list.
    pub const IMPORT: Source = Source("import");
    /// The contact, through an unsubscribe link (the page or one-click).
    pub const LINK: Source = Source("link");
    /// The sources that are no provider, for a reader of stored names.
    pub const NOT_PROVIDERS: [Source; 3] = [Source::OPERATOR, Source::IMPORT, Source::LINK];

    /// A provider's source, named as in its routes (`twilio`, `standard-webhooks`):
    /// `Road::SOURCE` (`crate::road`), made from the provider's own name.
    pub const fn provider(name: &'static str) -> Source {
        Source(name)
    }

    /// The lower-case name used in routes, configuration, audit entries and the spool.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// What the provider itself concluded about an inbound message (Twilio's `OptOutType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderVerdict {
    /// The provider saw an opt-out keyword.
    OptOut,
    /// The provider saw an opt-in keyword.
    OptIn,
    /// The provider saw a help keyword.
    Help,
    /// The contact asked to stop marketing messages only (WhatsApp's "Stop promotions").
    MarketingOptOut,
    /// The contact asked to receive marketing messages again.
    MarketingOptIn,
}

/// One thing a provider told us, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelEvent {
    /// Who told us.
    pub provider: Source,
    /// The provider's id for this event, unique per provider; the dedup key.
    /// For Twilio status callbacks it is `MessageSid` plus the status, because one
    /// message has several callbacks.
    pub event_id: String,
    /// When the event happened, in milliseconds since the Unix epoch. Providers that
    /// send no time (Twilio) get the time of receipt.
    pub event_time_ms: i64,
    /// The channel the event happened on.
    pub channel: Channel,
    /// The contact's normalised address on that channel.
    pub address: Address,
    /// What happened.
    pub kind: EventKind,
}

impl ChannelEvent {
    /// An event of `provider` on `channel`.
    pub fn new(
        provider: Source,
        event_id: String,
        event_time_ms: i64,
        channel: Channel,
        address: Address,
        kind: EventKind,
    ) -> ChannelEvent {
        ChannelEvent {
            provider,
            event_id,
            event_time_ms,
            channel,
            address,
            kind,
        }
    }

    /// An event on the email channel (the email providers' one shape).
    pub fn email(
        provider: Source,
        event_id: String,
        event_time_ms: i64,
        address: Address,
        kind: EventKind,
    ) -> ChannelEvent {
        ChannelEvent::new(
            provider,
            event_id,
            event_time_ms,
            Channel::Email,
            address,
            kind,
        )
    }
}

/// What happened, per kind of event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The contact sent us a message.
    Inbound {
        /// The message text as received (possibly empty, e.g. a picture only); for a
        /// tapped button or quick reply, its title or text as the contact saw it.
        body: String,
        /// The id or payload the business gave the button or quick reply the contact
        /// tapped (WhatsApp `button.payload`, `button_reply.id`, `list_reply.id`;
        /// Messenger `quick_reply.payload`, `postback.payload`): the contact's explicit
        /// choice, classified before the body. `None` for a typed message.
        payload: Option<String>,
        /// The provider's own keyword verdict, where it sends one.
        provider_verdict: Option<ProviderVerdict>,
    },
    /// The contact changed a preference without writing a message: WhatsApp's
    /// marketing preference (stop, resume), Messenger's marketing notifications, an
    /// email unsubscribe or resubscribe (`marketing_only: false`).
    Preference {
        /// The preference covers marketing messages only.
        marketing_only: bool,
        /// Stop (true) or resume (false).
        opt_out: bool,
    },
    /// The contact left (`opt_out`) or rejoined one subscription group of the sender's
    /// (SendGrid's unsubscribe groups, `asm_group_id`): recorded for that group, so the
    /// group's rejoin lifts only the group's own opt-out, never a global unsubscribe,
    /// a bounce or a complaint.
    GroupPreference {
        /// The group's id as the provider names it (digits).
        group: String,
        /// Leave (true) or rejoin (false).
        opt_out: bool,
    },
    /// The contact reported our message as spam (an email complaint).
    Complaint,
    /// A delivery status for a message we sent to the contact. For email, a bounce
    /// or other failure, with the provider's classification as the code its error
    /// table knows (`bounce`, `HardBounce`, `Permanent:General`, ...).
    DeliveryStatus {
        /// The provider's status word (`delivered`, `undelivered`, `failed`, ...).
        status: String,
        /// The provider's error code, where the status carries one.
        error_code: Option<String>,
    },
}

/// The longest event id a provider may send (Mailgun `event-data.id`, 22 characters
/// as sent; SendGrid `sg_event_id`, about 50): a longer one is refused, as it would
/// only grow the dedup marker key.
pub const MAX_EVENT_ID_LEN: usize = 256;

/// The recipients of one provider record, each read once: at most `max` are read (the
/// rest noted in `rejected` as not read), one that `read` refuses is noted as
/// `recipient INDEX: WHY`, and an address named twice counts once. Each address comes
/// back with what `read` gave beside it and the event id it takes: `id` alone when the
/// record has one recipient, `id:ADDRESS` when it has several, so that each is its own
/// event and deduplicated on its own.
pub fn recipients<T, X>(
    items: impl IntoIterator<Item = T>,
    max: usize,
    id: &str,
    rejected: &mut Vec<String>,
    mut read: impl FnMut(T) -> Result<(Address, X), String>,
) -> Vec<(String, Address, X)> {
    let mut found: Vec<(Address, X)> = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        if index >= max {
            rejected.push(format!("recipients after the first {max} were not read"));
            break;
        }
        match read(item) {
            Ok((address, x)) if !found.iter().any(|(a, _)| *a == address) => {
                found.push((address, x))
            }
            Ok(_) => {} // the same recipient twice: one event
            Err(why) => rejected.push(format!("recipient {index}: {why}")),
        }
    }
    let several = found.len() > 1;
    found
        .into_iter()
        .map(|(address, x)| {
            let event_id = if several {
                format!("{id}:{}", address.as_str())
            } else {
                id.to_string()
            };
            (event_id, address, x)
        })
        .collect()
}

/// The dedup key of `record`: the provider's own id (`given`; empty is none), else
/// the [`derived_event_id`] of its content. `None` when the given id is longer than
/// [`MAX_EVENT_ID_LEN`].
pub fn event_id_or_derived(given: Option<&str>, record: &serde_json::Value) -> Option<String> {
    match given.filter(|id| !id.is_empty()) {
        Some(id) if id.len() > MAX_EVENT_ID_LEN => None,
        Some(id) => Some(id.to_string()),
        None => Some(derived_event_id(record)),
    }
}

/// The dedup key of a provider record that lacks its own id (Mailgun `event-data.id`,
/// SendGrid `sg_event_id`, Postmark `ID`/`MessageID`, Meta's `wamid`): `sha256:` and the
/// first 16 bytes, in hex, of the SHA-256 of the record in a canonical form (object keys
/// sorted, no whitespace). A provider redelivers a record with the same content (under
/// a new signature, so nothing from the signature can serve), so the redelivery gets the
/// same key and is applied once. Such a record still carries its DND: refusing it inside
/// a 2xx would lose it for good, since no provider retries a 2xx.
pub fn derived_event_id(record: &serde_json::Value) -> String {
    use serde_json::Value;
    use sha2::{Digest, Sha256};
    fn canonical(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    canonical(&Value::String(key.clone()), out);
                    out.push(b':');
                    canonical(&map[key], out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    canonical(item, out);
                }
                out.push(b']');
            }
            scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
        }
    }
    let mut bytes = Vec::new();
    canonical(record, &mut bytes);
    format!("sha256:{}", hex::encode(&Sha256::digest(&bytes)[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(text: &str) -> Result<(Address, usize), String> {
        let address = Address::parse(Channel::Email, text).map_err(|e| e.to_string())?;
        Ok((address, text.len()))
    }

    /// (items, max, expected event ids with what read gave, expected rejected lines)
    type RecipientCase<'a> = (&'a [&'a str], usize, &'a [(&'a str, usize)], &'a [&'a str]);

    #[test]
    fn recipients_are_capped_read_once_and_named_in_the_event_id() {
        let cases: [RecipientCase<'_>; 4] = [
            (&["a@x.io"], 10, &[("m1", 6)], &[]),
            (
                &["a@x.io", "b@x.io", "A@X.IO"],
                10,
                &[("m1:a@x.io", 6), ("m1:b@x.io", 6)],
                &[],
            ),
            (
                &["a@x.io", "not an address", "b@x.io"],
                10,
                &[("m1:a@x.io", 6), ("m1:b@x.io", 6)],
                &["recipient 1: "],
            ),
            (
                &["a@x.io", "b@x.io", "c@x.io"],
                2,
                &[("m1:a@x.io", 6), ("m1:b@x.io", 6)],
                &["recipients after the first 2 were not read"],
            ),
        ];
        for (items, max, want, want_rejected) in cases {
            let mut rejected = Vec::new();
            let got = recipients(items.iter().copied(), max, "m1", &mut rejected, email);
            let got: Vec<(&str, usize)> = got.iter().map(|(id, _, n)| (id.as_str(), *n)).collect();
            assert_eq!(got, want, "{items:?}");
            assert_eq!(
                rejected.len(),
                want_rejected.len(),
                "{items:?}: {rejected:?}"
            );
            for (line, start) in rejected.iter().zip(want_rejected) {
                assert!(line.starts_with(start), "{line:?} should start {start:?}");
            }
        }
    }
}
