//! Amazon SES through SNS: the envelope (`parse_envelope`), the string SNS signs, the
//! certificate and subscribe URL checks, and the SES notification (`normalise`).
#![no_main]

use dndgate::providers::ses::normalise as ses;
use dndgate::providers::ses::verify as sns;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let envelope = match ses::parse_envelope(data) {
        Ok(e) => e,
        Err(e) => return check_error(&e),
    };
    let signed = sns::string_to_sign(&envelope);
    assert!(signed.contains(&envelope.message_id));
    let hosts = ["sns.*.amazonaws.com".to_string()];
    if sns::cert_url_allowed(&envelope.signing_cert_url, &hosts).is_ok() {
        assert!(
            envelope
                .signing_cert_url
                .to_ascii_lowercase()
                .starts_with("https://")
        );
    }
    if let Some(url) = &envelope.subscribe_url
        && let Err(why) = sns::subscribe_url_allowed(url, &hosts)
    {
        check_line(&why);
    }
    let _ = ses::parse_iso8601_ms(&envelope.timestamp);
    match ses::normalise(&envelope, RECEIVED_MS) {
        Ok(n) => {
            n.events.iter().for_each(check_event);
            n.rejected.iter().for_each(|r| check_line(r));
        }
        Err(e) => check_error(&e),
    }
});
