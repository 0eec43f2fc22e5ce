//! Signature schemes, one function per scheme, each checking the raw request exactly
//! as the provider signs it, with constant-time comparison and every configured secret
//! tried (rotation).
//!
//! SKELETON: to be implemented (Twilio HMAC-SHA1 over URL plus sorted params; JSON
//! bodies via bodySHA256).
