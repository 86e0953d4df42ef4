//! ChatGPT connectors (research §1.5, §2.3): a document per connector offering `none` and
//! `private_key_jwt` (RP metadata choices), with a JWKS, a logo, and in one variant the
//! jwt-bearer grant and `id_token`.

use super::*;

const REDIRECT: &str = "https://chatgpt.com/connector/oauth/IbUR3zxyNQ16";

/// The two published field sets, verbatim but for `client_id`. Both were refused before
/// issue 13 (`token_endpoint_auth_method must be none`).
fn documents() -> [Value; 2] {
    [
        json!({
            "client_uri": "https://chatgpt.com/",
            "client_name": "ChatGPT",
            "logo_uri": "https://persistent.oaistatic.com/sonic/misc/openai-logo.png",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
            "token_endpoint_auth_signing_alg": "RS256",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "jwks_uri": "https://chatgpt.com/oauth/jwks.json"
        }),
        json!({
            "client_uri": "https://chatgpt.com/",
            "client_name": "ChatGPT",
            "logo_uri": "https://persistent.oaistatic.com/sonic/misc/openai-logo.png",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "response_types": ["code", "id_token"],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
            "token_endpoint_auth_signing_alg": "RS256",
            "jwks_uri": "https://chatgpt.com/oauth/jwks.json"
        }),
    ]
}

#[actix_web::test]
async fn chatgpt_documents_get_none() {
    let app = document_app().await;
    let host = DocumentHost::start().await;
    for (i, doc) in documents().into_iter().enumerate() {
        let client_id = publish(&host, &format!("/oauth/IbUR3zxyNQ16/client{i}.json"), doc);
        // ChatGPT sends `resource` at /authorize and /token.
        let flow = Flow {
            resource: Some(&app.resource()),
            ..Flow::public(&client_id, REDIRECT)
        };
        let out = run_flow(&app, &flow).await;
        // The logo is never loaded, nor named: the page loads nothing from elsewhere.
        assert!(!out.page.contains("oaistatic"), "{}", out.page);
        assert!(
            out.page.contains("<strong>chatgpt.com</strong>"),
            "{}",
            out.page
        );
        assert_eq!(out.tokens["scope"], ALL_SCOPES);
    }
    // The JWKS is never fetched for a `none` client.
    assert_eq!(host.hits("/oauth/jwks.json"), 0);
}

#[actix_web::test]
async fn a_document_that_cannot_use_none_is_refused() {
    let app = document_app().await;
    let host = DocumentHost::start().await;
    let [mut doc, _] = documents();
    doc["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"]);
    let client_id = publish(&host, "/oauth/keys-only/client.json", doc);
    let (_, challenge) = pkce_pair();
    let reply = Reply::read(
        app.get_authorize(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .await,
    )
    .await;
    assert_error_page(&reply);
    assert!(reply.body.contains("must list none"), "{}", reply.body);
}
