//! The actix-web layer: routes, CORS, body limits and extractor error handlers.
//! [`configure`] is the embedding point (`App::new().configure(|c| configure(c, &services))`).

pub mod bearer;
pub mod oauth;
pub mod pages;
pub mod well_known;

use actix_cors::Cors;
use actix_web::{http::header, web};

use crate::app::Services;

/// Largest request body accepted on any endpoint (RFC 7591 bodies included).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// CORS for browser-based clients on the JSON endpoints (never on /authorize, which must
/// not be usable cross-origin; OAuth 2.1 §3.1, RFC 9700 §2.6). No credentials (cookies) are
/// involved, so a wildcard origin is safe.
pub(crate) fn cors() -> Cors {
    Cors::default()
        .allow_any_origin()
        .send_wildcard()
        .allowed_methods(["GET", "POST", "OPTIONS"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("mcp-protocol-version"),
        ])
        .expose_headers([header::WWW_AUTHENTICATE])
        .max_age(86_400)
}

/// Mounts everything the default server offers: the authorization server and the demo MCP
/// endpoint at `/mcp`. Call once per worker with the same [`Services`] (started once,
/// outside `HttpServer::new`).
pub fn configure(cfg: &mut web::ServiceConfig, services: &Services) {
    configure_authorization_server(cfg, services);
    if let Some(mcp) = &services.default_mcp {
        mcp.configure(cfg);
    }
}

/// Mounts the authorization server's routes only; an embedding application then mounts its
/// own [`crate::mcp::McpEndpoint`].
pub fn configure_authorization_server(cfg: &mut web::ServiceConfig, services: &Services) {
    cfg.app_data(web::Data::new(services.clone()))
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .service(
            web::resource("/.well-known/oauth-authorization-server")
                .wrap(cors())
                .route(web::get().to(oauth::metadata)),
        )
        .service(
            web::resource("/authorize")
                .route(web::get().to(oauth::authorize_get))
                .route(web::post().to(oauth::authorize_post)),
        )
        .service(web::resource("/authorize/decision").route(web::post().to(oauth::decision)))
        .service(
            web::resource("/token")
                .wrap(cors())
                .route(web::post().to(oauth::token)),
        )
        .service(
            web::resource("/revoke")
                .wrap(cors())
                .route(web::post().to(oauth::revoke)),
        )
        .service(
            web::resource("/introspect")
                .wrap(cors())
                .route(web::post().to(oauth::introspect)),
        )
        .service(
            web::resource("/register")
                .wrap(cors())
                .route(web::post().to(oauth::register)),
        );
}
