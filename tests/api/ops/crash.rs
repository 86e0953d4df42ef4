//! Crash tests of a deployment of three instances on one PostgreSQL (issue 14): under a few
//! seconds of load (client_credentials grants, revocations, refresh rotations, spread over
//! the instances as a balancer would), one instance is SIGKILLed, or, separately, the
//! PostgreSQL server is crashed (`pg_ctl stop -m immediate`) and started again. Afterwards
//! every token a client was given is active, every revocation it saw acknowledged is in
//! force, the survivors kept serving, and the killed instance (restarted) or every instance
//! (after the database came back, without restarting them) serves again.
//!
//! Only answers a client received count: a request whose answer was lost (the instance
//! died, the connection broke, a 503 while the database was down) has an unknown outcome,
//! and what it concerned is no longer checked. Any other unexpected answer fails the test.

use std::{
    cell::Cell,
    process::Child,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    helpers::{attach, Cluster, PrivateCluster, TestApp, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET},
    shutdown::{start_binary_with, Log},
};

/// How long the load goes on after the disruption.
const AFTER: Duration = Duration::from_secs(2);
/// Concurrent load clients.
const WORKERS: usize = 6;

/// What one load client was told.
#[derive(Default)]
struct Seen {
    /// Access tokens received and not sent to /revoke.
    live: Vec<String>,
    /// Tokens whose revocation was acknowledged.
    revoked: Vec<String>,
    /// The current refresh token, while its last rotation's outcome is known.
    refresh: Option<String>,
    /// 200s per instance, and when the last one came.
    served: Vec<usize>,
    last_served: Vec<Option<Instant>>,
    /// Answers lost (transport errors) and 503s.
    lost: usize,
    unavailable: usize,
}

/// A POST with demo_client's Basic credentials: `None` when no answer came (connection
/// refused or broken), else the status and JSON body.
async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Option<(u16, Value)> {
    let response = app
        .client
        .post(app.url(path))
        .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
        .form(form)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Some((status, body))
}

fn token(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .to_owned()
}

/// One load client: until `until`, round-robin over `apps` (a balancer), issue a
/// client_credentials token (6 in 10), revoke one it holds (2 in 10) or rotate its refresh
/// token (2 in 10). Only 200 (and 503, or no answer, as unknown outcomes) are expected.
async fn load(apps: &[TestApp], worker: usize, refresh: String, stop: &Cell<bool>) -> Seen {
    let mut seen = Seen {
        refresh: Some(refresh),
        served: vec![0; apps.len()],
        last_served: vec![None; apps.len()],
        ..Seen::default()
    };
    let mut step = worker;
    while !stop.get() {
        step += 1;
        let i = step % apps.len();
        let app = &apps[i];
        let op = step % 10;
        let (what, answer) = if op < 6 || (op < 8 && seen.live.is_empty()) {
            let form = [("grant_type", "client_credentials")];
            ("client_credentials", post(app, "/token", &form).await)
        } else if op < 8 {
            let target = seen.live.swap_remove(step % seen.live.len());
            let answer = post(app, "/revoke", &[("token", target.as_str())]).await;
            if matches!(answer, Some((200, _))) {
                seen.revoked.push(target);
            }
            ("revoke", answer)
        } else if let Some(refresh) = seen.refresh.take() {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
            ];
            let answer = post(app, "/token", &form).await;
            if let Some((200, body)) = &answer {
                seen.refresh = Some(token(body, "refresh_token"));
            }
            ("refresh", answer)
        } else {
            continue;
        };
        match answer {
            None => seen.lost += 1,
            Some((503, body)) => {
                assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
                seen.unavailable += 1;
            }
            Some((200, body)) => {
                if what != "revoke" {
                    seen.live.push(token(&body, "access_token"));
                }
                seen.served[i] += 1;
                seen.last_served[i] = Some(Instant::now());
            }
            Some((status, body)) => panic!("{what} on instance {i}: {status} {body}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen
}

/// Runs [`WORKERS`] load clients over `apps`: a second of load, then `disrupt` under load,
/// then [`AFTER`] more; answers what they saw.
async fn run_load(apps: &[TestApp], disrupt: impl std::future::Future<Output = ()>) -> Vec<Seen> {
    // A grant with a refresh token for each client, before the load.
    let mut refresh = Vec::new();
    for w in 0..WORKERS {
        let tokens = apps[w % apps.len()].exchange_code_demo().await;
        refresh.push(token(&tokens, "refresh_token"));
    }
    let stop = Cell::new(false);
    let workers = futures_util::future::join_all(
        refresh
            .into_iter()
            .enumerate()
            .map(|(w, r)| load(apps, w, r, &stop)),
    );
    let disruption = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        disrupt.await;
        tokio::time::sleep(AFTER).await;
        stop.set(true);
    };
    let (seen, ()) = tokio::join!(workers, disruption);
    seen
}

/// Every acknowledged token is active and every acknowledged revocation in force, as
/// `judge` (an instance) sees them; with `rotate`, the current refresh tokens still rotate
/// (once: a second time would be a reuse).
async fn verify(judge: &TestApp, seen: &[Seen], rotate: bool) {
    let introspect = |token: String| async move {
        let (status, body) = post(judge, "/introspect", &[("token", token.as_str())])
            .await
            .expect("introspection answers");
        assert_eq!(status, 200, "{body}");
        (
            token,
            body["active"].as_bool().expect("active is a boolean"),
        )
    };
    for s in seen {
        for (token, active) in
            futures_util::future::join_all(s.live.iter().cloned().map(introspect)).await
        {
            assert!(active, "an acknowledged token is not active: {token:.12}…");
        }
        for (token, active) in
            futures_util::future::join_all(s.revoked.iter().cloned().map(introspect)).await
        {
            assert!(
                !active,
                "an acknowledged revocation is not in force: {token:.12}…"
            );
        }
        if let Some(refresh) = s.refresh.as_ref().filter(|_| rotate) {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
            ];
            let (status, body) = post(judge, "/token", &form).await.expect("an answer");
            assert_eq!(status, 200, "the current refresh token: {body}");
        }
    }
}

fn totals(seen: &[Seen], instances: usize) -> (Vec<usize>, usize, usize, usize, usize) {
    let mut served = vec![0; instances];
    for s in seen {
        for (i, n) in s.served.iter().enumerate() {
            served[i] += n;
        }
    }
    let live = seen.iter().map(|s| s.live.len()).sum();
    let revoked = seen.iter().map(|s| s.revoked.len()).sum();
    let lost = seen.iter().map(|s| s.lost).sum();
    let unavailable = seen.iter().map(|s| s.unavailable).sum();
    (served, live, revoked, lost, unavailable)
}

#[actix_web::test]
async fn one_of_three_instances_sigkilled_under_load_loses_nothing_acknowledged_and_rejoins() {
    let Some(mut cluster) = Cluster::start(module_path!(), 3, &[]).await else {
        return;
    };
    // Until the client registry reads through (the change feed), an instance knows the
    // clients that existed when it started: the demo client was seeded by whichever
    // instance came first, so start each again now that it exists.
    for i in 0..3 {
        cluster.kill(i);
        cluster.restart(i);
    }
    let apps: Vec<TestApp> = (0..3)
        .map(|i| attach(&cluster.app(i).address, cluster.app(i).port))
        .collect();
    let killed_at = Cell::new(None);
    let seen = run_load(&apps, async {
        cluster.kill(1);
        killed_at.set(Some(Instant::now()));
    })
    .await;
    let killed_at = killed_at.get().expect("the kill ran");
    let (served, live, revoked, lost, unavailable) = totals(&seen, 3);
    eprintln!(
        "served per instance {served:?}, {live} tokens and {revoked} revocations acknowledged, \
         {lost} answers lost, {unavailable} 503s"
    );
    assert!(live > 0 && revoked > 0, "the load ran");
    assert_eq!(unavailable, 0, "nothing was unavailable");
    // The survivors kept serving after the kill; the killed one did not.
    for i in [0, 2] {
        assert!(
            seen.iter()
                .any(|s| s.last_served[i].is_some_and(|t| t > killed_at + Duration::from_secs(1))),
            "instance {i} stopped serving"
        );
    }
    assert!(seen
        .iter()
        .all(|s| s.last_served[1].is_none_or(|t| t <= killed_at)));

    cluster.restart(1);
    // The killed instance rejoins: it serves, and sees what the others acknowledged; the
    // survivors see everything acknowledged too.
    for (i, app) in apps.iter().enumerate() {
        verify(app, &seen, i == 1).await;
    }
    let form = [("grant_type", "client_credentials")];
    assert_eq!(
        post(&apps[1], "/token", &form).await.map(|a| a.0),
        Some(200)
    );
    for instance in &cluster.instances {
        assert_eq!(instance.problems(), Vec::<String>::new());
    }
}

/// Three instances of the binary on `url` with one shared key file; each answers `/readyz`.
fn start_three(
    url: &str,
    key_file: &std::path::Path,
) -> Vec<(Child, TestApp, Log, tempfile::TempDir)> {
    (0..3)
        .map(|_| {
            let data_dir = tempfile::tempdir().expect("a data directory");
            let key = key_file.display().to_string();
            let args = ["--database-url", url, "--key-file", key.as_str()];
            let (child, port, log) =
                start_binary_with(data_dir.path(), "info", "127.0.0.1:0", &args)
                    .unwrap_or_else(|out| panic!("an instance did not start: {out}"));
            (
                child,
                attach(&format!("http://127.0.0.1:{port}"), port),
                log,
                data_dir,
            )
        })
        .collect()
}

#[actix_web::test]
async fn a_postgresql_crash_and_restart_under_load_loses_nothing_acknowledged() {
    let Some(pg) = PrivateCluster::start_new(module_path!()) else {
        return;
    };
    let key_dir = tempfile::tempdir().expect("a key directory");
    let key_file = key_dir.path().join("server.key");
    std::fs::write(&key_file, rand::random::<[u8; 32]>()).expect("write the key");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut instances = start_three(&pg.url(), &key_file);
    let apps: Vec<TestApp> = instances
        .iter()
        .map(|(_, app, _, _)| attach(&app.address, app.port))
        .collect();

    let back_at = Cell::new(None);
    let seen = run_load(&apps, async {
        // A crash (no checkpoint): what was committed must come back from the WAL.
        pg.crash_in_background().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        pg.start_in_background().await;
        back_at.set(Some(Instant::now()));
    })
    .await;
    let back_at = back_at.get().expect("the restart ran");
    let (served, live, revoked, lost, unavailable) = totals(&seen, 3);
    eprintln!(
        "served per instance {served:?}, {live} tokens and {revoked} revocations acknowledged, \
         {lost} answers lost, {unavailable} 503s"
    );
    assert!(unavailable > 0, "the outage was seen as 503s");
    assert!(live > 0 && revoked > 0, "the load ran");
    // Every instance serves again after the database came back, without a restart.
    for i in 0..3 {
        assert!(
            seen.iter()
                .any(|s| s.last_served[i].is_some_and(|t| t > back_at)),
            "instance {i} did not resume"
        );
    }
    for (i, app) in apps.iter().enumerate() {
        verify(app, &seen, i == 0).await;
    }
    for (child, _, _, _) in &mut instances {
        let _ = child.kill();
        let _ = child.wait();
    }
}
