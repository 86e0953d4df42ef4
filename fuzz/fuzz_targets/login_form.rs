//! `POST /authorize/decision`: the login and consent form body, through the decision
//! (`Decision::from_form`), the CSRF check (`forms::csrf_accepted`; the input is also read
//! as an `Origin` value for `forms::is_own_origin`), the request re-validation, and the
//! re-rendered login page that echoes the form's values.
#![no_main]

use actix_web::{cookie::Cookie, http::StatusCode};
use libfuzzer_sys::fuzz_target;
use oauth_mcp::{
    domain::server_key::ServerKey,
    endpoints::authorize::Decision,
    http::{
        forms::{csrf_accepted, is_own_origin},
        pages::{is_csrf_token, login_page},
    },
    oauth::{
        authorize::{self, prompts_login},
        params::Params,
    },
};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let params = Params::parse(data);
    let _ = params.is_duplicated("csrf") || params.is_duplicated("action");
    let _ = format!("{:?}", Decision::from_form(&params, None));
    let _ = format!("{:?}", Decision::from_form(&params, Some("session".into())));
    let _ = prompts_login(&params);
    if let Ok(origin) = std::str::from_utf8(data) {
        let _ = is_own_origin(common::settings(), origin);
    }
    // No form body carries a value the server minted for these cookies.
    let key = ServerKey::from_bytes(&[7u8; 32]).expect("a 32-byte key");
    let field = params.get("csrf").unwrap_or_default();
    for without_password in [false, true] {
        assert!(!csrf_accepted(
            &key,
            field,
            without_password,
            Some("s"),
            Some("p")
        ));
    }
    if let Ok(request) = authorize::validate(&params, Some(common::client()), common::settings()) {
        // The handler only ever echoes a well-formed CSRF token (it refuses the form
        // otherwise), so the page is built with one.
        let csrf = params
            .get("csrf")
            .filter(|c| is_csrf_token(c))
            .unwrap_or("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG");
        let username = params.get("username");
        for error in [None, Some("The username or password is incorrect.")] {
            let page = login_page(
                StatusCode::BAD_REQUEST,
                &request,
                &params,
                csrf,
                Cookie::new("csrf", csrf.to_owned()),
                username,
                error,
            );
            assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        }
    }
});
