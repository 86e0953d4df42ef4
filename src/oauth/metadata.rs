//! Authorization server metadata (RFC 8414 §2), built for the issuer the client used.

use serde_json::{json, Value};

use crate::{config::Settings, domain::scope::OFFLINE_ACCESS};

/// The RFC 8414 document for `issuer` (the configured public URL, or its loopback alias).
pub fn authorization_server(issuer: &str, settings: &Settings) -> Value {
    // `offline_access` (SEP-2207): clients add it to ask for a refresh token; it is never in
    // the protected resource metadata, whose scopes are the MCP server's.
    let all = settings.scopes.with(OFFLINE_ACCESS);
    let scopes: Vec<&str> = all.iter().collect();
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes,
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": settings.config.client_metadata_documents,
    })
}
