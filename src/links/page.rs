//! The preference page behind an unsubscribe link: small, accessible, works without
//! JavaScript, readable on a phone. Pure rendering: the caller supplies what it shows.

use crate::event::Channel;

/// What a tenant's page looks like and where it sends people afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSettings {
    /// The sender's name, shown in the heading.
    pub name: String,
    /// The accent colour of the button, as CSS (`#0b5fff`).
    pub color: String,
    /// Where to send the contact after a submission (303); a built-in confirmation
    /// otherwise.
    pub confirm_url: Option<String>,
    /// Apply the link's unsubscribe on GET (mail scanners prefetch links: off by
    /// default).
    pub immediate: bool,
}

impl Default for PageSettings {
    fn default() -> PageSettings {
        PageSettings {
            name: "us".to_string(),
            color: "#0b5fff".to_string(),
            confirm_url: None,
            immediate: false,
        }
    }
}

/// A channel as the page shows it.
pub fn channel_label(channel: Channel) -> &'static str {
    match channel {
        Channel::Sms => "Text messages (SMS)",
        Channel::Voice => "Phone calls",
        Channel::Whatsapp => "WhatsApp",
        Channel::Messenger => "Messenger",
        Channel::Instagram => "Instagram",
        Channel::Email => "Email",
    }
}

/// The channels an address can be reached on.
pub fn channels_of(address: &str) -> &'static [Channel] {
    if address.contains('@') {
        &[Channel::Email]
    } else if address.starts_with('+') {
        &[Channel::Sms, Channel::Voice, Channel::Whatsapp]
    } else if address.contains(':') {
        &[Channel::Messenger, Channel::Instagram]
    } else {
        &[Channel::Whatsapp]
    }
}

/// Escape text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Show enough of an address for its owner to recognise it, not enough to read it off
/// a shoulder: `al***@example.com`, `+1******1234`.
pub fn masked(address: &str) -> String {
    if let Some((local, domain)) = address.split_once('@') {
        let keep: String = local.chars().take(2).collect();
        format!("{keep}***@{domain}")
    } else {
        let chars: Vec<char> = address.chars().collect();
        let n = chars.len();
        chars
            .iter()
            .enumerate()
            .map(|(i, c)| if i < 2 || i + 4 >= n { *c } else { '*' })
            .collect()
    }
}

fn document(settings: &PageSettings, title: &str, body: &str) -> String {
    // The colour is configuration, but it lands in CSS: keep only what a colour needs.
    let color: String = settings
        .color
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '#')
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; padding: 1.5rem; color: #1a1a1a; background: #f6f7f9; }}
main {{ max-width: 28rem; margin: 0 auto; background: #fff; padding: 1.5rem; border-radius: .75rem; }}
h1 {{ font-size: 1.35rem; margin-top: 0; }}
fieldset {{ border: 0; padding: 0; margin: 1rem 0; }}
label {{ display: flex; gap: .75rem; align-items: center; padding: .6rem 0; font-size: 1.05rem; }}
input[type=checkbox] {{ width: 1.4rem; height: 1.4rem; }}
button {{ font: inherit; width: 100%; padding: .9rem; border-radius: .5rem; border: 2px solid {color}; margin-top: .75rem; cursor: pointer; }}
.primary {{ background: {color}; color: #fff; font-weight: 600; font-size: 1.1rem; }}
.secondary {{ background: #fff; color: {color}; }}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"#
    )
}

/// The preference page: the contact's channels as checkboxes (checked: messages
/// allowed), one prominent unsubscribe button, and a button to save the boxes. A GET
/// of this page changes nothing. The form posts back to the page's own URL, so it
/// works behind a proxy that mounts the gateway under a path.
pub fn preferences(settings: &PageSettings, address: &str, channels: &[(Channel, bool)]) -> String {
    let name = escape(&settings.name);
    let mut boxes = String::new();
    for (channel, blocked) in channels {
        let id = channel.as_str();
        boxes.push_str(&format!(
            "<label for=\"ch-{id}\"><input type=\"checkbox\" id=\"ch-{id}\" name=\"receive\" value=\"{id}\"{}> {}</label>\n",
            if *blocked { "" } else { " checked" },
            channel_label(*channel)
        ));
    }
    let body = format!(
        r#"<h1>Messages from {name}</h1>
<p>For <strong>{address}</strong>. Ticked means you receive messages on that channel.</p>
<form method="post">
<input type="hidden" name="form" value="preferences">
<button class="primary" type="submit" name="action" value="unsubscribe">Unsubscribe</button>
<fieldset>
<legend>Or choose channel by channel:</legend>
{boxes}</fieldset>
<button class="secondary" type="submit" name="action" value="save">Save my choices</button>
</form>"#,
        address = escape(&masked(address)),
    );
    document(settings, &format!("Messages from {name}"), &body)
}

/// The built-in confirmation after a submission.
pub fn confirmation(
    settings: &PageSettings,
    unsubscribed: &[Channel],
    resubscribed: &[Channel],
) -> String {
    let list = |cs: &[Channel]| {
        cs.iter()
            .map(|c| channel_label(*c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut body = "<h1>Thank you</h1>\n".to_string();
    if !unsubscribed.is_empty() {
        body.push_str(&format!(
            "<p>You will no longer receive: {}.</p>\n",
            list(unsubscribed)
        ));
    }
    if !resubscribed.is_empty() {
        body.push_str(&format!(
            "<p>You will receive again: {}.</p>\n",
            list(resubscribed)
        ));
    }
    if unsubscribed.is_empty() && resubscribed.is_empty() {
        body.push_str("<p>Your choices are saved; nothing needed to change.</p>\n");
    }
    document(settings, "Your choices are saved", &body)
}

/// The page for a link that is not valid (forged, truncated, expired or retired).
pub fn invalid(settings: &PageSettings) -> String {
    document(
        settings,
        "This link is not valid",
        "<h1>This link is not valid</h1>\n<p>It may have expired. Use the unsubscribe link in a newer message, or reply STOP.</p>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_and_escaping() {
        assert_eq!(masked("alice@example.com"), "al***@example.com");
        assert_eq!(masked("+14155551234"), "+1******1234");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let page = preferences(
            &PageSettings {
                name: "<Acme>".into(),
                color: "red;}body{display:none".into(),
                ..PageSettings::default()
            },
            "alice@example.com",
            &[(Channel::Email, true)],
        );
        assert!(page.contains("Messages from &lt;Acme&gt;"));
        assert!(!page.contains("display:none"));
        assert!(
            page.contains("name=\"receive\" value=\"email\">"),
            "a blocked channel is unticked"
        );
    }
}
