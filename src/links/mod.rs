//! Unsubscribe links (SPEC section 9).
//!
//! A link carries a compact signed token ([`token`]) that names a server-side
//! (tenant, address) record, the scope the contact leaves, an optional campaign and an
//! optional expiry. RFC 8058 asks for an opaque, hard-to-forge token because anyone can
//! POST to a one-click URL: the token's MAC is the only thing that makes such a POST
//! count. The token codec and the page's HTML ([`page`]) are pure; [`mint_link`] also
//! writes the link's record; `pipeline::links` serves `GET` and `POST /u/{token}`.

pub mod page;
pub mod token;

pub use token::{KeyRing, LinkClaims, TokenError, link_id, mint, verify};

use crate::address::Address;
use crate::event::Scope;
use crate::store::{Store, StoreError};

/// How long an unsubscribe link stays valid when it is minted without `expires_in`,
/// unless `[links] expires_after` or a tenant's `page.link_expires_after` says otherwise.
pub const DEFAULT_LINK_EXPIRY: std::time::Duration = std::time::Duration::from_secs(90 * 86400);

/// What RFC 8058 puts in `List-Unsubscribe-Post`.
pub const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

/// A minted unsubscribe link and the email headers that carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedLink {
    /// The page and one-click URL: `PUBLIC_URL/u/TOKEN`.
    pub url: String,
    /// The token alone (at most 64 characters).
    pub token: String,
    /// The `List-Unsubscribe` header value: `<URL>`.
    pub list_unsubscribe: String,
    /// The `List-Unsubscribe-Post` header value.
    pub list_unsubscribe_post: &'static str,
}

/// Why a link could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The claims are not mintable (campaign too long, expiry zero, ...).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The link record could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Mint the unsubscribe link of `address` for `tenant`: write (or rewrite) its record
/// and sign a token for `scope`, `campaign` and `expires_min` (unix minutes).
#[allow(clippy::too_many_arguments)]
pub async fn mint_link(
    store: &Store,
    ring: &KeyRing,
    public_url: &str,
    tenant: &str,
    address: &Address,
    scope: Scope,
    campaign: Option<&str>,
    expires_min: Option<u32>,
) -> Result<MintedLink, LinkError> {
    let claims = LinkClaims {
        link_id: link_id(ring, tenant, address.as_str()),
        scope,
        expires_min,
        campaign: campaign.map(str::to_string),
    };
    // Sign first: bad claims must not leave a record behind.
    let token = mint(ring, &claims)?;
    store.put_link(&claims.link_id, tenant, address).await?;
    let url = format!("{public_url}/u/{token}");
    Ok(MintedLink {
        list_unsubscribe: format!("<{url}>"),
        url,
        token,
        list_unsubscribe_post: ONE_CLICK,
    })
}
