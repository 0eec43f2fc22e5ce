//! Twilio provider: verify, parse and normalise inbound messages and status callbacks.
//! Never touches Redis.
//!
//! SKELETON: to be implemented.
