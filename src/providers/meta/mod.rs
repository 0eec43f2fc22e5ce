//! Meta: the WhatsApp Cloud API, Messenger and Instagram messaging, on one callback
//! URL for every tenant, `POST /webhooks/meta` (and `GET` for the subscription
//! handshake).
//!
//! The road: content type (the registry's first step) -> signature over the raw body
//! with the app secret -> parse -> for each entry, normalise, and route each event to
//! the tenant that owns the event's own account.
//!
//! Why this order: the app secret is the gateway's, not a tenant's, so the signature is
//! checked before anything of the body is read. Routing is per event
//! ([`normalise::MetaEvent::account`]: the phone number id of its change, or the page or
//! Instagram account of its entry), never by another id of the same entry: one business
//! account can hold numbers of several tenants, and a number nobody configured is
//! nobody's. Events for accounts no tenant owns are skipped and counted, never failing
//! the rest. A path tenant (`/webhooks/meta/{tenant}`) only narrows the routing.

pub mod normalise;
pub mod verify;

use serde::Deserialize;

use crate::error::Error;
use crate::event::Source;
use crate::road::{About, Answer, ConfigCx, ProviderConfig, Road, SectionCx, Trip};
use crate::secret::Secret;
use normalise::AccountId;

/// The source Meta's events carry.
pub const SOURCE: Source = Meta::ABOUT.source();

/// The Meta provider.
#[derive(Debug)]
pub struct Meta;

/// The Meta app whose webhooks the gateway takes (`[meta]`): one callback URL for every
/// tenant.
#[derive(Debug, Clone, Default)]
pub struct App {
    /// App secrets, tried in turn (several while rotating); empty when no `[meta]`
    /// table is configured.
    pub app_secrets: Vec<Secret>,
    /// Verify tokens accepted in the GET handshake.
    pub verify_tokens: Vec<Secret>,
    /// Whether a `[meta]` table is configured at all.
    pub configured: bool,
}

/// A tenant's Meta accounts: the ids Meta names in webhook entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// WhatsApp business phone number ids (`metadata.phone_number_id`).
    #[serde(default)]
    pub whatsapp_phone_number_ids: Vec<String>,
    /// WhatsApp Business Account ids (the entry id of WhatsApp webhooks).
    #[serde(default)]
    pub whatsapp_business_account_ids: Vec<String>,
    /// Facebook page ids (Messenger).
    #[serde(default)]
    pub page_ids: Vec<String>,
    /// Instagram professional account ids.
    #[serde(default)]
    pub instagram_account_ids: Vec<String>,
}

impl Section {
    /// Does this tenant own `account`?
    pub fn owns(&self, account: &AccountId) -> bool {
        let (ids, id) = match account {
            AccountId::WhatsappPhoneNumberId(id) => (&self.whatsapp_phone_number_ids, id),
            AccountId::WhatsappBusinessAccount(id) => (&self.whatsapp_business_account_ids, id),
            AccountId::Page(id) => (&self.page_ids, id),
            AccountId::Instagram(id) => (&self.instagram_account_ids, id),
        };
        ids.contains(id)
    }

    /// The account lists with their setting names.
    fn lists(&self) -> [(&'static str, &Vec<String>); 4] {
        [
            ("whatsapp_phone_number_ids", &self.whatsapp_phone_number_ids),
            (
                "whatsapp_business_account_ids",
                &self.whatsapp_business_account_ids,
            ),
            ("page_ids", &self.page_ids),
            ("instagram_account_ids", &self.instagram_account_ids),
        ]
    }
}

/// `[meta]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    #[serde(default)]
    app_secrets: Vec<String>,
    #[serde(default)]
    verify_tokens: Vec<String>,
}

impl Road for Meta {
    const ABOUT: About =
        About::new("meta", "Meta", include_str!("../../../providers/meta.toml")).settings("meta");
    type Settings = App;
    type Section = Section;

    fn settings(raw: Option<toml::Value>, cx: &mut ConfigCx<'_>) -> App {
        let Some(raw) = raw.and_then(|r| cx.table::<RawApp>("meta", r)) else {
            return App::default();
        };
        App {
            app_secrets: cx.required_secrets(
                "meta.app_secrets",
                &raw.app_secrets,
                "Meta webhooks cannot be verified",
            ),
            verify_tokens: cx.required_secrets(
                "meta.verify_tokens",
                &raw.verify_tokens,
                "Meta's subscription handshake cannot be answered",
            ),
            configured: true,
        }
    }

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Section> {
        let raw: Section = section.read()?;
        for (field, ids) in raw.lists() {
            let at = format!("{}.{field}", section.at);
            for account in ids {
                if account.is_empty() || !account.bytes().all(|b| b.is_ascii_digit()) {
                    section.problem(format!("{at}: {account:?} is not a Meta id (digits only)"));
                }
                if let Some(other) = section.claim(format!("{field}:{account}")) {
                    section.problem(format!(
                        "{at}: {account} is also configured for tenant {other}"
                    ));
                }
            }
        }
        Some(raw)
    }

    fn check(config: &ProviderConfig<Self>, cx: &mut ConfigCx<'_>) {
        if config.settings.configured {
            return;
        }
        for tenant in config.tenants.keys() {
            cx.problem(format!(
                "tenants.{tenant}.meta is set but there is no [meta] table with the app's app_secrets and verify_tokens"
            ));
        }
    }

    /// A WhatsApp change goes by its own phone number id, and by the business account
    /// only when it names no number, which a message change never does: a tenant that
    /// lists business accounts but no number would receive no WhatsApp STOP.
    fn warnings(config: &ProviderConfig<Self>) -> Vec<String> {
        config
            .tenants
            .iter()
            .filter(|(_, m)| {
                !m.whatsapp_business_account_ids.is_empty() && m.whatsapp_phone_number_ids.is_empty()
            })
            .map(|(tenant, _)| {
                format!(
                    "tenants.{tenant}.meta lists whatsapp_business_account_ids but no whatsapp_phone_number_ids: each WhatsApp change is routed by its own metadata.phone_number_id, so this tenant receives no WhatsApp message or STOP; list its phone number ids"
                )
            })
            .collect()
    }

    fn handshake(config: &ProviderConfig<Self>, query: &str) -> Result<Answer, Error> {
        let app = app(config)?;
        normalise::verify_handshake(query, &app.verify_tokens)
            .map(|challenge| Answer::text(200, challenge))
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let app = app(trip.config)?;
        let req = trip.req;
        let signature = req.header("x-hub-signature-256");
        verify::verify_meta(&req.body, signature, &app.app_secrets)?;
        let webhook = normalise::parse(&req.body)?;
        // A path tenant only narrows the routing; one without Meta accounts owns no
        // event, so every event is unrouted.
        let only = match req.tenant.as_deref() {
            Some(id) if trip.host.has_tenant(id) => Some(id),
            Some(id) => return Err(Error::not_found(format!("unknown tenant {id:?}"))),
            None => None,
        };
        let received_ms = trip.receive();
        for entry in &webhook.entries {
            let normalised = normalise::normalise_entry(webhook.object, entry, received_ms);
            trip.out.rejected.extend(normalised.rejected);
            for meta_event in normalised.events {
                let owner = trip
                    .config
                    .find(|s| s.owns(&meta_event.account))
                    .map(|(tenant, _)| tenant)
                    .filter(|t| only.is_none_or(|o| o == *t));
                match owner {
                    Some(tenant) => trip.out.push(tenant, [meta_event.event]),
                    None => trip.out.unrouted.push(format!(
                        "entry {}: {} belongs to no tenant",
                        entry.index,
                        account_label(&meta_event.account)
                    )),
                }
            }
        }
        Ok(())
    }
}

/// The app, or 404 when no `[meta]` table is configured.
fn app(config: &ProviderConfig<Meta>) -> Result<&App, Error> {
    let app = &config.settings;
    if app.configured {
        Ok(app)
    } else {
        Err(Error::not_found(
            "no [meta] app is configured on this gateway",
        ))
    }
}

/// How an account is named in a log line and an answer.
fn account_label(account: &AccountId) -> String {
    match account {
        AccountId::WhatsappPhoneNumberId(id) => format!("whatsapp phone number id {id}"),
        AccountId::WhatsappBusinessAccount(id) => format!("whatsapp business account {id}"),
        AccountId::Page(id) => format!("page {id}"),
        AccountId::Instagram(id) => format!("instagram account {id}"),
    }
}
