//! The address of the client a request comes from, for per-address limits: the TCP peer,
//! or, when the peer is a configured trusted reverse proxy, the address that proxy
//! reports in `Forwarded` (RFC 7239 §4) or `X-Forwarded-For`. Also the key a limit counts
//! an address under ([`address_key`]: IPv6 clients by their /64).
//!
//! Rules (docs/deployment.md, "Reverse proxies"):
//! - Forwarded headers are read only when the TCP peer is inside `--trusted-proxies`; from
//!   anyone else they are ignored, since any client can send them.
//! - The chain is walked from the right (the hop nearest to us): trusted proxies are
//!   skipped and the first address that is not one is the client (RFC 7239 §5.2 lets each
//!   proxy append; only the entries our own proxies appended are believed).
//! - Fail closed: a header that cannot be parsed, an entry that is not an address
//!   (`unknown`, an obfuscated `_name`, a missing `for=`) where the client should be, or
//!   both headers present and disagreeing, and the proxy's own address is used. The
//!   limits then count that request under the proxy, never under an address its sender
//!   chose.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

/// Most entries read from one forwarded header; a longer chain is refused (fail closed).
const MAX_HOPS: usize = 64;

/// An address block such as `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address block like 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32 ({1})")]
pub struct CidrError(String, &'static str);

impl Cidr {
    /// Whether `ip` is inside this block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => mask4(a, self.prefix) == n,
            (IpAddr::V6(n), IpAddr::V6(a)) => mask6(a, self.prefix) == n,
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `address/prefix`, or a bare address (a single host). Bits beyond the prefix must be
    /// zero: `10.0.0.1/8` is refused as a likely typo rather than widened silently.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| CidrError(s.to_owned(), why);
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network = addr
            .parse::<IpAddr>()
            .map_err(|_| err("not an IP address"))?
            .to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse::<u8>().map_err(|_| err("bad prefix length"))?
            }
            Some(_) => return Err(err("bad prefix length")),
        };
        if prefix > max {
            return Err(err("prefix length too long"));
        }
        let masked = match network {
            IpAddr::V4(a) => IpAddr::V4(mask4(a, prefix)),
            IpAddr::V6(a) => IpAddr::V6(mask6(a, prefix)),
        };
        if masked != network {
            return Err(err("address has bits set beyond the prefix"));
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask4(a: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(a);
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(bits & mask)
}

fn mask6(a: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(a);
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    Ipv6Addr::from(bits & mask)
}

/// The reverse proxies whose forwarded headers are believed (`--trusted-proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses a list of blocks, each as [`Cidr::from_str`].
    pub fn parse<S: AsRef<str>>(blocks: &[S]) -> Result<Self, CidrError> {
        blocks
            .iter()
            .map(|b| b.as_ref().trim().parse())
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// No proxy is trusted: forwarded headers are ignored.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// The client address of a request from `peer` carrying these `Forwarded` and
/// `X-Forwarded-For` values (every field line of each, in order, joined with `,` as RFC
/// 9110 §5.3 allows; `None` when absent). See the module doc for the rules.
pub fn client_address(
    peer: IpAddr,
    forwarded: Option<&str>,
    x_forwarded_for: Option<&str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let from = |chain: Option<Vec<Option<IpAddr>>>| chain.and_then(|c| walk(&c, trusted));
    let resolved = match (forwarded, x_forwarded_for) {
        (None, None) => return peer,
        (Some(f), None) => from(parse_forwarded(f)),
        (None, Some(x)) => from(parse_x_forwarded_for(x)),
        // A proxy sets one of them; the other may be the client's own invention. Both are
        // believed only when they name the same client.
        (Some(f), Some(x)) => match (from(parse_forwarded(f)), from(parse_x_forwarded_for(x))) {
            (Some(a), Some(b)) if a == b => Some(a),
            _ => None,
        },
    };
    resolved.unwrap_or(peer)
}

/// The right-most entry that is not a trusted proxy; the left-most when all are. `None`
/// when that entry is not an address (fail closed).
fn walk(chain: &[Option<IpAddr>], trusted: &TrustedProxies) -> Option<IpAddr> {
    for hop in chain.iter().rev() {
        match hop {
            Some(ip) if trusted.contains(*ip) => continue,
            Some(ip) => return Some(*ip),
            None => return None,
        }
    }
    chain.first().copied().flatten()
}

/// The key a per-address limit counts `ip` under: IPv4 addresses as they are, IPv6
/// addresses by their /64 (one subscriber's usual allocation, which a client can roam
/// inside at will), IPv4-mapped IPv6 as IPv4.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(a) => IpAddr::V6(mask6(a, 64)),
        v4 => v4,
    }
}

/// `X-Forwarded-For`: comma-separated addresses, each IPv4 or IPv6, optionally with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`). `None` when malformed or too long; an entry
/// such as `unknown` is kept as a non-address (`None` in the list).
pub fn parse_x_forwarded_for(value: &str) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for entry in value.split(',') {
        if hops.len() >= MAX_HOPS {
            return None;
        }
        let entry = entry.trim_matches([' ', '\t']);
        if entry.is_empty() {
            return None;
        }
        hops.push(node_address(entry));
    }
    Some(hops)
}

/// `Forwarded` (RFC 7239 §4): elements separated by `,`, pairs by `;`, each `name=value`
/// with a token or quoted-string value. Answers each element's `for` address (`None` for
/// `unknown`, obfuscated identifiers and elements without `for`). `None` when the syntax is
/// broken, a parameter repeats within an element (§4), or the chain is too long.
pub fn parse_forwarded(value: &str) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    let mut rest = value;
    loop {
        if hops.len() >= MAX_HOPS {
            return None;
        }
        let (element, next) = split_element(rest)?;
        hops.push(element);
        match next {
            Some(n) => rest = n,
            None => return Some(hops),
        }
    }
}

/// Parses one element from the start of `s`; answers its `for` address and what follows
/// the `,` that ends it (`None` at the end of the value).
fn split_element(s: &str) -> Option<(Option<IpAddr>, Option<&str>)> {
    let mut s = s.trim_start_matches([' ', '\t']);
    let mut seen: Vec<String> = Vec::new();
    let mut address = None;
    loop {
        let eq = s.find('=')?;
        let name = s.get(..eq)?.trim_matches([' ', '\t']).to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(is_tchar) || seen.contains(&name) {
            return None;
        }
        let after = s.get(eq + 1..)?;
        let (value, rest) = if let Some(quoted) = after.strip_prefix('"') {
            let (v, len) = quoted_string(quoted)?;
            (v, quoted.get(len..)?)
        } else {
            let end = after
                .find(|c: char| !c.is_ascii() || !is_tchar(c as u8))
                .unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            (after.get(..end)?.to_owned(), after.get(end..)?)
        };
        if name == "for" {
            address = node_address(&value);
        }
        seen.push(name);
        let rest = rest.trim_start_matches([' ', '\t']);
        match rest.bytes().next() {
            None => return Some((address, None)),
            Some(b';') => s = rest.get(1..)?.trim_start_matches([' ', '\t']),
            Some(b',') => return Some((address, Some(rest.get(1..)?))),
            Some(_) => return None,
        }
    }
}

/// A quoted-string body (after the opening quote): its unescaped value and the bytes
/// consumed including the closing quote.
fn quoted_string(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => out.push(chars.next()?.1),
            c if c.is_control() && c != '\t' => return None,
            c => out.push(c),
        }
    }
    None
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A node (RFC 7239 §6): `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`, `[2001:db8::1]:80`,
/// and, leniently for `X-Forwarded-For`, a bare IPv6 address. `None` for anything else
/// (`unknown`, `_hidden`).
fn node_address(node: &str) -> Option<IpAddr> {
    if let Some(inner) = node.strip_prefix('[') {
        let (ip, port) = inner.split_once(']')?;
        if !(port.is_empty() || port.strip_prefix(':').is_some_and(valid_port)) {
            return None;
        }
        return ip
            .parse::<Ipv6Addr>()
            .ok()
            .map(|a| IpAddr::V6(a).to_canonical());
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let (ip, port) = node.rsplit_once(':')?;
    if !valid_port(port) {
        return None;
    }
    ip.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// RFC 7239 `node-port`: a port number or an obfuscated `_port`.
fn valid_port(p: &str) -> bool {
    (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok())
        || p.strip_prefix('_').is_some_and(|o| {
            !o.is_empty()
                && o.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    #[test]
    fn cidrs_parse_strictly_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.0.1")));
        assert!(
            c.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped counts as IPv4"
        );
        assert!(!c.contains(ip("11.0.0.1")));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::1")));
        for bad in [
            "",
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/08x",
            "::/129",
            "localhost",
            "10.0.0.0/8/8",
            " 10.0.0.0/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn forwarded_headers_are_ignored_from_untrusted_peers() {
        let none = TrustedProxies::default();
        let t = trusted(&["10.0.0.0/8"]);
        let peer = ip("203.0.113.5");
        assert_eq!(
            client_address(peer, Some("for=198.51.100.1"), Some("198.51.100.1"), &none),
            peer
        );
        assert_eq!(client_address(peer, None, Some("198.51.100.1"), &t), peer);
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let t = trusted(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let proxy = ip("10.0.0.2");
        let xff = |v: &str| client_address(proxy, None, Some(v), &t);
        assert_eq!(xff("198.51.100.1"), ip("198.51.100.1"));
        // The client prepended a forged entry; our proxy appended the real one.
        assert_eq!(xff("1.2.3.4, 198.51.100.1"), ip("198.51.100.1"));
        assert_eq!(xff("1.2.3.4, 198.51.100.1, 10.0.0.9"), ip("198.51.100.1"));
        assert_eq!(xff("198.51.100.1:4711"), ip("198.51.100.1"));
        assert_eq!(xff("[2001:db8::1]:4711"), ip("2001:db8::1"));
        assert_eq!(xff("2001:db8::1"), ip("2001:db8::1"));
        // All trusted: the furthest one is as close to the client as we know.
        assert_eq!(xff("10.0.0.7, 10.0.0.8"), ip("10.0.0.7"));
        // Fail closed: the proxy's own address.
        for bad in [
            "",
            "unknown",
            "1.2.3.4, unknown",
            "1.2.3.4,,5.6.7.8",
            "x",
            "1.2.3.4:99999",
        ] {
            assert_eq!(xff(bad), proxy, "{bad:?}");
        }
        let long = vec!["1.2.3.4"; MAX_HOPS + 1].join(",");
        assert_eq!(xff(&long), proxy);
    }

    #[test]
    fn rfc_7239_forwarded() {
        let t = trusted(&["10.0.0.0/8"]);
        let proxy = ip("10.0.0.2");
        let fwd = |v: &str| client_address(proxy, Some(v), None, &t);
        // RFC 7239 §4 and §7.4 examples.
        assert_eq!(fwd("for=\"_gazonk\""), proxy);
        assert_eq!(
            fwd("For=\"[2001:db8:cafe::17]:4711\""),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            fwd("for=192.0.2.60;proto=http;by=203.0.113.43"),
            ip("192.0.2.60")
        );
        assert_eq!(
            fwd("for=192.0.2.43, for=198.51.100.17"),
            ip("198.51.100.17")
        );
        assert_eq!(
            fwd("for=192.0.2.43, for=198.51.100.17;by=10.0.0.2, for=10.0.0.3"),
            ip("198.51.100.17")
        );
        assert_eq!(fwd("for=\"192.0.2.43:80\" ; proto=https"), ip("192.0.2.43"));
        for bad in [
            "for=unknown",
            "proto=https",
            "for=1.2.3.4;for=5.6.7.8",
            "for=\"1.2.3.4",
            "for=1.2.3.4 x",
            "for=",
            "=1.2.3.4",
            "for=[2001:db8::1]",
            "for=192.0.2.1,",
        ] {
            assert_eq!(fwd(bad), proxy, "{bad:?}");
        }
    }

    #[test]
    fn both_headers_must_agree() {
        let t = trusted(&["10.0.0.0/8"]);
        let proxy = ip("10.0.0.2");
        let both = |f: &str, x: &str| client_address(proxy, Some(f), Some(x), &t);
        assert_eq!(both("for=198.51.100.1", "198.51.100.1"), ip("198.51.100.1"));
        assert_eq!(both("for=1.2.3.4", "198.51.100.1"), proxy);
    }

    #[test]
    fn arbitrary_input_never_panics_and_never_trusts_an_untrusted_peer() {
        // A cheap stand-in for the `forwarded_header` fuzz target in `cargo test`.
        use rand::RngExt as _;
        const ALPHABET: &[u8] = b"for=;,\" []:._-0123456789abcdef:/ \\\tFORunknow";
        let t = trusted(&["10.0.0.0/8"]);
        let mut rng = rand::rng();
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let s: String = (0..len)
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect();
            let _ = s.parse::<Cidr>();
            let client = client_address(ip("10.0.0.1"), Some(&s), Some(&s), &t);
            let _ = address_key(client);
            let peer = ip("192.0.2.1");
            assert_eq!(client_address(peer, Some(&s), Some(&s), &t), peer, "{s:?}");
        }
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            address_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_eq!(address_key(ip("2001:db8:1:2::1")), ip("2001:db8:1:2::"));
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address_key(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
