//! A sender's check before each message, with the Rust lookup API.
//!
//! ```sh
//! cargo run --example sender -- redis://127.0.0.1:6380/ acme sms '+1 (415) 555-1234' '+14155550000'
//! ```
//!
//! Prints one line per address and exits 0 when every address may be sent to, 1 when
//! any is on DND, 2 when the store cannot answer (then nothing may be sent).

use std::process::ExitCode;

use dndgate::event::Channel;
use dndgate::lookup::Lookup;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, tenant, channel, addresses @ ..] = args.as_slice() else {
        eprintln!("usage: sender REDIS_URL TENANT CHANNEL ADDRESS...");
        return ExitCode::from(2);
    };
    let channel: Channel = match channel.parse() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let dnd = match Lookup::connect(url) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // One round trip for the whole list; an Err means "unknown": send nothing.
    let verdicts = match dnd.check_many(tenant, channel, addresses).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("cannot check DND, not sending: {e}");
            return ExitCode::from(2);
        }
    };
    let mut any_blocked = false;
    for (address, verdict) in addresses.iter().zip(verdicts) {
        match verdict {
            Ok(v) if v.blocked => {
                any_blocked = true;
                let reason = v.record.map(|r| r.reason).unwrap_or_default();
                println!("{address}: DND ({reason}), do not send");
            }
            Ok(_) => println!("{address}: send"),
            Err(e) => {
                any_blocked = true;
                println!("{address}: not an address ({e}), do not send");
            }
        }
    }
    ExitCode::from(u8::from(any_blocked))
}
