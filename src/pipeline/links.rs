//! The road of an unsubscribe link: `GET /u/{token}` shows the preference page (and
//! changes nothing, unless the tenant chose `link_mode = "immediate"`); `POST` is
//! either the page's form or an RFC 8058 one-click unsubscribe.
//!
//! A link reaches only the channels of its scope. Its blocks are `block_own` records
//! (reason `link[:CAMPAIGN]`, source `link`), and its page re-enables a channel with
//! `unblock_own` (reason `link`): the apply script lifts only a record a link set, so a
//! keyword STOP, a provider's unsubscribe, an error code or an operator's record stays
//! (audited as refused), and the page tells the contact how to opt back in. The page
//! writes no consent evidence: holding a link is not consent.

use super::{Answer, Gateway, NotPlaced, Placed, now_ms};
use crate::address::Address;
use crate::config::Tenant;
use crate::event::{Channel, Scope, Source};
use crate::links::{self, LinkClaims, page};
use crate::state::{self, Request};
use crate::store::{StoreAction, StoreError};

/// A link resolved to its claims, tenant and address.
struct Resolved<'a> {
    claims: LinkClaims,
    tenant: &'a Tenant,
    address: Address,
}

/// Why a link could not be resolved.
enum Unresolved {
    /// Forged, truncated, expired, retired, or naming no record: say nothing more.
    Invalid(String),
    /// Redis did not answer.
    Unavailable(StoreError),
}

/// The one answer to every one-click POST, valid link or not.
const ONE_CLICK_ANSWER: &str = "ok\n";

fn html(status: u16, body: String) -> Answer {
    Answer {
        content_type: "text/html; charset=utf-8",
        ..Answer::text(status, body)
    }
}

fn unavailable(e: &StoreError) -> Answer {
    tracing::error!(error = %e, "unsubscribe link: redis unavailable");
    let mut answer = Answer::text(
        503,
        "the unsubscribe could not be recorded; try again in a minute\n",
    );
    answer.retry_after = Some(30);
    answer
}

impl Gateway {
    async fn resolve_link(&self, token: &str) -> Result<Resolved<'_>, Unresolved> {
        let ring = self
            .config
            .links
            .as_ref()
            .ok_or_else(|| Unresolved::Invalid("links are not configured".into()))?;
        let claims =
            links::verify(ring, token, now_ms()).map_err(|e| Unresolved::Invalid(e.to_string()))?;
        let (tenant_id, address) = self
            .store
            .get_link(&claims.link_id)
            .await
            .map_err(Unresolved::Unavailable)?
            .ok_or_else(|| Unresolved::Invalid("no record for this link".into()))?;
        let tenant = self.config.tenants.get(&tenant_id).ok_or_else(|| {
            Unresolved::Invalid(format!("tenant {tenant_id} is no longer configured"))
        })?;
        Ok(Resolved {
            claims,
            tenant,
            address,
        })
    }

    /// The current verdict of every channel of the link's scope.
    async fn channel_states(
        &self,
        link: &Resolved<'_>,
    ) -> Result<Vec<(Channel, bool)>, StoreError> {
        let mut states = Vec::new();
        for channel in &scope_channels(link.claims.scope, &link.address) {
            let verdict = self
                .store
                .lookup(&link.tenant.id, *channel, &link.address, now_ms())
                .await?;
            states.push((*channel, verdict.blocked));
        }
        Ok(states)
    }

    /// Apply one change from the link to `scopes`. With `spool`, the change goes to
    /// the spool (fsync'd before this returns) when Redis fails or earlier changes wait
    /// there, like a webhook's; the outcomes are then empty. Changes whose caller reads
    /// the state back (the page's choices) pass `false`.
    async fn link_change(
        &self,
        link: &Resolved<'_>,
        scopes: Vec<Scope>,
        action: StoreAction,
        spool: bool,
    ) -> Result<state::Outcomes, StoreError> {
        let now = now_ms();
        let lift = action == StoreAction::UnblockOwn;
        // A lift names the whole family (`link` lifts `link`, `link:CAMPAIGN` and
        // `link:*`): whichever link set the record, the contact may undo it.
        let reason = match &link.claims.campaign {
            Some(c) if !lift => format!("link:{c}"),
            _ => "link".to_string(),
        };
        // Every submission is its own change: a contact who goes out, back in and out
        // again within a minute ends on the last choice (an id per minute made the
        // second "out" a duplicate of the first, and the opt-out was lost). A retried
        // one-click POST changes nothing anyway: `block_own` on the record the same
        // kind set is a no-op in the script.
        let event_id = format!(
            "{}:{}:{}:{}",
            hex::encode(link.claims.link_id),
            scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("+"),
            if lift { "in" } else { "out" },
            state::new_event_id(now)
        );
        let request = Request {
            address: &link.address,
            scopes,
            action,
            reason: &reason,
            provider: Source::LINK,
            event_id: &event_id,
            event_ms: now,
            received_ms: now,
            now_ms: now,
            actor: None,
            evidence: None,
        };
        match self.place(link.tenant, &request, spool).await {
            Ok(Placed::Redis(outcomes)) => Ok(outcomes),
            Ok(Placed::Spool(seq)) => {
                let spool = self.spool.as_ref().expect("placed in the spool");
                spool
                    .durable(seq, seq)
                    .await
                    .map(|()| state::Outcomes::default())
                    .map_err(|e| StoreError::Unavailable(format!("redis unavailable and {e}")))
            }
            Err(NotPlaced::Store(e)) => Err(e),
            Err(NotPlaced::Spool(e)) => Err(StoreError::Unavailable(format!(
                "redis unavailable and {e}"
            ))),
        }
    }

    /// Unsubscribe the link's own scope; the channels that covers, for the
    /// confirmation.
    async fn unsubscribe_link_scope(
        &self,
        link: &Resolved<'_>,
    ) -> Result<Vec<Channel>, StoreError> {
        let scope = link.claims.scope;
        self.link_change(link, vec![scope], StoreAction::BlockOwn, true)
            .await?;
        Ok(scope_channels(scope, &link.address))
    }

    /// After a submission: 303 to the tenant's confirmation URL, or the built-in page;
    /// the built-in page always when a channel could not be re-enabled (`kept`), so the
    /// contact learns how to opt back in.
    fn confirmed(
        &self,
        tenant: &Tenant,
        unsubscribed: &[Channel],
        resubscribed: &[Channel],
        kept: &[Channel],
    ) -> Answer {
        match &tenant.page.confirm_url {
            Some(url) if kept.is_empty() => Answer {
                location: Some(url.clone()),
                ..Answer::text(303, format!("see {url}\n"))
            },
            _ => html(
                200,
                page::confirmation(&tenant.page, unsubscribed, resubscribed, kept),
            ),
        }
    }

    /// `GET /u/{token}`.
    pub async fn unsubscribe_get(&self, token: &str) -> Answer {
        let link = match self.resolve_link(token).await {
            Ok(l) => l,
            Err(Unresolved::Invalid(why)) => {
                tracing::info!(why, "unsubscribe page for an invalid link");
                return html(404, page::invalid(&page::PageSettings::default()));
            }
            Err(Unresolved::Unavailable(e)) => return unavailable(&e),
        };
        if link.tenant.page.immediate {
            return match self.unsubscribe_link_scope(&link).await {
                Ok(channels) => self.confirmed(link.tenant, &channels, &[], &[]),
                Err(e) => unavailable(&e),
            };
        }
        match self.channel_states(&link).await {
            Ok(states) => html(
                200,
                page::preferences(&link.tenant.page, link.address.as_str(), &states),
            ),
            Err(e) => unavailable(&e),
        }
    }

    /// `POST /u/{token}`: the page's form, or a one-click unsubscribe (any other body,
    /// per RFC 8058 `List-Unsubscribe=One-Click`, leniently).
    pub async fn unsubscribe_post(
        &self,
        token: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Answer {
        let form: Vec<(String, String)> = content_type
            .filter(|c| c.starts_with("application/x-www-form-urlencoded"))
            .and_then(|_| serde_urlencoded::from_bytes(body).ok())
            .unwrap_or_default();
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let from_page = field("form") == Some("preferences");
        let link = match self.resolve_link(token).await {
            Ok(l) => l,
            // The page's own form: the person gets the page a GET would have shown.
            Err(Unresolved::Invalid(why)) if from_page => {
                tracing::warn!(why, "unsubscribe form for an invalid link ignored");
                return html(404, page::invalid(&page::PageSettings::default()));
            }
            // One-click: no oracle, an invalid link gets the same answer as a valid one.
            Err(Unresolved::Invalid(why)) => {
                tracing::warn!(why, "one-click unsubscribe for an invalid link ignored");
                return Answer::text(200, ONE_CLICK_ANSWER);
            }
            Err(Unresolved::Unavailable(e)) => return unavailable(&e),
        };
        if !from_page {
            return match self.unsubscribe_link_scope(&link).await {
                Ok(_) => Answer::text(200, ONE_CLICK_ANSWER),
                Err(e) => unavailable(&e),
            };
        }
        if field("action") != Some("save") {
            return match self.unsubscribe_link_scope(&link).await {
                Ok(channels) => self.confirmed(link.tenant, &channels, &[], &[]),
                Err(e) => unavailable(&e),
            };
        }
        self.save_choices(&link, &form).await
    }

    /// The page's "save my choices", within the link's scope only: ticked channels that
    /// are blocked are re-enabled where a link set their record (`unblock_own`; any
    /// other record stays and is reported as kept), unticked ones get the link's DND.
    /// Channels outside the scope are neither shown nor touched.
    async fn save_choices(&self, link: &Resolved<'_>, form: &[(String, String)]) -> Answer {
        let receive: Vec<&str> = form
            .iter()
            .filter(|(k, _)| k == "receive")
            .map(|(_, v)| v.as_str())
            .collect();
        let result = async {
            let now = now_ms();
            let channels = scope_channels(link.claims.scope, &link.address);
            let ticked: Vec<Channel> = channels
                .iter()
                .copied()
                .filter(|c| receive.contains(&c.as_str()))
                .collect();
            // Re-enables first: lifting an `all` record lifts every channel, and the
            // unticked ones are then put back on DND one by one below.
            let mut blocked_before = Vec::new();
            let mut lift = Vec::new();
            for channel in &ticked {
                let verdict = self
                    .store
                    .lookup(&link.tenant.id, *channel, &link.address, now)
                    .await?;
                if verdict.blocked {
                    blocked_before.push(*channel);
                    lift.push(Scope::Channel(*channel));
                    // The `all` record only for a link whose scope is everything.
                    if verdict.scope == Some(Scope::All)
                        && link.claims.scope == Scope::All
                        && !lift.contains(&Scope::All)
                    {
                        lift.push(Scope::All);
                    }
                }
            }
            if !lift.is_empty() {
                self.link_change(link, lift, StoreAction::UnblockOwn, false)
                    .await?;
            }
            let mut resubscribed = Vec::new();
            let mut kept = Vec::new();
            for channel in blocked_before {
                let verdict = self
                    .store
                    .lookup(&link.tenant.id, channel, &link.address, now)
                    .await?;
                if verdict.blocked {
                    kept.push(channel);
                } else {
                    resubscribed.push(channel);
                }
            }
            let mut unsubscribed = Vec::new();
            for channel in channels.iter().filter(|c| !ticked.contains(c)) {
                let verdict = self
                    .store
                    .lookup(&link.tenant.id, *channel, &link.address, now)
                    .await?;
                if !verdict.blocked {
                    self.link_change(
                        link,
                        vec![Scope::Channel(*channel)],
                        StoreAction::BlockOwn,
                        false,
                    )
                    .await?;
                    unsubscribed.push(*channel);
                }
            }
            Ok::<_, StoreError>((unsubscribed, resubscribed, kept))
        };
        match result.await {
            Ok((out, back, kept)) => self.confirmed(link.tenant, &out, &back, &kept),
            Err(e) => unavailable(&e),
        }
    }
}

/// The channels a scope covers on an address, for the confirmation.
fn scope_channels(scope: Scope, address: &Address) -> Vec<Channel> {
    match scope {
        Scope::Channel(c) => vec![c],
        Scope::All => page::channels_of(address.as_str()).to_vec(),
    }
}
