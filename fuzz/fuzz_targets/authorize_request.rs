//! `GET`/`POST /authorize`: the query string or form body, through phase 1 (`client_id`),
//! phase 2 (`validate` against a registered client) and the error or code redirect.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mcp::oauth::{
    authorize::{self, AuthorizeError},
    params::Params,
};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let params = Params::parse(data);
    let _ = format!("{params:?}");
    let _ = authorize::client_id(&params);
    let settings = common::settings();
    let _ = authorize::validate(&params, None, settings);
    // A dynamically registered client never gets an error redirect before the user has
    // interacted (RFC 9700 §4.11.2).
    if let Err(AuthorizeError::Redirect { .. }) =
        authorize::validate(&params, Some(common::dynamic_client()), settings)
    {
        panic!("error redirected to a dynamically registered client");
    }
    match authorize::validate(&params, Some(common::client()), settings) {
        Ok(request) => {
            let mut pairs = vec![("code", "c0de"), ("iss", settings.issuer.as_str())];
            if let Some(state) = &request.state {
                pairs.push(("state", state));
            }
            // The redirect URI was verified, so the redirect must be buildable.
            assert!(authorize::redirect_url(&request.redirect_uri, &pairs).is_some());
        }
        Err(AuthorizeError::Redirect {
            redirect_uri,
            code,
            description,
            state,
        }) => {
            let url = authorize::error_redirect(
                &redirect_uri,
                code,
                description,
                state.as_deref(),
                &settings.issuer,
            );
            assert!(url.is_some(), "error redirect to a verified URI failed");
        }
        Err(AuthorizeError::Page(_)) => {}
    }
});
