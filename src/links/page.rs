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
    /// An `https://` logo shown above the heading.
    pub logo_url: Option<String>,
    /// The page's words, in the tenant's language with its overrides.
    pub text: Texts,
    /// Where to send the contact after a submission (303); a built-in confirmation
    /// otherwise.
    pub confirm_url: Option<String>,
    /// Apply the link's unsubscribe on GET (mail scanners prefetch links: off by
    /// default).
    pub immediate: bool,
    /// How long a link minted without an explicit expiry stays valid (90 days unless
    /// configured).
    pub link_expiry: std::time::Duration,
}

impl Default for PageSettings {
    fn default() -> PageSettings {
        PageSettings {
            name: "us".to_string(),
            color: "#0b5fff".to_string(),
            logo_url: None,
            text: Texts::default(),
            confirm_url: None,
            immediate: false,
            link_expiry: super::DEFAULT_LINK_EXPIRY,
        }
    }
}

/// The built-in words of the page, per language (policy as data).
const PAGE_TEXT_TOML: &str = include_str!("../../providers/page-text.toml");

/// Every key a language table or a tenant override may set.
pub const TEXT_KEYS: &[&str] = &[
    "heading",
    "intro",
    "unsubscribe",
    "choose",
    "save",
    "saved_title",
    "thanks",
    "no_longer",
    "again",
    "kept",
    "unchanged",
    "invalid_title",
    "invalid_body",
    "sms",
    "voice",
    "whatsapp",
    "messenger",
    "instagram",
    "email",
];

type Tables = std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>;

fn builtin_tables() -> &'static Tables {
    static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| toml::from_str(PAGE_TEXT_TOML).expect("providers/page-text.toml parses"))
}

/// The languages the page ships with.
pub fn languages() -> Vec<&'static str> {
    builtin_tables().keys().map(String::as_str).collect()
}

/// The page's words: one string per [`TEXT_KEYS`] entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts {
    language: String,
    strings: std::collections::BTreeMap<&'static str, String>,
}

impl Default for Texts {
    fn default() -> Texts {
        Texts::builtin("en").expect("English is built in")
    }
}

impl Texts {
    /// The built-in words of `language`, English where the language leaves a key out.
    pub fn builtin(language: &str) -> Result<Texts, String> {
        let tables = builtin_tables();
        let chosen = tables.get(language).ok_or_else(|| {
            format!(
                "{language:?} is not a built-in language (one of {})",
                languages().join(", ")
            )
        })?;
        let english = &tables["en"];
        let mut strings = std::collections::BTreeMap::new();
        for key in TEXT_KEYS {
            let text = chosen
                .get(*key)
                .or_else(|| english.get(*key))
                .ok_or_else(|| format!("providers/page-text.toml: en.{key} is missing"))?;
            strings.insert(*key, text.clone());
        }
        Ok(Texts {
            language: language.to_string(),
            strings,
        })
    }

    /// Replace some strings with a tenant's own wording; an unknown key is an error.
    pub fn with_overrides(
        mut self,
        overrides: &std::collections::BTreeMap<String, String>,
    ) -> Result<Texts, String> {
        for (key, text) in overrides {
            let known = TEXT_KEYS
                .iter()
                .find(|k| **k == key.as_str())
                .ok_or_else(|| {
                    format!(
                        "{key:?} is not a page text (one of {})",
                        TEXT_KEYS.join(", ")
                    )
                })?;
            self.strings.insert(known, text.clone());
        }
        Ok(self)
    }

    /// The language tag (`lang` of the page).
    pub fn language(&self) -> &str {
        &self.language
    }

    /// One string as HTML: escaped, with `{placeholders}` filled by escaped values.
    fn html(&self, key: &str, values: &[(&str, &str)]) -> String {
        let mut out = escape(self.strings.get(key).map(String::as_str).unwrap_or(key));
        for (name, value) in values {
            out = out.replace(&format!("{{{name}}}"), &escape(value));
        }
        out
    }

    /// A channel's name on the page.
    pub fn channel(&self, channel: Channel) -> &str {
        self.strings
            .get(channel.as_str())
            .map(String::as_str)
            .unwrap_or(channel.as_str())
    }
}

/// A channel as the audit trail names it (always English).
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
    let lang: String = settings
        .text
        .language()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let logo = match &settings.logo_url {
        Some(url) => format!(
            "<img class=\"logo\" src=\"{}\" alt=\"{}\">\n",
            escape(url),
            escape(&settings.name)
        ),
        None => String::new(),
    };
    // The colour is configuration, but it lands in CSS: keep only what a colour needs.
    let color: String = settings
        .color
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '#')
        .collect();
    format!(
        r#"<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<meta name="referrer" content="no-referrer">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src https:; base-uri 'none'">
<title>{title}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; padding: 1.5rem; color: #1a1a1a; background: #f6f7f9; }}
main {{ max-width: 28rem; margin: 0 auto; background: #fff; padding: 1.5rem; border-radius: .75rem; }}
h1 {{ font-size: 1.35rem; margin-top: 0; }}
fieldset {{ border: 0; padding: 0; margin: 1rem 0; }}
label {{ display: flex; gap: .75rem; align-items: center; padding: .6rem 0; font-size: 1.05rem; }}
input[type=checkbox] {{ width: 1.4rem; height: 1.4rem; accent-color: {color}; }}
button {{ font: inherit; width: 100%; padding: .9rem; border-radius: .5rem; border: 2px solid {color}; margin-top: .75rem; cursor: pointer; }}
.primary {{ background: {color}; color: #fff; font-weight: 600; font-size: 1.1rem; }}
.secondary {{ background: #fff; color: {color}; }}
.logo {{ display: block; max-height: 3rem; max-width: 60%; margin-bottom: 1rem; }}
</style>
</head>
<body>
<main>
{logo}{body}
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
    let t = &settings.text;
    let mut boxes = String::new();
    for (channel, blocked) in channels {
        let id = channel.as_str();
        boxes.push_str(&format!(
            "<label for=\"ch-{id}\"><input type=\"checkbox\" id=\"ch-{id}\" name=\"receive\" value=\"{id}\"{}> {}</label>\n",
            if *blocked { "" } else { " checked" },
            escape(t.channel(*channel))
        ));
    }
    let heading = t.html("heading", &[("name", &settings.name)]);
    let body = format!(
        r#"<h1>{heading}</h1>
<p>{intro}</p>
<form method="post">
<input type="hidden" name="form" value="preferences">
<button class="primary" type="submit" name="action" value="unsubscribe">{unsubscribe}</button>
<fieldset>
<legend>{choose}</legend>
{boxes}</fieldset>
<button class="secondary" type="submit" name="action" value="save">{save}</button>
</form>"#,
        intro = t.html("intro", &[("address", "\u{0}")]).replace(
            '\u{0}',
            &format!("<strong>{}</strong>", escape(&masked(address)))
        ),
        unsubscribe = t.html("unsubscribe", &[]),
        choose = t.html("choose", &[]),
        save = t.html("save", &[]),
    );
    let title = t
        .strings
        .get("heading")
        .map(String::as_str)
        .unwrap_or_default()
        .replace("{name}", &settings.name);
    document(settings, &escape(&title), &body)
}

/// The built-in confirmation after a submission. `kept` are channels the contact
/// ticked that stay blocked because something other than a link blocked them (a STOP,
/// a provider's unsubscribe, a bounce): the page says how to opt back in.
pub fn confirmation(
    settings: &PageSettings,
    unsubscribed: &[Channel],
    resubscribed: &[Channel],
    kept: &[Channel],
) -> String {
    let t = &settings.text;
    let list = |cs: &[Channel]| {
        cs.iter()
            .map(|c| t.channel(*c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut body = format!("<h1>{}</h1>\n", t.html("thanks", &[]));
    if !unsubscribed.is_empty() {
        body.push_str(&format!(
            "<p>{}</p>\n",
            t.html("no_longer", &[("channels", &list(unsubscribed))])
        ));
    }
    if !resubscribed.is_empty() {
        body.push_str(&format!(
            "<p>{}</p>\n",
            t.html("again", &[("channels", &list(resubscribed))])
        ));
    }
    if !kept.is_empty() {
        body.push_str(&format!(
            "<p>{}</p>\n",
            t.html("kept", &[("channels", &list(kept))])
        ));
    }
    if unsubscribed.is_empty() && resubscribed.is_empty() && kept.is_empty() {
        body.push_str(&format!("<p>{}</p>\n", t.html("unchanged", &[])));
    }
    document(settings, &t.html("saved_title", &[]), &body)
}

/// The page for a link that is not valid (forged, truncated, expired or retired).
pub fn invalid(settings: &PageSettings) -> String {
    let t = &settings.text;
    document(
        settings,
        &t.html("invalid_title", &[]),
        &format!(
            "<h1>{}</h1>\n<p>{}</p>",
            t.html("invalid_title", &[]),
            t.html("invalid_body", &[])
        ),
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
        assert!(page.contains("<strong>al***@example.com</strong>"));
    }

    #[test]
    fn every_language_has_every_key_and_overrides_are_checked() {
        let tables = builtin_tables();
        assert!(
            tables["en"].len() == TEXT_KEYS.len(),
            "English sets every key"
        );
        for (lang, table) in tables {
            for key in table.keys() {
                assert!(TEXT_KEYS.contains(&key.as_str()), "{lang}.{key} is unknown");
            }
            Texts::builtin(lang).unwrap();
        }
        let page = preferences(
            &PageSettings {
                name: "Acme".into(),
                text: Texts::builtin("de").unwrap(),
                logo_url: Some("https://cdn.example/logo.png?a=1&b=2".into()),
                ..PageSettings::default()
            },
            "+14155551234",
            &[(Channel::Sms, false), (Channel::Voice, true)],
        );
        assert!(page.contains("<html lang=\"de\">"));
        assert!(page.contains("<h1>Nachrichten von Acme</h1>"));
        assert!(page.contains("Textnachrichten (SMS)"));
        assert!(page.contains("src=\"https://cdn.example/logo.png?a=1&amp;b=2\""));
        assert!(page.contains("<meta name=\"referrer\" content=\"no-referrer\">"));
        assert!(page.contains("default-src 'none'") && !page.contains("<script"));

        let mut words = std::collections::BTreeMap::new();
        words.insert("unsubscribe".to_string(), "Stop <all> mail".to_string());
        let text = Texts::builtin("en")
            .unwrap()
            .with_overrides(&words)
            .unwrap();
        assert_eq!(text.html("unsubscribe", &[]), "Stop &lt;all&gt; mail");
        words.insert("nonsense".to_string(), "x".to_string());
        let err = Texts::builtin("en")
            .unwrap()
            .with_overrides(&words)
            .unwrap_err();
        assert!(err.contains("\"nonsense\" is not a page text"), "{err}");
        assert!(
            Texts::builtin("xx")
                .unwrap_err()
                .contains("not a built-in language")
        );
    }
}
