//! After each restart: everything the clients were told, checked by introspection, and every
//! rotated-out refresh token presented again (it must be refused, and its grant revoked).

use super::*;

/// One check of a token by introspection (as demo_client, which owns every token).
pub(super) async fn expect_active(
    http: &Http,
    token: &str,
    active: bool,
    what: &str,
) -> Option<String> {
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
pub(super) async fn verify(http: &Http, clients: &mut [Holder]) -> (Vec<String>, usize) {
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
