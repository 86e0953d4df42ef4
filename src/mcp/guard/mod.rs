//! The guard in front of `/mcp`, run on every request (POST, GET, DELETE). It runs, in
//! order, the HTTP layer's checks of a protected resource and then MCP's own:
//!
//! 1. Host and Origin ([`crate::http::bearer::origin`]; 403).
//! 2. The bearer token, its audience and the base scopes ([`crate::http::bearer::token`];
//!    401 / 403 with a challenge). The verified [`Caller`] comes from it.
//! 3. The session binding ([`session`]): a session initialized by another principal
//!    answers 404 as if unknown; the answer then serves rmcp's own session lookups for
//!    the rest of the request.
//! 4. The POST body (bounded, 413) is read by [`peek`]: one JSON-RPC object, no duplicate
//!    keys, bounded nesting, members other than `method` and the target ignored whatever
//!    their types. A body it cannot read that far gets 400 (a JSON-RPC error): unparsed
//!    input is never a reason to skip a check.
//! 5. Per-target scopes ([`scope`]; 403 `insufficient_scope` with the scopes to request).
//!    [`crate::mcp::Scoped`] checks the same again at dispatch.
//! 6. An `initialize` naming no session may create one, owned by this caller from the start
//!    ([`NewSession`]); when the session table is full it gets 503 with `Retry-After`.
//!
//! When the token cannot be checked now (the database is unreachable, the ledger does not
//! answer in time), the answer is 503 with `Retry-After` and a JSON-RPC error body
//! ([`unavailable`]), as for any transport-level refusal of `/mcp`: never a 401, which
//! would send the client to re-authorize for nothing.
//!
//! The verified [`Caller`] goes into the request extensions, from where rmcp-actix-web's
//! hook hands it to handlers and to the dispatch-side backstop.

pub mod scope;
pub mod session;

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{Method, StatusCode},
    middleware::Next,
    HttpMessage as _,
};

use crate::{
    actors::mcp_sessions::{AdmittedSession, NewSession, Owner},
    error::{Error, ErrorCode},
    http::bearer::{origin, read_body, token, transport},
    mcp::{peek::peek, Caller, ToolScopes},
    services::Services,
};

/// What [`Guard::admit`] lets through: permission to create a session (an `initialize`),
/// and the session admission to serve the request with.
type Admitted = (Option<NewSession>, Option<AdmittedSession>);

/// The answer when the bearer token cannot be checked now (see the module docs): 503, the
/// storage's `Retry-After` (1 s when it gave none: an actor that did not answer in time),
/// and a JSON-RPC internal error with no id (the request was not read).
pub fn unavailable(retry_after: Option<u64>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::ServiceUnavailable()
        .insert_header((
            actix_web::http::header::RETRY_AFTER,
            retry_after.unwrap_or(1).to_string(),
        ))
        .json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": -32603,
                "message": "Service Unavailable: the token cannot be checked now, retry later",
            },
        }))
}

/// The state the guard needs; one per mounted endpoint.
pub struct Guard {
    /// The token cache, and on a miss the ledger through [`Services::ask`] (timeout and
    /// metrics included); the session directory; the settings.
    services: Services,
    tool_scopes: ToolScopes,
}

impl Guard {
    /// A guard using `services`' token cache and ledger, session directory and settings.
    pub fn new(services: &Services, tool_scopes: ToolScopes) -> Self {
        Self {
            services: services.clone(),
            tool_scopes,
        }
    }

    /// Runs the checks, then the wrapped service. Refusals are rendered here (not returned
    /// as errors) so that the CORS middleware around us still decorates them: a browser
    /// client must be able to read `WWW-Authenticate` on a 401.
    pub async fn check<B: MessageBody>(
        &self,
        mut req: ServiceRequest,
        next: Next<B>,
    ) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
        let (new_session, session) = match self.admit(&mut req).await {
            Ok(a) => a,
            Err(Error::OAuth(e)) if e.code == ErrorCode::TemporarilyUnavailable => {
                let refusal = unavailable(e.retry_after);
                return Ok(req.into_response(refusal).map_into_right_body());
            }
            Err(e) => return Ok(req.error_response(e).map_into_right_body()),
        };
        let res = match (session, new_session) {
            (Some(session), _) => session.scope(next.call(req)).await?,
            (None, Some(new)) => {
                let (res, full) = new.scope(next.call(req)).await;
                let res = res?;
                if full {
                    // rmcp answered 500 for the refused session; say what happened.
                    let refusal = session::full(&self.services.settings);
                    return Ok(res.into_response(refusal).map_into_right_body());
                }
                res
            }
            (None, None) => next.call(req).await?,
        };
        Ok(res.map_into_left_body())
    }

    /// The checks, in the order of the module docs. On success the caller is in the request
    /// extensions; for an `initialize` naming no session, the permission to create one
    /// owned by the caller comes back, and for a request naming a session, the session
    /// directory's answer about it.
    async fn admit(&self, req: &mut ServiceRequest) -> Result<Admitted, Error> {
        let settings = &self.services.settings;
        origin::check(req.headers(), settings)?;
        let issuer = crate::http::issuer(req.request(), settings);
        let info = token::authenticate(&self.services, req.headers(), &issuer).await?;
        let caller = Caller {
            subject: info.subject.clone(),
            client_id: info.client_id.clone(),
            scopes: info.scopes.clone(),
        };
        let owner = Owner {
            subject: caller.subject.clone(),
            client_id: caller.client_id.clone(),
        };

        let named = session::named(req.headers());
        let names_session = named.is_some();
        let admitted = match named {
            Some(id) => Some(session::admit(&self.services, id, &owner)?),
            None => None,
        };

        let mut new_session = None;
        if req.method() == Method::POST {
            let body = read_body(req, settings.config.mcp_max_body_bytes).await?;
            // Fail closed: a body we cannot read far enough to decide is refused, never
            // passed on unchecked.
            let peek = peek(&body).map_err(|e| {
                tracing::debug!(request_id = %crate::http::request_id(), error = %e, "unreadable MCP request body");
                transport(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: the body must be one JSON-RPC message without duplicate keys",
                )
            })?;
            if let Some(target) = &peek.target {
                let base = &settings.mcp_scopes;
                scope::check(&self.tool_scopes, base, &caller.scopes, target, &issuer)?;
            }
            if peek.is_initialize() && !names_session {
                new_session = Some(NewSession::new(
                    owner,
                    peek.protocol_version,
                    peek.client_info,
                ));
            }
            req.set_payload(Payload::from(body));
        }
        req.extensions_mut().insert(caller);
        Ok((new_session, admitted))
    }
}
