//! Invariants shared by the fuzz targets in `fuzz_targets/`.

use dndgate::address::Address;
use dndgate::error::Error;
use dndgate::event::ChannelEvent;

/// The time of receipt every target passes: 2026-01-01T00:00:00Z.
pub const RECEIVED_MS: i64 = 1_767_225_600_000;

/// An error a parser returns for bad input: a 4xx with a one-line, non-empty message.
pub fn check_error(e: &Error) {
    let status = e.kind.status();
    assert!(
        (400..500).contains(&status),
        "bad input gave {status}: {e:?}"
    );
    check_line(&e.message);
}

/// A message for a log line or an answer: one line, not empty.
pub fn check_line(message: &str) {
    assert!(!message.trim().is_empty(), "empty error message");
    assert!(
        !message.contains('\n') && !message.contains('\r'),
        "error message spans lines: {message:?}"
    );
}

/// A normalised event: its address is normalised (parsing it again on its channel
/// gives it back) and it names itself.
pub fn check_event(event: &ChannelEvent) {
    check_address(event.channel, &event.address);
    assert!(!event.event_id.is_empty(), "event without an id: {event:?}");
}

/// A normalised address re-parses to itself on its channel.
pub fn check_address(channel: dndgate::event::Channel, address: &Address) {
    let again = Address::parse(channel, address.as_str())
        .unwrap_or_else(|e| panic!("{channel:?} {address:?} does not re-parse: {e}"));
    assert_eq!(&again, address, "{channel:?} address is not idempotent");
    assert!(address.as_str().len() <= dndgate::address::MAX_LEN);
}
