//! Dynamic client registration (RFC 7591) and the life of a registered client afterwards, one
//! file per behaviour: `answers` (what a registration returns), `refusals` (the RFC 7591 error
//! codes), `limits` (size, rate, time to live, a full registry), `repeats` (an identical
//! public registration answers the same client) and `flows` (registered clients through the
//! authorization flow).

use std::time::Duration;

use reqwest::header;
use serde_json::{json, Value};

use crate::helpers::{
    assert_error_page, assert_no_store, assert_oauth_error, assert_redirect_error,
    demo_authorize_params, pkce_pair, remove_param, scope_set, set_param, spawn_app,
    spawn_app_with, str_field, Reply, TestApp, ALL_SCOPES, DEMO_PASSWORD, DEMO_REDIRECT_URI,
    DEMO_USER, FLOW_STATE, START_UNIX,
};

mod answers;
mod flows;
mod limits;
mod refusals;
mod repeats;

async fn register(app: &TestApp, body: &Value) -> Reply {
    Reply::read(app.register(body).await).await
}

/// The authorization request of the public client `client_id` for `redirect_uri`.
fn public_params<'a>(
    client_id: &'a str,
    redirect_uri: &'a str,
    challenge: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("state", FLOW_STATE),
    ]
}
