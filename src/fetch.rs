//! Outbound HTTP: fetching client ID metadata documents (draft-ietf-oauth-client-id-
//! metadata-document §4, security considerations §6.5–6.6; MCP 2025-11-25 "Authorization
//! Server Abuse Protection"). The `client_id` is chosen by whoever sends an authorization
//! request, so every fetch is treated as an attempt at server-side request forgery:
//!
//! - **addresses**: only public unicast addresses are contacted. The URL's host is checked
//!   when it is an IP literal, and every address a name resolves to is checked by our own
//!   resolver, which is also the one the connection uses, so a name cannot pass the check
//!   with one answer and connect with another (DNS rebinding). A name with any non-public
//!   address is refused whole. `client_metadata_allow_private` lifts this for development
//!   and internal deployments.
//! - **scheme**: https only, unless `client_metadata_allow_http` (development).
//! - **no redirects** (draft-01 §4): a 3xx is an error, its target never fetched; only
//!   `200` is a document.
//! - **limits**: the whole fetch (resolution, connection, TLS, response) within
//!   `client_metadata_timeout`; the body at most `client_metadata_max_bytes` (declared
//!   length checked first, then counted while reading); at most [`MAX_CONCURRENT_FETCHES`]
//!   fetches at once, and at most `client_metadata_max_fetches_per_host` to any one host
//!   (so one slow or hostile host cannot take every slot), beyond which requests are
//!   answered "busy" rather than queued.
//! - **transient or not**: a failure the document's host may recover from on its own
//!   (no connection, timeout, TLS failure, unreadable body, status 404, 408, 429 or 5xx) is
//!   [`ClientDocumentError::Unavailable`], for which the document cache may serve the last good
//!   copy; any other answer (another status, a redirect, a document too large) is
//!   [`ClientDocumentError::Fetch`], a deliberate answer that ends the copy's use. 404 is
//!   counted as transient because hosted clients' sites have answered it during outages; a
//!   client withdrawing its document should answer 410.
//! - **no ambient configuration**: no proxy from the environment, no cookies, HTTP/1.1.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::Duration,
};

use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    header, redirect, StatusCode,
};
use tokio::sync::Semaphore;
use url::{Host, Url};

use crate::{config::Config, oauth::client_document::ClientDocumentError};

/// Fetches in flight at most; more are refused with [`ClientDocumentError::Busy`].
pub const MAX_CONCURRENT_FETCHES: usize = 16;

/// Whether the server may connect to `ip` when fetching on a client's behalf: public
/// unicast only. Refused: the special-use ranges of RFC 6890 and its updates (loopback,
/// private, shared, link-local, documentation, benchmarking, multicast, reserved), IPv6
/// outside global unicast `2000::/3` and the special ranges inside it, and IPv6 forms that
/// embed an IPv4 address (mapped, NAT64, 6to4) when the embedded one is not public.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                     // "this network"
        || a == 10                               // private
        || (a == 100 && (64..128).contains(&b))  // shared address space (CGNAT)
        || a == 127                              // loopback
        || (a == 169 && b == 254)                // link-local
        || (a == 172 && (16..32).contains(&b))   // private
        || (a == 192 && b == 0 && c == 0)        // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)        // documentation (TEST-NET-1)
        || (a == 192 && b == 88 && c == 99)      // 6to4 relay anycast
        || (a == 192 && b == 168)                // private
        || (a == 198 && (b == 18 || b == 19))    // benchmarking
        || (a == 198 && b == 51 && c == 100)     // documentation (TEST-NET-2)
        || (a == 203 && b == 0 && c == 113)      // documentation (TEST-NET-3)
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        // NAT64 well-known prefix 64:ff9b::/96: the IPv4 address it stands for decides.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => is_public_v4(embedded_v4(hi, lo)),
        // 6to4 2002::/16 carries an IPv4 address in bits 16..48.
        [0x2002, hi, lo, ..] => is_public_v4(embedded_v4(hi, lo)),
        [first, second, ..] => {
            (first & 0xe000) == 0x2000               // global unicast 2000::/3 only
                && !(first == 0x2001 && second < 0x200) // 2001::/23 IETF protocol assignments, Teredo
                && !(first == 0x2001 && second == 0xdb8) // documentation
                && (first & 0xfff0) != 0x3ff0 // 3fff::/20 documentation
        }
    }
}

/// Whether a connect-time I/O error is a refused TLS handshake (untrusted or mismatched
/// certificate, protocol error): tokio-rustls reports those as an `InvalidData` I/O error,
/// which the connector wraps in another I/O error. `source()` skips a wrapped I/O error
/// itself, so the wrapping is followed with `get_ref`.
fn is_tls_failure(error: &std::io::Error) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.kind() == std::io::ErrorKind::InvalidData {
            return true;
        }
        current = e.get_ref().and_then(|inner| inner.downcast_ref());
    }
    false
}

/// A document fetched with status 200, within the limits, and its response headers'
/// freshness information (read by `client_document::cache_policy`).
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The body, at most the configured size.
    pub body: Vec<u8>,
    /// `Cache-Control` header values.
    pub cache_control: Vec<String>,
    /// `Expires`.
    pub expires: Option<String>,
    /// `Date`.
    pub date: Option<String>,
    /// `Age`.
    pub age: Option<String>,
}

/// A resolved name had an address we do not connect to.
#[derive(Debug, thiserror::Error)]
#[error("the name resolves to a non-public address")]
struct BlockedAddress;

/// Resolves through the system resolver (on a blocking thread, as tokio does) and refuses
/// names with a non-public address. Used by the connection itself, so what is checked is
/// what is connected to.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
                return Err(Box::new(BlockedAddress) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The document fetcher: one HTTP client (built on first use, so processes that never
/// fetch, such as the administration command, never load the TLS roots) and the limits.
#[derive(Debug)]
pub struct DocumentFetcher {
    client: OnceLock<Result<reqwest::Client, String>>,
    slots: Semaphore,
    /// Fetches in flight per host (entries removed at zero).
    per_host: Mutex<HashMap<String, usize>>,
    max_per_host: usize,
    allow_http: bool,
    allow_private: bool,
    max_bytes: usize,
    timeout: Duration,
    /// Root certificates (PEM) trusted beside the bundled Mozilla roots.
    extra_roots: Option<Vec<u8>>,
}

impl DocumentFetcher {
    /// A fetcher with the limits of `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            client: OnceLock::new(),
            slots: Semaphore::new(MAX_CONCURRENT_FETCHES),
            per_host: Mutex::new(HashMap::new()),
            max_per_host: config.client_metadata_max_fetches_per_host,
            allow_http: config.client_metadata_allow_http,
            allow_private: config.client_metadata_allow_private,
            max_bytes: config.client_metadata_max_bytes,
            timeout: config.client_metadata_timeout,
            extra_roots: None,
        }
    }

    /// Also trusts the root certificates of `pem` (a private CA's document hosts;
    /// `--client-metadata-ca-file`, checked by the settings at start).
    pub fn with_extra_roots(mut self, pem: Option<Vec<u8>>) -> Self {
        self.extra_roots = pem;
        self
    }

    /// Whether plain http document URLs are accepted (development setting).
    pub fn allows_http(&self) -> bool {
        self.allow_http
    }

    fn client(&self) -> Result<&reqwest::Client, ClientDocumentError> {
        self.client
            .get_or_init(|| {
                let mut builder = reqwest::Client::builder();
                if let Some(pem) = &self.extra_roots {
                    let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
                    for root in roots {
                        builder = builder.add_root_certificate(root);
                    }
                }
                builder
                    .redirect(redirect::Policy::none())
                    .no_proxy()
                    .https_only(!self.allow_http)
                    .http1_only()
                    .timeout(self.timeout)
                    .connect_timeout(self.timeout)
                    .pool_idle_timeout(Duration::from_secs(30))
                    .user_agent(concat!("oauth-mcp/", env!("CARGO_PKG_VERSION")))
                    .dns_resolver(Arc::new(GuardedResolver {
                        allow_private: self.allow_private,
                    }))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| {
                tracing::error!(error = %e, "cannot build the HTTP client for client metadata documents");
                ClientDocumentError::Unavailable("the server cannot make outbound requests".into())
            })
    }

    /// Fetches the document at `url` (already checked by `client_document::document_url`).
    pub async fn fetch(&self, url: &Url) -> Result<Fetched, ClientDocumentError> {
        // IP literals are connected to without resolution, so they are checked here.
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !self.allow_private && !is_public(ip)) {
            return Err(ClientDocumentError::Blocked);
        }
        let client = self.client()?;
        let Ok(_slot) = self.slots.try_acquire() else {
            return Err(ClientDocumentError::Busy);
        };
        let _host_slot = self.host_slot(url.host_str().unwrap_or_default())?;
        tokio::time::timeout(self.timeout, self.fetch_within_limits(client, url))
            .await
            .unwrap_or_else(|_| Err(self.timed_out()))
    }

    /// Takes one of `host`'s fetch slots, or answers busy when they are all in use.
    fn host_slot(&self, host: &str) -> Result<HostSlot<'_>, ClientDocumentError> {
        let mut in_flight = self.per_host.lock().unwrap_or_else(PoisonError::into_inner);
        let count = in_flight.entry(host.to_owned()).or_default();
        if *count >= self.max_per_host {
            return Err(ClientDocumentError::Busy);
        }
        *count += 1;
        Ok(HostSlot {
            fetcher: self,
            host: host.to_owned(),
        })
    }

    fn timed_out(&self) -> ClientDocumentError {
        ClientDocumentError::Unavailable(
            format!("no answer within {} s", self.timeout.as_secs_f32()).into(),
        )
    }

    async fn fetch_within_limits(
        &self,
        client: &reqwest::Client,
        url: &Url,
    ) -> Result<Fetched, ClientDocumentError> {
        let mut response = client
            .get(url.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.request_error(&e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(ClientDocumentError::Fetch(
                format!("the server answered {status} (redirects are not followed)").into(),
            ));
        }
        if status != StatusCode::OK {
            let message = format!("the server answered {status}").into();
            let transient = status.is_server_error()
                || matches!(
                    status,
                    StatusCode::NOT_FOUND
                        | StatusCode::REQUEST_TIMEOUT
                        | StatusCode::TOO_MANY_REQUESTS
                );
            return Err(if transient {
                ClientDocumentError::Unavailable(message)
            } else {
                ClientDocumentError::Fetch(message)
            });
        }
        let too_large = || {
            ClientDocumentError::Fetch(
                format!("the document is larger than {} bytes", self.max_bytes).into(),
            )
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(too_large());
        }
        let headers = response.headers();
        let one = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let cache_control = headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let (expires, date, age) = (one(header::EXPIRES), one(header::DATE), one(header::AGE));
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.request_error(&e))? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            body,
            cache_control,
            expires,
            date,
            age,
        })
    }

    /// A coarse reason: enough for a client developer, nothing about our network.
    fn request_error(&self, e: &reqwest::Error) -> ClientDocumentError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut tls = false;
        while let Some(s) = source {
            if s.is::<BlockedAddress>() {
                return ClientDocumentError::Blocked;
            }
            tls |= s
                .downcast_ref::<std::io::Error>()
                .is_some_and(is_tls_failure);
            source = s.source();
        }
        if e.is_timeout() {
            return self.timed_out();
        }
        let what = if e.is_connect() && tls {
            "the TLS handshake failed (the certificate must be valid for the host and issued by a public CA)"
        } else if e.is_connect() {
            "could not connect"
        } else if e.is_body() || e.is_decode() {
            "the response body could not be read"
        } else {
            "the request failed"
        };
        ClientDocumentError::Unavailable(what.into())
    }
}

/// One fetch slot of a host, given back when dropped (however the fetch ends).
struct HostSlot<'a> {
    fetcher: &'a DocumentFetcher,
    host: String,
}

impl Drop for HostSlot<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .fetcher
            .per_host
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = in_flight.get_mut(&self.host) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn only_public_unicast_addresses_are_contacted() {
        for ok in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "198.17.255.255",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(public(ok), "{ok} should be public");
        }
        for blocked in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!public(blocked), "{blocked} should be refused");
        }
    }

    #[actix_web::test]
    async fn literal_and_resolved_private_addresses_are_refused_before_connecting() {
        let fetcher = DocumentFetcher::new(&{
            let mut c = Config::default();
            c.client_metadata_allow_http = true;
            c
        });
        // Nothing listens on these; a refusal other than Blocked would mean we connected.
        for url in [
            "http://127.0.0.1:9/client.json",
            "http://[::1]:9/client.json",
            "http://[::ffff:127.0.0.1]:9/client.json",
            "http://localhost:9/client.json",
        ] {
            let err = fetcher.fetch(&Url::parse(url).unwrap()).await.unwrap_err();
            assert_eq!(err, ClientDocumentError::Blocked, "{url}");
        }
    }
}
