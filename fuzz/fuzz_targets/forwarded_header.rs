//! Client addresses behind reverse proxies: the `Forwarded` (RFC 7239) and
//! `X-Forwarded-For` parsers, the walk that picks the client, and the `--trusted-proxies`
//! CIDR list. The first line of the input is the `Forwarded` value, the rest the
//! `X-Forwarded-For` value; each is also read as a CIDR list.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use oauth_mcp::domain::client_address::{
    address_key, client_address, parse_forwarded, parse_x_forwarded_for, TrustedProxies,
};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (first, rest) = common::split2(data);
    let (Ok(forwarded), Ok(xff)) = (std::str::from_utf8(first), std::str::from_utf8(rest)) else {
        return;
    };
    let _ = parse_forwarded(forwarded);
    let _ = parse_x_forwarded_for(xff);
    for list in [forwarded, xff] {
        let blocks: Vec<&str> = list.split([' ', ',']).filter(|b| !b.is_empty()).collect();
        if let Ok(t) = TrustedProxies::parse(&blocks) {
            let _ = t.contains(IpAddr::from([10, 0, 0, 1]));
        }
    }
    let trusted = TrustedProxies::parse(&["10.0.0.0/8", "2001:db8::/32"]).expect("valid list");
    let proxy = IpAddr::from([10, 0, 0, 1]);
    for (f, x) in [
        (Some(forwarded), None),
        (None, Some(xff)),
        (Some(forwarded), Some(xff)),
    ] {
        let client = client_address(proxy, f, x, &trusted);
        // Whatever the headers say, the answer is the proxy or an address they named
        // that is not a trusted proxy (or the left-most of an all-proxy chain).
        let _ = address_key(client);
        // From an untrusted peer, the headers are never read.
        let peer = IpAddr::from([203, 0, 113, 1]);
        assert_eq!(client_address(peer, f, x, &trusted), peer);
    }
});
