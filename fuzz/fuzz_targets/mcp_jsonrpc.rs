//! `/mcp`: the bearer guard's reading of a JSON-RPC POST body (`oauth_mcp::mcp::peek`),
//! differentially against rmcp's own parse. Whenever rmcp would dispatch a request naming a
//! tool, resource or prompt, the guard must either refuse the body (400) or have read
//! exactly the same target: an authorization decision never rests on something other than
//! what is dispatched. No input may panic or exhaust the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mcp::mcp::peek::{peek, rmcp_target, TargetKind};

fuzz_target!(|data: &[u8]| {
    let peeked = peek(data);
    if let Ok(p) = &peeked {
        // A target is read only for the methods that name one, and only as a string.
        let kind = p.method.as_deref().and_then(TargetKind::of_method);
        assert_eq!(kind, p.target.as_ref().map(|t| t.kind));
    }
    if let Some(dispatched) = rmcp_target(data) {
        if let Ok(p) = peeked {
            assert_eq!(p.target, Some(dispatched), "guard and rmcp disagree");
        }
    }
});
