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
//!
//! `server` starts and kills the binary, `http` is the load clients' HTTP, `holder` what
//! each client knows and the operations it runs, `verify` the checks after each restart.

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
    shutdown::{log_problems, start_binary_with, wait_exit, Log},
};

mod holder;
mod http;
mod server;
mod verify;

use self::{
    holder::{load, GrantState, Holder},
    http::{Failure, Http},
    server::Server,
    verify::verify,
};

/// Concurrent clients generating load.
const WORKERS: usize = 4;

/// SIGKILLs per run; the server is started `KILLS + 1` times.
const KILLS: usize = 4;

/// A rotated-out refresh token must fail at once: no grace window.
const SERVER_ARGS: &[&str] = &["--refresh-grace", "0"];

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
