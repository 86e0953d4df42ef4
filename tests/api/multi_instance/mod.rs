//! Several real server processes on one PostgreSQL database (issue 14), through the
//! coordinator's [`Cluster`]: one file per behaviour. `grants.rs`: every rule that rests on
//! "one owner" holds across instances (one redemption of a code raced on three instances,
//! replay and refresh-token reuse revoking the grant everywhere). `feed.rs`: revocations
//! and client and user changes made on one instance take effect on the others within the
//! change feed's bound, failing closed while the feed is down. `browser.rs`: a browser's
//! sign-in and consent spread over instances, and the login throttle and the registration
//! limit counted across them. Skipped without `OAUTH_MCP_TEST_DATABASE_URL` (a failure
//! under `CI=true`), like every PostgreSQL test.

mod browser;
mod feed;
mod grants;

use std::time::{Duration, Instant};

use crate::helpers::*;

/// A grant of demo_user for demo_client, obtained on `app`: (access, refresh).
pub(super) async fn user_tokens(app: &TestApp) -> (String, String) {
    let tokens = app.exchange_code_demo().await;
    (
        str_field(&tokens, "access_token"),
        str_field(&tokens, "refresh_token"),
    )
}

/// The public URL every instance is given, as behind a load balancer: tokens are bound to
/// its `/mcp` resource, whichever instance issued them. (Nothing listens there: requests go
/// to each instance's own port.)
pub(super) const PUBLIC_URL: &str = "http://localhost:8000";

/// The arguments every cluster here starts with (see [`PUBLIC_URL`]).
pub(super) const SHARED: [&str; 2] = ["--public-url", PUBLIC_URL];

/// The status of an MCP `initialize` at `app` with `token` (the `/mcp` guard's check), with
/// the `Host` a load balancer forwards (the public URL's: the DNS-rebinding defence
/// accepts only that).
pub(super) async fn mcp_status(app: &TestApp, token: &str) -> u16 {
    app.mcp_initialize_request(token)
        .header(reqwest::header::HOST, "localhost:8000")
        .send()
        .await
        .expect("POST /mcp")
        .status()
        .as_u16()
}

/// Polls `app` until `/mcp` refuses `token` (401), at most `deadline`: how long that took.
/// The deadline is far above the feed's bound, so a loaded machine does not fail the test;
/// the delay is reported, never asserted against the bound.
pub(super) async fn refused_within(app: &TestApp, token: &str, deadline: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let status = mcp_status(app, token).await;
        if status == 401 {
            return started.elapsed();
        }
        assert_eq!(status, 200, "neither served nor refused");
        assert!(
            started.elapsed() < deadline,
            "still served {deadline:?} after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// How many times `app` asked its token ledger so far (`/metrics`).
pub(super) async fn ledger_asks(app: &TestApp) -> f64 {
    sample(
        &scrape(app).await,
        "oauth_mcp_actor_wait_seconds_count{actor=\"token_ledger\"}",
    )
}
