//! Protected-resource metadata (RFC 9728) for the MCP endpoint, served both at the
//! path-inserted location `/.well-known/oauth-protected-resource/mcp` (RFC 9728 §3.1) and at
//! the root, which MCP clients try second.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::json;

use std::sync::Arc;

use crate::{
    domain::scope::OFFLINE_ACCESS,
    metrics::{Endpoint, Metrics},
    services::Services,
};

/// Mounts both metadata locations, counting their requests in `metrics`.
pub fn configure_resource_metadata(cfg: &mut web::ServiceConfig, metrics: &Arc<Metrics>) {
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        cfg.service(
            web::resource(path)
                .wrap(super::cors())
                .wrap(super::track(metrics, Endpoint::ProtectedResourceMetadata))
                .route(web::get().to(protected_resource)),
        );
    }
}

/// The RFC 9728 document. `resource` is the MCP URL exactly as the client reached it (a
/// loopback alias included), since clients compare it byte for byte (RFC 9728 §3.3).
async fn protected_resource(req: HttpRequest, services: web::Data<Services>) -> HttpResponse {
    let issuer = super::issuer(&req, &services.settings);
    // Never `offline_access` (MCP 2026-07-28 "Refresh Tokens": it is the authorization
    // server's business, not a permission of this resource), even if configured.
    let scopes: Vec<&str> = services
        .settings
        .scopes
        .iter()
        .filter(|s| *s != OFFLINE_ACCESS)
        .collect();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(json!({
            "resource": format!("{issuer}/mcp"),
            "authorization_servers": [issuer],
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": "oauth-mcp",
        }))
}
