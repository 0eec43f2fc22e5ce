//! The audit stream as a contract for automations.
//!
//! SKELETON: to be implemented.
