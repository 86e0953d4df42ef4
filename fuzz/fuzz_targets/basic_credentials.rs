//! Client authentication at `/token`, `/revoke`, `/introspect`: the `Authorization` header
//! (Basic) and the form body through `presented_client`. The input is `header\nbody`; an
//! input without a newline is tried both as a header alone and as a body alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mcp::oauth::{client_auth::presented_client, params::Params};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (header, body) = common::split2(data);
    let params = Params::parse(body);
    if let Ok(header) = std::str::from_utf8(header) {
        if let Ok(client) = presented_client(Some(header), &params) {
            assert!(client.basic && client.secret.is_some());
            let _ = format!("{client:?}");
        }
    }
    let _ = presented_client(None, &params);
    let _ = presented_client(None, &Params::parse(data));
});
