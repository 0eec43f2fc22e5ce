//! The registry: every provider the gateway serves, one line each.
//!
//! A provider is one folder, `src/providers/<name>/`, that implements
//! [`Road`](crate::road::Road): its names, its configuration section, its embedded
//! error-code table and its road (tenant, verify, parse, normalise). The list below turns
//! into the [`Provider`] enum, [`Provider::ALL`], and [`Providers`] (every provider's
//! configuration) with one exhaustive `match` per question asked of a provider. Adding
//! a provider is its folder and its line here; a folder that leaves out a piece of the
//! trait does not compile.
//!
//! The registry names no store, spool or state type: the pipeline calls
//! [`Providers::handle`] and applies what the road hands back.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::classify::ErrorTable;
use crate::error::Error;
use crate::event::Source;
use crate::road::{
    About, Answer, ConfigCx, Delivery, Host, ProviderConfig, Road, SectionCx, Trip, WebhookRequest,
};

#[cfg(test)]
pub(crate) mod testkit;

/// Declares the provider folders and builds the enum and its exhaustive matches from
/// one list (`Variant => folder::RoadType`).
macro_rules! registry {
    ($($variant:ident => $folder:ident :: $road:ident,)*) => {
        $(pub mod $folder;)*

        /// A provider of the registry.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Provider {
            $(
                #[doc = concat!("`", stringify!($folder), "`: see [`", stringify!($folder), "`].")]
                $variant,
            )*
        }

        impl Provider {
            /// Every provider, in registry order.
            pub const ALL: &'static [Provider] = &[$(Provider::$variant,)*];

            /// What names the provider: its [`About`](crate::road::About).
            pub const fn about(self) -> About {
                match self {
                    $(Provider::$variant => <$folder::$road as Road>::ABOUT,)*
                }
            }

            /// The name in routes, metrics, audit entries and the spool.
            pub const fn as_str(self) -> &'static str {
                self.about().name
            }

            /// Other route names of the provider.
            pub const fn aliases(self) -> &'static [&'static str] {
                self.about().aliases
            }

            /// The key of its tenant section and of its `[providers.<key>]` table.
            pub const fn section(self) -> &'static str {
                self.about().section
            }
        }

        /// Every provider's configuration: gateway-wide settings, tenant sections,
        /// error-code table.
        #[derive(Debug, Clone)]
        pub struct Providers {
            $(
                #[doc = concat!("[`", stringify!($folder), "`]'s configuration.")]
                pub $folder: ProviderConfig<$folder::$road>,
            )*
        }

        impl Providers {
            /// Read every provider's configuration from the raw tables.
            pub fn parse(mut raw: RawProviders, cx: &mut ConfigCx<'_>) -> Providers {
                let providers = Providers {
                    $($folder: read::<$folder::$road>(Provider::$variant, &mut raw, cx),)*
                };
                $(<$folder::$road as Road>::check(&providers.$folder, cx);)*
                providers
            }

            /// `provider`'s error-code table.
            pub fn codes(&self, provider: Provider) -> &ErrorTable {
                match provider {
                    $(Provider::$variant => &self.$folder.codes,)*
                }
            }

            /// Does `tenant` have `provider`'s section?
            pub fn tenant_has(&self, provider: Provider, tenant: &str) -> bool {
                match provider {
                    $(Provider::$variant => self.$folder.tenants.contains_key(tenant),)*
                }
            }

            /// Every provider's configuration warnings.
            pub fn warnings(&self) -> Vec<String> {
                let mut warnings = Vec::new();
                $(warnings.extend(<$folder::$road as Road>::warnings(&self.$folder));)*
                warnings
            }

            /// Answer a GET on `provider`'s route.
            pub fn handshake(&self, provider: Provider, query: &str) -> Result<Answer, Error> {
                match provider {
                    $(Provider::$variant => <$folder::$road as Road>::handshake(&self.$folder, query),)*
                }
            }

            /// Walk `provider`'s road for `req`: what the road handed back, and how
            /// the walk ended (the delivery says which tenant even when it failed).
            pub async fn handle(
                &self,
                provider: Provider,
                req: &WebhookRequest,
                host: &dyn Host,
            ) -> (Delivery, Result<(), Error>) {
                match provider {
                    $(Provider::$variant => walk(&self.$folder, req, host).await,)*
                }
            }
        }
    };
}

registry! {
    Twilio => twilio::Twilio,
    Meta => meta::Meta,
    Sendgrid => sendgrid::Sendgrid,
    Mailgun => mailgun::Mailgun,
    Postmark => postmark::Postmark,
    Ses => ses::Ses,
    StandardWebhooks => standard_webhooks::StandardWebhooks,
    Telnyx => telnyx::Telnyx,
    Brevo => brevo::Brevo,
    Plivo => plivo::Plivo,
    Sparkpost => sparkpost::Sparkpost,
    Mandrill => mandrill::Mandrill,
    SignalWire => signalwire::SignalWire,
    Bandwidth => bandwidth::Bandwidth,
    Vonage => vonage::Vonage,
}

impl Provider {
    /// The source its events carry.
    pub const fn source(self) -> Source {
        Source::provider(self.as_str())
    }

    /// Its embedded error-code table, read.
    pub fn embedded_table(self) -> ErrorTable {
        ErrorTable::from_toml(self.as_str(), self.about().codes)
            .unwrap_or_else(|e| panic!("the embedded table of {self} is valid (tested): {e}"))
    }

    /// The provider whose route is `segment` (its name or an alias).
    pub fn from_route(segment: &str) -> Option<Provider> {
        Provider::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == segment || p.aliases().contains(&segment))
    }

    /// "twilio, meta, ... and standard-webhooks", for error messages.
    pub fn list() -> String {
        let names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
        match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a provider name the registry does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {0:?}: this gateway serves {list}", list = Provider::list())]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Provider, UnknownProvider> {
        Provider::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProvider(s.to_string()))
    }
}

/// The source named `name`, as stored in the spool and the audit stream: a provider
/// of the registry, or one of [`Source::NOT_PROVIDERS`].
pub fn source_named(name: &str) -> Option<Source> {
    name.parse::<Provider>()
        .map(Provider::source)
        .ok()
        .or_else(|| {
            Source::NOT_PROVIDERS
                .into_iter()
                .find(|s| s.as_str() == name)
        })
}

/// The providers' parts of the configuration file, before they are read: the
/// gateway-wide tables by key, each tenant's sections by key, and the
/// `error_codes_file` of each `[providers.<key>]`.
#[derive(Debug, Default)]
pub struct RawProviders {
    /// Top-level tables (`meta`, `sns`) by key.
    pub settings: BTreeMap<String, toml::Value>,
    /// Tenant id -> section key -> the section.
    pub sections: BTreeMap<String, BTreeMap<String, toml::Value>>,
    /// Section key -> the overrides of its error-code table, read from this file.
    pub error_codes_files: BTreeMap<String, std::path::PathBuf>,
}

/// Walk one provider's road: refuse a media type it never posts, then its own steps.
async fn walk<R: Road>(
    config: &ProviderConfig<R>,
    req: &WebhookRequest,
    host: &dyn Host,
) -> (Delivery, Result<(), Error>) {
    let mut trip = Trip {
        config,
        req,
        host,
        out: Delivery::default(),
    };
    let result = match req.require_content_type(&R::ABOUT) {
        Ok(()) => R::handle(&mut trip).await,
        Err(refused) => Err(refused),
    };
    (trip.out, result)
}

/// Read one provider's configuration out of `raw`.
fn read<R: Road>(
    provider: Provider,
    raw: &mut RawProviders,
    cx: &mut ConfigCx<'_>,
) -> ProviderConfig<R> {
    let about = R::ABOUT;
    let settings = R::settings(about.settings.and_then(|key| raw.settings.remove(key)), cx);
    let mut tenants = BTreeMap::new();
    for (tenant, sections) in raw.sections.iter_mut() {
        let Some(section) = sections.remove(about.section) else {
            continue;
        };
        let at = format!("tenants.{tenant}.{}", about.section);
        if let Some(section) = R::section(&mut SectionCx::new(tenant, &at, section, cx)) {
            tenants.insert(tenant.clone(), section);
        }
    }
    let mut codes = ErrorTable::from_toml(about.name, about.codes)
        .unwrap_or_else(|e| panic!("the embedded table of {provider} is valid (tested): {e}"));
    if let Some(path) = raw.error_codes_files.remove(about.section) {
        let key = about.section;
        match std::fs::read_to_string(&path) {
            Ok(text) => match ErrorTable::from_toml(about.name, &text) {
                Ok(overrides) => codes.merge(overrides),
                Err(e) => cx.problem(format!("providers.{key}.error_codes_file: {e}")),
            },
            Err(e) => cx.problem(format!(
                "providers.{key}.error_codes_file: cannot read {}: {e}",
                path.display()
            )),
        }
    }
    ProviderConfig {
        settings,
        tenants,
        codes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>(), Ok(*p));
            assert_eq!(Provider::from_route(p.as_str()), Some(*p));
            for alias in p.aliases() {
                assert_eq!(Provider::from_route(alias), Some(*p));
            }
            assert_eq!(source_named(p.as_str()), Some(p.source()));
            assert!(
                Source::NOT_PROVIDERS
                    .iter()
                    .all(|s| s.as_str() != p.as_str()),
                "{p} collides with a source that is no provider"
            );
        }
        let mut names: Vec<&str> = Provider::ALL
            .iter()
            .flat_map(|p| std::iter::once(p.as_str()).chain(p.aliases().iter().copied()))
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "two providers share a route name");
        assert_eq!(Provider::from_route("carrierpigeon"), None);
    }

    #[test]
    fn every_embedded_table_is_valid() {
        for p in Provider::ALL {
            ErrorTable::from_toml(p.as_str(), p.about().codes)
                .unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }

    /// A host for roads that must stop before they reach it.
    struct Unreached;

    impl Host for Unreached {
        fn public_url(&self) -> &str {
            "https://dnd.example.com"
        }
        fn dedup_ttl(&self) -> std::time::Duration {
            std::time::Duration::from_secs(60)
        }
        fn has_tenant(&self, _: &str) -> bool {
            panic!("the media type is checked before any tenant lookup")
        }
        fn fetch(&self) -> &dyn crate::fetch::Fetch {
            panic!("the media type is checked before any fetch")
        }
        fn claim_once<'a>(&'a self, _: crate::road::Once<'a>) -> crate::road::HostFuture<'a, bool> {
            panic!("the media type is checked before any token is claimed")
        }
    }

    /// The skeleton refuses a media type a provider never posts, for every provider,
    /// before its road looks at a tenant, a header or the body, in one line that
    /// names what the provider posts; and lets the ones it posts through to the road.
    #[tokio::test]
    async fn every_road_refuses_a_foreign_media_type_first() {
        let mut problems = Vec::new();
        let mut cx = ConfigCx::new(std::path::Path::new("."), &mut problems);
        let providers = Providers::parse(RawProviders::default(), &mut cx);
        assert!(problems.is_empty(), "{problems:?}");
        for p in Provider::ALL {
            let about_accepts = p.about().accepts;
            assert!(!about_accepts.is_empty(), "{p} accepts nothing");
            for content_type in [Some("text/csv"), None] {
                let req = WebhookRequest {
                    method: crate::road::WebhookMethod::Post,
                    provider: p.as_str().to_string(),
                    tenant: Some("nosuch".to_string()),
                    path_and_query: format!("/webhooks/{p}/nosuch"),
                    content_type: content_type.map(str::to_string),
                    headers: Vec::new(),
                    body: b"not even json".to_vec(),
                };
                let (delivery, result) = providers.handle(*p, &req, &Unreached).await;
                let e = result.expect_err("a foreign media type is refused");
                assert_eq!(e.kind, crate::error::Kind::UnsupportedMediaType, "{p}: {e}");
                let text = e.to_string();
                assert!(text.contains(about_accepts[0]), "{p}: {text}");
                assert!(text.contains(&format!("{p} posts")), "{p}: {text}");
                assert!(!text.contains('\n'), "{p}: {text}");
                assert_eq!(delivery.tenant, None, "{p}");
            }
        }
    }
}
