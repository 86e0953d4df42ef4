//! `/mcp`: the `Authorization: Bearer` header value through `parse_bearer`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mcp::http::bearer::parse_bearer;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(token) = parse_bearer(header) {
        assert!(!token.is_empty() && token == token.trim());
        assert!(header.contains(token));
    }
});
