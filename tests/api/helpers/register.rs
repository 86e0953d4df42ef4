//! Dynamic client registration (RFC 7591) as `TestApp` helpers.

use reqwest::Response;
use serde_json::{json, Value};

use super::{str_field, Reply, TestApp};

impl TestApp {
    // ----- /register ------------------------------------------------------------------------

    pub async fn register(&self, body: &Value) -> Response {
        self.client
            .post(self.url("/register"))
            .json(body)
            .send()
            .await
            .expect("POST /register")
    }

    /// Registers and asserts 201; returns the client information response.
    pub async fn register_ok(&self, body: &Value) -> Value {
        let reply = Reply::read(self.register(body).await).await;
        assert_eq!(reply.status, 201, "registration failed: {}", reply.body);
        reply.json()
    }

    /// Registers a confidential client (default auth method) with these redirect URIs;
    /// returns `(client_id, client_secret)`.
    pub async fn register_confidential(&self, redirect_uris: &[&str]) -> (String, String) {
        let client = self
            .register_ok(
                &json!({ "redirect_uris": redirect_uris, "client_name": "Test Confidential" }),
            )
            .await;
        (
            str_field(&client, "client_id"),
            str_field(&client, "client_secret"),
        )
    }

    /// Registers a public client (`token_endpoint_auth_method: none`); returns its client_id.
    pub async fn register_public(&self, redirect_uris: &[&str]) -> String {
        let client = self
            .register_ok(&json!({
                "redirect_uris": redirect_uris,
                "client_name": "Test Public",
                "token_endpoint_auth_method": "none",
            }))
            .await;
        str_field(&client, "client_id")
    }
}
