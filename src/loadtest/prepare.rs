//! Discovery and data preparation for the load test, through the real protocol.

use base64::{
    engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD, Engine as _,
};
use sha2::{Digest as _, Sha256};
use url::Url;

use super::{client::Conn, Scenario, User};

/// At most this many codes are prepared per virtual user of a `code` run.
const CODES_PER_USER: usize = 6_000;
/// Pause between preparing codes and measuring.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the target cannot be load-tested.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

fn err(msg: impl Into<String>) -> TargetError {
    TargetError(msg.into())
}

/// Pulls a string field out of a JSON body.
pub(crate) fn json_field(body: &[u8], name: &str) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get(name)?
        .as_str()
        .map(str::to_owned)
}

/// The server under test and the credentials to use.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    pub addr: String,
    /// Value of the `Host` header.
    pub host: String,
    /// Path of the token endpoint (from RFC 8414 metadata).
    pub token_path: String,
    /// Path of the authorization endpoint.
    pub authorize_path: String,
    /// Path of the MCP endpoint.
    pub mcp_path: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Resource owner for the login form.
    pub username: String,
    /// Their password.
    pub password: String,
    /// A redirect URI registered for the client.
    pub redirect_uri: String,
    /// Codes to prepare for the `code` scenario (each costs one password login).
    pub codes: usize,
    /// Access token for `tools_call` (client_credentials).
    pub access_token: String,
    /// Address of the in-process trivial endpoint, once started.
    pub trivial: Option<std::net::SocketAddr>,
    /// Further instances, `(host:port, Host header)` each ([`TargetOptions::more_urls`]).
    pub others: Vec<(String, String)>,
}

/// `(host:port, Host header)` of an `http://` base URL.
fn endpoint(url: &str) -> Result<(String, String), TargetError> {
    let base = Url::parse(url).map_err(|e| err(format!("bad URL {url}: {e}")))?;
    let host = base.host_str().ok_or_else(|| err("URL has no host"))?;
    let port = base
        .port_or_known_default()
        .ok_or_else(|| err("URL has no port"))?;
    if base.scheme() != "http" {
        return Err(err(
            "only http:// targets are supported (run behind no TLS, or on loopback)",
        ));
    }
    let host_header = match base.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    Ok((format!("{host}:{port}"), host_header))
}

/// What the caller gives [`Target::discover`].
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// Base URL of the server.
    pub url: String,
    /// Base URLs of further instances of the same deployment (sharing its storage, server
    /// key and public URL): virtual user `i` sends its requests to instance `i mod n` (`url`
    /// first), one connection each, with `url`'s host as `Host` (as a load balancer would
    /// forward the public name). Discovery and preparation use `url`.
    pub more_urls: Vec<String>,
    /// Client to use; `None` registers a new confidential client.
    pub client: Option<(String, String)>,
    /// Resource owner.
    pub username: String,
    /// Password.
    pub password: String,
    /// Redirect URI (registered for the given client, or used to register).
    pub redirect_uri: String,
    /// Codes to prepare per `code` run.
    pub codes: usize,
}

impl Target {
    /// Reads the RFC 8414 metadata and, if no client was given, registers one (RFC 7591).
    pub async fn discover(opts: TargetOptions) -> Result<Self, TargetError> {
        let (addr, host) = endpoint(&opts.url)?;
        // Every instance is sent the first URL's name as `Host`, as a load balancer in front
        // of them would: it is the deployment's public name (its --public-url), which the
        // instances check (DNS-rebinding defence) and issue tokens for (the resource).
        let others = opts
            .more_urls
            .iter()
            .map(|u| endpoint(u).map(|(addr, _)| (addr, host.clone())))
            .collect::<Result<_, _>>()?;
        let mut t = Target {
            addr,
            host,
            token_path: String::new(),
            authorize_path: String::new(),
            mcp_path: "/mcp".into(),
            client_id: String::new(),
            client_secret: String::new(),
            username: opts.username,
            password: opts.password,
            redirect_uri: opts.redirect_uri,
            codes: opts.codes,
            access_token: String::new(),
            trivial: None,
            others,
        };
        let mut conn = t.conn();
        let meta = conn
            .request("GET", "/.well-known/oauth-authorization-server", &[], b"")
            .await
            .map_err(|e| err(format!("cannot reach {}: {e}", opts.url)))?;
        if meta.status != 200 {
            return Err(err(format!("RFC 8414 metadata answered {}", meta.status)));
        }
        let path_of = |field: &str| -> Result<String, TargetError> {
            let u = json_field(&meta.body, field)
                .ok_or_else(|| err(format!("metadata has no {field}")))?;
            let u = Url::parse(&u).map_err(|e| err(format!("{field}: {e}")))?;
            Ok(u.path().to_owned())
        };
        t.token_path = path_of("token_endpoint")?;
        t.authorize_path = path_of("authorization_endpoint")?;
        match opts.client {
            Some((id, secret)) => {
                t.client_id = id;
                t.client_secret = secret;
            }
            None => {
                let reg_path = path_of("registration_endpoint")?;
                // Servers may refuse client_credentials to registered clients (oauth-mcp does
                // unless --registered-client-credentials): then register without it, and the
                // scenarios that need it report the refusal as their errors.
                let mut last = String::new();
                for grants in [
                    &["authorization_code", "refresh_token", "client_credentials"][..],
                    &["authorization_code", "refresh_token"][..],
                ] {
                    let body = serde_json::json!({
                        "client_name": "oauth-mcp loadtest",
                        "redirect_uris": [t.redirect_uri],
                        "grant_types": grants,
                    });
                    let r = conn
                        .request(
                            "POST",
                            &reg_path,
                            &[("content-type", "application/json")],
                            body.to_string().as_bytes(),
                        )
                        .await
                        .map_err(|e| err(format!("registration: {e}")))?;
                    if let Some(id) = json_field(&r.body, "client_id") {
                        t.client_id = id;
                        t.client_secret = json_field(&r.body, "client_secret").unwrap_or_default();
                        break;
                    }
                    last = r.text();
                    eprintln!("  registration with grant types {grants:?} refused: {last}");
                }
                if t.client_id.is_empty() {
                    return Err(err(format!("registration failed: {last}")));
                }
            }
        }
        Ok(t)
    }

    pub(crate) fn conn(&self) -> Conn {
        Conn::new(&self.addr, &self.host)
    }

    /// The instances (the first given, then the others).
    pub(crate) fn instances(&self) -> usize {
        1 + self.others.len()
    }

    /// A connection for virtual user `user` of `scenario`: to instance `user mod n` (round
    /// robin per connection), or to the trivial endpoint.
    pub(crate) fn conn_for(&self, scenario: Scenario, user: usize) -> Conn {
        if let (Scenario::Trivial, Some(a)) = (scenario, self.trivial) {
            return Conn::new(&a.to_string(), &a.to_string());
        }
        match user
            .checked_rem(self.instances())
            .and_then(|k| k.checked_sub(1))
            .and_then(|k| self.others.get(k))
        {
            Some((addr, host)) => Conn::new(addr, host),
            None => self.conn(),
        }
    }

    pub(crate) fn basic(&self) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "Basic {}",
            STANDARD.encode(format!(
                "{}:{}",
                enc(&self.client_id),
                enc(&self.client_secret)
            ))
        )
    }

    pub(crate) fn redirect_uri_encoded(&self) -> String {
        url::form_urlencoded::byte_serialize(self.redirect_uri.as_bytes()).collect()
    }

    /// One code through the login form: GET the authorization page, then approve. The first
    /// approval signs in with the password; later ones reuse the browser sign-in session
    /// (`session`, a `name=value` cookie) and only confirm consent, as a browser would.
    /// Answers `(code, verifier)`.
    async fn code(
        &self,
        conn: &mut Conn,
        session: &mut Option<String>,
    ) -> Result<(String, String), TargetError> {
        let verifier = crate::domain::secrets::random_token();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        // The authorization request, sent as the GET query and carried again by the form.
        let request = [
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "loadtest"),
        ];
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(request)
            .finish();
        let session_header: Vec<(&str, &str)> =
            session.iter().map(|c| ("cookie", c.as_str())).collect();
        let page = conn
            .request(
                "GET",
                &format!("{}?{query}", self.authorize_path),
                &session_header,
                b"",
            )
            .await
            .map_err(|e| err(format!("authorize: {e}")))?;
        if page.status != 200 {
            return Err(err(format!(
                "authorization page answered {}: {}",
                page.status,
                page.text()
            )));
        }
        let html = page.text();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .ok_or_else(|| {
                err("no CSRF field on the login page (only oauth-mcp's login form is supported)")
            })?;
        let mut cookies = page.cookies();
        cookies.extend(session.iter().cloned());
        let cookie = cookies.join("; ");
        let signed_in = session.is_some() && !html.contains("type=\"password\"");
        // Built in a block: the serializer is not Send and must not live across an await.
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("csrf", csrf)
                .extend_pairs(request)
                .append_pair("action", "approve");
            if !signed_in {
                form.append_pair("username", &self.username)
                    .append_pair("password", &self.password);
            }
            form.finish()
        };
        // A password login may find every password-check slot busy (the server answers 503
        // with Retry-After, e.g. when the lanes all sign in at once): wait and post again.
        let mut busy = 0;
        let r = loop {
            let r = conn
                .request(
                    "POST",
                    &format!("{}/decision", self.authorize_path),
                    &[
                        ("content-type", "application/x-www-form-urlencoded"),
                        ("cookie", &cookie),
                    ],
                    form.as_bytes(),
                )
                .await
                .map_err(|e| err(format!("login: {e}")))?;
            if r.status != 503 || busy >= 30 {
                break r;
            }
            busy += 1;
            let wait = r
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .min(5);
            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        };
        if let Some(c) = r
            .cookies()
            .into_iter()
            .find(|c| c.contains("oauth_mcp_session="))
        {
            *session = Some(c);
        }
        let location = r.header("location").ok_or_else(|| {
            err(format!(
                "login did not redirect ({}): {}",
                r.status,
                r.text()
            ))
        })?;
        let url = Url::parse(location).map_err(|e| err(format!("bad redirect: {e}")))?;
        let code = url
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| err(format!("no code in {location}")))?;
        Ok((code, verifier))
    }

    async fn codes(&self, n: usize) -> Result<Vec<(String, String)>, TargetError> {
        // Each lane signs in once (Argon2 on the server), then only confirms consent.
        let lanes = 4.min(n.max(1));
        let mut tasks = Vec::new();
        for lane in 0..lanes {
            let me = self.clone();
            let count = n / lanes + usize::from(lane < n % lanes);
            tasks.push(tokio::spawn(async move {
                let mut conn = me.conn();
                let mut session = None;
                let mut out = Vec::with_capacity(count);
                for _ in 0..count {
                    out.push(me.code(&mut conn, &mut session).await?);
                }
                Ok::<_, TargetError>(out)
            }));
        }
        let mut all = Vec::with_capacity(n);
        for t in tasks {
            all.extend(t.await.map_err(|e| err(e.to_string()))??);
        }
        Ok(all)
    }

    async fn token(&self, conn: &mut Conn, body: &str) -> Result<serde_json::Value, TargetError> {
        let basic = self.basic();
        let r = conn
            .request(
                "POST",
                &self.token_path,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("authorization", &basic),
                ],
                body.as_bytes(),
            )
            .await
            .map_err(|e| err(format!("token: {e}")))?;
        if r.status != 200 {
            return Err(err(format!(
                "token endpoint answered {}: {}",
                r.status,
                r.text()
            )));
        }
        serde_json::from_slice(&r.body).map_err(|e| err(e.to_string()))
    }

    /// Builds the virtual users of a run.
    pub(crate) async fn prepare(
        &self,
        scenario: Scenario,
        concurrency: usize,
    ) -> Result<Vec<User>, TargetError> {
        let mut conn = self.conn();
        match scenario {
            Scenario::Code => {
                // A single user exchanges a few thousand codes per second: preparing the full
                // count for it would only leave the server busy writing them out during the
                // measured run.
                let count = self.codes.min(concurrency.saturating_mul(CODES_PER_USER));
                eprintln!("  preparing {count} codes through the login form...");
                let mut codes = self.codes(count).await?;
                // Let the server's background writes of the preparation settle first.
                tokio::time::sleep(SETTLE).await;
                let mut users: Vec<User> = (0..concurrency)
                    .map(|_| User::Code { codes: Vec::new() })
                    .collect();
                let mut i = 0;
                while let Some(c) = codes.pop() {
                    if let Some(User::Code { codes }) = users.get_mut(i % concurrency) {
                        codes.push(c);
                    }
                    i += 1;
                }
                Ok(users)
            }
            Scenario::Refresh => {
                let mut users = Vec::with_capacity(concurrency);
                for (code, verifier) in self.codes(concurrency).await? {
                    let body = format!("grant_type=authorization_code&code={code}&code_verifier={verifier}&redirect_uri={}", self.redirect_uri_encoded());
                    let tokens = self.token(&mut conn, &body).await?;
                    let token = tokens
                        .get("refresh_token")
                        .and_then(|v| v.as_str())
                        .ok_or_else(|| err("no refresh token issued"))?
                        .to_owned();
                    users.push(User::Refresh { token });
                }
                Ok(users)
            }
            Scenario::ClientCredentials | Scenario::Trivial => {
                Ok((0..concurrency).map(|_| User::Plain).collect())
            }
            Scenario::ToolsCallStateless => Ok((0..concurrency).map(|_| User::Stateless).collect()),
            Scenario::ToolsCall => {
                // MCP sessions live in one instance: each instance gets its own, shared by
                // the virtual users sent to it (up to 16 per instance, one owner, whose
                // sessions the server caps); a session takes concurrent requests.
                let n = self.instances();
                let mut sessions: Vec<Vec<String>> = Vec::with_capacity(n);
                for k in 0..n {
                    let users_here = concurrency / n + usize::from(k < concurrency % n);
                    let mut conn = self.conn_for(scenario, k);
                    let mut here = Vec::new();
                    for _ in 0..users_here.min(16) {
                        here.push(self.open_session(&mut conn).await?);
                    }
                    sessions.push(here);
                }
                Ok((0..concurrency)
                    .map(|i| {
                        let here = sessions.get(i % n.max(1));
                        let session = here
                            .and_then(|h| h.get((i / n.max(1)) % h.len().max(1)))
                            .cloned()
                            .unwrap_or_default();
                        User::Tools { session }
                    })
                    .collect())
            }
        }
    }

    /// Opens an MCP session (protocol 2025-11-25) on `conn`'s instance: `initialize`, then
    /// `notifications/initialized`. Answers its `Mcp-Session-Id`.
    async fn open_session(&self, conn: &mut Conn) -> Result<String, TargetError> {
        let bearer = format!("Bearer {}", self.access_token);
        let headers = [
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"loadtest","version":"1"}}}"#;
        let r = conn
            .request("POST", &self.mcp_path, &headers, init.as_bytes())
            .await
            .map_err(|e| err(format!("initialize: {e}")))?;
        let session = r
            .header("mcp-session-id")
            .ok_or_else(|| {
                err(format!(
                    "initialize answered {} without a session: {}",
                    r.status,
                    r.text()
                ))
            })?
            .to_owned();
        let mut h = headers.to_vec();
        h.push(("mcp-session-id", &session));
        h.push(("mcp-protocol-version", "2025-11-25"));
        conn.request(
            "POST",
            &self.mcp_path,
            &h,
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .await
        .map_err(|e| err(format!("initialized: {e}")))?;
        Ok(session)
    }

    /// Gets the access token `tools_call` uses (client_credentials).
    pub async fn fetch_access_token(&mut self) -> Result<(), TargetError> {
        let mut conn = self.conn();
        let tokens = self
            .token(&mut conn, "grant_type=client_credentials")
            .await?;
        self.access_token = tokens
            .get("access_token")
            .and_then(|v| v.as_str())
            .ok_or_else(|| err("no access token"))?
            .to_owned();
        Ok(())
    }
}
