//! VS Code (research §1.3, §2.2): a document and a registration whose loopback redirect URI
//! carries a port (33418), left for another port when it is taken, and the device-code
//! grant beside the code flow.

use super::*;

#[actix_web::test]
async fn vscode_document_with_a_ported_loopback_redirect() {
    // Refused before issue 13 for the device-code grant.
    let app = document_app().await;
    let host = DocumentHost::start().await;
    let client_id = publish(
        &host,
        "/oauth/client-metadata.json",
        json!({
            "client_name": "Visual Studio Code",
            "client_uri": "https://code.visualstudio.com",
            "redirect_uris": ["http://127.0.0.1:33418/", "https://vscode.dev/redirect"],
            "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "application_type": "native"
        }),
    );
    // 33418 was taken: VS Code listens on another port (microsoft/vscode#278512).
    for redirect in [
        "http://127.0.0.1:33418/",
        "http://127.0.0.1:59656/",
        "https://vscode.dev/redirect",
    ] {
        let out = run_flow(&app, &Flow::public(&client_id, redirect)).await;
        assert!(
            out.page.contains("<strong>code.visualstudio.com</strong>"),
            "{}",
            out.page
        );
    }
}

#[actix_web::test]
async fn vscode_registration() {
    // The body `fetchDynamicRegistration` builds, with the grant types intersected with
    // ours as VS Code does when the server lists them.
    let app = spawn_app().await;
    let registered = app
        .register_ok(&json!({
            "client_name": "Visual Studio Code",
            "client_uri": "https://code.visualstudio.com",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [
                "https://insiders.vscode.dev/redirect",
                "https://vscode.dev/redirect",
                "http://127.0.0.1/",
                "http://127.0.0.1:33418/"
            ],
            "scope": "mcp:read",
            "token_endpoint_auth_method": "none",
            "application_type": "native"
        }))
        .await;
    assert_eq!(registered["application_type"], "native");
    assert_eq!(registered["scope"], "mcp:read");
    let client_id = str_field(&registered, "client_id");
    let flow = Flow {
        scope: Some("mcp:read"),
        ..Flow::public(&client_id, "http://127.0.0.1:51234/")
    };
    let out = run_flow(&app, &flow).await;
    assert_eq!(scopes_seen(&out.whoami), "mcp:read");

    // Without the intersection (older builds, or a server that lists no grant types) the
    // device-code grant is there too: dropped, and the answer says so.
    let registered = app
        .register_ok(&json!({
            "client_name": "Visual Studio Code",
            "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
            "response_types": ["code"],
            "redirect_uris": ["http://127.0.0.1/", "http://127.0.0.1:33418/"],
            "token_endpoint_auth_method": "none",
            "application_type": "native"
        }))
        .await;
    assert_eq!(
        registered["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
}
