//! The authorization endpoint and the login/consent decision (OAuth 2.1 §4.1, RFC 9207,
//! RFC 8252 §7.3, RFC 8707), one file per behaviour: `errors` (what is shown locally, what is
//! redirected), `consent` (the page and its approval and denial), `login` (CSRF, wrong
//! passwords, login throttling) and `page` (what a browser gets: labels, CSP, escaping).

use crate::helpers::{
    assert_error_page, assert_redirect_error, attr, demo_authorize_params, find_tags,
    hidden_inputs, pkce_pair, remove_param, set_param, spawn_app, spawn_app_with, ConsentPage,
    Reply, DEMO_CLIENT_ID, DEMO_CLIENT_NAME, DEMO_PASSWORD, DEMO_REDIRECT_URI, DEMO_USER,
};

mod consent;
mod errors;
mod login;
mod page;

const STATE: &str = "af0ifjsldkj";
