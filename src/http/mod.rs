//! The actix-web layer: routes, CORS, body limits and extractor error handlers.
//! [`configure_authorization_server`] mounts the authorization server's routes; `crate::configure`
//! (in `app`) adds the demo MCP server.

pub mod bearer;
pub mod error_response;
pub mod forms;
pub mod oauth;
pub mod pages;
pub mod probes;
pub mod well_known;

use std::{net::IpAddr, sync::Arc};

use actix_cors::Cors;
use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceRequest, ServiceResponse, Transform},
    http::header,
    middleware::{from_fn, Next},
    web, HttpRequest, HttpResponse,
};

use crate::{
    actors::mcp_sessions::CountSessions,
    config::Settings,
    domain::client_address,
    error::ErrorLabel,
    metrics::{Endpoint, Metrics},
    services::Services,
};

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

/// Mounts the authorization server's routes only; an embedding application then mounts its
/// own [`crate::mcp::McpEndpoint`].
pub fn configure_authorization_server(cfg: &mut web::ServiceConfig, services: &Services) {
    let metrics = &services.metrics;
    cfg.app_data(web::Data::new(services.clone()))
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .service(
            web::resource("/.well-known/oauth-authorization-server")
                .wrap(cors())
                .wrap(track(metrics, Endpoint::AuthorizationServerMetadata))
                .route(web::get().to(oauth::metadata)),
        )
        .service(
            web::resource("/authorize")
                .wrap(track(metrics, Endpoint::Authorize))
                .route(web::get().to(oauth::authorize_get))
                .route(web::post().to(oauth::authorize_post)),
        )
        .service(
            web::resource("/authorize/decision")
                .wrap(track(metrics, Endpoint::Decision))
                .route(web::post().to(oauth::decision)),
        )
        .service(
            web::resource("/token")
                .wrap(cors())
                .wrap(track(metrics, Endpoint::Token))
                .route(web::post().to(oauth::token)),
        )
        .service(
            web::resource("/revoke")
                .wrap(cors())
                .wrap(track(metrics, Endpoint::Revoke))
                .route(web::post().to(oauth::revoke)),
        )
        .service(
            web::resource("/introspect")
                .wrap(cors())
                .wrap(track(metrics, Endpoint::Introspect))
                .route(web::post().to(oauth::introspect)),
        )
        .service(
            web::resource("/register")
                .wrap(cors())
                .wrap(track(metrics, Endpoint::Register))
                .route(web::post().to(oauth::register)),
        );
    if services.settings.config.metrics {
        cfg.service(web::resource("/metrics").route(web::get().to(metrics_text)));
    }
}

/// A middleware counting the requests and error responses of one endpoint in `metrics`.
pub fn track<S, B>(
    metrics: &Arc<Metrics>,
    endpoint: Endpoint,
) -> impl Transform<
    S,
    ServiceRequest,
    Response = ServiceResponse<B>,
    Error = actix_web::Error,
    InitError = (),
>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    let metrics = Arc::clone(metrics);
    from_fn(move |req: ServiceRequest, next: Next<B>| {
        let metrics = Arc::clone(&metrics);
        async move {
            let res = next.call(req).await;
            match &res {
                Ok(res) => {
                    let error = res.response().extensions().get::<ErrorLabel>().map(|l| l.0);
                    metrics.request(endpoint, res.status().as_u16(), error);
                }
                Err(e) => {
                    let status = e.as_response_error().status_code().as_u16();
                    metrics.request(endpoint, status, None);
                }
            }
            res
        }
    })
}

/// Header carrying the request id, in requests (optional) and in every response.
pub const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Logging context for every request: an id (the client's or proxy's `X-Request-Id` when it
/// is 1 to 64 characters of `[A-Za-z0-9._-]`, else a fresh random one), echoed in the
/// `X-Request-Id` response header and available to the request's own code through
/// [`request_id`], which the warnings and errors logged while serving it include. Then one
/// access-log event with the id, method, path (never the query string, which may carry
/// codes), status, peer and time, on the `oauth_mcp::access` target (off by default: it
/// costs throughput at full load).
///
/// Why not an INFO span around the request: with the text or JSON formatter on, creating
/// and entering one per request cost about 10 µs of CPU per MCP call (a tenth of it),
/// measured. The span is DEBUG, so with `RUST_LOG=debug` every event of the request,
/// libraries' included, carries the id too; otherwise the id costs a task-local.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use tracing::Instrument as _;
    let id: Arc<str> = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_safe_request_id(v))
        .map_or_else(
            || format!("{:016x}", rand::random::<u64>()).into(),
            Arc::from,
        );
    let span = tracing::debug_span!("request", id = %id);
    let started = std::time::Instant::now();
    let access = tracing::enabled!(target: "oauth_mcp::access", tracing::Level::INFO).then(|| {
        let peer = req.peer_addr().map(|a| a.ip());
        (req.method().clone(), req.path().to_owned(), peer)
    });
    let mut res =
        crate::domain::request_id::scope(Arc::clone(&id), next.call(req).instrument(span)).await?;
    if let Some((method, path, peer)) = access {
        tracing::info!(
            target: "oauth_mcp::access",
            request_id = %id,
            %method,
            path,
            status = res.status().as_u16(),
            peer = ?peer,
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        );
    }
    if let Ok(v) = header::HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    Ok(res)
}

/// The id of the request being served on this task (`-` outside one), for log events
/// ([`crate::domain::request_id`] holds it, so layers below HTTP can log it too).
pub fn request_id() -> Arc<str> {
    crate::domain::request_id::current()
}

/// Whether a client-supplied request id may be logged and echoed as is (no spaces, quotes
/// or control characters that could forge log lines).
fn is_safe_request_id(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The issuer as this request's client addressed the server: [`Settings::issuer_for_host`]
/// over the `Host` header (a loopback alias answered with the name the client used). The one
/// place a request's `Host` becomes an issuer: the metadata documents, the authorization
/// responses, introspection and the bearer challenge all take it from here.
pub fn issuer(req: &HttpRequest, settings: &Settings) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    settings.issuer_for_host(host)
}

/// The address every per-address limit and throttle counts this request under: the TCP
/// peer, or behind a proxy in `--trusted-proxies` the client it names in `Forwarded` /
/// `X-Forwarded-For` ([`client_address::client_address`] has the rules).
pub fn client_address(req: &HttpRequest, settings: &Settings) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if settings.trusted_proxies.is_empty() {
        return Some(peer.to_canonical());
    }
    // Every field line of a header, in order, as one list (RFC 9110 §5.3); a value that is
    // not visible ASCII becomes an entry that is not an address (fail closed).
    let joined = |name: &str| {
        let lines: Vec<&str> = req
            .headers()
            .get_all(name)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
            .collect();
        (!lines.is_empty()).then(|| lines.join(","))
    };
    Some(client_address::client_address(
        peer,
        joined("forwarded").as_deref(),
        joined("x-forwarded-for").as_deref(),
        &settings.trusted_proxies,
    ))
}

/// `GET /metrics`: the Prometheus text exposition ([`crate::metrics`]).
async fn metrics_text(services: web::Data<Services>) -> HttpResponse {
    let sessions = services
        .ask(&services.sessions, CountSessions)
        .await
        .unwrap_or(0);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(services.metrics.render(sessions))
}
