//! Client ID metadata documents: the fetched body through `parse_document`, the input as a
//! `client_id` through `document_url`, and as response headers through `cache_policy`
//! (Cache-Control, Expires, Date and Age, one per line).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use oauth_mcp::oauth::client_document;

#[path = "common.rs"]
mod common;

const URL: &str = "https://app.example/client.json";

fuzz_target!(|data: &[u8]| {
    match client_document::parse_document(URL, data, common::settings(), 0) {
        Ok(client) => assert_eq!(client.client_id, URL),
        Err(e) => drop(e.to_string()),
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = client_document::document_url(text, true) {
        // Accepted URLs are exactly the string that was given, and URL-shaped.
        assert_eq!(url.as_str(), text);
        assert!(client_document::is_document_url(text));
    }
    let mut lines = text.splitn(4, '\n');
    let cache_control: Vec<&str> = lines.next().into_iter().collect();
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    let max = Duration::from_secs(86_400);
    let max_stale = Duration::from_secs(3600);
    let policy = client_document::cache_policy(
        &cache_control,
        lines.next(),
        lines.next(),
        lines.next(),
        now,
        max,
        max_stale,
    );
    if let Some(p) = policy {
        assert!(p.fresh <= max && p.stale <= max_stale);
    }
    // `no-store` keeps nothing, whatever else the header says.
    let no_store = cache_control
        .iter()
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-store"));
    assert!(!no_store || policy.is_none());
});
