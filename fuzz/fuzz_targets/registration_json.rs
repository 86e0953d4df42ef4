//! `POST /register`: the JSON body through `registration::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mcp::oauth::registration;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    match registration::parse(data, common::settings()) {
        Ok(client) => {
            // Whatever was accepted is bounded and free of control characters.
            assert!(client.redirect_uris.len() <= registration::MAX_REDIRECT_URIS);
            for uri in &client.redirect_uris {
                assert!(uri.len() <= registration::MAX_URI_BYTES);
                assert!(!uri.chars().any(|c| c.is_control() || c.is_whitespace()));
            }
            if let Some(name) = &client.client_name {
                assert!(name.chars().count() <= registration::MAX_NAME_CHARS);
                assert!(!name.chars().any(char::is_control));
            }
            if let Some(contacts) = client.extra.get("contacts").and_then(|c| c.as_array()) {
                assert!(contacts.len() <= registration::MAX_CONTACTS);
            }
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }
});
