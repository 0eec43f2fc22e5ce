//! SignalWire compatibility-API (cXML) form webhooks: `parse_form`, `project_id`,
//! `is_project_id`, `normalise`.
#![no_main]

use dndgate::providers::signalwire::normalise as signalwire;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = match signalwire::parse_form(data) {
        Ok(p) => p,
        Err(e) => return check_error(&e),
    };
    if let Some(id) = signalwire::project_id(&params) {
        if signalwire::is_project_id(id) {
            assert_eq!(id.len(), 36, "a project id is a UUID");
        }
    }
    match signalwire::normalise(&params, RECEIVED_MS) {
        Ok(n) => {
            n.events.iter().for_each(check_event);
            for e in &n.events {
                assert_eq!(e.provider.as_str(), "signalwire");
            }
            n.rejected.iter().for_each(|r| check_line(r));
        }
        Err(e) => check_error(&e),
    }
});
