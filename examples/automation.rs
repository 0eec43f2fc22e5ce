//! A CRM automation on top of dndgate, in two parts.
//!
//! **React to DND changes.** Consume the tenant's audit streams with a consumer group
//! and tag or untag the contact in the CRM when DND is enabled or disabled:
//!
//! ```sh
//! cargo run --example automation -- redis://127.0.0.1:6379/ acme [GROUP [CONSUMER]]
//! ```
//!
//! Prints one line per DND change (standing in for the CRM call) and acknowledges each
//! entry once handled; Ctrl-C stops it. Run it again under the same consumer name and
//! it first finishes what it had read but not acknowledged; run several under
//! different names in one group to share the work.
//!
//! **Re-subscribe from a signup form.** When a contact submits a signup form, lift
//! their DND with the form as the consent evidence, through the operator API:
//!
//! ```sh
//! DNDGATE_API_TOKEN=... cargo run --example automation -- resubscribe \
//!     http://127.0.0.1:8080 acme sms '+14155551234' \
//!     'I agree to receive texts from Acme' https://acme.example/signup 2025-06-01T12:00:00Z
//! ```
//!
//! Arguments: gateway URL (plain HTTP), tenant, scope (a channel or `all`), address,
//! the consent text the contact agreed to, the form's URL or id, and when the form was
//! submitted (RFC 3339, or `now`). The token comes from the environment so it does not
//! show in the process list. Exits 0 when the DND was cleared, 1 when the gateway
//! refused (409: the evidence was not accepted), 2 on any other failure.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dndgate::audit::{AuditConsumer, AuditEntry, ConsumerOptions, StartFrom};
use dndgate::event::Scope;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [
            mode,
            gateway,
            tenant,
            scope,
            address,
            consent,
            reference,
            captured_at,
        ] if mode == "resubscribe" => {
            let form = SignupForm {
                scope,
                address,
                consent,
                reference,
                captured_at,
            };
            resubscribe(gateway, tenant, &form).await
        }
        [url, tenant, rest @ ..] if url != "resubscribe" && rest.len() <= 2 => {
            let group = rest.first().map_or("crm-tags", String::as_str);
            let consumer = rest.get(1).map_or("automation-1", String::as_str);
            react(url, tenant, group, consumer).await
        }
        _ => {
            eprintln!(
                "usage: automation REDIS_URL TENANT [GROUP [CONSUMER]]\n       \
                 automation resubscribe GATEWAY_URL TENANT SCOPE ADDRESS CONSENT_TEXT \
                 FORM_URL_OR_ID SUBMITTED_AT (token in DNDGATE_API_TOKEN)"
            );
            ExitCode::from(2)
        }
    }
}

/// Consume the audit streams until Ctrl-C.
async fn react(url: &str, tenant: &str, group: &str, consumer: &str) -> ExitCode {
    // A new group starts with the entries the streams still hold, so changes made
    // before the automation was first deployed are not missed.
    let options = ConsumerOptions {
        start: StartFrom::Beginning,
        ..ConsumerOptions::default()
    };
    let mut audit = match AuditConsumer::connect(url, tenant, group, consumer, options).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot join the audit streams: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("consuming the audit streams of {tenant} as {group}/{consumer}; Ctrl-C stops");
    loop {
        // Stopping mid-read loses nothing: what Redis delivered stays pending on this
        // consumer and comes back first at the next start.
        let batch = tokio::select! {
            batch = audit.next_batch(100, Duration::from_secs(5)) => batch,
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut handled = Vec::new();
        for (stream, item) in batch {
            match item {
                Ok(entry) => match update_crm(&entry) {
                    Ok(()) => handled.push((stream, entry.id)),
                    // Left unacknowledged: it comes back after a restart, or another
                    // worker claims it.
                    Err(e) => eprintln!("{} {}: {e}", entry.address, entry.event_id),
                },
                // An entry no one can read would come back for ever: log it, then
                // acknowledge it.
                Err(bad) => {
                    eprintln!("skipping {bad}");
                    handled.push((stream, bad.id));
                }
            }
        }
        if let Err(e) = audit.ack(&handled).await {
            eprintln!("ack failed ({e}); these entries will be handled again");
        }
    }
}

/// The CRM side, simulated with one printed line per DND change. Entries that change
/// no DND (superseded, refused, help requests) need nothing.
fn update_crm(entry: &AuditEntry) -> Result<(), String> {
    let why = format!("{}, {} {}", entry.reason, entry.provider, entry.event_id);
    if entry.dnd_enabled() {
        // A temporary block ends without an audit entry: untag it then.
        let until = match entry.after.as_ref().and_then(|r| r.expires_ms) {
            Some(ms) => format!(" until {}", rfc3339(ms)),
            None => String::new(),
        };
        println!(
            "tag    {} dnd-{}{until} ({why})",
            entry.address, entry.scope
        );
    } else if entry.dnd_disabled() {
        println!("untag  {} dnd-{} ({why})", entry.address, entry.scope);
    }
    Ok(())
}

/// What a signup form captured.
struct SignupForm<'a> {
    scope: &'a str,
    address: &'a str,
    consent: &'a str,
    reference: &'a str,
    captured_at: &'a str,
}

/// Clear the DND with the form as consent evidence: `DELETE
/// /v1/tenants/{t}/dnd/{scope}/{address}`.
async fn resubscribe(gateway: &str, tenant: &str, form: &SignupForm<'_>) -> ExitCode {
    let Ok(token) = std::env::var("DNDGATE_API_TOKEN") else {
        eprintln!("set DNDGATE_API_TOKEN to the tenant's API token");
        return ExitCode::from(2);
    };
    if let Err(e) = form.scope.parse::<Scope>() {
        eprintln!("{e} (or all)");
        return ExitCode::from(2);
    }
    let captured_at = if form.captured_at == "now" {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        rfc3339(now.as_millis() as i64)
    } else {
        form.captured_at.to_string()
    };
    let body = serde_json::json!({
        "actor": "signup-form",
        "evidence": {
            "agreed": form.consent,
            "captured_at": captured_at,
            "method": "web form",
            "reference": form.reference,
        },
    });
    let uri = format!(
        "{}/v1/tenants/{}/dnd/{}/{}",
        gateway.trim_end_matches('/'),
        encode(tenant),
        form.scope,
        encode(form.address)
    );
    let request = hyper::Request::delete(&uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())));
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bad gateway URL {uri:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let client = Client::builder(TokioExecutor::new()).build_http();
    let answer = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, String::from_utf8_lossy(&body).into_owned()))
    };
    match tokio::time::timeout(Duration::from_secs(10), answer).await {
        Ok(Ok((200, body))) => {
            println!("cleared {} on {}: {body}", form.address, form.scope);
            ExitCode::SUCCESS
        }
        Ok(Ok((409, body))) => {
            println!("refused: {body}");
            ExitCode::from(1)
        }
        Ok(Ok((status, body))) => {
            eprintln!("gateway answered {status}: {body}");
            ExitCode::from(2)
        }
        Ok(Err(e)) => {
            eprintln!("cannot reach the gateway at {gateway}: {e}");
            ExitCode::from(2)
        }
        Err(_) => {
            eprintln!("no answer from the gateway at {gateway} within 10 s");
            ExitCode::from(2)
        }
    }
}

/// Percent-encode a path segment: addresses carry `+`, `@`, `:` and, as typed, spaces.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Milliseconds since the epoch as an RFC 3339 UTC time (civil-from-days, so the
/// example needs no date crate).
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}
