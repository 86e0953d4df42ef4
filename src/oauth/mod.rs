//! The OAuth protocol layer: parsing and validating requests into domain types, and
//! building response documents. No actix, no storage: pure functions over strings, whose
//! refusals are [`error::ProtocolError`]s.

pub mod authorize;
pub mod client_auth;
pub mod client_document;
pub mod error;
pub mod introspection;
pub mod metadata;
pub mod params;
pub mod registration;
pub mod token;
