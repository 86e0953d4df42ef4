//! Redirect URI rules: registration validation and matching at `/authorize`. The input is
//! `registered\nrequested`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mcp::domain::redirect;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (a, b) = common::split2(data);
    let (Ok(registered), Ok(requested)) = (std::str::from_utf8(a), std::str::from_utf8(b)) else {
        return;
    };
    let _ = redirect::check_syntax(requested);
    let _ = redirect::validate_for_registration(requested, true);
    // Turning private-use schemes off only ever refuses more.
    if redirect::validate_for_registration(registered, false).is_ok() {
        assert!(redirect::validate_for_registration(registered, true).is_ok());
    }
    if redirect::validate_for_registration(registered, true).is_ok() {
        // A registrable URI has no control character, whitespace or userinfo.
        assert!(!registered.chars().any(|c| c.is_control() || c.is_whitespace()));
        assert!(redirect::check_syntax(registered).is_ok());
    }
    assert!(redirect::matches(registered, registered));
    let Ok(reg) = redirect::validate_for_registration(registered, true) else {
        return;
    };
    // Whatever is not https or loopback http passed the private-use rule.
    if !matches!(reg.scheme(), "http" | "https") {
        assert!(redirect::is_private_use(&reg), "{registered:?}");
    }
    if redirect::matches(registered, requested) && registered != requested {
        // Only a loopback http URI may match another string (never a private-use one, which
        // is matched exactly), and only on another port: the
        // requested URI must be registrable itself, with the same host, path and query.
        let req = redirect::validate_for_registration(requested, true)
            .unwrap_or_else(|e| panic!("{registered:?} matched {requested:?} ({e})"));
        assert_eq!(reg.scheme(), "http");
        assert_eq!(
            (reg.host(), reg.path(), reg.query()),
            (req.host(), req.path(), req.query()),
            "{registered:?} matched {requested:?}"
        );
    }
});
