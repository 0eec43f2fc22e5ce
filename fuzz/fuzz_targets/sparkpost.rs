//! SparkPost event webhook batches (`[{"msys": {...}}]`): `parse`, then `normalise`.
#![no_main]

use dndgate::providers::sparkpost::normalise as sparkpost;
use dndgate_fuzz::{RECEIVED_MS, check_error, check_event, check_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match sparkpost::parse(data) {
        Ok(entries) => {
            let n = sparkpost::normalise(&entries, RECEIVED_MS);
            n.events.iter().for_each(check_event);
            n.rejected.iter().for_each(|r| check_line(r));
            n.ignored.iter().for_each(|i| check_line(i));
            assert!(n.events.len() + n.rejected.len() + n.ignored.len() == entries.len());
        }
        Err(e) => check_error(&e),
    }
});
