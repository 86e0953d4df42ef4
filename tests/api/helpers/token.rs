//! The token, revocation and introspection endpoints (RFC 6749 §3.2, RFC 7009, RFC 7662) as
//! `TestApp` helpers, with client authentication by `Authorization: Basic`.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use reqwest::{header, Response};
use serde_json::Value;

use super::{Reply, TestApp, DEMO_BASIC, DEMO_REDIRECT_URI};

impl TestApp {
    // ----- /token -------------------------------------------------------------------------

    pub async fn token_request(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Response {
        let mut request = self.client.post(self.url("/token")).form(form);
        if let Some((id, secret)) = basic {
            request = request.header(header::AUTHORIZATION, basic_auth(id, secret));
        }
        request.send().await.expect("POST /token")
    }

    /// Redeems a demo_client code with Basic auth; returns the raw reply.
    pub async fn exchange_demo_code(&self, code: &str, verifier: &str) -> Reply {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", DEMO_REDIRECT_URI),
        ];
        Reply::read(self.token_request(&form, Some(DEMO_BASIC)).await).await
    }

    /// Code flow + exchange for demo_client; returns the token response JSON.
    pub async fn exchange_code_demo(&self) -> Value {
        let (code, verifier, _) = self.obtain_code().await;
        let reply = self.exchange_demo_code(&code, &verifier).await;
        assert_eq!(reply.status, 200, "code exchange failed: {}", reply.body);
        reply.json()
    }

    /// A client_credentials access token of demo_client (no user); asserts the `200`.
    pub async fn demo_client_token(&self) -> String {
        let form = [("grant_type", "client_credentials")];
        let reply = Reply::read(self.token_request(&form, Some(DEMO_BASIC)).await).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        super::str_field(&reply.json(), "access_token")
    }

    /// `grant_type=refresh_token` as demo_client (Basic).
    pub async fn refresh(&self, refresh_token: &str, scope: Option<&str>) -> Reply {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        Reply::read(self.token_request(&form, Some(DEMO_BASIC)).await).await
    }

    // ----- /revoke and /introspect ----------------------------------------------------------

    /// RFC 7009 revocation; `basic = None` sends no client authentication at all.
    pub async fn revoke(
        &self,
        token: &str,
        hint: Option<&str>,
        basic: Option<(&str, &str)>,
    ) -> Response {
        let mut form = vec![("token", token)];
        if let Some(hint) = hint {
            form.push(("token_type_hint", hint));
        }
        let mut request = self.client.post(self.url("/revoke")).form(&form);
        if let Some((id, secret)) = basic {
            request = request.header(header::AUTHORIZATION, basic_auth(id, secret));
        }
        request.send().await.expect("POST /revoke")
    }

    pub async fn introspect_request(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Response {
        let mut request = self.client.post(self.url("/introspect")).form(form);
        if let Some((id, secret)) = basic {
            request = request.header(header::AUTHORIZATION, basic_auth(id, secret));
        }
        request.send().await.expect("POST /introspect")
    }

    /// RFC 7662 introspection as demo_client; asserts 200 and returns the JSON.
    pub async fn introspect(&self, token: &str) -> Value {
        let reply = Reply::read(
            self.introspect_request(&[("token", token)], Some(DEMO_BASIC))
                .await,
        )
        .await;
        assert_eq!(reply.status, 200, "introspection failed: {}", reply.body);
        reply.json()
    }

    /// `true` iff introspection reports the token active.
    pub async fn is_active(&self, token: &str) -> bool {
        let body = self.introspect(token).await;
        match body["active"].as_bool() {
            Some(active) => active,
            None => panic!("introspection without boolean `active`: {body}"),
        }
    }
}

/// `Authorization: Basic` value; id and secret are form-urlencoded first (OAuth 2.1 §2.4.1).
pub fn basic_auth(id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}
