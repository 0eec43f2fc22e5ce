//! Unsubscribe links (SPEC section 9).
//!
//! A link carries a compact signed token ([`token`]) that names a server-side
//! (tenant, address) record, the scope the contact leaves, an optional campaign and an
//! optional expiry. RFC 8058 asks for an opaque, hard-to-forge token because anyone can
//! POST to a one-click URL: the token's MAC is the only thing that makes such a POST
//! count. Everything here is pure; minting the record and serving the page live
//! elsewhere.

pub mod token;

pub use token::{KeyRing, LinkClaims, TokenError, link_id, mint, verify};
