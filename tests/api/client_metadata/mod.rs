//! Client ID metadata documents (MCP 2025-11-25; draft-ietf-oauth-client-id-metadata-
//! document): a URL as `client_id`, fetched from a local document host. The servers under
//! test run with the development settings (`client_metadata_allow_http`,
//! `client_metadata_allow_private`) unless a test checks what those settings guard.
//!
//! One file per behaviour: `flow` (the whole flow as a document client), `refusals` (bad
//! documents, URLs and fetches) and `fetching` (caching, fetch slots, the last good copy).
//! This file holds the documents and request helpers they share; the local document host
//! itself is `helpers::DocumentHost`.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

mod fetching;
mod flow;
mod refusals;

const NAME: &str = "Document Client";

const REDIRECT: &str = "http://127.0.0.1:3000/callback";

// The document host (`DocumentHost`, `Route`) is in `helpers::document_host`; these
// methods build this module's documents on it.
impl DocumentHost {
    /// A valid document for `path` (its `client_id` is its own URL) with `extra` fields.
    fn document(&self, path: &str, extra: Value) -> Value {
        let mut doc = json!({
            "client_id": self.url(path),
            "client_name": NAME,
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        doc
    }

    /// Serves a valid document at `path`; returns its URL, the `client_id`.
    fn publish(&self, path: &str, headers: &[(&'static str, &str)]) -> String {
        let mut route = Route::json(&self.document(path, json!({})));
        for (name, value) in headers {
            route = route.header(name, value);
        }
        self.route(path, route);
        self.url(path)
    }
}

/// A server that may fetch from the document host (plain http on loopback).
async fn dev_app() -> TestApp {
    spawn_app_with(|c| {
        c.client_metadata_allow_http = true;
        c.client_metadata_allow_private = true;
        c.client_metadata_timeout = Duration::from_secs(2);
    })
    .await
}

fn authorize_params<'a>(client_id: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("scope", ALL_SCOPES),
        ("state", FLOW_STATE),
    ]
}

/// GET /authorize for `client_id`, read to the end.
async fn authorize(app: &TestApp, client_id: &str) -> Reply {
    let (_, challenge) = pkce_pair();
    Reply::read(
        app.get_authorize(&authorize_params(client_id, &challenge))
            .await,
    )
    .await
}

/// The error page for `client_id`, which must mention `why`.
async fn assert_refused(app: &TestApp, client_id: &str, why: &str) {
    let reply = authorize(app, client_id).await;
    assert_error_page(&reply);
    assert!(
        reply.body.contains(why),
        "{client_id}: the page should say {why:?}: {}",
        reply.body
    );
}

async fn token(app: &TestApp, form: &[(&str, &str)]) -> Reply {
    Reply::read(app.token_request(form, None).await).await
}

/// A refresh by the public client `client_id`.
async fn refresh_as(app: &TestApp, client_id: &str, refresh_token: &str) -> Reply {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
    ];
    token(app, &form).await
}

/// A valid document for `client_id` (any URL naming the document host).
fn document_for(client_id: &str, extra: Value) -> Value {
    let mut doc = json!({
        "client_id": client_id,
        "client_name": NAME,
        "redirect_uris": [REDIRECT],
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    doc
}
