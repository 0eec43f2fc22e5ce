//! Amazon SES provider: the SNS envelope that carries every SES notification, and the
//! SES bounce and complaint notifications inside it, normalised to channel events.
//! Verification of an envelope is [`super::verify`]; this module never touches
//! Redis and never knows hyper.
//!
//! SES publishes to an SNS topic, and SNS posts each message to our HTTPS subscription
//! as a JSON envelope ([`Envelope`]) whose `Message` field is a string: for a
//! `Notification`, the SES notification's own JSON. The road is
//!
//! 1. [`parse_envelope`] the raw body (SNS sends `text/plain`, but it is JSON);
//! 2. the gateway checks the `TopicArn` against the tenants' allow-lists and verifies
//!    the envelope's signature;
//! 3. for a `Notification`, [`normalise`] reads the SES notification in `Message`.
//!
//! What becomes an event: `Bounce` (identity notifications name it in
//! `notificationType`, configuration-set event publishing in `eventType`; both are read)
//! gives one [`EventKind::DeliveryStatus`] per bounced recipient, with the code
//! `bounceType:bounceSubType` (`Permanent:General`, `Transient:MailboxFull`, ...) that
//! `providers/ses.toml` classifies. `Complaint` gives one [`EventKind::Complaint`] per
//! complained recipient, except for an ARF `not-spam` report, which says the opposite of
//! a complaint. `Subscription` (SES list management: the contact changed their
//! preferences for a contact list, e.g. through the one-click unsubscribe SES adds)
//! gives one [`EventKind::Preference`] opt-out per `mail.destination` address: a full
//! unsubscribe when `newTopicPreferences.unsubscribeAll` is true (the tenant's
//! `email_unsubscribe_scope` decides what it blocks), a marketing-only one when a topic
//! went to `OptOut`; an opt-in gives nothing, since a list change (the sender's API can
//! make one) is no consent to lift a DND. Everything else (`Delivery`, `Send`, `Open`, `DeliveryDelay`, the
//! `AmazonSnsSubscriptionSucceeded` notice SES sends when a topic is attached, ...) is
//! ignored and reported, so SNS gets a 2xx and does not retry it.
//!
//! Event ids, the dedup keys, are `SNS MessageId:recipient`: SNS keeps the `MessageId`
//! across its retries, so the same message delivered twice is applied once, and one
//! bounce naming several recipients still gives each its own event.

use serde_json::{Map, Value};

use super::SOURCE;
use crate::address::Address;
use crate::error::Error;
use crate::event::{Channel, ChannelEvent, EventKind};

/// The header in which SNS repeats the envelope's `Type`.
pub const MESSAGE_TYPE_HEADER: &str = "x-amz-sns-message-type";

/// Longest `Signature` we read: base64 of a 4096-bit RSA signature is 684 characters.
/// Anything longer is not an SNS signature, and refusing it bounds the work.
const MAX_SIGNATURE_LEN: usize = 1024;

/// The kind of an SNS message: its `Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A message published to the topic (for us, an SES notification).
    Notification,
    /// Sent once when the subscription is created: confirm it by fetching
    /// `SubscribeURL`.
    SubscriptionConfirmation,
    /// Sent when the subscription is deleted.
    UnsubscribeConfirmation,
}

crate::event::names! {
    /// The `Type` value SNS sends.
    MessageType {
        Notification => "Notification",
        SubscriptionConfirmation => "SubscriptionConfirmation",
        UnsubscribeConfirmation => "UnsubscribeConfirmation",
    }
}

/// An SNS message as posted to an HTTP/S subscription: every field the signature and
/// the gateway need, as the exact strings received (the signature covers them as
/// received, so nothing is trimmed or re-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `Type`.
    pub message_type: MessageType,
    /// `MessageId`: unique per published message and kept across SNS retries.
    pub message_id: String,
    /// `TopicArn`: the topic the message was published to; routes it to a tenant.
    pub topic_arn: String,
    /// `Subject`, when present and not null (notifications only).
    pub subject: Option<String>,
    /// `Message`: for a notification, the SES notification as a JSON string.
    pub message: String,
    /// `Timestamp`: when SNS published the message (ISO 8601, UTC).
    pub timestamp: String,
    /// `SignatureVersion`: `1` (SHA1withRSA) or `2` (SHA256withRSA).
    pub signature_version: String,
    /// `Signature`: base64.
    pub signature: String,
    /// `SigningCertURL`: where the signing certificate is.
    pub signing_cert_url: String,
    /// `SubscribeURL` (confirmations only).
    pub subscribe_url: Option<String>,
    /// `Token` (confirmations only).
    pub token: Option<String>,
}

/// Parse an SNS envelope from the raw body.
///
/// Refused with 400: a body that is not a JSON object; a missing or non-string `Type`,
/// `MessageId`, `TopicArn`, `Message`, `Timestamp`, `SignatureVersion`, `Signature` or
/// `SigningCertURL`; an unknown `Type`; a confirmation without `SubscribeURL` or `Token`;
/// a signature too long to be one. The spellings `SigningCertUrl` and `SubscribeUrl`
/// are accepted too (SNS uses them in the payloads it hands to Lambda). A raw-delivery
/// message (no envelope) is refused here: it carries no signature, so it can never be
/// trusted.
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, Error> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("SNS message body is not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(Error::bad_request("SNS message body is not a JSON object"));
    };
    let kind = required(&fields, &["Type"])?;
    let message_type = MessageType::from_name(&kind).ok_or_else(|| {
        Error::bad_request(format!(
            "unknown SNS message Type {kind:?}: expected Notification, SubscriptionConfirmation or UnsubscribeConfirmation"
        ))
    })?;
    let signature = required(&fields, &["Signature"])?;
    if signature.len() > MAX_SIGNATURE_LEN {
        return Err(Error::bad_request(
            "SNS Signature is too long to be an RSA signature",
        ));
    }
    let confirmation = message_type != MessageType::Notification;
    let for_confirmation = |names: &[&str]| -> Result<Option<String>, Error> {
        if confirmation {
            required(&fields, names).map(Some)
        } else {
            Ok(None)
        }
    };
    Ok(Envelope {
        message_type,
        message_id: required(&fields, &["MessageId"])?,
        topic_arn: required(&fields, &["TopicArn"])?,
        subject: optional(&fields, &["Subject"])?,
        message: required(&fields, &["Message"])?,
        timestamp: required(&fields, &["Timestamp"])?,
        signature_version: required(&fields, &["SignatureVersion"])?,
        signature,
        signing_cert_url: required(&fields, &["SigningCertURL", "SigningCertUrl"])?,
        subscribe_url: for_confirmation(&["SubscribeURL", "SubscribeUrl"])?,
        token: for_confirmation(&["Token"])?,
    })
}

/// The first of `names` present as a string.
fn required(fields: &Map<String, Value>, names: &[&str]) -> Result<String, Error> {
    optional(fields, names)?
        .ok_or_else(|| Error::bad_request(format!("SNS message has no {}", names[0])))
}

/// The first of `names` present; null counts as absent (Lambda-style `Subject: null`).
fn optional(fields: &Map<String, Value>, names: &[&str]) -> Result<Option<String>, Error> {
    match names.iter().find_map(|n| fields.get(*n)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::bad_request(format!(
            "SNS message field {} is not a string",
            names[0]
        ))),
    }
}

/// What one SES notification taught us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalised {
    /// The events, one per recipient, in the order of the notification.
    pub events: Vec<ChannelEvent>,
    /// Recipients that could not be read, one line each (`recipient 1: ...`). The
    /// others are still applied: SNS would redeliver the same message, so refusing it
    /// would lose the good recipients with the bad.
    pub rejected: Vec<String>,
    /// Why the notification gives no event by design (`notification type Delivery is
    /// ignored`), for the answer and the log.
    pub ignored: Option<String>,
}

/// Normalise the SES notification in a verified `Notification` envelope, received at
/// `received_ms`.
///
/// Refused with 400: a `Message` that is not a JSON object, that names no
/// `notificationType` or `eventType`, or a bounce or complaint without its
/// `bounce`/`complaint` object or recipient list. The event time is the bounce's or
/// complaint's own `timestamp`, else the SNS `Timestamp`, else the time of receipt.
pub fn normalise(envelope: &Envelope, received_ms: i64) -> Result<Normalised, Error> {
    let notification: Value = serde_json::from_str(&envelope.message).map_err(|e| {
        Error::bad_request(format!(
            "SNS Message is not an SES notification (not JSON: {e})"
        ))
    })?;
    let Value::Object(notification) = notification else {
        return Err(Error::bad_request(
            "SNS Message is not an SES notification (not a JSON object)",
        ));
    };
    let kind = ["notificationType", "eventType"]
        .iter()
        .find_map(|k| notification.get(*k).and_then(Value::as_str))
        .ok_or_else(|| {
            Error::bad_request("SES notification has no notificationType or eventType")
        })?;
    let fallback_ms = parse_iso8601_ms(&envelope.timestamp).unwrap_or(received_ms);
    // One event per recipient, keyed by the notification and the address.
    let event = |address: Address, time: i64, kind: EventKind| {
        let event_id = format!("{}:{}", envelope.message_id, address.as_str());
        ChannelEvent::email(SOURCE, event_id, time, address, kind)
    };
    let mut out = Normalised::default();
    match kind {
        "Bounce" => {
            let bounce = object(&notification, "bounce")?;
            let bounce_type = text(bounce, "bounceType").unwrap_or("Undetermined");
            let sub_type = text(bounce, "bounceSubType").unwrap_or("Undetermined");
            let code = format!("{bounce_type}:{sub_type}");
            let time = event_time(bounce, fallback_ms);
            for_each_recipient(bounce, "bouncedRecipients", &mut out, |address| {
                let kind = EventKind::DeliveryStatus {
                    status: "bounce".to_string(),
                    error_code: Some(code.clone()),
                };
                event(address, time, kind)
            })?;
        }
        "Complaint" => {
            let complaint = object(&notification, "complaint")?;
            // An ARF report of type not-spam is the recipient saying the message is
            // wanted: reading it as a complaint would block the one person who asked
            // not to be.
            if text(complaint, "complaintFeedbackType")
                .is_some_and(|t| t.eq_ignore_ascii_case("not-spam"))
            {
                out.ignored = Some("complaint feedback type not-spam is not a complaint".into());
                return Ok(out);
            }
            let time = event_time(complaint, fallback_ms);
            for_each_recipient(complaint, "complainedRecipients", &mut out, |address| {
                event(address, time, EventKind::Complaint)
            })?;
        }
        "Subscription" => {
            let subscription = object(&notification, "subscription")?;
            let Some(marketing_only) = subscription_opt_out(subscription) else {
                out.ignored = Some("SES subscription change opts nothing out".into());
                return Ok(out);
            };
            let time = event_time(subscription, fallback_ms);
            let destination = notification
                .get("mail")
                .and_then(|mail| mail.get("destination"))
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    Error::bad_request("SES Subscription event has no mail.destination array")
                })?;
            for (i, recipient) in destination.iter().enumerate() {
                let parsed = recipient
                    .as_str()
                    .ok_or_else(|| "not a string".to_string())
                    .and_then(|raw| {
                        Address::parse(Channel::Email, bare_address(raw)).map_err(|e| e.to_string())
                    });
                match parsed {
                    Ok(address) => out.events.push(event(
                        address,
                        time,
                        EventKind::Preference {
                            marketing_only,
                            opt_out: true,
                        },
                    )),
                    Err(e) => out.rejected.push(format!("mail.destination {i}: {e}")),
                }
            }
        }
        other => {
            out.ignored = Some(format!("SES notification type {other:?} is ignored"));
        }
    }
    Ok(out)
}

/// What a `subscription` object opts out of: `Some(false)` for the whole list
/// (`newTopicPreferences.unsubscribeAll`), `Some(true)` for a topic whose new status is
/// an opt-out and whose old one was not (marketing only: the contact still takes the
/// rest of the sender's mail), `None` for a change that opts nothing out. SES writes the
/// status `OptOut` in events and `OPT_OUT` in its API; both are read.
fn subscription_opt_out(subscription: &Value) -> Option<bool> {
    let prefs = |which: &str| subscription.get(which);
    let unsubscribe_all = |p: Option<&Value>| {
        p.and_then(|p| p.get("unsubscribeAll"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let new = prefs("newTopicPreferences");
    if unsubscribe_all(new) {
        return Some(false);
    }
    let opted_out = |p: Option<&Value>, topic: &str| {
        p.and_then(|p| p.get("topicSubscriptionStatus"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|t| text(t, "topicName") == Some(topic))
            .any(|t| {
                text(t, "subscriptionStatus")
                    .is_some_and(|s| s.replace('_', "").eq_ignore_ascii_case("optout"))
            })
    };
    let old = prefs("oldTopicPreferences");
    let topics = new
        .and_then(|p| p.get("topicSubscriptionStatus"))
        .and_then(Value::as_array)?;
    topics
        .iter()
        .filter_map(|t| text(t, "topicName"))
        .any(|topic| opted_out(new, topic) && !opted_out(old, topic))
        .then_some(true)
}

fn object<'a>(notification: &'a Map<String, Value>, key: &str) -> Result<&'a Value, Error> {
    notification
        .get(key)
        .filter(|v| v.is_object())
        .ok_or_else(|| Error::bad_request(format!("SES notification has no {key} object")))
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn event_time(detail: &Value, fallback_ms: i64) -> i64 {
    text(detail, "timestamp")
        .and_then(parse_iso8601_ms)
        .unwrap_or(fallback_ms)
}

/// Turn each `list[].emailAddress` into an event with `make`; unreadable recipients go
/// to `out.rejected`.
fn for_each_recipient(
    detail: &Value,
    list: &str,
    out: &mut Normalised,
    make: impl Fn(Address) -> ChannelEvent,
) -> Result<(), Error> {
    let recipients = detail
        .get(list)
        .and_then(Value::as_array)
        .ok_or_else(|| Error::bad_request(format!("SES notification has no {list} array")))?;
    for (i, recipient) in recipients.iter().enumerate() {
        let Some(raw) = text(recipient, "emailAddress") else {
            out.rejected
                .push(format!("{list} {i}: no emailAddress string"));
            continue;
        };
        match Address::parse(Channel::Email, bare_address(raw)) {
            Ok(address) => out.events.push(make(address)),
            Err(e) => out.rejected.push(format!("{list} {i}: {e}")),
        }
    }
    Ok(())
}

/// The address inside `Name <address>`; SES normally sends the bare address, but the
/// recipient is copied from the message, where a display name is allowed.
fn bare_address(raw: &str) -> &str {
    let raw = raw.trim();
    match (raw.rfind('<'), raw.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        _ => raw,
    }
}

/// Milliseconds since the Unix epoch of an ISO 8601 time as SES and SNS write them
/// (`2016-01-27T14:59:38.237Z`); `None` for anything else.
pub fn parse_iso8601_ms(s: &str) -> Option<i64> {
    crate::time::parse_rfc3339_ms(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(message: &Value) -> Envelope {
        Envelope {
            message_type: MessageType::Notification,
            message_id: "mid-1".into(),
            topic_arn: "arn:aws:sns:us-east-1:123456789012:ses".into(),
            subject: None,
            message: message.to_string(),
            timestamp: "2024-05-01T10:00:00.000Z".into(),
            signature_version: "2".into(),
            signature: "c2ln".into(),
            signing_cert_url: "https://sns.us-east-1.amazonaws.com/x.pem".into(),
            subscribe_url: None,
            token: None,
        }
    }

    /// One row: the notification, the (event id, kind) pairs it gives, how many
    /// recipients are rejected, and whether it is ignored by design.
    type Row = (Value, Vec<(&'static str, EventKind)>, usize, bool);

    /// Normalise each row's notification and check it against the row; what each gave,
    /// for the caller's own checks.
    fn check_rows(rows: Vec<Row>) -> Vec<Normalised> {
        let mut out = Vec::new();
        for (message, want, rejected, ignored) in rows {
            let got = normalise(&envelope(&message), 0).unwrap();
            let events: Vec<(&str, EventKind)> = got
                .events
                .iter()
                .map(|e| (e.event_id.as_str(), e.kind.clone()))
                .collect();
            assert_eq!(events, want, "{message}");
            let lines = &got.rejected;
            assert_eq!(lines.len(), rejected, "{message}: {lines:?}");
            assert_eq!(got.ignored.is_some(), ignored, "{message}");
            out.push(got);
        }
        out
    }

    #[test]
    fn notifications_table() {
        let bounce = |t: &str, s: &str, to: &[&str]| {
            let list: Vec<Value> = to.iter().map(|a| json!({"emailAddress": a})).collect();
            json!({"notificationType": "Bounce", "bounce": {"bounceType": t, "bounceSubType": s,
                "bouncedRecipients": list, "timestamp": "2024-05-01T09:59:00.500Z"},
                "mail": {"messageId": "m"}})
        };
        let status = |code: &str| EventKind::DeliveryStatus {
            status: "bounce".into(),
            error_code: Some(code.into()),
        };
        let cases: Vec<Row> = vec![
            (
                bounce("Permanent", "General", &["Jane@Example.com"]),
                vec![("mid-1:jane@example.com", status("Permanent:General"))],
                0,
                false,
            ),
            (
                bounce(
                    "Transient",
                    "MailboxFull",
                    &["a@x.io", "not an address", "b@x.io"],
                ),
                vec![
                    ("mid-1:a@x.io", status("Transient:MailboxFull")),
                    ("mid-1:b@x.io", status("Transient:MailboxFull")),
                ],
                1,
                false,
            ),
            (
                bounce("Permanent", "NoEmail", &["\"Bob\" <Bob@X.io>"]),
                vec![("mid-1:bob@x.io", status("Permanent:NoEmail"))],
                0,
                false,
            ),
            (
                json!({"eventType": "Bounce", "bounce": {"bounceType": "Undetermined",
                    "bounceSubType": "Undetermined", "bouncedRecipients": [{"emailAddress": "c@x.io"}]}}),
                vec![("mid-1:c@x.io", status("Undetermined:Undetermined"))],
                0,
                false,
            ),
            (
                json!({"notificationType": "Complaint", "complaint": {"complainedRecipients":
                    [{"emailAddress": "d@x.io"}, {"nope": 1}], "complaintFeedbackType": "abuse"}}),
                vec![("mid-1:d@x.io", EventKind::Complaint)],
                1,
                false,
            ),
            (
                json!({"notificationType": "Complaint", "complaint": {"complainedRecipients":
                    [{"emailAddress": "d@x.io"}], "complaintFeedbackType": "not-spam"}}),
                vec![],
                0,
                true,
            ),
            (
                json!({"notificationType": "Delivery", "delivery": {"recipients": ["e@x.io"]}}),
                vec![],
                0,
                true,
            ),
            (json!({"eventType": "Open", "open": {}}), vec![], 0, true),
            (
                json!({"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "ok"}),
                vec![],
                0,
                true,
            ),
        ];
        for got in check_rows(cases) {
            for e in &got.events {
                assert_eq!((e.provider, e.channel), (SOURCE, Channel::Email));
            }
        }
    }

    /// Issue 12 item 16: SES `Subscription` events in the shape of AWS's example.
    #[test]
    fn item_16_subscription_events_table() {
        let sub = |to: Value, new: Value, old: Value| {
            json!({"eventType": "Subscription",
                "mail": {"messageId": "m", "destination": to},
                "subscription": {"contactList": "ContactListName",
                    "timestamp": "2022-01-12T01:00:17.910Z", "source": "UnsubscribeHeader",
                    "newTopicPreferences": new, "oldTopicPreferences": old}})
        };
        let topic = |s: &str| json!([{"topicName": "News", "subscriptionStatus": s}]);
        let prefs = |all: bool, s: &str| json!({"unsubscribeAll": all, "topicSubscriptionStatus": topic(s)});
        let stop = |marketing_only| EventKind::Preference {
            marketing_only,
            opt_out: true,
        };
        let cases: Vec<Row> = vec![
            (
                sub(
                    json!(["Ann@X.io"]),
                    prefs(true, "OptOut"),
                    prefs(false, "OptOut"),
                ),
                vec![("mid-1:ann@x.io", stop(false))],
                0,
                false,
            ),
            (
                sub(
                    json!(["b@x.io"]),
                    json!({"unsubscribeAll": true}),
                    json!({}),
                ),
                vec![("mid-1:b@x.io", stop(false))],
                0,
                false,
            ),
            (
                sub(
                    json!(["c@x.io"]),
                    prefs(false, "OPT_OUT"),
                    prefs(false, "OPT_IN"),
                ),
                vec![("mid-1:c@x.io", stop(true))],
                0,
                false,
            ),
            (
                sub(json!(["d@x.io"]), prefs(false, "OptOut"), json!({})),
                vec![("mid-1:d@x.io", stop(true))],
                0,
                false,
            ),
            (
                sub(
                    json!(["e@x.io", "nope"]),
                    prefs(true, "OptOut"),
                    prefs(false, "OptIn"),
                ),
                vec![("mid-1:e@x.io", stop(false))],
                1,
                false,
            ),
            (
                sub(
                    json!(["f@x.io"]),
                    prefs(false, "OptIn"),
                    prefs(true, "OptOut"),
                ),
                vec![],
                0,
                true,
            ),
            (
                sub(
                    json!(["g@x.io"]),
                    prefs(false, "OptOut"),
                    prefs(false, "OptOut"),
                ),
                vec![],
                0,
                true,
            ),
        ];
        for got in check_rows(cases) {
            for e in &got.events {
                assert_eq!(e.event_time_ms, 1_641_949_217_910, "the change's own time");
            }
        }
        for broken in [
            json!({"eventType": "Subscription", "mail": {"destination": ["a@x.io"]}}),
            json!({"eventType": "Subscription", "subscription": {"newTopicPreferences": {"unsubscribeAll": true}}}),
        ] {
            let err = normalise(&envelope(&broken), 0).unwrap_err();
            assert_eq!(err.kind, crate::error::Kind::BadRequest, "{broken}");
        }
    }

    #[test]
    fn event_time_is_the_bounce_time_else_the_sns_time() {
        let with = json!({"notificationType": "Bounce", "bounce": {"bounceType": "Permanent",
            "bounceSubType": "General", "timestamp": "2024-05-01T09:59:00.500Z",
            "bouncedRecipients": [{"emailAddress": "a@x.io"}]}});
        let got = normalise(&envelope(&with), 7).unwrap();
        assert_eq!(got.events[0].event_time_ms, 1_714_557_540_500);
        let mut without = with.clone();
        without["bounce"]["timestamp"] = json!("yesterday");
        let got = normalise(&envelope(&without), 7).unwrap();
        assert_eq!(got.events[0].event_time_ms, 1_714_557_600_000);
        let mut env = envelope(&without);
        env.timestamp = "garbage".into();
        assert_eq!(normalise(&env, 7).unwrap().events[0].event_time_ms, 7);
    }

    #[test]
    fn unreadable_notifications_are_400() {
        for message in [
            "Hello world".to_string(),
            "[1]".to_string(),
            json!({"mail": {}}).to_string(),
            json!({"notificationType": "Bounce"}).to_string(),
            json!({"notificationType": "Bounce", "bounce": {"bounceType": "Permanent"}})
                .to_string(),
            json!({"notificationType": "Complaint", "complaint": {}}).to_string(),
        ] {
            let mut env = envelope(&json!({}));
            env.message = message.clone();
            let err = normalise(&env, 0).unwrap_err();
            assert_eq!(err.kind, crate::error::Kind::BadRequest, "{message}");
        }
    }

    #[test]
    fn envelope_fields_and_refusals() {
        let base = json!({"Type": "SubscriptionConfirmation", "MessageId": "m", "Token": "t",
            "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic", "Message": "You have chosen...",
            "SubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
            "Timestamp": "2012-04-26T20:45:04.751Z", "SignatureVersion": "1", "Signature": "abc=",
            "SigningCertURL": "https://sns.us-west-2.amazonaws.com/c.pem"});
        let env = parse_envelope(base.to_string().as_bytes()).unwrap();
        assert_eq!(env.message_type, MessageType::SubscriptionConfirmation);
        assert_eq!(env.token.as_deref(), Some("t"));
        assert!(env.subscribe_url.is_some() && env.subject.is_none());

        let mut lambda = base.clone();
        lambda["Type"] = json!("Notification");
        lambda["Subject"] = Value::Null;
        let url = lambda
            .as_object_mut()
            .unwrap()
            .remove("SigningCertURL")
            .unwrap();
        lambda["SigningCertUrl"] = url;
        let env = parse_envelope(lambda.to_string().as_bytes()).unwrap();
        assert_eq!(env.subject, None);
        assert_eq!(env.token, None, "notifications carry no token");

        let broken: Vec<Value> = vec![
            json!([]),
            {
                let mut v = base.clone();
                v["Type"] = json!("Hello");
                v
            },
            {
                let mut v = base.clone();
                v.as_object_mut().unwrap().remove("Token");
                v
            },
            {
                let mut v = base.clone();
                v.as_object_mut().unwrap().remove("MessageId");
                v
            },
            {
                let mut v = base.clone();
                v["Timestamp"] = json!(5);
                v
            },
            {
                let mut v = base.clone();
                v["Signature"] = json!("A".repeat(2000));
                v
            },
        ];
        for body in broken {
            let err = parse_envelope(body.to_string().as_bytes()).unwrap_err();
            assert_eq!(err.kind, crate::error::Kind::BadRequest, "{body}");
        }
        assert!(parse_envelope(b"not json").is_err());
    }

    /// SES and SNS times are RFC 3339 (the spellings are tested with the parser, in
    /// `time`).
    #[test]
    fn iso8601_is_rfc3339() {
        assert_eq!(
            parse_iso8601_ms("2022-07-28T21:23:58.317Z"),
            Some(1_659_043_438_317)
        );
        assert_eq!(parse_iso8601_ms("2024-01-01T00:00:00"), None);
    }
}
