//! `POST /token`: the form body through `TokenRequest::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mcp::oauth::{params::Params, token::TokenRequest};

fuzz_target!(|data: &[u8]| {
    let params = Params::parse(data);
    let _ = params.any_duplicate();
    match TokenRequest::parse(&params) {
        Ok(request) => {
            let _ = (request.grant_type(), request.resource());
            let _ = format!("{request:?}");
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }
});
