//! `POST /register`: the JSON body through `registration::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mcp::oauth::registration;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = registration::parse(data, common::settings()) {
        let _ = (e.code(), e.to_string());
    }
});
