//! Fail-closed authorization (issue 11, item 1): request bodies with odd members, duplicate
//! keys, other types or trailing data never change who may call what; sessions made by odd
//! `initialize` bodies belong to their creator; the global session cap refuses new sessions
//! and keeps existing ones. `odd_requests` is shared with the embedding tests.

use super::*;

/// The original exploit: one member of an unexpected type in `params` made the guard's own
/// parse fail, the guard then checked no tool scope, and rmcp (which ignores unknown
/// members) ran the write tool for a read-only token.
#[actix_web::test]
async fn an_odd_member_in_params_does_not_skip_the_tool_scope_check() {
    let app = spawn_app().await;
    let read_only = user_token(&app, "mcp:read").await;
    let mut mcp = Mcp::new(&app, &read_only);
    mcp.initialize("2025-11-25").await;
    let reply = mcp
        .request(
            "tools/call",
            json!({"name": "sign_guestbook", "arguments": {"message": "pwned"}, "protocolVersion": 1}),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(challenge(&reply).contains("scope=\"mcp:read mcp:write\""));
    assert_eq!(guestbook(&app).await, "the guestbook is empty");
}

/// Variants of one JSON-RPC request naming `target` in `params[field]` (`method` is
/// `tools/call`, `resources/read` or `prompts/get`; `rest` holds the other params members,
/// e.g. `"arguments":{..}`), each with the status a token lacking the target's scope must
/// get: 403 (step-up challenge) for every variant the guard can read, whatever the odd
/// members, and 400 for those it must not guess about. Raw text, so duplicate keys reach
/// the server as written.
pub(crate) fn odd_requests(
    method: &str,
    field: &str,
    target: &str,
    rest: &str,
) -> Vec<(&'static str, String, u16)> {
    let other = if field == "uri" { "name" } else { "uri" };
    let escaped_method = method.replace('/', "\\/");
    let escaped_target = {
        let mut chars = target.chars();
        let first = chars.next().unwrap();
        format!("\\u{:04x}{}", first as u32, chars.as_str())
    };
    let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let msg = |method: &str, params: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":2,"method":"{method}","params":{params}}}"#)
    };
    let params = |extra: &str| format!(r#"{{"{field}":"{target}",{rest}{extra}}}"#);
    let plain = msg(method, &params(""));
    vec![
        ("plain", plain.clone(), 403),
        (
            "odd member types in params",
            msg(
                method,
                &params(&format!(
                    r#","protocolVersion":1,"clientInfo":"x","{other}":7,"x":{{"y":[true,{{}}]}}"#
                )),
            ),
            403,
        ),
        (
            "nulls",
            msg(method, &params(r#","_meta":null,"z":null"#)).replacen("{", r#"{"extra":null,"#, 1),
            403,
        ),
        (
            "odd top-level members",
            plain.replacen(
                "{",
                r#"{"extra":[1,{"method":"ping","params":{"name":"add"}}],"#,
                1,
            ),
            403,
        ),
        (
            "params before method",
            format!(
                r#"{{"params":{},"id":2,"method":"{method}","jsonrpc":"2.0"}}"#,
                params("")
            ),
            403,
        ),
        (
            "escapes",
            msg(&escaped_method, &params("")).replacen(target, &escaped_target, 1),
            403,
        ),
        (
            "deep but bounded nesting",
            msg(method, &params(&format!(r#","deep":{}"#, nest(100)))),
            403,
        ),
        (
            "nesting too deep",
            msg(method, &params(&format!(r#","deep":{}"#, nest(300)))),
            400,
        ),
        (
            "duplicate target",
            msg(
                method,
                &format!(r#"{{"{field}":"harmless","{field}":"{target}",{rest}}}"#),
            ),
            400,
        ),
        (
            "duplicate method",
            plain.replacen("{", r#"{"method":"tools/list","#, 1),
            400,
        ),
        (
            "duplicate params",
            format!(r#"{},"params":{{}}}}"#, plain.strip_suffix('}').unwrap()),
            400,
        ),
        (
            "duplicate key deep inside",
            msg(method, &params(r#","x":{"a":[{"k":1,"k":2}]}"#)),
            400,
        ),
        (
            "null target",
            msg(method, &format!(r#"{{"{field}":null,{rest}}}"#)),
            400,
        ),
        (
            "target of another type",
            msg(method, &format!(r#"{{"{field}":["{target}"],{rest}}}"#)),
            400,
        ),
        ("null params", msg(method, "null"), 400),
        (
            "method of another type",
            plain.replacen(&format!(r#""{method}""#), &format!(r#"["{method}"]"#), 1),
            400,
        ),
        ("batch", format!("[{plain}]"), 400),
        ("truncated", plain[..plain.len() - 1].to_owned(), 400),
        ("trailing data", format!("{plain} {{}}"), 400),
    ]
}

#[actix_web::test]
async fn odd_tools_call_bodies_do_not_change_the_authorization_outcome() {
    let app = spawn_app().await;
    let read_only = user_token(&app, "mcp:read").await;
    let mut mcp = Mcp::new(&app, &read_only);
    mcp.initialize("2025-11-25").await;
    let cases = odd_requests(
        "tools/call",
        "name",
        "sign_guestbook",
        r#""arguments":{"message":"pwned"}"#,
    );
    for (what, body, status) in &cases {
        let reply = mcp.raw(body).await;
        assert_eq!(reply.status, *status, "{what}: {body} -> {}", reply.body);
        if *status == 403 {
            assert!(
                challenge(&reply).contains("scope=\"mcp:read mcp:write\""),
                "{what}"
            );
        } else {
            assert_eq!(reply.json()["error"]["code"], -32600, "{what}");
        }
    }
    assert_eq!(guestbook(&app).await, "the guestbook is empty");

    // The same readable variants run the tool for a token that has the scope.
    let full = user_token(&app, ALL_SCOPES).await;
    let mut mcp = Mcp::new(&app, &full);
    mcp.initialize("2025-11-25").await;
    let mut signed = 0;
    for (what, body, status) in &cases {
        let reply = mcp.raw(body).await;
        if *status == 403 {
            assert!(tool_text(&reply).starts_with("signed"), "{what}");
            signed += 1;
        } else {
            assert_eq!(reply.status, 400, "{what}");
        }
    }
    assert_eq!(guestbook(&app).await.lines().count(), signed);
}

/// `initialize` bodies rmcp accepts but whose odd members broke the guard's old parse (the
/// session was then left without an owner, served to anyone and outside the per-owner cap).
const ODD_INITIALIZE_PARAMS: &[&str] = &[
    r#""name":5"#,
    r#""uri":[],"clientInfo":{"name":"api-test","version":"1.0","extra":null}"#,
    r#""_meta":{"x":[1,{"y":null}]},"extra":{"protocolVersion":7}"#,
];

fn odd_initialize(extra: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","odd":[null],"params":{{"protocolVersion":"2025-11-25","capabilities":{{}},"clientInfo":{{"name":"api-test","version":"1.0"}},{extra}}}}}"#
    )
    .replace(r#""clientInfo":{"name":"api-test","version":"1.0"},"uri""#, r#""uri""#)
}

#[actix_web::test]
async fn a_session_made_by_an_odd_initialize_belongs_to_its_creator() {
    let app = spawn_app().await;
    let user = user_token(&app, ALL_SCOPES).await;
    let client = app.demo_client_token().await;
    for extra in ODD_INITIALIZE_PARAMS {
        let creator = Mcp::new(&app, &user);
        let reply = creator.raw(&odd_initialize(extra)).await;
        assert_eq!(reply.status, 200, "{extra}: {}", reply.body);
        let session = reply.header("mcp-session-id").unwrap().to_owned();
        let mut creator = creator;
        creator.session = Some(session.clone());
        assert_eq!(
            creator.request("tools/list", json!({})).await.status,
            200,
            "{extra}"
        );
        let mut other = Mcp::new(&app, &client);
        other.session = Some(session);
        let reply = other.request("tools/list", json!({})).await;
        assert_eq!(reply.status, 404, "{extra}: {}", reply.body);
        let reply = other.call_tool("whoami", json!({})).await;
        assert_eq!(reply.status, 404, "{extra}: {}", reply.body);
    }
    // Initialize bodies the guard cannot read create no session at all.
    let plain = initialize_body("2025-11-25").to_string();
    for body in [
        plain.replacen("{", r#"{"method":"ping","#, 1),
        plain.replacen(
            r#""params":{"#,
            r#""params":{"protocolVersion":"2025-03-26","#,
            1,
        ),
        format!("[{plain}]"),
    ] {
        let reply = Mcp::new(&app, &user).raw(&body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.header("mcp-session-id").is_none(), "{body}");
    }
}

#[actix_web::test]
async fn the_global_session_cap_refuses_new_sessions_and_keeps_existing_ones() {
    let app = spawn_app_with(|c| c.mcp_max_sessions = 2).await;
    let user = user_token(&app, ALL_SCOPES).await;
    let client = app.demo_client_token().await;
    let mut first = Mcp::new(&app, &user);
    first.initialize("2025-11-25").await;
    let mut second = Mcp::new(&app, &user);
    second.initialize("2025-11-25").await;
    // Full: someone else's burst is refused with 503 and Retry-After, as is the owner's.
    for token in [&client, &client, &user] {
        let reply = Mcp::new(&app, token)
            .raw(&initialize_body("2025-11-25").to_string())
            .await;
        assert_eq!(reply.status, 503, "{}", reply.body);
        let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert!(reply.header("mcp-session-id").is_none());
        assert!(reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many MCP sessions"));
    }
    // ... and nobody's session was evicted.
    assert_eq!(first.request("tools/list", json!({})).await.status, 200);
    assert_eq!(second.request("tools/list", json!({})).await.status, 200);
    // A session that ends makes room.
    let deleted = app
        .client
        .delete(app.url("/mcp"))
        .bearer_auth(&user)
        .header("mcp-session-id", first.session.as_deref().unwrap())
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    Mcp::new(&app, &client).initialize("2025-11-25").await;
    assert_eq!(second.request("tools/list", json!({})).await.status, 200);
}

#[actix_web::test]
async fn an_owner_at_its_cap_replaces_its_own_session_even_when_the_table_is_full() {
    let app = spawn_app_with(|c| {
        c.mcp_max_sessions = 2;
        c.mcp_max_sessions_per_owner = 1;
    })
    .await;
    let user = user_token(&app, ALL_SCOPES).await;
    let client = app.demo_client_token().await;
    let mut old = Mcp::new(&app, &user);
    old.initialize("2025-11-25").await;
    let mut others = Mcp::new(&app, &client);
    others.initialize("2025-11-25").await;
    // The table is full, but the user's new session takes the place of its own old one.
    let mut new = Mcp::new(&app, &user);
    new.initialize("2025-11-25").await;
    assert_eq!(old.request("tools/list", json!({})).await.status, 404);
    assert_eq!(new.request("tools/list", json!({})).await.status, 200);
    assert_eq!(others.request("tools/list", json!({})).await.status, 200);
}
