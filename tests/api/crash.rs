//! Crash safety of the real binary: under a steady load of code exchanges, client_credentials
//! grants, refresh rotations and revocations it is killed with SIGKILL at random moments,
//! restarted on the same data directory each time, and every answer a client received before
//! the kill must still hold: tokens it was given are active, revocations it saw acknowledged
//! are in force, and refresh tokens rotated out never work again.
//!
//! Only what a client got an answer for is recorded. A request in flight at the kill has an
//! unknown outcome: a lost refresh leaves its grant's current refresh token unknown (neither
//! checked nor used again), a lost revocation leaves what it targeted unchecked. A transport
//! error while the server is meant to be up, or any unexpected HTTP answer, fails the test.
//!
//! `CRASH_SEED=<u64>` replays the random choices (which operations, when to kill); the seed is
//! printed on every run.

use std::{
    process::Child,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures_util::{stream, StreamExt as _};
use rand::{rngs::StdRng, RngExt as _, SeedableRng as _};
use reqwest::{header, redirect::Policy, Client};
use serde_json::Value;
use url::Url;

use crate::{
    helpers::{
        cookie_pairs, demo_authorize_params, hidden_inputs, pkce_pair, DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_REDIRECT_URI, DEMO_USER,
    },
    shutdown::{start_binary_with, wait_exit, Log},
};

/// Concurrent clients generating load.
const WORKERS: usize = 4;
/// SIGKILLs per run; the server is started `KILLS + 1` times.
const KILLS: usize = 4;
/// A rotated-out refresh token must fail at once: no grace window.
const SERVER_ARGS: &[&str] = &["--refresh-grace", "0"];

/// The binary, killed (SIGKILL) when dropped so a failing test leaves no server behind.
struct Server {
    child: Child,
    port: u16,
    log: Log,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary on `dir` listening on `port`. The port was free when the first
    /// server took it; after a kill it may take a moment to be free again, so a refusal to
    /// listen is retried (for at most 10 s). Any other failure to start fails the test.
    fn start(dir: &std::path::Path, port: u16) -> Result<Server, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match start_binary_with(dir, "info", &format!("127.0.0.1:{port}"), SERVER_ARGS) {
                Ok((child, reported, log)) => {
                    assert_eq!(reported, port, "the server listens where it was told");
                    return Ok(Server { child, port, log });
                }
                Err(output) if output.contains("cannot listen") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(output) => return Err(output),
            }
        }
    }

    /// The first start: a random port below the kernel's ephemeral range (32768 and up on
    /// Linux), so no outgoing connection can hold it when the server is restarted on it.
    fn start_fresh(dir: &std::path::Path, rng: &mut StdRng) -> Server {
        let mut last = String::new();
        for _ in 0..20 {
            let port = rng.random_range(20_000..32_000);
            match start_binary_with(dir, "info", &format!("127.0.0.1:{port}"), SERVER_ARGS) {
                Ok((child, reported, log)) => {
                    assert_eq!(reported, port);
                    return Server { child, port, log };
                }
                Err(output) if output.contains("cannot listen") => last = output,
                Err(output) => panic!("the server did not start: {output}"),
            }
        }
        panic!("no free port found: {last}");
    }

    /// SIGKILL (`Child::kill` sends it directly), then waits for the process to be gone.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL the server");
        let status = wait_exit(&mut self.child, Duration::from_secs(10));
        assert!(!status.success(), "killed, yet exited with {status}");
    }

    /// What makes a start unclean: error-level events and anything on standard error.
    fn problems(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.starts_with("stderr: ") || line.contains("\"level\":\"ERROR\""))
            .cloned()
            .collect()
    }
}

/// Why a request did not give the answer the client wanted.
enum Failure {
    /// Transport error after the kill began: the outcome is unknown and ignored.
    Lost,
    /// A wrong answer, or a transport error while the server was meant to be up.
    Unexpected(String),
}

/// HTTP client for one server lifetime (a fresh connection pool per server).
struct Http {
    client: Client,
    base: String,
    /// Set just before the SIGKILL: from then on a transport error is an expected loss.
    killing: Arc<AtomicBool>,
    /// Requests that were lost to a kill.
    lost: Arc<AtomicUsize>,
}

impl Http {
    fn new(port: u16, killing: Arc<AtomicBool>, lost: Arc<AtomicUsize>) -> Http {
        Http {
            client: Client::builder()
                .redirect(Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .expect("reqwest client"),
            base: format!("http://127.0.0.1:{port}"),
            killing,
            lost,
        }
    }

    fn transport(&self, what: &str, error: &reqwest::Error) -> Failure {
        if self.killing.load(Ordering::SeqCst) {
            self.lost.fetch_add(1, Ordering::SeqCst);
            Failure::Lost
        } else {
            Failure::Unexpected(format!("{what}: {error} while the server was up"))
        }
    }

    async fn send(&self, what: &str, request: reqwest::RequestBuilder) -> Result<Reply, Failure> {
        let response = request
            .send()
            .await
            .map_err(|error| self.transport(what, &error))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let cookies = cookie_pairs(response.headers());
        let body = response
            .text()
            .await
            .map_err(|error| self.transport(what, &error))?;
        Ok(Reply {
            status,
            location,
            cookies,
            body,
        })
    }

    /// POST `form` to `path` as demo_client (Basic).
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Reply, Failure> {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
            .form(form);
        self.send(path, request).await
    }

    /// A 200 token response: `(access_token, refresh_token if any)`.
    async fn token(&self, form: &[(&str, &str)]) -> Result<(String, Option<String>), Failure> {
        let reply = self.post("/token", form).await?;
        if reply.status != 200 {
            return Err(reply.unexpected("/token"));
        }
        let body: Value =
            serde_json::from_str(&reply.body).map_err(|_| reply.unexpected("/token (not JSON)"))?;
        let access = body["access_token"]
            .as_str()
            .ok_or_else(|| reply.unexpected("/token (no access_token)"))?;
        Ok((
            access.to_owned(),
            body["refresh_token"].as_str().map(str::to_owned),
        ))
    }

    /// Login, consent and code exchange for demo_client: a new grant with both tokens.
    async fn code_flow(&self) -> Result<(String, String), Failure> {
        let (verifier, challenge) = pkce_pair();
        let mut url = Url::parse(&format!("{}/authorize", self.base)).expect("URL");
        url.query_pairs_mut()
            .extend_pairs(demo_authorize_params(&challenge, "crash"));
        let page = self
            .send("/authorize", self.client.get(url.as_str()))
            .await?;
        if page.status != 200 {
            return Err(page.unexpected("GET /authorize"));
        }
        let mut form = hidden_inputs(&page.body);
        form.retain(|(name, _)| !matches!(name.as_str(), "username" | "password" | "action"));
        for (name, value) in [
            ("username", DEMO_USER),
            ("password", DEMO_PASSWORD),
            ("action", "approve"),
        ] {
            form.push((name.to_owned(), value.to_owned()));
        }
        // The password check is bounded server-wide (one per core); a busy answer (503,
        // Retry-After) is retried with the same form, as a browser user would.
        let mut tries = 0;
        let decision = loop {
            let mut request = self
                .client
                .post(format!("{}/authorize/decision", self.base))
                .form(&form);
            if !page.cookies.is_empty() {
                request = request.header(header::COOKIE, page.cookies.join("; "));
            }
            let decision = self.send("/authorize/decision", request).await?;
            tries += 1;
            if decision.status != 503 || tries == 50 {
                break decision;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let code = decision
            .location
            .as_deref()
            .filter(|_| decision.status == 303)
            .and_then(|location| Url::parse(location).ok())
            .and_then(|location| {
                location
                    .query_pairs()
                    .find(|(name, _)| name == "code")
                    .map(|(_, code)| code.into_owned())
            })
            .ok_or_else(|| decision.unexpected("/authorize/decision"))?;
        let (access, refresh) = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &verifier),
                ("redirect_uri", DEMO_REDIRECT_URI),
            ])
            .await?;
        let refresh = refresh.ok_or_else(|| {
            Failure::Unexpected("code exchange without a refresh token".to_owned())
        })?;
        Ok((access, refresh))
    }

    async fn revoke(&self, token: &str) -> Result<(), Failure> {
        let reply = self.post("/revoke", &[("token", token)]).await?;
        if reply.status == 200 {
            Ok(())
        } else {
            Err(reply.unexpected("/revoke"))
        }
    }
}

struct Reply {
    status: u16,
    location: Option<String>,
    cookies: Vec<String>,
    body: String,
}

impl Reply {
    fn unexpected(&self, what: &str) -> Failure {
        Failure::Unexpected(format!("{what}: {} {}", self.status, self.body))
    }
}

/// What one client knows about one grant (a code exchange or a client_credentials token).
struct Grant {
    /// Access tokens received and not sent to /revoke.
    access: Vec<String>,
    /// The current refresh token; `None` for client_credentials, or once a refresh of this
    /// grant was lost (the server may or may not have rotated it).
    refresh: Option<String>,
    /// Refresh tokens rotated out: the refresh that replaced them was answered.
    rotated: Vec<String>,
    state: GrantState,
}

impl Grant {
    fn new(access: String, refresh: Option<String>) -> Grant {
        Grant {
            access: vec![access],
            refresh,
            rotated: Vec::new(),
            state: GrantState::Live,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum GrantState {
    /// Nothing revoked it: its tokens must be active.
    Live,
    /// Revoked, acknowledged: by /revoke of its refresh token, or by reuse detection after a
    /// rotated-out refresh token was presented. Every token of it must be inactive.
    Revoked,
    /// A revocation of its refresh token was lost to a kill: not checked any more.
    Unknown,
}

/// What one load client (a token holder) knows; each grant is used by one holder only, so
/// no two requests race on it.
#[derive(Default)]
struct Holder {
    grants: Vec<Grant>,
    /// Access tokens whose revocation was acknowledged.
    revoked_access: Vec<String>,
    errors: Vec<String>,
    acknowledged: usize,
}

impl Holder {
    fn live(&self, rng: &mut StdRng, wanted: impl Fn(&Grant) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.grants.len())
            .filter(|&i| self.grants[i].state == GrantState::Live && wanted(&self.grants[i]))
            .collect();
        (!candidates.is_empty()).then(|| candidates[rng.random_range(0..candidates.len())])
    }

    /// One random operation; records only what was answered.
    async fn step(&mut self, http: &Http, rng: &mut StdRng) -> Result<(), Failure> {
        let roll = rng.random_range(0..100u32);
        let refreshable = self.live(rng, |grant| grant.refresh.is_some());
        let with_access = self.live(rng, |grant| !grant.access.is_empty());
        match (roll, refreshable, with_access) {
            (0..15, _, _) => {
                let (access, _) = http.token(&[("grant_type", "client_credentials")]).await?;
                self.grants.push(Grant::new(access, None));
            }
            (35..70, Some(i), _) => {
                // Taken out first: if the answer is lost, the current token is unknown.
                let old = self.grants[i].refresh.take().expect("refreshable");
                let (access, new) = http
                    .token(&[("grant_type", "refresh_token"), ("refresh_token", &old)])
                    .await?;
                let new = new.ok_or_else(|| {
                    Failure::Unexpected("refresh without a new refresh token".to_owned())
                })?;
                let grant = &mut self.grants[i];
                grant.rotated.push(old);
                grant.refresh = Some(new);
                grant.access.push(access);
            }
            (70..85, _, Some(i)) => {
                let access = &mut self.grants[i].access;
                // Taken out first: if the answer is lost, the token is not checked again.
                let token = access.swap_remove(rng.random_range(0..access.len()));
                http.revoke(&token).await?;
                self.revoked_access.push(token);
            }
            (85.., Some(i), _) => {
                let token = self.grants[i].refresh.clone().expect("refreshable");
                self.grants[i].state = GrantState::Unknown;
                http.revoke(&token).await?;
                self.grants[i].state = GrantState::Revoked;
            }
            // 15..35, and whatever has nothing to work on yet: a new grant by the code flow.
            _ => {
                let (access, refresh) = http.code_flow().await?;
                self.grants.push(Grant::new(access, Some(refresh)));
            }
        }
        self.acknowledged += 1;
        Ok(())
    }
}

/// Runs `client` against the server until the kill begins; returns it with what it learnt.
async fn load(mut client: Holder, http: Arc<Http>, mut rng: StdRng) -> Holder {
    while !http.killing.load(Ordering::SeqCst) {
        match client.step(&http, &mut rng).await {
            Ok(()) | Err(Failure::Lost) => {}
            Err(Failure::Unexpected(error)) => {
                client.errors.push(error);
                break;
            }
        }
    }
    client
}

/// One check of a token by introspection (as demo_client, which owns every token).
async fn expect_active(http: &Http, token: &str, active: bool, what: &str) -> Option<String> {
    let reply = match http.post("/introspect", &[("token", token)]).await {
        Ok(reply) => reply,
        Err(Failure::Lost) => return Some(format!("{what}: introspection lost")),
        Err(Failure::Unexpected(error)) => return Some(format!("{what}: {error}")),
    };
    let body: Option<Value> = serde_json::from_str(&reply.body).ok();
    let is_active = body.as_ref().and_then(|body| body["active"].as_bool());
    (reply.status != 200 || is_active != Some(active)).then(|| {
        format!(
            "{what} {}: expected active={active}, got {} {}",
            &token[..12],
            reply.status,
            reply.body
        )
    })
}

/// Everything the clients were told, checked against the restarted server; then every
/// rotated-out refresh token of a live grant is presented to /token, which must refuse it
/// with `invalid_grant` (and, by reuse detection, revoke the grant: it is marked revoked and
/// checked as such after the next kill). Returns the failures and the number of checks.
async fn verify(http: &Http, clients: &mut [Holder]) -> (Vec<String>, usize) {
    let mut expectations: Vec<(String, bool, &'static str)> = Vec::new();
    for client in clients.iter() {
        for token in &client.revoked_access {
            expectations.push((token.clone(), false, "revoked access token"));
        }
        for grant in &client.grants {
            let (active, access, refresh) = match grant.state {
                GrantState::Unknown => continue,
                GrantState::Live => (true, "access token", "refresh token"),
                GrantState::Revoked => (
                    false,
                    "access token of a revoked grant",
                    "refresh token of a revoked grant",
                ),
            };
            for token in &grant.access {
                expectations.push((token.clone(), active, access));
            }
            if let Some(token) = &grant.refresh {
                expectations.push((token.clone(), active, refresh));
            }
            for token in &grant.rotated {
                expectations.push((token.clone(), false, "rotated-out refresh token"));
            }
        }
    }
    let checks = expectations.len();
    let mut failures: Vec<String> = stream::iter(expectations)
        .map(|(token, active, what)| async move { expect_active(http, &token, active, what).await })
        .buffer_unordered(8)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;

    // Last: presenting a rotated-out token revokes its grant.
    for client in clients.iter_mut() {
        for grant in &mut client.grants {
            if grant.state != GrantState::Live || grant.rotated.is_empty() {
                continue;
            }
            for token in &grant.rotated {
                let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
                match http.post("/token", &form).await {
                    Ok(reply)
                        if reply.status == 400 && reply.body.contains("\"invalid_grant\"") => {}
                    Ok(reply) => failures.push(format!(
                        "rotated-out refresh token {} accepted or wrongly refused: {} {}",
                        &token[..12],
                        reply.status,
                        reply.body
                    )),
                    Err(Failure::Lost) => failures.push("reuse check lost".to_owned()),
                    Err(Failure::Unexpected(error)) => failures.push(error),
                }
            }
            grant.state = GrantState::Revoked;
        }
    }
    (failures, checks)
}

#[actix_web::test]
async fn sigkill_under_load_loses_no_acknowledged_credential_or_revocation() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("crash test seed: CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let lost = Arc::new(AtomicUsize::new(0));
    let mut clients: Vec<Holder> = (0..WORKERS).map(|_| Holder::default()).collect();
    let mut server = Server::start_fresh(dir.path(), &mut rng);
    let port = server.port;
    let mut total_checks = 0;

    for round in 0..=KILLS {
        let killing = Arc::new(AtomicBool::new(false));
        let http = Arc::new(Http::new(port, Arc::clone(&killing), Arc::clone(&lost)));

        // A clean start: metadata answers with the same issuer, nothing went wrong.
        let metadata = http
            .client
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                http.base
            ))
            .send()
            .await
            .expect("metadata after the start");
        assert_eq!(metadata.status(), 200, "round {round}: metadata");
        let metadata: Value = metadata.json().await.expect("metadata JSON");
        assert_eq!(metadata["issuer"], http.base.as_str(), "round {round}");
        let problems = server.problems();
        assert!(
            problems.is_empty(),
            "round {round} (seed {seed}): unclean start:\n{}",
            problems.join("\n")
        );

        if round > 0 {
            let (failures, checks) = verify(&http, &mut clients).await;
            total_checks += checks;
            assert!(
                failures.is_empty(),
                "after kill {round} (seed {seed}), {} of {checks} checks failed:\n{}",
                failures.len(),
                failures.join("\n")
            );
        }
        if round == KILLS {
            break;
        }

        // Load, then a SIGKILL at a random moment.
        let workers: Vec<_> = clients
            .drain(..)
            .map(|client| {
                let worker_rng = StdRng::seed_from_u64(rng.random());
                tokio::spawn(load(client, Arc::clone(&http), worker_rng))
            })
            .collect();
        let delay = Duration::from_millis(rng.random_range(200..1500));
        tokio::time::sleep(delay).await;
        killing.store(true, Ordering::SeqCst);
        server.kill();
        for worker in workers {
            let client = tokio::time::timeout(Duration::from_secs(15), worker)
                .await
                .expect("a load client stopped after the kill")
                .expect("a load client did not panic");
            assert!(
                client.errors.is_empty(),
                "round {round} (seed {seed}): {}",
                client.errors.join("\n")
            );
            clients.push(client);
        }
        server = Server::start(dir.path(), port)
            .unwrap_or_else(|output| panic!("restart {round} (seed {seed}) failed: {output}"));
    }

    let acknowledged: usize = clients.iter().map(|client| client.acknowledged).sum();
    let rotations: usize = clients
        .iter()
        .flat_map(|client| &client.grants)
        .map(|grant| grant.rotated.len())
        .sum();
    let revocations: usize = clients
        .iter()
        .map(|client| client.revoked_access.len())
        .sum::<usize>()
        + clients
            .iter()
            .flat_map(|client| &client.grants)
            .filter(|grant| grant.state == GrantState::Revoked)
            .count();
    let lost = lost.load(Ordering::SeqCst);
    eprintln!(
        "{KILLS} kills in {:?}: {acknowledged} answered operations, {rotations} rotations, \
         {revocations} revoked grants or tokens, {lost} requests lost to kills, \
         {total_checks} token checks",
        started.elapsed()
    );
    // The test checked something real: work was acknowledged, and kills hit requests.
    assert!(acknowledged > 20 && rotations > 0 && revocations > 0);
    assert!(lost > 0, "no request was in flight at any kill");
}
