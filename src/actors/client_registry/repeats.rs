//! Recent public-client registrations by fingerprint, so that a repeated identical
//! registration (RFC 7591 §3) answers the client it registered before (issue 13).
//!
//! Hosted MCP clients reach us from a few shared egress addresses and register again on
//! every new session; counted one by one, their registrations exhaust the per-address limit
//! and lock every user behind that address out. So the registry remembers, for 24 hours,
//! which public client each ([`NewClient::fingerprint`]: address key + effective metadata)
//! registered, and answers a repeat with that client, with no write and without counting
//! it against the per-address limit or `max_registered_clients`: the limit counts distinct
//! clients. Confidential clients are never remembered: their secret is shown once and
//! cannot be shown again, so each registration gets a new client.
//!
//! The fingerprints are the registry's shared state
//! ([`Namespace::RepeatRegistrations`](crate::storage::shared_state::Namespace)): in memory
//! on the embedded backend (one process serves a data directory; empty after a restart, when
//! a repeat registers a new client, the safe direction; the oldest of 10,000 forgotten
//! first), and in the `shared_state` table on PostgreSQL, so that a repeat reaching another
//! instance is answered alike (issue 14). A fingerprint is remembered once its client is
//! stored; two identical registrations racing on two instances may each register a client
//! (both counted), and the later fingerprint wins.
//!
//! [`NewClient::fingerprint`]: crate::domain::client::NewClient::fingerprint

/// How long a registration is answered again for a repeat, from its first registration.
pub(super) const REPEAT_WINDOW_SECS: i64 = 24 * 3600;
