//! SparkPost event webhooks: batches of email events (bounces, out-of-band bounces,
//! spam complaints, list and link unsubscribes), on `POST /webhooks/sparkpost/{tenant}`.
//!
//! The road: content type (the registry's first step) -> tenant section from the path
//! -> authentication (HTTP basic auth, and/or the webhook's custom auth header) ->
//! parse the batch -> normalise each entry.
//!
//! Why this order: SparkPost signs nothing. A webhook authenticates with credentials the
//! operator set on it in SparkPost: Basic Auth (`Authorization: Basic`), or a custom
//! header (`custom_headers`: a header name and a secret value). Both are per tenant, so
//! the tenant comes first, and only from the path. They are checked, in constant time
//! and against every configured value (rotation), before any byte of the body is read:
//! an unauthenticated caller learns nothing about how a body would be handled (401, a
//! `WWW-Authenticate` challenge when basic auth is configured, nothing written).
//! SparkPost's third option, OAuth 2.0 client credentials (a bearer token from the
//! operator's own token server), is not supported: a request carrying
//! `Authorization: Bearer` is refused with a line that says to use basic auth or a
//! custom header instead.
//!
//! Nothing in the scheme binds a request to a time or to its body, so replays are
//! stopped by dedup on each entry's `event_id` (SparkPost keeps it across the retries
//! of a batch, for 8 hours) and by event-time ordering behind it. A body that is no
//! batch at all gets 400; an entry that cannot be read is refused on its own line of a
//! 200 (SparkPost resends a failed batch whole for 8 hours); an entry without a DND
//! signal, and the test batch SparkPost posts when a webhook is created
//! (`[{"msys": {}}]`), is 200 and counted as skipped.

pub mod normalise;
pub mod verify;

use serde::Deserialize;

use crate::error::Error;
use crate::event::Source;
use crate::road::{About, Road, SectionCx, Trip};
use crate::secret::Secret;
use verify::{Auth, HeaderAuth};

/// The source SparkPost's events carry.
pub const SOURCE: Source = Sparkpost::ABOUT.source();

/// The challenge of a refused request when the tenant uses basic auth.
const CHALLENGE: &str = "Basic realm=\"dndgate\"";

/// The SparkPost provider.
#[derive(Debug)]
pub struct Sparkpost;

/// A tenant's SparkPost section, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    /// Basic-auth credentials, each `user:password` (SparkPost's `auth_credentials`).
    #[serde(default)]
    credentials: Vec<String>,
    /// The name of the custom header that carries a secret (`custom_headers`).
    auth_header: Option<String>,
    /// The accepted values of `auth_header`, several while rotating.
    #[serde(default)]
    auth_header_values: Vec<String>,
}

impl Road for Sparkpost {
    const ABOUT: About = About::new(
        "sparkpost",
        "SparkPost",
        include_str!("../../../providers/sparkpost.toml"),
    );
    type Settings = ();
    /// What authenticates the tenant's webhooks: basic-auth credentials, a custom
    /// header, or both (then both must match).
    type Section = Auth;

    fn section(section: &mut SectionCx<'_, '_>) -> Option<Auth> {
        let raw: RawSection = section.read()?;
        let at = section.at;
        let credentials = section
            .cx
            .secrets(&format!("{at}.credentials"), &raw.credentials);
        if credentials
            .iter()
            .any(|c| !verify::is_user_password(c.expose()))
        {
            section.problem(format!(
                "{at}.credentials: write each as user:password (the user may not be empty; the password may)"
            ));
        }
        let header = match raw.auth_header {
            Some(name) => {
                if let Err(why) = verify::check_header_name(&name) {
                    section.problem(format!("{at}.auth_header: {why}"));
                }
                let values_at = format!("{at}.auth_header_values");
                let values: Vec<Secret> = section.cx.required_secrets(
                    &values_at,
                    &raw.auth_header_values,
                    "no request could carry the header",
                );
                Some(HeaderAuth {
                    name: name.trim().to_ascii_lowercase(),
                    values,
                })
            }
            None => {
                if !raw.auth_header_values.is_empty() {
                    section.problem(format!(
                        "{at}.auth_header_values is set but auth_header is not: name the header SparkPost sends them in"
                    ));
                }
                None
            }
        };
        if raw.credentials.is_empty() && header.is_none() {
            section.problem(format!(
                "{at}: set credentials (the webhook's Basic Auth user:password) or auth_header and auth_header_values (a custom header): SparkPost signs nothing, so its webhooks cannot be authenticated otherwise"
            ));
        }
        Some(Auth {
            credentials,
            header,
        })
    }

    async fn handle(trip: &mut Trip<'_, Self>) -> Result<(), Error> {
        let (tenant, auth) = trip.path_tenant()?;
        let req = trip.req;
        let authorization = req.header("authorization");
        let custom = auth.header.as_ref().and_then(|h| req.header(&h.name));
        verify::verify(auth, authorization, custom).map_err(|e| {
            let bearer = authorization
                .is_some_and(|a| a.trim_start().to_ascii_lowercase().starts_with("bearer "));
            let error = if bearer {
                Error::unauthorized(format!(
                    "SparkPost's OAuth 2.0 webhook authentication is not supported: set the webhook's Authentication to Basic Auth (tenants.{tenant}.sparkpost.credentials) or send a custom header (auth_header)"
                ))
                .with_reason(e.reason())
            } else {
                Error::from(e)
            };
            if auth.credentials.is_empty() {
                error
            } else {
                error.with_challenge(CHALLENGE)
            }
        })?;
        let entries = normalise::parse(&req.body)?;
        let normalised = normalise::normalise(&entries, trip.receive());
        trip.out.rejected.extend(normalised.rejected);
        trip.out.skipped.extend(normalised.ignored);
        trip.out.push(tenant, normalised.events);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::road::ConfigCx;

    /// The section `text` read for tenant `acme`: the section, and every problem.
    fn read(text: &str) -> (Option<Auth>, Vec<String>) {
        let mut problems = Vec::new();
        let mut cx = ConfigCx::new(std::path::Path::new("."), &mut problems);
        let value: toml::Value = toml::from_str(text).unwrap();
        let at = "tenants.acme.sparkpost";
        let section = Sparkpost::section(&mut SectionCx::new("acme", at, value, &mut cx));
        (section, problems)
    }

    /// A host for a road that asks nothing of the house but whether a tenant exists.
    struct Bare;

    impl crate::road::Host for Bare {
        fn public_url(&self) -> &str {
            "https://hooks.example.com"
        }
        fn dedup_ttl(&self) -> std::time::Duration {
            std::time::Duration::from_secs(60)
        }
        fn has_tenant(&self, id: &str) -> bool {
            id == "acme" || id == "globex"
        }
        fn fetch(&self) -> &dyn crate::fetch::Fetch {
            panic!("the SparkPost road fetches nothing")
        }
        fn claim_once<'a>(&'a self, _: crate::road::Once<'a>) -> crate::road::HostFuture<'a, bool> {
            panic!("the SparkPost road claims no token")
        }
    }

    /// Walk the road for tenant `tenant` with `headers` and `body`: the delivery, and
    /// how the walk ended. acme uses basic auth, globex a custom header.
    async fn walk(
        tenant: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (crate::road::Delivery, Result<(), Error>) {
        let mut tenants = std::collections::BTreeMap::new();
        tenants.insert(
            "acme".to_string(),
            Auth {
                credentials: vec![Secret::new("hook:pass")],
                header: None,
            },
        );
        tenants.insert(
            "globex".to_string(),
            Auth {
                credentials: Vec::new(),
                header: Some(HeaderAuth {
                    name: "x-api-key".into(),
                    values: vec![Secret::new("abcd")],
                }),
            },
        );
        let config = crate::road::ProviderConfig::<Sparkpost> {
            settings: (),
            tenants,
            codes: Sparkpost::ABOUT.table(),
        };
        let req = crate::road::WebhookRequest {
            method: crate::road::WebhookMethod::Post,
            provider: "sparkpost".into(),
            tenant: Some(tenant.into()),
            path_and_query: format!("/webhooks/sparkpost/{tenant}"),
            content_type: Some("application/json".into()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        };
        let mut trip = Trip {
            config: &config,
            req: &req,
            host: &Bare,
            out: crate::road::Delivery::default(),
        };
        let result = Sparkpost::handle(&mut trip).await;
        (trip.out, result)
    }

    const BOUNCE: &str = r#"[{"msys":{"message_event":{"type":"bounce","bounce_class":"10","event_id":"1","rcpt_to":"a@example.com","timestamp":"1454442600"}}},{"msys":{}}]"#;

    #[tokio::test]
    async fn the_road_authenticates_before_it_reads_the_body() {
        let good = crate::providers::postmark::verify::basic_auth_header("hook:pass");
        let (out, result) = walk("acme", &[("authorization", &good)], BOUNCE).await;
        result.unwrap();
        assert_eq!(out.tenant.as_deref(), Some("acme"));
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.skipped.len(), 1);

        // Refused before the body is read: a body that is no batch gets 401, not 400.
        let wrong = crate::providers::postmark::verify::basic_auth_header("hook:nope");
        let (out, result) = walk("acme", &[("authorization", &wrong)], "not json").await;
        let e = result.unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Unauthorized);
        assert_eq!(e.challenge, Some(CHALLENGE));
        assert!(out.events.is_empty());

        let (_, result) = walk("acme", &[("authorization", "Bearer abc")], BOUNCE).await;
        let e = result.unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Unauthorized);
        assert!(e.message.contains("OAuth 2.0"), "{}", e.message);

        // The custom header: no basic-auth challenge, since basic auth is not used.
        let (out, result) = walk("globex", &[("x-api-key", "abcd")], BOUNCE).await;
        result.unwrap();
        assert_eq!(out.events.len(), 1);
        let (_, result) = walk("globex", &[("x-api-key", "abce")], BOUNCE).await;
        let e = result.unwrap_err();
        assert_eq!(
            (e.kind, e.challenge),
            (crate::error::Kind::Unauthorized, None)
        );

        // Authenticated, but no batch: 400.
        let (_, result) = walk("globex", &[("x-api-key", "abcd")], "{}").await;
        assert_eq!(result.unwrap_err().kind, crate::error::Kind::BadRequest);

        let (_, result) = walk("initech", &[], BOUNCE).await;
        assert_eq!(result.unwrap_err().kind, crate::error::Kind::NotFound);
    }

    #[test]
    fn sections_that_load() {
        let (auth, problems) = read(r#"credentials = ["hook:pass", "next:"]"#);
        assert!(problems.is_empty(), "{problems:?}");
        let auth = auth.unwrap();
        assert_eq!(auth.credentials.len(), 2);
        assert!(auth.header.is_none());

        let (auth, problems) = read(
            r#"auth_header = "X-Api-Key"
auth_header_values = ["abcd", "efgh"]"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let header = auth.unwrap().header.unwrap();
        assert_eq!(header.name, "x-api-key");
        assert_eq!(header.values.len(), 2);

        let (auth, problems) = read(
            r#"credentials = ["hook:pass"]
auth_header = "x-api-key"
auth_header_values = ["abcd"]"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let auth = auth.unwrap();
        assert!(!auth.credentials.is_empty() && auth.header.is_some());
    }

    #[test]
    fn sections_that_are_refused_say_why() {
        let cases = [
            ("", "set credentials"),
            (r#"credentials = []"#, "set credentials"),
            (r#"credentials = ["nocolon"]"#, "user:password"),
            (r#"credentials = [":pass"]"#, "user:password"),
            (
                r#"auth_header = "x-api-key""#,
                "auth_header_values is empty",
            ),
            (
                r#"auth_header = "x-api-key"
auth_header_values = [" "]"#,
                "empty",
            ),
            (
                r#"auth_header = "Authorization"
auth_header_values = ["abcd"]"#,
                "set credentials",
            ),
            (
                r#"auth_header = "x api key"
auth_header_values = ["abcd"]"#,
                "not an HTTP header name",
            ),
            (r#"auth_header_values = ["abcd"]"#, "auth_header is not"),
            (r#"credential = ["a:b"]"#, "unknown field"),
        ];
        for (text, fragment) in cases {
            let (_, problems) = read(text);
            assert!(
                problems.iter().any(|p| p.contains(fragment)),
                "{text:?}: {problems:?}"
            );
            assert!(
                problems
                    .iter()
                    .all(|p| p.starts_with("tenants.acme.sparkpost")),
                "{problems:?}"
            );
        }
    }
}
