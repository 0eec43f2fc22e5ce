//! The console's HTML: server-rendered, no script (the pages forbid every script by
//! their Content-Security-Policy), readable at phone width. Pure: the caller supplies
//! what each page shows, already in words.

use crate::links::page::escape;
use crate::state::EVIDENCE_METHODS;

/// The accent colour, the unsubscribe page's default.
const ACCENT: &str = "#0b5fff";

/// A whole page: the chrome (tenant, search, overview, sign-out) when signed in.
pub fn document(title: &str, signed_in: Option<(&str, &str)>, body: &str) -> String {
    let chrome = match signed_in {
        Some((tenant, csrf)) => format!(
            r#"<header>
<a class="brand" href="/console/overview">dndgate</a> <span class="tenant">{tenant}</span>
<form class="search" method="get" action="/console/search" role="search">
<label for="q" class="visually-hidden">Phone, email, page id or contact id</label>
<input id="q" name="q" type="search" placeholder="Phone, email, PAGE_ID:USER_ID or contact id" required>
<button type="submit">Search</button>
</form>
<form class="signout" method="post" action="/console/logout">
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" class="link">Sign out</button>
</form>
</header>
"#,
            tenant = escape(tenant),
            csrf = escape(csrf),
        ),
        None => String::new(),
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<meta name="referrer" content="no-referrer">
<title>{title} · dndgate console</title>
<style>
* {{ box-sizing: border-box; }}
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #1a1a1a; background: #f6f7f9; }}
header {{ display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; padding: .75rem 1.25rem; background: #fff; border-bottom: 1px solid #e2e5ea; }}
.brand {{ font-weight: 700; color: {ACCENT}; text-decoration: none; }}
.tenant {{ color: #555; }}
.search {{ display: flex; gap: .5rem; flex: 1 1 18rem; }}
.search input {{ flex: 1; min-width: 0; }}
.signout {{ margin-left: auto; }}
main {{ max-width: 64rem; margin: 1.25rem auto; padding: 0 1rem; }}
section {{ background: #fff; padding: 1.25rem; border-radius: .75rem; margin-bottom: 1.25rem; }}
h1 {{ font-size: 1.35rem; margin: 0 0 .5rem; }}
h2 {{ font-size: 1.1rem; margin: 0 0 .75rem; }}
input, select, button {{ font: inherit; }}
input[type=text], input[type=search], input[type=password], input[type=datetime-local], select {{ padding: .5rem; border: 1px solid #b8bec8; border-radius: .4rem; width: 100%; }}
input[type=checkbox] {{ width: 1.4rem; height: 1.4rem; accent-color: {ACCENT}; flex: none; }}
button {{ padding: .55rem 1rem; border-radius: .4rem; border: 2px solid {ACCENT}; background: {ACCENT}; color: #fff; font-weight: 600; cursor: pointer; }}
button.secondary {{ background: #fff; color: {ACCENT}; }}
button.link {{ background: none; border: 0; color: {ACCENT}; padding: 0; font-weight: 400; text-decoration: underline; }}
.rows {{ list-style: none; margin: 0 0 1rem; padding: 0; }}
.row {{ display: grid; grid-template-columns: 15rem 1fr; gap: .25rem .75rem; align-items: start; padding: .75rem 0; border-top: 1px solid #eceef2; }}
.row label {{ display: flex; gap: .75rem; align-items: center; font-weight: 600; cursor: pointer; }}
.address {{ color: #555; font-size: .9rem; word-break: break-all; }}
.badge {{ display: inline-block; padding: 0 .5rem; border-radius: 1rem; font-size: .85rem; font-weight: 600; }}
.badge.allowed {{ background: #e3f5e9; color: #11652f; }}
.badge.permanent {{ background: #fde4e4; color: #9b1c1c; }}
.badge.temporary {{ background: #fff2d6; color: #7a4b00; }}
.badge.marketing {{ background: #ece6fb; color: #4b2a9b; }}
.reason {{ display: block; color: #333; }}
.notice {{ background: #e3f5e9; border-left: 4px solid #11652f; padding: .75rem 1rem; }}
.error {{ background: #fde4e4; border-left: 4px solid #9b1c1c; padding: .75rem 1rem; }}
.consent {{ border: 2px solid #9b1c1c; border-radius: .5rem; padding: 1rem; margin: 1rem 0; }}
.consent .fields {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(14rem, 1fr)); gap: .75rem; margin: .75rem 0; }}
.consent label {{ display: block; font-weight: 600; }}
.table {{ overflow-x: auto; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .4rem .5rem; border-top: 1px solid #eceef2; vertical-align: top; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.timeline {{ list-style: none; margin: 0; padding: 0; }}
.timeline li {{ border-left: 3px solid #d5d9e0; padding: 0 0 1rem 1rem; }}
.timeline .when {{ color: #555; font-size: .9rem; }}
dl.evidence {{ display: grid; grid-template-columns: max-content 1fr; gap: .1rem .75rem; margin: .35rem 0 0; padding: .5rem .75rem; background: #f6f7f9; border-radius: .4rem; }}
dl.evidence dt {{ color: #555; }}
dl.evidence dd {{ margin: 0; }}
.timeline .event-id {{ font-family: ui-monospace, monospace; font-size: .85rem; word-break: break-all; }}
.muted {{ color: #666; }}
.visually-hidden {{ position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }}
.signin {{ max-width: 26rem; margin: 3rem auto; }}
.signin label {{ display: block; font-weight: 600; margin-top: .75rem; }}
.signin button {{ width: 100%; margin-top: 1rem; }}
@media (max-width: 40rem) {{
  .row {{ grid-template-columns: 1fr; }}
  .hide-narrow {{ display: none; }}
  table {{ font-size: .85rem; }}
  th, td {{ padding: .35rem .25rem; }}
}}
</style>
</head>
<body>
{chrome}<main>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// The sign-in page. `error` is shown above the form.
pub fn sign_in(csrf: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<section class="signin">
<h1>dndgate console</h1>
<p class="muted">Sign in with your tenant's API token.</p>
{error}<form method="post" action="/console/login">
<input type="hidden" name="csrf" value="{csrf}">
<label for="tenant">Tenant</label>
<input id="tenant" name="tenant" type="text" autocomplete="username" required>
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<label for="actor">Your name or email <span class="muted">(recorded with your changes)</span></label>
<input id="actor" name="actor" type="text" autocomplete="name">
<button type="submit">Sign in</button>
</form>
</section>"#,
        csrf = escape(csrf),
    );
    document("Sign in", None, &body)
}

/// One channel's row of the contact panel, in words.
pub struct RowView {
    /// `SCOPE|ADDRESS`: the form's value for this row.
    pub key: String,
    /// The scope's label ("Text messages (SMS)", "All channels").
    pub label: String,
    /// The address it is for.
    pub address: String,
    /// The record blocks now: the box is ticked.
    pub ticked: bool,
    /// `allowed`, `permanent`, `temporary` or `marketing` (the badge's class).
    pub class: &'static str,
    /// The state's label and detail ("Temporary", "until ...").
    pub state: (&'static str, String),
    /// Why and since when, in words; empty for no record.
    pub reason: String,
    /// The address's `all` record blocks this channel too.
    pub all_blocks: bool,
}

/// A request to lift a permanent record: the consent form for one row.
pub struct ConsentView {
    /// The row (`SCOPE|ADDRESS`).
    pub key: String,
    /// The row's label and address, for the heading.
    pub label: String,
    /// Why it is on DND, in words.
    pub reason: String,
    /// The values typed before (kept when the form comes back refused).
    pub agreed: String,
    pub captured_at: String,
    pub method: String,
    pub reference: String,
    /// Why the last submission was refused.
    pub error: Option<String>,
}

/// One audit entry of the timeline, in words.
pub struct EntryView {
    /// When it happened.
    pub when: String,
    /// The scope's label and the address.
    pub scope: String,
    pub address: String,
    /// The outcome (`applied`, `refused`, ...): a data attribute for tests and styles.
    pub outcome: String,
    /// What happened, in words.
    pub what: String,
    /// Why, in words.
    pub why: String,
    /// Who told us (a provider, an operator) and the event id.
    pub source: String,
    pub event_id: String,
    /// The operator who made it, if one did.
    pub actor: Option<String>,
    /// The consent evidence given, as `(field, value)` pairs.
    pub evidence: Vec<(String, String)>,
}

/// What the contact page shows.
pub struct PanelView<'a> {
    /// The page's heading: the address or contact searched.
    pub heading: String,
    /// The query that reaches this page again (`address=...` or `id=...`).
    pub subject_query: String,
    /// The contact the addresses are linked to, if any.
    pub contact: Option<String>,
    /// Every address shown.
    pub addresses: Vec<String>,
    pub rows: Vec<RowView>,
    pub consent: Vec<ConsentView>,
    pub timeline: Vec<EntryView>,
    /// A success notice, an error, in words.
    pub notice: Option<String>,
    pub error: Option<String>,
    /// Where the audit window starts, if the streams were trimmed.
    pub window_note: Option<String>,
    /// The signed-in tenant and the session's CSRF token.
    pub tenant: &'a str,
    pub csrf: &'a str,
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
        escape(value)
    )
}

/// The hidden inputs that name the page's subject (`address` or `id`).
fn subject_inputs(query: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| hidden(&format!("subject_{k}"), v))
        .collect()
}

/// The contact panel and its timeline.
pub fn panel(view: &PanelView<'_>) -> String {
    let mut body = String::new();
    if let Some(n) = &view.notice {
        body.push_str(&format!(
            "<p class=\"notice\" role=\"status\">{}</p>\n",
            escape(n)
        ));
    }
    if let Some(e) = &view.error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>\n",
            escape(e)
        ));
    }
    body.push_str("<section class=\"panel\">\n");
    body.push_str(&format!("<h1>{}</h1>\n", escape(&view.heading)));
    match &view.contact {
        Some(c) => body.push_str(&format!(
            "<p class=\"linked\">Contact <strong>{}</strong>: {}</p>\n",
            escape(c),
            view.addresses
                .iter()
                .map(|a| format!("<span class=\"address\">{}</span>", escape(a)))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => body
            .push_str("<p class=\"linked muted\">No other addresses are linked to this one.</p>\n"),
    }
    for c in &view.consent {
        body.push_str(&consent_form(c, view));
    }
    body.push_str("<h2>Do not disturb</h2>\n<p class=\"muted\">Ticked: do not contact on this channel. Untick a permanent block only with the contact's consent.</p>\n");
    body.push_str("<form method=\"post\" action=\"/console/contact\" class=\"dnd\">\n");
    body.push_str(&hidden("csrf", view.csrf));
    body.push_str(&subject_inputs(&view.subject_query));
    body.push_str("<ul class=\"rows\">\n");
    for row in &view.rows {
        let key = escape(&row.key);
        let detail = if row.state.1.is_empty() {
            String::new()
        } else {
            format!(" {}", escape(&row.state.1))
        };
        let reason = if row.reason.is_empty() {
            String::new()
        } else {
            format!("<span class=\"reason\">{}</span>", escape(&row.reason))
        };
        let all = if row.all_blocks {
            "<span class=\"reason\">Also blocked: the address is on DND for all channels.</span>"
        } else {
            ""
        };
        body.push_str(&format!(
            r#"<li class="row" data-row="{key}">
<input type="hidden" name="shown" value="{key}">
<label><input type="checkbox" name="dnd" value="{key}"{checked}> {label}</label>
<div class="what"><span class="address">{address}</span><br><span class="badge {class}">{state}</span><span class="detail">{detail}</span>{reason}{all}</div>
</li>
"#,
            checked = if row.ticked { " checked" } else { "" },
            label = escape(&row.label),
            address = escape(&row.address),
            class = row.class,
            state = escape(row.state.0),
        ));
    }
    body.push_str("</ul>\n<button type=\"submit\">Save</button>\n</form>\n</section>\n");
    body.push_str(&timeline(view));
    document(&view.heading, Some((view.tenant, view.csrf)), &body)
}

fn consent_form(c: &ConsentView, view: &PanelView<'_>) -> String {
    let error = c
        .error
        .as_ref()
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    let mut methods = String::from("<option value=\"\">Choose...</option>");
    for m in EVIDENCE_METHODS {
        methods.push_str(&format!(
            "<option value=\"{m}\"{}>{m}</option>",
            if c.method.eq_ignore_ascii_case(m) {
                " selected"
            } else {
                ""
            }
        ));
    }
    format!(
        r#"<form method="post" action="/console/consent" class="consent" data-row="{key}">
<h2>Lift {label}: consent needed</h2>
<p>{reason}. A permanent block is lifted only when the contact opts back in (START) or you record their consent.</p>
{error}{csrf}{subject}{row}<div class="fields">
<div><label for="agreed-{id}">What the contact agreed to</label><input id="agreed-{id}" name="agreed" type="text" value="{agreed}" placeholder="Texts about my orders from Acme"></div>
<div><label for="captured-{id}">When (UTC)</label><input id="captured-{id}" name="captured_at" type="datetime-local" value="{captured}"></div>
<div><label for="method-{id}">How it was captured</label><select id="method-{id}" name="method">{methods}</select></div>
<div><label for="reference-{id}">Reference to the proof</label><input id="reference-{id}" name="reference" type="text" value="{reference}" placeholder="form submission id, URL, file"></div>
</div>
<button type="submit">Lift with this consent</button>
</form>
"#,
        key = escape(&c.key),
        id = c
            .key
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() {
                b as char
            } else {
                '-'
            })
            .collect::<String>(),
        label = escape(&c.label),
        reason = escape(&c.reason),
        csrf = hidden("csrf", view.csrf),
        subject = subject_inputs(&view.subject_query),
        row = hidden("row", &c.key),
        agreed = escape(&c.agreed),
        captured = escape(&c.captured_at),
        reference = escape(&c.reference),
    )
}

fn timeline(view: &PanelView<'_>) -> String {
    let mut out = String::from("<section class=\"history\">\n<h2>History</h2>\n");
    if let Some(note) = &view.window_note {
        out.push_str(&format!("<p class=\"muted\">{}</p>\n", escape(note)));
    }
    if view.timeline.is_empty() {
        out.push_str("<p class=\"muted\">No changes recorded for these addresses.</p>\n");
    }
    out.push_str("<ol class=\"timeline\">\n");
    for e in &view.timeline {
        let actor = e
            .actor
            .as_ref()
            .map(|a| format!(" by <strong>{}</strong>", escape(a)))
            .unwrap_or_default();
        let evidence = if e.evidence.is_empty() {
            String::new()
        } else {
            format!(
                "<dl class=\"evidence\">{}</dl>",
                e.evidence
                    .iter()
                    .map(|(k, v)| format!("<dt>{}</dt><dd>{}</dd>", escape(k), escape(v)))
                    .collect::<String>()
            )
        };
        out.push_str(&format!(
            r#"<li data-outcome="{outcome}"><span class="when">{when}</span> · {scope} <span class="address">{address}</span><br>
<strong>{what}</strong>: {why}<br>
<span class="muted">from {source}{actor} · event <span class="event-id">{event_id}</span></span>{evidence}</li>
"#,
            outcome = escape(&e.outcome),
            when = escape(&e.when),
            scope = escape(&e.scope),
            address = escape(&e.address),
            what = escape(&e.what),
            why = escape(&e.why),
            source = escape(&e.source),
            event_id = escape(&e.event_id),
        ));
    }
    out.push_str("</ol>\n</section>\n");
    out
}

/// One line of the overview's counts: a scope and its records by state.
pub struct CountRow {
    pub label: &'static str,
    pub permanent: u64,
    pub temporary: u64,
    pub marketing: u64,
    pub lifted: u64,
}

/// One of the last changes on the overview.
pub struct RecentView {
    pub when: String,
    pub scope: String,
    pub address: String,
    pub what: String,
    pub why: String,
}

/// The tenant overview: counts by channel and state, the last changes, export.
pub fn overview(
    tenant: &str,
    csrf: &str,
    counts: &[CountRow],
    recent: &[RecentView],
    notice: Option<&str>,
) -> String {
    let mut body = String::new();
    if let Some(n) = notice {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>\n",
            escape(n)
        ));
    }
    body.push_str(&format!(
        "<section class=\"counts\">\n<h1>Tenant {}</h1>\n<div class=\"table\"><table>\n<thead><tr><th>Channel</th><th class=\"n\">Permanent</th><th class=\"n\">Temporary</th><th class=\"n\">Marketing</th><th class=\"n hide-narrow\">Lifted</th></tr></thead>\n<tbody>\n",
        escape(tenant)
    ));
    for c in counts {
        body.push_str(&format!(
            "<tr data-scope=\"{label}\"><td>{label}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n hide-narrow\">{}</td></tr>\n",
            c.permanent,
            c.temporary,
            c.marketing,
            c.lifted,
            label = escape(c.label),
        ));
    }
    body.push_str("</tbody>\n</table></div>\n<p><a href=\"/console/export.csv\" class=\"export\" download>Export the records that block now (CSV)</a></p>\n</section>\n");
    body.push_str("<section class=\"recent\">\n<h2>Last changes</h2>\n");
    if recent.is_empty() {
        body.push_str("<p class=\"muted\">Nothing recorded yet.</p>\n");
    }
    body.push_str("<ol class=\"timeline\">\n");
    for r in recent {
        let link =
            serde_urlencoded::to_string([("address", r.address.as_str())]).unwrap_or_default();
        body.push_str(&format!(
            "<li><span class=\"when\">{}</span> · {} <a class=\"address\" href=\"/console/contact?{}\">{}</a><br><strong>{}</strong>: {}</li>\n",
            escape(&r.when),
            escape(&r.scope),
            escape(&link),
            escape(&r.address),
            escape(&r.what),
            escape(&r.why),
        ));
    }
    body.push_str("</ol>\n</section>\n");
    document(&format!("Tenant {tenant}"), Some((tenant, csrf)), &body)
}

/// A page that says one thing (not found, unavailable).
pub fn message(title: &str, text: &str, signed_in: Option<(&str, &str)>) -> String {
    document(
        title,
        signed_in,
        &format!(
            "<section><h1>{}</h1><p>{}</p><p><a href=\"/console/overview\">Back to the overview</a></p></section>",
            escape(title),
            escape(text)
        ),
    )
}
